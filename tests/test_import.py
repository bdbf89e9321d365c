"""Markdown plans turned into plan files: what loads, what is noted, what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import assert_every_problem_placed, optui
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optui.check import check_plan
from optui.errors import PlanError
from optui.gates import DEFAULT_GATES, parse_gate
from optui.importer import ImportedPlan, import_markdown, parse_markdown
from optui.plan import Plan, Risk, load_plan, parse_plan

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "markdown_plans"
P99_10 = "http_req_duration{expected_response:true}: p(99) <= baseline * 1.10"


def write(folder: Path, text: str, name: str = "plan.md") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def imported(path: Path) -> tuple[ImportedPlan, Plan]:
    """Import a Markdown plan, write the YAML beside it, and load that."""
    result = import_markdown(path)
    target = path.with_suffix(".yaml")
    target.write_text(result.text, encoding="utf-8")
    return result, load_plan(target)


def problems_of(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(PlanError) as caught:
        import_markdown(path)
    for problem in caught.value.problems:
        assert problem.path == path
        assert problem.line >= 1 and problem.column >= 1, problem
    return [(p.line, p.message) for p in caught.value.problems]


def apply_missing(plan: Plan) -> list[str]:
    """The ids check_plan reports an apply source missing for, in plan order."""
    report = check_plan(plan, None)
    assert all("apply source missing" in p.message for p in report.problems)
    return [p.message.split("'")[1] for p in report.problems]


def copy_fixture(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes((FIXTURES / name).read_bytes())
    return path


# Whole plans.


def test_the_payments_example_becomes_a_plan(tmp_path: Path) -> None:
    path = copy_fixture(tmp_path, "payments.md")

    result, plan = imported(path)

    assert plan.name == "Payments service optimizations"
    assert plan.repo is None and plan.main == "main"
    assert plan.runs == 3
    assert sorted(g.text for g in plan.gates) == sorted(DEFAULT_GATES)
    assert [p.name for p in plan.phases] == [
        "Phase 1: Safety & Correctness",
        "Phase 3: Algorithm changes",
        "Phase 4: Skip for now",
    ]
    rows = [
        (i.id, i.title, i.task, i.risk, i.deferred, i.require_improvement)
        for i in plan.items()
    ]
    assert rows == [
        ("fasthttp-context-copy", "FastHTTP Context Copy", "2", Risk.LOW, None, False),
        (
            "pre-allocated-slices",
            "Pre-allocated Slices",
            "3",
            Risk.VERY_LOW,
            None,
            False,
        ),
        (
            "sequential-getsummary",
            "Sequential GetSummary",
            "13",
            Risk.MEDIUM,
            None,
            True,
        ),
        (
            "redis-pool-500",
            "Redis Pool 500",
            None,
            Risk.MEDIUM,
            "caused failures",
            False,
        ),
        ("lua-scripts", "Lua Scripts", None, Risk.MEDIUM, "needs investigation", False),
        ("ring-buffer", "Ring Buffer", None, Risk.MEDIUM, "complex, later", False),
    ]
    first = plan.item("fasthttp-context-copy")
    assert first.expect == "Critical correctness fix; may add slight latency"
    assert first.scope == "fasthttp"
    assert first.commit_message == "perf(fasthttp): FastHTTP Context Copy"
    assert plan.item("pre-allocated-slices").expect == "Minor improvement"
    assert (result.items, result.deferred) == (6, 3)
    assert apply_missing(plan) == [
        "fasthttp-context-copy",
        "pre-allocated-slices",
        "sequential-getsummary",
    ]
    assert f"{path}:8: criterion not recognised: 'Memory stays flat'" in "\n".join(
        result.notes
    )


def test_the_yaml_explains_what_to_fill_in(tmp_path: Path) -> None:
    result = import_markdown(copy_fixture(tmp_path, "payments.md"))
    lines = result.text.splitlines()

    assert "          cherry-pick:    # the commit of task 2" in lines
    assert "          cherry-pick:    # the commit of this change" in lines
    assert (
        "  # repo: /path/to/service   (relative to this file), or pass --repo" in lines
    )
    assert "        scope: fasthttp    # from the title: adjust it" in lines
    # The unrecognised criterion stands right above the gates.
    gates = lines.index("gates:")
    assert lines[gates - 1] == "#   line 8: Memory stays flat"
    # The one-line description gives way to the Expected bullet, kept as a comment.
    assert "        # Critical correctness fix" in lines


def test_a_markdown_version_of_the_reapply_plan_gives_the_same_plan(
    tmp_path: Path,
) -> None:
    result, plan = imported(copy_fixture(tmp_path, "reapply.md"))
    original = load_plan(ROOT / "plans" / "reapply.yaml")

    assert plan.name == original.name
    assert plan.runs == original.runs
    assert plan.gates == original.gates
    assert [(p.name, p.deferred) for p in plan.phases] == [
        (p.name, p.deferred) for p in original.phases
    ]
    # Items compare on every field but where they stand in their file.
    assert list(plan.items()) == list(original.items())
    assert (result.items, result.deferred) == (10, 4)
    assert apply_missing(plan) == [i.id for i in original.items() if i.deferred is None]
    deferred_notes = [n for n in check_plan(plan, None).notes if "deferred" in n]
    assert len(deferred_notes) == 4
    # An item-shaped line under a prose heading is not taken, but said so.
    assert any(
        n.endswith(
            ":74: 'Background' is under the heading 'Notes', which is not "
            "a phase: not imported"
        )
        for n in result.notes
    )


def test_windows_line_endings_star_bullets_and_parenthesised_numbers(
    tmp_path: Path,
) -> None:
    text = (
        "#   Cache  work   \r\n"
        "\r\n"
        "##  Acceptance criteria\r\n"
        "*   Must pass 5 consecutive runs\r\n"
        "*   p95 within 5 %\r\n"
        "*   0% errors\r\n"
        "\r\n"
        "####   Phase 1 - Caching   \r\n"
        "1)   **Cache  balances**   (Task 7)  -  Fewer reads\r\n"
        "    *   Risk:   High\r\n"
        "2)   **Warm the cache**\r\n"
        "    *   Risk: very-low\r\n"
        "\r\n"
        "#### Deferred - waits for the new ledger\r\n"
        "*   Ledger sharding\r\n"
    )
    path = tmp_path / "cache.md"
    path.write_bytes(text.encode("utf-8"))

    result, plan = imported(path)

    assert plan.name == "Cache work"
    assert plan.runs == 5
    assert [g.text for g in plan.gates] == [
        "http_req_duration{expected_response:true}: p(95) <= baseline * 1.05",
        "http_req_failed: rate == 0",
    ]
    assert [(p.name, p.deferred) for p in plan.phases] == [
        ("Phase 1 - Caching", None),
        ("Deferred - waits for the new ledger", "waits for the new ledger"),
    ]
    rows = [(i.id, i.title, i.task, i.risk, i.expect, i.deferred) for i in plan.items()]
    assert rows == [
        ("cache-balances", "Cache balances", "7", Risk.HIGH, "Fewer reads", None),
        ("warm-the-cache", "Warm the cache", None, Risk.VERY_LOW, "", None),
        (
            "ledger-sharding",
            "Ledger sharding",
            None,
            Risk.MEDIUM,
            "",
            "waits for the new ledger",
        ),
    ]
    assert result.deferred == 1
    assert "\r" not in result.text


def test_no_criteria_gives_the_defaults_and_says_so(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ## Phase 1: Hot path
        1. **Precompute the fee table** (Task 1) - p99 falls sharply
           - Risk: low
        """,
    )

    result, plan = imported(path)

    assert plan.name == "plan"  # no title heading: the file's name
    assert plan.runs == 3
    assert [g.text for g in plan.gates] == list(DEFAULT_GATES)
    assert (
        f"{path}: no success criteria recognised: wrote the default gates and runs: 3"
        in result.notes
    )
    assert plan.item("precompute-the-fee-table").expect == "p99 falls sharply"


