"""A session's report as Markdown, fit for a pull request's description.

The plain-text pieces every format shares (an item's change of p99, its runs,
why it ended as it did) are made here too, so the formats tell the same story.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

from optui.report import Document

COLUMNS = ("Item", "Phase", "Risk", "Result", "Commit", "p99 change", "Runs", "Why")
NONE = "—"
WHY_LENGTH = 80
SHORT_SHA = 12

RUN_COLUMNS = ("Run", "Side", "p99 ms", "median ms", "requests", "failed rate")

# Terminal colour codes end up in reasons taken from a command's output.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# Everything XML 1.0 forbids: C0 controls but tab and newlines, surrogates,
# U+FFFE and U+FFFF. None of them reads well in any format.
_FORBIDDEN = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# Inline Markdown syntax; a backslash makes each of these characters literal.
_SPECIAL = re.compile(r"([\\`*_\[\]<|~&])")
_LATENCY_STAT = 99.0


def render(document: Document) -> str:
    """The report as Markdown."""
    parts = [
        _header(document),
        _summary(document["items"]),
        _details(document),
        _reverts(document["reverts"]),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


# Plain text shared by the formats.


def clean_text(value: object) -> str:
    """Text without terminal colour codes or characters no format can hold."""

    def visible(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _FORBIDDEN.sub(visible, _ANSI.sub("", str(value)))


def shorten(text: str, length: int = WHY_LENGTH) -> str:
    """Text on one line, cut with an ellipsis past length characters."""
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"


def short_sha(sha: str | None) -> str:
    return sha[:SHORT_SHA] if sha else NONE


def percent(change: float | None) -> str:
    """``+3.1%`` for a relative change of 0.031."""
    return NONE if change is None else f"{change * 100:+.1f}%"


def ms(value: float | None) -> str:
    """Milliseconds with as many decimals as their size warrants."""
    if value is None:
        return NONE
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def milliseconds(value: float | None) -> str:
    """``44.7 ms``, or a dash when not measured."""
    return NONE if value is None else f"{ms(value)} ms"


def number(value: float | None) -> str:
    return NONE if value is None else f"{value:.4g}"


def when(stamp: str | None) -> str:
    """An ISO time as ``2026-12-04 01:04:53 UTC``."""
    if not stamp:
        return NONE
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def session_seconds(document: Document) -> float | None:
    """How long the session ran, from its first record to its last."""
    session = document["session"]
    try:
        start = datetime.datetime.fromisoformat(session["started_at"] or "")
        stop = datetime.datetime.fromisoformat(session["stopped_at"] or "")
    except ValueError:
        return None
    return max((stop - start).total_seconds(), 0.0)


def p99_comparison(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item's measured change of p99 against main, if it has one."""
    for comparison in [*item["changes"], *item["verdicts"]]:
        if comparison["stat"] == _LATENCY_STAT and comparison["change"] is not None:
            found: dict[str, Any] = comparison
            return found
    return None


def change_text(comparison: dict[str, Any] | None) -> str:
    """``-67.6% (95% CI -68.6% to -55.4%)``, or why there is no interval."""
    if comparison is None:
        return NONE
    change = percent(comparison["change"])
    low, high = comparison["low"], comparison["high"]
    if low is not None and high is not None:
        level = f"{comparison['confidence'] * 100:g}% CI"
        return f"{change} ({level} {percent(low)} to {percent(high)})"
    fewest = min(comparison["runs"], comparison["baseline_runs"])
    return f"{change} ({'1 run: ' if fewest == 1 else ''}no interval)"


def p99_change(item: dict[str, Any]) -> str:
    return change_text(p99_comparison(item))


def runs_passed(item: dict[str, Any]) -> str:
    """``2/3``: the item's runs that passed every gate, of those measured."""
    runs = item["runs"]
    if not runs:
        return NONE
    return f"{sum(run['passed'] for run in runs)}/{len(runs)}"


def why(item: dict[str, Any]) -> str:
    """The gate that failed the item, else its reason, on one short line."""
    return shorten(clean_text(item["failing_gate"] or item["reason"] or NONE))


def summary_cells(item: dict[str, Any]) -> list[str]:
    """The summary row of an item, as plain text, after its Item column."""
    return [
        clean_text(item["phase"] or NONE),
        clean_text(item["risk"] or NONE),
        clean_text(item["state"]),
        short_sha(item["commit"]),
        p99_change(item),
        runs_passed(item),
        why(item),
    ]


