"""Crash safety: optui dies at every point it can, resumes, and loses nothing.

The crash matrix runs optui as a separate process that dies abruptly
(``os._exit``, as a kill -9 would) right after its N-th state transition or git
operation, for every N, then resumes it in a new process. Its plan's load test
is a small script that writes the summary and sample stream k6 would write,
from figures kept in the repository: the matrix is about process death, git
and the journal, and running the real k6 hundreds of times would not fit in
the suite. The real k6
and a real service are used by the kill-during-a-run test below.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import commit_file, git, new_repo
from engine_helpers import (
    assert_clean_on_main,
    item,
    long_tests_command,
    write_plan,
)

from optui.demo.builder import create_demo_repo
from optui.faults import CRASH_STATUS
from optui.journal import list_sessions, read_journal
from optui.recovery import process_stamp
from optui.sessions import find_unfinished

LOAD_TEST = """\
# Writes what k6 would for a load test whose latency the repository holds:
# the summary, and a sample stream of 200 requests for the latency verdicts.
import json, os, pathlib

def number(name, default=0):
    path = pathlib.Path(name)
    return int(path.read_text()) if path.exists() else default

p99 = number("latency.txt") + number("audit.txt")
with open(os.environ["K6_OUT"].removeprefix("json="), "w") as out:
    for i in range(200):
        value = p99 * (0.5 + 0.5 * i / 199)
        tags = {"expected_response": "true"}
        data = {"time": f"2026-12-03T10:00:00.{i:06d}+00:00", "value": value}
        point = {"metric": "http_req_duration", "type": "Point"}
        out.write(json.dumps({**point, "data": {**data, "tags": tags}}) + "\\n")
summary = {
    "http_req_duration": {"p(99)": p99, "med": p99 * 0.75, "count": 200},
    "http_reqs": {"count": 200, "rate": 100},
    "http_req_failed": {"passes": 0, "fails": 200, "value": 0},
    "payments_inconsistency": {"count": number("inconsistent.txt"), "rate": 0},
}
with open(os.environ["K6_SUMMARY_EXPORT"], "w") as out:
    json.dump({"metrics": summary}, out)
print(f"load test done: p99 {p99} ms")
"""

PLAN = """\
name: Crash matrix
commands:
  build: "true"
  up: "true"
  down: "true"
  test: python3 loadtest.py
ready:
  sleep: 0
runs: 2
gates:
  - "http_req_failed: rate == 0"
  - "payments_inconsistency: count == 0"
  - "http_req_duration: p(99) <= baseline * 1.10"
phases:
  - name: Items
    items:
      - id: faster
        title: Halve the latency
        scope: api
        risk: low
        apply:
          cherry-pick: work/faster
      - id: broken
        title: Break the ledger
        scope: ledger
        risk: high
        apply:
          patch: broken.patch
      - id: tweak
        title: Shave a millisecond
        scope: api
        risk: low
        apply:
          command: echo 9 > latency.txt
      - id: slower
        title: Add an audit call
        scope: audit
        risk: medium
        apply:
          cherry-pick: work/slower
      - id: later
        title: Not now
        scope: api
        risk: high
        deferred: needs a bigger machine
        apply:
          cherry-pick: work/faster
"""

VERDICTS = {
    "faster": "merged",
    "broken": "failed",
    "tweak": "merged",
    "slower": "failed",
    "later": "deferred",
}


@dataclass(frozen=True)
class Target:
    repo: Path
    plan: Path
    branches: dict[str, str]
    """The operator's branches before the session, and their commits."""


def _template(folder: Path) -> Target:
    """A repository with two work branches and a plan folder holding a patch."""
    repo = new_repo(folder / "repo")
    commit_file(repo, "loadtest.py", LOAD_TEST, "Load test")
    commit_file(repo, "latency.txt", "20\n", "Latency")
    commit_file(repo, "inconsistent.txt", "0\n", "No inconsistency")
    (repo / "notes.txt").write_text("the operator's own untracked notes\n")
    git(repo, "checkout", "-q", "-b", "work/faster", "main")
    commit_file(repo, "latency.txt", "10\n", "Halve the latency")
    git(repo, "checkout", "-q", "-b", "work/slower", "main")
    commit_file(repo, "audit.txt", "20\n", "Audit every call")
    git(repo, "checkout", "-q", "main")
    plans = folder / "plans"
    plans.mkdir()
    (plans / "plan.yaml").write_text(PLAN)
    git(repo, "checkout", "-q", "-b", "scratch")
    (repo / "inconsistent.txt").write_text("5\n")
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", "inconsistent.txt")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "scratch")
    (plans / "broken.patch").write_text(patch + "\n")
    return Target(repo, plans / "plan.yaml", _branches(repo))


def _branches(repo: Path) -> dict[str, str]:
    out = git(
        repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"
    )
    return dict(line.split() for line in out.splitlines())


def _copy(target: Target, folder: Path) -> Target:
    shutil.copytree(target.repo, folder / "repo", symlinks=True)
    shutil.copytree(target.plan.parent, folder / "plans")
    return Target(folder / "repo", folder / "plans" / "plan.yaml", target.branches)


