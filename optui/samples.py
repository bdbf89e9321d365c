"""Figures from k6's sample stream, read fast and in bounded memory.

k6 streams every sample as one JSON object a line (`K6_OUT=json=FILE`), about 14
lines and 3.3 KB per HTTP request. `json.loads` on every line manages about
220,000 lines a second on one core, a sixth of what k6 writes at 100,000
requests a second. So the lines of the few metrics wanted are found with
`bytes.find` on large chunks, by the metric's quoted name, and a line in the
layout k6 writes,

    {"metric":"http_req_duration","type":"Point","data":{"time":"...",
    "value":1.23,"tags":{...}}}

(one line, `,"metadata":{...}` possibly after the tags) is read by slicing at
the places that layout fixes. Any other line holding a wanted metric's name is
decoded with `json.loads`, so a point is never dropped for its layout. Values
go into log-bucketed histograms, so memory stays bounded whatever the number
of samples.

A metric name written with escapes (`"http\\u005freqs"`) is not recognised;
k6 writes metric names plainly.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import repeat
from operator import mul
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Histograms

RELATIVE_ERROR = 0.005
"""The most a histogram's percentile is off the exact one, relative to it."""
MAX_BUCKETS = 4096
"""Buckets a histogram keeps for each sign: 17 decades of values."""
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_INDEX_SCALE = 1 / math.log(_GAMMA)
_LOG_GAMMA = math.log(_GAMMA)
_LOG_MIDPOINT = math.log(2 / (1 + _GAMMA))
_INF = math.inf


def _representative(index: int) -> float:
    """The value that stands for bucket `index`: 2g^i / (1 + g)."""
    try:
        return math.exp(index * _LOG_GAMMA + _LOG_MIDPOINT)
    except OverflowError:
        return _INF


