"""Judging a candidate's latency against the baseline's over several noisy runs.

Each side (baseline, candidate) is a handful of load-test runs, each run a
latency distribution. ``compare`` estimates the relative change of a pooled
percentile with a confidence interval; ``verdict`` holds the interval against a
gate's limit and answers pass, fail or inconclusive, so that one run slow by
chance no longer fails an item on its own.
"""

from __future__ import annotations

import bisect
import enum
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from statistics import NormalDist
from typing import Protocol, runtime_checkable

from optui.gates import Gate

DEFAULT_RESAMPLES = 2000
MIN_RESAMPLES = 100
RANK_SIGMAS = 6.0
"""How far, in standard deviations, the random rank of a resampled quantile is
covered by the grid."""
GRID_POINTS = 64
"""About how many quantiles, all runs together, are read over the range a
resampled quantile can reach: the grid on which resamples are interpolated,
within about a request's rank of their exact quantiles."""


@runtime_checkable
class Distribution(Protocol):
    """What a comparison reads from one run's latencies."""

    @property
    def count(self) -> int:
        """How many requests the run measured."""
        ...

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0 <= q <= 100) of the run's latencies; None
        only when the run has none."""
        ...


class Sample:
    """A run given as its request latencies, one value a request."""

    def __init__(self, values: Iterable[float]) -> None:
        self.values = sorted(values)
        if not self.values:
            raise ValueError("a run needs at least one request")

    @property
    def count(self) -> int:
        return len(self.values)

    def percentile(self, q: float) -> float:
        """k6's percentile: linear between the two nearest ranks."""
        values = self.values
        position = min(max(q, 0.0), 100.0) / 100 * (len(values) - 1)
        lower = int(position)
        if lower + 1 >= len(values):
            return values[-1]
        return values[lower] + (values[lower + 1] - values[lower]) * (position - lower)

    def level_at(self, value: float) -> float:
        """The inverse of ``percentile``, as a fraction: where value falls."""
        values = self.values
        if value < values[0]:
            return 0.0
        if value >= values[-1]:
            return 1.0
        below = bisect.bisect_right(values, value) - 1
        low, high = values[below], values[below + 1]
        return (below + (value - low) / (high - low)) / (len(values) - 1)


Run = Distribution | Sequence[float]
"""A run: its distribution, or its latencies as a list of numbers."""


def as_distribution(run: Run) -> Distribution:
    """The run itself when it is a Distribution; its latencies wrapped otherwise."""
    if isinstance(run, Distribution):
        return run
    return Sample(run)


@dataclass(frozen=True)
class Comparison:
    """The candidate's pooled percentile against the baseline's, with an interval.

    Changes are relative: ``0.05`` is 5% slower than the baseline, ``-0.1`` 10%
    faster. With a single run on a side the spread between runs is unknown and
    the interval is unbounded.
    """

    stat: float
    """The percentile compared: 99 for p(99), 50 for the median."""
    baseline: float
    """The pooled percentile of the baseline's runs: the percentile of their
    distributions taken together, each weighted by its requests. For runs given
    as latencies it is exact, and within a rank of k6's percentile of all the
    requests; read through ``percentile`` alone, within about a rank of that."""
    candidate: float
    """The pooled percentile of the candidate's runs."""
    change: float
    """candidate / baseline - 1."""
    low: float
    """Lower bound of the confidence interval of the change."""
    high: float
    """Upper bound of the confidence interval of the change."""
    confidence: float
    baseline_runs: int
    candidate_runs: int
    paired: bool = False
    """Whether the runs were measured in pairs and compared pair by pair."""

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def describe(self) -> str:
        """``p99 +3.1% (95% CI -2.0% to +8.4%, 3+3 runs)``."""
        if self.paired:
            runs = f"{self.candidate_runs} pairs"
        else:
            runs = f"{self.baseline_runs}+{self.candidate_runs} runs"
        level = f"{self.confidence * 100:g}% CI"
        if self.bounded:
            interval = f"{level} {_percent(self.low)} to {_percent(self.high)}"
        else:
            interval = f"no {level}: one run on a side"
        return f"p{self.stat:g} {_percent(self.change)} ({interval}, {runs})"


