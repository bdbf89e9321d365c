"""Shared fixtures: real git repositories made in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from optui.cli import main
from optui.errors import PlanError


def git(repo: Path, *args: str) -> str:
    """Run git in repo and return its output; fail the test on error."""
    result = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def alive(pid: int) -> bool:
    """Whether process pid runs (a zombie waiting for its reaper does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def optui(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the optui command in-process; its exit status and everything it said."""
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out + out.err


def assert_every_problem_placed(exc: PlanError, path: Path) -> None:
    """A refusal names at least one problem, each at its line and column of path."""
    assert exc.problems
    for problem in exc.problems:
        assert problem.path == path, problem
        assert problem.line >= 1 and problem.column >= 1, problem
        assert problem.message.strip(), problem
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: ")


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def new_repo(repo: Path) -> Path:
    """A git repository at repo with one commit on main and a committer set."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Operator")
    git(repo, "config", "user.email", "operator@example.invalid")
    commit_file(repo, "README", "service\n", "initial")
    return repo


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], Path]:
    """Make a git repository with one commit on main, named by the argument."""

    def make(name: str = "repo") -> Path:
        return new_repo(tmp_path / name)

    return make


@dataclass(frozen=True)
class FinishedDemo:
    """A demo repository after one whole headless session with --auto-merge."""

    repo: Path
    output: str
    """What the session printed, stdout and stderr together."""
    returncode: int


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> FinishedDemo:
    """One real demo session, run once for every test that reads its outcome.

    Tests that change the repository take ``demo_copy`` instead.
    """
    repo = tmp_path_factory.mktemp("finished") / "demo"
    command = ["demo", "--dir", str(repo), "--headless", "--auto-merge"]
    result = subprocess.run(
        [sys.executable, "-m", "optui", *command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    return FinishedDemo(repo, result.stdout + result.stderr, result.returncode)


@pytest.fixture
def demo_copy(finished_demo: FinishedDemo, tmp_path: Path) -> Path:
    """A copy of the finished demo repository, sessions included, to change."""
    assert finished_demo.returncode == 0, finished_demo.output
    copy = tmp_path / "demo"
    shutil.copytree(finished_demo.repo, copy, symlinks=True)
    return copy
