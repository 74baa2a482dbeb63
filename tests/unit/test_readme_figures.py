"""The README's reliability table is the recorded figures file of a whole run of the suite, row for row."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import figures

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_recorded_figures_file() -> None:
    recorded = json.loads((ROOT / figures.RECORDED).read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert figures.readme_block(readme) == figures.readme_table(recorded), (
        "README.md's reliability table differs from docs/figures/reliability.json: run "
        "`.venv/bin/python -m tests.harness.figures`"
    )


def test_the_recorded_run_is_a_whole_run_that_found_nothing_wrong() -> None:
    recorded = json.loads((ROOT / figures.RECORDED).read_text(encoding="utf-8"))
    assert recorded["wrong entries in mirrored-images.txt"] == 0
    assert recorded["hostile lines contacted a registry"] == 0
    # Figures from each family of tests: faults, kills, concurrency, hostile input.
    for name in ("requests faulted", "kills survived", "concurrent syncs finished correctly", "bad inputs tried"):
        assert recorded[name] > 0, name


def test_the_table_renders_every_figure() -> None:
    table = figures.readme_table({"requests faulted": 1234, "wrong entries in mirrored-images.txt": 0})
    assert table.splitlines()[2:] == ["| requests faulted | 1,234 |", "| wrong entries in mirrored-images.txt | 0 |"]