def test_items_without_a_risk_are_medium_with_a_note(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ### Phase 1: Safety
        1. **Copy the context** (Task 2) - correctness fix
        """,
    )

    result, plan = imported(path)

    assert plan.item("copy-the-context").risk is Risk.MEDIUM
    assert any(
        n.startswith(f"{path}:2: item 'Copy the context' gives no risk")
        for n in result.notes
    )
    assert "        risk: medium        # not given in the Markdown" in result.text


def test_criteria_under_an_item_hold_for_the_whole_plan(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ### Phase 1: Safety
        1. **Copy the context** - correctness fix
           - Risk: low
           - p99 must not regress by more than 20%
           - Must survive a restart
        """,
    )

    result, plan = imported(path)

    assert [g.text for g in plan.gates] == [
        "http_req_duration{expected_response:true}: p(99) <= baseline * 1.20"
    ]
    joined = "\n".join(result.notes)
    assert f"{path}:4: criterion under item 'Copy the context' applies" in joined
    assert f"{path}:5: criterion not recognised: 'Must survive a restart'" in joined
    assert "#   line 5: Must survive a restart" in result.text


def test_conflicting_criteria_keep_the_stricter_and_say_so(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ## Success criteria
        - 3 runs
        - p99 within 10%
        - p99 within 5%
        - Must pass 4 consecutive runs

        ## Phase 1
        1. **One change**
           - Risk: low
        """,
    )

    result, plan = imported(path)

    assert plan.runs == 4
    assert [g.text for g in plan.gates] == [
        "http_req_duration{expected_response:true}: p(99) <= baseline * 1.05"
    ]
    joined = "\n".join(result.notes)
    assert f"{path}:4: gate" in joined and f"{path}:5: 4 runs here" in joined


def test_titles_that_yaml_would_misread_come_back_exactly(tmp_path: Path) -> None:
    titles = [
        'Quote "this": a #hash & more',
        "Straße café — ünïcödé ✓ 🚀",
        "true",
        "123",
        "- [x] not a list",
        "back\\slash: {braces} [brackets] *stars* 'single'",
        "% percent @at `tick` | pipe > gt",
    ]
    body = "".join(
        f"{n}. **{t}** (Task {n}: x#y) - expect: {t}\n"
        f"   - Risk: low\n   - Id: item-{n}\n"
        for n, t in enumerate(titles, start=1)
    )
    path = write(tmp_path, '# Name: with # and "quotes"\n### Phase 1: A & B\n' + body)

    result, plan = imported(path)

    assert plan.name == 'Name: with # and "quotes"'
    assert [i.title for i in plan.items()] == titles
    assert [i.expect for i in plan.items()] == [f"expect: {t}" for t in titles]
    assert {i.task for i in plan.items()} == {f"{n}: x#y" for n in range(1, 8)}
    assert result.items == len(titles)


@pytest.mark.parametrize(
    ("sentence", "runs", "gates"),
    [
        ("Must pass 3 consecutive runs", 3, []),
        ("5 runs", 5, []),
        ("Each item passes three load tests", 3, []),
        ("run 7 times", 7, []),
        ("runs: 2", 2, []),
        ("p99 must not regress more than 10%", None, [P99_10]),
        ("p99 within 10%", None, [P99_10]),
        ("p(99) may not increase by more than 10 percent", None, [P99_10]),
        (
            "p99 within 2.5% and median within 5%",
            None,
            [
                "http_req_duration{expected_response:true}: p(99) <= baseline * 1.025",
                "http_req_duration{expected_response:true}: med <= baseline * 1.05",
            ],
        ),
        (
            "p95 under 300 ms",
            None,
            ["http_req_duration{expected_response:true}: p(95) < 300"],
        ),
        (
            "p99 at most 0.5s",
            None,
            ["http_req_duration{expected_response:true}: p(99) <= 500"],
        ),
        ("No payment inconsistencies", None, ["payments_inconsistency: count == 0"]),
        ("Zero inconsistencies", None, ["payments_inconsistency: count == 0"]),
        ("No failed requests", None, ["http_req_failed: rate == 0"]),
        ("Zero errors", None, ["http_req_failed: rate == 0"]),
        ("0% errors", None, ["http_req_failed: rate == 0"]),
        ("error rate 0%", None, ["http_req_failed: rate == 0"]),
        ("`http_req_failed: rate < 0.01`", None, ["http_req_failed: rate < 0.01"]),
        ("checks: rate == 1", None, ["checks: rate == 1"]),
        ("Memory stays flat", None, []),
        (
            "3 runs, zero failed requests, no payment inconsistencies",
            3,
            ["http_req_failed: rate == 0", "payments_inconsistency: count == 0"],
        ),
    ],
)
def test_recognised_criteria(
    tmp_path: Path, sentence: str, runs: int | None, gates: list[str]
) -> None:
    path = write(
        tmp_path,
        f"## Success criteria\n- {sentence}\n\n## Phase 1\n1. **A**\n   - Risk: low\n",
    )

    result, plan = imported(path)

    assert plan.runs == (runs or 3)
    if gates:
        assert [g.text for g in plan.gates] == gates
    elif runs is None:
        # Neither runs nor a gate came of it: the sentence is reported.
        assert any(f"{path}:2: criterion not recognised" in n for n in result.notes)
    for gate in plan.gates:
        parse_gate(gate.text)


@pytest.mark.parametrize(
    "words",
    [
        "Only if it beats the parallel version",
        "must improve p99",
        "Merge only if it measurably improves on the parallel version",
        "has to be faster than main",
        "only if faster",
        "requires an improvement",
        "must outperform main",
    ],
)
def test_must_improve_words_set_require_improvement(tmp_path: Path, words: str) -> None:
    path = write(
        tmp_path,
        f"### Phase 1\n1. **Sequential summary** - {words}\n   - Risk: medium\n"
        "2. **Other** - should be a little faster\n   - Risk: low\n",
    )

    _, plan = imported(path)

    assert [i.require_improvement for i in plan.items()] == [True, False]


@pytest.mark.parametrize(
    ("heading", "reason"),
    [
        ("Phase 4: Skip for now", "deferred in the Markdown plan"),
        ("Deferred", "deferred in the Markdown plan"),
        ("Skipped: caused failures", "caused failures"),
        ("Do not apply", "deferred in the Markdown plan"),
        ("Phase 5: Redis work (skip)", "deferred in the Markdown plan"),
        ("Phase 5: Redis work (deferred: needs upstream)", "needs upstream"),
        ("Phase 6: Deferred (needs investigation)", "needs investigation"),
    ],
)
def test_skip_phase_markers(tmp_path: Path, heading: str, reason: str) -> None:
    path = write(
        tmp_path,
        f"### Phase 1\n1. **Run me**\n   - Risk: low\n\n### {heading}\n"
        "- Redis Pool 500 (caused failures)\n"
        "- Ring Buffer\n"
        "3. **Bold numbered** (Task 9) - it is deferred too\n",
    )

    result, plan = imported(path)

    deferred = [(i.id, i.deferred, i.task) for i in plan.phases[1].items]
    assert deferred == [
        ("redis-pool-500", "caused failures", None),
        ("ring-buffer", reason, None),
        ("bold-numbered", reason, "9"),
    ]
    assert plan.phases[1].deferred == reason
    assert (result.items, result.deferred) == (4, 3)
    assert apply_missing(plan) == ["run-me"]


def test_an_item_deferred_on_its_own(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ### Phase 1
        1. **Keep** - fine
           - Risk: low
        2. **Later** (deferred: needs a new client) - risky
           - Risk: high
        3. **Parked**
           - Status: skipped (flaky)
        """,
    )

    result, plan = imported(path)

    assert [(i.id, i.deferred) for i in plan.items()] == [
        ("keep", None),
        ("later", "needs a new client"),
        ("parked", "flaky"),
    ]
    assert plan.item("later").expect == "risky"
    assert result.deferred == 2


