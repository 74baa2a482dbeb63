"""The copy engine against real registries, observed through counting proxies.

Asserts digests at the target, which blobs crossed the network (each at most once per run), mounts, the
HEAD-only skip of an image already mirrored, retries of a broken stream, and resume after a killed copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import BotError, CopyError
from bot.registry.auth import Credentials
from bot.registry.client import RegistryClient
from bot.registry.copy import Copier, ImageLocation, copy_image, inspect
from bot.registry.models import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Platform
from bot.registry.transport import Transport, TransportSettings
from tests.harness.images import (
    Kind,
    LayerSpec,
    get_manifest,
    get_manifest_digest,
    list_blobs,
    push_image,
)
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(bearer_registry: RegistryServer) -> RegistryServer:
    """The target needs credentials to push (Bearer, like a private registry); ``source`` is anonymous."""
    return bearer_registry


@pytest.fixture
def src_proxy(source: RegistryServer) -> Iterator[CountingProxy]:
    with CountingProxy(source) as proxy:
        yield proxy


@pytest.fixture
def dst_proxy(target: RegistryServer) -> Iterator[CountingProxy]:
    with CountingProxy(target) as proxy:
        yield proxy


def client_for(*servers: RegistryServer | CountingProxy) -> RegistryClient:
    credentials = Credentials()
    for server in servers:
        view = server.registry if isinstance(server, CountingProxy) else server
        if view.username and view.password:
            credentials.add(view.host, view.username, view.password)
    return RegistryClient(Transport(TransportSettings(backoff=0.01, max_backoff=0.05), credentials))


def loc(server: RegistryServer | CountingProxy, repository: str, tag: str | None = None) -> ImageLocation:
    return ImageLocation(server.host, repository, tag)


def test_multi_arch_oci_index_is_copied_digest_exact(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "library/app", "1.0", attestations=True, layers=(50_000, 20_000))
    with client_for(src_proxy, dst_proxy) as client:
        result = copy_image(client, loc(src_proxy, "library/app", "1.0"), loc(dst_proxy, "mirror/app", "1.0"))
    assert result.source_digest == result.target_digest == image.digest
    assert target.token_server is not None
    assert target.token_server.tokens_issued == 2  # pull to look, then pull+push, shared by every blob worker
    assert result.media_type == OCI_INDEX
    assert result.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    fetched = get_manifest(target, "mirror/app", "1.0")
    assert fetched is not None and fetched.data == image.manifest and fetched.media_type == OCI_INDEX
    for digest, body in image.children.items():  # attestation manifests too
        child = get_manifest(target, "mirror/app", digest)
        assert child is not None and child.data == body
    assert image.blob_digests <= list_blobs(target)
    # every blob crossed once: downloaded once from the source, uploaded once to the target
    assert sorted(src_proxy.blob_downloads()) == sorted(image.blob_digests)
    assert sorted(dst_proxy.blob_uploads()) == sorted(image.blob_digests)
    assert result.bytes_moved == image.blob_bytes
    assert (result.blobs_copied, result.blobs_mounted, result.blobs_skipped) == (len(image.blobs), 0, 0)
    assert result.manifests_pushed == len(image.children) + 1
    # the tag is pushed last: after every child manifest
    manifest_puts = [r.path for r in dst_proxy.matching(method="PUT", path="/manifests/")]
    assert manifest_puts[-1].endswith("/manifests/1.0")
    assert all("/manifests/sha256:" in path for path in manifest_puts[:-1])


@pytest.mark.parametrize(
    ("kind", "media_type"),
    [("docker-list", DOCKER_LIST), ("oci-manifest", OCI_MANIFEST), ("docker-manifest", DOCKER_MANIFEST)],
)
def test_other_manifest_kinds_keep_bytes_and_media_type(
    source: RegistryServer, target: RegistryServer, kind: Kind, media_type: str
) -> None:
    image = push_image(source, "team/app", "v2", kind=kind)
    with client_for(source, target) as client:
        result = copy_image(client, loc(source, "team/app", "v2"), loc(target, "m/team/app", "v2"))
    fetched = get_manifest(target, "m/team/app", "v2")
    assert fetched is not None and fetched.data == image.manifest and fetched.media_type == media_type
    assert result.target_digest == image.digest and result.digest_exact
    assert image.blob_digests <= list_blobs(target)


def test_basic_auth_source_to_bearer_target(basic_registry: RegistryServer, target: RegistryServer) -> None:
    image = push_image(basic_registry, "private/app", "v1")
    with client_for(basic_registry, target) as client:
        result = copy_image(client, loc(basic_registry, "private/app", "v1"), loc(target, "m/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "m/app", "v1")


def test_shared_blobs_cross_once_and_are_mounted(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    base = (LayerSpec(size=200_000, seed=42),)
    images = [push_image(source, f"lib/app{n}", "v1", base_layers=base, seed=n) for n in range(4)]
    all_blobs = set().union(*(image.blob_digests for image in images))
    shared = set.intersection(*(set(image.blob_digests) for image in images))
    assert len(shared) == 2  # the base layer of each platform
    pairs = [(loc(src_proxy, f"lib/app{n}", "v1"), loc(dst_proxy, f"mirror/app{n}", "v1")) for n in range(4)]
    with client_for(src_proxy, dst_proxy) as client, Copier(client, concurrency=4) as copier:
        outcomes = copier.copy_many(pairs)
    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    for n, image in enumerate(images):
        assert get_manifest_digest(target, f"mirror/app{n}", "v1") == image.digest
    downloads = Counter(src_proxy.blob_downloads())
    uploads = Counter(dst_proxy.blob_uploads())
    assert set(downloads) == set(uploads) == all_blobs
    assert max(downloads.values()) == max(uploads.values()) == 1  # each distinct blob once per run
    mounts = dst_proxy.matching(method="POST", path="/blobs/uploads/", status=201)
    assert len(mounts) == 3 * len(shared)  # three more repositories got each shared layer by mount
    results = [outcome.result for outcome in outcomes if outcome.result]
    assert sum(r.blobs_mounted for r in results) == 3 * len(shared)
    assert sum(r.bytes_moved for r in results) == sum(
        size for size in {b.digest: b.size for image in images for b in image.blobs}.values()
    )


def test_rerun_skips_with_head_requests_only(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1")
    src, dst = loc(src_proxy, "lib/app", "v1"), loc(dst_proxy, "m/app", "v1")
    with client_for(src_proxy, dst_proxy) as client:
        copy_image(client, src, dst)
    src_proxy.reset()
    dst_proxy.reset()
    tokens = target.token_server
    assert tokens is not None
    issued = tokens.tokens_issued
    with client_for(src_proxy, dst_proxy) as client:  # a new run: nothing cached
        result = copy_image(client, src, dst)
    assert result.skipped and result.target_digest == image.digest and result.bytes_moved == 0
    assert [(r.method, r.path) for r in src_proxy.records] == [("GET", "/v2/"), ("HEAD", "/v2/lib/app/manifests/v1")]
    target_requests = [(r.method, r.path, r.status) for r in dst_proxy.records]
    assert target_requests == [("GET", "/v2/", 401), ("HEAD", "/v2/m/app/manifests/v1", 200)]
    assert tokens.tokens_issued - issued == 1  # a pull token is enough to see it is up to date


def test_partial_target_moves_only_what_is_missing(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", layers=(30_000,))
    amd64 = Platform.parse("linux/amd64")
    with client_for(src_proxy, dst_proxy) as client:
        first = copy_image(client, loc(src_proxy, "lib/app", "v1"), loc(dst_proxy, "m/app", "amd64-only"), (amd64,))
        assert first.target_digest == image.platforms["linux/amd64"]  # one platform: its own manifest
        uploaded_first = set(dst_proxy.blob_uploads())
        dst_proxy.reset()
        second = copy_image(client, loc(src_proxy, "lib/app", "v1"), loc(dst_proxy, "m/app", "v1"))
    assert second.target_digest == image.digest
    assert set(dst_proxy.blob_uploads()).isdisjoint(uploaded_first)
    assert set(dst_proxy.blob_uploads()) | uploaded_first == image.blob_digests
    # the amd64 manifest was found by a HEAD and its blobs were not even asked about
    assert dst_proxy.count(method="PUT", path=image.platforms["linux/amd64"]) == 0


def test_platform_filters(source: RegistryServer, target: RegistryServer) -> None:
    image = push_image(source, "lib/app", "v1", platforms=("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
    with client_for(source, target) as client:
        two = copy_image(
            client,
            loc(source, "lib/app", "v1"),
            loc(target, "m/app", "two"),
            (Platform.parse("linux/arm64"), Platform.parse("linux/arm/v7")),
        )
        with pytest.raises(CopyError, match=r"no platform matches windows/amd64; the image offers linux/amd64"):
            copy_image(
                client, loc(source, "lib/app", "v1"), loc(target, "m/app", "x"), (Platform.parse("windows/amd64"),)
            )
        # one platform whose manifest the target already holds (pushed just above): only the tag is new
        arm = copy_image(
            client, loc(source, "lib/app", "v1"), loc(target, "m/app", "arm"), (Platform.parse("linux/arm64"),)
        )
    assert arm.target_digest == image.platforms["linux/arm64/v8"] == get_manifest_digest(target, "m/app", "arm")
    assert (arm.blobs_copied, arm.bytes_moved) == (0, 0)
    assert not two.digest_exact and two.source_digest == image.digest
    fetched = get_manifest(target, "m/app", "two")
    assert fetched is not None and fetched.digest == two.target_digest
    assert [m["platform"]["architecture"] for m in fetched.json()["manifests"]] == ["arm64", "arm"]
    assert get_manifest(target, "m/app", image.platforms["linux/amd64"]) is None


def test_a_digest_the_copy_cannot_have_is_refused_before_any_blob_moves(
    source: RegistryServer, target: RegistryServer
) -> None:
    # A platform filter changes the digest, so a target named only by the source digest cannot hold it.
    image = push_image(source, "lib/app", "v1")
    pinned = ImageLocation(source.host, "lib/app", None, image.digest)
    with client_for(source, target) as client:
        with pytest.raises(CopyError, match=r"names .*@sha256:.*, but the copy .* has digest sha256:.*--platform"):
            copy_image(
                client,
                pinned,
                ImageLocation(target.host, "m/pin", None, image.digest),
                (Platform.parse("linux/arm64"),),
            )
        # without the filter the digest is kept, so the same target is fine
        result = copy_image(client, pinned, ImageLocation(target.host, "m/pin", None, image.digest))
    assert result.digest_exact and result.blobs_copied == len(image.blobs)


def test_broken_download_is_retried_and_verified(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(300_000,))
    layer = max(image.blobs, key=lambda b: b.size)
    src_proxy.fault = FaultRule(Fault.truncate(100_000), method="GET", path=layer.digest)
    with client_for(src_proxy, target) as client:
        result = copy_image(client, loc(src_proxy, "lib/app", "v1"), loc(target, "m/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "m/app", "v1")
    assert src_proxy.blob_downloads().count(layer.digest) == 2  # the cut stream, then a full one


def test_corrupt_source_blob_is_caught_and_nothing_is_tagged(source: RegistryServer, target: RegistryServer) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(100_000,))
    layer = max(image.blobs, key=lambda b: b.size)
    data = source.blobs_dir / layer.digest[7:9] / layer.digest[7:] / "data"
    data.write_bytes(os.urandom(layer.size))  # same size, wrong content
    with client_for(source, target) as client, pytest.raises(BotError, match="does not match its digest"):
        copy_image(client, loc(source, "lib/app", "v1"), loc(target, "m/app", "v1"))
    assert get_manifest(target, "m/app", "v1") is None
    assert layer.digest not in list_blobs(target)


def test_dry_run_reports_bytes_and_changes_nothing(
    source: RegistryServer, target: RegistryServer, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", layers=(40_000,))
    with client_for(source, dst_proxy) as client:
        result = copy_image(client, loc(source, "lib/app", "v1"), loc(dst_proxy, "m/app", "v1"), dry_run=True)
    assert result.dry_run and not result.skipped
    assert result.bytes_moved == image.blob_bytes and result.blobs_copied == len(image.blobs)
    assert {r.method for r in dst_proxy.records} <= {"GET", "HEAD"}
    assert get_manifest(target, "m/app", "v1") is None


def test_inspect_reports_platforms_and_total_size(source: RegistryServer) -> None:
    index = push_image(source, "lib/app", "v1", attestations=True, layers=(10_000,))
    single = push_image(source, "lib/solo", "v1", kind="docker-manifest", platforms=("linux/arm/v7",))
    with client_for(source) as client:
        info = inspect(client, loc(source, "lib/app", "v1"))
        solo = inspect(client, loc(source, "lib/solo", "v1"))
    assert info.digest == index.digest and info.media_type == OCI_INDEX and info.is_index
    assert [str(p) for p in info.platforms] == ["linux/amd64", "linux/arm64"]
    assert info.total_size == index.blob_bytes and info.blobs == len(index.blobs)
    assert solo.digest == single.digest and [str(p) for p in solo.platforms] == ["linux/arm/v7"]
    assert solo.total_size == single.blob_bytes
    assert "Docker-Content-Digest" in info.headers


def test_missing_source_is_a_clear_error(source: RegistryServer, target: RegistryServer) -> None:
    with client_for(source, target) as client, pytest.raises(CopyError, match="does not exist"):
        copy_image(client, loc(source, "lib/none", "v1"), loc(target, "m/none", "v1"))


@pytest.mark.slow
def test_resume_after_the_copy_is_killed(
    source: RegistryServer, target: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(60_000,) * 8)
    # a slow source, so the copy can be killed half-way
    src_proxy.fault = FaultRule(Fault.slow(0.4), method="GET", path="/blobs/sha256:", times=None)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MIRROR_AUTH_" + dst_proxy.host.replace(".", "_").replace(":", "_") + "_USERNAME": "user",
        "MIRROR_AUTH_" + dst_proxy.host.replace(".", "_").replace(":", "_") + "_PASSWORD": "pass",
        "DOCKER_CONFIG": str(target.workdir / "no-docker-config"),
    }
    command = [
        sys.executable,
        "-m",
        "bot",
        "copy",
        f"{src_proxy.host}/lib/app:v1",
        f"{dst_proxy.host}/m/app:v1",
        "--concurrency",
        "1",
    ]
    process = subprocess.Popen(command, env=env, cwd=target.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(set(dst_proxy.blob_uploads()) & image.blob_digests) < 3:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.communicate(timeout=10)
    done_before = set(dst_proxy.blob_uploads())
    assert 3 <= len(done_before) < len(image.blobs)
    assert get_manifest(target, "m/app", "v1") is None  # no tag points at an incomplete image
    src_proxy.fault = None
    dst_proxy.reset()
    with client_for(src_proxy, dst_proxy) as client:
        result = copy_image(client, loc(src_proxy, "lib/app", "v1"), loc(dst_proxy, "m/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "m/app", "v1")
    assert set(dst_proxy.blob_uploads()) == image.blob_digests - done_before
    assert result.blobs_skipped == len(done_before)


def test_refused_mount_falls_back_to_upload(
    source: RegistryServer, target: RegistryServer, dst_proxy: CountingProxy
) -> None:
    base = (LayerSpec(size=50_000, seed=7),)
    first = push_image(source, "lib/one", "v1", base_layers=base, seed=1)
    second = push_image(source, "lib/two", "v1", base_layers=base, seed=2)
    dst_proxy.fault = lambda request: Fault.respond(202) if "mount=" in request.query else None
    with client_for(source, dst_proxy) as client, Copier(client, concurrency=2) as copier:
        one = copier.copy(loc(source, "lib/one", "v1"), loc(dst_proxy, "m/one", "v1"))
        two = copier.copy(loc(source, "lib/two", "v1"), loc(dst_proxy, "m/two", "v1"))
    assert (one.target_digest, two.target_digest) == (first.digest, second.digest)
    assert two.blobs_mounted == 0 and two.blobs_copied == len(second.blobs)
    assert len(dst_proxy.matching(method="POST", path="/blobs/uploads/", status=202)) > len(second.blobs)
    assert get_manifest_digest(target, "m/two", "v1") == second.digest


def test_copy_to_a_tls_registry_behind_an_endpoint_override(
    source: RegistryServer, tls_registry: RegistryServer
) -> None:
    """The ECR set-up: a registry host name sent to a loopback TLS endpoint, trusted through a CA bundle."""
    image = push_image(source, "lib/app", "v1", kind="docker-list")
    ecr = "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn"
    credentials = Credentials()
    credentials.add(ecr, "AWS", "ecr-test-password")
    settings = TransportSettings(
        endpoints={ecr: tls_registry.url},
        verify=tls_registry.ca_bundle or True,
        allowed_hosts=frozenset({source.host, ecr}),
    )
    with RegistryClient(Transport(settings, credentials)) as client:
        result = copy_image(client, loc(source, "lib/app", "v1"), ImageLocation(ecr, "dockerhub/app", "v1"))
        again = copy_image(client, loc(source, "lib/app", "v1"), ImageLocation(ecr, "dockerhub/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(tls_registry, "dockerhub/app", "v1")
    assert again.skipped


def test_the_same_image_to_many_tags_and_repositories_at_once(source: RegistryServer, target: RegistryServer) -> None:
    """Identical manifests pushed concurrently race in the registry's storage (a reader can see the file
    while another writer rewrites it); the engine pushes each manifest content once at a time."""
    image = push_image(source, "lib/app", "v1", attestations=True)
    pairs = [(loc(source, "lib/app", "v1"), loc(target, f"m/app{n % 3}", f"t{n}")) for n in range(12)]
    with client_for(source, target) as client, Copier(client, concurrency=8) as copier:
        outcomes = copier.copy_many(pairs)
        assert [o.error for o in outcomes] == [None] * len(pairs)
        for _, dst in pairs:
            found = client.head_manifest(dst.host, dst.repository, dst.reference)
            assert found is not None and found.digest == image.digest
