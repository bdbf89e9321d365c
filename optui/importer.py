"""Plans written as Markdown, turned into the text of a plan file.

The Markdown this reads is the kind people write before any tool is involved:
an optional ``# Title``, a success-criteria section in prose, phase headings
(``### Phase 1: Safety``) with numbered items below them::

    1. **FastHTTP Context Copy** (Task 2) - Critical correctness fix
       - Risk: Low
       - Expected: may add slight latency

and a phase marked to be skipped (``Phase 4: Skip for now``, ``Deferred``, ...)
whose bullets ``Name (reason)`` become deferred items.

What it recognises, beyond that shape:

- criteria, in a criteria section or on lines under an item (the plan has no
  per-item gates, so those apply to the whole plan): "must pass N consecutive
  runs", "N runs", "pass N times", "runs: N" (``runs``); "p99 must not regress
  more than X%", "p99 within X%", "p95 at most X% slower", "median within X%"
  (a latency gate against the baseline); "p99 under 200 ms" (a fixed latency
  bound); "no payment inconsistencies", "zero inconsistencies"
  (``payments_inconsistency``); "no failed requests", "zero errors", "0%
  errors", "error rate 0%" (``http_req_failed``); a gate written out, in
  backticks or naming a k6 metric (``http_req_failed: rate < 0.01``);
- must-improve words on an item (``require_improvement: true``): "must
  improve", "must beat", "must outperform", "must be faster", "has to / needs
  to improve", "only if it beats", "only if it (measurably) improves", "only if
  faster", "requires an improvement", "improvement required";
- skip-phase markers: a heading starting with "skip", "skipped", "defer",
  "deferred", "postponed", "on hold", "parked", "do not apply", "don't apply",
  "not now", "not yet", "not applied", "excluded", or a phase heading holding
  one of those words, or a parenthesis such as "(skip)" or "(deferred: why)".

Apply sources are left empty for the operator, as in ``plans/reapply.yaml``.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from optui.errors import PlanError, Problem
from optui.gates import DEFAULT_GATES, Gate, GateSyntaxError, parse_gate
from optui.plan import Risk, parse_plan

log = logging.getLogger(__name__)

DEFAULT_RUNS = 3
DEFAULT_REASON = "deferred in the Markdown plan"
RISK_CHOICES = ", ".join(risk.value for risk in Risk)
LATENCY = "http_req_duration{expected_response:true}"
FAILED_GATE = "http_req_failed: rate == 0"
INCONSISTENCY_GATE = "payments_inconsistency: count == 0"
ITEM_SHAPE = "'1. **Name** (Task N) - what it is expected to do'"


@dataclass(frozen=True)
class ImportedPlan:
    """A Markdown plan as plan-file text, and what the operator must know of it."""

    text: str
    """The YAML plan file's text, with comments saying what to fill in."""
    notes: tuple[str, ...]
    """Each ``PATH:LINE: message`` (``PATH: message`` when about the whole file)."""
    items: int
    deferred: int
    """How many of the items are deferred."""


def import_markdown(path: Path) -> ImportedPlan:
    """Read a Markdown plan (UTF-8) and turn it into plan-file text."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError([Problem(path, 0, 0, f"cannot read: {exc.strerror}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError([_undecodable(path, data, exc)]) from None
    return parse_markdown(path, text)


def parse_markdown(path: Path, text: str) -> ImportedPlan:
    """Turn Markdown text read from path into plan-file text; PlanError if it can't."""
    path = Path(path)
    importer = _Importer(path)
    importer.read(_tokens(text))
    result = importer.finish()
    log.debug(
        "imported %s: %d items, %d deferred, %d notes",
        path,
        result.items,
        result.deferred,
        len(result.notes),
    )
    return result


def _undecodable(path: Path, data: bytes, exc: UnicodeDecodeError) -> Problem:
    """Where a file that is not UTF-8 first goes wrong."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
    byte = data[exc.start] if exc.start < len(data) else 0
    return Problem(
        path,
        line,
        column,
        f"not UTF-8 text (byte 0x{byte:02x}): save the Markdown plan as UTF-8",
    )


# Text cleaning and YAML scalars.

_NOT_PRINTABLE = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What PyYAML refuses in a stream, plus tabs and line breaks (\\x85, U+2028/9):
none belongs in a one-line value or a comment."""
_SPACES = re.compile(r"\s+")
_PLAIN = re.compile(r"[a-z][a-z0-9._-]*")
_YAML_WORDS = frozenset(("yes", "no", "on", "off", "true", "false", "null", "y", "n"))


def _clean(text: str) -> str:
    """Text on one line, with nothing YAML refuses, spaces collapsed."""
    return _SPACES.sub(" ", _NOT_PRINTABLE.sub(" ", text)).strip()


def _scalar(text: str) -> str:
    """A YAML scalar that reads back as exactly the (cleaned) text."""
    text = _clean(text)
    if _PLAIN.fullmatch(text) and text not in _YAML_WORDS:
        return text
    # A JSON string is a valid YAML double-quoted scalar; _clean left nothing in
    # it that JSON would escape other than quotes and backslashes.
    return json.dumps(text, ensure_ascii=False)


def _quoted(text: str) -> str:
    return json.dumps(_clean(text), ensure_ascii=False)


# Lines.


@dataclass(frozen=True)
class _Line:
    """One line of the Markdown, classified."""

    number: int
    kind: str
    """blank, heading, numbered, bullet, text or skip (code, comment, rule)."""
    text: str
    """What follows the heading, number or bullet mark, cleaned."""
    indent: int = 0
    column: int = 1
    """1-based column where text starts."""
    level: int = 0
    """A heading's level; 7 for a paragraph that is only a bold phase name."""


