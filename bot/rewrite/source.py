"""Parse YAML and JSON keeping where each string was written; splice new values into the original text.

Re-serialising a parsed file would reflow it (indentation, quoting, line width, comments around flow
collections). Instead the file is parsed once for structure, each string remembers its span in the text, and
a rewrite replaces exactly those characters, in the quoting style they were written in. Every other byte of
the file stays as it was, comments, anchors and key order included.

An anchored value used through an alias is one string with one span (the anchor's), so it is rewritten once
and every alias follows. Merge keys (``<<: *base``) are applied the way YAML loaders apply them.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.errors import RewriteError

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class Located(str):
    """A string that knows the span ``[start, end)`` it was read from, and how it was quoted."""

    start: int
    end: int
    style: str | None  # None (plain), "'", '"', "|" or ">"

    def __new__(cls, value: str, start: int, end: int, style: str | None) -> Located:
        self = super().__new__(cls, value)
        self.start = start
        self.end = end
        self.style = style
        return self


def position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``index`` in ``text``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_yaml(text: str, path: str) -> list[Any]:
    """Every document of a YAML stream as dicts, lists, :class:`Located` strings and ``None``."""
    yaml = YAML(typ="rt")
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise RewriteError(f"{where}: not valid YAML: {exc.problem or exc.context}; fix the file first") from exc
    except YAMLError as exc:
        raise RewriteError(f"{path}: not valid YAML: {exc}; fix the file first") from exc
    builder = _Builder()
    return [builder.build(node) if node is not None else None for node in nodes]


class _Builder:
    def __init__(self) -> None:
        self._memo: dict[int, Any] = {}

    def build(self, node: Node) -> Any:
        known = self._memo.get(id(node))
        if known is not None:
            return known
        if isinstance(node, ScalarNode):
            if node.tag == _NULL_TAG:
                return None
            value = Located(node.value, node.start_mark.index, node.end_mark.index, node.style)
            self._memo[id(node)] = value
            return value
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            self._memo[id(node)] = items
            items.extend(self.build(child) for child in node.value)
            return items
        assert isinstance(node, MappingNode)
        mapping: dict[str, Any] = {}
        self._memo[id(node)] = mapping
        merged: list[dict[str, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                value = self.build(value_node)
                merged.extend(
                    item for item in (value if isinstance(value, list) else [value]) if isinstance(item, dict)
                )
                continue
            key = self.build(key_node)
            mapping[str(key) if key is not None else "null"] = self.build(value_node)
        for source in merged:  # explicit keys win over merged ones, earlier merges over later ones
            for key, value in source.items():
                mapping.setdefault(key, value)
        return mapping


def load_json(text: str, path: str) -> list[Any]:
    """A JSON document whose strings are :class:`Located` (a one-element list, like :func:`load_yaml`)."""
    decoder = _LocatingDecoder()
    try:
        value, end = decoder.raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as exc:
        raise RewriteError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}; fix the file first") from exc
    if text[end:].strip():
        line, col = position(text, end)
        raise RewriteError(f"{path}:{line}:{col}: extra data after the JSON document")
    return [value]


class _LocatingDecoder(json.JSONDecoder):
    def __init__(self) -> None:
        super().__init__()
        plain: Callable[..., tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

        def parse_string(text: str, end: int, strict: bool) -> tuple[str, int]:
            value, after = plain(text, end, strict)
            return Located(value, end - 1, after, '"'), after

        self.parse_string = parse_string
        # The C scanner ignores an overridden parse_string; the pure Python one calls it.
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Edit:
    value: Located
    new: str


def _skip_properties(raw: str) -> int:
    """Offset past a node's ``&anchor`` and ``!tag`` properties, which the node's span includes."""
    offset = 0
    while offset < len(raw) and raw[offset] in "&!":
        while offset < len(raw) and raw[offset] not in " \t\r\n":
            offset += 1
        while offset < len(raw) and raw[offset] in " \t\r\n":
            offset += 1
    return offset


def value_start(text: str, value: Located) -> int:
    """Where the value itself starts, after any ``&anchor`` or ``!tag`` written before it."""
    return value.start + _skip_properties(text[value.start : value.end])


def _quoted(value: str, style: str | None) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value)
    return value


def edit_problem(text: str, value: Located) -> str | None:
    """Why ``value`` cannot be replaced in place, or ``None`` when it can."""
    if value.style in ("|", ">"):
        return "written as a block scalar; edit this one by hand"
    raw = text[value.start : value.end]
    body = raw[_skip_properties(raw) :]
    if body != _quoted(value, value.style):
        return "written with escapes or over several lines; edit this one by hand"
    return None


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with each edited value replaced in its own quoting style; nothing else changes."""
    by_start: dict[int, Edit] = {}
    for edit in edits:
        known = by_start.get(edit.value.start)
        if known is not None and known.new != edit.new:
            line, col = position(text, edit.value.start)
            raise RewriteError(
                f"{line}:{col}: one value is used for two images that map differently ({known.new}, {edit.new})"
            )
        by_start[edit.value.start] = edit
    parts: list[str] = []
    cursor = 0
    for start in sorted(by_start):
        edit = by_start[start]
        problem = edit_problem(text, edit.value)
        if problem is not None:
            line, col = position(text, start)
            raise RewriteError(f"{line}:{col}: {problem}")
        raw = text[edit.value.start : edit.value.end]
        body_start = edit.value.start + _skip_properties(raw)
        parts.append(text[cursor:body_start])
        parts.append(_quoted(edit.new, edit.value.style))
        cursor = edit.value.end
    parts.append(text[cursor:])
    return "".join(parts)