class LatencyHistogram:
    """Counts of values in buckets whose bounds grow by a constant ratio.

    Bucket i holds the positive values in (g^(i-1), g^i], with g = 1.005 / 0.995,
    and stands for them by r_i = 2g^i / (1 + g), which is within 0.5%
    (`RELATIVE_ERROR`) of any value in the bucket. Negative values are kept the
    same way by magnitude, zeros exactly, and so are the smallest and largest
    value.

    The bound on percentiles: `percentile(q)` interpolates linearly between the
    values ranked floor(k) and ceil(k), k = q / 100 * (n - 1), as k6 does. Since
    mapping each value to its bucket's r_i keeps their order, the value of rank
    j read from the buckets is r_i of the bucket holding the exact value of rank
    j, so within 0.5% of it (exact for the first and last ranks, which are the
    kept minimum and maximum). An interpolation between two values each within
    0.5% is within 0.5% of the exact interpolation when both have the same sign
    (within 0.5% of the larger magnitude otherwise). So any percentile reported
    is within 0.5% of the exact one.

    Memory: at most `MAX_BUCKETS` buckets a sign, 230 a decade, so durations from
    a nanosecond to a year fit with room to spare. Past that the buckets of the
    smallest magnitudes are merged, and percentiles that fall among them lose the
    bound; the others keep it.
    """

    __slots__ = ("_count", "_max", "_min", "_negative", "_positive", "_ranks", "_zero")

    def __init__(self) -> None:
        self._positive: Counter[int] = Counter()
        self._negative: Counter[int] = Counter()
        self._zero = 0
        self._count = 0
        self._min = _INF
        self._max = -_INF
        # Cumulative counts and values of the buckets in order, made when a
        # percentile is asked for and kept until a value is added.
        self._ranks: tuple[list[int], list[float]] | None = None

    @property
    def count(self) -> int:
        """How many values were added."""
        return self._count

    @property
    def min(self) -> float | None:
        """The smallest value added, exactly; None when empty."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """The largest value added, exactly; None when empty."""
        return self._max if self._count else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self._count}, min={self.min}, max={self.max})"

    def add(self, value: float) -> None:
        """Count one value; NaN and infinities are refused with ValueError."""
        self.add_many((value,))

    def add_many(self, values: Sequence[float]) -> None:
        """Count many values at once, much faster than one `add` each."""
        if not values:
            return
        low = min(values)
        high = max(values)
        if low > 0.0 and high < _INF:
            # The common case, every step in C.
            _count_into(self._positive, values)
        else:
            positive = [v for v in values if v > 0.0]
            negative = [-v for v in values if v < 0.0]
            zeros = values.count(0.0)
            if not (
                low > -_INF
                and high < _INF
                and len(positive) + len(negative) + zeros == len(values)
            ):
                raise ValueError("a histogram counts finite values only")
            _count_into(self._positive, positive)
            _count_into(self._negative, negative)
            self._zero += zeros
        self._count += len(values)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        self._ranks = None

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value counted by `other` to this histogram."""
        if not other._count:
            return
        self._positive.update(other._positive)
        self._negative.update(other._negative)
        for side in (self._positive, self._negative):
            if len(side) > MAX_BUCKETS:
                _collapse(side)
        self._zero += other._zero
        self._count += other._count
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._ranks = None

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) as k6 ranks it; None when empty."""
        if not 0 <= q <= 100:
            raise ValueError(f"a percentile is between 0 and 100, not {q}")
        if not self._count:
            return None
        rank = q / 100 * (self._count - 1)
        lower = math.floor(rank)
        upper = math.ceil(rank)
        low = self._ranked(lower)
        high = low if upper == lower else self._ranked(upper)
        return low + (high - low) * (rank - lower)

    def draw_percentile(self, q: float, rng: random.Random) -> float | None:
        """The q-th percentile of a bootstrap resample of the values, drawn cheaply.

        Rather than resampling n values, it draws the rank the percentile of a
        resample falls on: the order statistic of rank k among n uniform values
        follows Beta(k + 1, n - k). For large n this matches a real bootstrap.
        """
        if not 0 <= q <= 100:
            raise ValueError(f"a percentile is between 0 and 100, not {q}")
        if not self._count:
            return None
        rank = q / 100 * (self._count - 1)
        level = rng.betavariate(rank + 1, self._count - rank)
        return self.percentile(100 * level)

    def _ranked(self, rank: int) -> float:
        """The value of the given rank (0 for the smallest), from the buckets."""
        if rank <= 0:
            return self._min
        if rank >= self._count - 1:
            return self._max
        ends, values = self._ranks or self._rank_table()
        return values[bisect.bisect_right(ends, rank)]

    def _rank_table(self) -> tuple[list[int], list[float]]:
        """For each bucket in order of value, the rank past its last value and
        the value that stands for it (kept within the smallest and largest)."""
        ends: list[int] = []
        values: list[float] = []
        seen = 0
        buckets = [
            (self._negative[i], -_representative(i))
            for i in sorted(self._negative, reverse=True)
        ]
        if self._zero:
            buckets.append((self._zero, 0.0))
        buckets += [
            (self._positive[i], _representative(i)) for i in sorted(self._positive)
        ]
        for count, value in buckets:
            seen += count
            ends.append(seen)
            values.append(min(max(value, self._min), self._max))
        self._ranks = (ends, values)
        return self._ranks

    def to_dict(self) -> dict[str, Any]:
        """The histogram as JSON-able data: only the buckets in use, compactly.

        `positive` and `negative` list each bucket in use as a pair: its index
        (the first one's in full, the next ones' as the step from the previous)
        and its count.
        """
        data: dict[str, Any] = {"relative_error": RELATIVE_ERROR, "count": self._count}
        if not self._count:
            return data
        data["min"] = self._min
        data["max"] = self._max
        if self._zero:
            data["zero"] = self._zero
        for name, side in (("positive", self._positive), ("negative", self._negative)):
            if side:
                data[name] = _delta_pairs(side)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """The histogram `to_dict` described; ValueError if the data is not one."""
        if not isinstance(data, Mapping):
            raise ValueError("a histogram is a mapping")
        if data.get("relative_error") != RELATIVE_ERROR:
            raise ValueError(
                f"histogram with relative error {data.get('relative_error')!r},"
                f" not {RELATIVE_ERROR}"
            )
        histogram = cls()
        count = _natural(data.get("count"), "histogram count")
        if not count:
            return histogram
        histogram._count = count
        histogram._zero = _natural(data.get("zero", 0), "histogram zero")
        for name, side in (
            ("positive", histogram._positive),
            ("negative", histogram._negative),
        ):
            side.update(_undelta_pairs(data.get(name, []), name))
        low, high = _finite(data.get("min")), _finite(data.get("max"))
        if low is None or high is None or low > high:
            raise ValueError("a histogram needs finite min <= max")
        histogram._min, histogram._max = low, high
        total = (
            histogram._zero
            + sum(histogram._positive.values())
            + sum(histogram._negative.values())
        )
        if total != count:
            raise ValueError(f"histogram buckets hold {total} values, count is {count}")
        return histogram


def _count_into(side: Counter[int], magnitudes: Sequence[float]) -> None:
    """Count positive finite values into their buckets."""
    try:
        indexes = list(
            map(math.ceil, map(mul, map(math.log, magnitudes), repeat(_INDEX_SCALE)))
        )
    except (ValueError, OverflowError):
        # A NaN the minimum and maximum did not show.
        raise ValueError("a histogram counts finite values only") from None
    side.update(indexes)
    if len(side) > MAX_BUCKETS:
        _collapse(side)


def _collapse(side: Counter[int]) -> None:
    """Merge the smallest-magnitude buckets so that `MAX_BUCKETS` remain."""
    indexes = sorted(side)
    excess = len(indexes) - MAX_BUCKETS
    floor = indexes[excess]
    side[floor] += sum(side.pop(index) for index in indexes[:excess])


def _delta_pairs(side: Counter[int]) -> list[int]:
    pairs: list[int] = []
    previous = 0
    for position, index in enumerate(sorted(side)):
        pairs += [index if position == 0 else index - previous, side[index]]
        previous = index
    return pairs


def _undelta_pairs(pairs: object, name: str) -> dict[int, int]:
    if not isinstance(pairs, list) or len(pairs) % 2:
        raise ValueError(f"histogram {name} is not a list of pairs")
    buckets: dict[int, int] = {}
    index = 0
    for position in range(0, len(pairs), 2):
        step, count = pairs[position], pairs[position + 1]
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError(f"histogram {name} has a bucket index {step!r}")
        if position and step <= 0:
            raise ValueError(f"histogram {name} indexes do not increase")
        index = step if position == 0 else index + step
        buckets[index] = _natural(count, f"histogram {name}")
        if not buckets[index]:
            raise ValueError(f"histogram {name} has an empty bucket")
    if len(buckets) > MAX_BUCKETS:
        raise ValueError(f"histogram {name} has more than {MAX_BUCKETS} buckets")
    return buckets


def _natural(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is not a count: {value!r}")
    return value


def _finite(value: object) -> float | None:
    """The value as a float if it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# Figures of a run


