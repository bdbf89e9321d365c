"""Snapshots of the operator's screens, fed recorded engine events.

The app knows a session only through engine events (frozen dataclasses), handed
to the listener the engine calls: ``app.bridge``. These tests hand it a fixed,
recorded sequence instead of running the engine, a service and k6, so each
screen comes out the same on every run. That is the app's real input boundary,
not a shortcut around it: the listener turns rare events into ``EngineEvent``
messages and buffers output lines, exactly as during a session.

Everything on screen is fixed: the session id, commit ids, figures, the clock
(elapsed times read 0:00) and the terminal size. The repository lives in
tmp_path, so no absolute path may reach the screen; the review pane names only
the log file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from engine_helpers import item, write_plan
from textual.pilot import Pilot
from textual.widgets import Log, Static, TabbedContent

from optui.events import (
    BaselineSet,
    DecisionNeeded,
    Event,
    ItemFinished,
    ItemState,
    LiveFigures,
    Notice,
    OutputLine,
    RunMeasured,
    SessionStarted,
    StateChanged,
    Step,
    StepStarted,
)
from optui.gates import GateResult
from optui.journal import Journal
from optui.plan import Plan
from optui.review import first_error_line
from optui.tui.app import OptuiApp
from optui.tui.screens import DecisionScreen
from optui.tui.widgets import PlanTree

SnapCompare = Callable[..., bool]
"""The snap_compare fixture: app, terminal_size and run_before; True on a match."""
SIZE = (150, 45)
SESSION_ID = "20260101-120000-abcd"
MAIN_SHA = "5d41402abc4b2a76b9719d911017c592a1b2c3d4"
AUDIT_SHA = "7c4a8d09ca3762af61e59520943dc26494f8941b"
FEES_SHA = "e4da3b7fbbce2345d7772b0674a318d5c0ffee01"
FEES_MERGE_SHA = "a87ff679a2f3e71d9181a67b7542122c04a1b2c3"
CACHE_SHA = "1679091c5a880faf6fb5e6087eb1b2dc4daa3d21"
JSON_SHA = "8f14e45fceea167a5a36dedd4bea2543deadbeef"
RUNS = 3

P99 = "http_req_duration{expected_response:true}: p(99)"
P99_GATE = f"{P99} <= baseline * 1.10"
FAILED_GATE = "http_req_failed: rate == 0"
CONSISTENT_GATE = "payments_inconsistency: count == 0"
BASELINE_P99 = (41.8, 42.6, 43.1)
BASELINE = 42.6
"""The median of main's runs, as the engine takes it."""
LIMIT = BASELINE * 1.10
FEES_P99 = (36.4, 35.9, 37.2)

