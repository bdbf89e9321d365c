"""The main screen's parts: the plan tree, item details, latency and review."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Log, Sparkline, Static, Tree
from textual.widgets.tree import TreeNode
from textual_plotext import PlotextPlot

from optui.events import ItemState, RunMeasured
from optui.plan import Item, Plan
from optui.review import Review
from optui.tui.view import ItemView, SessionView, shown_lines

STATE_MARKS = {
    ItemState.PENDING: ("·", "dim"),
    ItemState.DEFERRED: ("⏸", "dim yellow"),
    ItemState.SKIPPED: ("»", "dim"),
    ItemState.AWAITING_DECISION: ("?", "bold magenta"),
    ItemState.MERGED: ("✔", "bold green"),
    ItemState.REVERTED: ("↶", "yellow"),
    ItemState.PASSED: ("✓", "green"),
    ItemState.REJECTED: ("✘", "yellow"),
    ItemState.FAILED: ("✘", "bold red"),
    ItemState.INCONCLUSIVE: ("≈", "yellow"),
    ItemState.ERROR: ("!", "bold red"),
}
ACTIVE_MARK = ("▶", "bold cyan")


def item_label(item: Item, view: ItemView) -> Text:
    mark, style = STATE_MARKS.get(view.state, ACTIVE_MARK)
    label = Text()
    label.append(f"{mark} ", style)
    label.append(item.id, "bold" if view.state.active else "")
    label.append(f"  {item.risk.value}", "dim")
    state = view.state.value
    if view.state is ItemState.TESTING and view.detail:
        state = f"testing {view.detail}"
    label.append(f"  {state}", style)
    return label


class PlanTree(Tree[str]):
    """Phases and their items, each with its state at a glance."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan.name, id="plan-tree")
        self.plan = plan
        self.show_root = False
        self.guide_depth = 2

    def build(self, session: SessionView) -> None:
        self.clear()
        for phase in self.plan.phases:
            label = phase.name + (
                f"  (deferred: {phase.deferred})" if phase.deferred else ""
            )
            branch = self.root.add(label, expand=True)
            for item in phase.items:
                branch.add_leaf(item_label(item, session.items[item.id]), data=item.id)

    def refresh_item(self, item: Item, view: ItemView) -> None:
        for node in self._leaves():
            if node.data == item.id:
                node.set_label(item_label(item, view))

    def select_item(self, item_id: str) -> None:
        for node in self._leaves():
            if node.data == item_id:
                self.move_cursor(node)

    def _leaves(self) -> list[TreeNode[str]]:
        return [leaf for phase in self.root.children for leaf in phase.children]


class ItemDetails(Vertical):
    """The selected item: what it is, how it is applied, and every run's figures."""

    def compose(self) -> ComposeResult:
        yield Static(id="item-summary")
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="none")
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.add_columns("run", "", "measured", "limit", "baseline", "gate")

    def show(self, item: Item, view: ItemView, session: SessionView) -> None:
        apply = f"{item.apply.kind.value} {item.apply.source or '(not given)'}"
        task = f" · task {item.task}" if item.task else ""
        detail = f" — {view.detail}" if view.detail else ""
        lines = [
            f"[b]{escape(item.id)}[/b]  {escape(item.title)}",
            escape(f"risk {item.risk.value} · phase {item.phase}{task}"),
            escape(f"expected: {item.expect or '-'}"),
            escape(f"applied by: {apply}"),
            escape(f"state: {view.state.value}{detail}"),
        ]
        if item.require_improvement:
            lines.append("must improve: gates against the baseline become '< baseline'")
        if view.commit:
            what = "merge, reverted" if view.state is ItemState.REVERTED else "commit"
            lines.append(f"{what}: {view.commit[:12]}")
        if view.kept_ref:
            lines.append(f"kept as: {view.kept_ref}")
        self.query_one("#item-summary", Static).update("\n".join(lines))
        self._fill(view.runs, session)

    def show_baseline(self, session: SessionView) -> None:
        """Main's own measurement, which every item is compared with."""
        p99 = session.baseline_p99
        lines = [
            f"[b]{escape(session.plan.main)}[/b]  the baseline",
            "main is built, deployed and tested before the first item; after a "
            "merge, the merged item's runs take its place",
            f"baseline p99: {p99:.4g} ms" if p99 is not None else "not measured yet",
        ]
        self.query_one("#item-summary", Static).update("\n".join(lines))
        self._fill(session.baseline_runs, session)

    def _fill(self, runs: list[RunMeasured], session: SessionView) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        for run in runs:
            number = f"{run.side} {run.run}" if run.side else str(run.run)
            if run.error:
                table.add_row(number, "ERROR", "", "", "", run.error)
            for result in run.results:
                base = _baseline_of(result.gate, session)
                table.add_row(
                    number,
                    "pass" if result.passed else Text("FAIL", "bold red"),
                    f"{result.value:.4g}",
                    f"{result.limit:.4g}",
                    f"{base:.4g}" if base is not None else "",
                    result.gate,
                )


