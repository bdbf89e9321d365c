"""Plan files: the optimizations to re-apply, in phases, and how to prove each."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from optui.errors import PlanError, Problem
from optui.gates import DEFAULT_GATES, Gate, GateSyntaxError, parse_gate
from optui.yamlpos import UNREADABLE, Field, Reader, is_null


class Risk(Enum):
    """How likely a change is to break the service, as the plan's author judged."""

    VERY_LOW = "very low"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ApplyKind(Enum):
    """How an item's change reaches its test branch."""

    CHERRY_PICK = "cherry-pick"
    """Cherry-pick a commit (any ref or SHA the target repository resolves)."""
    PATCH = "patch"
    """Apply a patch file, named relative to the plan file."""
    COMMAND = "command"
    """Run a command in the repository that edits files."""
    MANUAL = "manual"
    """Wait for the operator to edit the working tree and say done."""


class ReadyKind(Enum):
    """How to tell that the deployed service is ready for load."""

    SLEEP = "sleep"
    HTTP = "http"
    COMMAND = "command"
    DOCKER = "docker"
    """Every container of the plan's stack running and, where it has a health
    check, healthy."""


@dataclass(frozen=True)
class Apply:
    """How an item's change is applied."""

    kind: ApplyKind
    source: str | None
    """The ref, the patch path (resolved), the command or the instructions; None
    when the plan leaves it for the operator to fill in."""
    line: int = field(default=0, compare=False)
    """Where the source is given in the plan file."""
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Commands:
    """The commands run in the target repository, each through /bin/sh."""

    build: str = "make build"
    up: str = "make up"
    down: str = "make down"
    test: str = "make k6"


@dataclass(frozen=True)
class Ready:
    """How long and how to wait for the service after deploying it."""

    kind: ReadyKind = ReadyKind.SLEEP
    target: str = "5"
    """Seconds to sleep, the URL to poll, or the command to retry."""
    timeout: float = 60.0
    """Seconds before readiness counts as failed."""
    interval: float = 0.5
    """Seconds between two attempts."""


@dataclass(frozen=True)
class DockerStack:
    """The containers a deployment runs, as the Docker Engine knows them."""

    project: str | None = None
    """The compose project: containers labelled com.docker.compose.project=<it>."""
    names: tuple[str, ...] = ()
    """Containers named one by one, with or without a project."""
    memory_budget_mb: float | None = None
    """The memory the whole stack may use, shown against its total."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds each kind of step may take before it is stopped."""

    apply: float = 600.0
    build: float = 1800.0
    up: float = 600.0
    down: float = 300.0
    test: float = 1800.0


class VerdictRule(Enum):
    """How the latency gates (those measured against the baseline) decide."""

    INTERVAL = "interval"
    """By a confidence interval of the change over all runs' requests: pass,
    fail, or inconclusive while the interval straddles the limit."""
    SEED = "seed"
    """Every run on its own against the band, as the correctness gates are."""


@dataclass(frozen=True)
class Statistics:
    """How verdicts are drawn from the runs."""

    verdicts: VerdictRule = VerdictRule.INTERVAL
    confidence: float = 0.95
    """Of the interval of each latency gate's change."""
    max_runs: int | None = None
    """Runs an item may get while its verdict is inconclusive; None: twice ``runs``."""
    alternate: bool = True
    """Measure items that must improve against main in turns (A B A B ...)."""


@dataclass(frozen=True)
class Item:
    """One optimization to re-apply."""

    id: str
    """A slug, unique in the plan; the test branch is ``test/<id>``."""
    title: str
    risk: Risk
    expect: str
    """What the change is expected to do."""
    scope: str
    """The conventional-commit scope: ``perf(<scope>): <title>``."""
    apply: Apply
    phase: str
    task: str | None = None
    """The plan author's own reference for the change, if any."""
    deferred: str | None = None
    """Why the item is not run for now; None when it is to be run."""
    require_improvement: bool = False
    """Merge only if latency improves on main, rather than staying within bounds."""
    line: int = field(default=0, compare=False)
    """Where the item starts in the plan file."""
    column: int = field(default=0, compare=False)

    @property
    def branch(self) -> str:
        return f"test/{self.id}"

    @property
    def commit_message(self) -> str:
        return f"perf({self.scope}): {self.title}"


@dataclass(frozen=True)
class Phase:
    """A group of items, run in order; a deferred phase defers all its items."""

    name: str
    items: tuple[Item, ...]
    deferred: str | None = None