def _argv(verb: str, target: Target, *options: str) -> list[str]:
    """optui's command line for a headless session that merges what passes."""
    plan, repo = str(target.plan), str(target.repo)
    headless = ("--headless", "--auto-merge")
    return [
        sys.executable,
        "-m",
        "optui",
        verb,
        plan,
        "--repo",
        repo,
        *options,
        *headless,
    ]


def _optui(
    target: Target, verb: str, *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(verb, target, *options),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _outcomes(repo: Path) -> dict[str, str]:
    """Each item's final state, from the last end record of the last session."""
    session = list_sessions(repo / ".git")[-1]
    ends = [r for r in read_journal(session / "journal.jsonl") if r["type"] == "end"]
    return dict(ends[-1]["outcomes"])


def _assert_nothing_lost(target: Target) -> None:
    repo = target.repo
    assert_clean_on_main(repo)
    assert (repo / "notes.txt").read_text() == "the operator's own untracked notes\n"
    now = _branches(repo)
    for branch, sha in target.branches.items():
        if branch == "main":
            assert git(repo, "merge-base", "--is-ancestor", sha, "main") == ""
        else:
            assert now[branch] == sha, f"{branch} moved"
    assert not [b for b in now if b.startswith("test/")]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return _template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module")
def reference(
    template: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Target, list[str]]]:
    """A session that never crashed, and the crash points it passed."""
    folder = tmp_path_factory.mktemp("reference")
    target = _copy(template, folder)
    points = folder / "points.txt"
    done = _optui(target, "run", env={"OPTUI_CRASH_POINTS": str(points)})
    assert done.returncode == 0, done.stdout + done.stderr
    yield target, points.read_text().splitlines()


def test_the_uncrashed_session_gives_the_expected_verdicts(
    reference: tuple[Target, list[str]],
) -> None:
    target, points = reference
    assert _outcomes(target.repo) == VERDICTS
    _assert_nothing_lost(target)
    # Every kind of point is in the matrix: transitions, and git operations.
    names = {line.split(" ", 1)[1] for line in points}
    assert any(name.startswith("git merge") for name in names)
    assert any(name.startswith("git cherry-pick") for name in names)
    assert any(name.startswith("git apply") for name in names)
    assert any(name == "tweak waiting for you every gate passed" for name in names)


def _crash_and_resume(
    template: Target, folder: Path, point: int, tree: str
) -> str | None:
    """Crash at one point, resume, and check; the problem found, or None."""
    target = _copy(template, folder)
    crashed = _optui(target, "run", env={"OPTUI_CRASH_AT": str(point)})
    if crashed.returncode != CRASH_STATUS:
        return f"point {point}: no crash (status {crashed.returncode})"
    past = find_unfinished(target.repo / ".git")
    if past is None:
        return f"point {point}: the crashed session is not resumable"
    resumed = _optui(target, "resume")
    if resumed.returncode != 0:
        return f"point {point}: resume failed:\n{resumed.stdout}{resumed.stderr}"
    try:
        _assert_nothing_lost(target)
        outcomes = _outcomes(target.repo)
        assert outcomes == VERDICTS, outcomes
        assert git(target.repo, "rev-parse", "main^{tree}") == tree
        assert find_unfinished(target.repo / ".git") is None
        _assert_journal_consistent(target.repo)
    except AssertionError as exc:
        return f"point {point}: {exc}\n{resumed.stdout}"
    return None


def _assert_journal_consistent(repo: Path) -> None:
    """One session, one start, each item settled once per attempt it began."""
    sessions = list_sessions(repo / ".git")
    assert len(sessions) == 1
    records = list(read_journal(sessions[0] / "journal.jsonl"))
    assert [r["type"] for r in records].count("session") == 1
    assert records[-1]["type"] == "end"
    begun = [r["item"] for r in records if r["type"] == "begin"]
    settled = [r["item"] for r in records if r["type"] == "item"]
    assert set(settled) == set(VERDICTS) - {"later"}
    assert len(settled) <= len(begun)


