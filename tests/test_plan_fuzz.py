"""The plan loader under fuzzing: it returns a Plan or a PlanError, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import assert_every_problem_placed
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optui.errors import PlanError
from optui.gates import DEFAULT_GATES
from optui.plan import (
    APPLY_KEYS,
    COMMAND_KEYS,
    DOCKER_KEYS,
    ITEM_KEYS,
    PHASE_KEYS,
    READY_KEYS,
    TARGET_KEYS,
    TIMEOUT_KEYS,
    TOP_KEYS,
    Plan,
    Risk,
    load_plan,
    parse_plan,
)

ROOT = Path(__file__).resolve().parents[1]
PLANS = sorted(ROOT.glob("plans/*.yaml")) + sorted(ROOT.glob("optui/demo/plan*.yaml"))
TEXTS = {path: path.read_text(encoding="utf-8") for path in PLANS}
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HERE = ROOT / "plans" / "fuzz.yaml"
"""The path fuzzed text is said to come from (it is never written)."""

SCHEMA_KEYS = sorted(
    set(TOP_KEYS)
    | set(DOCKER_KEYS)
    | set(TARGET_KEYS)
    | set(COMMAND_KEYS)
    | set(READY_KEYS)
    | set(TIMEOUT_KEYS)
    | set(PHASE_KEYS)
    | set(ITEM_KEYS)
    | set(APPLY_KEYS)
)
WORDS = (
    "main",
    "make build",
    "http://127.0.0.1:8080/health",
    "ftp://nowhere",
    "../payments",
    "~",
    "~nosuchuser/repo",
    "patches/fix.diff",
    "../../outside.diff",
    "demo/precompute-fees",
    "First-Item",
    "a..b",
    "x.lock",
    "",
    " ",
    "true",
    "0",
    *DEFAULT_GATES,
    "http_req_failed: ratio == 0",
    "m{tag}: p(99) < 5",
    *(risk.value for risk in Risk),
    "tiny",
)


def assert_loads_or_explains(path: Path, load: Callable[[], Plan]) -> None:
    """Loading gives a Plan, or a PlanError whose every problem has a place."""
    try:
        plan = load()
    except PlanError as exc:
        assert_every_problem_placed(exc, path)
    else:
        assert isinstance(plan, Plan)


# Arbitrary text.


@FUZZ
@given(st.text(max_size=400))
@example("")
@example("# only a comment\n")
@example("name: x\x01\n")
@example("name: \ud800\n")
@example("[" * 3000)
@example("runs: !!int abc\n")
@example("runs: !!timestamp abc\n")
@example("name: !!python/object:os.system x\n")
@example("fail_fast: !!bool maybe\n")
@example("phases:\n - items:\n   - id: !!binary xx\n")
@example("phases:\n - name: a\n   deferred: {[1]: 2}\n   items: []\n")
@example('target:\n  repo: "a\\0b"\n')
@example("target:\n  repo: ~nosuchuser/x\n")
@example("phases: &p\n  - name: a\n    items: *p\n")
def test_arbitrary_text(text: str) -> None:
    assert_loads_or_explains(HERE, lambda: parse_plan(HERE, text))


# YAML-ish structures with the plan schema's keys, dumped as YAML.

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**12),
    st.floats(),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=8), st.integers())
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=20,
)
odd = st.one_of(st.sampled_from(WORDS), anything)
"""Values that are wrong in most places a plan could hold them."""
numbers = st.one_of(st.integers(min_value=1, max_value=100), st.floats(1, 100))
texts = st.sampled_from(["Payments", "Fee table", "p99 falls", "x"])
ids = st.builds(
    "{}-{}".format, st.sampled_from(["fees", "a.b", "pool_5"]), st.integers(0, 99)
)
risks = st.sampled_from([*(risk.value for risk in Risk), "very_low", "High"])
sources = st.sampled_from(["demo/fees", "patches/fix.diff", "make tune", None])
bad_key = st.sampled_from(SCHEMA_KEYS).map(lambda key: key[:-1] + "x")


@st.composite
def plan_data(draw: st.DrawFn) -> dict[object, object]:
    """A plan as a structure: well formed, or with some fields gone wrong.

    Each example draws how often a value is replaced by an odd one, a key
    dropped or a stray key added, so that some plans are valid and the others
    go wrong at any depth.
    """
    rate = draw(st.sampled_from([0.0, 0.0, 0.03, 0.1, 0.3]))

    def chance(p: float) -> bool:
        return p > 0 and draw(st.floats(0, 1)) < p

    def value(good: st.SearchStrategy[object]) -> object:
        return draw(odd) if chance(rate) else draw(good)

    def section(fields: dict[str, object], keep: float = 1.0) -> object:
        """Fields (values already drawn), some left out, now and then a stray key."""
        out: dict[object, object] = {
            key: field
            for key, field in fields.items()
            if not chance(rate) and (keep == 1.0 or chance(keep))
        }
        if chance(rate):
            out[draw(bad_key)] = draw(anything)
        return draw(odd) if chance(rate / 2) else out

    def item() -> object:
        kind = draw(st.sampled_from(APPLY_KEYS))
        fields = {
            "id": value(ids),
            "title": value(texts),
            "risk": value(risks),
            "scope": value(st.sampled_from(["core", "fees", "http.v2"])),
            "apply": section({kind: value(sources)}),
            "task": value(st.one_of(texts, st.integers(1, 20))),
            "expect": value(texts),
            "deferred": value(st.one_of(texts, st.booleans())),
            "require_improvement": value(st.booleans()),
        }
        optional = ("task", "expect", "deferred", "require_improvement")
        for key in optional:
            if not chance(0.3):
                del fields[key]
        return section(fields)

    def phase() -> object:
        fields: dict[str, object] = {"name": value(texts)}
        if chance(0.2):
            fields["deferred"] = value(st.one_of(texts, st.booleans()))
        count = draw(st.integers(min_value=0, max_value=3))
        fields["items"] = [item() for _ in range(count)]
        return section(fields)

    kind = draw(st.sampled_from(["sleep", "http", "command"]))
    ready_values = {
        "sleep": st.integers(0, 5),
        "http": st.just("http://127.0.0.1:8080/health"),
        "command": st.just("make health"),
    }
    ready = section({"timeout": value(numbers), "interval": value(numbers)}, 0.5)
    if isinstance(ready, dict) and not chance(rate):
        ready[kind] = value(ready_values[kind])
    fields: dict[str, object] = {
        "name": value(texts),
        "target": section(
            {
                "repo": value(st.sampled_from(["../payments", "repo", "~"])),
                "main": value(st.sampled_from(["main", "trunk", "release/1.0"])),
            },
            0.6,
        ),
        "commands": section(
            {key: value(st.just(f"make {key}")) for key in COMMAND_KEYS}, 0.4
        ),
        "ready": ready,
        "runs": value(st.integers(1, 5)),
        "fail_fast": value(st.booleans()),
        "timeouts": section({key: value(numbers) for key in TIMEOUT_KEYS}, 0.3),
        "gates": value(st.lists(st.sampled_from(DEFAULT_GATES), min_size=1)),
    }
    if chance(0.2):
        fields["docker"] = section(
            {
                "project": value(texts),
                "containers": value(st.lists(texts, max_size=2)),
                "memory_budget_mb": value(numbers),
            }
        )
    plan = section({key: field for key, field in fields.items() if draw(st.booleans())})
    count = draw(st.integers(min_value=1, max_value=3))
    phases = [phase() for _ in range(count)]
    if isinstance(plan, dict):
        plan["phases"] = draw(odd) if chance(rate) else phases
        return plan
    return {"phases": plan}


TAGS = (
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!timestamp",
    "!!binary",
    "!!set",
    "!!seq",
    "!!map",
    "!local",
    "!!python/object:os.system",
)


@st.composite
def dumped(draw: st.DrawFn) -> str:
    """A plan structure as YAML text, with now and then an explicit tag."""
    data = draw(anything) if draw(st.integers(0, 4)) == 0 else draw(plan_data())
    text = yaml.safe_dump(data, default_flow_style=draw(st.booleans()), sort_keys=False)
    lines = text.splitlines(keepends=True)
    tagged = st.lists(st.integers(0, len(lines) - 1), max_size=2)
    for number in draw(tagged) if draw(st.booleans()) else []:
        line = lines[number]
        mark = ": " if ": " in line else "- "
        tag = draw(st.sampled_from(TAGS))
        lines[number] = line.replace(mark, f"{mark}{tag} ", 1)
    return "".join(lines)


@FUZZ
@given(dumped())
def test_yaml_structures_shaped_like_plans(text: str) -> None:
    assert_loads_or_explains(HERE, lambda: parse_plan(HERE, text))


# Mutations of the real plans.

CHANGES = (
    "delete line",
    "duplicate line",
    "replace line",
    "indent",
    "dedent",
    "delete character",
    "replace character",
    "insert",
)
MARKS = [*":-[]{}#&*!|>'\"%@`, ?\t\n\\~", "  ", "- ", ": ", "!!int ", "<<: "]


@st.composite
def mutated_plans(draw: st.DrawFn) -> tuple[Path, str]:
    """One of the real plans with a few lines or characters changed."""
    path = draw(st.sampled_from(PLANS))
    lines = TEXTS[path].splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        line = lines[where]
        at = draw(st.integers(min_value=0, max_value=len(line)))
        mark = draw(st.one_of(st.sampled_from(MARKS), st.characters()))
        change = draw(st.sampled_from(CHANGES))
        if change == "delete line":
            del lines[where]
        elif change == "duplicate line":
            lines.insert(where, line)
        elif change == "replace line":
            lines[where] = draw(st.sampled_from(lines))
        elif change == "indent":
            lines[where] = "  " + line
        elif change == "dedent":
            lines[where] = line[1:]
        elif change == "delete character":
            lines[where] = line[:at] + line[at + 1 :]
        elif change == "replace character":
            lines[where] = line[:at] + mark + line[at + 1 :]
        else:
            lines[where] = line[:at] + mark + line[at:]
        if not lines:
            break
    return path, "".join(lines)


@FUZZ
@given(mutated_plans())
def test_mutations_of_the_real_plans(mutated: tuple[Path, str]) -> None:
    path, text = mutated
    assert_loads_or_explains(path, lambda: parse_plan(path, text))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(
    st.sampled_from(PLANS),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(max_size=3))),
)
@example(PLANS[0], [(0.5, b"\xff")])
@example(PLANS[0], [(0.0, b"\xe2\x82")])
def test_bytes_of_a_plan_file_changed(
    folder: Path, source: Path, changes: list[tuple[float, bytes]]
) -> None:
    """A file that is not UTF-8 any more still gets a place for its problem."""
    data = bytearray(source.read_bytes())
    for at, replacement in changes:
        index = int(at * len(data))
        data[index : index + len(replacement)] = replacement
    path = folder / "plan.yaml"
    path.write_bytes(bytes(data))
    assert_loads_or_explains(path, lambda: load_plan(path))
