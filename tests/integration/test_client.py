"""Registry operations against the real reference registry: every manifest type, tags with pagination,
blobs (streaming, verification), uploads, mounts and exact-bytes manifest pushes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from bot.errors import RegistryError
from bot.registry.auth import Credentials
from bot.registry.client import RegistryClient
from bot.registry.models import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256_digest
from bot.registry.transport import Transport, TransportSettings
from tests.harness.fault_proxy import FaultProxy
from tests.harness.images import Kind, get_manifest, list_tags, push_image
from tests.harness.registry import RegistryServer


def _client(credentials: Credentials | None = None) -> RegistryClient:
    return RegistryClient(Transport(TransportSettings(), credentials, sleep=lambda _: None))


@pytest.mark.parametrize(
    ("kind", "media_type"),
    [
        ("oci-index", OCI_INDEX),
        ("docker-list", DOCKER_LIST),
        ("oci-manifest", OCI_MANIFEST),
        ("docker-manifest", DOCKER_MANIFEST),
    ],
)
def test_every_manifest_type_heads_and_gets_exactly(registry: RegistryServer, kind: Kind, media_type: str) -> None:
    image = push_image(registry, "lib/app", "v1", kind=kind)
    with _client() as client:
        head = client.head_manifest(registry.host, "lib/app", "v1")
        manifest = client.get_manifest(registry.host, "lib/app", "v1")
        by_digest = client.get_manifest(registry.host, "lib/app", image.digest)
    assert head is not None
    assert (head.digest, head.media_type, head.size) == (image.digest, media_type, len(image.manifest))
    assert manifest.body == image.manifest and by_digest.body == image.manifest
    assert manifest.media_type == media_type
    assert manifest.is_index == (kind in ("oci-index", "docker-list"))
    if manifest.is_index:
        assert {str(c.platform): c.digest for c in manifest.children()} == image.platforms


def test_missing_manifest_is_none_on_head(registry: RegistryServer) -> None:
    push_image(registry, "lib/app", "v1")
    with _client() as client:
        assert client.head_manifest(registry.host, "lib/app", "v2") is None
        assert client.head_manifest(registry.host, "no/such/repo", "v1") is None


def test_tags_are_listed_across_pages(registry: RegistryServer, proxy_for: Callable[..., FaultProxy]) -> None:
    push_image(registry, "lib/app", "v0", kind="oci-manifest")
    proxy = proxy_for(registry, tag_page_size=2)
    with _client() as client:
        manifest = client.get_manifest(registry.host, "lib/app", "v0")
        for n in range(1, 7):
            client.put_manifest(registry.host, "lib/app", f"v{n}", manifest.body, manifest.media_type)
        assert sorted(client.list_tags(registry.host, "lib/app")) == list_tags(registry, "lib/app")
        tags = client.list_tags(proxy.host, "lib/app", page_size=2)
    # 7 tags, 2 per page: the Link header is followed to the end
    assert [s.path.partition("?")[2] for s in proxy.seen if "/tags/" in s.path] == [
        "n=2",
        "n=2&last=v1",
        "n=2&last=v3",
        "n=2&last=v5",
    ]
    assert tags == [f"v{n}" for n in range(7)]


def test_put_manifest_stores_exact_bytes_and_media_type(registry: RegistryServer) -> None:
    image = push_image(registry, "lib/app", "v1", kind="docker-list")
    with _client() as client:
        # blobs, then children by digest, then the list: the registry enforces that order
        for blob in image.blobs:
            result = client.mount_blob(registry.host, "copy/app", blob.digest, "lib/app")
            assert result.mounted
        for digest, body in image.children.items():
            assert client.put_manifest(registry.host, "copy/app", digest, body, DOCKER_MANIFEST) == digest
        assert client.put_manifest(registry.host, "copy/app", "v1", image.manifest, DOCKER_LIST) == image.digest
    fetched = get_manifest(registry, "copy/app", "v1")
    assert fetched is not None and fetched.data == image.manifest and fetched.media_type == DOCKER_LIST


def test_manifest_push_before_children_is_refused_clearly(registry: RegistryServer) -> None:
    image = push_image(registry, "lib/app", "v1")
    with _client() as client, pytest.raises(RegistryError) as caught:
        client.put_manifest(registry.host, "other/app", "v1", image.manifest, OCI_INDEX)
    assert caught.value.status == 400 and caught.value.code == "MANIFEST_BLOB_UNKNOWN"


def test_blob_head_stream_and_upload(registry: RegistryServer) -> None:
    image = push_image(registry, "lib/app", "v1", kind="oci-manifest", layers=(300_000,))
    layer = max(image.blobs, key=lambda b: b.size)
    with _client() as client:
        assert client.head_blob(registry.host, "lib/app", layer.digest) == layer.size
        assert client.head_blob(registry.host, "new/app", layer.digest) is None
        with client.get_blob(registry.host, "lib/app", layer.digest, layer.size) as stream:
            chunks = list(stream)
        data = b"".join(chunks)
        assert sha256_digest(data) == layer.digest
        client.upload_blob(registry.host, "new/app", layer.digest, layer.size, iter(chunks))
        assert client.head_blob(registry.host, "new/app", layer.digest) == layer.size


def test_upload_with_a_wrong_digest_is_refused(registry: RegistryServer) -> None:
    data = b"hello world"
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with _client() as client, pytest.raises(RegistryError) as caught:
        client.upload_blob(registry.host, "new/app", wrong, len(data), iter([data]))
    assert caught.value.code == "DIGEST_INVALID"


def test_download_is_verified_against_the_digest(registry: RegistryServer) -> None:
    image = push_image(registry, "lib/app", "v1", kind="oci-manifest")
    layer = max(image.blobs, key=lambda b: b.size)
    with _client() as client:
        # The size in a descriptor that lies is caught while streaming.
        with (
            client.get_blob(registry.host, "lib/app", layer.digest, layer.size + 1) as stream,
            pytest.raises(RegistryError, match="expected"),
        ):
            b"".join(stream)
        with (
            client.get_blob(registry.host, "lib/app", layer.digest, layer.size - 1) as stream,
            pytest.raises(RegistryError, match="larger than"),
        ):
            b"".join(stream)


def test_mount_refused_falls_back_to_the_opened_upload(registry: RegistryServer) -> None:
    data = json.dumps({"hello": "world"}).encode()
    digest = sha256_digest(data)
    with _client() as client:
        result = client.mount_blob(registry.host, "target/app", digest, "nowhere/app")
        assert not result.mounted and result.upload_url
        client.upload_blob(registry.host, "target/app", digest, len(data), iter([data]), upload_url=result.upload_url)
        assert client.head_blob(registry.host, "target/app", digest) == len(data)
        assert client.mount_blob(registry.host, "second/app", digest, "target/app").mounted


def test_credentialed_push_to_basic_registry(basic_registry: RegistryServer) -> None:
    image = push_image(basic_registry, "lib/app", "v1", kind="oci-manifest")
    credentials = Credentials()
    credentials.add(basic_registry.host, "user", "pass")
    with _client(credentials) as client:
        for blob in image.blobs:
            assert client.mount_blob(basic_registry.host, "copy/app", blob.digest, "lib/app").mounted
        client.put_manifest(basic_registry.host, "copy/app", "v1", image.manifest, OCI_MANIFEST)
        found = client.head_manifest(basic_registry.host, "copy/app", "v1")
    assert found is not None and found.digest == image.digest


def test_relative_upload_locations_are_resolved(registry: RegistryServer, proxy_for: Callable[..., FaultProxy]) -> None:
    proxy = proxy_for(registry, relative_location=True)
    data = b"relative" * 1000
    digest = sha256_digest(data)
    with _client() as client:
        client.upload_blob(proxy.host, "rel/app", digest, len(data), iter([data[:100], data[100:]]))
        assert client.head_blob(registry.host, "rel/app", digest) == len(data)
    put = [s for s in proxy.seen if s.method == "PUT"]
    assert len(put) == 1 and put[0].path.startswith("/v2/rel/app/blobs/uploads/")
    assert put[0].headers["Content-Length"] == str(len(data))  # streamed with a length, not chunked
    assert "Transfer-Encoding" not in put[0].headers


def test_chunked_upload_when_a_registry_refuses_monolithic_puts(
    registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_for(registry, faults=[("PUT", "/blobs/uploads/", 405, {})])
    data = b"chunked" * 5000
    digest = sha256_digest(data)
    with _client() as client:
        with pytest.raises(RegistryError) as caught:
            client.upload_blob(proxy.host, "chunk/app", digest, len(data), iter([data]))
        assert caught.value.temporary  # the copy engine restarts the stream ...
        client.upload_blob(proxy.host, "chunk/app", digest, len(data), iter([data]))  # ... and PATCHes
        assert client.head_blob(registry.host, "chunk/app", digest) == len(data)
    methods = [s.method for s in proxy.seen if "/blobs/uploads/" in s.path]
    assert methods == ["POST", "PUT", "POST", "PATCH", "PUT"]
    patch = next(s for s in proxy.seen if s.method == "PATCH")
    assert patch.headers["Content-Length"] == str(len(data))