_HEADING = re.compile(r"^ {0,3}(#{1,6})(?!#)\s*(.*?)$")
_CLOSING_HASHES = re.compile(r"(?:^|\s)#+\s*$")
_NUMBERED = re.compile(r"^(\s*)([0-9]{1,9})[.)](?:\s+|(?=\*\*|__)|$)(.*)$")
_BULLET = re.compile(r"^(\s*)[-*+\u2022](?:\s+|$)(.*)$")
_CHECKBOX = re.compile(r"^\[[ xX]\]\s*")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_BOLD_PHASE = re.compile(r"^\s*(\*\*|__)\s*((?:phase|stage)\b.*?)\s*\1\s*:?\s*$", re.I)


def _tokens(text: str) -> list[_Line]:
    """The lines of text, numbered from 1 as an editor counts them."""
    text = text.removeprefix("\ufeff")
    lines: list[_Line] = []
    fence = ""
    in_comment = False
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        expanded = raw.expandtabs(4)
        stripped = expanded.strip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            lines.append(_Line(number, "skip", ""))
            continue
        if in_comment:
            in_comment = "-->" not in stripped
            lines.append(_Line(number, "skip", ""))
            continue
        opening = _FENCE.match(expanded)
        if opening:
            fence = opening[1][0] * 3
            lines.append(_Line(number, "skip", ""))
            continue
        if stripped.startswith("<!--"):
            in_comment = "-->" not in stripped
            lines.append(_Line(number, "skip", ""))
            continue
        line = _classify(number, expanded)
        last = lines[-1] if lines else None
        if (
            line.kind == "text"
            and last is not None
            and last.kind in ("text", "numbered", "bullet")
            and _detail_key(line.text) is None
        ):
            # A wrapped line continues the paragraph or list entry above it, so
            # that a sentence broken across lines is read whole.
            lines[-1] = replace(last, text=_clean(f"{last.text} {line.text}"))
            continue
        lines.append(line)
    return lines


def _classify(number: int, line: str) -> _Line:
    stripped = line.strip()
    indent = len(line) - len(line.lstrip())
    if not _clean(stripped):
        return _Line(number, "blank", "")
    if _RULE.match(line):
        return _Line(number, "skip", "")
    heading = _HEADING.match(line)
    if heading:
        text = _CLOSING_HASHES.sub("", heading[2])
        text = _clean(text).strip("*_ ").rstrip(":").strip()
        if text:
            column = line.find(heading[2]) + 1 if heading[2] else 1
            return _Line(number, "heading", text, indent, column, len(heading[1]))
        return _Line(number, "skip", "")
    bold_phase = _BOLD_PHASE.match(line)
    if bold_phase:
        text = _clean(bold_phase[2]).rstrip(":").strip()
        return _Line(number, "heading", text, indent, indent + 1, 7)
    numbered = _NUMBERED.match(line)
    if numbered:
        return _item_line(number, "numbered", numbered[1], numbered[3], line)
    bullet = _BULLET.match(line)
    if bullet:
        return _item_line(number, "bullet", bullet[1], bullet[2], line)
    return _Line(number, "text", _clean(stripped), indent, indent + 1)


def _item_line(number: int, kind: str, lead: str, rest: str, line: str) -> _Line:
    rest = _CHECKBOX.sub("", rest)
    column = len(line) - len(rest) + 1
    return _Line(number, kind, _clean(rest), len(lead), column)


# Headings.

_PHASE_WORD = re.compile(r"^(?:phase|stage)\b", re.I)
_SKIP_WORDS = (
    r"skip(?:ped)?(?![-\w])|defer(?:red)?|postponed?|on[ -]hold|parked"
    r"|do not apply|don'?t apply|not (?:now|yet)|not applied|excluded"
)
_SKIP_START = re.compile(rf"^(?:{_SKIP_WORDS})", re.I)
_SKIP_ANYWHERE = re.compile(rf"\b(?:{_SKIP_WORDS})", re.I)
_SKIP_PAREN = re.compile(rf"\(\s*(?:{_SKIP_WORDS})\s*(?:[:\-\u2013\u2014]\s*)?", re.I)
_CRITERIA_HEADING = re.compile(
    r"\b(?:criteria|criterion|success|acceptance|gates?|requirements"
    r"|definition of done|merge rules?|pass(?:ing)? conditions?)\b",
    re.I,
)
_PROSE_HEADING = re.compile(
    r"^(?:notes?|background|context|overview|summary|introduction|intro"
    r"|references?|appendix|history|rationale|motivation|lessons|open questions"
    r"|risks|glossary|links|goals|non-goals|out of scope|done|completed"
    r"|already|results|status|timeline|owners|how to|instructions|rollback"
    r"|monitoring|why|problem|what happened|findings|analysis)\b",
    re.I,
)


def _heading_kind(text: str) -> str:
    """phase, criteria, prose (known not to hold items) or other."""
    if _PHASE_WORD.match(text) or _SKIP_START.match(text) or _SKIP_PAREN.search(text):
        return "phase"
    if _CRITERIA_HEADING.search(text):
        return "criteria"
    if _PROSE_HEADING.match(text):
        return "prose"
    return "other"


def _skip_reason(text: str) -> tuple[bool, str | None]:
    """Whether a phase heading or an item's words mark it deferred, and why."""
    paren = _SKIP_PAREN.search(text)
    if paren:
        close = text.find(")", paren.end())
        inside = text[paren.end() : close if close >= 0 else len(text)]
        return True, _clean(inside) or None
    marker = _SKIP_START.search(text)
    if marker is None and _PHASE_WORD.match(text):
        marker = _SKIP_ANYWHERE.search(text)
    if marker is None:
        return False, None
    after = text[marker.end() :]
    said = re.match(r"^\s*[:\-\u2013\u2014]\s*(.+)$", after)
    if said:
        return True, _clean(said[1].strip("() ")) or None
    other = re.search(r"\(([^()]+)\)", after)
    if other:
        return True, _clean(other[1]) or None
    return True, None


# Items.

