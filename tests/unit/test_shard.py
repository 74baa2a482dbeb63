"""Shard partition, results files and the mirrored-list merge (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import ListFileError, UsageError
from bot.reference import parse_reference
from bot.report.summary import FAILED, Row
from bot.shard import Results, Shard, merge_mirrored, merge_results, parse_shard, read_results, shard_of, write_results

DATA = Path(__file__).parent.parent / "data" / "upstream" / "upstream-mirrored-images.txt"


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1", "1/2/3", "-1/2"])
def test_parse_shard_rejects_bad_forms(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_parse_shard() -> None:
    assert parse_shard(" 2/4 ") == Shard(2, 4)
    assert str(Shard(2, 4)) == "2/4"


def test_every_spelling_and_tag_of_a_repository_is_on_one_shard() -> None:
    spellings = [
        "nginx",
        "nginx:1.25",
        "docker.io/library/nginx:latest",
        "index.docker.io/library/nginx@sha256:" + "a" * 64,
    ]
    shards = {shard_of(parse_reference(text), 7) for text in spellings}
    assert len(shards) == 1


def test_partition_is_stable_and_balanced_on_real_data() -> None:
    refs = []
    for line in DATA.read_text(encoding="utf-8").splitlines()[:5000]:
        try:
            refs.append(parse_reference(line.strip()))
        except Exception:
            continue
    repos = {ref.canonical_name: ref for ref in refs}
    counts = [0, 0, 0, 0]
    for ref in repos.values():
        counts[shard_of(ref, 4) - 1] += 1
    assert sum(counts) == len(repos)
    assert min(counts) > len(repos) / 4 * 0.8  # a hash spreads repositories evenly
    # Fixed values: the partition must not change between Python runs or versions (no salted hash()).
    assert shard_of(parse_reference("nginx"), 4) == shard_of(parse_reference("docker.io/library/nginx"), 4)
    assert [
        shard_of(parse_reference(name), 5) for name in ("nginx", "quay.io/calico/node", "ghcr.io/fluxcd/flux-cli")
    ] == [
        shard_of(parse_reference(name), 5)
        for name in ("library/nginx", "quay.io/calico/node:v1", "ghcr.io/fluxcd/flux-cli:v2")
    ]


@given(
    st.lists(st.sampled_from(["nginx", "redis", "quay.io/a/b", "gcr.io/x/y", "ghcr.io/o/p", "busybox"]), min_size=1),
    st.integers(1, 6),
)
def test_shards_cover_each_repository_exactly_once(names: list[str], count: int) -> None:
    for name in names:
        owners = [k for k in range(1, count + 1) if Shard(k, count).owns(parse_reference(name))]
        assert len(owners) == 1


def test_merge_mirrored_keeps_lines_and_repins_moved_tags() -> None:
    existing = "# header\nnginx:1.25@sha256:" + "1" * 64 + "\nredis:7\nsome junk line #\nquay.io/a/b:v1\n"
    updates = [
        parse_reference("docker.io/library/nginx:1.25@sha256:" + "2" * 64),
        parse_reference("busybox:1.36@sha256:" + "3" * 64),
    ]
    merged = merge_mirrored(existing, updates)
    assert merged.splitlines() == sorted(
        [
            "busybox:1.36@sha256:" + "3" * 64,
            "docker.io/library/nginx:1.25@sha256:" + "2" * 64,
            "quay.io/a/b:v1",
            "redis:7",
            "some junk line",
        ]
    )
    assert merge_mirrored(merged, updates) == merged


def test_results_round_trip_and_merge(tmp_path: Path) -> None:
    one = Results(
        "sync",
        Shard(1, 3),
        (parse_reference("nginx:1.25@sha256:" + "1" * 64),),
        rows=(Row("nginx:1.25", "r/dockerhub/nginx:1.25", ("linux/amd64",), 10),),
        notes=("Docker Hub: 90 pulls left",),
    )
    three = Results(
        "sync",
        Shard(3, 3),
        (),
        rows=(Row("redis:7", "r/dockerhub/redis:7", result=FAILED, detail="boom"),),
        failures=(("redis:7", "boom"),),
    )
    write_results(tmp_path / "1.json", one)
    write_results(tmp_path / "3.json", three)
    read = [read_results(tmp_path / "1.json"), read_results(tmp_path / "3.json")]
    assert read == [one, three]
    merged = merge_results(read)
    assert [str(ref) for ref in merged.mirrored] == ["nginx:1.25@sha256:" + "1" * 64]
    assert merged.missing == (Shard(2, 3),)
    assert merged.failures == (("redis:7", "boom"),)
    assert merged.notes == ("shard 1/3: Docker Hub: 90 pulls left",)


def test_bad_results_files_name_themselves(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match=r"missing\.json: results file not found"):
        read_results(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ListFileError, match="not a results file"):
        read_results(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ListFileError, match="not a results file"):
        read_results(tmp_path / "bad.json")


def test_summary_table_escapes_every_cell() -> None:
    from bot.report.summary import render

    rows = [
        Row(
            "docker.io/nginx:1.27",
            "reg/dockerhub/nginx:1.27",
            ("linux/amd64", "linux/arm64"),
            3 * 1024 * 1024,
            "copied",
            "new",
        ),
        Row("evil|<img src=x>[link](http://x)", "-", result=FAILED, detail="bad | tag\n::error::x"),
    ]
    text = render("Sync", rows, ["Docker Hub: 5 pulls left (reserve 10)"])
    lines = text.splitlines()
    assert lines[0] == "## Sync"
    assert "1 copied, 0 unchanged, 1 failed, 3.0 MiB moved." in lines
    assert (
        "| docker.io/nginx:1.27 | reg/dockerhub/nginx:1.27 | linux/amd64, linux/arm64 | 3.0 MiB | - | copied: new |"
        in lines
    )
    evil = next(line for line in lines if line.startswith("| evil"))
    assert evil == (
        r"| evil&#124;&lt;img src=x&gt;\[link\]\(http:&#8203;//x\) | - | - | 0 B | - | "
        r"failed: bad &#124; tag ::error::x |"
    )
    assert evil.count(" | ") == 5  # six cells, no cell break smuggled in
    assert lines[-1] == r"- Docker Hub: 5 pulls left \(reserve 10\)"
