"""Gates: k6-threshold-like conditions every test run must meet.

A gate reads ``METRIC[{tag:value,...}]: STAT OP BOUND``, for example
``http_req_duration{expected_response:true}: p(99) <= baseline * 1.10``. ``BOUND`` is a
number, or ``baseline`` optionally scaled (``* F``) or shifted (``+ N``, ``- N``);
``baseline`` is the same statistic measured on main.
"""

from __future__ import annotations

import operator
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

STATS_WORDS = ("rate", "count", "avg", "min", "max", "med", "value", "passes", "fails")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
DEFAULT_GATES = (
    "http_req_failed: rate == 0",
    "payments_inconsistency: count == 0",
    "http_req_duration{expected_response:true}: p(99) <= baseline * 1.10",
)

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_GATE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:\{(?P<tags>[^{}]*)\})?\s*:"
    r"\s*(?P<stat>[A-Za-z_]+(?:\(\s*" + _NUMBER + r"\s*\))?)"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<bound>.+?)\s*$"
)
_BOUND = re.compile(
    r"^(?:(?P<const>" + _NUMBER + r")|baseline"
    r"(?:\s*(?P<bop>[*+-])\s*(?P<num>" + _NUMBER + r"))?)$"
)
_PERCENTILE = re.compile(r"^p\(\s*(" + _NUMBER + r")\s*\)$")


class GateSyntaxError(ValueError):
    """A gate expression that cannot be read; the message says what is wrong."""


class Figures(Protocol):
    """What a gate reads from one run: a statistic of a metric, or None."""

    def stat(self, metric: str, stat: str) -> float | None: ...

    def metric_names(self) -> list[str]: ...


@dataclass(frozen=True)
class Gate:
    """One condition a run must meet."""

    text: str
    """The expression as written in the plan."""
    metric: str
    """The metric key as k6 names it, tags included: ``name{tag:value}``."""
    stat: str
    """The statistic of the metric: ``rate``, ``count``, ``p(99)``, ``med``, ..."""
    op: str
    """The comparison: one of ``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>``."""
    constant: float = 0.0
    """The bound when it is a number; the offset added to the baseline otherwise."""
    factor: float | None = None
    """The baseline's multiplier; None when the bound does not refer to the baseline."""

    @property
    def key(self) -> tuple[str, str]:
        """The figure the gate reads: metric and statistic."""
        return (self.metric, self.stat)

    @property
    def relative(self) -> bool:
        """Whether the bound is measured against the baseline."""
        return self.factor is not None

    @property
    def correctness(self) -> bool:
        """A fixed bound (``rate == 0``): correctness rather than latency."""
        return not self.relative

    def limit(self, baseline: float | None) -> float:
        """The bound for a run, given the baseline's value of the same statistic."""
        if self.factor is None:
            return self.constant
        if baseline is None:
            raise ValueError(f"gate {self.text!r} needs a baseline")
        return baseline * self.factor + self.constant

    def holds(self, value: float, baseline: float | None) -> bool:
        return COMPARISONS[self.op](value, self.limit(baseline))

    def as_improvement(self) -> Gate:
        """The gate an item that must improve is held to: strictly below baseline."""
        if not self.relative or self.op not in ("<", "<="):
            return self
        return Gate(
            text=f"{self.metric}: {self.stat} < baseline",
            metric=self.metric,
            stat=self.stat,
            op="<",
            constant=0.0,
            factor=1.0,
        )


