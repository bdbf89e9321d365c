"""Past sessions: what their journals say.

Every session leaves its journal in the repository's ``.git/optui/sessions/``.
``replay`` folds one journal, record by record, into a ``PastSession``: the
verdict of every item, the runs measured, the comparisons with main, the
decisions taken, main's baseline as it moved, and the item that was under way
if the session stopped early. Resuming, reports and the history all read
sessions through it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optui import k6
from optui.events import FINAL_STATES, Decision, ItemState, RunMeasured
from optui.gates import GateResult
from optui.journal import list_sessions, read_journal
from optui.samples import LatencyHistogram
from optui.stats import Comparison

Key = tuple[str, str]

REVERT_KIND = "revert"
"""The kind of a session that only reverted a merged item."""


@dataclass(frozen=True)
class LatencyVerdict:
    """A latency gate judged by the interval of the change, as journaled."""

    gate: str
    outcome: str
    """``pass``, ``fail`` or ``inconclusive``."""
    description: str
    comparison: Comparison
    limit: float | None = None
    """The largest relative change allowed; 0 for an item that must improve."""


@dataclass(frozen=True)
class BaselineMark:
    """Main's figures as a session set them: measured, or moved by a merge."""

    at: float
    main_sha: str
    source: str
    values: dict[str, float]
    """By gate figure, written ``metric: stat``."""

    @property
    def p99(self) -> float | None:
        """Main's p99 of request durations, in ms, if a gate reads it."""
        return p99_of(self.values)


@dataclass(frozen=True)
class Revert:
    """A merged item's merge undone on main."""

    at: float
    item_id: str
    merge: str
    """The merge commit that was reverted."""
    commit: str
    """The commit that reverts it."""
    main_before: str
    reason: str = ""


@dataclass
class PastItem:
    """What a journal says of one item."""

    state: ItemState
    reason: str = ""
    title: str = ""
    phase: str = ""
    risk: str = ""
    expect: str = ""
    task: str | None = None
    scope: str = ""
    require_improvement: bool = False
    commit: str | None = None
    kept_ref: str | None = None
    under_way: bool = False
    """It had begun and had not finished when the session stopped."""
    main_sha: str = ""
    """Main's commit when it began."""
    untracked: frozenset[str] = frozenset()
    """The untracked files that were there before it began (the operator's)."""
    branch: str | None = None
    """Its test branch, once the attempt had made it."""
    applied: str | None = None
    """The commit its change became on its test branch."""
    decision: Decision | None = None
    """The operator's answer, once every run had passed."""
    runs: list[RunMeasured] = field(default_factory=list)
    """The runs of its latest measurement, in order."""
    main_runs: list[RunMeasured] = field(default_factory=list)
    """Main's runs measured in turns with it (items that must improve)."""
    figures: list[k6.Summary] = field(default_factory=list)
    """The figures its gates read, one per run that was measured."""
    changes: list[Comparison] = field(default_factory=list)
    """Its change of p99 and of the median against main, once measured."""
    verdicts: list[LatencyVerdict] = field(default_factory=list)
    attempts: int = 0
    """How many times the session began it (a retry begins it again)."""
    began_at: float = 0.0
    ended_at: float = 0.0

    @property
    def failing_gate(self) -> str | None:
        """The gate that failed it: the first failed in its runs, or by interval."""
        for verdict in self.verdicts:
            if verdict.outcome == "fail":
                return verdict.gate
        for run in self.runs:
            for result in run.results:
                if not result.passed:
                    return result.gate
        return None

    def change(self, stat: float) -> Comparison | None:
        for comparison in self.changes:
            if comparison.stat == stat:
                return comparison
        return None


