"""Carries engine events from the engine's thread to the app's.

Rare events become Textual messages at once. Output lines and live figures,
which can arrive thousands a second, wait in a buffer that the app drains on a
timer and writes to its widgets in batches.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from textual.app import App
from textual.message import Message

from optui.events import Event, LiveFigures, OutputLine, StepStarted

BUFFER_LINES = 100_000
"""Output lines held between two drains; older ones are dropped (they stay on disk)."""


class EngineEvent(Message):
    """One engine event, delivered on the app's thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EngineBridge:
    """The engine listener an app subscribes; thread-safe on both sides."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._lines: deque[OutputLine] = deque(maxlen=BUFFER_LINES)
        self._figures: deque[LiveFigures] = deque(maxlen=10_000)
        self.dropped = 0
        """Lines dropped because the app fell behind."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            # The command heads its own output, in the same order as the output.
            header = OutputLine(
                event.item_id, event.step, f"$ {event.command}", event.run
            )
            with self._lock:
                self._lines.append(header)
        if isinstance(event, OutputLine):
            with self._lock:
                if len(self._lines) == BUFFER_LINES:
                    self.dropped += 1
                self._lines.append(event)
        elif isinstance(event, LiveFigures):
            with self._lock:
                self._figures.append(event)
        else:
            self.app.post_message(EngineEvent(event))

    def drain(self) -> tuple[list[OutputLine], list[LiveFigures]]:
        """Everything buffered since the last drain, oldest first."""
        with self._lock:
            lines = list(self._lines)
            figures = list(self._figures)
            self._lines.clear()
            self._figures.clear()
        return lines, figures
