"""Driving the engine against a real demo service, as an operator would."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conftest import git

from optui.engine import Engine
from optui.events import Decision, DecisionNeeded, Event, SessionFinished
from optui.plan import Plan, load_plan

LOOSE_P99 = "http_req_duration{expected_response:true}: p(99) <= baseline + 40"
"""A latency gate wide enough that a change with no effect passes on a busy machine,
even against a fast baseline whose one-second runs spike by 10-15 ms."""


LONG_TESTS = (
    'case "$(git symbolic-ref --short HEAD)" in\n'
    '  "test/${LONG_ITEM:-}") make k6 DURATION=60s ;;\n'
    "  *) make k6 ;;\n"
    "esac\n"
)
"""A test command whose runs stay short, except the item named by LONG_ITEM,
whose load test would run for a minute unless it is stopped."""


def scripted_tests(folder: Path, script: str) -> str:
    """A plan's test command that runs script (sh) in place of ``make k6``."""
    path = folder / "k6.sh"
    path.write_text(script)
    return f"sh {path}"


def long_tests_command(folder: Path) -> str:
    """The plan's test command running LONG_TESTS (set LONG_ITEM before the run)."""
    return scripted_tests(folder, LONG_TESTS)


def write_plan(
    folder: Path,
    repo: Path,
    items: str,
    *,
    runs: int = 1,
    p99_gate: str = LOOSE_P99,
    test: str = "make k6",
    ready: str = "command: make health",
    extra: str = "",
    gates: tuple[str, ...] = (),
    commands: tuple[tuple[str, str], ...] = (),
    verdicts: str = "seed",
) -> Plan:
    """A plan for the demo service with the given items (YAML, one phase).

    extra: more top-level YAML (a docker section, say); gates: more gates;
    commands: (step, command) pairs that replace the default commands;
    verdicts: the statistics' rule. These plans use the seed rule (every run
    against the band) unless a test is about the interval verdicts: their
    single one-second runs are about the engine's mechanics, not statistics.
    """
    all_gates = (
        "http_req_failed: rate == 0",
        "payments_inconsistency: count == 0",
        p99_gate,
        *gates,
    )
    head = [
        "name: Engine test",
        "target:",
        f"  repo: {repo}",
        "commands:",
        f"  test: {test}",
        *(f"  {step}: {command}" for step, command in commands),
        "ready:",
        f"  {ready}",
        "  timeout: 20",
        "  interval: 0.1",
        f"runs: {runs}",
        "statistics:",
        f"  verdicts: {verdicts}",
        "gates:",
        *(f'  - "{gate}"' for gate in all_gates),
    ]
    text = "\n".join(head) + "\n" + textwrap.dedent(extra)
    text += "phases:\n  - name: Items\n    items:\n"
    text += textwrap.indent(textwrap.dedent(items), " " * 6)
    path = folder / "plan.yaml"
    path.write_text(text)
    return load_plan(path)


@dataclass
class Session:
    """What an operator saw during a session, and how it ended."""

    engine: Engine
    events: list[Event] = field(default_factory=list)
    finished: SessionFinished | None = None

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def state(self, item_id: str) -> str:
        return self.engine.records[item_id].state.value

    def reason(self, item_id: str) -> str:
        return self.engine.records[item_id].reason


def run_session(
    plan: Plan,
    *,
    decision: Decision = Decision.MERGE,
    react: Callable[[Engine, Event], None] | None = None,
) -> Session:
    """Run a whole session, answering every decision with the given one."""
    engine = Engine(plan)
    session = Session(engine)

    def listen(event: Event) -> None:
        session.events.append(event)
        if isinstance(event, DecisionNeeded):
            engine.decide(event.item_id, decision)
        if react is not None:
            react(engine, event)

    engine.subscribe(listen)
    session.finished = engine.run()
    return session


def assert_clean_on_main(repo: Path) -> None:
    """The operator's repository as optui must leave it: clean, on main."""
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(repo, "branch", "--list", "test/*") == ""


def item(item_id: str, apply: str, *, extra: str = "") -> str:
    """One item of a plan, in YAML."""
    return textwrap.dedent(
        f"""\
        - id: {item_id}
          title: Change {item_id}
          risk: low
          expect: something
          scope: {item_id.split("-")[0]}
          apply:
            {apply}
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")
