"""Audit trail of handled requests.

Events are kept in a bounded in-memory buffer that a shipper drains in batches,
so recording one costs next to nothing on the request path.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass

BUFFER_SIZE = 10_000
"""Events kept before the oldest are dropped."""


@dataclass(frozen=True)
class AuditEvent:
    """One handled request."""

    at: float
    method: str
    path: str
    status: int


_lock = threading.Lock()
_buffer: deque[AuditEvent] = deque(maxlen=BUFFER_SIZE)


def record(method: str, path: str, status: int) -> None:
    """Add one event to the trail."""
    event = AuditEvent(time.time(), method, path, status)
    with _lock:
        _buffer.append(event)


def drain() -> list[AuditEvent]:
    """Take every buffered event, oldest first."""
    with _lock:
        events = list(_buffer)
        _buffer.clear()
    return events