class Outcome(enum.Enum):
    """What a verdict says of a gate."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """A comparison held against a limit."""

    outcome: Outcome
    description: str
    """One line for the operator: the change, its interval, the limit, the outcome."""
    comparison: Comparison
    limit: float
    """The largest relative change allowed; 0 for an item that must improve."""
    must_improve: bool = False


def compare(
    baseline_runs: Sequence[Run],
    candidate_runs: Sequence[Run],
    stat: float,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> Comparison:
    """The relative change of the pooled ``stat``-th percentile, with an interval.

    The point estimate is the ratio of the percentiles of all requests pooled,
    the candidate's over the baseline's. The interval comes from a two-level
    bootstrap of the log of that ratio, its width matched to an unbiased
    variance and stretched for the few runs behind it:

    1. Each resample draws, on each side independently, as many runs as the
       side has, with replacement (the variation between runs of the same
       code), then resamples the requests within them (the sampling error of a
       percentile of finitely many requests). For one quantile the second
       level needs no requests: the resampled q-quantile of N requests is the
       empirical quantile at a random rank, Binomial(N, q), drawn here from
       its normal approximation, so a resample is one lookup in the pooled
       distribution of the runs drawn. One rank for the pool, rather than one
       a run, slightly overstates the request-level variance.
    2. With k runs that bootstrap is biased twice: its run-level variance is
       (k - 1) / k of the unbiased one, and the request-level variance is
       counted twice, since the spread of the runs already contains it. So
       each side's deviations are scaled to the variance k / (k - 1) times
       (bootstrap variance - request-level variance), but never less than the
       request-level variance alone; the request-level variance is measured
       with the same random ranks on the pool of all the side's runs.
    3. That variance is estimated from k - 1 degrees of freedom a side, so the
       percentile interval of the scaled deviations is stretched about the
       estimate by t / z: Student's quantile at the Welch-Satterthwaite degrees
       of freedom of the two sides over the normal quantile.

    Why it is sound: resampling whole runs carries everything that varies from
    run to run, whatever its cause, without a model of it; the percentile
    interval keeps the skew of a tail statistic; and steps 2 and 3 are the
    small-sample corrections behind Welch's t interval. The floor in step 2
    only ever widens the interval. In simulation (0 to 10% noise between runs,
    spikes, p50 and p99, 2 to 10 runs a side) the 95% interval covered the true
    change 93.5% to 99.5% of the time; without steps 2 and 3, over three runs
    a side, 87% to 89%. Runs are taken to be independent; for runs measured
    back to back in pairs, use ``paired``.

    resamples: bootstrap resamples a side. seed: the resampling's; fixed by
    default, so that the same runs always get the same interval.
    """
    level = _checked(stat, confidence, resamples)
    a = _Pool([as_distribution(run) for run in baseline_runs], level, resamples)
    b = _Pool([as_distribution(run) for run in candidate_runs], level, resamples)
    centre = b.estimate - a.estimate
    if a.runs < 2 or b.runs < 2:
        return _comparison(stat, a, b, centre, -math.inf, math.inf, confidence)
    rng = random.Random(seed)
    scaled = []
    parts = []
    for pool in (a, b):
        zs = [rng.gauss() for _ in range(resamples)]
        centre_of = pool.grid_estimate
        picks = pool.picks(rng, resamples)
        both = [v - centre_of for v in pool.values(picks, zs)]
        requests = [v - centre_of for v in pool.values_of_all(zs)]
        scale, spread = _matched(pool.runs, both, requests)
        scaled.append([scale * d for d in both])
        parts.append((spread, pool.runs - 1))
    deviations = [db - da for da, db in zip(*scaled, strict=True)]
    low, high = _stretched_interval(deviations, confidence, _welch_df(parts))
    return _comparison(stat, a, b, centre, centre + low, centre + high, confidence)


def paired(
    pairs: Sequence[tuple[Run, Run]],
    stat: float,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> Comparison:
    """Like ``compare``, for runs measured in pairs: (baseline run, candidate run).

    Each resample draws pairs with replacement, the same pairs on both sides,
    then requests within each run as ``compare`` does. A slowdown of the
    machine that hits both runs of a pair moves both pooled percentiles alike
    and cancels in their ratio, instead of widening the interval. The variance
    is matched as in ``compare``, over the pairs, and the interval stretched by
    Student's t at k - 1 degrees of freedom for k pairs.
    """
    level = _checked(stat, confidence, resamples)
    a = _Pool([as_distribution(first) for first, _ in pairs], level, resamples)
    b = _Pool([as_distribution(second) for _, second in pairs], level, resamples)
    centre = b.estimate - a.estimate
    if len(pairs) < 2:
        return _comparison(stat, a, b, centre, -math.inf, math.inf, confidence, True)
    rng = random.Random(seed)
    picks = a.picks(rng, resamples)
    za = [rng.gauss() for _ in range(resamples)]
    zb = [rng.gauss() for _ in range(resamples)]
    on_grid = b.grid_estimate - a.grid_estimate
    both = [
        vb - va - on_grid
        for va, vb in zip(a.values(picks, za), b.values(picks, zb), strict=True)
    ]
    requests = [
        vb - va - on_grid
        for va, vb in zip(a.values_of_all(za), b.values_of_all(zb), strict=True)
    ]
    scale, _ = _matched(len(pairs), both, requests)
    deviations = [scale * d for d in both]
    low, high = _stretched_interval(deviations, confidence, len(pairs) - 1)
    return _comparison(
        stat, a, b, centre, centre + low, centre + high, confidence, True
    )


def verdict(
    comparison: Comparison, limit: float, *, must_improve: bool = False
) -> Verdict:
    """Pass when the whole interval is within the limit, fail when it is all
    beyond it, inconclusive otherwise.

    limit is relative (0.10 allows 10% slower). An item that must improve is
    held to 0 whatever the limit: its whole interval must be below 0 to pass,
    and it fails when the whole interval is at or above 0.
    """
    c = comparison
    if must_improve:
        limit = 0.0
        passed, failed = c.high < 0, c.low >= 0
        against = "must improve (below 0%)"
    else:
        passed, failed = c.high <= limit, c.low > limit
        against = f"against a limit of {limit * 100:+.3g}%"
    outcome = (
        Outcome.PASS if passed else Outcome.FAIL if failed else Outcome.INCONCLUSIVE
    )
    text = f"{c.describe()} {against}: {outcome.value}"
    return Verdict(outcome, text, c, limit, must_improve)


def needs_more_runs(
    comparison: Comparison, limit: float, *, must_improve: bool = False
) -> bool:
    """Whether another run on each side could settle the verdict: it is
    inconclusive. How many runs to allow at most is the caller's choice."""
    judged = verdict(comparison, limit, must_improve=must_improve)
    return judged.outcome is Outcome.INCONCLUSIVE