def parse_gate(text: str) -> Gate:
    """Parse one gate expression, raising GateSyntaxError with the reason."""
    match = _GATE.match(text)
    if match is None:
        raise GateSyntaxError(
            f"gate {text!r} is not of the form 'METRIC[{{tags}}]: STAT OP BOUND', "
            "e.g. 'http_req_failed: rate == 0'"
        )
    stat = re.sub(r"\s+", "", match["stat"])
    if stat not in STATS_WORDS and not _valid_percentile(stat):
        raise GateSyntaxError(
            f"gate {text!r}: unknown statistic {stat!r} "
            f"(use {', '.join(STATS_WORDS)} or p(N) with 0 < N < 100)"
        )
    bound = _BOUND.match(match["bound"])
    if bound is None:
        raise GateSyntaxError(
            f"gate {text!r}: bound {match['bound']!r} must be a number or "
            "'baseline', optionally '* F', '+ N' or '- N'"
        )
    metric = match["metric"] + _tags_key(text, match["tags"])
    if bound["const"] is not None:
        return Gate(text, metric, stat, match["op"], constant=float(bound["const"]))
    factor, offset = 1.0, 0.0
    if bound["bop"] == "*":
        factor = float(bound["num"])
    elif bound["bop"] == "+":
        offset = float(bound["num"])
    elif bound["bop"] == "-":
        offset = -float(bound["num"])
    return Gate(text, metric, stat, match["op"], constant=offset, factor=factor)


def _valid_percentile(stat: str) -> bool:
    match = _PERCENTILE.match(stat)
    return match is not None and 0 < float(match[1]) < 100


def _tags_key(text: str, tags: str | None) -> str:
    if tags is None:
        return ""
    pairs = []
    for part in tags.split(","):
        name, sep, value = part.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise GateSyntaxError(
                f"gate {text!r}: tag {part.strip()!r} must read 'name:value'"
            )
        pairs.append(f"{name.strip()}:{value.strip()}")
    return "{" + ",".join(pairs) + "}"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate on one run."""

    gate: str
    """The gate's expression."""
    run: int
    """1-based run number."""
    value: float
    """What the run measured."""
    limit: float
    """The bound the value was compared with."""
    passed: bool
    note: str = ""
    """Anything the operator should know about how the value was obtained."""

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        text = f"run {self.run}: {self.gate}: {verdict}, measured {self.value:.4g} "
        text += f"against {self.limit:.4g}"
        return text + (f" ({self.note})" if self.note else "")


class MissingFigure(LookupError):
    """A run lacks the statistic a gate needs: the run could not be measured."""


def measure(gate: Gate, figures: Figures) -> tuple[float, str]:
    """The value a gate reads from a run, and a note on how it was obtained.

    k6 leaves a counter out of its summary when nothing was ever counted, so a
    missing counter reads as zero; any other missing figure is a MissingFigure.
    """
    value = figures.stat(gate.metric, gate.stat)
    if value is not None:
        return value, ""
    if gate.stat == "count" and gate.metric not in figures.metric_names():
        return 0.0, f"{gate.metric} absent from the summary: nothing was counted"
    have = ", ".join(sorted(figures.metric_names())) or "no metrics at all"
    raise MissingFigure(
        f"the k6 summary has no {gate.stat} for {gate.metric} (gate {gate.text!r}); "
        f"it has: {have}"
    )


Baseline = Mapping[tuple[str, str], float]
"""Main's value of each figure a relative gate reads, by (metric, statistic)."""


def baseline_values(
    gates: Iterable[Gate], runs: Sequence[Figures]
) -> dict[tuple[str, str], float]:
    """The baseline of each relative gate: the median over main's runs."""
    values: dict[tuple[str, str], float] = {}
    for gate in gates:
        if gate.relative and runs:
            values[gate.key] = statistics.median(measure(gate, r)[0] for r in runs)
    return values


def evaluate(
    gates: Iterable[Gate],
    figures: Figures,
    baseline: Baseline,
    run: int,
) -> list[GateResult]:
    """Check every gate on one run. Raises MissingFigure if a figure is absent."""
    results = []
    for gate in gates:
        value, note = measure(gate, figures)
        base = baseline.get(gate.key) if gate.relative else None
        limit = gate.limit(base)
        passed = COMPARISONS[gate.op](value, limit)
        results.append(GateResult(gate.text, run, value, limit, passed, note))
    return results
