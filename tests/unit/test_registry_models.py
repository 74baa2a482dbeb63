"""Pure tests of registry data: platforms, manifest parsing, platform selection."""

from __future__ import annotations

import json

import pytest

from bot.errors import RegistryError
from bot.registry.models import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    Platform,
    filtered_index,
    select_children,
    sha256_digest,
)


def _index(media_type: str = OCI_INDEX) -> bytes:
    def child(n: int, os_name: str, arch: str, variant: str | None = None) -> dict[str, object]:
        platform: dict[str, str] = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant
        return {"mediaType": OCI_MANIFEST, "digest": "sha256:" + f"{n}" * 64, "size": 100 + n, "platform": platform}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                child(1, "linux", "amd64"),
                child(2, "linux", "arm64", "v8"),
                child(3, "linux", "arm", "v7"),
                child(4, "unknown", "unknown"),
            ],
        }
    ).encode()


def test_platform_parse_and_format() -> None:
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    for bad in ("linux", "linux/", "a/b/c/d", ""):
        with pytest.raises(ValueError, match="os/architecture"):
            Platform.parse(bad)


def test_platform_matching_rules() -> None:
    assert Platform("linux", "arm", "v7").matches(Platform("linux", "arm"))
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))
    # arm64 manifests often omit their only variant
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform("linux", "amd64").matches(Platform("windows", "amd64"))


def test_manifest_keeps_bytes_and_digest() -> None:
    body = _index()
    manifest = Manifest.parse(body, None, "x")
    assert manifest.body is body
    assert manifest.digest == sha256_digest(body)
    assert manifest.is_index
    assert [c.size for c in manifest.children()] == [101, 102, 103, 104]
    assert manifest.children()[1].platform == Platform("linux", "arm64", "v8")


def test_media_type_from_header_when_body_has_none() -> None:
    body = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64, "size": 1}, "layers": []})
    manifest = Manifest.parse(body.encode(), DOCKER_MANIFEST + "; charset=utf-8", "x")
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.config is not None and manifest.config.size == 1
    assert list(manifest.blobs()) == [manifest.config]


def test_schema1_is_rejected_with_a_clear_message() -> None:
    body = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(RegistryError, match=r"schema 1.*newer tag"):
        Manifest.parse(body, DOCKER_SCHEMA1_SIGNED, "example/old:1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), "unsupported manifest media type"),
    ],
)
def test_bad_manifests(body: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Manifest.parse(body, None, "x")


def test_bad_descriptor_size() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:1", "size": -1}]})
    with pytest.raises(RegistryError, match="no valid size"):
        Manifest.parse(body.encode(), None, "x").children()


def test_select_children_all_and_filtered() -> None:
    index = Manifest.parse(_index(DOCKER_LIST), None, "x")
    assert len(select_children(index, None)) == 4  # attestations too: the index must stay digest-exact
    chosen = select_children(index, (Platform.parse("linux/arm64"), Platform.parse("linux/arm/v7")))
    assert [str(c.platform) for c in chosen] == ["linux/arm64/v8", "linux/arm/v7"]
    assert select_children(index, (Platform.parse("unknown/unknown"),)) == ()


def test_filtered_index_keeps_only_the_chosen_children() -> None:
    index = Manifest.parse(_index(), None, "x")
    keep = select_children(index, (Platform.parse("linux/amd64"),))
    filtered = Manifest.parse(filtered_index(index, keep), OCI_INDEX, "y")
    assert filtered.media_type == OCI_INDEX
    assert [c.digest for c in filtered.children()] == [keep[0].digest]


@pytest.mark.parametrize("digest", ["sha256:../../../other/manifests/latest", "sha256:abc", "SHA256:" + "a" * 64, ""])
def test_a_descriptor_digest_must_be_a_digest(digest: str) -> None:
    # Digests from an upstream manifest end up in request paths at the target: they must be digests.
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 2},
            "layers": [],
        }
    ).encode()
    manifest = Manifest.parse(body, None, "example/app:1")
    with pytest.raises(RegistryError, match="not a valid digest"):
        list(manifest.blobs())