_PERCENTILE = re.compile(r"^p\((?P<q>[^()]+)\)$")


def percentile_of(gate: Gate) -> float | None:
    """The percentile a gate reads (99 for ``p(99)``, 50 for ``med``), or None."""
    if gate.stat == "med":
        return 50.0
    match = _PERCENTILE.match(gate.stat)
    return float(match["q"]) if match else None


def limit_of(gate: Gate, baseline: float | None = None) -> float | None:
    """The relative limit a gate sets on a percentile, or None if it sets none.

    ``p(99) <= baseline * 1.10`` is 0.10; ``p(99) < baseline``, what an item
    that must improve is held to, is 0.0 (the strict and the loose bound are
    the same for a continuous statistic). An offset, ``p(95) <= baseline + 40``,
    depends on the baseline's value: pass the baseline's pooled percentile,
    ``Comparison.baseline``; its own uncertainty in the offset's share is left
    out. None for a gate that is not an upper bound on a percentile relative
    to the baseline (fixed bounds, lower bounds, equality, statistics other
    than percentiles): the seed rule judges those.
    """
    if gate.factor is None or gate.op not in ("<", "<=") or gate.factor <= 0:
        return None
    if percentile_of(gate) is None:
        return None
    if gate.constant == 0:
        return gate.factor - 1
    if baseline is None or baseline <= 0:
        raise ValueError(f"gate {gate.text!r} needs the baseline's positive value")
    return gate.factor - 1 + gate.constant / baseline