@dataclass(frozen=True)
class Plan:
    """A whole plan file, validated."""

    path: Path
    name: str
    repo: Path | None
    """The target repository; None when the plan leaves it to the command line."""
    main: str
    commands: Commands
    ready: Ready
    runs: int
    gates: tuple[Gate, ...]
    phases: tuple[Phase, ...]
    timeouts: Timeouts = Timeouts()
    fail_fast: bool = True
    """Stop testing an item at its first failed run."""
    digest: str = ""
    """SHA-256 of the plan file's text, to notice edits made during a session."""
    docker: DockerStack | None = None
    """The stack's containers, when the plan watches them through the engine."""
    statistics: Statistics = Statistics()

    @property
    def max_runs(self) -> int:
        """The most runs an inconclusive item gets."""
        return max(self.statistics.max_runs or 2 * self.runs, self.runs)

    def items(self) -> Iterator[Item]:
        for phase in self.phases:
            yield from phase.items

    def item(self, item_id: str) -> Item:
        for item in self.items():
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def with_repo(self, repo: Path) -> Plan:
        return dataclasses.replace(self, repo=repo)

    def with_docker_project(self, project: str) -> Plan:
        stack = self.docker or DockerStack()
        return dataclasses.replace(
            self, docker=dataclasses.replace(stack, project=project)
        )

    def gates_for(self, item: Item) -> tuple[Gate, ...]:
        """The gates an item is held to: improvement gates where it must improve."""
        if not item.require_improvement:
            return self.gates
        return tuple(g.as_improvement() for g in self.gates)


