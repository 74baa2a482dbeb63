"""The daily tag filter and the new/moved plan (pure)."""

from __future__ import annotations

import re

import pytest

from bot.config import DailyConfig, parse_config
from bot.daily import TagFilter, TagPlan, parse_range, parse_version, plan_tags
from bot.errors import ConfigError

UPSTREAM = ["1.0", "1.1", "2.0-beta.1", "2.0-rc1", "latest"]


def default_filter(**changes: object) -> TagFilter:
    return TagFilter.from_config(parse_config({"daily": changes}).daily)


def test_default_filter_skips_pre_releases() -> None:
    assert default_filter().select(UPSTREAM) == ["1.0", "1.1", "latest"]


@pytest.mark.parametrize(
    "tag",
    [
        "2.0-ALPHA1",
        "1.0.0-beta",
        "v3.0.0-rc.2",
        "3.1rc1",
        "1.2-dev",
        "nightly-2024-01-01",
        "1.0-SNAPSHOT",
        "ltsc2022-windowsservercore",
        "nanoserver-1809",
        "1.27-develop",
    ],
)
def test_skip_words_are_case_insensitive_words(tag: str) -> None:
    assert not default_filter().wanted(tag)


@pytest.mark.parametrize("tag", ["source-1.0", "arch-2", "1.25.3-alpine", "orchid", "stable", "bookworm"])
def test_skip_words_do_not_match_inside_other_words(tag: str) -> None:
    assert default_filter().wanted(tag)


def test_skip_words_can_be_replaced() -> None:
    assert default_filter(skip_words=[]).select(UPSTREAM) == sorted(UPSTREAM)


def test_include_and_exclude_patterns() -> None:
    tags = ["1.25.3", "1.25.3-alpine", "1.25.3-bookworm", "mainline", "latest"]
    assert default_filter(include=[r"^\d"]).select(tags) == ["1.25.3", "1.25.3-alpine", "1.25.3-bookworm"]
    assert default_filter(exclude=["alpine$", "^main"]).select(tags) == ["1.25.3", "1.25.3-bookworm", "latest"]


def test_invalid_pattern_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"daily\.exclude\[1\].*regular expression"):
        default_filter(exclude=["ok", "("])


@pytest.mark.parametrize(
    ("spec", "tag", "expected"),
    [
        (">=1.20, <2", "1.20.3", True),
        (">=1.20, <2", "v1.19.9", False),
        (">=1.20, <2", "2.0", False),
        (">= 1.20 < 2", "1.99", True),
        ("^1.2", "1.9.0", True),
        ("^1.2", "2.0.0", False),
        ("^1.2", "1.1.9", False),
        ("^0.3", "0.3.5", True),
        ("^0.3", "0.4.0", False),
        ("~1.4", "1.4.7", True),
        ("~1.4", "1.5.0", False),
        ("~1.4.2", "1.4.9", True),
        ("~1.4.2", "1.4.1", False),
        ("1.x", "1.8", True),
        ("1.x", "2.0", False),
        ("!=1.3", "1.3.2", False),
        ("<=1.3", "1.3", True),
        (">1.3", "1.3.0", False),
    ],
)
def test_semver_ranges(spec: str, tag: str, expected: bool) -> None:
    assert default_filter(semver=spec, skip_words=[]).wanted(tag) is expected


def test_semver_range_drops_tags_that_are_no_version() -> None:
    assert default_filter(semver=">=1").select(UPSTREAM) == ["1.0", "1.1"]


def test_bad_semver_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"daily\.semver"):
        parse_range(">=one")
    with pytest.raises(ConfigError, match=r"daily\.semver"):
        parse_range(" , ")


def test_newest_keeps_every_variant_of_the_newest_versions() -> None:
    tags = ["1.24.0", "1.25.3", "1.25.3-alpine", "1.26.0", "v1.26.1", "latest", "1.26.2-rc1"]
    selected = TagFilter.from_config(DailyConfig(newest=2)).select(tags)
    assert selected == ["1.26.0", "latest", "v1.26.1"]
    assert TagFilter.from_config(DailyConfig(newest=3)).select(tags) == [
        "1.25.3",
        "1.25.3-alpine",
        "1.26.0",
        "latest",
        "v1.26.1",
    ]


def test_parse_version() -> None:
    assert parse_version("v1.2.3-alpine") == (1, 2, 3)
    assert parse_version("20.04") == (20, 4)
    assert parse_version("latest") is None
    assert parse_version("1.2.3.4.5") == (1, 2, 3, 4)


def test_plan_copies_new_and_moved_tags_only() -> None:
    upstream = {"1.0": "sha256:a", "1.1": "sha256:b", "latest": "sha256:c"}
    pinned: dict[str, str | None] = {"1.0": "sha256:a", "latest": "sha256:old"}
    plans = plan_tags(["1.0", "1.1", "latest"], upstream, pinned)
    assert plans == [TagPlan("1.1", "sha256:b", None), TagPlan("latest", "sha256:c", "sha256:old")]
    assert [plan.reason for plan in plans] == ["new", "moved"]


def test_plan_repins_unpinned_lines_and_trusts_a_missing_head_digest() -> None:
    plans = plan_tags(["1.0", "1.1"], {"1.0": "sha256:a", "1.1": None}, {"1.0": None, "1.1": "sha256:b"})
    assert [(plan.tag, plan.reason) for plan in plans] == [("1.0", "moved")]


@pytest.mark.parametrize(
    "tag",
    [
        "sha256-" + "a" * 64,
        "sha256-" + "b" * 64 + ".sig",
        "sha256-" + "c" * 64 + ".att",
        "sha256-" + "d" * 64 + ".sbom",
        "1.2.3.sig",
    ],
)
def test_referrer_and_signature_tags_are_never_releases(tag: str) -> None:
    # No filter lets them through, not even an include pattern that matches them.
    assert TagFilter(skip_words=(), include=(re.compile(".*"),)).select([tag, "1.0"]) == ["1.0"]
    assert TagFilter(skip_words=()).select([tag]) == []


def test_tags_without_a_version_follow_the_filters() -> None:
    tags = ["1.25.3", "latest", "single", "attested", "stable"]
    # Without include or semver they pass (README: drop them with exclude, include or semver) ...
    assert TagFilter(skip_words=()).select(tags) == sorted(tags)
    # ... an include pattern for versions, a semver range or an exclude pattern drops them.
    assert TagFilter(skip_words=(), include=(re.compile(r"^v?\d"),)).select(tags) == ["1.25.3"]
    assert TagFilter(skip_words=(), semver=parse_range(">=1")).select(tags) == ["1.25.3"]
    assert TagFilter(skip_words=(), exclude=(re.compile("^(single|attested)$"),)).select(tags) == [
        "1.25.3",
        "latest",
        "stable",
    ]
