"""A session's report as one self-contained HTML page, its charts inline SVG.

The page loads nothing: no script, font or style sheet from elsewhere, so it
reads the same offline, attached to a CI run or mailed around.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from optui.report import Document
from optui.report.markdown import (
    COLUMNS,
    NONE,
    RUN_COLUMNS,
    change_text,
    clean_text,
    gates_text,
    main_p99_move,
    milliseconds,
    ms,
    p99_comparison,
    run_figures,
    runs_in_order,
    session_seconds,
    short_sha,
    shorten,
    summary_cells,
    totals_text,
    when,
)

DEFAULT_LIMIT = 0.10
"""The gates' default bound on the change of p99 for an item not bound to improve."""
LABEL_LENGTH = 28

# Styles only; the page forbids every other source but inline styles.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
# Elements whose children go on lines of their own, to keep the source legible.
_BLOCKS = frozenset(
    {"html", "head", "body", "header", "section", "div", "table", "thead"}
    | {"tbody", "tr", "dl", "ul", "svg", "g"}
)
_FACTOR = re.compile(r"baseline\s*\*\s*([0-9]*\.?[0-9]+)")

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1f2328; max-width: 76rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2rem; } h3 { margin-bottom: .3rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { color: #57606a; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace;
  background: #f6f8fa; padding: 0 .25rem; border-radius: 3px; }
.outcome-passed { color: #1a7f37; } .outcome-failed { color: #cf222e; }
.outcome-error { color: #9a6700; } .outcome-skipped { color: #6e7781; }
.result { font-weight: 600; }
.empty, .note { color: #57606a; }
.error-box { border-left: 4px solid #cf222e; padding: .3rem .8rem; }
div.item { border-top: 1px solid #d0d7de; margin-top: 1.5rem; }
svg.chart { display: block; max-width: 100%; height: auto; margin: .5rem 0 1rem; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg.chart text.small { font-size: 10px; fill: #57606a; }
svg.chart .grid { stroke: #eaeef2; } svg.chart .axis { stroke: #8c959f; }
svg.chart .zero { stroke: #1f2328; stroke-width: 1.5; }
svg.chart .band { fill: #dafbe1; }
svg.chart .ci { stroke: #1f2328; stroke-width: 2; }
svg.chart .dot-passed { fill: #1a7f37; }
svg.chart .dot-failed { fill: #cf222e; }
svg.chart .dot-error { fill: #9a6700; }
svg.chart .dot-skipped { fill: #6e7781; }
svg.chart .step { fill: none; stroke: #0969da; stroke-width: 2; }
svg.chart .mark { fill: #0969da; }
svg.chart .bar-pass { fill: #4c9f70; } svg.chart .bar-fail { fill: #cf222e; }
svg.chart .bar-main { fill: #8c959f; }
svg.chart .ref { stroke: #0969da; stroke-width: 1.5; stroke-dasharray: 6 4; }
svg.chart .ref-then { stroke: #8250df; stroke-width: 1.5; stroke-dasharray: 2 3; }
"""


def render(document: Document) -> str:
    """The report as one HTML page."""
    head = [
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        tag("title", esc(_title(document))),
        tag("style", STYLE),
    ]
    body = [
        _header(document),
        _summary(document["items"]),
        _change_section(document["items"]),
        _main_section(document["main"]),
        _items_section(document["items"], document["main"]),
        _reverts(document["reverts"]),
    ]
    page = tag("html", tag("head", *head) + tag("body", *body), lang="en")
    return f"<!DOCTYPE html>\n{page}\n"


# Markup.


def esc(value: object) -> str:
    """Text as HTML shows it literally."""
    return html.escape(clean_text(value))


def tag(name: str, *content: str, **attributes: object) -> str:
    """An element around content that is markup already; attributes escaped."""
    inner = ("\n" if name in _BLOCKS else "").join(content)
    return f"<{name}{_attributes(attributes)}>{inner}</{name}>"


def shape(name: str, **attributes: object) -> str:
    """An SVG element with no content."""
    return f"<{name}{_attributes(attributes)} />"


def _attributes(attributes: dict[str, object]) -> str:
    # Python names stand for the markup's: class_ for class, aria_label for
    # aria-label; SVG's own camel case (viewBox) passes as it is.
    parts = [
        f' {name.rstrip("_").replace("_", "-")}="{esc(_value(value))}"'
        for name, value in attributes.items()
        if value is not None
    ]
    return "".join(parts)


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _title(document: Document) -> str:
    session = document["session"]
    name = session["plan_name"] or session["plan"] or "plan"
    return f"optui: {name} — session {session['id']}"


# The page's sections.


def _header(document: Document) -> str:
    session, main = document["session"], document["main"]
    seconds = session_seconds(document)
    span = f"{when(session['started_at'])} → {when(session['stopped_at'])}"
    if seconds is not None:
        span += f" ({seconds:.0f} s)"
    facts = {
        "Plan": session["plan"],
        "Repository": session["repo"],
        "Status": session["status"],
        "Items": totals_text(document),
        "Time": span,
        f"{main['branch']} p99": main_p99_move(main),
        f"{main['branch']} commit": (
            f"{short_sha(main['sha_before'])} → {short_sha(main['sha_after'])}"
        ),
    }
    rows = [
        tag("dt", esc(name)) + tag("dd", esc(value)) for name, value in facts.items()
    ]
    parts = [tag("h1", esc(_title(document))), tag("dl", *rows, class_="facts")]
    if session["error"]:
        parts.append(tag("p", esc(f"Error: {session['error']}"), class_="error-box"))
    if session["status"] != "finished":
        note = f"The session is {session['status']}: it stopped before its end."
        parts.append(tag("p", esc(note), class_="note"))
    return tag("header", *parts)


def _summary(items: list[dict[str, Any]]) -> str:
    if not items:
        return tag("section", tag("h2", "Summary"), _empty("The plan has no items."))
    head = tag("tr", *(tag("th", esc(name), scope="col") for name in COLUMNS))
    rows = [_summary_row(item) for item in items]
    body = tag("thead", head) + tag("tbody", *rows)
    return tag("section", tag("h2", "Summary"), tag("table", body, class_="summary"))


def _summary_row(item: dict[str, Any]) -> str:
    phase, risk, state, commit, change, runs, why = summary_cells(item)
    outcome = f"result outcome-{item['outcome']}"
    cells = [
        tag("td", _item_name(item)),
        tag("td", esc(phase)),
        tag("td", esc(risk)),
        tag("td", esc(state), class_=outcome),
        tag("td", tag("code", esc(commit)) if item["commit"] else NONE),
        tag("td", esc(change), class_="num"),
        tag("td", esc(runs), class_="num"),
        tag(
            "td",
            tag("code", esc(why)) if item["failing_gate"] else esc(why),
            title=item["reason"] or None,
        ),
    ]
    return tag("tr", *cells)


def _item_name(item: dict[str, Any]) -> str:
    return f"{esc(item['title'])} {tag('code', esc(item['id']))}"


def _change_section(items: list[dict[str, Any]]) -> str:
    rows = [_ChangeRow.of(item) for item in items if p99_comparison(item)]
    heading = tag("h2", "Change of p99 against main")
    if not rows:
        return tag("section", heading, _empty("No item's p99 was measured."))
    return tag("section", heading, change_chart(rows))


def _main_section(main: dict[str, Any]) -> str:
    branch, marks = main["branch"], main["baselines"]
    heading = tag("h2", esc(f"{branch}'s p99 through the session"))
    if not any(mark["p99_ms"] is not None for mark in marks):
        return tag("section", heading, _empty(f"{branch}'s p99 was not measured."))
    parts = [heading, main_chart(marks, branch)]
    if main["runs"]:
        parts.append(tag("p", esc(f"The runs of {branch}'s latest measurement:")))
        parts.append(_runs_table(main["runs"], branch))
    return tag("section", *parts)


def _items_section(items: list[dict[str, Any]], main: dict[str, Any]) -> str:
    measured = [_item_details(item, main) for item in items if item["runs"]]
    rest = [
        tag("li", _item_name(item), ": ", esc(_verdict_line(item)))
        for item in items
        if not item["runs"]
    ]
    parts = [tag("h2", "Items"), *measured]
    if not measured:
        parts.append(_empty("No item has runs."))
    if rest:
        parts += [tag("h3", "Not measured"), tag("ul", *rest)]
    return tag("section", *parts)


def _item_details(item: dict[str, Any], main: dict[str, Any]) -> str:
    notes = [tag("li", esc(change["text"])) for change in item["changes"]]
    notes += [
        tag(
            "li",
            "Verdict on ",
            tag("code", esc(v["gate"])),
            esc(f": {v['outcome']}, {v['text']}"),
        )
        for v in item["verdicts"]
    ]
    parts = [
        tag("h3", _item_name(item)),
        tag("p", esc(_verdict_line(item)), class_=f"outcome-{item['outcome']}"),
        runs_chart(item, main["p99_before_ms"]),
        _runs_table(runs_in_order(item)),
    ]
    if notes:
        parts.append(tag("ul", *notes))
    return tag("div", *parts, class_="item", id=f"item-{item['id']}")


def _verdict_line(item: dict[str, Any]) -> str:
    parts = [item["state"]]
    if item["reason"]:
        parts.append(item["reason"])
    if item["commit"]:
        parts.append(f"commit {short_sha(item['commit'])}")
    if item["kept_ref"]:
        parts.append(f"kept at {item['kept_ref']}")
    return " · ".join(parts)


def _runs_table(runs: list[dict[str, Any]], side: str = "item") -> str:
    head = tag("tr", *(tag("th", esc(n)) for n in [*RUN_COLUMNS, "Gates"]))
    rows = [_run_row(run, side) for run in runs]
    return tag("table", tag("thead", head) + tag("tbody", *rows), class_="runs")


def _run_row(run: dict[str, Any], side: str) -> str:
    outcome = "passed" if run["passed"] else "failed"
    return tag(
        "tr",
        tag("td", esc(run["run"]), class_="num"),
        tag("td", esc(f"{run['side']} (pair)" if run["side"] else side)),
        *(tag("td", esc(figure), class_="num") for figure in run_figures(run)),
        tag("td", esc(gates_text(run)), class_=f"outcome-{outcome}"),
    )


def _reverts(reverts: list[dict[str, Any]]) -> str:
    if not reverts:
        return ""
    lines = [
        tag(
            "li",
            tag("code", esc(r["item"])),
            esc(
                f": merge {short_sha(r['merge'])} reverted by {short_sha(r['commit'])}"
                f" (main was {short_sha(r['main_before'])}) {when(r['at'])}"
                + (f", {r['reason']}" if r["reason"] else "")
            ),
        )
        for r in reverts
    ]
    return tag("section", tag("h2", "Reverts"), tag("ul", *lines))


def _empty(message: str) -> str:
    return tag("p", esc(message), class_="empty")


# Charts.


@dataclass(frozen=True)
class Scale:
    """Maps values from low to high onto pixels from start to end."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)

    @classmethod
    def spanning(cls, values: Iterable[float], start: float, end: float) -> Scale:
        """A scale over the values with a margin, wide enough when they are equal."""
        found = list(values) or [0.0]
        low, high = min(found), max(found)
        margin = (high - low) * 0.06 or max(abs(low) * 0.1, 0.05)
        return cls(low - margin, high + margin, start, end)

    @classmethod
    def from_zero(cls, values: Iterable[float], start: float, end: float) -> Scale:
        """A scale from zero to a little above the largest value."""
        top = max([v for v in values if v > 0], default=0.0)
        return cls(0.0, top * 1.15 or 1.0, start, end)

    def ticks(self, count: int = 5) -> list[float]:
        """Round values within the scale, about count of them."""
        raw = (self.high - self.low) / count
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
        first, last = math.ceil(self.low / step), math.floor(self.high / step)
        return [n * step for n in range(first, last + 1)]


def _svg(width: float, height: float, label: str, kind: str, *parts: str) -> str:
    return tag(
        "svg",
        tag("title", esc(label)),
        *parts,
        class_="chart",
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        width=f"{width:.0f}",
        height=f"{height:.0f}",
        role="img",
        aria_label=label,
        data_chart=kind,
    )


def _text(x: float, y: float, content: str, **attributes: object) -> str:
    return tag("text", esc(content), x=x, y=y, **attributes)


def _cut(label: str) -> str:
    return shorten(label, LABEL_LENGTH)


@dataclass(frozen=True)
class _ChangeRow:
    """One measured item on the chart of changes."""

    item_id: str
    outcome: str
    change: float
    low: float | None
    high: float | None
    limit: float
    text: str

    @classmethod
    def of(cls, item: dict[str, Any]) -> _ChangeRow:
        comparison = p99_comparison(item)
        assert comparison is not None
        return cls(
            item["id"],
            item["outcome"],
            comparison["change"],
            comparison["low"],
            comparison["high"],
            latency_limit(item),
            change_text(comparison),
        )


def latency_limit(item: dict[str, Any]) -> float:
    """The most p99 may grow against main: +10%, or 0 for an item bound to improve."""
    for verdict in item["verdicts"]:
        if verdict.get("limit") is not None and "p(99)" in verdict["gate"]:
            return float(verdict["limit"])
    for gate in _p99_gates(item):
        found = _FACTOR.search(gate["gate"])
        return float(found.group(1)) - 1 if found else 0.0
    return 0.0 if item["require_improvement"] else DEFAULT_LIMIT


def item_baseline(item: dict[str, Any]) -> float | None:
    """Main's p99 the item was held to, as its runs' gate limits tell it."""
    for gate in _p99_gates(item):
        if gate.get("limit") is not None:
            found = _FACTOR.search(gate["gate"])
            factor = float(found.group(1)) if found else 1.0
            return float(gate["limit"]) / factor if factor else None
    return None


def _p99_gates(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-run gates on the item's p99 against main (absolute limits, in ms)."""
    gates = [g for run in item["runs"] for g in run["gates"]]
    return [g for g in gates if "p(99)" in g["gate"] and "baseline" in g["gate"]]


CHANGE_LABEL, CHANGE_PLOT, CHANGE_VALUE = 190.0, 380.0, 250.0
ROW, TOP, LEGEND = 34.0, 30.0, 30.0


def change_chart(rows: list[_ChangeRow]) -> str:
    """Each item's change of p99 against main: a dot, its interval, its limit."""
    width = CHANGE_LABEL + CHANGE_PLOT + CHANGE_VALUE
    bottom = TOP + ROW * len(rows)
    values = [0.0]
    for row in rows:
        values += [row.change, row.limit]
        values += [v for v in (row.low, row.high) if v is not None]
    scale = Scale.spanning(values, CHANGE_LABEL, CHANGE_LABEL + CHANGE_PLOT)
    parts = _change_ticks(scale, bottom)
    parts += [_change_row(row, TOP + ROW * i, scale) for i, row in enumerate(rows)]
    zero = scale(0.0)
    parts.append(shape("line", x1=zero, y1=TOP - 4, x2=zero, y2=bottom, class_="zero"))
    legend = (
        "dot: change of p99 against main · line: its confidence interval · "
        "shaded: within the item's limit · dark line: no change"
    )
    parts.append(_text(CHANGE_LABEL, bottom + 20, legend, class_="small"))
    label = f"Change of p99 against main, {len(rows)} measured item(s)"
    return _svg(width, bottom + LEGEND, label, "change", *parts)


def _change_ticks(scale: Scale, bottom: float) -> list[str]:
    parts = []
    for tick in scale.ticks():
        x = scale(tick)
        parts.append(shape("line", x1=x, y1=TOP - 4, x2=x, y2=bottom, class_="grid"))
        parts.append(_text(x, TOP - 10, _whole_percent(tick), text_anchor="middle"))
    return parts


def _whole_percent(change: float) -> str:
    """``+10%``, ``-50%`` or ``0%``, for an axis or a limit."""
    points = round(change * 100, 1)
    return f"{points:+g}%" if points else "0%"


def _change_row(row: _ChangeRow, top: float, scale: Scale) -> str:
    middle = top + ROW / 2
    limit_x = min(max(scale(row.limit), scale.start), scale.end)
    limit = f"limit {_whole_percent(row.limit)}"
    if row.limit == 0:
        limit += ": must improve"
    value_x = CHANGE_LABEL + CHANGE_PLOT + 10
    band = shape(
        "rect",
        x=scale.start,
        y=top + 5,
        width=limit_x - scale.start,
        height=ROW - 10,
        class_="band",
    )
    dot = shape(
        "circle", cx=scale(row.change), cy=middle, r=5, class_=f"dot-{row.outcome}"
    )
    return tag(
        "g",
        tag("title", esc(f"{row.item_id}: p99 {row.text}, {limit}")),
        band,
        _text(CHANGE_LABEL - 10, middle + 4, _cut(row.item_id), text_anchor="end"),
        *_interval(row, middle, scale),
        dot,
        _text(value_x, middle, row.text),
        _text(value_x, middle + 12, limit, class_="small"),
    )


def _interval(row: _ChangeRow, middle: float, scale: Scale) -> list[str]:
    """A line across the change's confidence interval, capped at both ends."""
    if row.low is None or row.high is None:
        return []
    low, high = scale(row.low), scale(row.high)
    caps = [
        shape("line", x1=x, y1=middle - 5, x2=x, y2=middle + 5, class_="ci")
        for x in (low, high)
    ]
    return [shape("line", x1=low, y1=middle, x2=high, y2=middle, class_="ci"), *caps]


AXIS, MAIN_COLUMN, MAIN_PLOT, MAIN_LABELS = 60.0, 190.0, 150.0, 60.0


def main_chart(marks: list[dict[str, Any]], branch: str) -> str:
    """Main's p99 at each baseline the session set, held until the next."""
    column = max(MAIN_COLUMN, 360.0 / len(marks))
    width = AXIS + column * len(marks) + 20
    bottom = TOP + MAIN_PLOT
    scale = Scale.from_zero(
        (m["p99_ms"] for m in marks if m["p99_ms"] is not None), bottom, TOP
    )
    centres = [AXIS + column * (i + 0.5) for i in range(len(marks))]
    points = [
        (x, scale(mark["p99_ms"]))
        for x, mark in zip(centres, marks, strict=True)
        if mark["p99_ms"] is not None
    ]
    parts = [
        *_y_axis(scale, AXIS, width - 20),
        _step_path(points, width - 20),
        *(_mark(m, x, scale) for x, m in zip(centres, marks, strict=True)),
    ]
    label = f"{branch}'s p99 at each of {len(marks)} baseline(s), in ms"
    return _svg(width, bottom + MAIN_LABELS, label, "main", *parts)


def _step_path(points: list[tuple[float, float]], right: float) -> str:
    x, y = points[0]
    steps = [f"M{x:.1f},{y:.1f}"]
    steps += [f"H{x:.1f} V{y:.1f}" for x, y in points[1:]]
    steps.append(f"H{right:.1f}")
    return shape("path", d=" ".join(steps), class_="step")


def _mark(mark: dict[str, Any], x: float, scale: Scale) -> str:
    source, p99, bottom = mark["source"] or NONE, mark["p99_ms"], scale.start
    figure = milliseconds(p99)
    lines = _wrap(source, 2)
    stamp = f"{short_sha(mark['sha'])} {_clock(mark['at'])}"
    parts = [tag("title", esc(f"{source}: {figure} at {stamp}"))]
    parts += [
        _text(x, bottom + 16 + 13 * i, line, text_anchor="middle")
        for i, line in enumerate(lines)
    ]
    below = bottom + 16 + 13 * len(lines)
    parts.append(_text(x, below, stamp, text_anchor="middle", class_="small"))
    if p99 is None:
        parts.append(_text(x, bottom - 6, "no p99", text_anchor="middle"))
    else:
        y = scale(p99)
        parts.append(shape("circle", cx=x, cy=y, r=4, class_="mark"))
        # Above and to the right of the dot, clear of the step's lines.
        parts.append(_text(x + 6, y - 8, figure))
    return tag("g", *parts)


def _wrap(label: str, most: int) -> list[str]:
    """A label on at most so many lines, the last cut if it is too long."""
    lines = textwrap.wrap(label, LABEL_LENGTH, break_on_hyphens=False) or [NONE]
    if len(lines) > most:
        lines = [*lines[: most - 1], _cut(" ".join(lines[most - 1 :]))]
    return lines


def _clock(stamp: str | None) -> str:
    """The time of day of an ISO time, ``01:05:17``."""
    return stamp[11:19] if stamp and len(stamp) >= 19 else ""


def _y_axis(scale: Scale, left: float, right: float) -> list[str]:
    """Gridlines and labels in ms up the left of a chart."""
    parts = []
    for tick in scale.ticks(4):
        y = scale(tick)
        parts.append(shape("line", x1=left, y1=y, x2=right, y2=y, class_="grid"))
        parts.append(_text(left - 6, y + 4, f"{tick:g} ms", text_anchor="end"))
    parts.append(
        shape("line", x1=left, y1=scale.start, x2=right, y2=scale.start, class_="axis")
    )
    return parts


BAR_SLOT, BAR_WIDTH, BAR_PLOT, BAR_RIGHT = 46.0, 26.0, 140.0, 170.0


def runs_chart(item: dict[str, Any], main_before: float | None) -> str:
    """Each run's p99 as a bar, against main's p99 before the session."""
    runs = runs_in_order(item)
    then = item_baseline(item)
    if then is not None and main_before and abs(then / main_before - 1) < 0.01:
        then = None
    values = [run["figures"].get("p99_ms") for run in runs]
    references = [v for v in (main_before, then) if v is not None]
    right = AXIS + BAR_SLOT * len(runs)
    width = max(right + BAR_RIGHT, 360.0)
    bottom = TOP + BAR_PLOT
    measured = [v for v in values if v is not None]
    scale = Scale.from_zero([*measured, *references], bottom, TOP)
    parts = _y_axis(scale, AXIS, right)
    parts += [_bar(run, AXIS + BAR_SLOT * i, scale) for i, run in enumerate(runs)]
    parts += _references(scale, right, main_before, then)
    label = f"p99 of each run of {item['id']}, in ms, against main's p99"
    return _svg(width, bottom + 36, label, "runs", *parts)


def _bar(run: dict[str, Any], left: float, scale: Scale) -> str:
    p99 = run["figures"].get("p99_ms")
    x = left + (BAR_SLOT - BAR_WIDTH) / 2
    middle = left + BAR_SLOT / 2
    name = f"main {run['run']}" if run["side"] else f"run {run['run']}"
    kind = "main" if run["side"] else ("pass" if run["passed"] else "fail")
    figure = milliseconds(p99)
    parts = [
        tag("title", esc(f"{name}: p99 {figure}, {gates_text(run)}")),
        _text(middle, scale.start + 16, name, text_anchor="middle", class_="small"),
    ]
    if p99 is None:
        missing = "error" if run["error"] else "n/a"
        parts.append(_text(middle, scale.start - 6, missing, text_anchor="middle"))
        return tag("g", *parts)
    top = scale(max(p99, 0.0))
    parts += [
        shape(
            "rect",
            x=x,
            y=top,
            width=BAR_WIDTH,
            height=scale.start - top,
            class_=f"bar-{kind}",
        ),
        _text(middle, top - 5, ms(p99), text_anchor="middle", class_="small"),
    ]
    return tag("g", *parts)


def _references(
    scale: Scale, right: float, before: float | None, then: float | None
) -> list[str]:
    """Main's p99 before the session, and the one the item was held to if other."""
    parts = []
    taken: list[float] = []
    for value, name, kind in (
        (before, "main before", "ref"),
        (then, "main when run", "ref-then"),
    ):
        if value is None:
            continue
        y = scale(value)
        label_y = y + 4
        # Two labels close together would overlap: the second moves down.
        if taken and abs(label_y - taken[-1]) < 12:
            label_y = taken[-1] + 12
        taken.append(label_y)
        parts.append(shape("line", x1=AXIS, y1=y, x2=right, y2=y, class_=kind))
        parts.append(_text(right + 6, label_y, f"{name} {ms(value)} ms"))
    return parts
