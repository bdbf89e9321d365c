"""Preflight: a session refuses to start on a repository that is not ready."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import commit_file, git
from engine_helpers import item, write_plan

from optui.engine import Engine
from optui.errors import PreflightError


@pytest.fixture
def repo(make_repo: Callable[[str], Path]) -> Path:
    repo = make_repo("repo")
    commit_file(repo, "Makefile", "build:\n\ttrue\n", "makefile")
    git(repo, "branch", "feature")
    return repo


def refusal(tmp_path: Path, repo: Path, items: str | None = None) -> str:
    plan = write_plan(tmp_path, repo, items or item("one", "cherry-pick: feature"))
    with pytest.raises(PreflightError) as caught:
        Engine(plan).preflight()
    return str(caught.value)


def test_a_clean_repository_passes(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, repo, item("one", "cherry-pick: feature"))
    Engine(plan).preflight()


def test_uncommitted_changes_are_refused_and_left_alone(
    tmp_path: Path, repo: Path
) -> None:
    (repo / "README").write_text("work in progress\n")
    message = refusal(tmp_path, repo)
    assert "uncommitted changes (README)" in message
    assert (repo / "README").read_text() == "work in progress\n"


def test_untracked_files_are_no_obstacle(tmp_path: Path, repo: Path) -> None:
    (repo / "notes.txt").write_text("mine\n")
    plan = write_plan(tmp_path, repo, item("one", "cherry-pick: feature"))
    Engine(plan).preflight()


def test_missing_main_and_detached_head(tmp_path: Path, repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    git(repo, "branch", "-m", "main", "trunk")
    message = refusal(tmp_path, repo)
    assert "HEAD is detached" in message
    assert "the main branch 'main' does not exist" in message


def test_a_half_done_merge_is_refused(tmp_path: Path, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "other")
    commit_file(repo, "README", "other\n", "other")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README", "main\n", "main")
    merge = subprocess.run(
        ["git", "merge", "-q", "other"], cwd=repo, capture_output=True
    )
    assert merge.returncode != 0, "the merge was meant to conflict"
    assert "a merge is in progress" in refusal(tmp_path, repo)


def test_programs_of_the_commands_must_exist(tmp_path: Path, repo: Path) -> None:
    plan_items = item("one", "cherry-pick: feature")
    plan = write_plan(tmp_path, repo, plan_items, test="no-such-load-tool run x.js")
    with pytest.raises(PreflightError) as caught:
        Engine(plan).preflight()
    assert "commands.test: program 'no-such-load-tool' not found" in str(caught.value)


def test_k6_must_be_found(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    assert "k6 was not found" in refusal(tmp_path, repo)


def test_unresolved_refs_and_missing_sources_are_refused(
    tmp_path: Path, repo: Path
) -> None:
    message = refusal(
        tmp_path,
        repo,
        item("one", "cherry-pick: nowhere") + item("two", "cherry-pick:"),
    )
    assert "'nowhere' does not resolve to a commit" in message
    assert "item 'two': apply source missing" in message


def test_a_repository_without_identity_is_refused(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert "no user.name and user.email" in refusal(tmp_path, repo)
