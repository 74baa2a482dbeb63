"""Quantities, text cut to a length, and output cut to a budget, for people to read (pure)."""

from __future__ import annotations

from collections.abc import Callable


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


def fit(
    render: Callable[[int], str], total: int, *, start: int, budget: int, size: Callable[[str], int]
) -> tuple[str, int]:
    """The output of ``render(n)`` for a large ``n <= min(total, start)`` whose size is within ``budget``.

    A small probe estimates the size of a row, then the count shrinks in proportion to any overshoot: a few
    renderings of a 20 000-line result, not a bisection, and never a rendering of every row when few fit.
    Returns the text and ``n`` (``render(0)`` is returned even when it is over budget: it holds no rows).
    """
    count = min(total, start)
    probe = min(count, 64)
    if probe < count:
        length = size(render(probe))
        # The probe's size includes the fixed part (heading, totals), so this errs on the side of fewer rows.
        count = probe if length > budget else min(count, max(probe, probe * budget // max(length, 1)))
    text = render(count)
    while count > 0 and (length := size(text)) > budget:
        count = max(0, min(count - 1, int(count * budget / length * 0.9)))
        text = render(count)
    return text, count
