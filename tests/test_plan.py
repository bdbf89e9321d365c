"""Plan files: loading, and every problem `optui check` reports."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import commit_file, git

from optui.cli import main
from optui.errors import PlanError
from optui.plan import ApplyKind, ReadyKind, Risk, load_plan

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """\
name: Test plan
target:
  repo: repo
runs: 2
ready:
  http: http://127.0.0.1:9/health
  timeout: 5
phases:
  - name: One
    items:
      - id: first
        title: First change
        risk: very low
        expect: faster
        scope: core
        apply:
          cherry-pick: feature
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return [str(p) for p in caught.value.problems]


def test_minimal_plan_gets_the_documented_defaults(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, MINIMAL))

    assert plan.repo == (tmp_path / "repo").resolve()
    assert plan.main == "main"
    assert plan.commands.build == "make build"
    assert plan.commands.test == "make k6"
    assert plan.ready.kind is ReadyKind.HTTP
    assert plan.runs == 2
    assert [g.text for g in plan.gates] == [
        "http_req_failed: rate == 0",
        "payments_inconsistency: count == 0",
        "http_req_duration{expected_response:true}: p(99) <= baseline * 1.10",
    ]
    item = plan.item("first")
    assert item.risk is Risk.VERY_LOW
    assert item.apply.kind is ApplyKind.CHERRY_PICK
    assert item.branch == "test/first"
    assert item.commit_message == "perf(core): First change"


