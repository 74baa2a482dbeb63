"""The PR comment and the job summaries: escaping of untrusted text, tables, problems with fixes, snippets, bounds."""

from __future__ import annotations

import html
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Config, Limits
from bot.lists import ListKind, MirroredIndex
from bot.report.comment import (
    MARKER,
    MAX_COMMENT_CHARS,
    render_comment,
    render_report,
    render_summary,
)
from bot.report.markdown import escape_markdown
from bot.report.summary import FAILED, MAX_SUMMARY_BYTES, UNCHANGED, Row
from bot.report.summary import render as render_sync
from bot.rules import Mapper
from bot.validate import ImageFacts, ListChange, ValidationResult, clip, result_output, result_to_json, validate_changes
from tests.data.hostile.comment_checks import assert_well_formed, rows_and_hidden
from tests.harness.fake_upstream import RecordingUpstream, facts

REQUIRED = "mirror/required-images.txt"


def plain(markdown: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown)).replace("\u200b", "")


def validate(head: str, images: dict[str, ImageFacts] | None = None, config: Config | None = None) -> ValidationResult:
    config = config or Config(target_registry="mirror.example.com")
    return validate_changes(
        [ListChange(REQUIRED, b"# images\n", ("# images\n" + head).encode())],
        mapper=Mapper(config),
        upstream=RecordingUpstream(images or {}),
        limits=config.limits,
        mirrored=MirroredIndex(()),
    )


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ("[click](https://evil.example)", "](http"),
        ("![img](x)", "!["),
        ("@org/team please", "@org"),
        ("see #1", "#1"),
        ("www.evil.example", "www.evil"),
        ("a | b", "| b"),
        ("`code`", "`code`"),
        ("**bold** _it_", "**bold"),
        ("$x^2$", "$x^2$"),
        ("line\nbreak", "\n"),
        ("bidi\u202eevil", "\u202e"),
        ("&lt;", "&lt;"),
    ],
)
def test_escape_markdown_neutralises(text: str, forbidden: str) -> None:
    escaped = escape_markdown(text)
    assert forbidden not in escaped
    if "\n" not in text and "\u202e" not in text:
        assert plain(escaped) == text


