"""The job summary of a sync or daily run: one markdown table row per image (pure).

Image references and error messages may come from a pull request, so every cell is escaped: no HTML, no
markdown links or emphasis, no table breaks. GitHub refuses a job summary over 1 MiB, so a big run's table
holds the failed images first and stops at a budget, saying how many rows it left out; the log of the job
that copied the images lists every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bot.report.markdown import escape_markdown
from bot.units import binary_size, clip_text, fit

if TYPE_CHECKING:
    from bot.sync import ImageResult

OK = "copied"
UNCHANGED = "already mirrored"
FAILED = "failed"
DEFERRED = "deferred"
# The bounds of every job summary the bot writes (this one and validate-pr's): well under GitHub's 1 MiB per
# step; a table longer than MAX_ROWS helps nobody reading it (the job's log lists every row).
MAX_SUMMARY_BYTES = 512 * 1024
MAX_ROWS = 1000
# A cell's text (a long failure reason) is cut here.
MAX_CELL_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Row:
    """One image of a run: what was copied where, and how it went."""

    image: str
    target: str
    platforms: tuple[str, ...] = ()
    bytes_moved: int = 0
    result: str = OK
    detail: str = ""
    kind: str = "image"  # or Helm chart, SBOM, signature, ...
    attached: str = ""  # "2 signatures, 1 SBOM": what came with the image

    @property
    def failed(self) -> bool:
        return self.result == FAILED

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["platforms"] = list(self.platforms)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return cls(
            image=str(data["image"]),
            target=str(data["target"]),
            platforms=tuple(str(item) for item in data.get("platforms", ())),
            bytes_moved=int(data.get("bytes_moved", 0)),
            result=str(data.get("result", OK)),
            detail=str(data.get("detail", "")),
            kind=str(data.get("kind", "image")),
            attached=str(data.get("attached", "")),
        )


def _cell(text: str) -> str:
    return escape_markdown(clip_text(text, MAX_CELL_CHARS))


def _row_line(row: Row) -> str:
    result = row.result if not row.detail else f"{row.result}: {row.detail}"
    # A Helm chart or an SBOM has no platforms: say what it is instead.
    platforms = (", ".join(row.platforms) or "-") if row.kind == "image" else row.kind
    return (
        f"| {_cell(row.image)} | {_cell(row.target)} | {_cell(platforms)} | "
        f"{binary_size(row.bytes_moved)} | {_cell(row.attached or '-')} | {_cell(result)} |"
    )


def _take(rows: list[Row], budget: int) -> list[str]:
    """Table lines for the first rows of ``rows`` that fit in ``budget`` bytes (at most :data:`MAX_ROWS`)."""
    lines = [_row_line(row) for row in rows[:MAX_ROWS]]
    _, count = fit(lambda n: "\n".join(lines[:n]), len(lines), start=MAX_ROWS, budget=budget, size=_utf8)
    return lines[:count]


def _utf8(text: str) -> int:
    return len(text.encode())


def render(title: str, rows: Iterable[Row], notes: Iterable[str] = ()) -> str:
    """A markdown section: a heading, counts, the table, then notes (rate limits, commits, missing shards).

    The counts cover every row. The table is in run order when it fits in :data:`MAX_ROWS` rows and
    :data:`MAX_SUMMARY_BYTES`; otherwise failed images come first, and a last line says how many were left out.
    """
    rows = list(rows)
    copied = sum(1 for row in rows if row.result == OK)
    failed = sum(1 for row in rows if row.failed)
    deferred = sum(1 for row in rows if row.result == DEFERRED)
    moved = sum(row.bytes_moved for row in rows)
    head = [
        f"## {escape_markdown(title)}",
        "",
        f"{copied} copied, {len(rows) - copied - failed - deferred} unchanged, {failed} failed, "
        + (f"{deferred} deferred to the next run, " if deferred else "")
        + f"{binary_size(moved)} moved.",
        "",
    ]
    tail = [f"- {_cell(note)}" for note in notes]
    table: list[str] = []
    if rows:
        budget = MAX_SUMMARY_BYTES - len("\n".join(head + tail).encode()) - 1024  # 1 KiB for the last line
        shown = _take(rows, budget)
        ordered = rows
        if len(shown) < len(rows):
            ordered = sorted(rows, key=lambda row: not row.failed)  # stable: run order within each group
            shown = _take(ordered, budget)
        table = [
            "| image | target | platforms | bytes moved | attached | result |",
            "|---|---|---|---:|---|---|",
            *shown,
        ]
        if len(shown) < len(rows):
            left = ordered[len(shown) :]
            table += [
                "",
                f"… and {len(left)} more images not shown here ({sum(1 for row in left if row.failed)} of them "
                "failed): the log of the job that copied them lists every image.",
            ]
        table.append("")
    return "\n".join(head + table + tail).rstrip("\n") + "\n"


def row_for(result: ImageResult, detail: str = "", reason: str | None = None) -> Row:
    """The summary row of one image of a sync report (``reason`` overrides a failure's reason)."""
    if result.deferred:
        outcome, detail = DEFERRED, result.reason or ""
    elif not result.ok:
        outcome, detail = FAILED, reason or result.reason or "failed"
    elif result.skipped:
        outcome = UNCHANGED
    else:
        outcome = OK
    attached = result.attached
    return Row(
        image=str(result.source),
        target=str(result.target) if result.target is not None else "-",
        platforms=tuple(str(platform) for platform in result.platforms),
        bytes_moved=result.bytes_moved,
        result=outcome,
        detail=detail,
        kind=attached.kind if attached is not None else "image",
        attached=attached.describe() if attached is not None else "",
    )


# The ``result`` output of a copying run: GitHub allows 1 MB of outputs per job (UTF-16), so at most this many
# characters, and at most this many image rows.
MAX_OUTPUT_ROWS = 200
MAX_OUTPUT_CHARS = 256 * 1024


def result_output(rows: Iterable[Row]) -> str:
    """Compact JSON for the ``result`` output of ``sync``, ``daily`` and ``merge-results``: counts over every
    image (what came with them too), then the first rows (image, target, result, kind, attached) that fit;
    ``truncated`` says some were left out."""
    rows = list(rows)
    copied = sum(1 for row in rows if row.result == OK)
    failed = sum(1 for row in rows if row.failed)

    def render(count: int) -> str:
        shown = [
            {
                "image": clip_text(row.image, MAX_CELL_CHARS),
                "target": clip_text(row.target, MAX_CELL_CHARS),
                "result": row.result,
                "detail": clip_text(row.detail, MAX_CELL_CHARS),
                "kind": row.kind,
                "attached": row.attached,
                "bytes_moved": row.bytes_moved,
            }
            for row in rows[:count]
        ]
        data = {
            "ok": failed == 0,
            "images": len(rows),
            "copied": copied,
            "unchanged": len(rows) - copied - failed,
            "failed": failed,
            "with_attached": sum(1 for row in rows if row.attached),
            "truncated": count < len(rows),
            "rows": shown,
        }
        return json.dumps(data, separators=(",", ":"))

    count = min(len(rows), MAX_OUTPUT_ROWS)
    text = render(count)
    while count > 0 and len(text) > MAX_OUTPUT_CHARS:
        count //= 2
        text = render(count)
    return text