DIFFSTAT = (
    " service/fees.py | 17 ++++++++++++-----\n"
    " 1 file changed, 12 insertions(+), 5 deletions(-)\n"
)
BUILD_LOG = """\
$ make build
docker build -t demo-payments:test .
#0 building with "default" instance using docker driver
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 356B done
#1 DONE 0.0s
#2 [internal] load .dockerignore
#2 transferring context: 2B done
#2 DONE 0.0s
#3 [1/5] FROM docker.io/library/python:3.11-slim
#3 DONE 0.0s
#4 [2/5] COPY requirements.txt .
#4 DONE 0.1s
#5 [3/5] RUN pip install --no-cache-dir -r requirements.txt
#5 CACHED
#6 [4/5] COPY service/ service/
#6 DONE 0.1s
#7 [5/5] RUN python -m compileall -q service
#7 0.412 *** Error compiling 'service/balances.py'...
#7 0.412   File "service/balances.py", line 41
#7 0.412     return self._cache[account_id
#7 0.412                       ^
#7 0.412 SyntaxError: '[' was never closed
#7 0.415 *** Error compiling 'service/ledger.py'...
#7 0.415   File "service/ledger.py", line 88
#7 0.415     balance = self._cache.get(account_id
#7 0.415                              ^
#7 0.415 SyntaxError: '(' was never closed
#7 ERROR: process "/bin/sh -c python -m compileall -q service" exited: code 1
------
 > [5/5] RUN python -m compileall -q service:
0.412 *** Error compiling 'service/balances.py'...
0.412   File "service/balances.py", line 41
0.412     return self._cache[account_id
0.412                       ^
0.412 SyntaxError: '[' was never closed
0.415 *** Error compiling 'service/ledger.py'...
0.415   File "service/ledger.py", line 88
0.415     balance = self._cache.get(account_id
0.415                              ^
0.415 SyntaxError: '(' was never closed
------
Dockerfile:11
--------------------
   9 |     RUN pip install --no-cache-dir -r requirements.txt
  10 |     COPY service/ service/
  11 | >>> RUN python -m compileall -q service
  12 |     EXPOSE 8080
  13 |     CMD ["python", "-m", "service"]
--------------------
ERROR: failed to solve: process "/bin/sh -c python -m compileall -q service"
make: *** [Makefile:6: build] Error 1
"""
BUILD_ERROR_LINE = 18
"""Index in BUILD_LOG of its first error line: the compiler's message."""
TEST_LOG = """\
$ make k6
k6 run --quiet scripts/load.js

  █ THRESHOLDS

    http_req_duration{expected_response:true}
    ✗ 'p(99)<100' p(99)=143.2ms

    http_req_failed
    ✓ 'rate<0.01' rate=0.00%


  █ TOTAL RESULTS

    checks_total.......................: 2714    1356.8/s
    checks_succeeded...................: 100.00% 2714 out of 2714
    checks_failed......................: 0.00%   0 out of 2714

    HTTP
    http_req_duration..................: p(99)=143.2ms count=2714 med=31.7ms
      { expected_response:true }.......: p(99)=143.2ms count=2714 med=31.7ms
    http_req_failed....................: 0.00%  0 out of 2714
    http_reqs..........................: 2714   1356.8/s

    EXECUTION
    iteration_duration.................: p(99)=144.9ms count=2714 med=33.1ms
    iterations.........................: 2714   1356.8/s
    vus................................: 5      min=5        max=5

    NETWORK
    data_received......................: 1.1 MB 546 kB/s
    data_sent..........................: 391 kB 195 kB/s

running (00m02.0s), 0/5 VUs, 2714 complete and 0 interrupted iterations
default ✓ [ 100% ] 5 VUs  2s
time="2026-01-01T12:03:10Z" level=error msg="thresholds on metrics \
'http_req_duration{expected_response:true}' have been crossed"
make: *** [Makefile:14: k6] Error 99
"""
THRESHOLD_LINE = "✗ 'p(99)<100' p(99)=143.2ms"


def kept_ref(item_id: str) -> str:
    return f"refs/optui/failed/{item_id}/{SESSION_ID}"


def gate_results(run: int, p99: float) -> list[GateResult]:
    return [
        GateResult(FAILED_GATE, run, 0.0, 0.0, True),
        GateResult(CONSISTENT_GATE, run, 0.0, 0.0, True),
        GateResult(P99_GATE, run, p99, LIMIT, p99 <= LIMIT),
    ]


def measured(item_id: str | None, run: int, p99: float) -> RunMeasured:
    results = gate_results(run, p99)
    if item_id is None:
        # Main is held only to the gates that do not compare with main.
        results = results[:2]
    figures = {"p99_ms": p99, "med_ms": 31.7, "requests": 2714.0, "failed_rate": 0.0}
    return RunMeasured(item_id, run, RUNS, tuple(results), figures=figures)


def step(
    item_id: str | None, kind: Step, command: str, *lines: str, run: int | None = None
) -> list[Event]:
    """A step's start and its output; its log file is not on screen."""
    events: list[Event] = [StepStarted(item_id, kind, command, None, run)]
    return events + [OutputLine(item_id, kind, line, run) for line in lines]