@dataclass(frozen=True)
class SecondFigures:
    """What one second of a running test did."""

    second: int
    """Whole seconds since the first sample."""
    requests: int
    """HTTP requests that ended in this second."""
    failures: int
    """Of those, the ones k6 counts as failed (`http_req_failed`)."""
    p99_ms: float | None
    """99th percentile of their durations; None when there were no requests."""


@dataclass
class RunFigures:
    """What one k6 run did, read from its sample stream."""

    requests: int = 0
    """`http_reqs` points: the HTTP requests made."""
    failures: int = 0
    """`http_req_failed` points of a non-zero value: requests k6 counts as failed."""
    durations: LatencyHistogram = field(default_factory=LatencyHistogram)
    """`http_req_duration` (ms) of the points tagged `expected_response: "true"`."""
    all_durations: LatencyHistogram = field(default_factory=LatencyHistogram)
    """`http_req_duration` (ms) of every point."""
    seconds: list[SecondFigures] = field(default_factory=list)
    """Second by second, as `LiveSampler` delivers them."""

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-able data, for the journal."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "durations": self.durations.to_dict(),
            "all_durations": self.all_durations.to_dict(),
            "seconds": {
                "requests": [s.requests for s in self.seconds],
                "failures": [s.failures for s in self.seconds],
                "p99_ms": [s.p99_ms for s in self.seconds],
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunFigures:
        """The figures `to_dict` described; ValueError if the data is not that."""
        try:
            seconds = data["seconds"]
            columns = zip(
                seconds["requests"], seconds["failures"], seconds["p99_ms"], strict=True
            )
            return cls(
                requests=_natural(data["requests"], "requests"),
                failures=_natural(data["failures"], "failures"),
                durations=LatencyHistogram.from_dict(data["durations"]),
                all_durations=LatencyHistogram.from_dict(data["all_durations"]),
                seconds=[
                    SecondFigures(
                        second,
                        _natural(requests, "requests"),
                        _natural(failures, "failures"),
                        None if p99 is None else float(p99),
                    )
                    for second, (requests, failures, p99) in enumerate(columns)
                ],
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not the figures of a run: {error!r}") from None


# Reading the stream

LIVE_METRICS = ("http_reqs", "http_req_failed", "http_req_duration")
"""The metrics `RunFigures` is made of."""
LATE_GRACE_S = 0.1
"""How far into a later second a second stays open.

k6 writes samples from several VUs in batches, a little out of order.
"""
READ_CHUNK = 1 << 20
_MAX_LINE = 16 << 20
"""Longer than any k6 line by far: past it a line is dropped, not buffered."""

_REQUESTS, _FAILURES, _DURATIONS = 1, 2, 3
_DIGITS = tuple(float(digit) for digit in range(10))
_METADATA_KEY = b'},"metadata":{'
_EXPECTED = b'"expected_response":"true"'
_EXPECTED_FIRST = _EXPECTED + b","
_EXPECTED_FIRST_LENGTH = len(_EXPECTED_FIRST)
_EXPECTED_KEY = b'"expected_response":'
_BEFORE_NAME = len(b'\n{"metric":')
_SHARED_PREFIX = 8
"""Metrics whose quoted names start alike are found by one regular expression."""
_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d\d:\d\d)$"
)
_WHOLE_SECONDS = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
_UNSAFE_IN_NEEDLE = re.compile(r'["\\<>&\x00-\x1f\x7f\u2028\u2029]')
"""Characters a JSON writer may escape in more than one way (Go escapes <>&)."""


