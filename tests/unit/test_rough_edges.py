"""Small things a user trips over: one size unit, plurals, untagged requests, kustomize snippets, empty merges."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.checks import check_lists
from bot.cli import main
from bot.config import Config, Limits
from bot.lists import ListKind, MirroredIndex, parse_list
from bot.registry.progress import LogProgress
from bot.report.comment import render_comment
from bot.rules import Mapper
from bot.units import binary_size, plural
from bot.validate import ListChange, validate_changes
from tests.harness.fake_upstream import RecordingUpstream, facts

MIB = 1024**2


def test_one_size_format_scaled_per_number() -> None:
    assert [binary_size(n) for n in (0, 999, 1024, 1536, 95 * MIB + MIB // 2, 3 * 1024**3, 2 * 1024**4)] == [
        "0 B",
        "999 B",
        "1.0 KiB",
        "1.5 KiB",
        "95.5 MiB",
        "3.0 GiB",
        "2.0 TiB",
    ]


def test_a_size_limit_message_and_the_comment_speak_one_unit() -> None:
    config = Config(target_registry="m.example", limits=Limits(max_image_bytes=95 * MIB + MIB // 2))
    result = validate_changes(
        [ListChange("mirror/required-images.txt", None, b"big:1\n")],
        mapper=Mapper(config),
        upstream=RecordingUpstream({"docker.io/library/big:1": facts(112 * MIB)}),
        limits=config.limits,
        mirrored=MirroredIndex(()),
    )
    (issue,) = result.lines[0].issues
    assert "the image is 112.0 MiB compressed, over the limit of 95.5 MiB per image" in issue.message
    body = render_comment(result)
    assert "| 112.0 MiB |" in body and "limit 30.0 GiB per pull request, 95.5 MiB per image" in body
    assert " GB" not in body and " MB" not in body


def test_progress_lines_use_the_same_units() -> None:
    stream = io.StringIO()
    progress = LogProgress(stream, 10.0, clock=lambda: 1.0)
    progress.add_total(3 * MIB)
    progress.advance(MIB + MIB // 2)
    progress.finish()
    assert stream.getvalue().startswith("progress: 1.5 MiB / 3.0 MiB, ")


@pytest.mark.parametrize(("count", "text"), [(0, "0 files"), (1, "1 file"), (2, "2 files")], ids=["zero", "one", "two"])
def test_plural(count: int, text: str) -> None:
    assert plural(count, "file") == text
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"


def test_check_of_one_file_says_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "required-images.txt"
    listing.write_text("nginx:1.25.3\n")
    assert main(["check", "--registry", "m.example", "--mirrored", str(tmp_path / "none.txt"), str(listing)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "checked 2 files: 1 entry, 0 errors, 0 warnings"
    mirrored = tmp_path / "mirrored-images.txt"
    mirrored.write_text("nginx:1.25.3@sha256:" + "a" * 64 + "\n")
    # The mirrored list named as a FILE is read once: one file.
    assert main(["check", "--registry", "m.example", "--mirrored", str(mirrored), str(mirrored)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "checked 1 file: 0 entries, 0 errors, 0 warnings"


def test_an_untagged_request_warns_in_check() -> None:
    listing = parse_list(
        b"nginx\nquay.io/calico/node:v3.27.0\nredis@sha256:" + b"a" * 64 + b"\n",
        "mirror/required-images.txt",
        ListKind.REQUIRED,
    )
    daily = parse_list(b"quay.io/calico/node\n", "mirror/required-images-daily.txt", ListKind.DAILY)
    result = check_lists([listing, daily], Mapper(Config(target_registry="m.example")))
    assert not result.errors
    (warning,) = result.problems
    assert (warning.file, warning.line, warning.col, warning.severity) == (
        "mirror/required-images.txt",
        1,
        1,
        "warning",
    )
    assert "no tag: 'nginx' means 'nginx:latest'" in warning.message and "'nginx:1.2.3'" in warning.message


def test_merge_results_with_no_file_says_a_shard_sent_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main(["merge-results"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no results file: a shard sent no file, so nothing is recorded")
    assert "usage:" not in err
    assert not (tmp_path / "mirror").exists()


def test_kustomize_snippet_leaves_the_tag_alone_for_a_name_with_several_tags() -> None:
    config = Config(target_registry="m.example")
    images = {f"docker.io/library/nginx:{tag}": facts(MIB) for tag in ("1.25.3", "1.26.0")} | {
        "quay.io/calico/node:v3.27.0": facts(MIB)
    }
    result = validate_changes(
        [ListChange("mirror/required-images.txt", None, b"nginx:1.25.3\nnginx:1.26.0\nquay.io/calico/node:v3.27.0\n")],
        mapper=Mapper(config),
        upstream=RecordingUpstream(images),
        limits=config.limits,
        mirrored=MirroredIndex(()),
    )
    body = render_comment(result)
    snippet = body.split("images:\n", 1)[1].split("```", 1)[0]
    assert snippet == (
        "  - name: nginx\n"
        "    newName: m.example/dockerhub/nginx\n"
        "  - name: quay.io/calico/node\n"
        "    newName: m.example/quay/calico/node\n"
        '    newTag: "v3.27.0"\n'
    )
