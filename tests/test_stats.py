"""Statistics: intervals of the change between runs, and verdicts from them."""

from __future__ import annotations

import math
import random

import pytest

from optui.gates import DEFAULT_GATES, parse_gate
from optui.stats import (
    Comparison,
    Distribution,
    Outcome,
    Sample,
    _Pool,
    compare,
    limit_of,
    needs_more_runs,
    paired,
    percentile_of,
    t_quantile,
    verdict,
)

MEDIAN_MS = 20.0


def run(
    rng: random.Random,
    factor: float = 1.0,
    *,
    requests: int = 2000,
    noise: float = 0.05,
) -> list[float]:
    """One run's latencies: log-normal requests, the whole run scaled by a random
    factor of log-sd noise, as a shared machine does."""
    scale = factor * MEDIAN_MS * math.exp(rng.gauss(0.0, noise))
    return [scale * math.exp(0.5 * rng.gauss()) for _ in range(requests)]


def runs(
    rng: random.Random,
    count: int,
    factor: float = 1.0,
    *,
    requests: int = 2000,
    noise: float = 0.05,
) -> list[list[float]]:
    return [run(rng, factor, requests=requests, noise=noise) for _ in range(count)]


class OnlyPercentiles:
    """A distribution that offers nothing but the protocol."""

    def __init__(self, values: list[float]) -> None:
        self._sample = Sample(values)

    @property
    def count(self) -> int:
        return self._sample.count

    def percentile(self, q: float) -> float:
        return self._sample.percentile(q)


# The adapter for plain lists.


def test_a_sample_reads_percentiles_as_k6_does() -> None:
    sample = Sample([4.0, 1.0, 3.0, 2.0])
    assert isinstance(sample, Distribution)
    assert sample.count == 4
    assert sample.percentile(0) == 1.0
    assert sample.percentile(50) == 2.5
    assert sample.percentile(100) == 4.0
    assert sample.level_at(2.5) == pytest.approx(0.5)
    assert sample.level_at(0.5) == 0.0
    assert sample.level_at(9.0) == 1.0


def test_an_empty_run_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        compare([[]], [[1.0]], 99)


# Verdicts on known changes.


def test_identical_runs_pass_with_an_interval_around_zero() -> None:
    rng = random.Random(1)
    same = runs(rng, 6, requests=4000, noise=0.03)
    c = compare(same, same, 99)
    assert c.change == 0
    assert c.low < 0 < c.high
    assert verdict(c, 0.10).outcome is Outcome.PASS


def test_runs_of_the_same_code_pass_with_an_interval_around_zero() -> None:
    rng = random.Random(2)
    baseline = runs(rng, 8, requests=4000, noise=0.03)
    candidate = runs(rng, 8, requests=4000, noise=0.03)
    c = compare(baseline, candidate, 99)
    assert c.low < 0 < c.high
    assert verdict(c, 0.10).outcome is Outcome.PASS


def test_thirty_percent_slower_fails() -> None:
    rng = random.Random(3)
    c = compare(runs(rng, 5, noise=0.03), runs(rng, 5, 1.30, noise=0.03), 99)
    assert c.low < 0.30 < c.high
    assert verdict(c, 0.10).outcome is Outcome.FAIL
    assert not needs_more_runs(c, 0.10)


def test_twenty_percent_faster_passes_an_item_that_must_improve() -> None:
    rng = random.Random(4)
    c = compare(runs(rng, 4, noise=0.03), runs(rng, 4, 0.80, noise=0.03), 99)
    assert c.high < 0
    assert verdict(c, 0.10, must_improve=True).outcome is Outcome.PASS
    assert verdict(c, 0.10).outcome is Outcome.PASS


def test_a_change_at_the_limit_is_usually_inconclusive() -> None:
    rng = random.Random(5)
    outcomes = [
        verdict(
            compare(runs(rng, 3), runs(rng, 3, 1.10), 99, resamples=1000, seed=i),
            0.10,
        ).outcome
        for i in range(20)
    ]
    assert outcomes.count(Outcome.INCONCLUSIVE) >= 16


def test_the_interval_covers_the_true_change_about_95_times_in_100() -> None:
    rng = random.Random(6)
    true_change = 0.05
    covered = 0
    experiments = 200
    for i in range(experiments):
        baseline = runs(rng, 3, noise=0.07)
        candidate = runs(rng, 3, 1 + true_change, noise=0.07)
        c = compare(baseline, candidate, 99, resamples=1000, seed=i)
        covered += c.low <= true_change <= c.high
    assert 0.90 <= covered / experiments <= 0.99


