"""Fee schedule for incoming payments.

Fees are tiered by amount (in cents): a percentage plus a fixed part. The rate
table lives with the pricing team; it changes only with a release, so it is
fetched once when the service starts and searched in memory afterwards.
"""

import bisect
import time

PRICING_LOOKUP_SECONDS = 0.030
"""Time one round trip to the pricing service takes."""

_TIERS: tuple[tuple[int, int, int], ...] = (
    # (upper bound in cents, basis points, fixed cents)
    (1_000, 290, 30),
    (10_000, 250, 25),
    (100_000, 190, 20),
    (10**12, 150, 0),
)


def _fetch_rate_table() -> tuple[tuple[int, int, int], ...]:
    """Ask the pricing service for the current tiers."""
    time.sleep(PRICING_LOOKUP_SECONDS)
    return _TIERS


_RATES = _fetch_rate_table()
_UPPER_BOUNDS = [upper for upper, _, _ in _RATES]


def fee_for(amount: int) -> int:
    """Return the fee in cents for a payment of ``amount`` cents."""
    index = bisect.bisect_left(_UPPER_BOUNDS, amount)
    if amount < 0 or index == len(_RATES):
        raise ValueError(f"amount out of range: {amount}")
    _, basis_points, fixed = _RATES[index]
    return amount * basis_points // 10_000 + fixed
