"""``python -m bot daily`` against a local upstream registry: new tags, pre-releases skipped, moved tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import DailyConfig
from bot.daily import TagFilter, plan_repository
from bot.reference import parse_reference
from bot.registry.client import RegistryClient
from tests.harness.fault_proxy import FaultProxy
from tests.harness.github_fake import CommitFake
from tests.harness.images import get_manifest_digest, list_tags, push_image
from tests.harness.mirror_repo import mirrored_lines, setup_repo
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryFactory, RegistryServer

TAGS = ("1.0", "1.1", "2.0-beta.1", "2.0-rc1", "latest")


@pytest.fixture
def upstream(registry_factory: RegistryFactory) -> RegistryServer:
    server = registry_factory(accesslog=True)
    for seed, tag in enumerate(TAGS):
        push_image(server, "team/app", tag, seed=seed)
    return server


def test_daily_copies_new_tags_skips_pre_releases_and_follows_moved_tags(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    setup_repo(tmp_path, upstream.host, registry.host, ["team/app"])

    assert main(["daily"]) == 0
    expected = {tag: get_manifest_digest(upstream, "team/app", tag) for tag in ("1.0", "1.1", "latest")}
    assert list_tags(registry, "up/team/app") == ["1.0", "1.1", "latest"]
    assert {tag: get_manifest_digest(registry, "up/team/app", tag) for tag in expected} == expected
    assert mirrored_lines(tmp_path) == sorted(f"{upstream.host}/team/app:{tag}@{expected[tag]}" for tag in expected)
    table = summary.read_text(encoding="utf-8")
    assert "| image | target | platforms | bytes moved | attached | result |" in table
    assert f"{upstream.host}/team/app:1.0 | {registry.host}/up/team/app:1.0 | linux/amd64, linux/arm64 |" in table
    assert "copied: new" in table

    # A no-op run: only the tag list and one HEAD per selected tag reach the upstream.
    before = len(upstream.access_log_lines())
    summary.write_text("")
    assert main(["daily"]) == 0
    requests = upstream.access_log_lines()[before:]
    methods = sorted(line.split('"')[1].split()[0] + " " + _kind(line) for line in requests)
    assert methods == ["GET ping", "GET tags", "HEAD manifest", "HEAD manifest", "HEAD manifest"]
    assert "0 copied, 0 unchanged, 0 failed" in summary.read_text(encoding="utf-8")
    assert mirrored_lines(tmp_path) == sorted(f"{upstream.host}/team/app:{tag}@{expected[tag]}" for tag in expected)

    # latest moves upstream; 1.1 is rebuilt identically (same digest): only latest is copied again.
    moved = push_image(upstream, "team/app", "latest", seed=42)
    push_image(upstream, "team/app", "1.1", seed=1)
    assert moved.digest != expected["latest"]
    summary.write_text("")
    assert main(["daily"]) == 0
    assert get_manifest_digest(registry, "up/team/app", "latest") == moved.digest
    expected["latest"] = moved.digest
    assert mirrored_lines(tmp_path) == sorted(f"{upstream.host}/team/app:{tag}@{expected[tag]}" for tag in expected)
    table = summary.read_text(encoding="utf-8")
    assert "1 copied, 0 unchanged, 0 failed" in table
    assert "copied: moved" in table


def _kind(line: str) -> str:
    path = line.split('"')[1].split()[1]
    if path == "/v2/":
        return "ping"
    if "/tags/list" in path:
        return "tags"
    return "manifest" if "/manifests/" in path else "blob"


def test_daily_filters_from_config_and_keeps_entries_of_other_images(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    setup_repo(tmp_path, upstream.host, registry.host, ["team/app"], exclude=["^latest$"], semver=">=1.1")
    other = "quay.io/other/image:v1@sha256:" + "e" * 64
    (tmp_path / "mirror" / "mirrored-images.txt").write_text(other + "\n", encoding="utf-8")
    assert main(["daily"]) == 0
    assert list_tags(registry, "up/team/app") == ["1.1"]
    digest = get_manifest_digest(upstream, "team/app", "1.1")
    assert mirrored_lines(tmp_path) == [f"{upstream.host}/team/app:1.1@{digest}", other]


def test_a_failing_repository_is_reported_and_the_others_still_recorded(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    setup_repo(tmp_path, upstream.host, registry.host, ["team/app", "team/missing"], newest=1)
    assert main(["daily"]) == 1
    digest = get_manifest_digest(upstream, "team/app", "1.1")
    latest = get_manifest_digest(upstream, "team/app", "latest")
    assert mirrored_lines(tmp_path) == [
        f"{upstream.host}/team/app:1.1@{digest}",
        f"{upstream.host}/team/app:latest@{latest}",
    ]
    table = summary.read_text(encoding="utf-8")
    assert f"{upstream.host}/team/missing | - | - | 0 B | - | failed: " in table


def test_the_pull_limit_stops_cleanly_and_says_so(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream announces 11 pulls left (as Docker Hub does in ratelimit-remaining); 10 are kept back.
    headers = {
        "ratelimit-limit": "100;w=21600",
        "ratelimit-remaining": "11;w=21600",
        "Content-Type": "application/json",
    }
    with CountingProxy(upstream) as proxy:
        proxy.fault = FaultRule(Fault.respond(200, body=b"{}", headers=headers), method="GET", path=r"^/v2/$")
        monkeypatch.chdir(tmp_path)
        summary = tmp_path / "summary.md"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        setup_repo(tmp_path, proxy.host, registry.host, ["team/app"])
        assert main(["daily", "--reserve", "10"]) == 0
        assert proxy.count(method="GET", path=r"/manifests/") == 0  # no pull spent
    assert mirrored_lines(tmp_path) == []
    text = summary.read_text(encoding="utf-8")
    assert "stopped before exhausting the pull limit" in text
    assert "11 pulls left" in text
    assert "3 tags deferred to the next run" in text


def test_tag_listing_follows_pagination(upstream: RegistryServer) -> None:
    # Docker Hub and GCR answer tag lists in pages linked with Link: rel="next"; distribution 2.8 does not,
    # so a paginating proxy stands in front of it.
    proxy = FaultProxy(upstream.url, tag_page_size=2).start()
    try:
        with RegistryClient() as client:
            plan = plan_repository(
                parse_reference(f"{proxy.host}/team/app"), [], client, TagFilter.from_config(DailyConfig())
            )
    finally:
        proxy.stop()
    assert plan.tags == 5
    assert plan.selected == ("1.0", "1.1", "latest")
    assert [tag.reason for tag in plan.copy] == ["new", "new", "new"]
    assert len([seen for seen in proxy.seen if "/tags/list" in seen.path]) == 3  # 2 + 2 + 1 tags


def test_a_repository_no_rule_allows_is_refused_without_a_request(
    upstream: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    setup_repo(tmp_path, upstream.host, registry.host, ["team/app"])
    daily_list = tmp_path / "mirror" / "required-images-daily.txt"
    daily_list.write_text(daily_list.read_text(encoding="utf-8") + "127.0.0.2:1/evil/app\n", encoding="utf-8")
    assert main(["daily"]) == 1
    assert len(mirrored_lines(tmp_path)) == 3  # team/app is still recorded
    assert "registry 127.0.0.2:1 is not allowed" in summary.read_text(encoding="utf-8")


def test_a_no_op_run_on_a_token_registry_costs_few_requests_per_repository(
    registry_factory: RegistryFactory, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = registry_factory(auth="bearer", accesslog=True)
    names = ["team/one", "team/two"]
    for seed, name in enumerate(names):
        for tag in ("1.0", "1.1", "2.0-rc1"):
            push_image(upstream, name, tag, seed=seed * 10 + len(tag), platforms=("linux/amd64",))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    setup_repo(tmp_path, upstream.host, registry.host, names)
    assert main(["daily"]) == 0
    assert len(mirrored_lines(tmp_path)) == 4
    tokens = upstream.token_server
    assert tokens is not None
    before_log, before_tokens = len(upstream.access_log_lines()), len(tokens.requests)
    assert main(["daily"]) == 0
    requests = upstream.access_log_lines()[before_log:]
    kinds = sorted(line.split('"')[1].split()[0] + " " + _kind(line) for line in requests)
    # Per run: one GET /v2/ (the auth challenge). Per repository: one token, one tag-list page and one HEAD
    # per selected tag; nothing is pulled and the target is not contacted.
    assert kinds == ["GET ping", "GET tags", "GET tags", *["HEAD manifest"] * 4]
    assert [request.scopes for request in tokens.requests[before_tokens:]] == [
        ("repository:team/one:pull",),
        ("repository:team/two:pull",),
    ]


def test_daily_commits_the_updated_list(
    upstream: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    commit_github: CommitFake,
) -> None:
    fake = commit_github
    fake.add_repo("octo/mirror", files={"mirror/mirrored-images.txt": b""})
    monkeypatch.chdir(tmp_path)
    setup_repo(tmp_path, upstream.host, registry.host, ["team/app"])
    assert main(["daily", "--commit"]) == 0
    committed = (fake.file("octo/mirror", "mirror/mirrored-images.txt") or b"").decode().splitlines()
    assert committed == mirrored_lines(tmp_path)
    assert len(committed) == 3
    message = fake.commits[fake.repos["octo/mirror"].branches["main"]].message
    assert message.startswith("Record 3 mirrored images in mirror/mirrored-images.txt")
    assert message.endswith("[skip ci]")
