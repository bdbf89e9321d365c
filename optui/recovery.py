"""Unfinished sessions: what their journal says, and putting the repository back.

A session that was killed, lost its terminal or its machine, or was aborted by
the operator, leaves a journal without an ``end`` record (or one that says it
was aborted). ``read_session`` replays that journal into a ``PastSession``: the
verdict of every item, the runs measured, the decisions taken and the item that
was under way. ``recover_repository`` brings the repository back to a known
state before anything else runs: leftover commands stopped, a half-done
cherry-pick or merge aborted, work in progress saved under ``refs/optui/``,
main checked out and clean.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optui import k6
from optui.errors import GitError, PreflightError
from optui.events import FINAL_STATES, Decision, ItemState, RunMeasured
from optui.gates import GateResult
from optui.gitops import TargetRepo
from optui.journal import list_sessions, read_journal
from optui.samples import LatencyHistogram

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class PastItem:
    """What a journal says of one item."""

    state: ItemState
    reason: str = ""
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
    figures: list[k6.Summary] = field(default_factory=list)
    """The figures its gates read, one per run that was measured."""


@dataclass
class PastSession:
    """An unfinished session, as its journal tells it."""

    folder: Path
    plan_path: str
    plan_digest: str
    main: str
    started_at: float
    items: dict[str, PastItem]
    stopped_at: float = 0.0
    aborted: bool = False
    baseline: dict[Key, float] | None = None
    baseline_sha: str = ""
    baseline_runs: list[RunMeasured] = field(default_factory=list)
    baseline_figures: list[k6.Summary] = field(default_factory=list)
    baseline_latency: list[dict[str, LatencyHistogram]] = field(default_factory=list)
    """The request durations behind the baseline, for latency verdicts."""
    baseline_under_way: bool = False
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


def find_unfinished(git_dir: Path) -> PastSession | None:
    """The latest session of the repository, if it did not run to its end."""
    sessions = list_sessions(git_dir)
    if not sessions:
        return None
    return read_session(sessions[-1])


def read_session(folder: Path) -> PastSession | None:
    """Replay a session's journal; None when the session ran to its end."""
    replay = _Replay(folder)
    for record in read_journal(folder / "journal.jsonl"):
        replay.take(record)
    return replay.result()


class _Replay:
    """Folds journal records, in order, into what they add up to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.session: PastSession | None = None
        self.finished = False

    def take(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "session":
            self._on_session(record)
            return
        handler = getattr(self, f"_on_{kind}", None)
        if self.session is not None and handler is not None:
            self.session.stopped_at = float(record.get("at", 0.0))
            handler(record)

    def result(self) -> PastSession | None:
        if self.session is None or self.finished:
            return None
        return self.session

    def _item(self, record: dict[str, Any]) -> PastItem | None:
        assert self.session is not None
        return self.session.items.get(str(record.get("item")))

    def _on_session(self, record: dict[str, Any]) -> None:
        items = {
            str(entry["id"]): PastItem(ItemState(entry["state"]), entry["reason"])
            for entry in record.get("items", [])
        }
        self.session = PastSession(
            folder=self.folder,
            plan_path=str(record.get("plan", "")),
            plan_digest=str(record.get("plan_digest", "")),
            main=str(record.get("main", "main")),
            started_at=float(record.get("at", 0.0)),
            stopped_at=float(record.get("at", 0.0)),
            items=items,
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
            item.runs, item.figures = [], []

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
        if item is not None:
            item.runs, item.figures = [], []
            item.decision = None

    def _on_run(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        if record.get("side"):
            return  # main's side of a pair: measured again with its pair
        run = RunMeasured(
            record.get("item"),
            int(record["run"]),
            int(record.get("runs") or record["run"]),
            tuple(GateResult(**r) for r in record.get("results", [])),
            record.get("error"),
            dict(record.get("figures") or {}),
            _latency(record.get("latency") or {}),
        )
        figures = _summary(record.get("read", []))
        if record.get("item") is None:
            runs, read = self.session.baseline_runs, self.session.baseline_figures
        else:
            item = self._item(record)
            if item is None:
                return
            runs, read = item.runs, item.figures
        runs.append(run)
        if run.error is None:
            read.append(figures)

    def _on_baseline(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.baseline = {
            (str(metric), str(stat)): float(value)
            for metric, stat, value in record.get("keys", [])
        }
        self.session.baseline_sha = str(record.get("main_sha", ""))
        self.session.baseline_latency = [
            _latency(run) for run in record.get("latency", [])
        ]
        self.session.baseline_under_way = False

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

    def _on_process(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.process = (int(record["pid"]), str(record.get("stamp", "")))

    def _on_step(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.process = None

    def _on_end(self, record: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.aborted = bool(record.get("aborted"))
        self.finished = not self.session.aborted


def _latency(data: dict[str, Any]) -> dict[str, LatencyHistogram]:
    return {str(key): LatencyHistogram.from_dict(h) for key, h in data.items()}


def _summary(read: list[list[Any]]) -> k6.Summary:
    metrics: dict[str, dict[str, float]] = {}
    for metric, stat, value in read:
        metrics.setdefault(str(metric), {})[str(stat)] = float(value)
    return k6.Summary(metrics, "journal")


# Putting the repository back.


def process_stamp(pid: int) -> str:
    """When a process started, as the kernel tells it; "" when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""


