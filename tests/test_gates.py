"""Gates: parsing and judging runs against the baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from optui.gates import (
    MissingFigure,
    baseline_values,
    evaluate,
    measure,
    parse_gate,
)


@dataclass
class Run:
    """Figures of one run, as a k6 summary would give them."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def stat(self, metric: str, stat: str) -> float | None:
        return self.metrics.get(metric, {}).get(stat)

    def metric_names(self) -> list[str]:
        return list(self.metrics)


P99 = "http_req_duration{expected_response:true}: p(99) <= baseline * 1.10"


def run(p99: float, failed: float = 0.0, inconsistent: float | None = None) -> Run:
    metrics = {
        "http_req_duration{expected_response:true}": {"p(99)": p99, "med": p99 / 3},
        "http_req_failed": {"rate": failed},
    }
    if inconsistent is not None:
        metrics["payments_inconsistency"] = {"count": inconsistent}
    return Run(metrics)


def test_parse_reads_tags_stat_and_relative_bound() -> None:
    gate = parse_gate(
        "http_req_duration{ expected_response : true }: p( 99 ) <= baseline*1.1"
    )
    assert gate.metric == "http_req_duration{expected_response:true}"
    assert gate.stat == "p(99)"
    assert gate.relative and gate.factor == pytest.approx(1.1)
    assert gate.limit(20.0) == pytest.approx(22.0)


@pytest.mark.parametrize(
    ("text", "baseline", "limit"),
    [
        ("m: p(95) <= baseline + 5", 10.0, 15.0),
        ("m: p(95) <= baseline - 2", 10.0, 8.0),
        ("m: p(95) <= baseline", 10.0, 10.0),
        ("m: max < 250", None, 250.0),
    ],
)
def test_bounds(text: str, baseline: float | None, limit: float) -> None:
    assert parse_gate(text).limit(baseline) == pytest.approx(limit)


def test_latency_gate_allows_ten_percent_and_no_more() -> None:
    gates = [parse_gate(P99)]
    base = baseline_values(gates, [run(20.0), run(18.0), run(30.0)])
    assert base == {("http_req_duration{expected_response:true}", "p(99)"): 20.0}
    [ok] = evaluate(gates, run(21.9), base, run=1)
    [bad] = evaluate(gates, run(22.1), base, run=2)
    assert ok.passed and not bad.passed
    assert bad.limit == pytest.approx(22.0)
    assert "run 2" in bad.describe() and "FAILED" in bad.describe()


def test_correctness_gates_need_exact_zero() -> None:
    gates = [
        parse_gate("http_req_failed: rate == 0"),
        parse_gate("payments_inconsistency: count == 0"),
    ]
    clean = evaluate(gates, run(5.0, failed=0.0, inconsistent=0), {}, run=1)
    broken = evaluate(gates, run(5.0, failed=0.001, inconsistent=3), {}, run=1)
    assert all(r.passed for r in clean)
    assert [r.passed for r in broken] == [False, False]
    assert broken[1].value == 3


def test_a_counter_k6_left_out_reads_as_zero_with_a_note() -> None:
    gate = parse_gate("payments_inconsistency: count == 0")
    value, note = measure(gate, run(5.0))
    assert value == 0.0
    assert "nothing was counted" in note


def test_a_missing_trend_is_could_not_measure_listing_what_exists() -> None:
    gate = parse_gate("grpc_req_duration: p(99) < 5")
    with pytest.raises(MissingFigure) as caught:
        measure(gate, run(5.0))
    assert "http_req_failed" in str(caught.value)
    assert "grpc_req_duration" in str(caught.value)


def test_improvement_gate_demands_strictly_better() -> None:
    gate = parse_gate(P99).as_improvement()
    base = {gate.key: 20.0}
    assert not evaluate([gate], run(20.0), base, 1)[0].passed
    assert evaluate([gate], run(19.5), base, 1)[0].passed
    # Correctness gates stay as they are.
    fixed = parse_gate("http_req_failed: rate == 0")
    assert fixed.as_improvement() is fixed