class _Trend:
    """One (metric, tags) query and the values of the points it matches."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        self.tags = dict(tags)
        self.histogram = LatencyHistogram()
        self.pending: list[float] = []
        # Each wanted tag's name and value as the bytes they are written as; None
        # when those bytes are not certain, and the tags are then decoded.
        needles: list[tuple[bytes, bytes]] | None = []
        for key, value in self.tags.items():
            if _UNSAFE_IN_NEEDLE.search(key) or _UNSAFE_IN_NEEDLE.search(value):
                needles = None
                break
            assert needles is not None
            needles.append(
                (
                    json.dumps(key, ensure_ascii=False).encode() + b":",
                    json.dumps(value, ensure_ascii=False).encode(),
                )
            )
        self.needles = needles

    def flush(self) -> None:
        self.histogram.add_many(self.pending)
        self.pending.clear()


class _Scan:
    """What to do with the points of one metric."""

    def __init__(self, metric: str, *, figures: bool) -> None:
        self.metric = metric
        self.quoted = json.dumps(metric, ensure_ascii=False).encode()
        self.head = b'\n{"metric":' + self.quoted + b',"type":"Point","data":{"time":"'
        self.after_name = len(self.head) - _BEFORE_NAME
        roles = {
            "http_reqs": _REQUESTS,
            "http_req_failed": _FAILURES,
            "http_req_duration": _DURATIONS,
        }
        self.role = roles.get(metric, 0) if figures else 0
        self.trends: list[_Trend] = []


class _Group:
    """Metrics found together: one pattern matches any of their quoted names."""

    def __init__(self, scans: Sequence[_Scan]) -> None:
        names = [scan.quoted for scan in scans]
        shared = _common_prefix(names)
        alternatives = b"|".join(
            b"(" + re.escape(name[len(shared) :]) + b")" for name in names
        )
        self.pattern = re.compile(re.escape(shared) + b"(?:" + alternatives + b")")
        # Indexed by the number of the group that matched; there is no group 0.
        self.scans = [scans[0], *scans]
        self.by_metric = {scan.metric: scan for scan in scans}


def _common_prefix(names: Sequence[bytes]) -> bytes:
    shortest = min(names, key=len)
    for length in range(len(shortest)):
        if any(name[length] != shortest[length] for name in names):
            return shortest[:length]
    return shortest


def _groups(scans: Iterable[_Scan]) -> list[_Group]:
    by_prefix: dict[bytes, list[_Scan]] = {}
    for scan in scans:
        by_prefix.setdefault(scan.quoted[:_SHARED_PREFIX], []).append(scan)
    return [_Group(members) for members in by_prefix.values()]


class SampleReader:
    """Reads k6's sample stream as it comes: feed it bytes, then finish it.

    It makes the run's `RunFigures` (unless `figures` is false) and a histogram
    for each (metric, tags) of `trends`: the values of the metric's points that
    carry all those tags. Lines may be split anywhere between feeds. A feed
    closes and returns the seconds that a point `LATE_GRACE_S` into a later one
    has reached; a point for a second already closed counts in the first one
    still open, so that the seconds add up to the run. Counts and histograms
    are those `json.loads` on every line would give.
    """

    def __init__(
        self,
        trends: Iterable[tuple[str, Mapping[str, str]]] = (),
        *,
        figures: bool = True,
    ) -> None:
        scans: dict[str, _Scan] = {}
        if figures:
            for metric in LIVE_METRICS:
                scans[metric] = _Scan(metric, figures=True)
        self._trends: list[_Trend] = []
        for metric, tags in trends:
            trend = _Trend(tags)
            self._trends.append(trend)
            if metric not in scans:
                scans[metric] = _Scan(metric, figures=figures)
            scans[metric].trends.append(trend)
        self._groups = _groups(scans.values())
        self._live = (
            _Group([scans[metric] for metric in LIVE_METRICS]) if figures else None
        )
        self._figures = RunFigures()
        self._fragment = b""
        self._dropping = False
        self._finished = False
        self._origin: float | None = None
        self._latest = 0.0
        self._next = 0
        self._second_requests: dict[int, int] = {}
        self._second_failures: dict[int, int] = {}
        self._second_durations: dict[int, list[float]] = {}
        self._second_histograms: dict[int, LatencyHistogram] = {}
        self._durations: list[float] = []
        self._expected: list[float] = []

    @property
    def figures(self) -> RunFigures:
        """The run's figures so far (the last seconds come with `finish`)."""
        return self._figures

    @property
    def trends(self) -> list[LatencyHistogram]:
        """One histogram for each (metric, tags) asked for, in order."""
        return [trend.histogram for trend in self._trends]

    def feed(self, chunk: bytes) -> list[SecondFigures]:
        """Take the next bytes of the stream; the seconds they completed."""
        if self._finished:
            raise RuntimeError("a SampleReader takes no bytes once finished")
        first = chunk.find(b"\n")
        if first == -1:
            self._keep(chunk)
            return []
        if self._dropping:
            self._dropping = False
        elif self._fragment or first:
            head = b"".join((b"\n", self._fragment, chunk[: first + 1]))
            self._read(head, 0, len(head))
        self._fragment = b""
        last = chunk.rfind(b"\n")
        if last > first:
            self._read(chunk, first, last + 1)
        self._keep(chunk[last + 1 :])
        return self._complete()

    def finish(self) -> RunFigures:
        """Take a last line without a newline, close every second; the figures."""
        if not self._finished:
            self._finished = True
            if self._fragment.strip() and not self._dropping:
                line = b"".join((b"\n", self._fragment, b"\n"))
                self._read(line, 0, len(line))
            self._fragment = b""
            seconds = (
                self._second_requests.keys()
                | self._second_failures.keys()
                | self._second_histograms.keys()
            )
            if seconds:
                self._take_seconds(max(seconds))
        return self._figures

    def _keep(self, rest: bytes) -> None:
        """Hold the start of a line until its end comes."""
        if self._dropping:
            return
        if len(self._fragment) + len(rest) > _MAX_LINE:
            logger.warning("dropping a k6 sample line longer than %d bytes", _MAX_LINE)
            self._fragment = b""
            self._dropping = True
            return
        self._fragment += rest

    # The lines of a chunk

    def _read(self, buf: bytes, lo: int, hi: int) -> None:
        """Take the whole lines between buf[lo] and buf[hi - 1], both newlines."""
        if self._origin is None and self._live is not None:
            self._find_origin(self._live, buf, lo, hi)
        for group in self._groups:
            self._scan(group, buf, lo, hi)
        if self._durations:
            # Those of points with an unreadable time; the others come with their
            # second's.
            self._figures.all_durations.add_many(self._durations)
            self._durations.clear()
        if self._expected:
            self._figures.durations.add_many(self._expected)
            self._expected.clear()
        for second, values in self._second_durations.items():
            histogram = self._second_histograms.get(second)
            if histogram is None:
                histogram = self._second_histograms[second] = LatencyHistogram()
            histogram.add_many(values)
        self._second_durations.clear()
        for trend in self._trends:
            trend.flush()

    def _scan(self, group: _Group, buf: bytes, lo: int, hi: int) -> None:
        """Take every point of the group's metrics in the lines of buf[lo:hi]."""
        # The loop runs once a point, several hundred thousand times a second:
        # what it uses is local, and a line takes as few calls as it can.
        find = buf.find
        startswith = buf.startswith
        scans = group.scans
        by_metric = group.by_metric
        inf = _INF
        digits = _DIGITS
        expected_first = _EXPECTED_FIRST
        expected = self._expected
        requests = failures = 0
        # The counts of the second of the points in hand, added up once it changes.
        last_stamp = last_base = b""
        base_offset: float | None = None
        latest = self._latest
        first_open = self._next
        second = -1
        second_requests = second_failures = 0
        second_values: list[float] = []
        skip_to = lo
        for match in group.pattern.finditer(buf, lo, hi):
            found = match.start()
            if found < skip_to:
                continue  # the name again, in a line already taken
            scan = scans[match.lastindex or 0]
            start = found - _BEFORE_NAME
            if start < lo or not startswith(scan.head, start):
                # Another layout, or a name in a line's tags: decode the line, and
                # take it for whichever metric it is, as the rest of the line is
                # not looked at.
                start = buf.rfind(b"\n", lo, found)
                skip_to = find(b"\n", found)
                self._take_decoded(by_metric, buf[start + 1 : skip_to])
                continue
            time_at = found + scan.after_name
            end = skip_to = find(b"\n", time_at)
            # The value begins 10 bytes into its key, the tags 9 into theirs.
            value_at = find(b'","value":', time_at, end)
            tags_at = find(b',"tags":{', value_at, end) if value_at != -1 else -1
            close = find(b"}", tags_at, end) if tags_at != -1 else -1
            if (close + 3 != end or not startswith(b"}}}", close)) and (
                close == -1 or not _metadata_follows(buf, close, end)
            ):
                self._take_decoded(by_metric, buf[start + 1 : end])
                continue
            if tags_at == value_at + 11 and 47 < buf[tags_at - 1] < 58:
                # One digit, as every count and rate point: no need to parse.
                value = digits[buf[tags_at - 1] - 48]
            else:
                try:
                    value = float(buf[value_at + 10 : tags_at])
                except ValueError:
                    self._take_decoded(by_metric, buf[start + 1 : end])
                    continue
            role = scan.role
            if role:
                stamp = buf[time_at:value_at]
                if stamp != last_stamp:
                    # A request's points share their time and come together.
                    last_stamp = stamp
                    if stamp[:19] != last_base:
                        last_base = stamp[:19]
                        base_offset = self._offset_of_base(last_base)
                    if (
                        base_offset is not None
                        and stamp[19:20] == b"."
                        and stamp[-1:] == b"Z"
                        and stamp[20:-1].isdigit()
                    ):
                        offset = base_offset + float(stamp[19:-1])
                        if offset > latest:
                            latest = offset
                        # The first open second takes a late point (see _second_at).
                        now = max(int(offset), first_open)
                    else:
                        now = self._second_of_stamp(stamp)
                    if now != second:
                        self._add_second(
                            second, second_requests, second_failures, second_values
                        )
                        second = now
                        second_requests = second_failures = 0
                        second_values = []
                if role == _REQUESTS:
                    requests += 1
                    second_requests += 1
                elif role == _FAILURES:
                    if value:
                        failures += 1
                        second_failures += 1
                elif -inf < value < inf:
                    tags_from = tags_at + 9
                    is_expected: bool | None
                    if startswith(expected_first, tags_from):
                        # The first member: no escape can be in play before it, and
                        # only a repeat of the key could undo it.
                        after = tags_from + _EXPECTED_FIRST_LENGTH
                        is_expected = find(_EXPECTED_KEY, after, close) == -1 or None
                    else:
                        is_expected = _tag_is(
                            buf, tags_from, close, _EXPECTED_KEY, b'"true"'
                        )
                    if is_expected is None:
                        self._take_decoded(by_metric, buf[start + 1 : end])
                        continue
                    second_values.append(value)
                    if is_expected:
                        expected.append(value)
            if scan.trends and -inf < value < inf:
                tags_from = tags_at + 9
                for trend in scan.trends:
                    matched = _matches(buf, tags_from, close, trend)
                    if matched is None:
                        tags = _decode_tags(buf, tags_from, close)
                        matched = _tags_match(tags, trend)
                    if matched:
                        trend.pending.append(value)
        self._add_second(second, second_requests, second_failures, second_values)
        self._latest = max(self._latest, latest)
        self._figures.requests += requests
        self._figures.failures += failures

    def _add_second(
        self, second: int, requests: int, failures: int, durations: list[float]
    ) -> None:
        """Add the counts of points of one second (-1: of an unreadable time)."""
        if second < 0:
            self._durations += durations
            return
        if requests:
            self._second_requests[second] = (
                self._second_requests.get(second, 0) + requests
            )
        if failures:
            self._second_failures[second] = (
                self._second_failures.get(second, 0) + failures
            )
        if durations:
            values = self._second_durations.get(second)
            if values is None:
                self._second_durations[second] = durations
            else:
                values += durations

    def _take_decoded(self, scans: Mapping[str, _Scan], line: bytes) -> None:
        """Take a line read by `json.loads`, if it is a point of a metric wanted."""
        point = _decode_point(line)
        if point is None:
            return
        metric, value, stamp, tags = point
        scan = scans.get(metric)
        if scan is None:
            return
        if scan.role:
            epoch = epoch_seconds(stamp)
            if epoch is None:
                logger.debug("a k6 sample with an unreadable time: %r", stamp)
            second = -1 if epoch is None else self._second_at(epoch)
            if scan.role == _REQUESTS:
                self._figures.requests += 1
                if second >= 0:
                    requests = self._second_requests
                    requests[second] = requests.get(second, 0) + 1
            elif scan.role == _FAILURES:
                if value:
                    self._figures.failures += 1
                    if second >= 0:
                        failures = self._second_failures
                        failures[second] = failures.get(second, 0) + 1
            elif math.isfinite(value):
                if tags.get("expected_response") == "true":
                    self._expected.append(value)
                if second >= 0:
                    self._second_durations.setdefault(second, []).append(value)
                else:
                    self._durations.append(value)
        if math.isfinite(value):
            for trend in scan.trends:
                if _tags_match(tags, trend):
                    trend.pending.append(value)

    # Seconds

    def _find_origin(self, live: _Group, buf: bytes, lo: int, hi: int) -> None:
        """Take the time of the first live point in the lines as the origin."""
        position = lo
        while (match := live.pattern.search(buf, position, hi)) is not None:
            start = buf.rfind(b"\n", lo, match.start())
            end = buf.find(b"\n", match.start())
            point = _decode_point(buf[start + 1 : end])
            if point is not None and point[0] in LIVE_METRICS:
                epoch = epoch_seconds(point[2])
                if epoch is not None:
                    self._origin = epoch
                    return
            position = end

    def _offset_of_base(self, base: bytes) -> float | None:
        """Seconds from the origin to a UTC `YYYY-MM-DDTHH:MM:SS`, if both known."""
        if self._origin is None:
            return None
        whole = _UTC_WHOLE_SECONDS.get(base)
        if whole is None:
            whole = _utc_whole_seconds(base)
        return None if whole is None else whole - self._origin

    def _second_of_stamp(self, stamp: bytes) -> int:
        """The second a point's time falls in, or -1 if the time is unreadable."""
        epoch = _epoch_of_bytes(stamp)
        if epoch is None:
            logger.debug("a k6 sample with an unreadable time: %r", stamp)
            return -1
        return self._second_at(epoch)

    def _second_at(self, epoch: float) -> int:
        if self._origin is None:
            self._origin = epoch
        offset = epoch - self._origin
        if offset > self._latest:
            self._latest = offset
        # A point for a second already delivered counts in the first open one, so
        # that the totals stay those of the run.
        second = math.floor(offset)
        return second if second > self._next else self._next

    def _complete(self) -> list[SecondFigures]:
        """The seconds that a later point has closed, not delivered before."""
        if self._origin is None:
            return []
        return self._take_seconds(math.floor(self._latest - LATE_GRACE_S) - 1)

    def _take_seconds(self, last: int) -> list[SecondFigures]:
        taken = []
        while self._next <= last:
            second = self._next
            histogram = self._second_histograms.pop(second, None)
            if histogram is not None:
                self._figures.all_durations.merge(histogram)
            taken.append(
                SecondFigures(
                    second=second,
                    requests=self._second_requests.pop(second, 0),
                    failures=self._second_failures.pop(second, 0),
                    p99_ms=None if histogram is None else histogram.percentile(99),
                )
            )
            self._next += 1
        self._figures.seconds += taken
        return taken