def main_p99_move(main: dict[str, Any]) -> str:
    """``44.7 ms → 14.7 ms (-67.1%)``: main's p99 across the session."""
    before, after = main["p99_before_ms"], main["p99_after_ms"]
    if before is None:
        return "not measured"
    moved = f"{milliseconds(before)} → {milliseconds(after)}"
    if after is None or before == 0:
        return moved
    return f"{moved} ({percent(after / before - 1)})"


def run_label(run: dict[str, Any]) -> str:
    """``run 2``, or ``main run 2 (pair)`` for main's side of a pair."""
    if run["side"]:
        return f"{clean_text(run['side'])} run {run['run']} (pair)"
    return f"run {run['run']}"


def run_figures(run: dict[str, Any]) -> list[str]:
    """A run's p99 and median in ms, its requests and its failed rate."""
    figures = run["figures"]
    requests, rate = figures.get("requests"), figures.get("failed_rate")
    return [
        ms(figures.get("p99_ms")),
        ms(figures.get("med_ms")),
        NONE if requests is None else f"{requests:.0f}",
        NONE if rate is None else f"{rate:.2%}",
    ]


def failed_gates(run: dict[str, Any]) -> list[str]:
    """Each gate the run failed, with the value measured and its limit."""
    return [
        f"{clean_text(g['gate'])} (measured {number(g['value'])}, "
        f"limit {number(g['limit'])})"
        for g in run["gates"]
        if not g["passed"]
    ]


def gates_text(run: dict[str, Any]) -> str:
    """The run's gate results on one line."""
    if run["error"]:
        return f"not measured: {clean_text(run['error'])}"
    gates = run["gates"]
    passed = sum(g["passed"] for g in gates)
    failed = failed_gates(run)
    counted = f"{passed}/{len(gates)} gates passed"
    return "; ".join([counted, *(f"failed {text}" for text in failed)])


