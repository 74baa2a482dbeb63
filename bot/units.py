"""Quantities, and text cut to a length, for people to read (pure)."""

from __future__ import annotations


def binary_size(count: float) -> str:
    """A byte count in 1024-based units, e.g. ``999 B``, ``3.0 MiB``; TiB is the largest.

    The one size format of every message, table and progress line, so sizes side by side always compare.
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``; ``many`` for irregular plurals (``plural(n, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def clip_text(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of its real length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
