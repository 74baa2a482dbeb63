"""Sharding a run over several jobs: the partition, the per-shard results file, and merging results (pure).

A shard owns whole repositories: the tags of one repository share most layers, so copying them in one job
moves each layer once. The partition is a stable hash of the canonical repository name (``docker.io/
library/nginx`` for every spelling of nginx), so every job of a matrix agrees on it without talking.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import InvalidReference, ListFileError, MappingError, UsageError
from bot.lists import format_mirrored, logical_lines, write_atomically
from bot.reference import Reference, parse_reference
from bot.report.summary import Row
from bot.rules import Mapper

RESULTS_FORMAT = "image-mirror-bot/results/v1"
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, ref: Reference) -> bool:
        return shard_of(ref, self.count) == self.index


ALL = Shard(1, 1)


def parse_shard(text: str) -> Shard:
    """``K/N`` with ``1 <= K <= N``; anything else is a :class:`UsageError` that shows the form."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--shard {text!r}: write K/N, e.g. --shard 2/4 for the second of four shards")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text!r}: K must be between 1 and N (shards are numbered from 1)")
    return Shard(index, count)


def shard_of(ref: Reference, count: int) -> int:
    """The 1-based shard that owns ``ref``'s repository (same for every spelling and every tag)."""
    digest = hashlib.sha256(ref.canonical_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


# -- mirrored-images.txt updates ------------------------------------------------------------------------------


def _slot(ref: Reference) -> tuple[str, str, str | None, str | None]:
    """What a mirrored line stands for: a tag (whatever digest it is pinned to), or an untagged digest."""
    tag = ref.effective_tag
    return (ref.host, ref.repository, tag, None if tag is not None else ref.digest)


def merge_mirrored(existing: str, updates: Iterable[Reference]) -> str:
    """``existing`` mirrored-images.txt content with ``updates`` folded in, formatted (sorted, unique).

    An update replaces the line of the same image and tag (a tag that moved upstream is pinned to its new
    digest); every other line is kept, including lines this version cannot parse, so nothing is lost.
    """
    updates = list(updates)
    replaced = {_slot(ref) for ref in updates}
    kept: list[str] = []
    for line in logical_lines(existing):
        try:
            ref = parse_reference(line.content)
        except InvalidReference:
            kept.append(line.content)
            continue
        if _slot(ref) not in replaced:
            kept.append(line.content)
    return format_mirrored([*kept, *updates])


# -- results files --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Results:
    """What one (shard of a) run achieved: the verified references, the failures, the summary rows."""

    command: str
    shard: Shard
    mirrored: tuple[Reference, ...]
    rows: tuple[Row, ...] = ()
    notes: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "command": self.command,
            "shard": str(self.shard),
            "mirrored": sorted({str(ref) for ref in self.mirrored}),
            "failures": [{"image": image, "reason": reason} for image, reason in self.failures],
            "rows": [row.to_json() for row in self.rows],
            "notes": list(self.notes),
        }


def write_results(path: Path, results: Results) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (json.dumps(results.to_json(), indent=2) + "\n").encode("utf-8"))


def read_results(path: Path, mapper: Mapper | None = None) -> Results:
    """Read a results file; a file that is missing or not one of ours names itself and what is wrong.

    The file is input like any other (an artifact can be replaced between the jobs): with ``mapper`` every
    row is checked, and the first bad one is refused naming the file and the row: a verified image must be a
    reference of the grammar pinned by a valid digest, on a registry a rule allows; counts are whole numbers,
    zero or more.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ListFileError(f"{path}: results file not found; did the shard job upload it?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ListFileError(f"{path}: not a results file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ListFileError(f"{path}: not a results file (expected format {RESULTS_FORMAT!r})")
    try:
        command = data["command"]
        if command not in COMMANDS:
            raise _Bad("command", f"{command!r} is not one of {', '.join(COMMANDS)}")
        mirrored = tuple(_verified(index, text, mapper) for index, text in enumerate(_list(data, "mirrored")))
        failures = tuple(_failure(index, item) for index, item in enumerate(_list(data, "failures")))
        rows = tuple(_row(index, item) for index, item in enumerate(_list(data, "rows")))
        notes = _list(data, "notes")
        if not all(isinstance(note, str) for note in notes):
            raise _Bad("notes", "every note must be a string")
        return Results(
            command=command,
            shard=parse_shard(str(data["shard"])),
            mirrored=mirrored,
            rows=rows,
            notes=tuple(notes),
            failures=failures,
        )
    except _Bad as bad:
        raise ListFileError(
            f"{path}: {bad.where}: {bad.problem}; refused: the file is not what a shard writes (was it changed "
            "after the shard job?); run the shard again"
        ) from None
    except (KeyError, TypeError, ValueError, InvalidReference, UsageError) as exc:
        raise ListFileError(f"{path}: damaged results file: {exc}") from exc


COMMANDS = ("sync", "daily")


class _Bad(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _Bad(key, "must be a list")
    return value


def _verified(index: int, text: object, mapper: Mapper | None) -> Reference:
    where = f"mirrored[{index}]"
    if not isinstance(text, str):
        raise _Bad(where, "must be a string")
    shown = repr(text[:120])
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise _Bad(where, f"{shown} is not an image reference: {exc.reason}") from None
    if ref.digest is None:
        raise _Bad(where, f"{shown} is not pinned: a verified image is recorded as source@sha256:<digest>")
    if mapper is not None:
        try:
            mapper.target(ref)
        except MappingError as exc:
            raise _Bad(where, f"{shown}: {exc.message}") from None
    return ref


def _failure(index: int, item: object) -> tuple[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not isinstance(item.get("reason"), str):
        raise _Bad(f"failures[{index}]", "must be an object with the strings 'image' and 'reason'")
    return item["image"], item["reason"]


def _row(index: int, item: object) -> Row:
    where = f"rows[{index}]"
    if not isinstance(item, dict):
        raise _Bad(where, "must be an object")
    for key in ("image", "target"):
        if not isinstance(item.get(key), str):
            raise _Bad(where, f"{key!r} must be a string")
    moved = item.get("bytes_moved", 0)
    if isinstance(moved, bool) or not isinstance(moved, int) or moved < 0:
        raise _Bad(where, f"bytes_moved {str(moved)[:40]!r} is not a whole number of bytes, zero or more")
    return Row.from_json(item)


@dataclass(frozen=True, slots=True)
class Merged:
    mirrored: tuple[Reference, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]
    missing: tuple[Shard, ...]


def merge_results(results: Sequence[Results]) -> Merged:
    """Fold shard results together and name the shards of each matrix that sent nothing."""
    mirrored: list[Reference] = []
    rows: list[Row] = []
    notes: list[str] = []
    failures: list[tuple[str, str]] = []
    seen: dict[tuple[str, int], set[int]] = {}
    for result in results:
        mirrored.extend(result.mirrored)
        rows.extend(result.rows)
        notes.extend(f"shard {result.shard}: {note}" for note in result.notes)
        failures.extend(result.failures)
        seen.setdefault((result.command, result.shard.count), set()).add(result.shard.index)
    missing = [
        Shard(index, count)
        for (_command, count), indexes in sorted(seen.items())
        for index in range(1, count + 1)
        if index not in indexes
    ]
    return Merged(tuple(mirrored), tuple(rows), tuple(notes), tuple(failures), tuple(missing))