@given(st.text(max_size=60))
def test_escaped_text_has_no_markup_left(text: str) -> None:
    escaped = escape_markdown(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert "<" not in escaped and ">" not in escaped and "|" not in escaped
    assert not re.search(r"(?<!\\)[`*_\[\]()~$]", escaped.replace("\\\\", ""))


def test_comment_table_and_snippets() -> None:
    images = {
        "docker.io/library/nginx:1.25.3": facts(50 * 1024 * 1024),
        "quay.io/calico/node:v3.27.0": facts(1024, ("linux/amd64",)),
    }
    result = validate("nginx:1.25.3\nquay.io/calico/node:v3.27.0\n", images)
    body = render_comment(result, head_sha="0123456789abcdef0123")
    assert body.startswith(MARKER + "\n")
    assert "of `0123456789ab`" in body
    assert (
        "| `mirror/required-images.txt:2` | `nginx:1.25.3` | `mirror.example.com/dockerhub/nginx:1.25.3` "
        "| linux/amd64, linux/arm64 | 50.0 MiB | - | ✅ ok |"
    ) in body
    assert "docker pull mirror.example.com/quay/calico/node:v3.27.0\n" in body
    assert (
        '  - name: quay.io/calico/node\n    newName: mirror.example.com/quay/calico/node\n    newTag: "v3.27.0"\n'
    ) in body
    assert "All 2 added lines are valid" in body
    assert "50.0 MiB compressed" in body


def test_problems_carry_reason_and_fix_and_limits_are_named() -> None:
    config = Config(target_registry="m.example", limits=Limits(max_image_bytes=1000, max_new_lines=2))
    result = validate("big:1\nbad line\nlocalhost:5000/x:1\n", {"docker.io/library/big:1": facts(5000)}, config)
    body = plain(render_report(result))
    assert "4 problems must be fixed" in body
    assert "mirror/required-images.txt:2:1" in body and "limits.max_image_bytes" in body
    assert "mirror/required-images.txt:3:4" in body and "whitespace inside a reference" in body
    assert "registry localhost:5000 is not allowed" in body
    assert "adds 3 lines, over the limit of 2 (limits.max_new_lines)" in body
    assert body.count("Fix:") == 4
    assert "docker pull" not in body


def test_digest_pinned_image_in_snippets() -> None:
    digest = "sha256:" + "d" * 64
    result = validate(f"registry.k8s.io/pause:3.9@{digest}\n", {f"registry.k8s.io/pause:3.9@{digest}": facts()})
    body = render_report(result)
    assert f"docker pull mirror.example.com/gcr/google_containers/pause:3.9@{digest}\n" in body
    assert f"    digest: {digest}\n" in body


def test_longest_valid_reference_still_gets_its_pull_line() -> None:
    # A 255-character name with a 128-character tag and a digest is valid; its mirror path is longer still.
    digest = "sha256:" + "e" * 64
    image = f"{'a' * 127}/{'b' * 127}:{'t' * 128}@{digest}"
    result = validate(f"{image}\n", {f"docker.io/{image}": facts()}, Config())
    assert result.ok
    body = render_comment(result)
    assert f"docker pull {Config().target_registry}/dockerhub/{image}\n" in body


def test_summary_has_no_marker_and_long_comments_are_shortened() -> None:
    config = Config(limits=Limits(max_new_lines=1000))
    lines = "".join(f"quay.io/org{i}/{'x' * 100}:{'t' * 100}\n" for i in range(400))
    images = {f"quay.io/org{i}/{'x' * 100}:{'t' * 100}": facts() for i in range(400)}
    result = validate(lines, images, config)
    assert MARKER not in render_report(result, marker=False)
    assert len(render_report(result)) > MAX_COMMENT_CHARS
    body = render_comment(result)
    assert len(body) <= MAX_COMMENT_CHARS
    assert "more lines (with their problems and pull lines), shown in the job summary" in body
    # ... which is true: the summary holds every row.
    summary = render_summary(result)
    assert summary.rows == 400 and rows_and_hidden(summary.markdown) == (list(range(2, 402)), 0)


def test_no_lines_added() -> None:
    result = validate("")
    assert "No image lines were added" in render_report(result)


def test_daily_kind_is_rendered_without_pull_lines() -> None:
    result = validate_changes(
        [ListChange("mirror/required-images-daily.txt", None, b"quay.io/calico/node\n", ListKind.DAILY)],
        mapper=Mapper(Config(target_registry="m.example")),
        upstream=RecordingUpstream(tags={"quay.io/calico/node": ["v1", "v2", "v3-rc1"]}),
        limits=Limits(),
        mirrored=MirroredIndex(()),
    )
    body = render_report(result)
    assert "daily: 2 of 3 tags to copy" in body
    assert "docker pull" not in body


def hostile_result(count: int) -> ValidationResult:
    """``count`` invalid lines that grow ninefold when escaped (each '#' gets a backslash and a zero-width space)."""
    config = Config(limits=Limits(max_new_lines=10))
    return validate("".join(f"x{index}{'#' * 1000}\n" for index in range(count)), config=config)


def test_job_summary_is_bounded_and_points_to_the_log() -> None:
    result = hostile_result(1000)
    unbounded = render_report(result, marker=False)
    assert len(unbounded.encode()) > 10 * MAX_SUMMARY_BYTES

    summary = render_summary(result)

    assert len(summary.markdown.encode()) <= MAX_SUMMARY_BYTES
    assert_well_formed(summary.markdown, marker=False)
    rows, hidden = rows_and_hidden(summary.markdown)
    assert rows == list(range(2, 2 + summary.rows)) and summary.rows > 10
    assert hidden == 1000 - summary.rows
    assert "not shown here: the log of this check lists all 1000 lines and every problem." in summary.markdown
    assert "**Totals:** 1000 added lines" in summary.markdown
    assert plain(summary.markdown).count("Fix:") == summary.rows + 1  # the rows' problems, and the line limit


def test_comment_names_the_channel_of_the_rows_it_leaves_out() -> None:
    result = hostile_result(1000)
    summary = render_summary(result)

    body = render_comment(result)

    rows, hidden = rows_and_hidden(body)
    assert len(body) <= MAX_COMMENT_CHARS and 0 < len(rows) < summary.rows
    assert (
        f"… and {hidden} more lines (with their problems and pull lines) not shown here. The job summary of this "
        f"check shows the first {summary.rows} lines; the log of this check lists all 1000 lines and every problem."
    ) in body
    # When the summary holds no more rows than the comment, only the log is named.
    alone = render_comment(result, summary_rows=0)
    assert "not shown here: the log of this check lists all 1000 lines and every problem." in alone
    assert "job summary" not in alone


def test_result_output_is_bounded_and_marked_truncated() -> None:
    result = hostile_result(1000)
    assert len(json.dumps(result_to_json(result))) > 10 * 100_000

    text = result_output(result, max_chars=100_000)

    assert len(text) <= 100_000 and text.isascii()
    data = json.loads(text)
    assert data["total_lines"] == 1000 and data["truncated"] is True
    assert data["counts"] == {"ok": 0, "mirrored": 0, "warning": 0, "error": 1000}
    assert data["errors"] == 1001 and data["issues"][0]["limit"] == "limits.max_new_lines"
    assert [line["line"] for line in data["lines"]] == list(range(2, 2 + len(data["lines"])))
    assert 0 < len(data["lines"]) < 1000

    small = json.loads(result_output(hostile_result(3)))
    assert small["truncated"] is False and len(small["lines"]) == small["total_lines"] == 3


def test_clip_keeps_short_text_and_says_how_long_long_text_was() -> None:
    assert clip("nginx:1") == "nginx:1"
    assert clip("a" * 5000) == "a" * 1024 + "… (5000 characters)"
    assert clip("abcdef", 3) == "abc… (6 characters)"


def test_sync_summary_is_bounded_and_keeps_every_failure() -> None:
    reason = "denied: " + "#" * 5000  # escaped ninefold, cut first
    rows = [
        Row(f"docker.io/team/app{index}:1", f"m.example/dh/team/app{index}:1", result=UNCHANGED)
        for index in range(20000)
    ]
    rows[15000] = Row("docker.io/team/broken:1", "-", result=FAILED, detail=reason)
    small = render_sync("Sync", rows[:3], ["note"])
    assert "more images" not in small and small.count("| docker.io/team/app") == 3

    text = render_sync("Sync", rows, ["committed mirror/mirrored-images.txt"])

    assert len(text.encode()) <= MAX_SUMMARY_BYTES
    assert "0 copied, 19999 unchanged, 1 failed" in text  # the counts cover every row
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[1].startswith("| docker.io/team/broken:1 |") and "… \\(5016 characters\\)" in table[1]
    shown = len(table) - 1
    assert f"… and {20000 - shown} more images not shown here (0 of them failed)" in text
    assert text.rstrip().endswith("- committed mirror/mirrored-images.txt")