def _metadata_follows(buf: bytes, close: int, end: int) -> bool:
    """Whether the line goes on after its tags with a metadata object, and ends.

    Four closing braces from the tags' one, one opening: the metadata object
    holds no other object and nothing follows it in `data` or the point.
    """
    return (
        buf.startswith(_METADATA_KEY, close)
        and buf.startswith(b"}}}", end - 3)
        and buf.count(b"}", close, end) == 4
        and buf.count(b"{", close, end) == 1
    )


def _tag_is(buf: bytes, start: int, end: int, key: bytes, value: bytes) -> bool | None:
    """Whether the tags in buf[start:end] hold the tag; None when not certain.

    `key` is the tag's name as a JSON string and a colon, `value` its value as a
    JSON string. With no escaped quote in the tags every quote delimits a
    string, so the key's bytes after a comma (or first) are a member's name.
    A name or value spelt with escapes could hide the tag or fake another
    value: then only `json.loads` can tell.
    """
    if buf.find(b'\\"', start, end) != -1 or buf.find(b"{", start, end) != -1:
        return None
    member = -1
    at = buf.find(key, start, end)
    while at != -1:
        if at == start or buf[at - 1] == 44:  # after a comma
            if member != -1:
                return None  # a repeated name: the last one counts
            member = at
        at = buf.find(key, at + 1, end)
    if member == -1:
        return False if buf.find(b"\\", start, end) == -1 else None
    value_at = member + len(key)
    after = value_at + len(value)
    if buf.startswith(value, value_at) and (after == end or buf[after] == 44):
        return True
    if buf[value_at] != 34:  # not a string, so not the string wanted
        return False
    value_end = buf.find(b'"', value_at + 1, end)
    if value_end == -1:
        return None
    return False if buf.find(b"\\", value_at, value_end) == -1 else None


