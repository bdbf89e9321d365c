"""JSON encoding and decoding of request and response bodies.

orjson parses and serializes several times faster than the standard library.
"""

from typing import Any

import orjson


def decode(body: bytes) -> Any:
    """Parse a request body; raises ValueError when it is not JSON."""
    return orjson.loads(body)


def encode(value: Any) -> bytes:
    """Serialize a response body compactly."""
    return orjson.dumps(value)
