"""The operator's app: watches the engine work and sends it decisions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, TabbedContent, TabPane, Tree
from textual.worker import Worker, WorkerState

from optui.engine import Engine
from optui.events import (
    FINAL_STATES,
    BaselineSet,
    ContainerFigures,
    Decision,
    DecisionNeeded,
    ItemFinished,
    ItemState,
    ManualEditNeeded,
    Notice,
    Reverted,
    RunMeasured,
    SessionFinished,
    StateChanged,
    StepStarted,
)
from optui.gitops import TargetRepo
from optui.plan import Plan
from optui.report import FORMATS, write_reports
from optui.revert import MergedItem, RevertError, find_merged
from optui.review import Review, find_review
from optui.sessions import PastSession, replay
from optui.tui.bridge import EngineBridge, EngineEvent
from optui.tui.history import HistoryScreen
from optui.tui.screens import (
    ConfirmScreen,
    DecisionScreen,
    HelpScreen,
    ManualScreen,
    ResumeScreen,
    SearchScreen,
    revert_question,
)
from optui.tui.view import (
    K6_PANE,
    P99_KEY,
    PANE_LINES,
    STEPS_PANE,
    SessionView,
    pane_of,
    shown_lines,
)
from optui.tui.widgets import (
    ContainersPane,
    ItemDetails,
    LatencyPane,
    PlanTree,
    ReviewPane,
)

DRAIN_SECONDS = 0.1
"""How often streamed output is written to the panes, in one batch."""
REVIEWABLE = {
    ItemState.FAILED,
    ItemState.INCONCLUSIVE,
    ItemState.ERROR,
    ItemState.REJECTED,
}
RETESTABLE = FINAL_STATES - {ItemState.MERGED, ItemState.REVERTED}
"""Finished items the engine tries again: not one that landed on main."""
TABS = ("steps-tab", "k6-tab", "latency-tab", "review-tab", "containers-tab")
SESSION_ACTIONS = {
    "skip",
    "defer",
    "bring_back",
    "test_again",
    "answer",
    "merge",
    "reject",
    "pause",
    "abort",
    "follow",
    "revert",
    "search",
    "find_next",
    "tab",
    "history",
}
"""The keys of the main screen, which another full screen (history) does not take."""
REPORT_WORKER = "report"
MERGE_WORKER = "find-merge"


class OptuiApp(App[int]):
    """One session of a plan, supervised."""

    CSS_PATH = "app.tcss"
    TITLE = "optui"
    BINDINGS = [
        Binding("s", "skip", "Skip"),
        Binding("d", "defer", "Defer"),
        Binding("b", "bring_back", "Bring back"),
        Binding("t", "test_again", "Test again"),
        Binding("a", "answer", "Answer"),
        Binding("m", "merge", "Merge"),
        Binding("r", "reject", "Reject"),
        Binding("p", "pause", "Pause/resume"),
        Binding("x", "abort", "Abort"),
        Binding("f", "follow", "Follow running"),
        Binding("u", "revert", "Revert merge"),
        Binding("w", "report", "Report", show=False),
        Binding("h", "history", "History", show=False),
        Binding("slash", "search", "Find"),
        Binding("n", "find_next", "Next match", show=False),
        Binding("1", "tab(0)", "Steps", show=False),
        Binding("2", "tab(1)", "k6", show=False),
        Binding("3", "tab(2)", "Latency", show=False),
        Binding("4", "tab(3)", "Review", show=False),
        Binding("5", "tab(4)", "Containers", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        plan: Plan,
        *,
        engine: Engine | None = None,
        offer: PastSession | None = None,
        start: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """offer: an unfinished session to offer to resume before starting."""
        super().__init__()
        self.plan = plan
        self.offer = offer
        self.engine = engine or Engine(plan, linger=True)
        self.session = SessionView(plan, clock=clock)
        self.bridge = EngineBridge(self)
        self.engine.subscribe(self.bridge)
        self.start_engine = start
        self.clock = clock
        self.selected: str | None = None
        """The item the operator chose in the tree; None while following the engine."""
        self.shown: str | None = None
        """The item whose logs and figures the panes show (None: main's baseline)."""
        self.search_text = ""
        self._search_from = 0
        self.found_line: int | None = None
        """The line of the last match in the log on display."""
        self._exit_when_done = False
        self._asking: str | None = None
        self._closing = False
        self._logs: dict[str, Log] = {}
        self._reverting: dict[str, str] = {}
        """The merges whose revert the engine was asked for: item by merge commit."""

    # Layout.

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield PlanTree(self.plan)
            with Vertical(id="right"):
                yield ItemDetails(id="details")
                with TabbedContent(id="panes"):
                    with TabPane("Steps", id="steps-tab"):
                        yield Log(id="steps-log", max_lines=PANE_LINES)
                    with TabPane("k6", id="k6-tab"):
                        yield Log(id="k6-log", max_lines=PANE_LINES)
                    with TabPane("Latency", id="latency-tab"):
                        yield LatencyPane(id="latency")
                    with TabPane("Review", id="review-tab"):
                        yield ReviewPane(id="review")
                    if self.plan.docker is not None:
                        with TabPane("Containers", id="containers-tab"):
                            yield ContainersPane(id="containers")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"optui · {self.plan.name}"
        self._logs = {
            STEPS_PANE: self.query_one("#steps-log", Log),
            K6_PANE: self.query_one("#k6-log", Log),
        }
        self.query_one(PlanTree).build(self.session)
        self.query_one(PlanTree).focus()
        first = next(self.plan.items(), None)
        if first is not None:
            self._show(first.id)
        self._update_header()
        self.set_interval(DRAIN_SECONDS, self._drain)
        self.set_interval(1.0, self._update_header)
        if self.offer is not None:
            self.push_screen(ResumeScreen(self.offer.describe()), self._on_offer)
        elif self.start_engine:
            self._start_engine()

    def _on_offer(self, answer: str | None) -> None:
        if answer not in ("resume", "fresh"):
            self.exit(0)
            return
        if answer == "resume":
            self.engine = Engine(self.plan, linger=True, resume=self.offer)
        else:
            self.engine = Engine(self.plan, linger=True, fresh=True)
        self.engine.subscribe(self.bridge)
        if self.start_engine:
            self._start_engine()

    def _start_engine(self) -> None:
        self.run_worker(
            self.engine.run,
            thread=True,
            name="engine",
            group="engine",
            description=f"session of {self.plan.name}",
            exit_on_error=False,
        )

    def on_unmount(self) -> None:
        self._closing = True
        # However the app ends, the engine stops its step and cleans up the
        # repository before the process exits.
        if self.session.started is None or self.session.finished is None:
            self.engine.abort()

    # Engine events.

    @on(EngineEvent)
    def _on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self._drain()
        self.session.apply(event)
        if isinstance(event, StateChanged | ItemFinished):
            item = self.plan.item(event.item_id)
            self.query_one(PlanTree).refresh_item(item, self.session.items[item.id])
            if (
                self.selected is None and event.state.active
            ) or event.item_id == self.shown:
                self._show(event.item_id)
        baseline_step = isinstance(event, StepStarted) and event.item_id is None
        if baseline_step and self.selected is None and self.shown is not None:
            self._show(None)
        if (
            isinstance(event, RunMeasured)
            and event.item_id is None
            and self.shown is None
        ):
            self._show(None)
        if isinstance(event, BaselineSet):
            self._baseline_moved(event)
        if isinstance(event, ContainerFigures):
            self.query_one(ContainersPane).update_stack(self.session)
            return
        if isinstance(event, ItemFinished) and event.item_id == self.shown:
            self._show_review(event.item_id)
        if isinstance(event, DecisionNeeded):
            self.bell()
            self.notify(f"{event.item_id} passed every gate: your decision", timeout=10)
            self._ask(event.item_id)
        elif isinstance(event, ManualEditNeeded):
            self.bell()
            self.push_screen(
                ManualScreen(
                    self.plan.item(event.item_id), event.instructions, str(event.repo)
                ),
                lambda done: self._manual_answer(event.item_id, done),
            )
        elif isinstance(event, Notice) and event.level != "info":
            self.notify(event.message, severity=_severity(event.level), timeout=8)
        elif isinstance(event, Reverted):
            self._reverted(event)
        elif isinstance(event, SessionFinished):
            self._session_finished(event)
        self._update_header()
        self.refresh_bindings()

    def _reverted(self, event: Reverted) -> None:
        """Forget a queued revert once the engine has made it, or could not."""
        self._reverting.pop(event.merge, None)
        if event.commit is None:
            self.notify(
                f"revert of {event.item_id}: {event.error}",
                title="Not reverted",
                severity="error",
                timeout=10,
                markup=False,
            )
            return
        self.notify(
            f"{event.item_id}: {event.merge[:12]} undone on {self.plan.main} by "
            f"{event.commit[:12]}; measuring {self.plan.main} again",
            title="Reverted",
            timeout=8,
            markup=False,
        )

    def _baseline_moved(self, event: BaselineSet) -> None:
        p99 = event.values.get(P99_KEY)
        if p99 is not None and not event.source.startswith("measured"):
            self.notify(f"baseline p99 is now {p99:.1f} ms ({event.source})", timeout=8)
        if self.shown is None:
            self._show(None)

    def _session_finished(self, event: SessionFinished) -> None:
        if event.error:
            self.notify(
                event.error, title="Session stopped", severity="error", timeout=30
            )
        elif event.aborted:
            self.notify("session aborted; the repository is back on main")
        if self._exit_when_done:
            self.exit(1 if event.error else 0)

    def _drain(self) -> None:
        """Write what streamed in since the last tick, one batch per pane."""
        lines, figures = self.bridge.drain()
        if self._closing:
            return
        if lines:
            self.session.add_lines(lines)
            batches: dict[str, list[str]] = {STEPS_PANE: [], K6_PANE: []}
            for line in lines:
                if line.item_id == self.shown:
                    batches[pane_of(line.step)].append(line.line)
            for pane, batch in batches.items():
                if batch:
                    # A pane keeps PANE_LINES at most: write no more than that.
                    self._logs[pane].write_lines(shown_lines(batch[-PANE_LINES:]))
        if figures:
            self.session.add_figures(figures)
            self.query_one(LatencyPane).update_live(self.session)

    # What the panes show.

    def _show(self, item_id: str | None) -> None:
        changed = item_id != self.shown
        self.shown = item_id
        if self.selected is None and item_id is not None:
            # Following the engine: the tree's cursor stays on what is shown.
            self.query_one(PlanTree).select_item(item_id)
        details = self.query_one(ItemDetails)
        if item_id is None:
            details.show_baseline(self.session)
        else:
            item = self.plan.item(item_id)
            details.show(item, self.session.items[item_id], self.session)
        if changed:
            for pane, log in self._logs.items():
                log.clear()
                log.write_lines(shown_lines(self.session.log(item_id, pane)))
            self._show_review(item_id)
        self.query_one(LatencyPane).update_runs(item_id, self.session)

    def _show_review(self, item_id: str | None) -> None:
        review: Review | None = None
        view = self.session.items.get(item_id) if item_id else None
        if item_id is not None and (
            view is None or view.state in REVIEWABLE or view.state is ItemState.PENDING
        ):
            review = find_review(self.engine.repo.git_dir, item_id)
        self.query_one(ReviewPane).show(review, item_id)

    @on(Tree.NodeHighlighted)
    def _on_highlight(self, event: Tree.NodeHighlighted[str]) -> None:
        if event.node.data is None:
            return
        if self.shown != event.node.data or self.selected is not None:
            self.selected = event.node.data
        self._show(event.node.data)
        if self.session.items[event.node.data].state in REVIEWABLE:
            self.query_one(TabbedContent).active = "review-tab"
        self.refresh_bindings()

    @on(Tree.NodeSelected)
    def _on_select(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data is not None and self._awaiting(event.node.data):
            self._ask(event.node.data)

    def _update_header(self) -> None:
        session = self.session
        parts = []
        base = session.baseline_p99
        parts.append(
            f"baseline p99 {base:.1f} ms" if base is not None else "no baseline yet"
        )
        elapsed = int(self.clock() - session.step_started)
        if session.idle:
            parts.append("every item has ended: bring one back, or quit")
        else:
            parts.append(f"{session.step} · {elapsed // 60}:{elapsed % 60:02d}")
        if self.engine.paused:
            parts.append("PAUSED")
        self.sub_title = " · ".join(parts)

    # Decisions.

    def _target(self) -> str | None:
        """The item a key acts on: the one selected, else the running one."""
        return self.selected or self.engine.current or self.shown

    def _awaiting(self, item_id: str | None) -> bool:
        if item_id is None:
            return False
        return self.session.items[item_id].decision is not None

    def _waiting_item(self) -> str | None:
        target = self._target()
        if self._awaiting(target):
            return target
        for item_id, view in self.session.items.items():
            if view.decision is not None:
                return item_id
        return None

    def _ask(self, item_id: str) -> None:
        question = self.session.items[item_id].decision
        if question is None or self._asking is not None:
            return
        self._asking = item_id

        def answered(choice: object) -> None:
            self._asking = None
            if choice is not None and self._awaiting(item_id):
                assert isinstance(choice, Decision)
                self.engine.decide(item_id, choice)

        self.push_screen(
            DecisionScreen(
                self.plan.item(item_id), question, self.session.baseline_p99
            ),
            answered,
        )

    def _manual_answer(self, item_id: str, done: bool | None) -> None:
        if done:
            self.engine.manual_done(item_id)
        else:
            self.engine.skip(item_id, "skipped by the operator instead of editing")

    # Actions.

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in SESSION_ACTIONS and self._covered():
            # A full screen over the main one (the history) passes the app's
            # keys on; they must not act on a session the operator cannot see.
            return False
        target = self._target()
        state = self.session.items[target].state if target else None
        if action in ("merge", "reject", "answer"):
            return self._waiting_item() is not None
        if action in ("skip", "defer"):
            return (
                state is not None
                and not state.final
                and state is not ItemState.DEFERRED
            )
        if action == "bring_back":
            return state in (ItemState.DEFERRED, ItemState.SKIPPED)
        if action == "test_again":
            return state in RETESTABLE or self._awaiting(target)
        if action == "revert":
            return self._revertable(target)
        if action == "pause":
            return self.session.running
        if action == "abort":
            return self.session.running and not self.session.idle
        if action == "follow":
            return self.selected is not None
        return True

    def action_skip(self) -> None:
        if (target := self._target()) is not None:
            self.engine.skip(target)

    def action_defer(self) -> None:
        if (target := self._target()) is not None:
            self.engine.defer(target)

    def action_bring_back(self) -> None:
        if (target := self._target()) is not None:
            self.engine.restore(target)

    def action_test_again(self) -> None:
        target = self._target()
        if target is None:
            return
        if self._awaiting(target):
            self.engine.decide(target, Decision.RERUN)
        else:
            self.engine.retry(target)

    def action_answer(self) -> None:
        if (waiting := self._waiting_item()) is not None:
            self._ask(waiting)

    def action_merge(self) -> None:
        self._decide("merge")

    def action_reject(self) -> None:
        self._decide("reject")

    def _decide(self, choice: str) -> None:
        if (waiting := self._waiting_item()) is not None:
            self.engine.decide(waiting, Decision(choice))

    def action_pause(self) -> None:
        if self.engine.paused:
            self.engine.resume()
        else:
            self.engine.pause()
        self._update_header()

    def action_abort(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.engine.abort()

        self.push_screen(
            ConfirmScreen(
                "Abort the session? The running step is stopped and the repository "
                "is left clean on main."
            ),
            confirmed,
        )

    def action_follow(self) -> None:
        self.selected = None
        self._show(self.engine.current)
        self.refresh_bindings()

    def _covered(self) -> bool:
        """Whether a full screen, not a dialog, hides the main one."""
        return self.screen is not self.default_screen and not self.screen.is_modal

    def _revertable(self, item_id: str | None) -> bool:
        """Whether the item merged in this session and its revert can be queued."""
        if item_id is None or not self.session.running:
            return False
        view = self.session.items[item_id]
        return view.state is ItemState.MERGED and view.commit not in self._reverting

    def action_revert(self) -> None:
        target = self._target()
        if target is None or not self._revertable(target):
            # The key shows only when it applies; the command palette always does.
            self.notify(
                "select an item merged in this session to revert it "
                "(earlier merges: the history, key h)",
                severity="warning",
            )
            return
        self.run_worker(
            partial(_find_merge, self.engine.repo, self.plan.main, target),
            thread=True,
            name=MERGE_WORKER,
            group=MERGE_WORKER,
            description=f"finding the merge of {target}",
            exit_on_error=False,
        )

    def _merge_found(self, found: MergedItem | str) -> None:
        if isinstance(found, str):
            self.notify(found, severity="warning", markup=False)
            return
        refused = self.revert_refusal(found)
        if refused is not None:
            self.notify(refused, severity="warning", markup=False)
            return
        self.push_screen(
            ConfirmScreen(revert_question(found, self.plan.main)),
            lambda yes: self._queue_revert(found if yes else None),
        )

    def revert_refusal(self, merged: MergedItem) -> str | None:
        """Why this session cannot revert a merge now, or None if it can."""
        if not self.session.running:
            return (
                f"no session is running to revert {merged.item_id}: quit, then "
                f"run 'optui revert {merged.item_id}'"
            )
        if merged.merge in self._reverting:
            return f"the revert of {merged.item_id} is already under way"
        return None

    def _queue_revert(self, merged: MergedItem | None) -> None:
        if merged is None:
            return
        refused = self.revert_refusal(merged)
        if refused is not None:
            self.notify(refused, severity="warning", markup=False)
            return
        self._reverting[merged.merge] = merged.item_id
        self.engine.revert(merged)
        self.notify(
            f"{merged.item_id}: its merge {merged.merge[:12]} is reverted once no "
            "item is under way",
            timeout=6,
            markup=False,
        )
        self.refresh_bindings()

    def action_history(self) -> None:
        self.push_screen(
            HistoryScreen(self.engine.repo, self.plan.main, self.revert_refusal),
            self._queue_revert,
        )

    def action_report(self) -> None:
        journal = self.engine.journal
        if journal is None:
            why = (
                "the session was refused before it began"
                if self.session.finished is not None
                else "the session has not begun yet"
            )
            self.notify(f"no report to write: {why}", severity="warning")
            return
        self.run_worker(
            partial(write_session_report, journal.folder),
            thread=True,
            name=REPORT_WORKER,
            group=REPORT_WORKER,
            description="writing the session's report",
            exit_on_error=False,
        )

    def _report_written(self, written: tuple[Path, list[Path]] | None) -> None:
        if written is None:
            self.notify("the session's journal is still empty", severity="warning")
            return
        folder, files = written
        self.notify(
            f"{folder}: {', '.join(path.name for path in files)}",
            title="Report written",
            timeout=10,
            markup=False,
        )

    @on(Worker.StateChanged)
    def _on_worker(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name not in (REPORT_WORKER, MERGE_WORKER):
            return
        if event.state is WorkerState.ERROR:
            self.notify(
                f"{worker.description}: {worker.error}",
                title="Failed",
                severity="error",
                markup=False,
            )
        elif event.state is WorkerState.SUCCESS and worker.name == REPORT_WORKER:
            self._report_written(worker.result)
        elif event.state is WorkerState.SUCCESS and worker.result is not None:
            self._merge_found(worker.result)

    def action_tab(self, index: int) -> None:
        if index < len(TABS) - 1 or self.plan.docker is not None:
            self.query_one(TabbedContent).active = TABS[index]

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_search(self) -> None:
        def found(text: str | None) -> None:
            if text:
                self.search_text = text
                self._search_from = 0
                self.action_find_next()

        self.push_screen(SearchScreen(), found)

    def action_find_next(self) -> None:
        if not self.search_text:
            return
        log = self._visible_log()
        needle = self.search_text.lower()
        lines = log.lines
        for offset in range(len(lines)):
            index = (self._search_from + offset) % len(lines)
            if needle in lines[index].lower():
                log.auto_scroll = False
                log.scroll_to(y=index, animate=False)
                self._search_from = index + 1
                self.found_line = index
                self.notify(f"line {index + 1}: {lines[index].strip()[:60]}", timeout=3)
                return
        self.notify(f"{self.search_text!r} not found", severity="warning", timeout=3)

    def _visible_log(self) -> Log:
        active = self.query_one(TabbedContent).active
        if active == "k6-tab":
            return self.query_one("#k6-log", Log)
        if active == "review-tab":
            return self.query_one("#review-log", Log)
        return self.query_one("#steps-log", Log)

    async def action_quit(self) -> None:
        if not self.session.running:
            self.exit(1 if self.session.finished and self.session.finished.error else 0)
            return
        if self.engine.current is None:
            self._close_session()
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._close_session()

        self.push_screen(
            ConfirmScreen(
                "Work is running. Quit? The running step is stopped and the "
                "repository is left clean on main."
            ),
            confirmed,
        )

    def _close_session(self) -> None:
        self._exit_when_done = True
        if self.engine.current is None:
            self.engine.close()
        else:
            self.engine.abort()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            name = binding.action.split("(")[0]
            if binding.action.startswith("tab(") or name == "find_next":
                continue
            yield SystemCommand(
                binding.description,
                f"optui: {binding.description.lower()} (key {binding.key})",
                getattr(self, f"action_{name}"),
            )


def write_session_report(folder: Path) -> tuple[Path, list[Path]] | None:
    """Write the report of the session in folder in every format (a worker's job).

    The folder the reports went to and the files written; None if the journal
    has no session yet.
    """
    past = replay(folder, latency=False)
    if past is None:
        return None
    written = write_reports(past, FORMATS)
    return written[0].parent, written


def _find_merge(repo: TargetRepo, main: str, item_id: str) -> MergedItem | str:
    """The item's latest merge still on main, or why there is none (a worker's job)."""
    try:
        return find_merged(repo, main, item_id)
    except RevertError as exc:
        return str(exc)


def _severity(level: str) -> SeverityLevel:
    if level == "error":
        return "error"
    return "warning" if level == "warning" else "information"