def runs_in_order(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The item's runs, each of main's runs in turns just before its pair."""
    pairs = {run["run"]: run for run in item["main_runs"]}
    ordered = []
    for run in item["runs"]:
        if run["run"] in pairs:
            ordered.append(pairs.pop(run["run"]))
        ordered.append(run)
    return ordered + list(pairs.values())


# Markdown.


def text(value: object) -> str:
    """Text as Markdown shows it literally, on one line."""
    cleaned = _SPECIAL.sub(r"\\\1", clean_text(value))
    return _NEWLINES.sub("<br>", cleaned)


def code(value: object) -> str:
    """Text as a code span, whatever backticks it holds."""
    content = " ".join(clean_text(value).split())
    if not content:
        return NONE
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {content} " if content[0] == "`" or content[-1] == "`" else content
    return f"{fence}{padded}{fence}"


def cell(markdown: str) -> str:
    """A Markdown fragment made safe for a table cell."""
    # Tables split on every unescaped pipe, code spans included; the table
    # hands the escaped pipe to the cell's content as a plain one.
    return _unescaped_pipes(_NEWLINES.sub("<br>", markdown))


def _unescaped_pipes(markdown: str) -> str:
    out, escaped = [], False
    for char in markdown:
        if char == "|" and not escaped:
            out.append("\\")
        out.append(char)
        escaped = char == "\\" and not escaped
    return "".join(out)


def table(
    header: Iterable[str],
    rows: Iterable[Iterable[str]],
    numeric: frozenset[int] = frozenset(),
) -> str:
    """A table of Markdown cells; the numeric columns (by index) align right."""
    names = list(header)
    align = ["---:" if i in numeric else "---" for i in range(len(names))]
    lines = [_row(names), _row(align)]
    lines += [_row(cells) for cells in rows]
    return "\n".join(lines)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _header(document: Document) -> str:
    session, main = document["session"], document["main"]
    name = session["plan_name"] or session["plan"] or "plan"
    lines = [
        f"# optui: {text(name)} — session {code(session['id'])}",
        "",
        f"**{text(main['branch'])}** p99 {text(main_p99_move(main))} · "
        f"{text(short_sha(main['sha_before']))} → "
        f"{text(short_sha(main['sha_after']))}",
        "",
        _status_line(document),
    ]
    if session["error"]:
        lines += ["", f"**Error:** {text(session['error'])}"]
    return "\n".join(lines)


def _status_line(document: Document) -> str:
    session = document["session"]
    status = session["status"].capitalize()
    if session["status"] != "finished":
        status = f"**{status}**: the session stopped before its end"
    span = f"{when(session['started_at'])} → {when(session['stopped_at'])}"
    seconds = session_seconds(document)
    if seconds is not None:
        span += f" ({seconds:.0f} s)"
    return f"{status} · {text(totals_text(document))} · {text(span)}"


def totals_text(document: Document) -> str:
    """``5 items: 1 merged, 2 failed``."""
    totals = document["totals"]
    counts = [f"{n} {state}" for state, n in totals.items() if state != "items"]
    items = totals["items"]
    head = f"{items} item" + ("" if items == 1 else "s")
    return head + (": " + ", ".join(counts) if counts else "")


def _summary(items: list[dict[str, Any]]) -> str:
    if not items:
        return "## Summary\n\nThe plan has no items."
    rows = [_summary_row(item) for item in items]
    return "## Summary\n\n" + table(COLUMNS, rows)


def _summary_row(item: dict[str, Any]) -> list[str]:
    cells = [_item_cell(item), *map(text, summary_cells(item))]
    if item["failing_gate"]:
        cells[-1] = code(shorten(item["failing_gate"]))
    return cells


def _item_cell(item: dict[str, Any]) -> str:
    return f"{text(item['title'])} {code(item['id'])}"


def _details(document: Document) -> str:
    sections = [_main_details(document["main"])]
    sections += [_item_details(item) for item in document["items"] if item["runs"]]
    unmeasured = _unmeasured(document["items"])
    if unmeasured:
        sections.append(unmeasured)
    filled = [section for section in sections if section]
    return "## Details\n\n" + "\n\n".join(filled) if filled else ""


def _main_details(main: dict[str, Any]) -> str:
    if not main["baselines"]:
        return ""
    marks = [
        f"- {text(milliseconds(mark['p99_ms']))} at {text(short_sha(mark['sha']))}: "
        f"{text(mark['source'])} ({text(when(mark['at']))})"
        for mark in main["baselines"]
    ]
    lines = [f"### {text(main['branch'])}'s baseline", "", *marks]
    if main["runs"]:
        runs = _runs_table(main["runs"], main["branch"])
        lines += ["", "Its latest measurement:", "", runs]
    return "\n".join(lines)


def _item_details(item: dict[str, Any]) -> str:
    lines = [f"### {_item_cell(item)}", "", _verdict_line(item), ""]
    lines.append(_runs_table(runs_in_order(item)))
    changes = [f"- {text(c['text'])}" for c in item["changes"]]
    verdicts = [
        f"- Verdict on {code(v['gate'])}: **{text(v['outcome'])}**, {text(v['text'])}"
        for v in item["verdicts"]
    ]
    if changes or verdicts:
        lines += ["", *changes, *verdicts]
    return "\n".join(lines)


def _verdict_line(item: dict[str, Any]) -> str:
    parts = [f"**{text(item['state'])}**"]
    if item["reason"]:
        parts.append(text(item["reason"]))
    if item["commit"]:
        parts.append(f"commit {text(short_sha(item['commit']))}")
    if item["kept_ref"]:
        parts.append(f"kept at {code(item['kept_ref'])}")
    if item["seconds"] is not None:
        parts.append(f"{item['seconds']:.1f} s")
    return " · ".join(parts)


def _runs_table(runs: list[dict[str, Any]], side: str = "item") -> str:
    rows = [
        [
            str(run["run"]),
            text(f"{run['side']} (pair)" if run["side"] else side),
            *run_figures(run),
            text(gates_text(run)),
        ]
        for run in runs
    ]
    return table([*RUN_COLUMNS, "Gates"], rows, frozenset({0, 2, 3, 4, 5}))


def _unmeasured(items: list[dict[str, Any]]) -> str:
    lines = [
        f"- {_item_cell(item)}: **{text(item['state'])}**"
        + (f", {text(item['reason'])}" if item["reason"] else "")
        for item in items
        if not item["runs"]
    ]
    return "\n".join(["### Not measured", "", *lines]) if lines else ""


def _reverts(reverts: list[dict[str, Any]]) -> str:
    if not reverts:
        return ""
    lines = [
        f"- {code(r['item'])}: merge {text(short_sha(r['merge']))} reverted by "
        f"{text(short_sha(r['commit']))} (main was {text(short_sha(r['main_before']))})"
        + (f", {text(r['reason'])}" if r["reason"] else "")
        for r in reverts
    ]
    return "\n".join(["## Reverts", "", *lines])
