"""The one family of errors optui raises toward people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class OptuiError(Exception):
    """An error with a short title and a message an operator can act on."""

    title = "optui error"
    exit_status = 1

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One problem found in a plan file, located by file, line and column."""

    path: Path
    line: int
    """1-based line; 0 when the problem is not tied to a place in the file."""
    column: int
    """1-based column; 0 when unknown."""
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}: {self.message}"
        return f"{self.path}: {self.message}"


class PlanError(OptuiError):
    """The plan file cannot be used; carries every problem found."""

    title = "Plan error"
    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PreflightError(OptuiError):
    """The target repository or the machine is not ready for a session."""

    title = "Preflight failed"
    exit_status = 3


class BaselineError(OptuiError):
    """Main itself does not pass the correctness gates, or could not be measured."""

    title = "Baseline failed"
    exit_status = 4


class GitError(OptuiError):
    """A git operation failed; the message carries git's own words."""

    title = "Git error"


class StepError(OptuiError):
    """A step of an item (apply, build, deploy, readiness, test) could not finish."""

    title = "Step failed"


class Cancelled(OptuiError):
    """The running step was stopped on the operator's request."""

    title = "Cancelled"


class K6Error(OptuiError):
    """k6 results could not be read."""

    title = "k6 results missing"