TOP_KEYS = (
    "name",
    "target",
    "commands",
    "ready",
    "runs",
    "gates",
    "phases",
    "timeouts",
    "fail_fast",
    "docker",
    "statistics",
)
STATISTICS_KEYS = ("verdicts", "confidence", "max_runs", "alternate")
DOCKER_KEYS = ("project", "containers", "memory_budget_mb")
TARGET_KEYS = ("repo", "main")
COMMAND_KEYS = ("build", "up", "down", "test")
READY_KEYS = ("sleep", "http", "command", "docker", "timeout", "interval")
TIMEOUT_KEYS = ("apply", "build", "up", "down", "test")
PHASE_KEYS = ("name", "deferred", "items")
ITEM_KEYS = (
    "id",
    "title",
    "task",
    "risk",
    "expect",
    "scope",
    "apply",
    "deferred",
    "require_improvement",
)
APPLY_KEYS = tuple(kind.value for kind in ApplyKind)

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file; raise PlanError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([Problem(path, 0, 0, f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError:
        raise PlanError([_undecodable(path)]) from None
    return parse_plan(path, text)


def _undecodable(path: Path) -> Problem:
    """Where a plan file that is not UTF-8 text first goes wrong."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8")) + 1
        return Problem(
            path,
            line,
            column,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the plan as UTF-8",
        )
    return Problem(path, 1, 1, "not UTF-8 text: save the plan as UTF-8")


def parse_plan(path: Path, text: str) -> Plan:
    """Validate plan text read from path; raise PlanError listing every problem."""
    reader = Reader(path)
    root = reader.compose(text)
    plan = None
    if root is None and not reader.problems:
        reader.problems.append(
            Problem(path, 1, 1, "the plan is empty: give it at least 'phases'")
        )
    elif root is not None:
        plan = _PlanBuilder(reader, path).build(root)
    if reader.problems or plan is None:
        raise PlanError(reader.problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return dataclasses.replace(plan, digest=digest)


class _PlanBuilder:
    def __init__(self, reader: Reader, path: Path) -> None:
        self.r = reader
        self.path = path
        self.ids: dict[str, int] = {}

    def build(self, root: Node) -> Plan | None:
        top = self.r.mapping(root, "plan", TOP_KEYS)
        if top is None:
            return None
        name = self._text(top, "name", "plan name") or self.path.stem
        repo, main = self._target(top.get("target"))
        commands = self._commands(top.get("commands"))
        ready = self._ready(top.get("ready"))
        timeouts = self._timeouts(top.get("timeouts"))
        runs = 3
        if "runs" in top:
            runs = self.r.integer(top["runs"].value, "runs", minimum=1) or 3
        fail_fast = True
        if "fail_fast" in top:
            fail_fast = self.r.boolean(top["fail_fast"].value, "fail_fast") is not False
        gates = self._gates(top.get("gates"))
        docker = self._docker(top.get("docker"))
        statistics = self._statistics(top.get("statistics"))
        if ready.kind is ReadyKind.DOCKER and docker is None:
            self.r.fail(
                top["ready"].value,
                "ready.docker needs a 'docker' section naming the project or "
                "the containers",
            )
        if "phases" not in top:
            self.r.fail(root, "the plan has no 'phases'")
            phases: tuple[Phase, ...] = ()
        else:
            phases = self._phases(top["phases"].value)
        return Plan(
            path=self.path,
            name=name,
            repo=repo,
            main=main,
            commands=commands,
            ready=ready,
            runs=runs,
            gates=gates,
            phases=phases,
            timeouts=timeouts,
            fail_fast=fail_fast,
            docker=docker,
            statistics=statistics,
        )

    def _text(self, fields: dict[str, Field], key: str, what: str) -> str | None:
        if key not in fields:
            return None
        return self.r.string(fields[key].value, what)

    def _target(self, entry: Field | None) -> tuple[Path | None, str]:
        if entry is None:
            return None, "main"
        fields = self.r.mapping(entry.value, "target", TARGET_KEYS)
        if fields is None:
            return None, "main"
        repo = None
        if "repo" in fields:
            node = fields["repo"].value
            text = self.r.string(node, "target.repo")
            if text:
                repo = self._resolve(self.path.parent, text, node, "target.repo")
        main = self._text(fields, "main", "target.main") or "main"
        if not _BRANCH.match(main) or ".." in main or main.endswith((".lock", "/")):
            self.r.fail(
                fields["main"].value, f"target.main: {main!r} is no branch name"
            )
        return repo, main

    def _commands(self, entry: Field | None) -> Commands:
        if entry is None:
            return Commands()
        fields = self.r.mapping(entry.value, "commands", COMMAND_KEYS)
        if fields is None:
            return Commands()
        given = {}
        for key in COMMAND_KEYS:
            value = self._text(fields, key, f"commands.{key}")
            if value:
                given[key] = value
        return Commands(**given)

    def _ready(self, entry: Field | None) -> Ready:
        if entry is None:
            return Ready()
        fields = self.r.mapping(entry.value, "ready", READY_KEYS)
        if fields is None:
            return Ready()
        kinds = [k for k in ("sleep", "http", "command", "docker") if k in fields]
        if len(kinds) != 1:
            self.r.fail(
                entry.value,
                "ready: give exactly one of 'sleep', 'http', 'command' or 'docker'",
            )
            return Ready()
        kind = ReadyKind(kinds[0])
        node = fields[kinds[0]].value
        if kind is ReadyKind.DOCKER:
            if self.r.boolean(node, "ready.docker") is not True:
                self.r.fail(node, "ready.docker: write 'docker: true'")
            target = "containers"
        elif kind is ReadyKind.SLEEP:
            seconds = self.r.number(node, "ready.sleep")
            target = f"{seconds:g}" if seconds is not None else "0"
        else:
            target = self.r.string(node, f"ready.{kind.value}") or ""
            if (
                kind is ReadyKind.HTTP
                and target
                and not re.match(r"^https?://", target)
            ):
                self.r.fail(node, f"ready.http: {target!r} is not an http(s) URL")
        timeout, interval = 60.0, 0.5
        if "timeout" in fields:
            timeout = self.r.number(fields["timeout"].value, "ready.timeout") or 60.0
        if "interval" in fields:
            interval = (
                self.r.number(fields["interval"].value, "ready.interval", minimum=0.01)
                or 0.5
            )
        return Ready(kind, target, timeout, interval)

    def _docker(self, entry: Field | None) -> DockerStack | None:
        if entry is None:
            return None
        fields = self.r.mapping(entry.value, "docker", DOCKER_KEYS)
        if fields is None:
            return None
        project = self._text(fields, "project", "docker.project")
        names: list[str] = []
        if "containers" in fields:
            for node in (
                self.r.sequence(fields["containers"].value, "docker.containers") or ()
            ):
                name = self.r.string(node, "docker.containers entry")
                if name:
                    names.append(name)
        if not project and not names:
            self.r.fail(entry.value, "docker: give a 'project' or 'containers'")
        budget = None
        if "memory_budget_mb" in fields:
            budget = self.r.number(
                fields["memory_budget_mb"].value, "docker.memory_budget_mb", minimum=1
            )
        return DockerStack(project or None, tuple(names), budget)

    def _statistics(self, entry: Field | None) -> Statistics:
        default = Statistics()
        fields = None
        if entry is not None:
            fields = self.r.mapping(entry.value, "statistics", STATISTICS_KEYS)
        if not fields:
            return default
        verdicts, confidence = default.verdicts, default.confidence
        if "verdicts" in fields:
            node = fields["verdicts"].value
            text = self.r.string(node, "statistics.verdicts")
            rules = {rule.value: rule for rule in VerdictRule}
            if text in rules:
                verdicts = rules[text]
            elif text is not None:
                choices = " or ".join(repr(r) for r in rules)
                self.r.fail(node, f"statistics.verdicts: {text!r} is not {choices}")
        if "confidence" in fields:
            node = fields["confidence"].value
            level = self.r.number(node, "statistics.confidence")
            if level is not None and not 0.5 <= level < 1:
                self.r.fail(node, "statistics.confidence must lie in [0.5, 1)")
            elif level is not None:
                confidence = level
        max_runs = None
        if "max_runs" in fields:
            node = fields["max_runs"].value
            max_runs = self.r.integer(node, "statistics.max_runs", minimum=1)
        alternate = True
        if "alternate" in fields:
            node = fields["alternate"].value
            alternate = self.r.boolean(node, "statistics.alternate") is not False
        return Statistics(verdicts, confidence, max_runs, alternate)

    def _timeouts(self, entry: Field | None) -> Timeouts:
        if entry is None:
            return Timeouts()
        fields = self.r.mapping(entry.value, "timeouts", TIMEOUT_KEYS)
        if fields is None:
            return Timeouts()
        given = {}
        for key, item in fields.items():
            value = self.r.number(item.value, f"timeouts.{key}", minimum=1)
            if value is not None:
                given[key] = value
        return Timeouts(**given)

    def _gates(self, entry: Field | None) -> tuple[Gate, ...]:
        if entry is None:
            return tuple(parse_gate(text) for text in DEFAULT_GATES)
        nodes = self.r.sequence(entry.value, "gates")
        gates = []
        for node in nodes or ():
            text = self.r.string(node, "gate")
            if text is None:
                continue
            try:
                gates.append(parse_gate(text))
            except GateSyntaxError as exc:
                self.r.fail(node, str(exc))
        if nodes == []:
            self.r.fail(
                entry.value, "gates: the list is empty; omit it for the defaults"
            )
        return tuple(gates)

    def _phases(self, node: Node) -> tuple[Phase, ...]:
        nodes = self.r.sequence(node, "phases")
        if nodes is None:
            return ()
        if not nodes:
            self.r.fail(node, "phases: the plan has no phases")
        phases = []
        for number, phase_node in enumerate(nodes, start=1):
            phase = self._phase(phase_node, number)
            if phase is not None:
                phases.append(phase)
        return tuple(phases)

    def _phase(self, node: Node, number: int) -> Phase | None:
        fields = self.r.mapping(node, f"phase {number}", PHASE_KEYS)
        if fields is None:
            return None
        name = self._text(fields, "name", f"phase {number} name") or f"Phase {number}"
        deferred = self._reason(fields, f"phase {name!r}")
        items: list[Item] = []
        if "items" not in fields:
            self.r.fail(node, f"phase {name!r} has no 'items'")
        else:
            for item_node in self.r.sequence(fields["items"].value, "items") or ():
                item = self._item(item_node, name, deferred)
                if item is not None:
                    items.append(item)
        return Phase(name, tuple(items), deferred)

    def _reason(self, fields: dict[str, Field], what: str) -> str | None:
        if "deferred" not in fields:
            return None
        node = fields["deferred"].value
        if is_null(node):
            return None
        value = None
        if isinstance(node, ScalarNode):
            value = self.r.scalar(node, f"{what}: deferred")
        if value is False or value is UNREADABLE:
            return None
        if value is True:
            return "deferred"
        return self.r.string(node, f"{what}: deferred reason")

    def _item(self, node: Node, phase: str, phase_deferred: str | None) -> Item | None:
        label = _peek_id(node)
        what = f"item {label!r}" if label else f"item in phase {phase!r}"
        fields = self.r.mapping(node, what, ITEM_KEYS)
        if fields is None:
            return None
        item_id = self._item_id(fields, node)
        for key in ("title", "risk", "scope"):
            if key not in fields:
                self.r.fail(node, f"{what}: missing '{key}'")
        title = self._text(fields, "title", f"{what}: title") or ""
        scope = self._text(fields, "scope", f"{what}: scope") or ""
        if scope and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$", scope):
            self.r.fail(fields["scope"].value, f"{what}: scope {scope!r} is not a word")
        risk = self._risk(fields, what)
        expect = self._text(fields, "expect", f"{what}: expect") or ""
        task = None
        if "task" in fields:
            task = self.r.string(fields["task"].value, f"{what}: task")
        improve = False
        if "require_improvement" in fields:
            value = self.r.boolean(fields["require_improvement"].value, what)
            improve = bool(value)
        deferred = self._reason(fields, what) or phase_deferred
        return Item(
            id=item_id or "",
            title=title,
            risk=risk,
            expect=expect,
            scope=scope,
            apply=self._apply(fields.get("apply"), node, what),
            phase=phase,
            task=task,
            deferred=deferred,
            require_improvement=improve,
            line=self.r.line(node),
            column=node.start_mark.column + 1,
        )

    def _item_id(self, fields: dict[str, Field], node: Node) -> str | None:
        if "id" not in fields:
            self.r.fail(node, "item: missing 'id'")
            return None
        id_node = fields["id"].value
        item_id = self.r.string(id_node, "item id")
        if item_id is None:
            return None
        if (
            not _SLUG.match(item_id)
            or ".." in item_id
            or item_id.endswith((".lock", "."))
        ):
            self.r.fail(
                id_node,
                f"item id {item_id!r}: use lowercase letters, digits, '-', '_' or '.' "
                "(it names the branch test/<id>)",
            )
        if item_id in self.ids:
            self.r.fail(
                id_node,
                f"duplicate item id {item_id!r} "
                f"(first used on line {self.ids[item_id]})",
            )
        else:
            self.ids[item_id] = self.r.line(id_node)
        return item_id

    def _risk(self, fields: dict[str, Field], what: str) -> Risk:
        if "risk" not in fields:
            return Risk.MEDIUM
        node = fields["risk"].value
        text = (self.r.string(node, f"{what}: risk") or "").lower().replace("_", " ")
        text = text.replace("-", " ")
        for risk in Risk:
            if risk.value == text:
                return risk
        if text:
            choices = ", ".join(r.value for r in Risk)
            self.r.fail(node, f"{what}: risk {text!r} is not one of {choices}")
        return Risk.MEDIUM

    def _apply(self, entry: Field | None, item_node: Node, what: str) -> Apply:
        if entry is None:
            self.r.fail(item_node, f"{what}: missing 'apply' ({', '.join(APPLY_KEYS)})")
            return Apply(ApplyKind.MANUAL, None)
        fields = self.r.mapping(entry.value, f"{what}: apply", APPLY_KEYS)
        if not fields or len(fields) != 1:
            if fields is not None:
                self.r.fail(
                    entry.value,
                    f"{what}: apply takes exactly one of {', '.join(APPLY_KEYS)}",
                )
            return Apply(ApplyKind.MANUAL, None)
        key, source = next(iter(fields.items()))
        kind = ApplyKind(key)
        mark = source.value.start_mark
        line, column = mark.line + 1, mark.column + 1
        if is_null(source.value):
            return Apply(kind, None, line, column)
        text = self.r.string(source.value, f"{what}: apply.{key}", allow_empty=True)
        if not text:
            return Apply(kind, None, line, column)
        if kind is ApplyKind.PATCH:
            text = self._patch_path(text, source.value, what)
        return Apply(kind, text, line, column)

    def _patch_path(self, text: str, node: Node, what: str) -> str:
        folder = self.path.parent.resolve()
        resolved = self._resolve(folder, text, node, f"{what}: patch")
        if resolved is None:
            return text
        if not resolved.is_relative_to(folder):
            self.r.fail(node, f"{what}: patch {text!r} lies outside the plan's folder")
        return str(resolved)

    def _resolve(self, folder: Path, text: str, node: Node, what: str) -> Path | None:
        """A path given in the plan, relative to folder; None (a problem) if bad."""
        if "\0" in text:
            self.r.fail(node, f"{what}: {text!r} holds a NUL character")
            return None
        try:
            return (folder / Path(text).expanduser()).resolve()
        except (OSError, RuntimeError) as exc:
            self.r.fail(node, f"{what}: {text!r} is not a usable path ({exc})")
            return None


def _peek_id(node: Node) -> str | None:
    """An item's id, read before the item is validated, to name it in problems."""
    if not isinstance(node, MappingNode):
        return None
    for key, value in node.value:
        named = isinstance(key, ScalarNode) and key.value == "id"
        if named and isinstance(value, ScalarNode) and value.value:
            return str(value.value)
    return None
