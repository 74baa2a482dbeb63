"""The validate-pr use case on data: added lines, offline checks, limits, and what reaches upstream."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from bot.config import Config, DailyConfig, Limits, Rule, parse_config
from bot.errors import AuthError, RegistryError
from bot.lists import ListKind, MirroredIndex, parse_list
from bot.rules import Mapper
from bot.validate import (
    ListChange,
    ValidationResult,
    added_line_numbers,
    validate_changes,
)
from tests.harness.fake_upstream import RecordingUpstream, facts

REQUIRED = "mirror/required-images.txt"
DAILY = "mirror/required-images-daily.txt"
GIB = 1024**3


def run(
    head: str,
    base: str | None = "# images\n",
    *,
    upstream: RecordingUpstream | None = None,
    config: Config | None = None,
    mirrored: str = "",
    path: str = REQUIRED,
    extra: Sequence[ListChange] = (),
) -> ValidationResult:
    config = config or Config()
    mirrored_list = parse_list(mirrored, "mirror/mirrored-images.txt", ListKind.MIRRORED)
    change = ListChange(path, None if base is None else base.encode(), head.encode())
    return validate_changes(
        [change, *extra],
        mapper=Mapper(config),
        upstream=upstream or RecordingUpstream(),
        limits=config.limits,
        mirrored=MirroredIndex(mirrored_list.entries),
        daily=config.daily,
    )


def test_added_lines_are_the_lines_missing_from_base() -> None:
    assert added_line_numbers("a\nb\nc\n", "a\nx\nb\nc\ny\n") == {2, 5}
    assert added_line_numbers(None, "a\nb") == {1, 2}
    # Only the line end changed: not an addition.
    assert added_line_numbers("a\nb\n", "a\r\nb  \n") == set()
    # Lines that only moved (the list was sorted) are not additions; a second copy of a line is.
    assert added_line_numbers("c\nb\na\n", "a\nb\nc\n") == set()
    assert added_line_numbers("c\nb\n", "b\nc\nc\n") == {3}
    assert added_line_numbers("b\na\n", "a\nx\nb\n") == {2}


def test_valid_line_has_target_platforms_and_size() -> None:
    upstream = RecordingUpstream({"docker.io/library/nginx:1.25.3": facts(123_456)})
    result = run("# images\nnginx:1.25.3\n", upstream=upstream)
    assert result.ok
    (line,) = result.lines
    assert (line.file, line.line, line.col) == (REQUIRED, 2, 1)
    assert str(line.target) == "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/dockerhub/nginx:1.25.3"
    assert line.facts == facts(123_456)
    assert result.new_bytes == 123_456
    assert line.status == "ok"


def test_existing_lines_are_not_checked_again() -> None:
    upstream = RecordingUpstream({"quay.io/calico/node:v3.27.0": facts()})
    result = run("# images\nnginx:1\nquay.io/calico/node:v3.27.0\n", "# images\nnginx:1\n", upstream=upstream)
    assert [line.line for line in result.lines] == [3]
    assert upstream.calls == ["quay.io/calico/node:v3.27.0"]


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "localhost:5000", "10.0.0.1", "metadata.google.internal", "127.0.0.1:8080", "[::1]:5000"],
)
def test_registry_outside_the_allow_list_never_reaches_upstream(host: str) -> None:
    upstream = RecordingUpstream()
    result = run(f"# images\n{host}/latest/meta-data:v1\n", upstream=upstream)
    assert not result.ok
    (line,) = result.lines
    assert "is not allowed" in line.issues[0].message
    assert "mirror/config.yml" in line.issues[0].fix
    assert upstream.calls == []


def test_syntax_error_names_line_and_column() -> None:
    result = run("# images\nnginx:1.25\nquay.io/calico/node:v3.27#0\n")
    bad = result.lines[1]
    assert (bad.line, bad.issues[0].col) == (3, 26)
    assert "'#'" in bad.issues[0].message
    assert bad.status == "error"
    assert "e.g. nginx" in bad.issues[0].fix


def test_denied_image_is_an_error_with_the_reason() -> None:
    config = parse_config({"deny": [{"pattern": "docker.io/evil/*", "reason": "licence"}]})
    upstream = RecordingUpstream()
    result = run("evil/thing:1\n", None, upstream=upstream, config=config)
    assert "deny list" in result.lines[0].issues[0].message
    assert "licence" in result.lines[0].issues[0].message
    assert upstream.calls == []


def test_duplicates_within_the_pull_request_and_the_file() -> None:
    upstream = RecordingUpstream({"docker.io/library/nginx:latest": facts()})
    result = run("# x\nredis:7\nnginx\ndocker.io/library/nginx:latest\nredis:7\n", "# x\nredis:7\n", upstream=upstream)
    by_line = {line.line: line for line in result.lines}
    assert set(by_line) == {3, 4, 5}
    assert by_line[3].ok
    assert "duplicate of line 3" in by_line[4].issues[0].message
    assert "already listed at mirror/required-images.txt:2" in by_line[5].issues[0].message
    assert upstream.calls == ["docker.io/library/nginx:latest"]


def test_already_mirrored_is_a_warning_that_says_where() -> None:
    upstream = RecordingUpstream()
    result = run("nginx:1.25\n", None, upstream=upstream, mirrored="docker.io/library/nginx:1.25@sha256:" + "b" * 64)
    (line,) = result.lines
    assert result.ok
    assert line.status == "mirrored"
    assert line.mirrored_at == "mirror/mirrored-images.txt:1"
    # the copy is where the listed spelling maps to: the rule keeps the path as written (library/ included)
    assert "/dockerhub/library/nginx:1.25 " in line.issues[0].message
    assert str(line.target).endswith("/dockerhub/library/nginx:1.25")
    assert upstream.calls == []
    assert result.new_bytes == 0


def test_missing_tag_private_image_and_outage() -> None:
    upstream = RecordingUpstream(
        errors={
            "quay.io/private/x:1": AuthError("denied", status=401),
            "quay.io/flaky/x:1": RegistryError("503 Service Unavailable\nmore", status=503, temporary=True),
        }
    )
    result = run("nginx:no-such-tag\nquay.io/private/x:1\nquay.io/flaky/x:1\n", None, upstream=upstream)
    missing, private, flaky = result.lines
    assert "does not exist upstream" in missing.issues[0].message
    assert "tag exists" in missing.issues[0].fix
    assert "refused access" in private.issues[0].message
    assert "503 Service Unavailable" in flaky.issues[0].message
    assert "more" not in flaky.issues[0].message
    assert not result.ok and result.error_count == 3


def test_image_over_the_size_limit_names_the_limit() -> None:
    config = Config(limits=Limits(max_image_bytes=GIB))
    upstream = RecordingUpstream({"docker.io/library/big:1": facts(2 * GIB)})
    result = run("big:1\n", None, upstream=upstream, config=config)
    issue = result.lines[0].issues[0]
    assert issue.limit == "limits.max_image_bytes"
    assert "limits.max_image_bytes" in issue.message
    # One unit system, scaled per number: never "0.11 GiB" beside "95.4 MiB".
    assert "the image is 2.0 GiB compressed, over the limit of 1.0 GiB per image" in issue.message


def test_pull_request_limits_name_the_limit() -> None:
    config = Config(limits=Limits(max_pr_bytes=3 * GIB, max_new_lines=2))
    images = {f"docker.io/library/img{i}:1": facts(2 * GIB) for i in range(3)}
    result = run("img0:1\nimg1:1\nimg2:1\n", None, upstream=RecordingUpstream(images), config=config)
    assert all(line.ok for line in result.lines)
    limits = {issue.limit for issue in result.issues}
    assert limits == {"limits.max_new_lines", "limits.max_pr_bytes"}
    assert not result.ok


def test_upstream_checks_are_bounded_for_huge_pull_requests() -> None:
    config = Config(limits=Limits(max_new_lines=5))
    upstream = RecordingUpstream({f"docker.io/library/img{i}:1": facts() for i in range(100)})
    result = run("".join(f"img{i}:1\n" for i in range(100)), None, upstream=upstream, config=config)
    assert len(upstream.calls) == 20  # 4 x max_new_lines
    assert sum(1 for line in result.lines if "not checked upstream" in " ".join(i.message for i in line.issues)) == 80


def test_checks_run_concurrently_with_a_bound() -> None:
    upstream = RecordingUpstream({f"docker.io/library/img{i}:1": facts() for i in range(40)}, delay=0.05)
    config = Config(limits=Limits(max_new_lines=100))
    started = time.monotonic()
    result = run("".join(f"img{i}:1\n" for i in range(40)), None, upstream=upstream, config=config)
    elapsed = time.monotonic() - started
    assert result.ok
    assert upstream.max_active == 8
    assert elapsed < 40 * 0.05 / 2


def test_daily_line_counts_tags_to_copy() -> None:
    config = Config(daily=DailyConfig(skip_words=("rc",)))
    upstream = RecordingUpstream(tags={"quay.io/calico/node": ["v3.26.0", "v3.27.0", "v3.28.0-rc1", "v3.27.1"]})
    result = run(
        "quay.io/calico/node\n",
        None,
        path=DAILY,
        upstream=upstream,
        config=config,
        mirrored="quay.io/calico/node:v3.26.0@sha256:" + "c" * 64,
    )
    (line,) = result.lines
    assert line.ok
    assert (line.tags_total, line.tags_to_copy) == (4, 2)
    assert line.target is not None
    assert str(line.target) == "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/quay/calico/node"


def test_daily_line_with_tag_or_missing_repository() -> None:
    upstream = RecordingUpstream(tags={})
    result = run("quay.io/calico/node:v1\nquay.io/nope/nothing\n", None, path=DAILY, upstream=upstream)
    tagged, missing = result.lines
    assert "repositories only" in tagged.issues[0].message
    assert "repository does not exist" in missing.issues[0].message


def test_loopback_registry_is_allowed_when_a_rule_names_it() -> None:
    config = Config(rules=(Rule("127.0.0.1:5000", "local"),))
    upstream = RecordingUpstream({"127.0.0.1:5000/team/app:1": facts()})
    result = run("127.0.0.1:5000/team/app:1\n", None, upstream=upstream, config=config)
    assert result.ok
    assert upstream.calls == ["127.0.0.1:5000/team/app:1"]


def test_removed_file_and_unchanged_file_add_nothing() -> None:
    result = validate_changes(
        [ListChange(REQUIRED, b"nginx:1\n", None), ListChange(DAILY, b"quay.io/a/b\n", b"quay.io/a/b\n")],
        mapper=Mapper(Config()),
        upstream=RecordingUpstream(),
        limits=Limits(),
        mirrored=MirroredIndex(()),
    )
    assert result.lines == ()
    assert result.ok
