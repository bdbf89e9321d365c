"""The headless runner: the engine with plain progress lines and no app."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from optui.engine import Engine
from optui.events import (
    BaselineSet,
    Decision,
    DecisionNeeded,
    Event,
    ItemFinished,
    ItemState,
    ManualEditNeeded,
    Notice,
    RunMeasured,
    SessionFinished,
    SessionStarted,
    StateChanged,
    StepFinished,
)
from optui.plan import Plan
from optui.sessions import PastSession

EXIT_OK = 0
EXIT_ABORTED = 130


@dataclass(frozen=True)
class Policy:
    """How the headless runner answers what the engine asks of an operator."""

    auto_merge: bool = False
    """Merge every item that passes, without asking."""
    dry_run: bool = False
    """Never merge; passed items are left unmerged, their commits kept."""
    interactive: bool = False
    """A person is at the terminal to ask."""


def run_headless(
    plan: Plan,
    policy: Policy,
    out: TextIO,
    inp: TextIO,
    err: TextIO,
    *,
    resume: PastSession | None = None,
    fresh: bool = False,
) -> int:
    """Run a session, printing progress to out; return the exit status.

    resume and fresh are as for ``Engine``. A SIGTERM or SIGHUP (the terminal
    closed) stops the session as Ctrl+C does: the running step is stopped and
    the repository put back on main, the session left to resume.
    """
    engine = Engine(plan, resume=resume, fresh=fresh)
    with _signals_interrupt():
        return _drive(engine, policy, out, inp, err)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt while a session runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {
        signum: signal.signal(signum, interrupt)
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _drive(
    engine: Engine, policy: Policy, out: TextIO, inp: TextIO, err: TextIO
) -> int:
    events: queue.Queue[Event] = queue.Queue()
    engine.subscribe(events.put)
    worker = threading.Thread(target=engine.run, name="optui-engine", daemon=True)
    printer = _Printer(out, err)
    worker.start()
    finished: SessionFinished | None = None
    try:
        while finished is None:
            event = events.get()
            printer.show(event)
            if isinstance(event, DecisionNeeded):
                engine.decide(event.item_id, _decide(event, policy, out, inp))
            elif isinstance(event, ManualEditNeeded):
                _manual(engine, event, policy, out, inp)
            elif isinstance(event, SessionFinished):
                finished = event
    except KeyboardInterrupt:
        out.write("\ninterrupted: stopping the running step and returning to main\n")
        engine.abort()
        while finished is None:
            event = events.get()
            printer.show(event)
            if isinstance(event, SessionFinished):
                finished = event
    worker.join()
    printer.summary(engine, finished)
    if finished.aborted:
        return EXIT_ABORTED
    if engine.error is not None:
        return engine.error.exit_status
    return EXIT_OK


def _decide(
    event: DecisionNeeded, policy: Policy, out: TextIO, inp: TextIO
) -> Decision:
    if policy.dry_run:
        out.write(f"[{event.item_id}] dry run: not merging\n")
        return Decision.LEAVE
    if policy.auto_merge and event.inconclusive:
        out.write(f"[{event.item_id}] inconclusive: not merging without a decision\n")
        return Decision.LEAVE
    if policy.auto_merge:
        return Decision.MERGE
    if not policy.interactive:
        out.write(f"[{event.item_id}] no terminal and no --auto-merge: not merging\n")
        return Decision.LEAVE
    out.write(event.diffstat.rstrip() + "\n")
    answers = {
        "m": Decision.MERGE,
        "r": Decision.REJECT,
        "t": Decision.RERUN,
        "d": Decision.DEFER,
    }
    while True:
        verdict = "inconclusive" if event.inconclusive else "passed"
        out.write(
            f"[{event.item_id}] {verdict}: [m]erge, [r]eject, [t]est again, [d]efer? "
        )
        out.flush()
        answer = inp.readline()
        if not answer:
            return Decision.LEAVE
        choice = answers.get(answer.strip().lower()[:1])
        if choice is not None:
            return choice


def _manual(
    engine: Engine, event: ManualEditNeeded, policy: Policy, out: TextIO, inp: TextIO
) -> None:
    if not policy.interactive:
        engine.skip(event.item_id, "manual change needs an operator at a terminal")
        return
    out.write(f"[{event.item_id}] edit the working tree in {event.repo}:\n")
    out.write(f"    {event.instructions or '(no instructions given)'}\n")
    out.write("press Enter when done, or type s and Enter to skip: ")
    out.flush()
    answer = inp.readline()
    if answer.strip().lower().startswith("s") or not answer:
        engine.skip(event.item_id)
    else:
        engine.manual_done(event.item_id)


class _Printer:
    """Turns engine events into one line each."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def show(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.line(
                f"optui: {event.plan}: {event.repo} at {event.main} "
                f"{event.main_sha[:12]}; session {event.session_id}"
            )
            self.line(f"optui: journal and logs in {event.folder}")
        elif isinstance(event, Notice):
            prefix = f"[{event.item_id}] " if event.item_id else ""
            level = "" if event.level == "info" else f"{event.level}: "
            self.line(f"{prefix}{level}{event.message}")
        elif isinstance(event, StateChanged):
            detail = f": {event.detail}" if event.detail else ""
            if not event.state.final:
                self.line(f"[{event.item_id}] {event.state.value}{detail}")
        elif isinstance(event, StepFinished) and not event.ok:
            who = f"[{event.item_id}]" if event.item_id else "baseline:"
            self.line(f"{who} {event.step.value} {event.message}; log {event.log_path}")
        elif isinstance(event, RunMeasured):
            self._run(event)
        elif isinstance(event, BaselineSet):
            values = ", ".join(f"{k} = {v:g}" for k, v in event.values.items())
            self.line(f"baseline ({event.source}): {values or 'no relative gates'}")
        elif isinstance(event, ItemFinished):
            self.line(f"[{event.item_id}] {event.state.value.upper()}: {event.reason}")
        elif isinstance(event, SessionFinished) and event.error:
            self.out.flush()
            self.err.write(f"optui: session stopped: {event.error}\n")
            self.err.flush()

    def _run(self, event: RunMeasured) -> None:
        who = f"[{event.item_id}]" if event.item_id else "baseline:"
        side = f" ({event.side}'s side of the pair)" if event.side else ""
        head = f"{who} run {event.run}/{event.runs}{side}"
        if event.error:
            self.line(f"{head}: could not measure: {event.error}")
            return
        verdict = "passed" if event.passed else "FAILED"
        figures = ", ".join(f"{k} {v:g}" for k, v in event.figures.items())
        self.line(f"{head}: {verdict} ({figures})")
        for result in event.results:
            if not result.passed:
                self.line(f"    {result.describe()}")

    def summary(self, engine: Engine, finished: SessionFinished) -> None:
        self.line("")
        self.line("summary:")
        width = max((len(i) for i in finished.outcomes), default=4)
        for item_id, state in finished.outcomes.items():
            record = engine.records[item_id]
            reason = record.reason if state is not ItemState.MERGED else ""
            self.line(f"  {item_id:<{width}}  {state.value:<18} {reason}".rstrip())
        if finished.aborted:
            self.line(
                "session aborted; the repository is back on main; "
                f"'optui resume {engine.plan.path}' carries it on"
            )
        if engine.journal is not None:
            self.line(
                f"report: 'optui report {engine.journal.session_id} --repo "
                f"{engine.repo.path}' (-f json, junit, html or all)"
            )
