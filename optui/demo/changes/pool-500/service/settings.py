"""Server settings for the payments service."""

HOST = "127.0.0.1"
"""Address the service listens on."""

DEFAULT_PORT = 18080
"""Port used when none is given on the command line."""

WORKER_POOL_SIZE = 500
"""How many requests may be handled at the same time; the rest wait for a slot."""

REQUEST_QUEUE_SIZE = 1024
"""Listen backlog for connections not yet accepted."""

IDLE_TIMEOUT = 30.0
"""Seconds a keep-alive connection may stay idle before it is closed."""
