"""JSON encoding and decoding of request and response bodies."""

import json
from typing import Any


def decode(body: bytes) -> Any:
    """Parse a request body; raises ValueError when it is not JSON."""
    return json.loads(body)


def encode(value: Any) -> bytes:
    """Serialize a response body compactly."""
    return json.dumps(value, separators=(",", ":")).encode()