def baseline(repo: Path) -> list[Event]:
    folder = repo / ".git" / "optui" / "sessions" / SESSION_ID
    events: list[Event] = [
        SessionStarted(SESSION_ID, "Engine test", repo, "main", MAIN_SHA, folder),
        Notice("measuring the baseline on main"),
    ]
    for run, p99 in enumerate(BASELINE_P99, start=1):
        events.append(measured(None, run, p99))
    events.append(BaselineSet({P99: BASELINE}, "measured on main", MAIN_SHA))
    return events


def applying(item_id: str) -> StateChanged:
    return StateChanged(item_id, ItemState.APPLYING, f"cherry-pick demo/{item_id}")


def started(item_id: str, sha: str) -> list[Event]:
    """An item applied, built, deployed and ready for its first load test."""
    return [
        applying(item_id),
        Notice(f"applied as {sha[:12]}", item_id=item_id),
        StateChanged(item_id, ItemState.BUILDING),
        *step(
            item_id,
            Step.BUILD,
            "make build",
            "docker build -t demo-payments:test .",
            "#7 [5/5] RUN python -m compileall -q service",
            "#7 DONE 0.6s",
            "#8 naming to docker.io/library/demo-payments:test done",
        ),
        StateChanged(item_id, ItemState.DEPLOYING),
        *step(
            item_id,
            Step.UP,
            "make up",
            "docker run -d --name demo-payments --network host demo-payments:test",
            "0c1f5e2d9a7b",
        ),
        StateChanged(item_id, ItemState.WAITING_READY),
        *step(item_id, Step.READY, "command make health", '{"status": "ok"}'),
    ]


def load_test(item_id: str, run: int) -> list[Event]:
    return [
        StateChanged(item_id, ItemState.TESTING, f"run {run} of {RUNS}", run, RUNS),
        *step(item_id, Step.TEST, "make k6", "k6 run --quiet scripts/load.js", run=run),
    ]


def failed_audit() -> list[Event]:
    """audit-every-request, slower than main on its first run."""
    run = measured("audit-every-request", 1, 58.3)
    reason = run.results[2].describe()
    kept = kept_ref("audit-every-request")
    return [
        *started("audit-every-request", AUDIT_SHA),
        *load_test("audit-every-request", 1),
        run,
        StateChanged("audit-every-request", ItemState.TEARING_DOWN),
        StateChanged("audit-every-request", ItemState.FAILED, reason),
        Notice(f"commit kept as {kept}", item_id="audit-every-request"),
        ItemFinished("audit-every-request", ItemState.FAILED, reason, AUDIT_SHA, kept),
    ]


def mid_session(repo: Path) -> list[Event]:
    """precompute-fees in its second load test, after audit-every-request failed."""
    return [
        *baseline(repo),
        *failed_audit(),
        *started("precompute-fees", FEES_SHA),
        *load_test("precompute-fees", 1),
        measured("precompute-fees", 1, FEES_P99[0]),
        *load_test("precompute-fees", 2),
        *(
            LiveFigures("precompute-fees", 2, second, 1350, 0, p99)
            for second, p99 in enumerate((35.2, 37.9, 36.1), start=1)
        ),
    ]


def awaiting_decision(repo: Path) -> list[Event]:
    """precompute-fees passed all three runs and waits for the operator."""
    runs = [
        measured("precompute-fees", run, p99) for run, p99 in enumerate(FEES_P99, 1)
    ]
    results = tuple(result for run in runs for result in run.results)
    return [
        *mid_session(repo),
        runs[1],
        *load_test("precompute-fees", 3),
        runs[2],
        StateChanged("precompute-fees", ItemState.TEARING_DOWN),
        StateChanged(
            "precompute-fees", ItemState.AWAITING_DECISION, "every gate passed"
        ),
        DecisionNeeded("precompute-fees", results, DIFFSTAT),
    ]


async def deliver(pilot: Pilot[int], events: Iterable[Event]) -> None:
    """Hand the events to the app's engine listener, in order, and let it settle."""
    app = pilot.app
    assert isinstance(app, OptuiApp)
    for event in events:
        app.bridge(event)
    await pilot.pause()