def _baseline_of(gate: str, session: SessionView) -> float | None:
    """Main's value of the figure a gate reads (baseline keys read 'metric: stat')."""
    for key, value in session.baseline.items():
        if gate.startswith(f"{key} "):
            return value
    return None


class LatencyPane(Vertical):
    """p99 per second of the run under way, and each run's p99 against main."""

    def compose(self) -> ComposeResult:
        yield Static("p99 per second of the current run", id="live-title")
        yield Sparkline([], id="live-p99")
        yield PlotextPlot(id="runs-plot")

    def update_live(self, session: SessionView) -> None:
        self.query_one("#live-p99", Sparkline).data = list(session.live_p99)
        run = session.live_run
        title = "p99 per second of the current run"
        if run is not None and session.live_p99:
            who = run[0] or "baseline"
            title += f" ({who}, run {run[1]}): {session.live_p99[-1]:.1f} ms now"
        self.query_one("#live-title", Static).update(title)

    def update_runs(self, item_id: str | None, session: SessionView) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        base_runs = [r.figures.get("p99_ms", 0.0) for r in session.baseline_runs]
        runs = session.items[item_id].runs if item_id else []
        values = [r.figures.get("p99_ms", 0.0) for r in runs if not r.error]
        labels = [f"base {i}" for i in range(1, len(base_runs) + 1)]
        labels += [f"run {r.run}" for r in runs if not r.error]
        if labels:
            plt.bar(labels, base_runs + values, color="cyan")
        baseline = session.baseline_p99
        if baseline is not None and labels:
            plt.hline(baseline, "green")
            plt.hline(baseline * 1.10, "red")
        plt.title("p99 (ms) of each run; green: baseline, red: +10% band")
        plot.refresh()


class ContainersPane(VerticalScroll):
    """Each container's CPU and memory while tests run, and the stack's total."""

    def compose(self) -> ComposeResult:
        yield Static("No container figures yet.", id="stack-total")

    def update_stack(self, session: SessionView) -> None:
        budget = session.plan.docker.memory_budget_mb if session.plan.docker else None
        total = sum(s.memory_bytes for s in session.container_latest.values()) / 1e6
        text = f"stack: {total:.0f} MB"
        if budget:
            text += f" of a {budget:.0f} MB budget ({total / budget:.0%})"
        self.query_one("#stack-total", Static).update(text)
        for name, sample in sorted(session.container_latest.items()):
            key = _widget_id(name)
            limit = sample.memory_limit_bytes
            row = (
                f"{escape(name)}: cpu {sample.cpu_percent:.0f}% · memory "
                f"{sample.memory_bytes / 1e6:.0f} MB"
                + (f" of {limit / 1e6:.0f} MB" if limit else "")
            )
            labels = self.query(f"#label-{key}")
            if labels:
                labels.first(Static).update(row)
                self.query_one(f"#spark-{key}", Sparkline).data = list(
                    session.container_memory[name]
                )
            else:
                self.mount(Static(row, id=f"label-{key}", classes="container-row"))
                self.mount(
                    Sparkline(
                        list(session.container_memory[name]),
                        id=f"spark-{key}",
                        classes="container-spark",
                    )
                )


def _widget_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


class ReviewPane(VerticalScroll):
    """Why an item did not land, read back from the journal."""

    def compose(self) -> ComposeResult:
        yield Static("Select an item that failed to review it.", id="review-summary")
        yield Log(id="review-log", max_lines=5_000, auto_scroll=False)

    def show(self, review: Review | None, item_id: str | None) -> None:
        summary = self.query_one("#review-summary", Static)
        log = self.query_one("#review-log", Log)
        log.clear()
        if review is None:
            message = "Nothing to review"
            summary.update(f"{message} for {item_id}." if item_id else f"{message}.")
            return
        lines = [f"[b]{escape(review.item_id)}[/b]: {review.state}"]
        lines.append(f"session {escape(review.session)}")
        for gate in review.failed_gates:
            lines.append(
                f"  run {gate.run}: [red]{escape(gate.gate)}[/red] measured "
                f"{gate.value:.4g}, limit {gate.limit:.4g}"
            )
        if not review.failed_gates:
            lines.append(f"  {escape(review.reason)}")
        if review.failed_step:
            lines.append(f"  step that failed: {escape(review.failed_step)}")
        for threshold in review.thresholds:
            lines.append(f"  k6: {escape(threshold)}")
        if review.container_logs:
            names = ", ".join(name for name, _ in review.container_logs)
            lines.append(f"containers' logs below the step's: {escape(names)}")
        if review.log_path is not None:
            where = (
                f"line {review.first_error + 1}"
                if review.first_error is not None
                else "start"
            )
            lines.append(f"log: {review.log_path.name}, from {where}")
        summary.update("\n".join(lines))
        log.write_lines(shown_lines(review.log_lines))
        if review.container_logs:
            log.write_lines(shown_lines(review.container_lines()))
        if review.first_error is not None:
            log.scroll_to(y=review.first_error, animate=False)
