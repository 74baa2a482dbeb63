"""Reliability figures gathered while the tests run, for the README's reliability section.

Tests that inject faults, kill runs or feed hostile input call :func:`count` with what they did and what they
checked (``requests faulted``, ``images verified at the target``, ``kills survived``, ``bad inputs tried``,
``wrong entries``...). At the end of the session the totals are printed under "reliability figures", and
written as JSON to ``$MIRROR_TEST_FIGURES`` when that is set. Counting happens only after a test's own
assertions, so a figure never includes work that failed.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path

_lock = threading.Lock()
_totals: Counter[str] = Counter()


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to the figure ``name`` (a plain-English phrase, e.g. ``"requests faulted"``)."""
    with _lock:
        _totals[name] += amount


def totals() -> dict[str, int]:
    with _lock:
        return dict(sorted(_totals.items()))


def report_lines() -> list[str]:
    return [f"{value:>8}  {name}" for name, value in totals().items()]


def write_if_asked() -> Path | None:
    target = os.environ.get("MIRROR_TEST_FIGURES")
    if not target:
        return None
    path = Path(target)
    path.write_text(json.dumps(totals(), indent=2) + "\n", encoding="utf-8")
    return path


# -- the README's table -----------------------------------------------------------------------------------
# The README's reliability table is made from a recorded figures file, never typed: between these markers,
# one row per figure. `python -m tests.harness.figures` rewrites it; tests/unit/test_readme_figures.py checks it.
RECORDED = Path("docs/figures/reliability.json")
BEGIN = f"<!-- figures: {RECORDED} (python -m tests.harness.figures writes this table) -->"
END = "<!-- /figures -->"


def readme_table(recorded: dict[str, int]) -> str:
    rows = [f"| {name} | {value:,} |" for name, value in recorded.items()]
    return "\n".join(["| what the tests did | figure |", "|---|---:|", *rows])


def readme_block(readme: str) -> str:
    """The table between the markers of ``readme`` (the README's text)."""
    return readme.split(BEGIN + "\n", 1)[1].split("\n" + END, 1)[0]


def update_readme(root: Path) -> None:
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    recorded = json.loads((root / RECORDED).read_text(encoding="utf-8"))
    readme.write_text(text.replace(readme_block(text), readme_table(recorded)), encoding="utf-8")


if __name__ == "__main__":
    update_readme(Path(__file__).resolve().parents[2])
