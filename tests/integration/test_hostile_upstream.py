"""Hostile registry answers (tests/data/hostile/upstream.py): names from a server never steer a request.

A registry that a rule allows answers its tag list with path traversals, separators, CR/LF and the like, or
links its next page elsewhere; the bot reports and skips them, and the proxy in front of the registry shows that
not one request was sent with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import RegistryError
from bot.registry.client import RegistryClient
from tests.data.hostile.upstream import HOSTILE_NEXT_LINKS, HOSTILE_TAGS
from tests.harness import figures
from tests.harness.images import get_manifest_digest, list_tags, push_image
from tests.harness.mirror_repo import mirrored_lines, setup_repo
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryServer

# Every path the daily run may send for team/app:1.0; anything else was steered by the hostile answer.
_EXPECTED_PATH = re.compile(
    r"^/v2/(?:|team/app/tags/list|team/app/(?:manifests/(?:1\.0|sha256:[0-9a-f]{64}|sha256-[0-9a-f]{64}(?:\.[a-z]+)?)"
    r"|blobs/sha256:[0-9a-f]{64}|referrers/sha256:[0-9a-f]{64}))$"
)


def _tag_list(tags: list[str], headers: dict[str, str] | None = None) -> FaultRule:
    body = json.dumps({"name": "team/app", "tags": tags}).encode()
    answer = Fault.respond(200, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    return FaultRule(answer, method="GET", path=r"^/v2/team/app/tags/list$", times=None)


def test_daily_skips_tags_outside_the_grammar_and_requests_nothing_with_them(
    source: RegistryServer, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_image(source, "team/app", "1.0", seed=1)
    push_image(source, "victim/app", "latest", seed=2)  # what the traversal tag aims at
    with CountingProxy(source) as proxy:
        proxy.fault = _tag_list(["1.0", *HOSTILE_TAGS])
        monkeypatch.chdir(tmp_path)
        summary = tmp_path / "summary.md"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        setup_repo(tmp_path, proxy.host, registry.host, ["team/app"])
        assert main(["daily"]) == 0
        paths = [record.path for record in proxy.records]
        host = proxy.host
    steered = [path for path in paths if not _EXPECTED_PATH.match(path)]
    assert paths and not steered, steered
    digest = get_manifest_digest(source, "team/app", "1.0")
    assert mirrored_lines(tmp_path) == [f"{host}/team/app:1.0@{digest}"]
    assert list_tags(registry, "up/team/app") == ["1.0"]
    assert list_tags(registry, "victim/app") == []
    assert get_manifest_digest(registry, "victim/app", "latest") is None
    text = summary.read_text(encoding="utf-8")
    assert f"the registry listed {len(HOSTILE_TAGS)} tags that the image reference grammar does not allow" in text
    figures.count("hostile registry answers refused", len(HOSTILE_TAGS))


@pytest.mark.parametrize("link", HOSTILE_NEXT_LINKS)
def test_a_next_page_link_off_the_tag_list_is_refused(source: RegistryServer, link: str) -> None:
    push_image(source, "team/app", "1.0", seed=1)
    with CountingProxy(source) as proxy:
        proxy.fault = _tag_list(["1.0"], {"Link": link})
        with RegistryClient() as client, pytest.raises(RegistryError, match="leaves the repository's tag list"):
            client.list_tags(proxy.host, "team/app")
        assert [record.path for record in proxy.records] == ["/v2/", "/v2/team/app/tags/list"]
    figures.count("hostile registry answers refused")


@pytest.mark.parametrize("tag", HOSTILE_TAGS)
def test_the_client_sends_no_request_for_a_name_outside_the_grammar(source: RegistryServer, tag: str) -> None:
    with CountingProxy(source) as proxy, RegistryClient() as client:
        for call in (
            lambda: client.head_manifest(proxy.host, "team/app", tag),
            lambda: client.get_manifest(proxy.host, "team/app", tag),
            lambda: client.put_manifest(proxy.host, "team/app", tag, b"{}", "application/json"),
            lambda: client.head_blob(proxy.host, "team/app", tag),
            lambda: client.get_blob(proxy.host, "team/app", tag),
        ):
            with pytest.raises(RegistryError, match="nothing was requested"):
                call()
        assert proxy.records == []


@pytest.mark.parametrize("repository", ["../victim", "team/../victim", "team//app", "Team/app", "team/app%2f..", ""])
def test_the_client_sends_no_request_for_a_repository_outside_the_grammar(
    source: RegistryServer, repository: str
) -> None:
    with CountingProxy(source) as proxy, RegistryClient() as client:
        for call in (
            lambda: client.head_manifest(proxy.host, repository, "1.0"),
            lambda: client.list_tags(proxy.host, repository),
            lambda: client.start_upload(proxy.host, repository),
        ):
            with pytest.raises(RegistryError, match="nothing was requested"):
                call()
        assert proxy.records == []
