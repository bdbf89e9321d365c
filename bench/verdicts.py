"""How often a latency gate's verdict is wrong: the seed rule against optui's.

Simulates load-test runs whose request latencies are log-normal (median 20 ms,
log-sd 0.5), a few thousand requests a run, with the noise of a shared machine:
each run's latencies are scaled by a random factor (log-normal, sd 7%), and one
run in ten has a spike, 1% of its requests three times slower. For speed the
requests are drawn from a fixed pool of 2^18 log-normal latencies, as like the
log-normal itself as makes no difference at p99. A candidate's
requests are the baseline's model scaled by its true change. For each true
change, over many trials, it judges the gate ``p(99) <= baseline * 1.10``
(and, for the improvements, the must-improve gate ``p(99) < baseline``) by:

- the seed rule: three runs a side, each candidate run's p99 against the median
  of the baseline's three p99s times 1.10 (or the median itself for an item
  that must improve); the item fails if any run fails;
- optui at the same runs: ``optui.stats.compare`` of 3 + 3 runs and
  ``verdict``, an inconclusive verdict counted as such, not as wrong;
- optui adaptive: from 3 + 3 runs, one more run on each side while the verdict
  is inconclusive, up to a maximum.

Figures only: it asserts nothing. Run from the project root:

    python bench/verdicts.py              # about 100 s
    python bench/verdicts.py --trials 100 # quicker, coarser
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from optui.stats import Comparison, Outcome, Sample, compare, verdict

MEDIAN_MS = 20.0
REQUEST_SIGMA = 0.5
"""Log-sd of the request latencies within a run: p99 about 3.2 times the median."""
RUN_SIGMA = 0.07
"""Log-sd of the factor that scales a whole run: the machine's run-to-run noise."""
SPIKE_CHANCE = 0.1
SPIKE_SHARE = 0.01
SPIKE_FACTOR = 3.0
LIMIT = 0.10
STAT = 99.0
SEED_RUNS = 3
POOL_SIZE = 2**18

CHANGES = (0.0, 0.05, 0.10, 0.20, -0.10, -0.20)
BOUNDARY = 0.10
"""The true change at the limit: neither verdict is wrong there."""


# The simulated runs.


def latency_pool() -> list[float]:
    """Log-normal request latencies of median 1, to draw the runs' requests from."""
    rng = random.Random("latencies")
    return [math.exp(REQUEST_SIGMA * rng.gauss()) for _ in range(POOL_SIZE)]


POOL = latency_pool()


class Runs:
    """One side's runs in one trial, made as they are first asked for."""

    def __init__(self, rng: random.Random, factor: float, requests: int) -> None:
        self.rng = rng
        self.factor = factor
        self.requests = requests
        self.made: list[Sample] = []

    def first(self, count: int) -> list[Sample]:
        while len(self.made) < count:
            self.made.append(self._run())
        return self.made[:count]

    def _run(self) -> Sample:
        rng = self.rng
        scale = self.factor * MEDIAN_MS * math.exp(rng.gauss(0.0, RUN_SIGMA))
        values = [scale * shape for shape in rng.choices(POOL, k=self.requests)]
        if rng.random() < SPIKE_CHANCE:
            for _ in range(int(self.requests * SPIKE_SHARE)):
                values[rng.randrange(self.requests)] *= SPIKE_FACTOR
        return Sample(values)


# The rules.


def seed_rule(base: list[Sample], cand: list[Sample], must_improve: bool) -> Outcome:
    """Every candidate run's p99 against the median of the baseline's p99s."""
    median = statistics.median(run.percentile(STAT) for run in base)
    if must_improve:
        passed = all(run.percentile(STAT) < median for run in cand)
    else:
        passed = all(run.percentile(STAT) <= median * (1 + LIMIT) for run in cand)
    return Outcome.PASS if passed else Outcome.FAIL


@dataclass
class Tally:
    """Verdicts of one rule on one row of the table."""

    counts: dict[Outcome, int] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)

    def add(self, outcome: Outcome, runs: int = SEED_RUNS) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.runs.append(runs)

    def rate(self, outcome: Outcome) -> float:
        return self.counts.get(outcome, 0) / max(len(self.runs), 1)


@dataclass
class Row:
    change: float
    must_improve: bool
    seed: Tally = field(default_factory=Tally)
    fixed: Tally = field(default_factory=Tally)
    adaptive: Tally = field(default_factory=Tally)

    @property
    def wrong(self) -> Outcome | None:
        """The verdict that is wrong for this true change; None at the boundary."""
        if self.must_improve or self.change <= 0.05:
            return Outcome.FAIL
        if self.change >= 0.20:
            return Outcome.PASS
        return None