def test_the_median_compares_too() -> None:
    rng = random.Random(7)
    c = compare(runs(rng, 4, noise=0.03), runs(rng, 4, 1.25, noise=0.03), 50)
    assert c.stat == 50
    assert c.low < 0.25 < c.high
    assert verdict(c, 0.10).outcome is Outcome.FAIL


def test_pairs_cancel_a_drift_that_hits_both_runs_of_a_pair() -> None:
    rng = random.Random(8)
    # The machine slows down by half over the session, run after run.
    drift = [1.0 + 0.5 * i / 7 for i in range(8)]
    pairs = [
        (
            run(rng, d, requests=4000, noise=0.01),
            run(rng, d * 1.02, requests=4000, noise=0.01),
        )
        for d in drift
    ]
    apart = compare([a for a, _ in pairs], [b for _, b in pairs], 99)
    together = paired(pairs, 99)
    assert together.paired and together.describe().endswith("8 pairs)")
    assert together.low < 0.02 < together.high
    assert (together.high - together.low) < (apart.high - apart.low) / 2
    assert verdict(apart, 0.10).outcome is Outcome.INCONCLUSIVE
    assert verdict(together, 0.10).outcome is Outcome.PASS


def test_a_distribution_with_only_percentiles_gives_the_same_answer() -> None:
    rng = random.Random(9)
    baseline, candidate = runs(rng, 3), runs(rng, 3, 1.05)
    plain = compare(baseline, candidate, 99)
    bare = compare(
        [OnlyPercentiles(r) for r in baseline],
        [OnlyPercentiles(r) for r in candidate],
        99,
    )
    # Read through percentiles alone, the pooled percentile is interpolated
    # between grid values, within about a request's rank of the exact one.
    assert bare.change == pytest.approx(plain.change, abs=0.01)
    assert bare.low == pytest.approx(plain.low, abs=0.01)
    assert bare.high == pytest.approx(plain.high, abs=0.01)


def test_latency_histograms_are_runs() -> None:
    from optui.samples import LatencyHistogram

    rng = random.Random(14)
    baseline, candidate = runs(rng, 3), runs(rng, 3, 1.2)

    def histogram(values: list[float]) -> LatencyHistogram:
        counted = LatencyHistogram()
        counted.add_many(values)
        return counted

    read: list[Distribution] = [histogram(r) for r in baseline]
    assert all(isinstance(h, Distribution) for h in read)
    counted = compare(read, [histogram(r) for r in candidate], 99)
    exact = compare(baseline, candidate, 99)
    # A histogram's percentiles are within 0.5% of the exact ones.
    assert counted.change == pytest.approx(exact.change, abs=0.015)
    assert counted.low == pytest.approx(exact.low, abs=0.015)
    assert counted.high == pytest.approx(exact.high, abs=0.015)


def test_the_point_estimate_is_the_percentile_of_the_pooled_requests() -> None:
    rng = random.Random(10)
    baseline, candidate = runs(rng, 3), runs(rng, 3, 1.1)
    c = compare(baseline, candidate, 99)
    # The runs are pooled as distributions, each read as k6 reads percentiles,
    # which puts the pooled percentile within a rank of that of all requests.
    for pooled, side in ((c.baseline, baseline), (c.candidate, candidate)):
        merged = sorted(v for r in side for v in r)
        rank = int(0.99 * (len(merged) - 1))
        assert merged[rank - 1] <= pooled <= merged[rank + 2]
    assert c.change == pytest.approx(c.candidate / c.baseline - 1)


def test_tables_of_few_runs_and_bisection_of_many_read_alike() -> None:
    rng = random.Random(13)
    pool = _Pool([Sample(r) for r in runs(rng, 3)], 0.99, 1000)
    picks = pool.picks(rng, 500)
    zs = [3 * rng.gauss() for _ in picks]
    assert pool._cache is not None
    from_tables = pool.values(picks, zs)
    pool._cache = None
    assert pool.values(picks, zs) == pytest.approx(from_tables, rel=1e-12)


def test_the_same_seed_gives_the_same_interval() -> None:
    rng = random.Random(11)
    baseline, candidate = runs(rng, 3), runs(rng, 3)
    assert compare(baseline, candidate, 99) == compare(baseline, candidate, 99)


def test_one_run_on_a_side_cannot_be_judged() -> None:
    rng = random.Random(12)
    c = compare(runs(rng, 1), runs(rng, 3), 99)
    assert not c.bounded
    judged = verdict(c, 0.10)
    assert judged.outcome is Outcome.INCONCLUSIVE
    assert "no 95% CI: one run on a side" in judged.description
    assert needs_more_runs(c, 0.10)


