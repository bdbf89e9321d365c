"""Latency verdicts drawn from every run's requests, not from each run alone.

Under the plan's ``statistics: verdicts: interval`` (the default), a gate that
bounds a latency percentile relative to the baseline (``p(99) <= baseline *
1.10``, ``p(99) < baseline`` for an item that must improve) is decided once per
item, by the confidence interval of the change over all its runs against the
baseline's (``optui.stats``). Every other gate, the correctness gates above
all (``rate == 0``, ``count == 0``), keeps the seed rule: every run must pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from optui import stats
from optui.gates import Gate
from optui.plan import Plan, VerdictRule
from optui.samples import LatencyHistogram, RunFigures

EXPECTED = "http_req_duration{expected_response:true}"
ALL = "http_req_duration"

Latency = Mapping[str, LatencyHistogram]
"""A run's request durations, by the metric key a gate names."""


def latency_of(figures: RunFigures) -> dict[str, LatencyHistogram]:
    """The histograms of one run that interval gates can read."""
    return {EXPECTED: figures.durations, ALL: figures.all_durations}


def by_interval(plan: Plan, gates: Sequence[Gate]) -> tuple[Gate, ...]:
    """The gates among these that the interval decides, in their order."""
    if plan.statistics.verdicts is not VerdictRule.INTERVAL:
        return ()
    return tuple(g for g in gates if _expressible(g))


def _expressible(gate: Gate) -> bool:
    if gate.metric not in (EXPECTED, ALL) or stats.percentile_of(gate) is None:
        return False
    return gate.factor is not None and gate.factor > 0 and gate.op in ("<", "<=")


def must_improve(gate: Gate) -> bool:
    """Whether the gate is the strict ``< baseline`` of an item that must improve."""
    return gate.op == "<" and gate.factor == 1 and gate.constant == 0


def judgeable(gate: Gate, runs: Sequence[Latency]) -> bool:
    """Whether every run has requests for the gate to read."""
    return bool(runs) and all(
        gate.metric in run and run[gate.metric].count > 0 for run in runs
    )


def changes(
    baseline: Sequence[Latency],
    candidate: Sequence[Latency],
    confidence: float,
    in_pairs: bool = False,
) -> list[stats.Comparison]:
    """The change of p99 and of the median of the expected responses, each with
    its interval; none when a side has no durations to read."""
    a = [run[EXPECTED] for run in baseline if EXPECTED in run]
    b = [run[EXPECTED] for run in candidate if EXPECTED in run]
    if not a or not b or len(a) < len(baseline) or len(b) < len(candidate):
        return []
    if not all(h.count for h in (*a, *b)):
        return []
    if in_pairs and len(a) == len(b):
        pairs = list(zip(a, b, strict=True))
        return [stats.paired(pairs, q, confidence=confidence) for q in (99, 50)]
    return [stats.compare(a, b, q, confidence=confidence) for q in (99, 50)]


def judge(
    gate: Gate,
    baseline: Sequence[Latency],
    candidate: Sequence[Latency],
    *,
    confidence: float,
    in_pairs: bool = False,
) -> stats.Verdict:
    """One gate's verdict over the runs of both sides.

    in_pairs: baseline[i] and candidate[i] were measured back to back, so the
    comparison is made pair by pair and drift of the machine cancels.
    """
    q = stats.percentile_of(gate)
    assert q is not None
    a = [run[gate.metric] for run in baseline]
    b = [run[gate.metric] for run in candidate]
    if in_pairs:
        comparison = stats.paired(
            list(zip(a, b, strict=True)), q, confidence=confidence
        )
    else:
        comparison = stats.compare(a, b, q, confidence=confidence)
    improve = must_improve(gate)
    limit = 0.0 if improve else stats.limit_of(gate, comparison.baseline)
    assert limit is not None
    return stats.verdict(comparison, limit, must_improve=improve)