_BOLD = re.compile(r"^(\*\*|__)(.*?)\1(.*)$")
_TASK = re.compile(
    r"[(\[]\s*tasks?\b\s*(?:no\.?|number)?\s*[:#]?\s*([^()\[\]]*?)\s*[)\]]", re.I
)
_TASK_PREFIX = re.compile(
    r"^tasks?\s*#?\s*([0-9][\w.-]*)\s*[:.\-\u2013\u2014]\s*", re.I
)
_LEAD_SEPARATOR = re.compile(r"^[\s\-\u2013\u2014:|]+")
_DASH_SPLIT = re.compile(r"\s+[-\u2013\u2014]\s+")
_TRAILING_PAREN = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_LEADING_PAREN = re.compile(r"^\(([^()]*)\)\s*(.*)$")
_KEY_VALUE = re.compile(r"^([A-Za-z][A-Za-z /-]{0,30}?)\s*:\s*(.*)$")
_KEYS = {
    "risk": "risk",
    "risk level": "risk",
    "expected": "expect",
    "expect": "expect",
    "expected impact": "expect",
    "expected effect": "expect",
    "expected result": "expect",
    "expected outcome": "expect",
    "expectation": "expect",
    "impact": "expect",
    "outcome": "expect",
    "effect": "expect",
    "task": "task",
    "task id": "task",
    "id": "id",
    "slug": "id",
    "scope": "scope",
    "commit scope": "scope",
    "deferred": "deferred",
    "defer": "deferred",
    "skip": "deferred",
    "skipped": "deferred",
    "status": "status",
    "reason": "reason",
    "why": "reason",
}
_RISK_WORD = re.compile(r"^(very low|low|medium|med|moderate|high)\b(.*)$")
_RISK_VALUES = {
    "very low": Risk.VERY_LOW,
    "low": Risk.LOW,
    "medium": Risk.MEDIUM,
    "med": Risk.MEDIUM,
    "moderate": Risk.MEDIUM,
    "high": Risk.HIGH,
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
_SMALL_WORDS = frozenset(("a", "an", "the"))
_IMPROVE = re.compile(
    r"\b(?:must|has to|have to|needs? to|required to"
    r"|only (?:merge |keep |apply )?(?:it )?(?:if|when)(?: it)?)"
    r"\s+(?:\w+ly\s+)?"
    r"(?:improves?|beats?|outperforms?"
    r"|(?:(?:is|be|are|runs?)\s+)?(?:\w+ly\s+)?(?:faster|quicker|better))\b"
    r"|\brequires? (?:an? )?(?:\w+ )?improvement\b"
    r"|\bimprovement (?:is )?required\b"
    r"|\brequire_improvement\b",
    re.I,
)


def _slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    if len(slug) > 60:
        # Keep whole words: the id names a branch people will type.
        slug = slug[:61].rsplit("-", 1)[0] if "-" in slug[:61] else slug[:60]
    return slug.strip("-")


def _valid_id(text: str) -> bool:
    return (
        bool(_SLUG.match(text))
        and ".." not in text
        and not text.endswith((".lock", "."))
    )


@dataclass
class _Phase:
    name: str
    line: int
    column: int
    level: int
    skip: bool
    reason: str | None
    items: list[_Item] = field(default_factory=list)
    refused: int = 0
    """Item lines already reported as problems."""


@dataclass
class _Item:
    title: str
    line: int
    column: int
    indent: int
    phase: _Phase
    task: str | None = None
    description: str = ""
    expect: str | None = None
    risk: Risk | None = None
    deferred: bool = False
    reason: str | None = None
    improve: tuple[int, str] | None = None
    item_id: str | None = None
    scope: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_deferred(self) -> bool:
        return self.deferred or self.phase.skip

    def deferral(self) -> str:
        return self.reason or self.phase.reason or DEFAULT_REASON


# Criteria.

_NUM = (
    r"(?P<n>(?<![0-9.])[0-9]{1,6}(?![0-9.])"
    r"|one|two|three|four|five|six|seven|eight|nine|ten)"
)
_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_QUALIFIERS = (
    r"(?:(?:consecutive|successive|successful|clean|green|passing|full|separate"
    r"|back[- ]to[- ]back|load[- ]test|test)\s+)*"
)
_RUNS = (
    # "Phase 1 runs first" is no number of runs.
    re.compile(
        rf"(?<!phase )(?<!stage )(?<!task )(?<!item )\b{_NUM}\s+{_QUALIFIERS}runs?\b",
        re.I,
    ),
    re.compile(rf"\b{_NUM}\s+{_QUALIFIERS}load[- ]tests?\b", re.I),
    re.compile(rf"\b{_NUM}\s+consecutive\s+(?:passes|tests|times)\b", re.I),
    re.compile(rf"\b(?:pass(?:es)?|run|repeat(?:ed)?)\s+{_NUM}\s+times\b", re.I),
    re.compile(rf"\bruns?\s*[:=]\s*{_NUM}\b", re.I),
)
_STAT = re.compile(
    r"\bp\(?\s*(?P<p>[0-9]{1,2}(?:\.[0-9]{1,4})?)\s*\)?(?!\w|\.[0-9])"
    r"|\b(?P<word>median|mean|average|avg)\b",
    re.I,
)
_PERCENT = (
    r"(?P<pct>(?<![0-9.])[0-9]{1,6}(?:\.[0-9]{1,6})?)\s*(?:%|percent\b|per cent\b)"
)
_RELATIVE = re.compile(
    r"(?:within|(?:not|never)\s+(?:\w+\s+)?(?:regress\w*|increase\w*|grow\w*"
    r"|worsen\w*|degrade\w*|rise|go up)(?:\s+(?:by|of))?"
    r"(?:\s+(?:more than|over|beyond|above|past))?"
    r"|(?:no|not|never)\s+(?:be\s+)?more\s+than|at most|up to|max(?:imum)?(?:\s+of)?"
    r"|less than|under|below|<=?|\u2264)\s*(?:a\s+)?(?:\+\s*)?" + _PERCENT,
    re.I,
)
_ABSOLUTE = re.compile(
    r"(?P<op>under|below|less than|lower than|<=?|\u2264|at most|no more than"
    r"|not more than|not exceed\w*|max(?:imum)?(?:\s+of)?|within)\s*"
    r"(?P<num>(?<![0-9.])[0-9]{1,9}(?:\.[0-9]{1,6})?)\s*"
    r"(?P<unit>ms|msec|milliseconds?|s|secs?|seconds?)\b",
    re.I,
)
_INCONSISTENCY = (
    re.compile(
        r"\b(?:no|zero|0|without|never any)\s+(?:(?:payments?|data|balance|ledger)\s+)?"
        r"inconsisten(?:cy|cies|t)\b",
        re.I,
    ),
    re.compile(r"\binconsisten\w*\b.*?\b(?:zero|0|none)\b", re.I),
    re.compile(r"\bpayments?_inconsistency\b", re.I),
    re.compile(
        r"\bpayments?\s+(?:must\s+)?(?:stay|remain|are|be)\s+consistent\b", re.I
    ),
)
_FAILED = (
    re.compile(
        r"\b(?:no|zero|0|without)\s+(?:(?:http|request|5xx|4xx)\s+)?"
        r"(?:failed|failing|errored|erroring)\s+(?:http\s+)?requests?\b",
        re.I,
    ),
    re.compile(
        r"\b(?:no|zero|0|without)\s+(?:(?:http|request|5xx)\s+)?(?:errors?|failures?)\b",
        re.I,
    ),
    re.compile(
        r"(?<![0-9.])0(?:\.0+)?\s*%\s+(?:(?:http|request)\s+)?"
        r"(?:errors?|error[- ]rate|failures?|failure[- ]rate|failed\s+requests?)\b",
        re.I,
    ),
    re.compile(
        r"\b(?:error|failure|failed[- ]requests?)\s*[- ]?rate\s*"
        r"(?:of|is|=|==|must be|should be|stays?(?: at)?|at|:)?\s*"
        r"(?<![0-9.])0(?:\.0+)?\s*%?(?![0-9.])",
        re.I,
    ),
    re.compile(r"\bhttp_req_failed\b", re.I),
)
_CRITERION_LIKE = re.compile(
    r"\b(?:must|should|needs? to|has to|at least|at most|no more than|within"
    r"|p[0-9]{2}|latency|regress\w*|runs?|errors?|fail\w*|inconsisten\w*|gates?"
    r"|thresholds?)\b",
    re.I,
)
_DIRECT_METRIC = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_.]*$|^(?:checks|iterations|vus)$")


