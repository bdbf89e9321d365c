"""HTTP routing and request handlers of the payments service."""

import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import audit, codec, fees, settings
from .ledger import Ledger

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16_384
MAX_AMOUNT = 100_000_000
"""Largest single payment accepted, in cents."""

_ACCOUNT_PATH = re.compile(r"/accounts/([A-Za-z0-9_-]{1,64})")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Reply = tuple[HTTPStatus, dict[str, Any]]


class BadRequest(Exception):
    """The request cannot be served as sent; the message goes to the client."""

    def __init__(
        self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST
    ) -> None:
        super().__init__(message)
        self.status = status


class PaymentsServer(ThreadingHTTPServer):
    """One thread per connection, sharing a ledger and a bounded worker pool."""

    daemon_threads = True
    request_queue_size = settings.REQUEST_QUEUE_SIZE

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, PaymentsHandler)
        self.ledger = Ledger()
        self.workers = threading.BoundedSemaphore(settings.WORKER_POOL_SIZE)


class PaymentsHandler(BaseHTTPRequestHandler):
    """Routes requests; keeps connections alive between requests."""

    protocol_version = "HTTP/1.1"
    server_version = "demo-payments/1.0"
    timeout = settings.IDLE_TIMEOUT
    # Headers and body go out in separate writes; without this, Nagle's
    # algorithm and delayed ACKs add about 40 ms to every response.
    disable_nagle_algorithm = True
    server: PaymentsServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: one line per request would flood the log under load."""

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s: %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        if method == "GET" and self.path == "/health":
            self._send(HTTPStatus.OK, {"status": "ok"})
            return
        with self.server.workers:
            try:
                status, body = self._route(method)
            except BadRequest as error:
                status, body = error.status, {"error": str(error)}
            except Exception:
                log.exception("%s %s failed", method, self.path)
                status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal"}
            audit.record(method, self.path, status)
        self._send(status, body)

    def _route(self, method: str) -> Reply:
        if method == "POST" and self.path == "/payments":
            return self._create_payment()
        match = _ACCOUNT_PATH.fullmatch(self.path)
        if method == "GET" and match:
            return self._show_account(match.group(1))
        if method == "POST":
            # Drain the body so the connection stays usable.
            self._read_body()
        raise BadRequest(f"no route for {method} {self.path}", HTTPStatus.NOT_FOUND)

    def _create_payment(self) -> Reply:
        try:
            request = codec.decode(self._read_body())
        except ValueError as error:
            raise BadRequest("body is not JSON") from error
        if not isinstance(request, dict):
            raise BadRequest("body must be a JSON object")
        account = request.get("account")
        amount = request.get("amount")
        if not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account):
            raise BadRequest("account must be 1-64 letters, digits, '-' or '_'")
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            raise BadRequest(f"amount must be a whole number of cents, 1..{MAX_AMOUNT}")

        fee = fees.fee_for(amount)
        ledger = self.server.ledger
        payment = ledger.record(account, amount, fee)
        balance = ledger.balance(account)
        return HTTPStatus.CREATED, {
            "id": payment.id,
            "account": account,
            "amount": amount,
            "fee": fee,
            "balance": balance,
        }

    def _show_account(self, account: str) -> Reply:
        balance = self.server.ledger.balance(account)
        if balance is None:
            raise BadRequest(f"unknown account {account}", HTTPStatus.NOT_FOUND)
        return HTTPStatus.OK, {"account": account, "balance": balance}

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError as error:
            self.close_connection = True
            raise BadRequest("Content-Length is required") from error
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest("body too large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(length)

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = codec.encode(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(host: str, port: int) -> None:
    """Serve until the process is told to stop."""
    with PaymentsServer((host, port)) as server:
        log.info("payments service listening on http://%s:%d", host, port)
        try:
            server.serve_forever()
        finally:
            log.info("payments service stopped")
