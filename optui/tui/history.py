"""The repository's history: main's p99 across sessions, each item's attempts."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState
from textual_plotext import PlotextPlot

from optui.events import ItemState
from optui.gitops import TargetRepo
from optui.history import (
    Attempt,
    MainPoint,
    attempts,
    item_ids,
    main_series,
    states_text,
)
from optui.revert import MergedItem, RevertError, find_merged, merged_items
from optui.sessions import REVERT_KIND, PastSession, all_sessions
from optui.tui.screens import ConfirmScreen, revert_question
from optui.tui.widgets import ACTIVE_MARK, STATE_MARKS

HISTORY_WORKER = "history"
MAX_TICKS = 12
"""The most x tick labels the chart writes; more would run into each other."""
LINE_COLOUR = "cyan"
MERGE_COLOUR = "green"
REVERT_COLOUR = "orange"


@dataclass(frozen=True)
class History:
    """Everything the screen shows, read from the journals and git in one go."""

    sessions: list[PastSession]
    series: list[MainPoint]
    attempts: dict[str, list[Attempt]]
    """Each item's attempts, oldest first; items in the order first seen."""
    merged: dict[str, MergedItem]
    """Each item's latest merge still on main."""

    refusals: dict[str, str]
    """Why each item that has no merge to revert has none."""


def load_history(repo: TargetRepo, main: str) -> History:
    """Read every session and which merges are still on main (a worker's job)."""
    sessions = all_sessions(repo.git_dir)
    merged: dict[str, MergedItem] = {}
    for found in merged_items(repo, main, sessions):
        # merged_items lists the latest first: keep each item's latest merge.
        merged.setdefault(found.item_id, found)
    refusals = {}
    for item_id in item_ids(sessions):
        if item_id not in merged:
            try:
                find_merged(repo, main, item_id, sessions)
            except RevertError as exc:
                refusals[item_id] = str(exc)
    return History(
        sessions,
        main_series(sessions),
        {item_id: attempts(sessions, item_id) for item_id in item_ids(sessions)},
        merged,
        refusals,
    )


def _latest(tried: list[Attempt]) -> Attempt:
    return max(tried, key=lambda attempt: attempt.at)