def test_a_wrapped_description_is_read_whole(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ### Phase 1
        1. **Long one** (Task 4) - a description that goes on
           and on across two lines
           Risk: Low
        """,
    )

    _, plan = imported(path)

    item = plan.item("long-one")
    assert item.expect == "a description that goes on and on across two lines"
    assert item.risk is Risk.LOW


# Markdown that cannot become a plan.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [(1, "the Markdown plan is empty")]),
        ("\n  \n\r\n", [(1, "the Markdown plan is empty")]),
        (
            "# Title\n\nSome words.\n- a bullet\n",
            [(1, "no phase headings")],
        ),
        (
            "# Title\n1. **Loose item** - x\n",
            [(1, "no phase headings"), (2, "item 'Loose item' is outside any phase")],
        ),
        (
            "## Phase 1\n1. **Fine**\n   - Risk: low\n2. Not bold (Task 3)\n",
            [(4, "item 'Not bold (Task 3)' has no name in bold")],
        ),
        (
            "## Phase 1\n1. **Same name**\n   - Risk: low\n"
            "## Phase 2\n1. **Same Name!**\n   - Risk: low\n",
            [
                (
                    5,
                    "item 'Same Name!' would get the id 'same-name', as does item "
                    "'Same name' on line 2",
                )
            ],
        ),
        (
            "## Phase 1\n1. **Risky**\n   - Risk: Extreme\n",
            [
                (
                    3,
                    "item 'Risky': risk 'Extreme' is not one of very low, low, medium, "
                    "high",
                )
            ],
        ),
        (
            "## Phase 1\n1. **Risky**\n   - Risk: low to medium\n",
            [(3, "risk 'low to medium' is not one of")],
        ),
        (
            "## Phase 1\nNothing here yet.\n## Phase 2\n1. **A**\n   - Risk: low\n",
            [(1, "phase 'Phase 1' has no items")],
        ),
        (
            "## Phase 1\n1. **A**\n   - Risk: low\n## Rollout\n1. **B** - x\n",
            [(5, "item 'B' is under the heading 'Rollout', which is not a phase")],
        ),
        (
            "## Phase 1\n1. ****\n",
            [(2, "has an empty name")],
        ),
        (
            "## Phase 1\n1. **A**\n   - Id: Not A Slug\n",
            [(3, "item 'A': id 'Not A Slug'")],
        ),
    ],
)
def test_markdown_that_cannot_become_a_plan(
    tmp_path: Path, text: str, expected: list[tuple[int, str]]
) -> None:
    path = tmp_path / "bad.md"
    path.write_text(text, encoding="utf-8", newline="")

    problems = problems_of(path)

    assert len(problems) == len(expected), problems
    for (line, message), (want_line, want) in zip(problems, expected, strict=True):
        assert line == want_line, problems
        assert want in message, problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        # Plan
        1. **Outside** - before any phase
        ## Phase 1
        1. **Dup**
           - Risk: nope
        2. no bold here
        3. **dup**
        ## Phase 2
        """,
    )

    assert [line for line, _ in problems_of(path)] == [2, 5, 6, 7, 8]


