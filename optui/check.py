"""Checks of a loaded plan against its target repository."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from optui.errors import GitError, Problem
from optui.gitops import TargetRepo
from optui.plan import ApplyKind, Item, Plan

_WHAT_TO_FILL = {
    ApplyKind.CHERRY_PICK: "the commit to cherry-pick",
    ApplyKind.PATCH: "the patch file",
    ApplyKind.COMMAND: "the command that makes the change",
}


@dataclass
class CheckReport:
    """Problems stop a session from starting; notes are for the operator's eyes."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_plan(plan: Plan, repo: TargetRepo | None) -> CheckReport:
    """Every problem that would stop an item of the plan from being applied."""
    report = CheckReport()
    if repo is None:
        report.notes.append(
            f"{plan.path}: note: no target repository (target.repo or --repo): "
            "refs and patches were not checked"
        )
    elif not repo.has_branch(plan.main):
        report.problems.append(
            Problem(
                plan.path, 0, 0, f"main branch {plan.main!r} not found in {repo.path}"
            )
        )
        repo = None
    for item in plan.items():
        problem = _check_item(plan, item, repo)
        if problem is not None:
            if item.deferred:
                report.notes.append(f"{problem} (deferred: not needed yet)")
            else:
                report.problems.append(problem)
    return report


def _check_item(plan: Plan, item: Item, repo: TargetRepo | None) -> Problem | None:
    apply = item.apply

    def problem(message: str) -> Problem:
        return Problem(plan.path, apply.line or item.line, apply.column, message)

    if apply.source is None:
        if apply.kind is ApplyKind.MANUAL:
            return None
        return problem(
            f"item {item.id!r}: apply source missing: fill in "
            f"{_WHAT_TO_FILL[apply.kind]} (apply.{apply.kind.value})"
        )
    if apply.kind is ApplyKind.PATCH:
        patch = Path(apply.source)
        if not patch.is_file():
            return problem(f"item {item.id!r}: patch {patch} does not exist")
        if repo is not None:
            reason = patch_applies(repo, patch, plan.main)
            if reason:
                return problem(
                    f"item {item.id!r}: patch {patch.name} does not apply to "
                    f"{plan.main}: {reason}"
                )
    picking = apply.kind is ApplyKind.CHERRY_PICK and repo is not None
    if picking and repo is not None and repo.resolve(apply.source) is None:
        return problem(
            f"item {item.id!r}: {apply.source!r} does not resolve to a commit "
            f"in {repo.path}"
        )
    return None


def patch_applies(repo: TargetRepo, patch: Path, branch: str) -> str | None:
    """Why patch does not apply to branch (not the working tree), or None if it does."""
    with tempfile.TemporaryDirectory(prefix="optui-index-") as folder:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(folder) / "index")}
        try:
            subprocess.run(
                ["git", "read-tree", branch],
                cwd=repo.path,
                env=env,
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise GitError(
                f"cannot read {branch}: {exc.stderr.decode().strip()}"
            ) from exc
        result = subprocess.run(
            ["git", "apply", "--check", "--cached", str(patch)],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or f"git apply exited {result.returncode}"
