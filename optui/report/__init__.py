"""A session's outcome, told for the team: Markdown, JSON, JUnit XML and HTML.

Every format is drawn from one document, ``build_report``: plain JSON data
whose shape ``schema.json`` (beside this file) documents and the JSON format
writes as it is. Its ``schema`` field names the version; fields are only ever
added within a version.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from optui.events import ItemState, RunMeasured
from optui.sessions import PastItem, PastSession
from optui.stats import Comparison

SCHEMA_ID = "optui-report/1"

Document = dict[str, Any]


def schema() -> dict[str, Any]:
    """The JSON Schema of the report document."""
    text = resources.files(__package__).joinpath("schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def build_report(session: PastSession) -> Document:
    """The report document of a session, finished or not."""
    return {
        "schema": SCHEMA_ID,
        "session": {
            "id": session.session_id,
            "kind": session.kind,
            "plan": session.plan_path,
            "plan_name": session.plan_name,
            "repo": session.repo,
            "status": session.status,
            "error": session.error,
            "started_at": _when(session.started_at),
            "stopped_at": _when(session.stopped_at),
        },
        "main": _main(session),
        "totals": _totals(session),
        "items": [_item(item_id, item) for item_id, item in session.items.items()],
        "reverts": [
            {
                "item": revert.item_id,
                "merge": revert.merge,
                "commit": revert.commit,
                "main_before": revert.main_before,
                "reason": revert.reason,
                "at": _when(revert.at),
            }
            for revert in session.reverts
        ],
    }


def _main(session: PastSession) -> dict[str, Any]:
    after = session.main_sha
    moves = [(b.at, b.main_sha) for b in session.baselines if b.main_sha]
    moves += [(r.at, r.commit) for r in session.reverts]
    if moves:
        after = max(moves)[1]
    return {
        "branch": session.main,
        "sha_before": session.main_sha,
        "sha_after": after,
        "p99_before_ms": _number(session.p99_before),
        "p99_after_ms": _number(session.p99_after),
        "baselines": [
            {
                "at": _when(mark.at),
                "sha": mark.main_sha,
                "source": mark.source,
                "p99_ms": _number(mark.p99),
                "values": {k: _number(v) for k, v in mark.values.items()},
            }
            for mark in session.baselines
        ],
        "runs": [_run(run) for run in session.baseline_runs],
    }


def _totals(session: PastSession) -> dict[str, int]:
    """How many items there were, and how many ended in each state."""
    return {"items": len(session.items), **session.state_counts}


def _item(item_id: str, item: PastItem) -> dict[str, Any]:
    return {
        "id": item_id,
        "title": item.title or item_id,
        "phase": item.phase,
        "task": item.task,
        "risk": item.risk,
        "expect": item.expect,
        "require_improvement": item.require_improvement,
        "state": item.state.value,
        "outcome": outcome_of(item.state),
        "reason": item.reason,
        "decision": item.decision.value if item.decision else None,
        "commit": item.commit,
        "applied_commit": item.applied,
        "kept_ref": item.kept_ref,
        "failing_gate": item.failing_gate,
        "attempts": item.attempts,
        "seconds": _seconds(item),
        "runs": [_run(run) for run in item.runs],
        "main_runs": [_run(run) for run in item.main_runs],
        "changes": [_comparison(c) for c in item.changes],
        "verdicts": [
            _comparison(v.comparison)
            | {
                "gate": v.gate,
                "outcome": v.outcome,
                "limit": _number(v.limit),
                "text": v.description,
            }
            for v in item.verdicts
        ],
    }


def outcome_of(state: ItemState) -> str:
    """How a test report counts an item: passed, failed, error or skipped."""
    if state in (ItemState.MERGED, ItemState.PASSED, ItemState.REVERTED):
        return "passed"
    if state in (ItemState.FAILED, ItemState.REJECTED, ItemState.INCONCLUSIVE):
        return "failed"
    if state is ItemState.ERROR:
        return "error"
    return "skipped"


def _run(run: RunMeasured) -> dict[str, Any]:
    return {
        "run": run.run,
        "side": run.side,
        "passed": run.passed,
        "error": run.error,
        "figures": {k: _number(v) for k, v in run.figures.items()},
        "gates": [
            {
                "gate": r.gate,
                "value": _number(r.value),
                "limit": _number(r.limit),
                "passed": r.passed,
                "note": r.note,
            }
            for r in run.results
        ],
    }


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "stat": c.stat,
        "change": _number(c.change),
        "low": _number(c.low),
        "high": _number(c.high),
        "confidence": c.confidence,
        "runs": c.candidate_runs,
        "baseline_runs": c.baseline_runs,
        "paired": c.paired,
        "text": c.describe(),
    }


def _seconds(item: PastItem) -> float | None:
    if item.began_at and item.ended_at >= item.began_at:
        return round(item.ended_at - item.began_at, 3)
    return None


def _number(value: float | None) -> float | None:
    """A figure as JSON can hold it: None for an absent or unbounded one."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _when(stamp: float) -> str | None:
    if not stamp:
        return None
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds")


def render_json(document: Document) -> str:
    # ASCII escapes keep any text a journal held, even a lone surrogate, valid.
    return json.dumps(document, indent=2) + "\n"


def renderers() -> dict[str, tuple[str, Callable[[Document], str]]]:
    """Each format's file suffix and renderer, by name."""
    from optui.report import html, junit, markdown

    return {
        "markdown": (".md", markdown.render),
        "json": (".json", render_json),
        "junit": (".xml", junit.render),
        "html": (".html", html.render),
    }


FORMATS = ("markdown", "json", "junit", "html")
REPORTS_FOLDER = "reports"
"""The folder of a session's own folder that its reports go to by default."""


def write_reports(
    session: PastSession, formats: tuple[str, ...], folder: Path | None = None
) -> list[Path]:
    """Write the session's report in each format; the files written.

    folder: where they go; by default the session's own ``reports/``.
    """
    document = build_report(session)
    table = renderers()
    folder = folder if folder is not None else session.folder / REPORTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        suffix, render = table[name]
        path = folder / f"report-{session.session_id}{suffix}"
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written