def test_bad_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nphases:\n  - name: [unclosed\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4:1: YAML:")


def test_unknown_key_names_the_nearest_valid_one(tmp_path: Path) -> None:
    text = MINIMAL.replace("        scope: core\n", "        scpoe: core\n")
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert (
        f"{path}:15:9: item 'first': unknown key 'scpoe' (did you mean 'scope'?)"
        in (problems)
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "gatess: []\n")
    [problem] = problems_of(path)
    assert "unknown key 'gatess' (did you mean 'gates'?)" in problem
    assert problem.startswith(f"{path}:18:1:")


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    second = MINIMAL.split("    items:\n")[1]
    path = write(tmp_path, MINIMAL + second)
    [problem] = problems_of(path)
    assert problem == f"{path}:18:13: duplicate item id 'first' (first used on line 11)"


@pytest.mark.parametrize(
    ("gate", "reason"),
    [
        ("http_req_failed rate == 0", "is not of the form"),
        ("http_req_failed: ratio == 0", "unknown statistic 'ratio'"),
        ("http_req_duration: p(99) <= baseline ** 2", "bound 'baseline ** 2'"),
        ("http_req_duration: p(100) < 5", "unknown statistic 'p(100)'"),
        ("http_req_duration{status}: p(99) < 5", "tag 'status' must read"),
    ],
)
def test_bad_gate_expressions(tmp_path: Path, gate: str, reason: str) -> None:
    path = write(tmp_path, MINIMAL + f'gates:\n  - "{gate}"\n')
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:19:5:")
    assert reason in problem


def test_bad_values_are_each_reported(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("risk: very low", "risk: tiny")
        .replace("runs: 2", "runs: zero")
        .replace("id: first", "id: First Change")
    )
    problems = problems_of(write(tmp_path, text))
    assert any(
        "risk 'tiny' is not one of very low, low, medium, high" in p for p in problems
    )
    assert any("runs must be a whole number" in p for p in problems)
    assert any("item id 'First Change'" in p for p in problems)


def test_plan_without_phases_or_apply(tmp_path: Path) -> None:
    assert any("no 'phases'" in p for p in problems_of(write(tmp_path, "name: x\n")))
    text = MINIMAL.replace("        apply:\n          cherry-pick: feature\n", "")
    assert any("missing 'apply'" in p for p in problems_of(write(tmp_path, text)))


def check(
    path: Path, *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    status = main(["check", str(path), *extra])
    out = capsys.readouterr()
    return status, out.out + out.err


def test_check_reports_refs_that_do_not_resolve(
    tmp_path: Path, make_repo: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_repo("repo")
    status, output = check(write(tmp_path, MINIMAL), capsys=capsys)
    assert status == 2
    assert (
        "plan.yaml:17:24: item 'first': 'feature' does not resolve to a commit"
        in output
    )


def test_check_passes_once_the_ref_exists(
    tmp_path: Path, make_repo: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo("repo")
    git(repo, "branch", "feature")
    status, output = check(write(tmp_path, MINIMAL), capsys=capsys)
    assert status == 0, output
    assert "ok: 1 items in 1 phases (0 deferred), 3 gates, 2 runs each" in output


def test_check_reports_patches_that_do_not_apply_to_main(
    tmp_path: Path, make_repo: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo("repo")
    git(repo, "checkout", "-q", "-b", "elsewhere")
    commit_file(repo, "README", "service, rewritten\n", "rewrite")
    (tmp_path / "good.patch").write_text(git(repo, "show", "--format=", "HEAD") + "\n")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README", "service on main, changed\n", "diverge")
    # The patch applies to the branch it came from, not to main any more.
    git(repo, "checkout", "-q", "elsewhere~1")
    text = MINIMAL.replace("cherry-pick: feature", "patch: good.patch")
    status, output = check(write(tmp_path, text), capsys=capsys)
    assert status == 2
    assert "item 'first': patch good.patch does not apply to main" in output


def test_check_reports_missing_patch_files_and_escapes(
    tmp_path: Path, make_repo: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_repo("repo")
    text = MINIMAL.replace("cherry-pick: feature", "patch: missing.patch")
    status, output = check(write(tmp_path, text), capsys=capsys)
    assert status == 2
    assert "patch" in output and "missing.patch does not exist" in output
    text = MINIMAL.replace("cherry-pick: feature", "patch: ../../etc/passwd")
    status, output = check(write(tmp_path, text), capsys=capsys)
    assert "lies outside the plan's folder" in output


def test_check_says_plainly_which_sources_are_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, output = check(ROOT / "plans" / "reapply.yaml", capsys=capsys)
    assert status == 2
    missing = [line for line in output.splitlines() if "apply source missing" in line]
    # Six items to run need a commit; the four deferred ones are noted, not errors.
    errors = [line for line in missing if "deferred" not in line]
    assert len(errors) == 6
    assert len(missing) == 10
    assert "6 problems found" in output


def test_reapply_plan_matches_the_agreed_order() -> None:
    plan = load_plan(ROOT / "plans" / "reapply.yaml")
    phases = [[item.task for item in phase.items] for phase in plan.phases]
    assert phases[:3] == [["2", "3"], ["7", "12"], ["13", "11"]]
    assert all(item.deferred for item in plan.phases[3].items)
    assert plan.item("sequential-get-summary").require_improvement
    gate = plan.gates_for(plan.item("sequential-get-summary"))[2]
    assert gate.op == "<" and gate.factor == 1.0


def test_demo_plan_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    status, output = check(ROOT / "plans" / "demo.yaml", capsys=capsys)
    assert status == 0, output


def test_docker_section_and_readiness(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "ready:\n  http: http://127.0.0.1:9/health\n  timeout: 5\n",
        "docker:\n  project: payments\n  containers: [redis]\n"
        "  memory_budget_mb: 350\nready:\n  docker: true\n  timeout: 30\n",
    )
    plan = load_plan(write(tmp_path, text))
    assert plan.docker is not None
    assert plan.docker.project == "payments"
    assert plan.docker.names == ("redis",)
    assert plan.docker.memory_budget_mb == 350
    assert plan.ready.kind is ReadyKind.DOCKER
    assert plan.with_docker_project("other").docker.project == "other"  # type: ignore[union-attr]


def test_docker_readiness_needs_a_stack(tmp_path: Path) -> None:
    text = MINIMAL.replace("  http: http://127.0.0.1:9/health\n", "  docker: true\n")
    problems = problems_of(write(tmp_path, text))
    assert any("ready.docker needs a 'docker' section" in p for p in problems)
    text = MINIMAL + "docker:\n  memory_budget_mb: 10\n"
    problems = problems_of(write(tmp_path, text))
    assert any("docker: give a 'project' or 'containers'" in p for p in problems)
