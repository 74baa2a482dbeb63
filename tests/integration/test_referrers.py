"""Signatures, attestations, SBOMs and Helm charts travel with their image, digest-exact.

Against the reference registry (distribution 2.8, no referrers API: the fallback tag schema is exercised on
both sides), and against the same registry behind a stand-in that adds the referrers API
(tests/harness/referrers_api.py). What arrived is looked up at the target the way ``cosign tree`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from bot.registry.auth import Credentials
from bot.registry.client import RegistryClient
from bot.registry.copy import Copier, ImageLocation
from bot.registry.models import Platform
from bot.registry.referrers import ReferrerPolicy, Referrers
from bot.registry.transport import Transport, TransportSettings
from tests.harness.artifacts import (
    DSSE,
    IN_TOTO,
    SIGSTORE_BUNDLE,
    SPDX,
    Pushed,
    descriptor_of,
    fallback_tag,
    push_cosign_tag,
    push_helm_chart,
    push_referrer,
    sign,
    tree,
)
from tests.harness.images import RegistryClient as HarnessClient
from tests.harness.images import corrupt_blob, get_manifest_digest, push_image
from tests.harness.proxy import CountingProxy
from tests.harness.referrers_api import ReferrersApi
from tests.harness.registry import RegistryServer

REPO = "team/app"
MIRROR = "mirror/app"


def bot_client(*servers: RegistryServer) -> RegistryClient:
    credentials = Credentials()
    for server in servers:
        if server.username and server.password:
            credentials.add(server.host, server.username, server.password)
    return RegistryClient(Transport(TransportSettings(backoff=0.01, max_backoff=0.05), credentials))


@dataclass
class Signed:
    """A signed multi-arch image with an SBOM referrer (signed itself), an in-toto attestation (cosign tag and
    referrer), and a signature of one platform manifest."""

    digest: str
    platforms: dict[str, str]
    artifacts: dict[str, Pushed]


def publish_signed(server: RegistryServer, *, fallback: bool = True) -> Signed:
    image = push_image(server, REPO, "1.0", platforms=("linux/amd64", "linux/arm64"), attestations=True)
    with HarnessClient(server) as client:
        subject = descriptor_of(client, REPO, image.digest)
        artifacts = {"signature": sign(client, REPO, image.digest)}
        artifacts["attestation tag"] = push_cosign_tag(
            client, REPO, image.digest, ".att", json.dumps({"payloadType": IN_TOTO, "payload": "e30="}).encode(), DSSE
        )
        sbom = push_referrer(client, REPO, subject, SPDX, b'{"spdxVersion": "SPDX-2.3"}', fallback=fallback)
        artifacts["sbom"] = sbom
        artifacts["sbom signature"] = push_referrer(
            client, REPO, descriptor_of(client, REPO, sbom.digest), SIGSTORE_BUNDLE, b'{"bundle": 1}', fallback=fallback
        )
        artifacts["attestation"] = push_referrer(
            client, REPO, subject, IN_TOTO, b'{"_type": "https://in-toto.io/Statement/v1"}', fallback=fallback
        )
        arm = image.platforms["linux/arm64"]
        artifacts["platform signature"] = sign(client, REPO, arm)
    return Signed(image.digest, image.platforms, artifacts)


def copy_with_referrers(
    src: RegistryServer, dst: RegistryServer, policy: ReferrerPolicy | None = None, tag: str = "1.0"
) -> object:
    carrier = Referrers(policy or ReferrerPolicy())
    try:
        with bot_client(src, dst) as client, Copier(client, attach=carrier.attach) as copier:
            return copier.copy(ImageLocation(src.host, REPO, tag), ImageLocation(dst.host, MIRROR, tag))
    finally:
        carrier.close()


def manifest_digests(found: dict[str, object]) -> set[str]:
    """Every digest of a :func:`tree` answer, at every depth."""
    digests: set[str] = set()
    for digest, info in found.items():
        digests.add(digest)
        assert isinstance(info, dict)
        digests |= manifest_digests(info.get("children", {}))
    return digests


def test_signed_multi_arch_image_arrives_with_everything_attached(
    source: RegistryServer, bearer_registry: RegistryServer
) -> None:
    signed = publish_signed(source)
    result = copy_with_referrers(source, bearer_registry)
    attached = result.attached  # type: ignore[attr-defined]
    assert attached is not None and attached.kind == "image"
    assert not attached.failed
    assert sorted(item.kind for item in attached.arrived) == [
        "SBOM",
        "attestation",
        "attestation",
        "signature",
        "signature",
        "signature",
    ]
    with HarnessClient(source) as upstream, HarnessClient(bearer_registry) as mirror:
        for digest in (signed.digest, *signed.platforms.values()):
            want = tree(upstream, REPO, digest)
            got = tree(mirror, MIRROR, digest)
            # Same artifacts, same digests, found the same way (fallback tag or cosign tag), at every depth.
            assert manifest_digests(got) == manifest_digests(want)
            assert got == want
        top = tree(mirror, MIRROR, signed.digest)
    assert signed.artifacts["signature"].digest in top and top[signed.artifacts["signature"].digest]["via"] == ".sig"
    sbom = top[signed.artifacts["sbom"].digest]
    assert sbom["via"] == "fallback tag" and sbom["artifactType"] == SPDX
    assert signed.artifacts["sbom signature"].digest in sbom["children"]
    for pushed in signed.artifacts.values():
        assert get_manifest_digest(bearer_registry, MIRROR, pushed.tag or pushed.digest) == pushed.digest


def test_a_resync_moves_nothing_and_rewrites_no_index(source: RegistryServer, registry: RegistryServer) -> None:
    publish_signed(source)
    copy_with_referrers(source, registry)
    with CountingProxy(registry) as proxy:
        view = proxy.registry
        result = copy_with_referrers(source, view)
        assert result.skipped  # type: ignore[attr-defined]
        assert proxy.count(method="PUT") == 0
        assert proxy.count(method="POST") == 0
        assert len(result.attached.arrived) == 6  # type: ignore[attr-defined]


def test_artifact_type_filter_and_switch(source: RegistryServer, registry: RegistryServer) -> None:
    signed = publish_signed(source)
    result = copy_with_referrers(source, registry, ReferrerPolicy(artifact_types=("application/spdx*",)))
    kinds = [item.kind for item in result.attached.arrived]  # type: ignore[attr-defined]
    assert kinds == ["SBOM"]
    assert get_manifest_digest(registry, MIRROR, fallback_tag(signed.digest) + ".sig") is None
    result = copy_with_referrers(source, registry, ReferrerPolicy(copy=False), tag="1.0")
    assert result.attached is not None and not result.attached.items  # type: ignore[attr-defined]


def test_helm_chart_is_labelled_and_copied(source: RegistryServer, registry: RegistryServer) -> None:
    with HarnessClient(source) as client:
        chart = push_helm_chart(client, REPO, "0.1.0")
        signature = sign(client, REPO, chart.digest)
    result = copy_with_referrers(source, registry, tag="0.1.0")
    assert result.attached.kind == "Helm chart"  # type: ignore[attr-defined]
    assert result.attached.describe() == "1 signature"  # type: ignore[attr-defined]
    assert get_manifest_digest(registry, MIRROR, "0.1.0") == chart.digest
    assert get_manifest_digest(registry, MIRROR, signature.tag or "") == signature.digest


def test_required_signature_fails_an_unsigned_image(source: RegistryServer, registry: RegistryServer) -> None:
    push_image(source, REPO, "1.0")
    with pytest.raises(Exception, match=r"a signature is required \(require_signature: 127\.0\.0\.1:\*"):
        copy_with_referrers(source, registry, ReferrerPolicy(require_signature=("127.0.0.1:*",)))


@pytest.fixture
def api_target(registry: RegistryServer) -> Iterator[ReferrersApi]:
    with ReferrersApi(registry) as stand_in:
        yield stand_in


def test_target_with_referrers_api_indexes_pushed_referrers_itself(
    source: RegistryServer, registry: RegistryServer, api_target: ReferrersApi
) -> None:
    signed = publish_signed(source)
    result = copy_with_referrers(source, api_target.registry)
    assert not result.attached.failed  # type: ignore[attr-defined]
    # No fallback tag was written: the target answered every push of a referrer with OCI-Subject.
    assert get_manifest_digest(registry, MIRROR, fallback_tag(signed.digest)) is None
    with HarnessClient(api_target.registry) as mirror, HarnessClient(source) as upstream:
        got = tree(mirror, MIRROR, signed.digest)
        want = tree(upstream, REPO, signed.digest)
    assert manifest_digests(got) == manifest_digests(want)
    assert got[signed.artifacts["sbom"].digest]["via"] == "referrers API"


def test_source_with_referrers_api_is_asked_through_it(registry_factory: object, registry: RegistryServer) -> None:
    upstream = registry_factory()  # type: ignore[operator]
    with ReferrersApi(upstream) as api_source:
        signed = publish_signed(api_source.registry, fallback=False)
        result = copy_with_referrers(api_source.registry, registry)
        assert api_source.listings > 0
    assert not result.attached.failed  # type: ignore[attr-defined]
    with HarnessClient(registry) as mirror:
        got = tree(mirror, MIRROR, signed.digest)
    assert signed.artifacts["sbom"].digest in got
    assert got[signed.artifacts["sbom"].digest]["via"] == "fallback tag"
    assert signed.artifacts["sbom signature"].digest in got[signed.artifacts["sbom"].digest]["children"]


def test_a_referrer_that_fails_is_reported_and_the_image_still_arrives(
    source: RegistryServer, registry: RegistryServer
) -> None:
    signed = publish_signed(source)
    with HarnessClient(source) as client:
        sbom = json.loads(client.get_manifest(REPO, signed.artifacts["sbom"].digest).content)
    corrupt_blob(source, sbom["layers"][0]["digest"])  # the SBOM's content no longer matches its digest
    result = copy_with_referrers(source, registry)
    assert get_manifest_digest(registry, MIRROR, "1.0") == signed.digest
    attached = result.attached  # type: ignore[attr-defined]
    (failed,) = attached.failed
    assert failed.digest == signed.artifacts["sbom"].digest and failed.kind == "SBOM"
    assert "1 failed (" in attached.describe() and signed.artifacts["sbom"].digest in attached.describe()
    assert get_manifest_digest(registry, MIRROR, signed.artifacts["sbom"].digest) is None
    # The signatures still arrived; the SBOM is not listed at the target, so nothing points at a missing manifest.
    assert get_manifest_digest(registry, MIRROR, fallback_tag(signed.digest) + ".sig") is not None
    with HarnessClient(registry) as mirror:
        assert signed.artifacts["sbom"].digest not in tree(mirror, MIRROR, signed.digest)


def test_sync_and_daily_show_what_came_with_each_image(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    signed = publish_signed(source)
    with HarnessClient(source) as client:
        chart = push_helm_chart(client, "team/chart", "0.1.0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    outputs = tmp_path / "outputs.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    config = tmp_path / "config.yml"
    config.write_text(
        json.dumps({"target": {"registry": registry.host}, "rules": [{"source": source.host, "target": "up"}]})
    )
    listing = tmp_path / "required-images.txt"
    listing.write_text(f"{source.host}/{REPO}:1.0\n{source.host}/team/chart:0.1.0\n")
    mirrored = tmp_path / "mirrored-images.txt"
    argv = ["sync", "--config", str(config), "--list", str(listing), "--mirrored", str(mirrored)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"({signed.digest}); attached: 3 signatures, 2 attestations, 1 SBOM" in out
    assert f"({chart.digest}); Helm chart" in out
    table = summary.read_text()
    assert "| 3 signatures, 2 attestations, 1 SBOM | copied" in table
    assert "| Helm chart | " in table
    match = re.search(r"^result<<(\S+)\n(.*?)\n\1$", outputs.read_text(), re.MULTILINE | re.DOTALL)
    assert match is not None
    result = json.loads(match.group(2))
    assert result["ok"] is True and result["images"] == 2 and result["with_attached"] == 1
    rows = {row["image"]: row for row in result["rows"]}
    assert rows[f"{source.host}/{REPO}:1.0"]["attached"] == "3 signatures, 2 attestations, 1 SBOM"
    assert rows[f"{source.host}/team/chart:0.1.0"]["kind"] == "Helm chart"
    # One line per image: the signatures and SBOMs are not requests of their own.
    assert mirrored.read_text().splitlines() == [
        f"{source.host}/team/app:1.0@{signed.digest}",
        f"{source.host}/team/chart:0.1.0@{chart.digest}",
    ]
    assert get_manifest_digest(registry, "up/team/app", fallback_tag(signed.digest) + ".sig") is not None

    # --no-referrers: the image only (checked at the target with --all, nothing else looked at).
    assert main([*argv, "--all", "--no-referrers"]) == 0
    assert "attached" not in capsys.readouterr().out

    # daily: the cosign and referrer tags upstream are no releases; the one release arrives with its artifacts.
    (tmp_path / "daily.txt").write_text(f"{source.host}/{REPO}\n")
    mirrored.write_text("")
    with HarnessClient(source) as client:
        tags = client.list_tags(REPO)
    assert any(tag.endswith(".sig") for tag in tags) and fallback_tag(signed.digest) in tags
    daily = ["daily", "--config", str(config), "--list", str(tmp_path / "daily.txt"), "--mirrored", str(mirrored)]
    assert main(daily) == 0
    out = capsys.readouterr().out
    assert f"{source.host}/{REPO}: {len(tags)} tags upstream, 1 selected, 1 new or moved" in out
    assert mirrored.read_text().splitlines() == [f"{source.host}/team/app:1.0@{signed.digest}"]


def test_one_platform_copied_brings_that_platforms_signature(source: RegistryServer, registry: RegistryServer) -> None:
    signed = publish_signed(source)
    carrier = Referrers(ReferrerPolicy())
    try:
        with bot_client(source, registry) as client, Copier(client, attach=carrier.attach) as copier:
            result = copier.copy(
                ImageLocation(source.host, REPO, "1.0"),
                ImageLocation(registry.host, MIRROR, "arm"),
                (Platform.parse("linux/arm64"),),
            )
    finally:
        carrier.close()
    arm = signed.platforms["linux/arm64"]
    assert result.target_digest == arm
    assert result.attached is not None and result.attached.describe() == "1 signature"
    assert (
        get_manifest_digest(registry, MIRROR, fallback_tag(arm) + ".sig")
        == signed.artifacts["platform signature"].digest
    )
    # The index's own signature names a digest the filtered copy does not have: it stays behind.
    assert get_manifest_digest(registry, MIRROR, fallback_tag(signed.digest) + ".sig") is None