def test_a_file_that_is_not_utf8_is_named_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(b"## Phase 1\n1. **Caf\xe9** - x\n")

    with pytest.raises(PlanError) as caught:
        import_markdown(path)

    [problem] = caught.value.problems
    assert (problem.path, problem.line, problem.column) == (path, 2, 9)
    assert "not UTF-8 text (byte 0xe9)" in problem.message


def test_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read"):
        import_markdown(tmp_path / "absent.md")


# Any text at all: a plan that loads, or a PlanError with places.

FRAGMENTS = [
    "",
    "# Payments",
    "## Success criteria",
    "### Phase 1: Safety & Correctness",
    "#### Phase 4: Skip for now",
    "## Deferred (needs investigation)",
    "## Notes",
    "## Rollout",
    "**Phase 2: bold**",
    "1. **FastHTTP Context Copy** (Task 2) - Critical correctness fix",
    "2) **Pre-allocated: Slices** (task #3) — Memory",
    "3. **Same**",
    "4. **same**",
    "5. no bold (Task 5)",
    "6. ****",
    "   - Risk: Low",
    "   - Risk: very-low",
    "   - Risk: spicy",
    "   - Expected: must improve p99",
    "   - Id: custom.id",
    "   - Id: Bad Id",
    "   - Scope: http",
    "   - Status: deferred (later)",
    "- Redis Pool 500 (caused failures)",
    "* Lua Scripts",
    "- **Bold bullet** (Task 9)",
    "- Must pass 3 consecutive runs",
    "- p99 must not regress more than 10%",
    "- p0 within 5%",
    "- p99 under 0.2s",
    "- No payment inconsistencies",
    "- Zero failed requests",
    "- 0 runs",
    "- Memory stays flat",
    "- `http_req_failed: rate < 0.01`",
    "Reason: needs upstream",
    "```",
    "<!-- hidden -->",
    "<!--",
    "-->",
    "---",
    "\t\t- tabbed",
    "\ufeff# bom",
    "# \x00\x85\u2028 odd \ud800 chars",
    "1. **\u2029title\x1f** - \x7f",
]


