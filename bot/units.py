"""Quantities, and text cut to a length, for people to read (pure)."""

from __future__ import annotations


def binary_size(count: int) -> str:
    """A byte count in 1024-based units, e.g. ``999 B``, ``3.0 MiB``; GiB is the largest."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def clip_text(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of its real length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
