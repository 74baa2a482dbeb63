"""The job summary of a sync or daily run: one markdown table row per image (pure).

Image references and error messages may come from a pull request, so every cell is escaped: no HTML, no
markdown links or emphasis, no table breaks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bot.markdown import escape_markdown
from bot.units import binary_size

if TYPE_CHECKING:
    from bot.sync import ImageResult

OK = "copied"
UNCHANGED = "already mirrored"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Row:
    """One image of a run: what was copied where, and how it went."""

    image: str
    target: str
    platforms: tuple[str, ...] = ()
    bytes_moved: int = 0
    result: str = OK
    detail: str = ""

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
        )


def render(title: str, rows: Iterable[Row], notes: Iterable[str] = ()) -> str:
    """A markdown section: a heading, counts, the table, then notes (rate limits, commits, missing shards)."""
    rows = list(rows)
    copied = sum(1 for row in rows if row.result == OK)
    failed = sum(1 for row in rows if row.failed)
    moved = sum(row.bytes_moved for row in rows)
    lines = [
        f"## {escape_markdown(title)}",
        "",
        f"{copied} copied, {len(rows) - copied - failed} unchanged, {failed} failed, {binary_size(moved)} moved.",
        "",
    ]
    if rows:
        lines += ["| image | target | platforms | bytes moved | result |", "|---|---|---|---:|---|"]
        for row in rows:
            result = row.result if not row.detail else f"{row.result}: {row.detail}"
            platforms = ", ".join(row.platforms) or "-"
            lines.append(
                f"| {escape_markdown(row.image)} | {escape_markdown(row.target)} | {escape_markdown(platforms)} | "
                f"{binary_size(row.bytes_moved)} | {escape_markdown(result)} |"
            )
        lines.append("")
    for note in notes:
        lines.append(f"- {escape_markdown(note)}")
    return "\n".join(lines).rstrip("\n") + "\n"


def row_for(result: ImageResult, detail: str = "", reason: str | None = None) -> Row:
    """The summary row of one image of a sync report (``reason`` overrides a failure's reason)."""
    if not result.ok:
        outcome, detail = FAILED, reason or result.reason or "failed"
    elif result.skipped:
        outcome = UNCHANGED
    else:
        outcome = OK
    return Row(
        image=str(result.source),
        target=str(result.target) if result.target is not None else "-",
        platforms=tuple(str(platform) for platform in result.platforms),
        bytes_moved=result.bytes_moved,
        result=outcome,
        detail=detail,
    )