@pytest.fixture
def plan(make_repo: Callable[[str], Path], tmp_path: Path) -> Plan:
    repo = make_repo("payments")
    apply = "cherry-pick: demo/{}"
    return write_plan(
        tmp_path,
        repo,
        item("audit-every-request", apply.format("audit-every-request"))
        + item("precompute-fees", apply.format("precompute-fees"))
        + item("cache-balances", apply.format("cache-balances"))
        + item("fast-json", apply.format("fast-json"))
        + item(
            "gzip-responses",
            apply.format("gzip-responses"),
            extra="deferred: later\n",
        ),
        runs=RUNS,
        p99_gate=P99_GATE,
    )


def new_app(plan: Plan) -> OptuiApp:
    return OptuiApp(plan, start=False, clock=lambda: 0.0)


def test_main_screen_mid_session(plan: Plan, snap_compare: SnapCompare) -> None:
    assert plan.repo is not None
    events = mid_session(plan.repo)

    async def run_before(pilot: Pilot[int]) -> None:
        await deliver(pilot, events)

    assert snap_compare(new_app(plan), terminal_size=SIZE, run_before=run_before)


def test_decision_dialog(plan: Plan, snap_compare: SnapCompare) -> None:
    assert plan.repo is not None
    events = awaiting_decision(plan.repo)
    app = new_app(plan)

    async def run_before(pilot: Pilot[int]) -> None:
        await deliver(pilot, events)
        assert isinstance(app.screen, DecisionScreen)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def journal_attempt(journal: Journal, item_id: str, states: list[str]) -> None:
    for state in states:
        detail = f"cherry-pick demo/{item_id}" if state == "applying" else ""
        journal.append("state", item=item_id, state=state, detail=detail)


def journal_step(
    journal: Journal,
    item_id: str,
    kind: Step,
    text: str,
    *,
    run: int | None = None,
    ok: bool = True,
) -> None:
    """One step as the engine records it: its log on disk, then its record."""
    log = journal.step_log(item_id, kind.value, run)
    log.write_text(text)
    message = "exited with status 0" if ok else "exited with status 2"
    journal.append(
        "step",
        item=item_id,
        step=kind.value,
        run=run,
        ok=ok,
        message=message,
        seconds=2.5,
        log=str(log),
    )


def journal_run(journal: Journal, run: RunMeasured) -> None:
    journal.append(
        "run",
        item=run.item_id,
        run=run.run,
        error=run.error,
        figures=run.figures,
        results=[dataclasses.asdict(r) for r in run.results],
        summary=None,
    )


def journal_end(journal: Journal, item_id: str, state: str, reason: str) -> None:
    journal.append("state", item=item_id, state=state, detail=reason)
    sha = CACHE_SHA if item_id == "cache-balances" else JSON_SHA
    journal.append(
        "item",
        item=item_id,
        state=state,
        reason=reason,
        commit=sha,
        kept_ref=kept_ref(item_id),
    )


BUILD_REASON = "could not measure: build ('make build') exited with status 2"
JSON_RUNS = (measured("fast-json", 1, 39.4), measured("fast-json", 2, 143.2))
JSON_REASON = JSON_RUNS[1].results[2].describe()


