"""The original service's real lists (tests/data/upstream/) as fixtures: junk gets precise diagnoses, the
74k-line mirrored list reads and writes stably."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.config import Config
from bot.errors import MappingError
from bot.lists import ListKind, format_mirrored, parse_list, read_list, write_mirrored
from bot.rules import Mapper

DATA = Path(__file__).resolve().parents[1] / "data" / "upstream"
HISTORY = DATA / "upstream-required-images-history.txt"


@pytest.fixture(scope="module")
def history_lines() -> list[str]:
    return HISTORY.read_text(encoding="utf-8").split("\n")


def test_every_junk_history_line_gets_a_precise_diagnosis(history_lines: list[str]) -> None:
    parsed = read_list(HISTORY, ListKind.REQUIRED)
    assert len(parsed.entries) + len(parsed.problems) == sum(1 for line in history_lines if line.strip())
    kinds: Counter[str] = Counter()
    for problem in parsed.problems:
        line = history_lines[problem.line - 1]
        char = line[problem.col - 1] if problem.col <= len(line) else ""
        if "a comment needs whitespace before '#'" in problem.message:
            assert char == "#", problem
            kinds["hash"] += 1
        elif problem.message.startswith("whitespace inside a reference"):
            assert char == " " and " - " in line, problem
            kinds["note"] += 1
        elif problem.message.startswith("empty path component"):
            assert line[problem.col - 2 : problem.col] == "//", problem
            kinds["slash"] += 1
        elif "digest is truncated: 63 hex digits, it needs 64" in problem.message:
            assert problem.col == len(line) + 1, problem
            kinds["digest"] += 1
        else:
            pytest.fail(f"unexpected diagnosis {problem}")
    assert kinds == {"hash": 20, "note": 9, "slash": 2, "digest": 1}


def test_history_lines_outside_the_rules_are_named(history_lines: list[str]) -> None:
    parsed = read_list(HISTORY, ListKind.REQUIRED)
    mapper = Mapper(Config())
    refused: dict[str, str] = {}
    for entry in parsed.entries:
        try:
            mapper.target(entry.ref)
        except MappingError as exc:
            refused[entry.text] = exc.message
    assert sorted({text.split("/")[0] for text in refused}) == [
        "672518094988.dkr.ecr.us-west-2.amazonaws.com",
        "895885662937.dkr.ecr.us-west-2.amazonaws.com",
        "cr.io",
    ]
    assert "did you mean gcr.io?" in refused["cr.io/ml-pipeline/minio:RELEASE.2019-08-14T20-37-41Z-license-compliance"]


def test_the_74k_mirrored_list_parses_and_writes_stably(tmp_path: Path) -> None:
    data = (DATA / "upstream-mirrored-images.txt").read_bytes()
    parsed = parse_list(data, "mirrored-images.txt")
    assert parsed.problems == ()
    assert len(parsed.entries) == data.count(b"\n") == 74212
    target = tmp_path / "mirrored-images.txt"
    assert write_mirrored(target, (entry.ref for entry in parsed.entries)) is True
    first = target.read_bytes()
    assert first.endswith(b"\n")
    assert b"\r" not in first
    assert len(first.splitlines()) == 74212
    reread = parse_list(first, "mirrored-images.txt")
    assert write_mirrored(target, (entry.ref for entry in reread.entries)) is False
    assert format_mirrored(entry.ref for entry in reread.entries).encode() == first


def test_the_daily_and_request_lists_parse() -> None:
    daily = read_list(DATA / "upstream-required-images-daily.txt", ListKind.DAILY)
    assert daily.problems == ()
    assert len(daily.entries) == 126  # 127 lines, one of them a comment
    required = read_list(DATA / "upstream-required-images.txt", ListKind.REQUIRED)
    assert [entry.text for entry in required.entries] == ["busybox:1.36-uclibc"]
