"""What the engine reports and what it is told: plain values, no UI.

Listeners receive events on the engine's thread; a user interface copies them to
its own thread. Operator decisions go back through ``Engine`` methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from optui.gates import GateResult

if TYPE_CHECKING:
    from optui.containers import ContainerSample
    from optui.samples import LatencyHistogram


class ItemState(Enum):
    """Where an item is in its life."""

    PENDING = "pending"
    """Not yet started."""
    DEFERRED = "deferred"
    """Shown but not run, by the plan or the operator, until brought back."""
    SKIPPED = "skipped"
    """Passed over for this session."""
    APPLYING = "applying"
    """Its test branch is being made and its change applied."""
    WAITING_MANUAL = "waiting for edit"
    """The operator is editing the working tree by hand."""
    BUILDING = "building"
    DEPLOYING = "deploying"
    WAITING_READY = "waiting until ready"
    TESTING = "testing"
    TEARING_DOWN = "tearing down"
    AWAITING_DECISION = "waiting for you"
    """Every gate passed; the operator decides whether it lands."""
    MERGING = "merging"
    MERGED = "merged"
    """On main as a merge commit; its runs are the new baseline."""
    REVERTED = "reverted"
    """Merged, then its merge was reverted on main at the operator's word."""
    PASSED = "passed, not merged"
    """Every gate passed but it was not merged (a dry run, or no operator)."""
    REJECTED = "rejected"
    """The operator turned down a change that passed."""
    FAILED = "failed"
    """A gate failed: a correctness gate on some run, or a latency gate's interval
    lay wholly beyond its limit."""
    INCONCLUSIVE = "inconclusive"
    """After the most runs, a latency gate's interval still straddled its limit;
    left unmerged, its commit kept."""
    ERROR = "error"
    """It could not be applied or measured: nothing is known about its effect."""

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES


FINAL_STATES = frozenset(
    {
        ItemState.SKIPPED,
        ItemState.MERGED,
        ItemState.REVERTED,
        ItemState.PASSED,
        ItemState.REJECTED,
        ItemState.FAILED,
        ItemState.INCONCLUSIVE,
        ItemState.ERROR,
    }
)
ACTIVE_STATES = frozenset(
    {
        ItemState.APPLYING,
        ItemState.WAITING_MANUAL,
        ItemState.BUILDING,
        ItemState.DEPLOYING,
        ItemState.WAITING_READY,
        ItemState.TESTING,
        ItemState.TEARING_DOWN,
        ItemState.AWAITING_DECISION,
        ItemState.MERGING,
    }
)


class Step(Enum):
    """A stage of measuring one revision."""

    APPLY = "apply"
    BUILD = "build"
    UP = "up"
    READY = "ready"
    TEST = "test"
    DOWN = "down"


class Decision(Enum):
    """What the operator decides about an item that passed."""

    MERGE = "merge"
    REJECT = "reject"
    RERUN = "rerun"
    """Run the load tests again before deciding."""
    DEFER = "defer"
    LEAVE = "leave"
    """Leave it unmerged, its commit kept (dry runs, or no operator to ask)."""


@dataclass(frozen=True)
class Event:
    """Base of everything the engine reports."""


@dataclass(frozen=True)
class SessionStarted(Event):
    session_id: str
    plan: str
    repo: Path
    main: str
    main_sha: str
    folder: Path
    """The session's folder: journal and logs."""


@dataclass(frozen=True)
class Notice(Event):
    """Something the operator should read: a warning or a fact about the session."""

    message: str
    level: str = "info"
    item_id: str | None = None


@dataclass(frozen=True)
class StateChanged(Event):
    item_id: str
    state: ItemState
    detail: str = ""
    run: int | None = None
    """For TESTING: which run of how many (see ``runs``)."""
    runs: int | None = None


@dataclass(frozen=True)
class StepStarted(Event):
    item_id: str | None
    """None for main's baseline measurement."""
    step: Step
    command: str
    log_path: Path | None
    run: int | None = None


@dataclass(frozen=True)
class OutputLine(Event):
    item_id: str | None
    step: Step
    line: str
    run: int | None = None


@dataclass(frozen=True)
class StepFinished(Event):
    item_id: str | None
    step: Step
    ok: bool
    message: str
    seconds: float
    run: int | None = None
    log_path: Path | None = None


@dataclass(frozen=True)
class LiveFigures(Event):
    """One second of a running load test, from k6's sample stream."""

    item_id: str | None
    run: int
    second: int
    requests: int
    failures: int
    p99_ms: float | None


@dataclass(frozen=True)
class ContainerFigures(Event):
    """One round of the stack's containers' CPU and memory, during a run."""

    item_id: str | None
    run: int
    samples: tuple[ContainerSample, ...]


@dataclass(frozen=True)
class RunMeasured(Event):
    """One load test run finished and its gates were checked."""

    item_id: str | None
    run: int
    runs: int
    results: tuple[GateResult, ...]
    error: str | None = None
    """Why the run could not be measured; then results is empty."""
    figures: dict[str, float] = field(default_factory=dict)
    """Headline figures of the run, by name (``p99_ms``, ``requests``, ...)."""
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    """The run's request durations, by metric key, for the latency verdicts."""
    side: str | None = None
    """The main branch, for main's run of a pair measured in turns with the item."""

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed for r in self.results)


@dataclass(frozen=True)
class BaselineSet(Event):
    """Main's figures that relative gates compare with, and where they came from."""

    values: dict[str, float]
    """By gate figure, written ``metric: stat``."""
    source: str
    """``measured on main`` or ``runs of merged <item>``."""
    main_sha: str
    item_id: str | None = None
    """The merged item whose runs are now the baseline; None for main's own."""


@dataclass(frozen=True)
class DecisionNeeded(Event):
    item_id: str
    results: tuple[GateResult, ...]
    diffstat: str
    verdicts: tuple[str, ...] = ()
    """The latency gates' verdicts, each with its interval, as lines."""
    inconclusive: bool = False
    """Some latency gate stayed inconclusive: no verdict to follow blindly."""
    choices: tuple[Decision, ...] = (
        Decision.MERGE,
        Decision.REJECT,
        Decision.RERUN,
        Decision.DEFER,
    )


@dataclass(frozen=True)
class ManualEditNeeded(Event):
    """The operator is to edit the working tree, then call ``manual_done``."""

    item_id: str
    instructions: str
    repo: Path


@dataclass(frozen=True)
class ItemFinished(Event):
    item_id: str
    state: ItemState
    reason: str
    commit: str | None = None
    """The merge commit on main, or the item's own commit kept elsewhere."""
    kept_ref: str | None = None
    """Where an item that did not land keeps its commit."""


@dataclass(frozen=True)
class Reverted(Event):
    """A merged item's merge was reverted on main, or the revert failed."""

    item_id: str
    merge: str
    commit: str | None
    """The commit that reverts the merge; None when it failed."""
    error: str | None = None
    """Why the revert was not made; main is then unchanged."""


@dataclass(frozen=True)
class SessionFinished(Event):
    outcomes: dict[str, ItemState]
    aborted: bool = False
    error: str | None = None
    """Why the session stopped early; None when it ran to the end."""