def _matches(buf: bytes, start: int, end: int, trend: _Trend) -> bool | None:
    """Whether the tags in buf[start:end] hold all the trend's; None if unsure."""
    if trend.needles is None:
        return None
    for key, value in trend.needles:
        found = _tag_is(buf, start, end, key, value)
        if not found:
            return found
    return True


def _decode_tags(buf: bytes, start: int, end: int) -> dict[str, Any]:
    try:
        tags = json.loads(buf[start - 1 : end + 1])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return tags if isinstance(tags, dict) else {}


def _tags_match(tags: Mapping[str, Any], trend: _Trend) -> bool:
    """Whether the point carries every wanted tag with the wanted value."""
    return all(tags.get(tag) == value for tag, value in trend.tags.items())


def _decode_point(line: bytes) -> tuple[str, float, str, dict[str, Any]] | None:
    """(metric, value, time, tags) of a `Point` line, or None for any other line."""
    try:
        document = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.debug("skipping an unreadable k6 sample line: %r", line[:200])
        return None
    if not isinstance(document, dict) or document.get("type") != "Point":
        return None
    data = document.get("data")
    if not isinstance(data, dict):
        return None
    value = data.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    tags = data.get("tags")
    return (
        str(document.get("metric")),
        float(value),
        str(data.get("time", "")),
        tags if isinstance(tags, dict) else {},
    )