def test_a_crash_at_any_point_resumes_to_the_same_verdicts(
    template: Target, reference: tuple[Target, list[str]], tmp_path: Path
) -> None:
    """Every state transition and git operation of a session, crashed in turn."""
    target, points = reference
    tree = git(target.repo, "rev-parse", "main^{tree}")
    numbers = range(1, len(points) + 1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = list(
            pool.map(
                lambda n: _crash_and_resume(template, tmp_path / f"p{n}", n, tree),
                numbers,
            )
        )
    found = [p for p in problems if p is not None]
    assert not found, f"{len(found)} of {len(points)} crash points:\n" + "\n".join(
        found[:5]
    )
    print(f"crash points covered: {len(points)}")


def test_a_torn_last_journal_line_is_ignored_on_resume(
    template: Target, reference: tuple[Target, list[str]], tmp_path: Path
) -> None:
    """The process died in the middle of writing a journal record."""
    _target, points = reference
    crashed = _copy(template, tmp_path)
    at = len(points) // 2
    assert _optui(crashed, "run", env={"OPTUI_CRASH_AT": str(at)}).returncode == (
        CRASH_STATUS
    )
    [session] = list_sessions(crashed.repo / ".git")
    with (session / "journal.jsonl").open("a") as journal:
        journal.write('{"type": "state", "item": "tw')

    resumed = _optui(crashed, "resume")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _outcomes(crashed.repo) == VERDICTS
    _assert_nothing_lost(crashed)


def test_resume_with_nothing_to_resume_says_so(
    reference: tuple[Target, list[str]],
) -> None:
    target, _ = reference
    done = _optui(target, "resume")
    assert done.returncode == 2
    assert f"no unfinished session in {target.repo}" in done.stderr


def test_a_new_run_refuses_while_a_session_is_unfinished(
    template: Target, tmp_path: Path
) -> None:
    target = _copy(template, tmp_path)
    assert _optui(target, "run", env={"OPTUI_CRASH_AT": "30"}).returncode == (
        CRASH_STATUS
    )

    refused = _optui(target, "run")

    assert refused.returncode == 3
    assert "the last session did not finish" in refused.stderr
    assert "'optui resume PLAN' carries it on" in refused.stderr
    # Refusing changed nothing: the session is still there to resume.
    assert find_unfinished(target.repo / ".git") is not None

    fresh = _optui(target, "run", "--fresh")

    # The new session starts over on a main that already holds the first
    # item, merged before the crash: that item's change is found to be there.
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert _outcomes(target.repo) == {**VERDICTS, "faster": "error"}
    assert "already on the branch" in fresh.stdout
    _assert_nothing_lost(target)
    kept = git(target.repo, "for-each-ref", "--format=%(refname)", "refs/optui")
    assert "refs/optui/interrupted/broken/" in kept
    first, _second = list_sessions(target.repo / ".git")
    ends = [r for r in read_journal(first / "journal.jsonl") if r["type"] == "end"]
    assert ends == [dict(ends[0], abandoned=True)]


def _wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _testing(repo: Path, item_id: str) -> bool:
    """Whether the session's journal shows item_id's load test running."""
    sessions = list_sessions(repo / ".git")
    if not sessions:
        return False
    records = list(read_journal(sessions[-1] / "journal.jsonl"))
    started = [
        i
        for i, r in enumerate(records)
        if r["type"] == "state" and r["item"] == item_id and r["state"] == "testing"
    ]
    return bool(started) and records[-1]["type"] == "process"


@pytest.fixture
def demo(tmp_path: Path) -> Target:
    """The demo service, with a plan whose first item's load test runs a minute."""
    repo = create_demo_repo(tmp_path / "payments").repo
    (repo / "notes.txt").write_text("the operator's own untracked notes\n")
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("cache-balances", "cherry-pick: demo/cache-balances"),
        test=long_tests_command(tmp_path),
    )
    return Target(repo, plan.path, _branches(repo))


def _start(target: Target, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _argv("run", target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "DURATION": "1s", **env},
    )


def test_killed_during_a_real_load_test_it_resumes_and_stops_what_was_left(
    demo: Target,
) -> None:
    """kill -9 while k6 runs against the real service; the resume stops the
    k6 left running, redeploys, and finishes with the verdicts it would have."""
    running = _start(demo, {"LONG_ITEM": "precompute-fees"})
    _wait_for(lambda: _testing(demo.repo, "precompute-fees"))
    time.sleep(1)
    running.kill()
    running.wait()
    past = find_unfinished(demo.repo / ".git")
    assert past is not None and past.process is not None
    left_running = past.process[0]
    assert process_stamp(left_running) == past.process[1]

    resumed = _optui(demo, "resume", env={"DURATION": "1s"})

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"stopped the command (process group {left_running})" in resumed.stdout
    assert process_stamp(left_running) == ""
    assert "precompute-fees was testing" in resumed.stdout
    outcomes = _outcomes(demo.repo)
    assert outcomes == {"precompute-fees": "merged", "cache-balances": "failed"}
    _assert_nothing_lost(demo)


def test_ctrl_c_during_a_load_test_leaves_main_clean_and_the_session_resumable(
    demo: Target,
) -> None:
    running = _start(demo, {"LONG_ITEM": "precompute-fees"})
    _wait_for(lambda: _testing(demo.repo, "precompute-fees"))
    started = time.monotonic()
    running.send_signal(signal.SIGINT)
    output, _ = running.communicate(timeout=60)

    assert running.returncode == 130, output
    assert time.monotonic() - started < 20
    assert "'optui resume" in output
    assert_clean_on_main(demo.repo)
    past = find_unfinished(demo.repo / ".git")
    assert past is not None and past.aborted
    assert past.items["precompute-fees"].state.value == "pending"
    # The interrupted load test was stopped, not left behind.
    assert past.process is None

    resumed = _optui(demo, "resume", env={"DURATION": "1s"})

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _outcomes(demo.repo) == {
        "precompute-fees": "merged",
        "cache-balances": "failed",
    }
    _assert_nothing_lost(demo)