# The pooled distribution of one side, and its cheap resampling.

_Table = tuple[list[float], float, float]
"""A multiset's pooled counts on the grid, its target count at the level asked
for, and the standard deviation of that count under request resampling."""


class _Pool:
    """One side's runs, ready for the pooled quantile of any resample of them.

    Every run's distribution is read once, at a grid of values covering every
    quantile a resample can reach, as the count of requests at or below each
    grid value. The pooled count of any multiset of runs is then a sum over
    its runs, and its quantile one bisection on the grid.
    """

    def __init__(self, runs: Sequence[Distribution], level: float, resamples: int):
        if not runs:
            raise ValueError("a side needs at least one run")
        self.runs = len(runs)
        self.level = level
        self.counts = tuple(float(run.count) for run in runs)
        if min(self.counts) < 1:
            raise ValueError("every run needs at least one request")
        self.total = sum(self.counts)
        self._spread = math.sqrt(level * (1 - level))
        reach = RANK_SIGMAS * self._spread / math.sqrt(self.runs * min(self.counts))
        low, high = max(level - reach, 0.0), min(level + reach, 1.0)
        each = max(GRID_POINTS // self.runs, 8)
        steps = [low + (high - low) * i / each for i in range(each + 1)]
        readings = [_Readings(run, steps) for run in runs]
        self.grid = sorted({v for r in readings for v in r.values})
        if self.grid[0] <= 0:
            raise ValueError("a relative change needs positive latencies")
        columns = [
            [n * f for f in r.levels_at(self.grid)]
            for n, r in zip(self.counts, readings, strict=True)
        ]
        self.rows = list(zip(*columns, strict=True))
        self._everyone = self._table(tuple(range(self.runs)))[0]
        on_grid = _value_at(self._everyone, self.grid, level * self.total)
        # The resamples are read on the grid, so their deviations are taken from
        # the grid's own estimate; the estimate reported is the exact one.
        self.grid_estimate = math.log(on_grid)
        self.estimate = self.grid_estimate
        samples = [run for run in runs if isinstance(run, Sample)]
        if len(samples) == self.runs:
            self.estimate = math.log(self._exact(samples, on_grid))
        # A table of pooled counts for each multiset of runs beats bisecting
        # sums only when multisets repeat often: few runs, many resamples.
        self._cache: dict[tuple[int, ...], _Table] | None = None
        multisets = math.comb(2 * self.runs - 1, self.runs)
        if self.runs < 2 or multisets * len(self.grid) <= 8 * resamples:
            self._cache = {}

    def _exact(self, runs: Sequence[Sample], near: float) -> float:
        """The pooled quantile of samples, exactly, found by bisection from the
        grid cell around near. (A distribution that offers only percentiles
        keeps the grid's estimate: inverting it exactly costs too many reads.)"""
        g = bisect.bisect_left(self.grid, near)
        low, high = self.grid[max(g - 1, 0)], self.grid[min(g + 1, len(self.grid) - 1)]
        target = self.level * self.total

        def pooled(value: float) -> float:
            return sum(
                n * run.level_at(value)
                for n, run in zip(self.counts, runs, strict=True)
            )

        if pooled(low) >= target or pooled(high) < target:
            return near
        while high - low > 1e-12 * high:
            middle = (low + high) / 2
            if pooled(middle) < target:
                low = middle
            else:
                high = middle
        return high

    def picks(self, rng: random.Random, resamples: int) -> list[tuple[int, ...]]:
        """Resamples of the runs: their indices, drawn with replacement, sorted."""
        k, draw = self.runs, rng.random
        flat = [int(draw() * k) for _ in range(k * resamples)]
        return [tuple(sorted(flat[i : i + k])) for i in range(0, len(flat), k)]

    def values(self, picks: list[tuple[int, ...]], zs: list[float]) -> list[float]:
        """The log pooled quantile of each resample: the runs picked, its rank z
        standard deviations of request-level sampling away from the level.

        A rank beyond the grid reads the grid's end, which only a z beyond
        RANK_SIGMAS reaches."""
        if self._cache is not None:
            values = self._from_tables(picks, zs, self._cache)
        else:
            values = self._by_bisection(picks, zs)
        return list(map(math.log, values))

    def _from_tables(
        self,
        picks: list[tuple[int, ...]],
        zs: list[float],
        cache: dict[tuple[int, ...], _Table],
    ) -> list[float]:
        grid, locate, last = self.grid, bisect.bisect_left, len(self.grid) - 1
        values = []
        for chosen, z in zip(picks, zs, strict=True):
            entry = cache.get(chosen)
            if entry is None:
                counts, total = self._table(chosen)
                width = self._spread * math.sqrt(total)
                entry = cache[chosen] = (counts, self.level * total, width)
            counts, centre, width = entry
            target = centre + z * width
            g = locate(counts, target)
            if 0 < g <= last:
                values.append(_between(grid, g, target, counts[g - 1], counts[g]))
            else:
                values.append(grid[min(g, last)])
        return values

    def _by_bisection(
        self, picks: list[tuple[int, ...]], zs: list[float]
    ) -> list[float]:
        level, spread, counts = self.level, self._spread, self.counts
        grid, rows, last = self.grid, self.rows, len(self.rows) - 1
        # Runs of one length give every multiset of them the same total.
        same = self.total if len(set(counts)) == 1 else 0.0
        values = []
        for chosen, z in zip(picks, zs, strict=True):
            take = itemgetter(*chosen)
            total = same or sum(take(counts))
            target = level * total + z * spread * math.sqrt(total)
            # The counts either side of the crossing are the last ones probed
            # on each side of it.
            low, high, below, above = 0, last + 1, 0.0, 0.0
            while low < high:
                middle = (low + high) // 2
                pooled = sum(take(rows[middle]))
                if pooled < target:
                    low, below = middle + 1, pooled
                else:
                    high, above = middle, pooled
            if 0 < low <= last:
                values.append(_between(grid, low, target, below, above))
            else:
                values.append(grid[min(low, last)])
        return values

    def values_of_all(self, zs: list[float]) -> list[float]:
        """``values`` for all the runs, each once: request-level sampling alone."""
        counts, grid = self._everyone, self.grid
        centre, width = self.level * self.total, self._spread * math.sqrt(self.total)
        return [math.log(_value_at(counts, grid, centre + z * width)) for z in zs]

    def _table(self, picks: tuple[int, ...]) -> tuple[list[float], float]:
        """The pooled count at each grid value, and the total, for the runs picked."""
        if len(picks) == 1:
            only = picks[0]
            return [row[only] for row in self.rows], self.counts[only]
        take = itemgetter(*picks)
        return [sum(take(row)) for row in self.rows], sum(take(self.counts))


def _value_at(counts: list[float], grid: list[float], target: float) -> float:
    """The value at which the pooled counts on the grid reach target."""
    g = bisect.bisect_left(counts, target)
    if 0 < g < len(counts):
        return _between(grid, g, target, counts[g - 1], counts[g])
    return grid[min(g, len(counts) - 1)]


def _between(
    grid: list[float], g: int, target: float, before: float, after: float
) -> float:
    """Linear between grid values g - 1 and g, where the counts reach target."""
    if after <= before:
        return grid[g]
    share = (target - before) / (after - before)
    return grid[g - 1] + (grid[g] - grid[g - 1]) * share


class _Readings:
    """One run's percentiles at the levels the grid is made of, and where the
    grid's values fall in the run."""

    def __init__(self, run: Distribution, steps: list[float]) -> None:
        self.run = run
        self.levels = list(steps)
        self.values = [_percentile(run, 100 * s) for s in steps]

    def levels_at(self, values: list[float]) -> list[float]:
        """Where each of the sorted values falls in the run, as a fraction."""
        if isinstance(self.run, Sample):
            return list(map(self.run.level_at, values))
        self._cover(values[0], values[-1])
        levels, curve, result = self.levels, self.values, []
        for value in values:
            i = bisect.bisect_right(curve, value)
            if i == 0:
                result.append(levels[0])
            elif i == len(curve):
                result.append(levels[-1])
            else:
                below, above = curve[i - 1], curve[i]
                share = (value - below) / (above - below) if above > below else 1.0
                result.append(levels[i - 1] + (levels[i] - levels[i - 1]) * share)
        return result

    def _cover(self, low: float, high: float) -> None:
        """Read further percentiles until the readings span low to high, each
        step outwards twice as wide as the one before and read at a few levels,
        since the pooled quantile seldom falls this far from the run's own."""
        width = max(self.levels[-1] - self.levels[0], 1e-6)
        step = width
        while self.values[0] > low and self.levels[0] > 0:
            start = max(self.levels[0] - step, 0.0)
            added = [start + (self.levels[0] - start) * i / 4 for i in range(4)]
            self.levels[:0] = added
            self.values[:0] = [_percentile(self.run, 100 * a) for a in added]
            step *= 2
        step = width
        while self.values[-1] < high and self.levels[-1] < 1:
            end = min(self.levels[-1] + step, 1.0)
            added = [
                self.levels[-1] + (end - self.levels[-1]) * i / 4 for i in (1, 2, 3, 4)
            ]
            self.levels.extend(added)
            self.values.extend(_percentile(self.run, 100 * a) for a in added)
            step *= 2


def _percentile(run: Distribution, q: float) -> float:
    value = run.percentile(q)
    if value is None:
        raise ValueError("every run needs at least one request")
    return value


# The interval.


def _matched(
    runs: int, both: list[float], requests: list[float]
) -> tuple[float, float]:
    """The factor that gives a side's two-level deviations an unbiased variance,
    and that variance. requests: deviations from request-level sampling alone.
    """
    two_level, request_level = _variance(both), _variance(requests)
    unbiased = runs / (runs - 1) * (two_level - request_level)
    wanted = max(unbiased, request_level)
    scale = math.sqrt(wanted / two_level) if two_level > 0 else 1.0
    return scale, wanted


def _variance(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _welch_df(parts: Iterable[tuple[float, int]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates,
    each given with its own degrees of freedom."""
    parts = list(parts)
    total = sum(v for v, _ in parts)
    spread = sum(v * v / df for v, df in parts)
    return total * total / spread if spread > 0 else math.inf


def _stretched_interval(
    deviations: list[float], confidence: float, df: float
) -> tuple[float, float]:
    """The percentile interval of the deviations, stretched about 0 by t / z."""
    tail = (1 - confidence) / 2
    ordered = sorted(deviations)
    stretch = t_quantile(1 - tail, df) / NormalDist().inv_cdf(1 - tail)
    low, high = _quantile_of(ordered, tail), _quantile_of(ordered, 1 - tail)
    return stretch * low, stretch * high


def _quantile_of(ordered: list[float], level: float) -> float:
    position = level * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t distribution with df degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError("p must be between 0 and 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    z = NormalDist().inv_cdf(p)
    if math.isinf(df) or p == 0.5:
        return z
    low, high = 0.0, max(z, 1.0)
    while _t_cdf(high, df) < p:
        low, high = high, high * 2
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        if _t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0."""
    return 1 - 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log1p(-x)
    )
    # The continued fraction converges fast below its mean; above, by symmetry.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta function's continued fraction, by Lentz's method."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result


# Presentation.


def _comparison(
    stat: float,
    a: _Pool,
    b: _Pool,
    centre: float,
    low: float,
    high: float,
    confidence: float,
    is_paired: bool = False,
) -> Comparison:
    return Comparison(
        stat=stat,
        baseline=math.exp(a.estimate),
        candidate=math.exp(b.estimate),
        change=math.expm1(centre),
        low=math.expm1(low),
        high=math.expm1(high),
        confidence=confidence,
        baseline_runs=a.runs,
        candidate_runs=b.runs,
        paired=is_paired,
    )


def _checked(stat: float, confidence: float, resamples: int) -> float:
    """The level of the percentile stat, once the arguments are known sound."""
    if not 0 < stat < 100:
        raise ValueError(f"percentile {stat!r} must be between 0 and 100")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r} must be between 0 and 1")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"resamples must be at least {MIN_RESAMPLES}")
    return stat / 100


def _percent(change: float) -> str:
    return f"{change * 100:+.1f}%"
