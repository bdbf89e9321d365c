"""A small HTTP service on 127.0.0.1 for k6 to load: `/` answers quickly,
`/flaky` fails one request in four, more slowly."""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without this, delayed ACKs hold each
    # keep-alive response for 40 ms.
    disable_nagle_algorithm = True
    flaky_counter = itertools.count()
    counter_lock = threading.Lock()

    def do_GET(self) -> None:
        status = 200
        delay = random.uniform(0, 0.002)
        if self.path.startswith("/flaky"):
            with self.counter_lock:
                number = next(self.flaky_counter)
            if number % 4 == 0:
                status = 500
                delay = random.uniform(0.004, 0.006)
        time.sleep(delay)
        body = b"fine\n" if status == 200 else b"broken\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@contextlib.contextmanager
def serve_flaky() -> Iterator[str]:
    """Run the service on a free port; its base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
