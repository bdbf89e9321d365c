"""Shared fixtures: real git repositories made in tmp_path."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


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
