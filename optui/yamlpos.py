"""Read YAML as a node tree, so every problem can name its line and column."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from optui.errors import Problem

_YAML_TAG = "tag:yaml.org,2002:"
_NULL_TAG = _YAML_TAG + "null"
UNREADABLE = object()
"""What Reader.scalar gives for a value it could not read (the problem is recorded)."""
_HINTS = (
    ("'\\t'", "indent with spaces, not tabs"),
    (
        "mapping values are not allowed",
        "quote a value that holds ': ', or check the indentation",
    ),
    ("expected <block end>", "check the indentation"),
)
"""Advice for YAML syntax errors, by a phrase of PyYAML's message."""


@dataclass(frozen=True)
class Field:
    """A mapping entry: its key's node and its value's node."""

    key: ScalarNode
    value: Node


class Reader:
    """Reads values out of YAML nodes, collecting problems instead of raising."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def compose(self, text: str) -> Node | None:
        """Parse text into nodes; a syntax error becomes a problem and None."""
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self._syntax(line, column, _syntax_reason(exc))
        except yaml.reader.ReaderError as exc:
            line, column = _place(text, exc.position)
            self._syntax(
                line,
                column,
                f"character U+{exc.character:04X} is not allowed in YAML text: "
                "remove it",
            )
        except yaml.YAMLError as exc:
            self._syntax(1, 1, str(exc))
        except RecursionError:
            self._syntax(1, 1, "nested too deeply to be read")
        return None

    def _syntax(self, line: int, column: int, reason: str) -> None:
        self.problems.append(Problem(self.path, line, column, f"YAML: {reason}"))

    def fail(self, node: Node | None, message: str) -> None:
        if node is None:
            self.problems.append(Problem(self.path, 0, 0, message))
        else:
            mark = node.start_mark
            self.problems.append(
                Problem(self.path, mark.line + 1, mark.column + 1, message)
            )

    def line(self, node: Node | None) -> int:
        return node.start_mark.line + 1 if node is not None else 0

    def mapping(
        self, node: Node, what: str, allowed: Collection[str]
    ) -> dict[str, Field] | None:
        """The entries of a mapping; unknown and repeated keys are problems."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping")
            return None
        fields: dict[str, Field] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"{what}: keys must be plain names")
                continue
            key = str(key_node.value)
            if key in fields:
                first = self.line(fields[key].key)
                self.fail(
                    key_node, f"{what}: key {key!r} repeated (first on line {first})"
                )
                continue
            if key not in allowed:
                self.fail(
                    key_node, f"{what}: unknown key {key!r}{suggest(key, allowed)}"
                )
                continue
            fields[key] = Field(key_node, value_node)
        return fields

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list")
            return None
        return list(node.value)

    def scalar(self, node: ScalarNode, what: str) -> object:
        """The Python value of a scalar node, as yaml.safe_load would give it.

        UNREADABLE, with the problem recorded, when an explicit tag does not fit
        the text (``!!int abc``) or names no YAML type.
        """
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError):
            # A construction that failed leaves the constructor's state half done.
            self._constructor = yaml.SafeLoader("")
            tag = _short_tag(node.tag)
            if node.tag in yaml.SafeLoader.yaml_constructors:
                self.fail(node, f"{what}: {node.value!r} is not a valid {tag}")
            else:
                self.fail(node, f"{what}: unknown YAML tag {tag}; remove it")
            return UNREADABLE

    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag == _NULL_TAG:
            if is_null(node) and allow_empty:
                return ""
            self.fail(node, f"{what} must be text")
            return None
        value = self.scalar(node, what)
        if value is UNREADABLE:
            return None
        if isinstance(value, bool):
            self.fail(node, f"{what} must be text, not {node.value}")
            return None
        text = str(value).strip()
        if not text and not allow_empty:
            self.fail(node, f"{what} must not be empty")
            return None
        return text

    def number(self, node: Node, what: str, *, minimum: float = 0) -> float | None:
        value = self.scalar(node, what) if isinstance(node, ScalarNode) else None
        if value is UNREADABLE:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(node, f"{what} must be a number")
            return None
        if value < minimum:
            self.fail(node, f"{what} must be at least {minimum:g}")
            return None
        return float(value)

    def integer(self, node: Node, what: str, *, minimum: int = 0) -> int | None:
        value = self.scalar(node, what) if isinstance(node, ScalarNode) else None
        if value is UNREADABLE:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(node, f"{what} must be a whole number")
            return None
        if value < minimum:
            self.fail(node, f"{what} must be at least {minimum}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        value = self.scalar(node, what) if isinstance(node, ScalarNode) else None
        if value is UNREADABLE:
            return None
        if not isinstance(value, bool):
            self.fail(node, f"{what} must be true or false")
            return None
        return value


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL_TAG)


def suggest(word: str, choices: Collection[str]) -> str:
    """A hint naming the nearest valid choice, or all of them when none is near."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid keys: {', '.join(sorted(choices))})"


def _syntax_reason(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's account of a syntax error in one line, with where it began."""
    reason = exc.problem or "not valid YAML"
    reason = reason.replace("'<stream end>'", "the end of the file")
    reason = reason.replace("end of stream", "end of the file")
    hints = [hint for phrase, hint in _HINTS if phrase in reason]
    if exc.context and exc.context_mark is not None:
        mark = exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        reason = f"{exc.context} ({where}): {reason}"
    return reason + "".join(f" ({hint})" for hint in hints)


def _place(text: str, position: int) -> tuple[int, int]:
    """The 1-based line and column of a character offset in text."""
    start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - start + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