def epoch_seconds(text: str) -> float | None:
    """Seconds since the epoch of a k6 sample time such as `...T19:58:31.6595Z`."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    try:
        whole = _whole_epoch_seconds(match["base"], match["zone"])
    except ValueError:
        return None
    fraction = match["fraction"]
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


@lru_cache(maxsize=256)
def _whole_epoch_seconds(base: str, zone: str) -> float:
    offset = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(base + offset).timestamp()


def _epoch_of_bytes(stamp: bytes) -> float | None:
    """`epoch_seconds` of a time as the stream's bytes, quick for UTC times."""
    whole = _UTC_WHOLE_SECONDS.get(stamp[:19])
    if whole is None:
        whole = _utc_whole_seconds(stamp[:19])
    if whole is not None and stamp[-1:] == b"Z":
        if len(stamp) == 20:
            return whole
        if stamp[19:20] == b"." and stamp[20:-1].isdigit():
            return whole + float(stamp[19:-1])
    try:
        return epoch_seconds(stamp.decode("ascii"))
    except UnicodeDecodeError:
        return None


_UTC_WHOLE_SECONDS: dict[bytes, float] = {}
"""Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS` in UTC, as read so far."""


def _utc_whole_seconds(base: bytes) -> float | None:
    if not _WHOLE_SECONDS.match(base):
        return None
    try:
        whole = datetime.fromisoformat(base.decode() + "+00:00").timestamp()
    except ValueError:
        return None
    if len(_UTC_WHOLE_SECONDS) >= 4096:
        _UTC_WHOLE_SECONDS.clear()
    _UTC_WHOLE_SECONDS[base] = whole
    return whole


def read_samples(path: Path, *, chunk_size: int = READ_CHUNK) -> RunFigures:
    """The run's figures from a whole samples file; OSError if it cannot be read."""
    reader = SampleReader()
    _feed_file(reader, path, chunk_size)
    return reader.finish()


def read_trends(
    path: Path,
    trends: Sequence[tuple[str, Mapping[str, str]]],
    *,
    chunk_size: int = READ_CHUNK,
) -> list[LatencyHistogram]:
    """For each (metric, tags), the histogram of its points' values in the file.

    OSError if the file cannot be read.
    """
    reader = SampleReader(trends, figures=False)
    _feed_file(reader, path, chunk_size)
    reader.finish()
    return reader.trends


def _feed_file(reader: SampleReader, path: Path, chunk_size: int) -> None:
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            reader.feed(chunk)
