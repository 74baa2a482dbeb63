"""``merge-results`` checks every row of its results files and refuses a bad one naming the file and row
(tests/data/hostile/results.py); nothing of a refused file is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Config
from bot.reference import parse_reference
from bot.rules import Mapper
from bot.shard import ALL, Results, read_results, write_results
from tests.data.hostile.results import DIGEST, TAMPERED_ROWS
from tests.harness import figures

GOOD = f"docker.io/library/nginx:1.25@{DIGEST}"


def _file(tmp_path: Path, section: str, row: object) -> Path:
    path = tmp_path / "results" / "shard-1.json"
    write_results(path, Results("sync", ALL, (parse_reference(GOOD),)))
    data = json.loads(path.read_text())
    data.setdefault(section, []).append(row)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("section", "row", "words"), TAMPERED_ROWS)
def test_a_tampered_row_is_refused_naming_the_file_and_the_row(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    section: str,
    row: object,
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _file(tmp_path, section, row)
    index = 1 if section == "mirrored" else 0
    assert main(["merge-results", str(path), "--mirrored", "mirrored-images.txt"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: {section}[{index}]: " in err and words in err, err
    assert not (tmp_path / "mirrored-images.txt").exists()  # nothing of the file is recorded
    figures.count("tampered results rows refused")


def test_an_untouched_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "shard.json"
    write_results(path, Results("daily", ALL, (parse_reference(GOOD),)))
    assert [str(ref) for ref in read_results(path, Mapper(Config())).mirrored] == [GOOD]
