"""Waiting until a freshly deployed service is ready for load."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from optui.errors import Cancelled, StepError
from optui.plan import Ready, ReadyKind
from optui.proc import run_command

log = logging.getLogger(__name__)


def wait_until_ready(
    ready: Ready,
    *,
    cwd: Path,
    env: Mapping[str, str],
    cancel: threading.Event,
    on_line: Callable[[str], None],
    log_path: Path | None = None,
) -> float:
    """Block until the service is ready; return the seconds it took.

    Raises StepError when the timeout passes first, Cancelled on request.
    """
    started = time.monotonic()
    if ready.kind is ReadyKind.SLEEP:
        on_line(f"waiting {ready.target} s")
        if cancel.wait(float(ready.target)):
            raise Cancelled("stopped while waiting for readiness")
        return time.monotonic() - started
    probe = _PROBES[ready.kind]
    attempts = 0
    last = ""
    while True:
        attempts += 1
        remaining = ready.timeout - (time.monotonic() - started)
        ok, last = probe(ready.target, cwd, env, cancel, max(remaining, 0.1), log_path)
        if ok:
            on_line(f"ready after {attempts} attempt(s): {last}")
            return time.monotonic() - started
        if cancel.is_set():
            raise Cancelled("stopped while waiting for readiness")
        if time.monotonic() - started + ready.interval > ready.timeout:
            on_line(f"not ready: {last}")
            raise StepError(
                f"not ready after {ready.timeout:g} s ({attempts} attempts at "
                f"{ready.kind.value} {ready.target!r}; last: {last})"
            )
        if cancel.wait(ready.interval):
            raise Cancelled("stopped while waiting for readiness")


def answers_already(
    ready: Ready,
    *,
    cwd: Path,
    env: Mapping[str, str],
    cancel: threading.Event,
    log_path: Path | None = None,
) -> str | None:
    """What the readiness check says if it passes before anything is deployed.

    A service that answers then is one an earlier run left behind; its figures
    would be taken for the new revision's. None when nothing answers (and for
    kinds of readiness that cannot tell: sleep, and docker, which watches the
    stack's own containers).
    """
    probe = _PROBES.get(ready.kind)
    if probe is None:
        return None
    ok, said = probe(ready.target, cwd, env, cancel, 2.0, log_path)
    return said if ok else None


def _http_probe(
    url: str,
    cwd: Path,
    env: Mapping[str, str],
    cancel: threading.Event,
    remaining: float,
    log_path: Path | None,
) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=min(5.0, remaining)) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(reason)
    return 200 <= status < 300, f"HTTP {status}"


def _command_probe(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    cancel: threading.Event,
    remaining: float,
    log_path: Path | None,
) -> tuple[bool, str]:
    result = run_command(
        command,
        cwd=cwd,
        env=env,
        timeout=min(remaining, 30.0),
        cancel=cancel,
        log_path=log_path,
    )
    return result.ok, f"{command!r} {result.describe()}"


Probe = Callable[
    [str, Path, Mapping[str, str], threading.Event, float, Path | None],
    tuple[bool, str],
]
"""One readiness attempt: whether it passed, and what it saw."""

_PROBES: dict[ReadyKind, Probe] = {
    ReadyKind.HTTP: _http_probe,
    ReadyKind.COMMAND: _command_probe,
}