@dataclass
class _Found:
    """A gate the Markdown asks for, where it asks for it."""

    gate: Gate
    lines: list[int]


@dataclass
class _Criteria:
    runs: int | None = None
    runs_lines: list[int] = field(default_factory=list)
    gates: dict[tuple[str, str, bool], _Found] = field(default_factory=dict)
    unrecognised: list[tuple[int, str]] = field(default_factory=list)


def _factor(percent: str) -> str | None:
    """1 + percent/100, written with at least two decimals (10 -> 1.10)."""
    try:
        value = Decimal(1) + Decimal(percent) / 100
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > -2:
            value = value.quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    return format(value, "f")


def _milliseconds(number: str, unit: str) -> str | None:
    try:
        value = Decimal(number)
        if unit.lower().startswith("s"):
            value *= 1000
        text = format(value.normalize(), "f")
    except InvalidOperation:
        return None
    return text


def _latency_gates(text: str) -> list[str]:
    """Latency gates a sentence asks for: each statistic it names, bounded."""
    gates = []
    stats = list(_STAT.finditer(text))
    for index, match in enumerate(stats):
        end = stats[index + 1].start() if index + 1 < len(stats) else len(text)
        segment = text[match.end() : end]
        if match["p"] is not None:
            stat = f"p({match['p']})"
        else:
            stat = "med" if match["word"].lower() == "median" else "avg"
        relative = _RELATIVE.search(segment)
        if relative:
            factor = _factor(relative["pct"])
            if factor is not None:
                gates.append(f"{LATENCY}: {stat} <= baseline * {factor}")
            continue
        absolute = _ABSOLUTE.search(segment)
        if absolute:
            bound = _milliseconds(absolute["num"], absolute["unit"])
            strict = absolute["op"].lower() in (
                "under",
                "below",
                "less than",
                "lower than",
                "<",
            )
            if bound is not None:
                gates.append(f"{LATENCY}: {stat} {'<' if strict else '<='} {bound}")
    return gates


def _direct_gate(text: str) -> str | None:
    """A gate written out in the Markdown, in backticks or with a k6 metric name."""
    quoted = re.search(r"`([^`]+)`", text)
    candidate = quoted[1] if quoted else text.strip(" \"'")
    try:
        gate = parse_gate(candidate)
    except GateSyntaxError:
        return None
    if quoted or _DIRECT_METRIC.match(gate.metric.split("{")[0]):
        return candidate.strip()
    return None


def _runs_in(text: str) -> int | None:
    for pattern in _RUNS:
        match = pattern.search(text)
        if match:
            word = match["n"].lower()
            return _WORD_NUMBERS[word] if word in _WORD_NUMBERS else int(word)
    return None


def _gates_in(text: str) -> list[str]:
    direct = _direct_gate(text)
    if direct is not None:
        return [direct]
    gates = []
    if any(pattern.search(text) for pattern in _FAILED):
        gates.append(FAILED_GATE)
    if any(pattern.search(text) for pattern in _INCONSISTENCY):
        gates.append(INCONSISTENCY_GATE)
    return [*gates, *(g for g in _latency_gates(text) if _parses(g))]


def _parses(text: str) -> bool:
    try:
        parse_gate(text)
    except GateSyntaxError:
        return False
    return True


# The importer.


