"""Failure review: why an item did not land, read back from a session's journal.

Everything here comes from files on disk, so an item of an earlier session can
be reviewed as well as one that failed a minute ago.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optui.journal import list_sessions, read_journal

_ERROR_WORDS = re.compile(
    r"\b(error|errors|failed|failure|fatal|panic|traceback|exception|cannot|"
    r"not found|no such|refused|denied|killed|timed out)\b",
    re.IGNORECASE,
)
_THRESHOLD = re.compile(r"(✗|thresholds? on metrics|crossed)")
_EXCERPT_LINES = 2000
"""How much of a long log a review holds in memory: the lines around the error."""


@dataclass(frozen=True)
class FailedGate:
    gate: str
    run: int
    value: float
    limit: float


@dataclass(frozen=True)
class Review:
    """Why one attempt at an item ended as it did."""

    item_id: str
    state: str
    reason: str
    session: str
    failed_gates: tuple[FailedGate, ...] = ()
    failed_step: str | None = None
    """The step that could not finish (``build``, ``test run 2``, ...), if any."""
    log_path: Path | None = None
    """The log to read first: the failed step's, or the failing run's test log."""
    log_lines: tuple[str, ...] = ()
    first_error: int | None = None
    """Index in log_lines of the first line that looks like an error; for a
    failed gate, the line of k6's summary that reports its metric."""
    thresholds: tuple[str, ...] = ()
    """k6's own threshold messages from the test logs."""
    runs: tuple[dict[str, Any], ...] = field(default=())
    """The attempt's run records, as journaled."""
    container_logs: tuple[tuple[str, Path], ...] = ()
    """Each container's recent output, saved when a step or run failed."""

    def container_lines(self, limit: int = 200) -> list[str]:
        """The containers' logs, each under a heading, for display after the log."""
        lines: list[str] = []
        for name, path in self.container_logs:
            lines.append(f"── container {name} ({path.name}) ──")
            lines.extend(list(_read_log(path))[-limit:])
        return lines


def review_item(journal: Path, item_id: str) -> Review | None:
    """The review of item_id's last attempt in one journal, or None if absent."""
    records = [r for r in read_journal(journal) if r.get("item") == item_id]
    final = [r for r in records if r["type"] == "item"]
    if not final:
        return None
    attempt = _last_attempt(records)
    outcome = final[-1]
    failed_gates = tuple(
        FailedGate(g["gate"], g["run"], g["value"], g["limit"])
        for run in attempt
        if run["type"] == "run"
        for g in run.get("results", [])
        if not g["passed"]
    )
    failed_step, log_path = _failed_step(attempt, failed_gates)
    lines = _read_log(log_path)
    first = first_error_line(lines)
    if failed_gates and failed_step is None:
        first = _metric_line(lines, failed_gates[0].gate) or first
    return Review(
        item_id=item_id,
        state=outcome["state"],
        reason=outcome.get("reason", ""),
        session=journal.parent.name,
        failed_gates=failed_gates,
        failed_step=failed_step,
        log_path=log_path,
        log_lines=lines,
        first_error=first,
        thresholds=_thresholds(attempt),
        runs=tuple(r for r in attempt if r["type"] == "run"),
        container_logs=_container_logs(attempt),
    )


def find_review(git_dir: Path, item_id: str) -> Review | None:
    """The newest review of item_id across every session of a repository."""
    for folder in reversed(list_sessions(git_dir)):
        review = review_item(folder / "journal.jsonl", item_id)
        if review is not None:
            return review
    return None


def first_error_line(lines: tuple[str, ...] | list[str]) -> int | None:
    for index, line in enumerate(lines):
        if not line.startswith("$ ") and _ERROR_WORDS.search(line):
            return index
    return None


def _metric_line(lines: tuple[str, ...], gate: str) -> int | None:
    """Where k6's printed summary reports the metric a failed gate reads."""
    metric = gate.split(":", 1)[0].split("{", 1)[0].strip()
    for index, line in enumerate(lines):
        if line.strip().startswith(metric) and "..." in line:
            return index
    return None


def _last_attempt(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = [
        i
        for i, r in enumerate(records)
        if r["type"] == "state" and r.get("state") == "applying"
    ]
    return records[starts[-1] :] if starts else records


def _failed_step(
    attempt: list[dict[str, Any]], failed_gates: tuple[FailedGate, ...]
) -> tuple[str | None, Path | None]:
    for record in attempt:
        if failed_gates and record["type"] == "step" and record["step"] == "test":
            continue  # k6 exits non-zero when its own thresholds fail: expected
        if record["type"] == "step" and not record["ok"] and record["step"] != "down":
            name = record["step"]
            if record.get("run"):
                name += f" run {record['run']}"
            return name, _path(record.get("log"))
    if failed_gates:
        run = failed_gates[0].run
        for record in attempt:
            is_test = record["type"] == "step" and record["step"] == "test"
            if is_test and record.get("run") == run:
                return None, _path(record.get("log"))
    return None, None


def _thresholds(attempt: list[dict[str, Any]]) -> tuple[str, ...]:
    found: list[str] = []
    for record in attempt:
        if record["type"] == "step" and record["step"] == "test":
            for line in _read_log(_path(record.get("log"))):
                if _THRESHOLD.search(line) and line.strip() not in found:
                    found.append(line.strip())
    return tuple(found)


def _container_logs(attempt: list[dict[str, Any]]) -> tuple[tuple[str, Path], ...]:
    saved: dict[str, Path] = {}
    for record in attempt:
        if record["type"] == "container_logs":
            for name, path in (record.get("logs") or {}).items():
                saved[name] = Path(path)
    return tuple(sorted(saved.items()))


def _path(value: object) -> Path | None:
    return Path(str(value)) if value else None


def _read_log(path: Path | None) -> tuple[str, ...]:
    if path is None or not path.is_file():
        return ()
    with path.open(encoding="utf-8", errors="replace") as handle:
        lines = [line.rstrip("\n") for line in handle]
    if len(lines) <= _EXCERPT_LINES:
        return tuple(lines)
    first = first_error_line(lines) or 0
    start = max(0, min(first - _EXCERPT_LINES // 4, len(lines) - _EXCERPT_LINES))
    return tuple(lines[start : start + _EXCERPT_LINES])