@st.composite
def markdown(draw: st.DrawFn) -> str:
    """Lines drawn from plan-shaped fragments, now and then with noise."""
    lines = draw(
        st.lists(
            st.one_of(
                st.sampled_from(FRAGMENTS),
                st.sampled_from(FRAGMENTS).map(lambda f: "  " + f),
                st.text(max_size=20),
            ),
            max_size=25,
        )
    )
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return ending.join(lines)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
HERE = Path("/nonexistent/fuzz.md")


def assert_imports_or_explains(text: str) -> None:
    try:
        result = parse_markdown(HERE, text)
    except PlanError as exc:
        assert_every_problem_placed(exc, HERE)
        return
    plan = parse_plan(HERE.with_suffix(".yaml"), result.text)
    assert result.items == sum(1 for _ in plan.items()) >= 1
    assert result.deferred == sum(1 for i in plan.items() if i.deferred)
    assert all(note.startswith(f"{HERE}") for note in result.notes)


@FUZZ
@given(markdown())
@example("### Phase 1\n1. **A**\n   - Risk: low\n")
@example("### Phase 1\r\n1) **A**\r\n")
@example("# T\n### Deferred\n- (x)\n")
def test_plan_shaped_text_imports_or_explains(text: str) -> None:
    assert_imports_or_explains(text)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_imports_or_explains(text: str) -> None:
    assert_imports_or_explains(text)