class _Importer:
    """Reads classified lines into phases, items and criteria, then writes YAML."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.notes: list[tuple[int, str]] = []
        self.title: str | None = None
        self.phases: list[_Phase] = []
        self.phase: _Phase | None = None
        self.item: _Item | None = None
        self.context = "intro"
        """intro, criteria, phase, prose or other: what the current heading holds."""
        self.heading = ""
        self.criteria = _Criteria()
        self.seen_text = False
        self.after_blank = False

    def problem(self, line: int, column: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, column, message))

    def note(self, line: int, message: str) -> None:
        self.notes.append((line, message))

    # Reading.

    def read(self, lines: list[_Line]) -> None:
        levels = [
            line.level
            for line in lines
            if line.kind == "heading" and _heading_kind(line.text) == "phase"
        ]
        first_phase_level = levels[0] if levels else 2
        for line in lines:
            if line.kind == "blank":
                self.after_blank = True
                continue
            if line.kind == "skip":
                continue
            if line.kind == "heading":
                self.on_heading(line, first_phase_level)
            elif self.context == "criteria":
                self.on_criterion(line)
            elif self.context == "phase" and self.phase is not None:
                self.on_phase_line(self.phase, line)
            else:
                self.on_outside(line)
            self.seen_text = True
            self.after_blank = False

    def on_heading(self, line: _Line, first_phase_level: int) -> None:
        kind = _heading_kind(line.text)
        self.item = None
        if (
            not self.seen_text
            and kind in ("other", "prose")
            and (line.level == 1 or line.level < first_phase_level)
        ):
            self.title = line.text
            self.context = "intro"
            return
        if self.phase is not None and line.level <= self.phase.level:
            self.phase = None
        self.heading = line.text
        if kind == "phase":
            skip, reason = _skip_reason(line.text)
            name = line.text
            if reason and f"({reason})" in name:
                # The reason goes to 'deferred:'; the name keeps the marker.
                name = _clean(name.replace(f"({reason})", "")) or name
            self.phase = _Phase(
                name, line.number, line.column, line.level, skip, reason
            )
            self.phases.append(self.phase)
            self.context = "phase"
        elif kind == "criteria":
            self.context = "criteria"
        elif kind == "other" and self.phase is not None:
            # A sub-heading inside a phase groups its items; they stay in it.
            self.context = "phase"
        else:
            self.context = kind

    def on_outside(self, line: _Line) -> None:
        """A line before any phase, or under a heading that is not a phase."""
        bold = _BOLD.match(line.text)
        if line.kind == "numbered" and bold:
            title = _clean(bold[2]).strip("* :")
            if self.context == "prose":
                self.note(
                    line.number,
                    f"{title or line.text!r} is under the heading {self.heading!r}, "
                    "which is not a phase: not imported",
                )
            elif self.context == "other":
                self.problem(
                    line.number,
                    line.column,
                    f"item {title or line.text!r} is under the heading "
                    f"{self.heading!r}, which is not a phase: start that heading "
                    "with 'Phase N:' (or 'Deferred' for items not to run), or "
                    "move the item under a phase heading",
                )
            else:
                self.problem(
                    line.number,
                    line.column,
                    f"item {title or line.text!r} is outside any phase: put a "
                    "phase heading such as '### Phase 1: Safety' above it",
                )
            return
        self.criterion(line, strict=False, noted=False)

    def on_criterion(self, line: _Line) -> None:
        """A line of a success-criteria section: every entry is a criterion."""
        text = _without_bold(line.text)
        if line.kind == "text" and text.endswith(":"):
            return  # an introduction to the list, such as "Every item must:"
        self.criterion(line, strict=True, noted=True)

    def criterion(self, line: _Line, *, strict: bool, noted: bool) -> bool:
        """Record the criteria a line states; note it if it seems to state one."""
        text = _without_bold(line.text)
        runs = _runs_in(text)
        gates = _gates_in(text)
        if runs is not None:
            self.add_runs(runs, line.number)
        for gate in gates:
            self.add_gate(gate, line.number)
        if runs is not None or gates:
            return True
        if noted and (strict or _CRITERION_LIKE.search(text)):
            self.criteria.unrecognised.append((line.number, text))
            self.note(
                line.number,
                f"criterion not recognised: {text!r}: write it as a gate under "
                "'gates:' (see the comment there), or leave it out",
            )
            return True
        return False

    def add_runs(self, runs: int, line: int) -> None:
        found = self.criteria
        if runs < 1:
            self.note(line, f"{runs} runs is not a number of runs: left out")
            return
        if found.runs is not None and found.runs != runs:
            first = found.runs_lines[0]
            kept = max(runs, found.runs)
            self.note(
                line,
                f"{runs} runs here, {found.runs} on line {first}: kept {kept}, "
                "the stricter",
            )
            runs = kept
        found.runs = runs
        found.runs_lines.append(line)

    def add_gate(self, text: str, line: int) -> None:
        try:
            gate = parse_gate(text)
        except GateSyntaxError:
            # Every pattern writes a valid gate; a written-out one was parsed.
            return
        key = (gate.metric, gate.stat, gate.relative)
        found = self.criteria.gates.get(key)
        if found is None:
            self.criteria.gates[key] = _Found(gate, [line])
            return
        found.lines.append(line)
        if found.gate.text == gate.text:
            return
        kept = _stricter(found.gate, gate)
        self.note(
            line,
            f"gate {gate.text!r} here, {found.gate.text!r} on line "
            f"{found.lines[0]}: kept {kept.text!r}",
        )
        found.gate = kept

    def on_phase_line(self, phase: _Phase, line: _Line) -> None:
        item = self.item
        if line.kind in ("numbered", "bullet"):
            keyed = _detail_key(line.text) is not None
            # Details are often not indented under their item: a known key
            # ("- Risk: Low") still belongs to the item above.
            detail = item is not None and (line.indent > item.indent or keyed)
            if not detail:
                if line.kind == "numbered" or _BOLD.match(line.text):
                    self.start_item(phase, line)
                    return
                if phase.skip:
                    self.start_item(phase, line)
                    return
                if item is None:
                    self.phase_level(phase, line)
                    return
            if item is not None:
                self.detail(item, line)
            return
        if item is not None and (line.indent > item.indent or not self.after_blank):
            self.detail(item, line)
        else:
            self.phase_level(phase, line)

    def phase_level(self, phase: _Phase, line: _Line) -> None:
        """A line in a phase that belongs to no item."""
        key = _detail_key(line.text)
        if key is not None and key[0] == "reason" and key[1]:
            if phase.reason is None:
                phase.reason = key[1]
            return
        if self.criterion(line, strict=False, noted=True):
            return
        if line.kind != "text":
            self.note(
                line.number,
                f"ignored: {line.text!r} in phase {phase.name!r} is not an item "
                f"(write items as {ITEM_SHAPE})",
            )

    def start_item(self, phase: _Phase, line: _Line) -> None:
        self.item = None
        phase.refused += 1  # until the item is taken
        bold = _BOLD.match(line.text)
        if bold:
            title, rest = _clean(bold[2]), _clean(bold[3])
            if title.endswith(":"):
                title = title.rstrip(":").strip()
            title = title.strip("*").strip()
        elif phase.skip:
            title, rest = _plain_title(line.text)
        else:
            self.problem(
                line.number,
                line.column,
                f"item {line.text!r} has no name in bold: write it as {ITEM_SHAPE}",
            )
            return
        task = None
        for where in ("title", "rest"):
            source = title if where == "title" else rest
            found = _TASK.search(source)
            if found and task is None:
                task = _clean(found[1]) or None
                source = _clean(source[: found.start()] + " " + source[found.end() :])
                if where == "title":
                    title = source
                else:
                    rest = source
        prefix = _TASK_PREFIX.match(title)
        if prefix and task is None:
            task = prefix[1]
            title = title[prefix.end() :].strip()
        if not title:
            self.problem(
                line.number,
                line.column,
                f"item {line.text!r} has an empty name: write it as {ITEM_SHAPE}",
            )
            return
        item = _Item(title, line.number, line.column, line.indent, phase, task=task)
        phase.refused -= 1
        self.item = item
        phase.items.append(item)
        self.item_rest(item, rest, line.number)

    def item_rest(self, item: _Item, rest: str, line: int) -> None:
        """What follows an item's name: a reason in parentheses, a description."""
        rest = _LEAD_SEPARATOR.sub("", rest).strip()
        skip, reason = _skip_reason(rest) if _SKIP_PAREN.search(rest) else (False, None)
        if skip:
            item.deferred = True
            item.reason = reason
            paren = _SKIP_PAREN.search(rest)
            if paren is not None:
                close = rest.find(")", paren.end())
                after = rest[close + 1 :] if close >= 0 else ""
                rest = _LEAD_SEPARATOR.sub(
                    "", _clean(f"{rest[: paren.start()]} {after}")
                )
        if item.is_deferred and item.reason is None:
            leading = _LEADING_PAREN.match(rest)
            trailing = _TRAILING_PAREN.match(rest)
            if leading:
                item.reason = _clean(leading[1]) or None
                rest = _LEAD_SEPARATOR.sub("", leading[2]).strip()
            elif trailing:
                item.reason = _clean(trailing[2]) or None
                rest = trailing[1].strip()
        item.description = rest
        if rest and not item.is_deferred:
            self.improvement(item, rest, line)

    def improvement(self, item: _Item, text: str, line: int) -> bool:
        match = _IMPROVE.search(text)
        if match is None:
            return False
        if item.improve is None:
            item.improve = (line, _clean(match[0]))
        return True

    def detail(self, item: _Item, line: _Line) -> None:
        """A line under an item: Risk, Expected, Task, Id, Scope, or anything else."""
        text = _without_bold(line.text)
        key = _detail_key(line.text)
        if key is not None:
            name, value = key
            if name == "risk":
                self.risk(item, line, value)
                return
            if name == "expect" and value:
                item.expect = value
                if not item.is_deferred:
                    self.improvement(item, value, line.number)
                return
            if name == "task" and value:
                item.task = value
                return
            if name in ("id", "scope") and value:
                self.override(item, line, name, value)
                return
            if name == "deferred" or (name == "status" and value):
                said_no = value.lower().strip(" .") in ("no", "false", "none", "n/a")
                skip = name == "deferred" or _SKIP_ANYWHERE.match(value) is not None
                if skip and not said_no:
                    item.deferred = True
                    marker = _SKIP_ANYWHERE.match(value)
                    why = value[marker.end() :] if marker else value
                    item.reason = _clean(why.strip(" :-()\u2013\u2014")) or item.reason
                    return
            if name == "reason" and value and item.is_deferred:
                item.reason = item.reason or value
                return
        # Whatever else the line says stays with the item, as a comment. A
        # deferred item's lines are not read for criteria: it is not run.
        item.comments.append(text)
        if item.is_deferred or self.improvement(item, text, line.number):
            return
        recognised = self.criterion(line, strict=False, noted=True)
        if recognised and (line.number, text) not in self.criteria.unrecognised:
            self.note(
                line.number,
                f"criterion under item {item.title!r} applies to the whole "
                "plan: a plan's runs and gates hold for every item",
            )

    def risk(self, item: _Item, line: _Line, value: str) -> None:
        words = _clean(re.sub(r"[-_*`]", " ", value.lower())).strip(" .;,")
        match = _RISK_WORD.match(words)
        column = line.column + max(line.text.find(value), 0)
        ambiguous = False
        if match:
            after = match[2].strip(" /")
            after = re.sub(r"^(?:to|or)\s+", "", after)
            ambiguous = _RISK_WORD.match(after) is not None
        if match is None or ambiguous:
            self.problem(
                line.number,
                column,
                f"item {item.title!r}: risk {value!r} is not one of {RISK_CHOICES}: "
                "write one of them, e.g. '- Risk: Low'",
            )
            return
        item.risk = _RISK_VALUES[match[1]]
        said = _clean(match[2].strip(" -:,;()"))
        if said:
            item.comments.append(f"Risk: {value}")

    def override(self, item: _Item, line: _Line, name: str, value: str) -> None:
        value = value.strip("`'\" ")
        if name == "id":
            if _valid_id(value):
                item.item_id = value
                return
            self.problem(
                line.number,
                line.column,
                f"item {item.title!r}: id {value!r}: use lowercase letters, digits, "
                "'-', '_' or '.' (it names the branch test/<id>)",
            )
            return
        if _SCOPE.match(value):
            item.scope = value
            return
        self.problem(
            line.number,
            line.column,
            f"item {item.title!r}: scope {value!r} is not a word: use letters, "
            "digits, '_', '.', '/' or '-'",
        )

    # Checking and writing.

    def finish(self) -> ImportedPlan:
        if not self.seen_text:
            self.problems.insert(
                0,
                Problem(
                    self.path,
                    1,
                    1,
                    "the Markdown plan is empty: give it phase headings such as "
                    f"'### Phase 1: Safety' with items {ITEM_SHAPE} below them",
                ),
            )
            raise PlanError(self.problems)
        if not self.phases:
            self.problems.insert(
                0,
                Problem(
                    self.path,
                    1,
                    1,
                    "no phase headings: put the items under headings such as "
                    "'### Phase 1: Safety' (a heading starting with 'Phase', or "
                    "'Deferred' for items not to run now)",
                ),
            )
        for phase in self.phases:
            if phase.items or phase.refused:
                continue
            if phase.skip:
                self.note(phase.line, f"phase {phase.name!r} has no items")
                continue
            self.problem(
                phase.line,
                phase.column,
                f"phase {phase.name!r} has no items: list them below the heading "
                f"as {ITEM_SHAPE}, or remove the heading",
            )
        empty = not any(phase.items for phase in self.phases)
        if self.phases and empty and not self.problems:
            # Only skip phases, all empty: nothing to run or bring back.
            first = self.phases[0]
            self.problem(
                first.line,
                first.column,
                f"the plan has no items: list them below phase headings as "
                f"{ITEM_SHAPE}",
            )
        ids = self.assign_ids()
        if self.problems:
            self.problems.sort(key=lambda p: (p.line, p.column))
            raise PlanError(self.problems)
        text = self.write(ids)
        self.verify(text)
        items = [item for phase in self.phases for item in phase.items]
        notes = self.final_notes(items)
        return ImportedPlan(
            text=text,
            notes=tuple(notes),
            items=len(items),
            deferred=sum(item.is_deferred for item in items),
        )

    def assign_ids(self) -> dict[int, str]:
        """Each item's id by its line; two items with one id are a problem."""
        ids: dict[int, str] = {}
        first: dict[str, _Item] = {}
        for phase in self.phases:
            for item in phase.items:
                item_id = item.item_id or _slug(item.title)
                if not item_id:
                    item_id = f"item-{item.line}"
                    self.note(
                        item.line,
                        f"item {item.title!r}: its name gives no id: "
                        f"called it {item_id!r}",
                    )
                if item_id in first:
                    other = first[item_id]
                    self.problem(
                        item.line,
                        item.column,
                        f"item {item.title!r} would get the id {item_id!r}, as "
                        f"does item {other.title!r} on line {other.line}: rename "
                        "one, or give it an id of its own with a bullet "
                        "'- Id: some-id' below it",
                    )
                else:
                    first[item_id] = item
                ids[item.line] = item_id
        return ids

    def final_notes(self, items: list[_Item]) -> list[str]:
        unrated = [item for item in items if item.risk is None]
        for item in unrated:
            if not item.is_deferred:
                self.note(
                    item.line,
                    f"item {item.title!r} gives no risk: written as medium "
                    "(add '- Risk: Low' below it, or edit the plan)",
                )
        deferred = [item for item in unrated if item.is_deferred]
        if deferred:
            # A skip phase's bullets seldom carry a risk; one note for them all.
            lines = ", ".join(str(item.line) for item in deferred)
            self.note(
                deferred[0].line,
                f"{len(deferred)} deferred items give no risk (lines {lines}): "
                "written as medium; set it before bringing one back",
            )
        found = self.criteria
        if found.runs is None and not found.gates:
            self.note(
                0,
                "no success criteria recognised: wrote the default gates and "
                f"runs: {DEFAULT_RUNS}",
            )
        elif not found.gates:
            self.note(0, "no gate recognised: wrote the default gates")
        elif found.runs is None:
            self.note(0, f"no number of runs recognised: wrote runs: {DEFAULT_RUNS}")
        waiting = sum(not item.is_deferred for item in items)
        self.note(
            0,
            f"fill in the commit of each of the {waiting} items to run "
            "(apply: cherry-pick:) and set target.repo or pass --repo; "
            "`optui check` lists what is missing",
        )
        placed = sorted(self.notes, key=lambda note: note[0])
        return [
            f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}"
            for line, message in placed
        ]

    def write(self, ids: dict[int, str]) -> str:
        name = _clean(self.title or "") or _clean(self.path.stem) or "Imported plan"
        source = _clean(self.path.name) or "the Markdown plan"
        out = [
            f"# Imported from {source}: review it before running.",
            "#",
            "# - Fill in each item's apply source: the commit to cherry-pick (a SHA",
            "#   or a branch of the service repository). `optui check` lists every",
            "#   one still missing.",
            "# - Set target.repo, or pass --repo.",
            "# - Check each scope: it was taken from the title's first word, and",
            "#   a patch, command or manual change is committed as",
            "#   perf(<scope>): <title>.",
            "",
            f"name: {_quoted(name)}",
            "target:",
            "  # repo: /path/to/service   (relative to this file), or pass --repo",
            "  main: main",
            "",
            "commands:",
            "  build: make build",
            "  up: make up",
            "  down: make down",
            "  test: make k6",
            "",
            "ready:",
            "  sleep: 5            # replace with `http: http://127.0.0.1:8080/health`"
            " if it has one",
            "  timeout: 60",
            "",
        ]
        out += self.write_criteria()
        out += ["", "phases:"]
        for index, phase in enumerate(self.phases):
            if index:
                out.append("")
            out += self.write_phase(phase, ids)
        return "\n".join(out) + "\n"

    def write_criteria(self) -> list[str]:
        found = self.criteria
        out = []
        if found.runs is None:
            out.append(f"runs: {DEFAULT_RUNS}             # not given in the Markdown")
        else:
            lines = ", ".join(str(n) for n in found.runs_lines)
            out.append(f"runs: {found.runs}             # line {lines}")
        out.append("")
        if found.unrecognised:
            out += [
                "# Criteria in the Markdown that were not recognised: write a gate",
                "# for each one to be checked (METRIC[{tags}]: STAT OP BOUND), or",
                "# leave it out.",
            ]
            out += [f"#   line {n}: {_clean(text)}" for n, text in found.unrecognised]
        out.append("gates:")
        if not found.gates:
            out[-1] += "                # not given in the Markdown: the defaults"
            out += [f"  - {_quoted(text)}" for text in DEFAULT_GATES]
            return out
        for entry in found.gates.values():
            lines = ", ".join(str(n) for n in entry.lines)
            out.append(f"  - {_quoted(entry.gate.text)}    # line {lines}")
        return out

    def write_phase(self, phase: _Phase, ids: dict[int, str]) -> list[str]:
        out = [f"  - name: {_quoted(phase.name)}    # line {phase.line}"]
        if phase.skip:
            out.append(f"    deferred: {_quoted(phase.reason or DEFAULT_REASON)}")
        if not phase.items:
            out.append("    items: []")
            return out
        out.append("    items:")
        for item in phase.items:
            out += self.write_item(item, ids[item.line])
        return out

    def write_item(self, item: _Item, item_id: str) -> list[str]:
        pad = "        "
        out = [f"      - id: {_scalar(item_id)}    # line {item.line}"]
        out.append(f"{pad}title: {_quoted(item.title)}")
        if item.task:
            out.append(f"{pad}task: {_quoted(item.task)}")
        if item.risk is None:
            out.append(f"{pad}risk: medium        # not given in the Markdown")
        else:
            out.append(f"{pad}risk: {item.risk.value}")
        expect = _clean(item.expect or item.description)
        if expect:
            out.append(f"{pad}expect: {_quoted(expect)}")
        description = _clean(item.description)
        if item.expect and description and description != _clean(item.expect):
            out.append(f"{pad}# {description}")
        for comment in item.comments:
            out.append(f"{pad}# {_clean(comment)}")
        scope = item.scope or _scope_of(item.title, item_id)
        if item.scope:
            out.append(f"{pad}scope: {_scalar(scope)}")
        else:
            out.append(f"{pad}scope: {_scalar(scope)}    # from the title: adjust it")
        if item.improve is not None and not item.is_deferred:
            line, words = item.improve
            out.append(f"{pad}require_improvement: true    # line {line}: {words}")
        if item.is_deferred:
            out.append(f"{pad}deferred: {_quoted(item.deferral())}")
        commit = (
            f"the commit of task {_clean(item.task)}"
            if item.task
            else "the commit of this change"
        )
        out += [f"{pad}apply:", f"{pad}  cherry-pick:    # {commit}"]
        return out

    def verify(self, text: str) -> None:
        """The written plan must load; a failure here is this module's own bug."""
        target = self.path.with_suffix(".yaml")
        try:
            parse_plan(target, text)
        except PlanError as exc:
            log.error("imported plan for %s does not load: %s", self.path, exc)
            raise PlanError(
                [
                    Problem(
                        self.path,
                        0,
                        0,
                        f"the plan written from this Markdown does not load "
                        f"({problem.message}): please report it with the Markdown",
                    )
                    for problem in exc.problems
                ]
            ) from exc


