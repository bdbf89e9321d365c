"""Checks of a loaded plan against its target repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from optui.errors import Problem
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
                plan.path,
                0,
                0,
                f"main branch {plan.main!r} not found in {repo.path}: set "
                "target.main to the branch the items are to be merged into",
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
        if repo is not None and repo.has_branch(item.branch):
            note = Problem(
                plan.path,
                item.line,
                item.column,
                f"note: item {item.id!r}: branch {item.branch} already exists in "
                f"{repo.path}; optui never overwrites a branch, so the item will "
                f"stop with an error unless you delete it ('git branch -D "
                f"{item.branch}')",
            )
            report.notes.append(str(note))
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
            reason = repo.apply_problem(patch, plan.main)
            if reason:
                return problem(
                    f"item {item.id!r}: patch {patch.name} does not apply to "
                    f"{plan.main}: {reason}"
                )
    picking = apply.kind is ApplyKind.CHERRY_PICK
    if picking and repo is not None and repo.resolve(apply.source) is None:
        return problem(
            f"item {item.id!r}: {apply.source!r} does not resolve to a commit "
            f"in {repo.path}: fetch it, or name a branch, tag or commit it has"
        )
    return None
