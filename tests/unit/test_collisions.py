"""Two sources, one mirror path, offline: ``check`` and ``validate-pr`` refuse a line whose mirror path an
earlier line or a recorded image of another source takes; declared aliases may share a recorded path."""

from __future__ import annotations

import pytest

from bot.checks import check_lists
from bot.collisions import PathClaims
from bot.config import Config, parse_config
from bot.errors import ConfigError
from bot.lists import ListKind, MirroredIndex, parse_list
from bot.rules import Mapper
from bot.validate import ListChange, validate_changes
from tests.harness import figures
from tests.harness.fake_upstream import RecordingUpstream, facts

DIGEST = "sha256:" + "a" * 64
MIRRORED = "mirror/mirrored-images.txt"
REQUIRED = "mirror/required-images.txt"
DAILY = "mirror/required-images-daily.txt"


def _check(
    required: str, mirrored: str = "", *, kind: ListKind = ListKind.REQUIRED, config: Config | None = None
) -> list[tuple[int, str]]:
    mapper = Mapper(config or Config())
    recorded = parse_list(mirrored, MIRRORED, ListKind.MIRRORED)
    listing = parse_list(required, REQUIRED if kind is ListKind.REQUIRED else DAILY, kind)
    result = check_lists(
        [listing, recorded], mapper, MirroredIndex(recorded.entries), PathClaims(recorded.entries, mapper)
    )
    return [(problem.line, problem.message) for problem in result.errors]


def test_check_refuses_two_sources_for_one_mirror_path_within_the_request() -> None:
    problems = _check(
        "gcr.io/google_containers/pause:3.9\nregistry.k8s.io/pause:3.9\nasia.gcr.io/p/x:1\ngcr.io/p/x:1\n"
    )
    assert [line for line, _ in problems] == [2, 4]
    assert "maps to the same mirror path" in problems[0][1] and "gcr.io/google_containers/pause:3.9" in problems[0][1]
    assert "asia.gcr.io/p/x:1 (mirror/required-images.txt:3)" in problems[1][1]
    figures.count("colliding mirror paths refused", 2)


def test_check_refuses_a_path_another_source_holds_in_the_mirrored_list() -> None:
    problems = _check("asia.gcr.io/p/x:1\nasia.gcr.io/p/x:2\n", f"gcr.io/p/x:1@{DIGEST}\n")
    assert problems == [
        (
            1,
            f"mirror path 048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/gcr/p/x:1 already holds "
            f"gcr.io/p/x:1@{DIGEST} ({MIRRORED}:1); two sources cannot share one path; mirror only one of them, "
            "or give one source its own target path with a rule under 'rules:' in mirror/config.yml (registries "
            "that serve the same images may be declared under 'aliases:')",
        )
    ]
    figures.count("colliding mirror paths refused")


def test_declared_aliases_may_share_a_recorded_path_but_not_one_request() -> None:
    assert _check("k8s.gcr.io/pause:3.9\n", f"registry.k8s.io/pause:3.9@{DIGEST}\n") == []
    problems = _check("k8s.gcr.io/pause:3.9\nregistry.k8s.io/pause:3.9\n")
    assert [line for line, _ in problems] == [2]
    # Without the declaration they are two sources.
    no_aliases = parse_config({"aliases": []})
    assert [
        line for line, _ in _check("k8s.gcr.io/pause:3.9\n", f"registry.k8s.io/pause:3.9@{DIGEST}\n", config=no_aliases)
    ] == [1]


def test_daily_lines_take_their_whole_repository() -> None:
    problems = _check("asia.gcr.io/p/x\ngcr.io/p/x\n", kind=ListKind.DAILY)
    assert [line for line, _ in problems] == [2]
    assert [line for line, _ in _check("asia.gcr.io/p/x\n", f"gcr.io/p/x:7@{DIGEST}\n", kind=ListKind.DAILY)] == [1]
    assert _check("k8s.gcr.io/pause\n", f"registry.k8s.io/pause:3.9@{DIGEST}\n", kind=ListKind.DAILY) == []


def test_aliases_config_is_typed_and_checked() -> None:
    assert Config().aliases == (("registry.k8s.io", "k8s.gcr.io"),)
    assert parse_config({"aliases": [["Quay.io/a", "ghcr.io/b/"]]}).aliases == (("quay.io/a", "ghcr.io/b"),)
    for bad in ([["quay.io"]], ["quay.io"], [["quay.io", 3]], [["quay.io", "not a host"]]):
        with pytest.raises(ConfigError, match=r"aliases\[0\]"):
            parse_config({"aliases": bad})


def test_validate_pr_refuses_collisions_before_asking_upstream() -> None:
    upstream = RecordingUpstream(images={"gcr.io/p/y:1": facts()})
    recorded = parse_list(f"gcr.io/p/x:1@{DIGEST}\n", MIRRORED, ListKind.MIRRORED)
    mapper = Mapper(Config())
    head = b"# images\nasia.gcr.io/p/x:1\ngcr.io/p/y:1\nasia.gcr.io/p/y:1\n"
    result = validate_changes(
        [ListChange(REQUIRED, b"# images\n", head)],
        mapper=mapper,
        upstream=upstream,
        limits=Config().limits,
        mirrored=MirroredIndex(recorded.entries),
        claims=PathClaims(recorded.entries, mapper),
    )
    by_line = {line.line: line for line in result.lines}
    assert "already holds gcr.io/p/x:1@" in by_line[2].issues[0].message
    assert by_line[3].ok
    assert "maps to the same mirror path" in by_line[4].issues[0].message
    assert "'aliases:'" in by_line[4].issues[0].fix
    assert upstream.calls == ["gcr.io/p/y:1"]
    figures.count("colliding mirror paths refused", 2)


def test_an_alias_that_moves_on_meets_the_other_alias_whatever_the_line_order() -> None:
    mapper = Mapper(Config())
    recorded = parse_list(f"k8s.gcr.io/pause:3.9@{DIGEST}\nregistry.k8s.io/pause:3.9@{DIGEST}\n", MIRRORED)
    claims = PathClaims(recorded.entries, mapper)
    for ref in ("k8s.gcr.io/pause:3.9", "registry.k8s.io/pause:3.9"):
        entry = parse_list(ref, REQUIRED).entries[0]
        clash = claims.holder(entry.ref, mapper.target(entry.ref))
        assert clash is not None and clash.alias and clash.entry.ref.host != entry.ref.host