def stop_leftover(process: tuple[int, str] | None) -> str | None:
    """Stop the process group of a command a dead session left running.

    The start stamp guards against a recycled pid: a group is stopped only if
    its leader is still the process the journal named.
    """
    if process is None:
        return None
    pid, stamp = process
    if not stamp or process_stamp(pid) != stamp:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            if process_stamp(pid) != stamp:
                break
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    return f"stopped the command (process group {pid}) the session left running"


def recover_repository(
    repo: TargetRepo, past: PastSession, *, abandon: bool = False
) -> list[str]:
    """Bring the repository back to main, clean; return what was done.

    Nothing is thrown away that cannot be found again: uncommitted work on the
    interrupted item's test branch is saved as a commit under
    ``refs/optui/interrupted/``, and the operator's own untracked files stay.
    abandon: the session will not be resumed, so the interrupted item's test
    branch goes too (its commit kept the same way).
    """
    done: list[str] = []
    leftover = stop_leftover(past.process)
    if leftover:
        done.append(leftover)
    if (repo.git_dir / "index.lock").exists():
        raise PreflightError(
            f"{repo.git_dir / 'index.lock'} exists: a git command was stopped "
            "halfway. If no git command is running, delete that file and resume"
        )
    operation = repo.operation_in_progress()
    if operation:
        repo.abort_operation()
        done.append(f"aborted the half-done {operation}")
    current = past.current
    item = past.items[current] if current is not None else None
    branch = repo.current_branch()
    on_item_branch = item is not None and branch == item.branch
    if item is not None and on_item_branch and _dirty(repo, item.untracked):
        assert current is not None
        ref = save_work(repo, current, past.session_id, item.untracked)
        done.append(f"saved the uncommitted work on {branch} as {ref}")
    if on_item_branch or repo.tracked_changes():
        keep = item.untracked if item is not None else repo.untracked()
        repo.discard_changes(set(keep))
    if branch != past.main:
        if not repo.has_branch(past.main):
            raise GitError(f"the main branch {past.main!r} no longer exists")
        repo.checkout(past.main)
        done.append(f"checked out {past.main}")
    if abandon and item is not None and current is not None:
        kept = drop_branch(repo, item, current, past.session_id)
        if kept:
            done.append(f"kept the commit of {item.branch} as {kept}")
    return done


def drop_branch(repo: TargetRepo, item: PastItem, item_id: str, stamp: str) -> str:
    """Delete the test branch an interrupted attempt made, keeping its commit.

    Returns the ref that keeps it, or "" when there was nothing new to keep.
    """
    if item.branch is None:
        return ""
    sha = repo.resolve(f"refs/heads/{item.branch}")
    if sha is None:
        return ""
    kept = ""
    if sha != item.main_sha:
        kept = repo.keep("interrupted", item_id, sha, stamp)
    repo.delete_branch(item.branch)
    return kept


def _dirty(repo: TargetRepo, untracked_before: frozenset[str]) -> bool:
    return bool(repo.tracked_changes() or repo.untracked() - untracked_before)


def save_work(
    repo: TargetRepo, item_id: str, stamp: str, untracked_before: frozenset[str]
) -> str:
    """Commit the working tree's changes without touching it; keep the commit."""
    sha = repo.snapshot(f"Work in progress on {item_id}", leave_out=untracked_before)
    return repo.keep("interrupted", item_id, sha, stamp)