def test_the_import_command_writes_a_plan_that_check_lists_the_sources_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy_fixture(tmp_path, "payments.md")

    status, output = optui(capsys, "import", str(source))

    assert status == 0, output
    written = source.with_suffix(".yaml")
    assert f"wrote {written}: 6 items (3 deferred)" in output
    assert "Memory stays flat" in output  # the criterion it could not read
    status, output = optui(capsys, "check", str(written))
    assert status == 2
    missing = [line for line in output.splitlines() if "apply source missing" in line]
    assert len(missing) == 6 and "3 problems found" in output
    assert sum(line.endswith("(deferred: not needed yet)") for line in missing) == 3

    # A plan file is never overwritten by accident.
    written.write_text("edited by the operator\n")
    status, output = optui(capsys, "import", str(source))
    assert status == 2 and "--force" in output
    assert written.read_text() == "edited by the operator\n"
    status, output = optui(capsys, "import", str(source), "--force")
    assert status == 0 and written.read_text() != "edited by the operator\n"

    missing = tmp_path / "no-such-folder" / "plan.yaml"
    status, output = optui(capsys, "import", str(source), "-o", str(missing))
    assert status == 1 and f"cannot write {missing}: No such file" in output


def test_the_import_command_names_the_line_of_a_malformed_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "### Phase 1: Safety\n1. Pre-allocated slices\n")

    status, output = optui(capsys, "import", str(source), "-o", str(tmp_path / "p"))

    assert status == 2
    assert f"{source}:2:" in output
    assert not (tmp_path / "p").exists()
