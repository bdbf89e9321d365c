"""What the app knows of a session, built from engine events alone."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optui.events import (
    BaselineSet,
    ContainerFigures,
    DecisionNeeded,
    Event,
    ItemFinished,
    ItemState,
    LiveFigures,
    Notice,
    OutputLine,
    RunMeasured,
    SessionFinished,
    SessionStarted,
    StateChanged,
    Step,
    StepStarted,
)
from optui.plan import Plan

if TYPE_CHECKING:
    from optui.containers import ContainerSample

IDLE_NOTICE = "nothing left to run"
"""How the engine's notice that it waits for the operator begins."""
PANE_LINES = 5_000
"""Lines each log pane keeps per item in memory; the full logs are on disk."""
P99_KEY = "http_req_duration{expected_response:true}: p(99)"

STEPS_PANE = "steps"
K6_PANE = "k6"


def pane_of(step: Step) -> str:
    return K6_PANE if step is Step.TEST else STEPS_PANE


def shown_lines(lines: Iterable[str]) -> list[str]:
    """Lines as a Log widget must get them: it drops an empty line, so pad it."""
    return [line or " " for line in lines]


@dataclass
class ItemView:
    """One item as the operator sees it."""

    state: ItemState
    detail: str = ""
    runs: list[RunMeasured] = field(default_factory=list)
    commit: str | None = None
    kept_ref: str | None = None
    decision: DecisionNeeded | None = None
    """The open question, while the item waits for the operator."""


@dataclass
class SessionView:
    """The app's mirror of the session; updated only from engine events."""

    plan: Plan
    items: dict[str, ItemView] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_runs: list[RunMeasured] = field(default_factory=list)
    started: SessionStarted | None = None
    finished: SessionFinished | None = None
    current: str | None = None
    """The item (or None for main's baseline) the engine works on now."""
    step: str = "starting"
    clock: Callable[[], float] = time.monotonic
    step_started: float = 0.0
    logs: dict[tuple[str | None, str], deque[str]] = field(default_factory=dict)
    live_p99: deque[float] = field(default_factory=lambda: deque(maxlen=120))
    live_run: tuple[str | None, int] | None = None
    idle: bool = False
    """Every item has ended; the engine waits for one to be brought back."""
    container_memory: dict[str, deque[float]] = field(default_factory=dict)
    """Each container's memory in MB, one value per sample, newest last."""
    container_latest: dict[str, ContainerSample] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.step_started = self.clock()
        for item in self.plan.items():
            state = ItemState.DEFERRED if item.deferred else ItemState.PENDING
            self.items[item.id] = ItemView(state, item.deferred or "")

    @property
    def baseline_p99(self) -> float | None:
        return self.baseline.get(P99_KEY)

    def log(self, item_id: str | None, pane: str) -> deque[str]:
        key = (item_id, pane)
        if key not in self.logs:
            self.logs[key] = deque(maxlen=PANE_LINES)
        return self.logs[key]

    def apply(self, event: Event) -> None:
        """Fold one (non-streaming) event into the view."""
        if isinstance(event, SessionStarted):
            self.started = event
        elif isinstance(event, StateChanged):
            self.idle = False
            view = self.items[event.item_id]
            view.state, view.detail = event.state, event.detail
            if event.state is not ItemState.AWAITING_DECISION:
                view.decision = None
            if event.state.active:
                self.current = event.item_id
            if event.state in (ItemState.AWAITING_DECISION, ItemState.WAITING_MANUAL):
                self.step = f"{event.item_id}: {event.state.value}"
                self.step_started = self.clock()
            if event.state is ItemState.APPLYING:
                view.runs.clear()
        elif isinstance(event, StepStarted):
            self.current = event.item_id
            run = f" run {event.run} of {self.plan.runs}" if event.run else ""
            who = event.item_id or "baseline"
            self.step = f"{who}: {event.step.value}{run}"
            self.step_started = self.clock()
        elif isinstance(event, RunMeasured):
            if event.item_id is None:
                self.baseline_runs.append(event)
            else:
                self.items[event.item_id].runs.append(event)
        elif isinstance(event, ContainerFigures):
            for sample in event.samples:
                series = self.container_memory.setdefault(
                    sample.name, deque(maxlen=120)
                )
                series.append(sample.memory_bytes / 1e6)
                self.container_latest[sample.name] = sample
        elif isinstance(event, BaselineSet):
            self.baseline = dict(event.values)
            if event.item_id is not None:
                self.baseline_runs = list(self.items[event.item_id].runs)
        elif isinstance(event, DecisionNeeded):
            self.items[event.item_id].decision = event
        elif isinstance(event, ItemFinished):
            view = self.items[event.item_id]
            view.state, view.detail = event.state, event.reason
            view.commit, view.kept_ref = event.commit, event.kept_ref
            view.decision = None
            self.step = f"{event.item_id}: {event.state.value}"
            self.step_started = self.clock()
        elif isinstance(event, Notice) and event.message.startswith(IDLE_NOTICE):
            self.idle = True
        elif isinstance(event, SessionFinished):
            self.finished = event
            self.current = None
            self.step = "session aborted" if event.aborted else "session finished"

    def add_lines(self, lines: list[OutputLine]) -> None:
        for line in lines:
            self.log(line.item_id, pane_of(line.step)).append(line.line)

    def add_figures(self, figures: list[LiveFigures]) -> None:
        for second in figures:
            run = (second.item_id, second.run)
            if run != self.live_run:
                self.live_run = run
                self.live_p99.clear()
            self.live_p99.append(second.p99_ms or 0.0)

    @property
    def running(self) -> bool:
        return self.started is not None and self.finished is None
