"""The test harness itself: registries in every auth mode, the image pusher, the token server, the proxy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from tests.harness import registry as registry_module
from tests.harness.images import (
    ACCEPT_ALL,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    KiB,
    LayerSpec,
    MiB,
    RegistryClient,
    build_layer,
    corrupt_blob,
    get_manifest,
    get_manifest_digest,
    list_blobs,
    list_repositories,
    push_image,
)
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryFactory, RegistryServer


def _fetch(server: RegistryServer, repository: str, reference: str, accept: str) -> requests.Response:
    with RegistryClient(server) as client:
        return client.get_manifest(repository, reference, accept=accept)


@pytest.mark.parametrize("fixture", ["registry", "basic_registry", "bearer_registry", "tls_registry"])
def test_push_index_and_list_in_every_auth_mode(fixture: str, request: pytest.FixtureRequest) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    oci = push_image(server, "library/app", "oci", kind="oci-index", seed=1)
    docker = push_image(server, "library/app", "docker", kind="docker-list", seed=2)

    for image, media_type, child_type in ((oci, OCI_INDEX, OCI_MANIFEST), (docker, DOCKER_LIST, DOCKER_MANIFEST)):
        response = _fetch(server, "library/app", image.tag, ACCEPT_ALL)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == media_type
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == image.digest
        assert response.headers["Docker-Content-Digest"] == image.digest
        assert set(image.platforms) == {"linux/amd64", "linux/arm64"}
        for digest in image.platforms.values():
            child = get_manifest(server, "library/app", digest)
            assert child is not None
            assert child.media_type == child_type
            assert child.digest == digest
    assert oci.digest != docker.digest
    assert (oci.blob_digests | docker.blob_digests) <= list_blobs(server)
    assert list_repositories(server) == {"library/app"}


def test_lists_need_the_accept_header(registry: RegistryServer) -> None:
    oci = push_image(registry, "app", "oci", kind="oci-index")
    docker = push_image(registry, "app", "docker", kind="docker-list")
    arm_only = push_image(registry, "app", "arm", kind="docker-list", platforms=("linux/arm64",))
    # Without the index types in Accept an OCI index is unknown, and a Docker list is swapped for its
    # linux/amd64 child (converted to schema 1 unless schema 2 is accepted), or unknown if it has none.
    assert _fetch(registry, "app", oci.tag, "application/json").status_code == 404
    response = _fetch(registry, "app", docker.tag, DOCKER_MANIFEST)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == docker.platforms["linux/amd64"]
    response = _fetch(registry, "app", docker.tag, "application/json")
    assert response.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    assert _fetch(registry, "app", arm_only.tag, DOCKER_MANIFEST).status_code == 404


def test_single_manifests_and_determinism(registry: RegistryServer) -> None:
    first = push_image(registry, "solo", "a", kind="docker-manifest", platforms=("linux/arm/v7",), seed=5)
    again = push_image(registry, "solo", "b", kind="docker-manifest", platforms=("linux/arm/v7",), seed=5)
    other = push_image(registry, "solo", "c", kind="oci-manifest", seed=6)
    assert first.digest == again.digest
    assert first.platforms == {"linux/arm/v7": first.digest}
    assert other.media_type == OCI_MANIFEST
    assert get_manifest_digest(registry, "solo", "a") == first.digest
    assert get_manifest_digest(registry, "solo", "c") == other.digest
    assert get_manifest_digest(registry, "solo", "missing") is None


def test_base_layers_are_shared_across_images(registry: RegistryServer) -> None:
    base = (LayerSpec(size=64 * KiB, seed=42),)
    one = push_image(registry, "one", "v1", base_layers=base, seed=1)
    two = push_image(registry, "two", "v1", base_layers=base, seed=2)
    shared = one.blob_digests & two.blob_digests
    # One base layer per platform, nothing else (configs and own layers differ by seed).
    assert len(shared) == 2
    assert one.blob_digests != two.blob_digests


def test_bearer_registry_refuses_anonymous_push_and_accepts_a_token(bearer_registry: RegistryServer) -> None:
    token_server = bearer_registry.token_server
    assert token_server is not None
    url = f"{bearer_registry.url}/v2/app/blobs/uploads/"
    assert requests.post(url, timeout=10).status_code == 401

    with RegistryClient(bearer_registry, anonymous=True) as anonymous:
        response = anonymous.request("POST", "/v2/app/blobs/uploads/", repository="app", actions="pull,push")
        assert response.status_code == 401  # the anonymous token holds pull only
        assert anonymous.tokens_fetched >= 1

    token = token_server.issue([("app", ("pull", "push"))])
    response = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 202
    assert "Location" in response.headers

    issued = token_server.tokens_issued
    push_image(bearer_registry, "app", "v1")
    assert token_server.tokens_issued > issued
    assert any(request.username == "user" for request in token_server.requests)


def test_token_server_rejects_wrong_password(bearer_registry: RegistryServer) -> None:
    assert bearer_registry.token_server is not None
    response = requests.get(
        bearer_registry.token_server.realm,
        params={"service": "registry.test", "scope": "repository:app:pull"},
        auth=("user", "wrong"),
        timeout=10,
    )
    assert response.status_code == 401


def test_basic_registry_refuses_wrong_password(basic_registry: RegistryServer) -> None:
    assert requests.get(f"{basic_registry.url}/v2/", timeout=10).status_code == 401
    assert requests.get(f"{basic_registry.url}/v2/", auth=("user", "nope"), timeout=10).status_code == 401
    assert requests.get(f"{basic_registry.url}/v2/", auth=basic_registry.auth, timeout=10).status_code == 200


def test_tls_registry_needs_its_ca(tls_registry: RegistryServer) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.username == "AWS"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_registry.url}/v2/", verify="/etc/ssl/certs/ca-certificates.crt", timeout=10)
    response = requests.get(f"{tls_registry.url}/v2/", auth=tls_registry.auth, verify=tls_registry.verify, timeout=10)
    assert response.status_code == 200


def test_factory_access_log_and_stop(registry_factory: RegistryFactory) -> None:
    server = registry_factory(accesslog=True)
    push_image(server, "logged", "v1", kind="oci-manifest")
    lines = server.access_log_lines()
    assert any('"PUT /v2/logged/manifests/v1 ' in line for line in lines)
    assert not any("registry-harness-readiness" in line for line in lines)
    server.stop()
    assert not server.running()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/v2/", timeout=2)
    server.stop()  # idempotent


@pytest.mark.parametrize("fixture", ["registry", "bearer_registry", "tls_registry"])
def test_proxy_counts_requests_and_bytes(fixture: str, request: pytest.FixtureRequest) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    with CountingProxy(server) as proxy:
        through = proxy.registry
        assert through.url != server.url
        image = push_image(through, "app", "v1", layers=(3 * MiB, 5 * KiB), seed=9)
        # Every blob (configs and layers) crossed the proxy once as an upload.
        assert sorted(proxy.blob_uploads()) == sorted(image.blob_digests)
        assert proxy.request_bytes(method="PUT", path=r"/blobs/uploads/", status=201) == image.blob_bytes
        assert proxy.count(method="PUT", path=r"/manifests/") == 3
        assert proxy.by_method_and_path()[("PUT", "/v2/app/manifests/v1")] == 1

        proxy.reset()
        layer = max(image.blobs, key=lambda blob: blob.size)
        with RegistryClient(through) as client:
            data = client.get_blob("app", layer.digest)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest
        assert proxy.blob_downloads() == [layer.digest]
        assert proxy.response_bytes(method="GET", path=r"/blobs/", status=200) == layer.size
        assert get_manifest_digest(through, "app", "v1") == image.digest
    # Storage is shared with the real registry.
    assert image.blob_digests <= list_blobs(through)


def test_proxy_streams_a_large_blob(registry: RegistryServer) -> None:
    layer = build_layer("large-proxy-test", 40 * MiB)
    assert layer.path is not None  # built on disk, not in memory
    with CountingProxy(registry) as proxy, RegistryClient(proxy.registry) as client:
        assert client.push_blob("big", layer)
        response = client.request("GET", f"/v2/big/blobs/{layer.digest}", repository="big", stream=True)
        digest = hashlib.sha256()
        for chunk in response.iter_content(1024 * 1024):
            digest.update(chunk)
        assert "sha256:" + digest.hexdigest() == layer.digest
        assert proxy.request_bytes(method="PUT") == layer.size
        assert proxy.response_bytes(method="GET", path=layer.digest) == layer.size


def test_proxy_injects_faults(registry: RegistryServer) -> None:
    image = push_image(registry, "app", "v1", layers=(256 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    blob_url = f"/v2/app/blobs/{layer.digest}"
    with CountingProxy(registry) as proxy:
        url = proxy.url + blob_url
        rule = FaultRule(Fault.respond(503, retry_after=2), method="GET", path=r"/blobs/", times=1)
        proxy.fault = rule
        with requests.Session() as session:
            first = session.get(url, timeout=10)
            assert first.status_code == 503
            assert first.headers["Retry-After"] == "2"
            second = session.get(url, timeout=10)  # same keep-alive connection still works
            assert second.status_code == 200
            assert len(second.content) == layer.size
        assert rule.hits == 1
        assert [record.status for record in proxy.records] == [503, 200]
        assert proxy.records[0].fault == "status 503"

        proxy.fault = FaultRule(Fault.reset_connection())
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=10)

        proxy.fault = FaultRule(Fault.truncate(1000))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, timeout=10)
        assert proxy.records[-1].response_bytes == 1000

        proxy.fault = None
        assert requests.get(url, timeout=10).content == registry_blob(registry, layer.digest)


def registry_blob(server: RegistryServer, digest: str) -> bytes:
    with RegistryClient(server) as client:
        return client.get_blob("app", digest)


def test_a_port_taken_by_another_registry_is_not_mistaken_for_ours(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([registry.port])
    real_free_port = registry_module.free_port
    monkeypatch.setattr(registry_module, "free_port", lambda: next(ports, None) or real_free_port())
    server = registry_module.start_registry(tmp_path / "second")
    try:
        assert server.port != registry.port
        push_image(server, "only-here", "v1", kind="oci-manifest")
        assert list_repositories(server) == {"only-here"}
        assert list_repositories(registry) == set()
    finally:
        server.stop()


def test_attestation_manifests_in_an_oci_index(registry: RegistryServer) -> None:
    image = push_image(registry, "att", "v1", attestations=True)
    index = get_manifest(registry, "att", "v1")
    assert index is not None
    entries = index.json()["manifests"]
    assert len(entries) == 4
    attestations = [entry for entry in entries if entry["platform"]["os"] == "unknown"]
    assert {entry["annotations"]["vnd.docker.reference.digest"] for entry in attestations} == set(
        image.platforms.values()
    )
    assert set(image.children) == {entry["digest"] for entry in entries}
    for digest in image.children:
        assert get_manifest_digest(registry, "att", digest) == digest


def test_token_server_grants(bearer_registry: RegistryServer) -> None:
    token_server = bearer_registry.token_server
    assert token_server is not None
    scope = "repository:team/app:pull,push"
    params = {"service": token_server.service, "scope": scope}
    anonymous = requests.get(token_server.realm, params=params, timeout=10)
    named = requests.get(token_server.realm, params=params, auth=("user", "pass"), timeout=10)
    form = requests.post(
        token_server.realm,
        data={"grant_type": "password", "username": "user", "password": "pass", **params},
        timeout=10,
    )
    for response in (anonymous, named, form):
        assert response.status_code == 200
        body = response.json()
        assert body["token"] == body["access_token"]
        assert body["expires_in"] == 300
    granted = [request.granted for request in token_server.requests[-3:]]
    pull_only = (("team/app", ("pull",)),)
    pull_push = (("team/app", ("pull", "push")),)
    assert granted == [pull_only, pull_push, pull_push]
    token = form.json()["token"]
    upload = requests.post(
        f"{bearer_registry.url}/v2/team/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert upload.status_code == 202


def test_bearer_registry_without_anonymous_access(registry_factory: RegistryFactory) -> None:
    server = registry_factory(auth="bearer", anonymous="none")
    push_image(server, "private", "v1", kind="oci-manifest")
    with RegistryClient(server, anonymous=True) as anonymous:
        assert anonymous.get_manifest("private", "v1").status_code == 401
    with RegistryClient(server) as named:
        assert named.get_manifest("private", "v1").status_code == 200


def test_corrupted_content_keeps_its_length(registry: RegistryServer) -> None:
    image = push_image(registry, "app", "v1", kind="oci-manifest", layers=(100 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    original = registry_blob(registry, layer.digest)
    with CountingProxy(registry) as proxy:
        proxy.fault = FaultRule(Fault.corrupt(at=70_000), path=layer.digest)
        changed = requests.get(proxy.url + f"/v2/app/blobs/{layer.digest}", timeout=10).content
        assert len(changed) == len(original)
        assert [i for i, (a, b) in enumerate(zip(changed, original, strict=True)) if a != b] == [70_000]
        assert proxy.records[-1].fault == "corrupt byte 70000"

    corrupt_blob(registry, layer.digest)
    stored = registry_blob(registry, layer.digest)
    assert len(stored) == layer.size
    assert "sha256:" + hashlib.sha256(stored).hexdigest() != layer.digest
