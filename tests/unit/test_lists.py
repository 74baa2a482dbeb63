from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ListFileError
from bot.lists import (
    ListKind,
    MirroredIndex,
    format_mirrored,
    parse_list,
    read_list,
    write_mirrored,
)
from bot.reference import Reference, parse_reference

SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64


def test_comments_blanks_crlf_and_trailing_whitespace_are_tolerated() -> None:
    text = "# header\r\n\r\nnginx:1.0   \r\n  quay.io/calico/node:v1\t# a note\r\n\t\r\nbusybox # why\n"
    parsed = parse_list(text, "required-images.txt")
    assert parsed.problems == ()
    assert [(e.line, e.col, e.text) for e in parsed.entries] == [
        (3, 1, "nginx:1.0"),
        (4, 3, "quay.io/calico/node:v1"),
        (6, 1, "busybox"),
    ]


def test_a_line_is_never_split_into_words() -> None:
    parsed = parse_list("name - jimmidyson/configmap-reload\n", "required-images.txt")
    assert parsed.entries == ()
    assert [str(p) for p in parsed.problems] == [
        "required-images.txt:1:5: whitespace inside a reference; a line holds one image reference, start notes with '#'"
    ]


def test_problem_columns_count_from_the_start_of_the_line() -> None:
    parsed = parse_list("ok:1\n   Bad/Name:1\n\tnginx:1.0#\n", "f.txt")
    assert [(p.line, p.col) for p in parsed.problems] == [(2, 4), (3, 11)]
    assert "uppercase letter 'B'" in parsed.problems[0].message
    assert "comment needs whitespace" in parsed.problems[1].message


def test_daily_list_refuses_tags_and_digests() -> None:
    parsed = parse_list(f"quay.io/calico/node\nnginx:1.25\nredis@{SHA_A}\n", "required-images-daily.txt")
    assert [e.text for e in parsed.entries] == ["quay.io/calico/node"]
    assert [(p.line, p.col) for p in parsed.problems] == [(2, 6), (3, 6)]
    assert all("names repositories only" in p.message for p in parsed.problems)


def test_kind_is_taken_from_the_file_name() -> None:
    assert ListKind.for_path("mirror/required-images-daily.txt") is ListKind.DAILY
    assert ListKind.for_path("mirror/mirrored-images.txt") is ListKind.MIRRORED
    assert ListKind.for_path("mirror/required-images.txt") is ListKind.REQUIRED


def test_invalid_utf8_is_a_problem_at_its_position() -> None:
    parsed = parse_list(b"nginx:1\nab\xffcd:1\nredis:7\n", "required-images.txt")
    assert [e.text for e in parsed.entries] == ["nginx:1", "redis:7"]
    assert [(p.line, p.col) for p in parsed.problems] == [(2, 3)]
    assert "not valid UTF-8" in parsed.problems[0].message


def test_byte_order_mark_is_ignored() -> None:
    parsed = parse_list("\ufeffnginx:1\n".encode(), "required-images.txt")
    assert [(e.line, e.col, e.text) for e in parsed.entries] == [(1, 1, "nginx:1")]


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "required-images.txt"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(ListFileError, match="limited to"):
        read_list(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="not found"):
        read_list(tmp_path / "nope.txt")
    assert read_list(tmp_path / "nope.txt", missing_ok=True).entries == ()


def test_format_mirrored_sorts_dedupes_and_ends_with_newline() -> None:
    refs: list[Reference | str] = [
        parse_reference("quay.io/b:1"),
        "nginx:1",
        parse_reference("nginx:1"),
        "adminer:4.2-fastcgi",
        "adminer:4.2.5",
    ]
    assert format_mirrored(refs) == "adminer:4.2-fastcgi\nadminer:4.2.5\nnginx:1\nquay.io/b:1\n"
    assert format_mirrored([]) == ""


def test_write_mirrored_reports_changes_and_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "mirrored-images.txt"
    assert write_mirrored(path, ["b:1", "a:1"]) is True
    assert path.read_bytes() == b"a:1\nb:1\n"
    assert write_mirrored(path, ["a:1", "b:1", "a:1"]) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrored-images.txt"]


def test_mirrored_index_matches_any_spelling_and_respects_digests() -> None:
    mirrored = parse_list(f"nginx:1.25@{SHA_A}\nquay.io/calico/node:v1\nredis@{SHA_B}\n", "mirrored-images.txt")
    index = MirroredIndex(mirrored.entries)
    found = index.find(parse_reference("docker.io/library/nginx:1.25"))
    assert found is not None
    assert found.line == 1
    assert index.find(parse_reference(f"nginx:1.25@{SHA_A}")) is not None
    assert index.find(parse_reference(f"nginx:1.25@{SHA_B}")) is None
    assert index.find(parse_reference(f"quay.io/calico/node:v1@{SHA_B}")) is not None  # unpinned entry
    assert index.find(parse_reference(f"library/redis@{SHA_B}")) is not None
    assert index.find(parse_reference("nginx:1.26")) is None
    assert index.find(parse_reference("nginx")) is None