def trial(
    rows: list[Row], change: float, number: int, args: argparse.Namespace
) -> None:
    """One simulated item: its runs, judged by every rule for every row."""
    rng = random.Random(f"{change}/{number}")
    base = Runs(rng, 1.0, args.requests)
    cand = Runs(rng, 1.0 + change, args.requests)
    comparisons: dict[int, Comparison] = {}

    def compared(runs: int) -> Comparison:
        if runs not in comparisons:
            comparisons[runs] = compare(
                base.first(runs),
                cand.first(runs),
                STAT,
                resamples=args.resamples,
                seed=number,
            )
        return comparisons[runs]

    for row in rows:
        row.seed.add(
            seed_rule(base.first(SEED_RUNS), cand.first(SEED_RUNS), row.must_improve)
        )
        row.fixed.add(judge(compared(SEED_RUNS), row.must_improve))
        runs = SEED_RUNS
        outcome = judge(compared(runs), row.must_improve)
        while outcome is Outcome.INCONCLUSIVE and runs < args.max_runs:
            runs += 1
            outcome = judge(compared(runs), row.must_improve)
        row.adaptive.add(outcome, runs)


def judge(comparison: Comparison, must_improve: bool) -> Outcome:
    return verdict(comparison, LIMIT, must_improve=must_improve).outcome


# The table.


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def cells(row: Row, tally: Tally) -> str:
    """The wrong-verdict rate, or at the boundary both the pass and fail rates."""
    if row.wrong is None:
        return (
            f"pass {percent(tally.rate(Outcome.PASS))} "
            f"fail {percent(tally.rate(Outcome.FAIL))}"
        )
    return percent(tally.rate(row.wrong))


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"{args.trials} trials a row; runs of {args.requests:,} requests, p99 gated "
        f"at +{LIMIT:.0%}; optui with {args.resamples:,} resamples, adaptive up to "
        f"{args.max_runs} runs a side.\n"
        "Wrong: for a true change of +5% or less, or an improvement that must "
        "improve, a FAIL;\n"
        "for +20% or more, a PASS. At +10%, the limit itself, neither is wrong: "
        "pass and fail rates are shown.\n"
        "Inconclusive verdicts are counted apart, never as wrong."
    )
    header = (
        f"{'true':>5}  {'gate':<13}{'seed rule':>22}  {'optui 3+3':>22}"
        f"{'inconcl.':>9}  {'optui adaptive':>22}{'inconcl.':>9}{'runs':>8}"
    )
    print()
    print(header)
    print(
        f"{'':>5}  {'':<13}{'wrong':>22}  {'wrong':>22}{'':>9}  {'wrong':>22}"
        f"{'at max':>9}{'a side':>8}"
    )
    for row in rows:
        gate = "must improve" if row.must_improve else f"<= +{LIMIT:.0%}"
        print(
            f"{row.change:>+5.0%}  {gate:<13}{cells(row, row.seed):>22}  "
            f"{cells(row, row.fixed):>22}"
            f"{percent(row.fixed.rate(Outcome.INCONCLUSIVE)):>9}  "
            f"{cells(row, row.adaptive):>22}"
            f"{percent(row.adaptive.rate(Outcome.INCONCLUSIVE)):>9}"
            f"{statistics.fmean(row.adaptive.runs):>8.1f}"
        )


def conclusion(rows: list[Row]) -> str:
    judged = [row for row in rows if row.wrong is not None]

    def wrong(tally: Callable[[Row], Tally]) -> int:
        return sum(
            tally(row).counts.get(row.wrong, 0)
            for row in judged
            if row.wrong is not None
        )

    total = sum(len(row.seed.runs) for row in judged)
    seed, fixed, adaptive = (
        wrong(lambda r: r.seed),
        wrong(lambda r: r.fixed),
        wrong(lambda r: r.adaptive),
    )
    inconclusive = sum(row.fixed.counts.get(Outcome.INCONCLUSIVE, 0) for row in judged)
    runs = statistics.fmean(n for row in judged for n in row.adaptive.runs)
    return (
        f"Wrong verdicts away from the limit, of {total:,}: seed rule {seed}, "
        f"optui at the same 3+3 runs {fixed} ({inconclusive} inconclusive), "
        f"optui adaptive {adaptive} ({runs:.1f} runs a side on average)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="items a row")
    parser.add_argument("--requests", type=int, default=3000, help="requests a run")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap")
    parser.add_argument("--max-runs", type=int, default=10, help="adaptive maximum")
    args = parser.parse_args()

    began = time.perf_counter()
    table: list[Row] = []
    for change in CHANGES:
        rows = [Row(change, False)]
        if change < 0:
            rows.append(Row(change, True))
        for number in range(args.trials):
            trial(rows, change, number, args)
        table.extend(rows)
    print_table(table, args)
    print()
    print(conclusion(table))
    print(f"\nrun time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
