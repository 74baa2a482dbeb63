"""Sharded runs: each shard writes a results file, ``merge-results`` folds them and commits once; the merged
list equals what one unsharded run writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.reference import parse_reference
from bot.shard import shard_of
from tests.harness.github_fake import CommitFake
from tests.harness.images import push_image
from tests.harness.mirror_repo import mirrored_lines, setup_repo
from tests.harness.registry import RegistryFactory, RegistryServer

REPOSITORIES = ["team/a", "team/b", "team/c", "tools/d", "tools/e", "tools/f"]
SHARDS = 3


@pytest.fixture
def upstream(registry_factory: RegistryFactory) -> RegistryServer:
    server = registry_factory()
    for index, name in enumerate(REPOSITORIES):
        push_image(server, name, "1.0", seed=index, platforms=("linux/amd64",))
        push_image(server, name, "1.1", seed=100 + index, platforms=("linux/amd64",))
    return server


def test_merged_shards_equal_an_unsharded_run(
    upstream: RegistryServer,
    registry_factory: RegistryFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owners = {shard_of(parse_reference(f"{upstream.host}/{name}"), SHARDS) for name in REPOSITORIES}
    assert len(owners) > 1, "the test needs repositories on more than one shard"

    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    for root in (whole, sharded):
        root.mkdir()
    target_one, target_two = registry_factory(), registry_factory()

    monkeypatch.chdir(whole)
    setup_repo(whole, upstream.host, target_one.host, REPOSITORIES)
    assert main(["daily"]) == 0

    monkeypatch.chdir(sharded)
    setup_repo(sharded, upstream.host, target_two.host, REPOSITORIES)
    files = []
    for index in range(1, SHARDS + 1):
        results = sharded / "results" / f"shard-{index}.json"
        assert main(["daily", "--shard", f"{index}/{SHARDS}", "--results", str(results)]) == 0
        files.append(str(results))
        assert not (sharded / "mirror" / "mirrored-images.txt").exists()  # shards never write the list
        data = json.loads(results.read_text(encoding="utf-8"))
        assert data["shard"] == f"{index}/{SHARDS}"
        repos = {line.split(":")[1].split("/", 1)[1] for line in data["mirrored"]}
        assert all(shard_of(parse_reference(f"{upstream.host}/{repo}"), SHARDS) == index for repo in repos)

    summary = sharded / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["merge-results", *files]) == 0
    assert len(mirrored_lines(whole)) == 2 * len(REPOSITORIES)
    assert mirrored_lines(sharded) == mirrored_lines(whole)
    assert "12 copied, 0 unchanged, 0 failed" in summary.read_text(encoding="utf-8")


def test_a_missing_shard_fails_the_merge_but_records_the_rest(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    setup_repo(tmp_path, upstream.host, registry.host, REPOSITORIES)
    assert main(["daily", "--shard", "1/2", "--results", "one.json"]) == 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["merge-results", "one.json"]) == 1
    recorded = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))["mirrored"]
    assert mirrored_lines(tmp_path) == recorded
    assert "shard 2/2 sent no results file" in summary.read_text(encoding="utf-8")


def test_merge_results_commits_once(
    upstream: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    commit_github: CommitFake,
) -> None:
    fake = commit_github
    fake.add_repo("octo/mirror", files={"mirror/mirrored-images.txt": b"quay.io/x/y:1\n"})
    monkeypatch.chdir(tmp_path)
    setup_repo(tmp_path, upstream.host, registry.host, REPOSITORIES)
    files = [f"r{index}.json" for index in (1, 2)]
    for index, name in enumerate(files, start=1):
        assert main(["daily", "--shard", f"{index}/2", "--results", name]) == 0
    assert main(["merge-results", "--commit", *files]) == 0
    puts = fake.requests_to("PUT", r"/repos/octo/mirror/contents/mirror/mirrored-images\.txt")
    assert len(puts) == 1
    committed = (fake.file("octo/mirror", "mirror/mirrored-images.txt") or b"").decode().splitlines()
    assert committed == sorted([*mirrored_lines(tmp_path), "quay.io/x/y:1"])
    head = fake.commits[fake.repos["octo/mirror"].branches["main"]]
    assert head.message.startswith("Record 12 mirrored images in mirror/mirrored-images.txt")
    # Merging again changes nothing and commits nothing.
    assert main(["merge-results", "--commit", *files]) == 0
    assert len(fake.requests_to("PUT", r"/repos/octo/mirror/contents/.*")) == 1


def test_sharded_sync_merges_to_the_unsharded_result(
    upstream: RegistryServer, registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    requests = [f"{upstream.host}/{name}:{tag}" for name in REPOSITORIES for tag in ("1.0", "1.1")]
    outputs = []
    for mode in ("whole", "sharded"):
        root = tmp_path / mode
        root.mkdir()
        monkeypatch.chdir(root)
        setup_repo(root, upstream.host, registry_factory().host, [])
        (root / "mirror" / "required-images.txt").write_text("\n".join(requests) + "\n", encoding="utf-8")
        if mode == "whole":
            assert main(["sync"]) == 0
        else:
            files = [f"shard-{index}.json" for index in range(1, SHARDS + 1)]
            for index, name in enumerate(files, start=1):
                assert main(["sync", "--shard", f"{index}/{SHARDS}", "--results", name]) == 0
            assert main(["merge-results", *files]) == 0
        outputs.append(mirrored_lines(root))
    assert len(outputs[0]) == len(requests)
    assert outputs[1] == outputs[0]


def test_bad_shard_options_are_refused_before_any_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["daily", "--shard", "0/3"])
    assert exited.value.code == 2
    assert "--shard: K must be between 1 and N" in capsys.readouterr().err
    assert main(["sync", "--shard", "1/2", "--results", "r.json", "--commit"]) == 2
    assert "commit once with 'merge-results --commit'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_example_workflow_shards_then_records_once() -> None:
    path = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "sync-sharded.yml"
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert workflow["permissions"] == {}
    copy, record = workflow["jobs"]["copy"], workflow["jobs"]["record"]
    assert copy["permissions"] == {"contents": "read", "id-token": "write"}
    assert record["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert record["needs"] == "copy" and "!cancelled()" in record["if"]
    shards = copy["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and len(shards) > 1
    run_copy = next(step for step in copy["steps"] if step.get("uses") == "./")
    assert run_copy["with"]["shard"] == "${{ matrix.shard }}/${{ strategy.job-total }}"
    merge = next(step for step in record["steps"] if step.get("uses") == "./")
    assert merge["with"]["command"] == "merge-results" and merge["with"]["commit"] is True
    for job in (copy, record):
        for step in job["steps"]:
            uses = step.get("uses", "./")
            assert uses == "./" or re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
            assert "${{" not in step.get("run", "")