def _date(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def session_row(session: PastSession) -> tuple[str, str, str, str, str]:
    """A session as the sessions table shows it: id, date, status, items, p99."""
    if session.kind == REVERT_KIND:
        what = ", ".join(f"reverted {r.item_id}" for r in session.reverts)
        return (session.session_id, _date(session.started_at), "revert", what, "")
    states = states_text(session)
    before, after = session.p99_before, session.p99_after
    p99 = ""
    if before is not None and after is not None:
        p99 = f"{before:.1f} → {after:.1f}"
    return (session.session_id, _date(session.started_at), session.status, states, p99)


def attempt_row(attempt: Attempt) -> tuple[str, str, str, str, str]:
    """An attempt as its table shows it: session, date, state, p99 change, why."""
    return (
        attempt.session_id,
        _date(attempt.at),
        attempt.state.value,
        attempt.p99_change or "-",
        attempt.reason,
    )


def _item_prompt(item_id: str, tried: list[Attempt]) -> Text:
    """An item in the list, marked with the state its last attempt ended in."""
    state = _latest(tried).state if tried else ItemState.PENDING
    mark, style = STATE_MARKS.get(state, ACTIVE_MARK)
    return Text.assemble((f"{mark} ", style), item_id)


def tick_label(point: MainPoint) -> str:
    """A point's short x label: the day main was measured, or what moved it."""
    if point.event.startswith("merged "):
        return "merge"
    if point.event.startswith("reverted "):
        return "revert"
    return time.strftime("%m-%d", time.localtime(point.at))


class MainChart(PlotextPlot):
    """Main's p99 through the sessions as a line; merges and reverts marked."""

    def show(self, points: list[MainPoint]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        line = [(x, p.p99) for x, p in enumerate(points) if p.p99 is not None]
        if not line:
            plt.title("main's p99: no baseline measured yet")
            self.refresh()
            return
        # No plotext legend: it sits over the first points; the title tells.
        plt.plot([x for x, _ in line], [y for _, y in line], color=LINE_COLOUR)
        merges = [
            (x, p.p99)
            for x, p in enumerate(points)
            if p.event.startswith("merged ") and p.p99 is not None
        ]
        if merges:
            plt.scatter(
                [x for x, _ in merges],
                [y for _, y in merges],
                marker="●",
                color=MERGE_COLOUR,
            )
        for x, point in enumerate(points):
            if point.event.startswith("reverted "):
                plt.vline(x, REVERT_COLOUR)
        step = math.ceil(len(points) / MAX_TICKS)
        ticks = range(0, len(points), step)
        plt.xticks([float(x) for x in ticks], [tick_label(points[x]) for x in ticks])
        plt.xlim(-0.5, len(points) - 0.5)
        plt.title("main's p99 (ms) across sessions · green ●: merge · orange │: revert")
        self.refresh()


class HistoryScreen(Screen[MergedItem | None]):
    """Every session of the repository; dismissed with a merge to revert, if any."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("u", "revert", "Revert merge"),
        Binding("g", "reload", "Reload"),
    ]

    def __init__(
        self,
        repo: TargetRepo,
        main: str,
        refusal: Callable[[MergedItem], str | None],
    ) -> None:
        """refusal: why the running session cannot revert a merge, or None."""
        super().__init__()
        self.repo = repo
        self.main = main
        self.refusal = refusal
        self.history: History | None = None
        self.chosen: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="history"):
            with Vertical(id="history-side"):
                yield Static("Items", classes="history-heading")
                yield OptionList(id="history-items")
            with Vertical(id="history-main"):
                yield MainChart(id="history-chart")
                yield Static("Sessions", classes="history-heading")
                yield DataTable(id="history-sessions", cursor_type="none")
                yield Static("Reading the sessions…", id="history-item")
                yield DataTable(id="history-attempts", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "optui · history"
        self.sub_title = f"{self.repo.path.name}, branch {self.main}"
        self.query_one("#history-sessions", DataTable).add_columns(
            "session", "started", "status", "items", "main p99 (ms)"
        )
        self.query_one("#history-attempts", DataTable).add_columns(
            "session", "began", "state", "p99 change", "reason"
        )
        self.query_one("#history-items", OptionList).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(
            partial(load_history, self.repo, self.main),
            thread=True,
            name=HISTORY_WORKER,
            group=HISTORY_WORKER,
            description="reading the repository's sessions",
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _on_worker(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name != HISTORY_WORKER:
            return
        if event.state is WorkerState.SUCCESS and isinstance(worker.result, History):
            self.show_history(worker.result)
        elif event.state is WorkerState.ERROR:
            self.query_one("#history-item", Static).update("")
            self.notify(
                f"could not read the history: {worker.error}",
                severity="error",
                markup=False,
            )

    def show_history(self, history: History) -> None:
        self.history = history
        self.query_one(MainChart).show(history.series)
        table = self.query_one("#history-sessions", DataTable)
        table.clear()
        newest = sorted(history.sessions, key=lambda s: s.started_at, reverse=True)
        for session in newest:
            table.add_row(*session_row(session), key=session.session_id)
        items = self.query_one("#history-items", OptionList)
        items.clear_options()
        items.add_options(
            Option(_item_prompt(item_id, tried), id=item_id)
            for item_id, tried in history.attempts.items()
        )
        if not history.attempts:
            self.query_one("#history-item", Static).update("No sessions yet.")
            return
        chosen = self.chosen if self.chosen in history.attempts else None
        items.highlighted = list(history.attempts).index(chosen) if chosen else 0

    @on(OptionList.OptionHighlighted, "#history-items")
    def _on_item(self, event: OptionList.OptionHighlighted) -> None:
        self.chosen = event.option.id
        self._show_attempts()

    def _show_attempts(self) -> None:
        table = self.query_one("#history-attempts", DataTable)
        table.clear()
        if self.history is None or self.chosen is None:
            return
        tried = self.history.attempts.get(self.chosen, [])
        for attempt in sorted(tried, key=lambda a: a.at, reverse=True):
            table.add_row(*attempt_row(attempt))
        merged = self.history.merged.get(self.chosen)
        on_main = (
            f"; merged as {merged.merge[:12]}, on {escape(self.main)}: "
            "[b]u[/b] reverts it"
            if merged
            else ""
        )
        count = f"{len(tried)} attempt" + ("" if len(tried) == 1 else "s")
        self.query_one("#history-item", Static).update(
            f"[b]{escape(self.chosen)}[/b]: {count}{on_main}"
        )

    def action_revert(self) -> None:
        if self.history is None or self.chosen is None:
            self.notify("choose an item first", severity="warning")
            return
        merged = self.history.merged.get(self.chosen)
        if merged is None:
            reason = self.history.refusals.get(self.chosen, "nothing to revert")
            self.notify(reason, severity="warning", markup=False)
            return
        refused = self.refusal(merged)
        if refused is not None:
            self.notify(refused, severity="warning", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.dismiss(merged)

        self.app.push_screen(
            ConfirmScreen(revert_question(merged, self.main)), confirmed
        )

    def action_close(self) -> None:
        self.dismiss(None)