@dataclass
class PastSession:
    """A session, finished or not, as its journal tells it."""

    folder: Path
    plan_path: str
    plan_digest: str
    main: str
    started_at: float
    items: dict[str, PastItem]
    plan_name: str = ""
    repo: str = ""
    kind: str = "session"
    """``session``, or ``revert`` for one that only reverted a merge."""
    main_sha: str = ""
    """Main's commit when the session began."""
    stopped_at: float = 0.0
    finished: bool = False
    """It ran to its end (not aborted, not stopped by a crash)."""
    aborted: bool = False
    error: str | None = None
    baseline: dict[Key, float] | None = None
    baseline_sha: str = ""
    baseline_runs: list[RunMeasured] = field(default_factory=list)
    baseline_figures: list[k6.Summary] = field(default_factory=list)
    baseline_latency: list[dict[str, LatencyHistogram]] = field(default_factory=list)
    """The request durations behind the baseline, for latency verdicts."""
    baseline_under_way: bool = False
    baselines: list[BaselineMark] = field(default_factory=list)
    """Every baseline the session set, in order."""
    reverts: list[Revert] = field(default_factory=list)
    process: tuple[int, str] | None = None
    """A command that was running when the session stopped: pid, start stamp."""

    @property
    def session_id(self) -> str:
        return self.folder.name

    @property
    def current(self) -> str | None:
        """The item that was under way when the session stopped."""
        for item_id, item in self.items.items():
            if item.under_way:
                return item_id
        return None

    @property
    def status(self) -> str:
        """``finished``, ``aborted`` or ``unfinished``."""
        if self.finished:
            return "finished"
        return "aborted" if self.aborted else "unfinished"

    @property
    def state_counts(self) -> dict[str, int]:
        """How many items are in each state, by the state's value, first seen first."""
        return dict(Counter(item.state.value for item in self.items.values()))

    @property
    def p99_before(self) -> float | None:
        """Main's p99 as the session first measured it."""
        return self.baselines[0].p99 if self.baselines else None

    @property
    def p99_after(self) -> float | None:
        """Main's p99 as the session left it: moved by each merge."""
        return self.baselines[-1].p99 if self.baselines else None

    def describe(self) -> str:
        """A few lines telling the operator where the session stood."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.stopped_at))
        how = "was aborted" if self.aborted else "stopped without finishing"
        lines = [f"session {self.session_id} {how} ({when})"]
        by_state: dict[str, list[str]] = {}
        for item_id, item in self.items.items():
            if item.state in FINAL_STATES and not item.under_way:
                by_state.setdefault(item.state.value, []).append(item_id)
        done = sum(len(ids) for ids in by_state.values())
        finished = "; ".join(f"{s}: {', '.join(ids)}" for s, ids in by_state.items())
        lines.append(
            f"{done} of {len(self.items)} items finished"
            + (f" ({finished})" if finished else "")
        )
        current = self.current
        if current is not None:
            item = self.items[current]
            runs = f", {len(item.runs)} runs measured" if item.runs else ""
            lines.append(f"{current} was {item.state.value}{runs}")
        elif self.baseline is None:
            count = len(self.baseline_runs)
            lines.append(f"main's baseline was being measured ({count} runs done)")
        left = [
            i
            for i, item in self.items.items()
            if item.state is ItemState.PENDING and not item.under_way
        ]
        if left:
            lines.append(f"{len(left)} still to run: {', '.join(left)}")
        return "\n".join(lines)


def p99_of(values: dict[str, float]) -> float | None:
    """The p99 of request durations among baseline figures keyed ``metric: stat``.

    The successful requests' figure is preferred, as the default gates read it.
    """
    found: dict[str, float] = {}
    for label, value in values.items():
        metric, _, stat = label.rpartition(": ")
        if stat == "p(99)" and metric.startswith("http_req_duration"):
            found[metric] = value
    for metric in ("http_req_duration{expected_response:true}", "http_req_duration"):
        if metric in found:
            return found[metric]
    return next(iter(found.values()), None)


def find_unfinished(git_dir: Path) -> PastSession | None:
    """The latest session of the repository, if it did not run to its end."""
    sessions = list_sessions(git_dir)
    if not sessions:
        return None
    past = replay(sessions[-1])
    if past is None or past.finished:
        return None
    return past


def all_sessions(git_dir: Path) -> list[PastSession]:
    """Every session of the repository, oldest first, without request durations."""
    found = (replay(folder, latency=False) for folder in list_sessions(git_dir))
    return [past for past in found if past is not None]


def find_session(git_dir: Path, name: str | None) -> PastSession | None:
    """The session named (its id, or a unique start of it); None: the latest."""
    folders = list_sessions(git_dir)
    if name is not None:
        folders = [f for f in folders if f.name.startswith(name)]
        exact = [f for f in folders if f.name == name]
        folders = exact or folders
        if len(folders) != 1:
            return None
    return replay(folders[-1], latency=False) if folders else None


def replay(folder: Path, *, latency: bool = True) -> PastSession | None:
    """Fold a session's journal; None when it has no session record.

    latency: read each run's request durations too, as resuming needs for the
    latency verdicts (they are most of the time it takes); reports and the
    history need only the figures and the comparisons.
    """
    fold = _Replay(folder, latency)
    for record in read_journal(folder / "journal.jsonl"):
        fold.take(record)
    return fold.session


class _Replay:
    """Folds journal records, in order, into what they add up to."""

    def __init__(self, folder: Path, latency: bool) -> None:
        self.folder = folder
        self.latency = latency
        self.session: PastSession | None = None

    def take(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "session":
            self._on_session(record)
            return
        handler = getattr(self, f"_on_{kind}", None)
        if self.session is not None and handler is not None:
            self.session.stopped_at = float(record.get("at", 0.0))
            handler(record)

    def _durations(self, data: dict[str, Any] | None) -> dict[str, LatencyHistogram]:
        if not self.latency or not data:
            return {}
        return {str(key): LatencyHistogram.from_dict(h) for key, h in data.items()}

    def _item(self, record: dict[str, Any]) -> PastItem | None:
        assert self.session is not None
        return self.session.items.get(str(record.get("item")))

    def _on_session(self, record: dict[str, Any]) -> None:
        items = {str(entry["id"]): _past_item(entry) for entry in record["items"]}
        self.session = PastSession(
            folder=self.folder,
            plan_path=str(record.get("plan", "")),
            plan_digest=str(record.get("plan_digest", "")),
            main=str(record.get("main", "main")),
            started_at=float(record.get("at", 0.0)),
            stopped_at=float(record.get("at", 0.0)),
            items=items,
            plan_name=str(record.get("name", "")),
            repo=str(record.get("repo", "")),
            kind=str(record.get("purpose", "session")),
            main_sha=str(record.get("main_sha", "")),
        )

    def _on_state(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.state = ItemState(record["state"])
            item.reason = str(record.get("detail", ""))

    def _on_begin(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.under_way = True
            item.main_sha = str(record.get("main_sha", ""))
            item.untracked = frozenset(record.get("untracked", []))
            item.applied = item.decision = item.commit = item.kept_ref = None
            item.branch = None
            item.runs, item.main_runs, item.figures = [], [], []
            item.changes, item.verdicts = [], []
            item.attempts += 1
            item.began_at = float(record.get("at", 0.0))

    def _on_branched(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.branch = str(record["branch"])

    def _on_applied(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.applied = str(record["commit"])

    def _on_measure(self, record: dict[str, Any]) -> None:
        if int(record.get("first_run", 1)) > 1:
            return
        assert self.session is not None
        if record.get("item") is None:
            self.session.baseline_under_way = True
            self.session.baseline_runs, self.session.baseline_figures = [], []
            return
        item = self._item(record)
        if item is not None and not _pairing(item):
            item.runs, item.main_runs, item.figures = [], [], []
            item.changes, item.verdicts = [], []
            item.decision = None

    def _on_run(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        run = RunMeasured(
            record.get("item"),
            int(record["run"]),
            int(record.get("runs") or record["run"]),
            tuple(GateResult(**r) for r in record.get("results", [])),
            record.get("error"),
            dict(record.get("figures") or {}),
            self._durations(record.get("latency")),
            record.get("side"),
        )
        if record.get("item") is None:
            runs, read = self.session.baseline_runs, self.session.baseline_figures
        else:
            item = self._item(record)
            if item is None:
                return
            if run.side:
                # Main's side of a pair: resuming measures it again with its pair.
                item.main_runs.append(run)
                return
            runs, read = item.runs, item.figures
        runs.append(run)
        if run.error is None:
            read.append(_summary(record.get("read", [])))

    def _on_change(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.changes.append(_comparison(record))

    def _on_verdict(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.verdicts.append(
                LatencyVerdict(
                    str(record.get("gate", "")),
                    str(record.get("outcome", "")),
                    str(record.get("description", "")),
                    _comparison(record),
                    _optional(record.get("limit")),
                )
            )

    def _on_baseline(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.baseline = {
            (str(metric), str(stat)): float(value)
            for metric, stat, value in record.get("keys", [])
        }
        self.session.baseline_sha = str(record.get("main_sha", ""))
        runs = record.get("latency", []) if self.latency else []
        self.session.baseline_latency = [self._durations(run) for run in runs]
        self.session.baseline_under_way = False
        self.session.baselines.append(
            BaselineMark(
                float(record.get("at", 0.0)),
                self.session.baseline_sha,
                str(record.get("source", "")),
                {f"{m}: {s}": v for (m, s), v in self.session.baseline.items()},
            )
        )

    def _on_decision(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            decision = Decision(record["decision"])
            item.decision = None if decision is Decision.RERUN else decision

    def _on_item(self, record: dict[str, Any]) -> None:
        item = self._item(record)
        if item is not None:
            item.state = ItemState(record["state"])
            item.reason = str(record.get("reason", ""))
            item.commit = record.get("commit")
            item.kept_ref = record.get("kept_ref")
            item.under_way = False
            item.ended_at = float(record.get("at", 0.0))

    def _on_revert(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.reverts.append(
            Revert(
                float(record.get("at", 0.0)),
                str(record["item"]),
                str(record["merge"]),
                str(record["commit"]),
                str(record.get("main_before", "")),
                str(record.get("reason", "")),
            )
        )
        item = self._item(record)
        if item is not None and item.state is ItemState.MERGED:
            item.state = ItemState.REVERTED
            item.reason = f"reverted by {str(record['commit'])[:12]}"

    def _on_process(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.process = (int(record["pid"]), str(record.get("stamp", "")))

    def _on_step(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.process = None

    def _on_end(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.aborted = bool(record.get("aborted"))
        self.session.error = record.get("error")
        self.session.finished = not self.session.aborted


def _past_item(entry: dict[str, Any]) -> PastItem:
    task = entry.get("task")
    return PastItem(
        ItemState(entry["state"]),
        str(entry.get("reason", "")),
        title=str(entry.get("title", "")),
        phase=str(entry.get("phase", "")),
        risk=str(entry.get("risk", "")),
        expect=str(entry.get("expect", "")),
        task=None if task is None else str(task),
        scope=str(entry.get("scope", "")),
        require_improvement=bool(entry.get("require_improvement", False)),
    )


def _pairing(item: PastItem) -> bool:
    """Whether a new measurement only turns to the item's side of a pair."""
    return len(item.main_runs) > len(item.runs)


def _comparison(record: dict[str, Any]) -> Comparison:
    low, high = record.get("low"), record.get("high")
    return Comparison(
        stat=float(record.get("stat", 99)),
        baseline=math.nan,
        candidate=math.nan,
        change=float(record.get("change", math.nan)),
        low=-math.inf if low is None else float(low),
        high=math.inf if high is None else float(high),
        confidence=float(record.get("confidence", 0.95)),
        baseline_runs=int(record.get("baseline_runs", 0)),
        candidate_runs=int(record.get("runs", 0)),
        paired=bool(record.get("paired", False)),
    )


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _summary(read: list[list[Any]]) -> k6.Summary:
    metrics: dict[str, dict[str, float]] = {}
    for metric, stat, value in read:
        metrics.setdefault(str(metric), {})[str(stat)] = float(value)
    return k6.Summary(metrics, "journal")