def failed_session(repo: Path) -> list[Event]:
    """A session in which cache-balances did not build and fast-json was slower.

    Its journal and logs are written where the engine keeps them; the returned
    events are what the app saw of it.
    """
    journal = Journal.create(repo / ".git", SESSION_ID)
    journal.append(
        "baseline", values={P99: BASELINE}, source="measured on main", main_sha=MAIN_SHA
    )
    journal.append(
        "item",
        item="audit-every-request",
        state="skipped",
        reason="skipped by the operator",
        commit=None,
        kept_ref=None,
    )

    journal_attempt(journal, "cache-balances", ["applying", "building"])
    journal_step(journal, "cache-balances", Step.BUILD, BUILD_LOG, ok=False)
    journal_attempt(journal, "cache-balances", ["tearing down"])
    journal_step(journal, "cache-balances", Step.DOWN, "$ make down\n")
    journal_end(journal, "cache-balances", "error", BUILD_REASON)

    journal_attempt(journal, "fast-json", ["applying", "building"])
    journal_step(journal, "fast-json", Step.BUILD, "$ make build\n")
    journal_attempt(journal, "fast-json", ["deploying"])
    journal_step(journal, "fast-json", Step.UP, "$ make up\n")
    journal_attempt(journal, "fast-json", ["waiting until ready"])
    journal_step(journal, "fast-json", Step.READY, "$ command make health\n")
    for run in JSON_RUNS:
        journal_attempt(journal, "fast-json", ["testing"])
        passed = run.passed
        text = "$ make k6\n" if passed else TEST_LOG
        journal_step(journal, "fast-json", Step.TEST, text, run=run.run, ok=passed)
        journal_run(journal, run)
    journal_attempt(journal, "fast-json", ["tearing down"])
    journal_step(journal, "fast-json", Step.DOWN, "$ make down\n")
    journal_end(journal, "fast-json", "failed", JSON_REASON)

    return [
        *baseline(repo),
        ItemFinished(
            "audit-every-request", ItemState.SKIPPED, "skipped by the operator"
        ),
        applying("precompute-fees"),
        *(measured("precompute-fees", run, p99) for run, p99 in enumerate(FEES_P99, 1)),
        ItemFinished(
            "precompute-fees",
            ItemState.MERGED,
            f"merged as {FEES_MERGE_SHA[:12]}",
            FEES_MERGE_SHA,
        ),
        applying("cache-balances"),
        StateChanged("cache-balances", ItemState.BUILDING),
        ItemFinished(
            "cache-balances",
            ItemState.ERROR,
            BUILD_REASON,
            CACHE_SHA,
            kept_ref("cache-balances"),
        ),
        applying("fast-json"),
        *JSON_RUNS,
        ItemFinished(
            "fast-json",
            ItemState.FAILED,
            JSON_REASON,
            JSON_SHA,
            kept_ref("fast-json"),
        ),
    ]


async def review(pilot: Pilot[int], events: list[Event], item_id: str) -> None:
    """The operator picks a failed item in the tree and opens its review."""
    await deliver(pilot, events)
    app = pilot.app
    app.query_one(PlanTree).select_item(item_id)
    await pilot.pause()
    await pilot.press("4")
    await pilot.pause()


@pytest.mark.parametrize("item_id", ["cache-balances", "fast-json"])
def test_failure_review(plan: Plan, item_id: str, snap_compare: SnapCompare) -> None:
    assert plan.repo is not None
    events = failed_session(plan.repo)

    async def run_before(pilot: Pilot[int]) -> None:
        await review(pilot, events, item_id)

    assert snap_compare(new_app(plan), terminal_size=SIZE, run_before=run_before)


@pytest.mark.asyncio
async def test_review_names_the_cause_and_scrolls_to_the_error(plan: Plan) -> None:
    assert plan.repo is not None
    events = failed_session(plan.repo)
    assert first_error_line(BUILD_LOG.splitlines()) == BUILD_ERROR_LINE
    app = new_app(plan)
    async with app.run_test(size=SIZE) as pilot:
        await review(pilot, events, "fast-json")
        assert app.query_one(TabbedContent).active == "review-tab"
        summary = str(app.query_one("#review-summary", Static).render())
        assert f"run 2: {P99_GATE} measured 143.2, limit 46.86" in summary
        assert f"k6: {THRESHOLD_LINE}" in summary
        assert "log: test-run2.log" in summary
        assert str(plan.repo) not in summary

        await review(pilot, [], "cache-balances")
        summary = str(app.query_one("#review-summary", Static).render())
        assert "step that failed: build" in summary
        assert f"log: build.log, from line {BUILD_ERROR_LINE + 1}" in summary
        log = app.query_one("#review-log", Log)
        assert log.lines[BUILD_ERROR_LINE].startswith("#7 0.412 *** Error compiling")
        assert log.scroll_offset.y == BUILD_ERROR_LINE