def _without_bold(text: str) -> str:
    return _clean(text.replace("**", "").replace("__", ""))


def _detail_key(text: str) -> tuple[str, str] | None:
    """A known ``Key: value`` line under an item, as (field, value)."""
    match = _KEY_VALUE.match(_without_bold(text))
    if match is None:
        return None
    name = _KEYS.get(_clean(match[1].replace("-", " ")).lower())
    if name is None:
        return None
    return name, _clean(match[2])


def _plain_title(text: str) -> tuple[str, str]:
    """A bullet of a skip phase without bold: 'Name (reason)' or 'Name - words'."""
    parts = _DASH_SPLIT.split(text, maxsplit=1)
    title = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    trailing = _TRAILING_PAREN.match(title)
    if trailing and not _TASK.fullmatch(f"({trailing[2]})"):
        title, reason = trailing[1], f"({trailing[2]})"
        rest = f"{reason} {rest}".strip()
    return _clean(title), _clean(rest)


def _scope_of(title: str, item_id: str) -> str:
    """A short scope for the commit message: the title's first real word."""
    for word in title.split():
        if word.lower() in _SMALL_WORDS:
            continue
        slug = _slug(word)
        if slug:
            return slug
    return item_id.split("-")[0] or "perf"


def _stricter(first: Gate, second: Gate) -> Gate:
    """Of two gates on one figure, the one with the tighter bound."""
    if first.op != second.op or first.op not in ("<", "<=", ">", ">="):
        return first
    one = first.factor if first.relative else first.constant
    two = second.factor if second.relative else second.constant
    if one is None or two is None:
        return first
    if first.op in ("<", "<="):
        return second if two < one else first
    return second if two > one else first