# The rule, read off intervals.


def comparison(change: float, low: float, high: float) -> Comparison:
    return Comparison(
        stat=99,
        baseline=100.0,
        candidate=100.0 * (1 + change),
        change=change,
        low=low,
        high=high,
        confidence=0.95,
        baseline_runs=3,
        candidate_runs=3,
    )


def test_the_verdict_says_the_change_its_interval_and_the_limit() -> None:
    judged = verdict(comparison(0.031, -0.02, 0.084), 0.10)
    assert judged.outcome is Outcome.PASS
    assert judged.description == (
        "p99 +3.1% (95% CI -2.0% to +8.4%, 3+3 runs) against a limit of +10%: pass"
    )
    improved = verdict(comparison(-0.12, -0.2, -0.035), 0.10, must_improve=True)
    assert improved.limit == 0.0
    assert improved.description == (
        "p99 -12.0% (95% CI -20.0% to -3.5%, 3+3 runs) must improve (below 0%): pass"
    )


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [
        (-0.05, 0.10, Outcome.PASS),
        (0.05, 0.15, Outcome.INCONCLUSIVE),
        (0.10, 0.20, Outcome.INCONCLUSIVE),
        (0.11, 0.20, Outcome.FAIL),
    ],
)
def test_a_limit_passes_the_whole_interval_within_and_fails_it_all_beyond(
    low: float, high: float, outcome: Outcome
) -> None:
    c = comparison((low + high) / 2, low, high)
    assert verdict(c, 0.10).outcome is outcome
    assert needs_more_runs(c, 0.10) is (outcome is Outcome.INCONCLUSIVE)


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [
        (-0.2, -0.01, Outcome.PASS),
        (-0.2, 0.0, Outcome.INCONCLUSIVE),
        (-0.01, 0.05, Outcome.INCONCLUSIVE),
        (0.0, 0.05, Outcome.FAIL),
    ],
)
def test_an_item_that_must_improve_needs_its_whole_interval_below_zero(
    low: float, high: float, outcome: Outcome
) -> None:
    c = comparison((low + high) / 2, low, high)
    assert verdict(c, 0.10, must_improve=True).outcome is outcome


# Gates as limits.


def test_limits_of_the_gates_a_plan_writes() -> None:
    p99 = parse_gate(DEFAULT_GATES[2])
    assert percentile_of(p99) == 99
    assert limit_of(p99) == pytest.approx(0.10)
    assert limit_of(p99.as_improvement()) == 0.0
    assert limit_of(parse_gate("http_req_duration: p(99) < baseline")) == 0.0
    assert limit_of(parse_gate("http_req_duration: med <= baseline * 1.2")) == (
        pytest.approx(0.2)
    )
    finer = parse_gate("http_req_duration: p(99.9) <= baseline * 1.05")
    assert percentile_of(finer) == 99.9
    assert limit_of(finer) == pytest.approx(0.05)


def test_an_offset_is_relative_to_the_baselines_value() -> None:
    gate = parse_gate("http_req_duration: p(95) <= baseline + 40")
    assert limit_of(gate, 200.0) == pytest.approx(0.20)
    assert limit_of(parse_gate("http_req_duration: p(95) <= baseline - 20"), 200.0) == (
        pytest.approx(-0.10)
    )
    with pytest.raises(ValueError, match="baseline"):
        limit_of(gate)


@pytest.mark.parametrize(
    "text",
    [
        "http_req_failed: rate == 0",
        "payments_inconsistency: count == 0",
        "http_req_duration: p(99) <= 250",
        "http_req_duration: p(99) >= baseline * 0.5",
        "http_req_duration: p(99) == baseline",
        "http_req_duration: avg <= baseline * 1.1",
        "http_req_duration: max <= baseline * 1.1",
        "http_reqs: rate <= baseline * 1.1",
    ],
)
def test_gates_no_interval_can_judge_have_no_limit(text: str) -> None:
    assert limit_of(parse_gate(text), 100.0) is None


# Student's t, which the interval's stretch comes from.


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062047),
        (0.975, 2, 4.3026527),
        (0.975, 4, 2.7764451),
        (0.975, 10, 2.2281389),
        (0.995, 3, 5.8409093),
        (0.9, 30, 1.3104150),
        (0.025, 4, -2.7764451),
        (0.975, math.inf, 1.9599640),
    ],
)
def test_t_quantiles_match_the_tables(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
