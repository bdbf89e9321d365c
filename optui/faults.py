"""Deliberate crashes at named points, to prove that recovery loses nothing.

The engine and the git layer call ``point`` after every state transition and
every git operation that changes the repository. Normally that does nothing.
With ``OPTUI_CRASH_AT=N`` in the environment the process dies, as abruptly as a
``kill -9``, at the N-th point it passes; with ``OPTUI_CRASH_POINTS=FILE`` it
appends the name of every point it passes to FILE, one a line.
"""

from __future__ import annotations

import os
import threading

CRASH_STATUS = 86
"""The exit status of a deliberate crash, to tell it from any other death."""

_lock = threading.Lock()
_passed = 0


def point(name: str) -> None:
    """A place where the process may die; see the module's docstring."""
    crash_at = os.environ.get("OPTUI_CRASH_AT")
    record = os.environ.get("OPTUI_CRASH_POINTS")
    if not crash_at and not record:
        return
    global _passed
    with _lock:
        _passed += 1
        number = _passed
    if record:
        with open(record, "a", encoding="utf-8") as out:
            out.write(f"{number} {name}\n")
    if crash_at and number == int(crash_at):
        os._exit(CRASH_STATUS)
