"""Account balances and the payments recorded against them."""

import itertools
import threading
import time
from dataclasses import dataclass

STORE_ROUND_TRIP_SECONDS = 0.012
"""Time one balance read from the ledger store takes."""

PAGE_CACHE_BYTES = 150 * 1024 * 1024
"""Memory reserved for ledger pages read from the store."""


@dataclass(frozen=True)
class Payment:
    """One recorded payment."""

    id: str
    account: str
    amount: int
    """Amount credited to the account, in cents."""
    fee: int
    """Fee charged for the payment, in cents."""


class Ledger:
    """Thread-safe store of balances and payments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._balances: dict[str, int] = {}
        self._payments: list[Payment] = []
        self._ids = itertools.count(1)
        # Reserved and zeroed when the ledger opens, so that filling the cache
        # never allocates on the request path.
        self._pages = bytearray(PAGE_CACHE_BYTES)

    def record(self, account: str, amount: int, fee: int) -> Payment:
        """Credit ``amount`` to ``account`` and keep the payment."""
        with self._lock:
            payment = Payment(f"pay-{next(self._ids):08d}", account, amount, fee)
            self._payments.append(payment)
            self._balances[account] = self._balances.get(account, 0) + amount
        return payment

    def balance(self, account: str) -> int | None:
        """Read the balance of ``account``; None when it has no payments yet."""
        time.sleep(STORE_ROUND_TRIP_SECONDS)
        with self._lock:
            return self._balances.get(account)
