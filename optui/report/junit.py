"""A session's report as JUnit XML, for CI servers that chart test results.

Each item is a test case: a merged or passing item passes, a failed one fails,
one that could not be measured is an error and one never run is skipped.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from typing import Any

from optui.report import Document
from optui.report.markdown import (
    clean_text,
    gates_text,
    main_p99_move,
    p99_change,
    run_figures,
    run_label,
    runs_in_order,
    session_seconds,
    short_sha,
    shorten,
)

COUNTS = ("tests", "failures", "errors", "skipped")
MESSAGE_LENGTH = 300
_OUTCOME_COUNT = {"failed": "failures", "error": "errors", "skipped": "skipped"}


def render(document: Document) -> str:
    """The report as a JUnit XML document of one test suite."""
    suite = _suite(document)
    suites = ET.Element("testsuites", name="optui")
    for key in (*COUNTS, "time"):
        suites.set(key, suite.get(key, "0"))
    suites.append(suite)
    ET.indent(suites)
    body = ET.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _suite(document: Document) -> ET.Element:
    session, items = document["session"], document["items"]
    counts = dict.fromkeys(COUNTS, 0)
    counts["tests"] = len(items)
    for item in items:
        key = _OUTCOME_COUNT.get(item["outcome"])
        if key:
            counts[key] += 1
    suite = ET.Element("testsuite", _attributes(name=f"optui: {_plan_name(session)}"))
    for key, count in counts.items():
        suite.set(key, str(count))
    suite.set("time", _seconds(session_seconds(document)))
    stamp = _timestamp(session["started_at"])
    if stamp:
        suite.set("timestamp", stamp)
    suite.append(_properties(document))
    suite.extend(_case(item) for item in items)
    return suite


def _plan_name(session: dict[str, Any]) -> str:
    return str(session["plan_name"] or session["plan"] or "plan")


def _properties(document: Document) -> ET.Element:
    session, main = document["session"], document["main"]
    facts = {
        "session": session["id"],
        "plan": session["plan"],
        "repo": session["repo"],
        "status": session["status"],
        "error": session["error"],
        "main": main["branch"],
        "main_sha_before": main["sha_before"],
        "main_sha_after": main["sha_after"],
        "main_p99": main_p99_move(main),
    }
    properties = ET.Element("properties")
    for name, value in facts.items():
        if value is not None:
            properties.append(
                ET.Element("property", _attributes(name=name, value=value))
            )
    return properties


def _case(item: dict[str, Any]) -> ET.Element:
    name = (
        item["id"] if item["title"] == item["id"] else f"{item['id']}: {item['title']}"
    )
    case = ET.Element(
        "testcase",
        _attributes(
            classname=item["phase"] or "optui",
            name=name,
            time=_seconds(item["seconds"]),
        ),
    )
    outcome = _outcome(item)
    if outcome is not None:
        case.append(outcome)
    out = ET.SubElement(case, "system-out")
    out.text = clean_text("\n".join(_facts(item)))
    return case


def _outcome(item: dict[str, Any]) -> ET.Element | None:
    """The failure, error or skipped element of an item that did not pass."""
    outcome = item["outcome"]
    # A message is the headline a CI page lists; the element's text says it all.
    reason = shorten(item["reason"] or item["state"], MESSAGE_LENGTH)
    if outcome == "failed":
        failure = ET.Element(
            "failure",
            _attributes(message=reason, type=item["failing_gate"] or item["state"]),
        )
        failure.text = clean_text("\n".join(_failure_text(item)))
        return failure
    if outcome == "error":
        error = ET.Element("error", _attributes(message=reason, type=item["state"]))
        error.text = clean_text(item["reason"])
        return error
    if outcome == "skipped":
        return ET.Element("skipped", _attributes(message=reason))
    return None


def _failure_text(item: dict[str, Any]) -> list[str]:
    lines = []
    if item["failing_gate"]:
        lines.append(f"failing gate: {item['failing_gate']}")
    lines.append(f"reason: {item['reason'] or item['state']}")
    return lines + _run_lines(item)


def _facts(item: dict[str, Any]) -> list[str]:
    """What system-out tells of an item: its result, change and runs."""
    lines = [f"state: {item['state']}"]
    if item["reason"]:
        lines.append(f"reason: {item['reason']}")
    lines.append(f"commit: {short_sha(item['commit'])}")
    if item["kept_ref"]:
        lines.append(f"kept at: {item['kept_ref']}")
    lines.append(f"p99 change: {p99_change(item)}")
    lines += [f"change: {c['text']}" for c in item["changes"]]
    lines += [
        f"verdict on {v['gate']}: {v['outcome']}, {v['text']}" for v in item["verdicts"]
    ]
    return lines + (_run_lines(item) or ["runs: none"])


def _run_lines(item: dict[str, Any]) -> list[str]:
    return [_run_line(run) for run in runs_in_order(item)]


def _run_line(run: dict[str, Any]) -> str:
    p99, median, requests, rate = run_figures(run)
    figures = f"p99 {p99} ms, median {median} ms, {requests} requests, failed {rate}"
    verdict = "passed" if run["passed"] else "FAILED"
    return f"{run_label(run)}: {verdict}: {figures}; {gates_text(run)}"


def _attributes(**values: object) -> dict[str, str]:
    """Attribute values as XML can hold them."""
    return {key: clean_text(value) for key, value in values.items()}


def _seconds(seconds: float | None) -> str:
    return f"{seconds or 0:.3f}"


def _timestamp(stamp: str | None) -> str | None:
    """The time in UTC without a zone, as the JUnit schema has it."""
    if not stamp:
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")
