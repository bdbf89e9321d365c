"""Modal screens: the operator's decisions and confirmations."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from optui.events import Decision, DecisionNeeded
from optui.plan import Item
from optui.revert import MergedItem


class DecisionScreen(ModalScreen[Decision | None]):
    """An item passed every gate: merge, reject, test again, or defer it."""

    BINDINGS = [
        Binding("m", "choose('merge')", "Merge"),
        Binding("r", "choose('reject')", "Reject"),
        Binding("t", "choose('rerun')", "Test again"),
        Binding("d", "choose('defer')", "Defer"),
        Binding("escape", "later", "Decide later"),
    ]

    def __init__(self, item: Item, question: DecisionNeeded, baseline: float | None):
        super().__init__()
        self.item = item
        self.question = question
        self.baseline = baseline

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            verdict = (
                "is [b]inconclusive[/b] after the most runs"
                if self.question.inconclusive
                else "passed every gate"
            )
            yield Static(
                f"[b]{escape(self.item.id)}[/b] {verdict}: {escape(self.item.title)}",
                id="dialog-title",
            )
            if self.question.verdicts:
                yield Static(
                    escape("\n".join(self.question.verdicts)), id="dialog-verdicts"
                )
            table: DataTable[str] = DataTable(id="gates", cursor_type="none")
            table.add_columns("run", "", "measured", "limit", "gate")
            for result in self.question.results:
                table.add_row(
                    str(result.run),
                    "pass" if result.passed else "FAIL",
                    f"{result.value:.4g}",
                    f"{result.limit:.4g}",
                    result.gate,
                )
            yield table
            diffstat = self.question.diffstat.rstrip() or "(no diff)"
            yield Static(escape(diffstat), id="diffstat")
            yield Static(
                "[b]m[/b] merge   [b]r[/b] reject   [b]t[/b] test again   "
                "[b]d[/b] defer   [b]esc[/b] decide later",
                id="dialog-keys",
            )

    def action_choose(self, choice: str) -> None:
        self.dismiss(Decision(choice))

    def action_later(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes-or-no question."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(escape(self.question), id="dialog-title")
            yield Static("[b]y[/b] yes   [b]n[/b] no", id="dialog-keys")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def revert_question(merged: MergedItem, main: str) -> str:
    """What the operator confirms before a merge is reverted."""
    return (
        f"Revert {merged.item_id}? Its merge {merged.merge[:12]} (made by session "
        f"{merged.session_id}) is undone on {main} by a new commit; the merge stays "
        f"in the history. {main}'s baseline is then measured again."
    )


class ResumeScreen(ModalScreen[str]):
    """The last session did not finish: resume it, start afresh, or quit."""

    BINDINGS = [
        Binding("r", "answer('resume')", "Resume"),
        Binding("f", "answer('fresh')", "Start afresh"),
        Binding("q", "answer('quit')", "Quit"),
        Binding("escape", "answer('quit')", "Quit"),
    ]

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]The last session did not finish[/b]", id="dialog-title")
            yield Static(escape(self.description), id="resume-state")
            yield Static(
                "Either way the repository is first put back on main, clean; "
                "nothing measured or committed is lost.",
                id="resume-note",
            )
            yield Static(
                "[b]r[/b] resume it   [b]f[/b] start afresh   [b]q[/b] quit",
                id="dialog-keys",
            )

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class ManualScreen(ModalScreen[bool]):
    """A manual item: the operator edits the working tree, then says done."""

    BINDINGS = [
        Binding("enter", "answer(True)", "Done"),
        Binding("s", "answer(False)", "Skip"),
    ]

    def __init__(self, item: Item, instructions: str, repo: str) -> None:
        super().__init__()
        self.item = item
        self.instructions = instructions
        self.repo = repo

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                f"[b]{escape(self.item.id)}[/b]: edit by hand", id="dialog-title"
            )
            yield Static(escape(self.instructions or "(no instructions given)"))
            yield Static(escape(f"working tree: {self.repo} (on {self.item.branch})"))
            yield Static("[b]enter[/b] done   [b]s[/b] skip", id="dialog-keys")

    def action_answer(self, done: bool) -> None:
        self.dismiss(done)


class SearchScreen(ModalScreen[str | None]):
    """Asks for the text to find in the log on display."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box"):
            yield Static("find in log:")
            yield Input(placeholder="text, then enter", id="search-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]optui keys[/b]

  [b]s[/b]        skip the selected item (a running one is stopped cleanly first)
  [b]d[/b]        defer the selected item
  [b]b[/b]        bring a deferred or skipped item back
  [b]t[/b]        test the selected item again (a finished one, from scratch)
  [b]a[/b], [b]enter[/b] answer the item waiting for you (merge, reject, ...)
  [b]m[/b] / [b]r[/b]    merge / reject the item waiting for you
  [b]p[/b]        pause after the current step; again to resume
  [b]f[/b]        follow the running item again after selecting another
  [b]u[/b]        revert the selected merged item's merge on main (asks first)
  [b]x[/b]        abort the session (asks; leaves the repository clean on main)
  [b]w[/b]        write the session's report (Markdown, JSON, JUnit, HTML)
  [b]h[/b]        history: main's p99 across sessions, every item's attempts;
           there, [b]u[/b] reverts the chosen item's merge
  [b]/[/b]        find text in the log on display; [b]n[/b] finds the next match
  [b]1[/b]-[b]4[/b]      show the steps log, k6 output, latency, or failure review
  [b]?[/b]        this help
  [b]q[/b]        quit (asks while work is running)
  [b]ctrl+p[/b]   the command palette: every action by name

Press escape to close."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
