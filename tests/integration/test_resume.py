"""Broken blob transfers resume instead of starting over, and large blobs download as parallel ranges.

Faults come from the proxies in front of real registries (tests/harness/proxy.py, fault_proxy.py); the bytes
sent again are counted there, and every copy is checked digest-exact at the target.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator

import pytest

from bot.registry.client import RegistryClient
from bot.registry.copy import Copier, CopyResult, ImageLocation
from bot.registry.ranges import SourceReader, new_buffer, range_matches
from bot.registry.transfer import MiB, TransferSettings
from bot.registry.transport import Transport, TransportSettings
from tests.harness.fault_proxy import FaultProxy
from tests.harness.images import KiB, PushedImage, get_manifest_digest, list_blobs, push_image
from tests.harness.proxy import CountingProxy, Fault, FaultRule, ProxyRequest
from tests.harness.registry import RegistryServer

LAYER = 3 * MiB


def client() -> RegistryClient:
    return RegistryClient(Transport(TransportSettings(backoff=0.01, max_backoff=0.05)))


def copy(src_host: str, dst_host: str, settings: TransferSettings | None = None) -> tuple[CopyResult, Copier]:
    with client() as registry, Copier(registry, concurrency=2, transfer=settings) as copier:
        result = copier.copy(ImageLocation(src_host, "lib/app", "v1"), ImageLocation(dst_host, "m/app", "v1"))
    return result, copier


def layer_of(image: PushedImage) -> tuple[str, int]:
    blob = max(image.blobs, key=lambda b: b.size)
    return blob.digest, blob.size


def received(copier: Copier, image: PushedImage) -> int:
    """Layer bytes the source sent in this run (its stats count the config blob too)."""
    return copier.downloads.received - min(b.size for b in image.blobs)


def assert_exact(target: RegistryServer, image: PushedImage) -> None:
    assert get_manifest_digest(target, "m/app", "v1") == image.digest
    assert set(image.blob_digests) <= set(list_blobs(target))


@pytest.fixture
def image(source: RegistryServer) -> PushedImage:
    return push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(LAYER,), seed=14)


@pytest.fixture
def src_proxy(source: RegistryServer, registry: RegistryServer) -> Iterator[CountingProxy]:
    """Counts and faults what the source sends; ``dst_proxy`` does the same for the target, ``registry``."""
    with CountingProxy(source) as proxy:
        yield proxy


@pytest.fixture
def dst_proxy(registry: RegistryServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy(registry).start()
    yield proxy
    proxy.stop()


def test_content_range_must_match_exactly() -> None:
    assert range_matches("bytes 100-199/200", 100, 199, 200)
    assert range_matches("bytes 100-199/*", 100, 199, 200)
    assert not range_matches("bytes 0-199/200", 100, 199, 200)
    assert not range_matches("bytes 100-150/200", 100, 199, 200)
    assert not range_matches("bytes 100-199/300", 100, 199, 200)
    assert not range_matches(None, 100, 199, 200)
    assert not range_matches("items 100-199/200", 100, 199, 200)


def test_a_broken_download_resumes_inside_the_upload(
    image: PushedImage, registry: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    digest, size = layer_of(image)
    # Two resets mid-body: each try delivers 1 MiB, then the connection breaks.
    src_proxy.fault = FaultRule(Fault.reset_mid_body(MiB, within_body=False), method="GET", path=digest, times=2)
    result, copier = copy(src_proxy.host, dst_proxy.host, TransferSettings(parts=1))
    assert result.blobs_copied == 2
    assert_exact(registry, image)
    gets = src_proxy.matching(method="GET", path=f"/blobs/{digest}$")
    assert [g.status for g in gets] == [200, 206, 206]
    # Bytes sent again: none; the layer arrived once in all, across three connections. (The proxy also counts
    # what was in the socket buffers when it reset the connection: lost on the way, never received.)
    assert received(copier, image) == size
    assert size <= src_proxy.response_bytes(method="GET", path=f"/blobs/{digest}$") < size + 2 * MiB
    assert copier.downloads.resumes == 2 and copier.downloads.restarts == 0
    # The upload never noticed: one session, one PUT with the whole layer.
    assert dst_proxy.count(method="POST", path="/blobs/uploads/") == 2  # config and layer
    config = min(b.size for b in image.blobs)
    assert dst_proxy.request_bytes(method="PUT", path="/blobs/uploads/") == size + config


def test_a_source_that_ignores_range_still_copies(
    image: PushedImage, source: RegistryServer, registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    digest, size = layer_of(image)
    front = proxy_for(source, ranges="ignore", cut_blob_after=MiB)
    result, copier = copy(front.host, registry.host, TransferSettings(parts=1))
    assert result.blobs_copied == 2
    assert_exact(registry, image)
    # The range was answered with the whole blob (200): the first MiB came again and was dropped.
    assert copier.downloads.restarts == 1
    assert received(copier, image) == size + MiB
    ranged = [s for s in front.seen if s.method == "GET" and digest in s.path and "Range" in s.headers]
    assert len(ranged) == 1


def test_a_wrong_content_range_is_not_trusted(
    image: PushedImage, source: RegistryServer, registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    digest, size = layer_of(image)
    # Asked for bytes=1048576-, the source answers 206 with "bytes 0-.../size": not what was asked for.
    front = proxy_for(source, ranges="wrong", cut_blob_after=MiB)
    with client() as registry_client, Copier(registry_client, transfer=TransferSettings(parts=1)) as copier:
        copier.copy(ImageLocation(front.host, "lib/app", "v1"), ImageLocation(registry.host, "m/app", "v1"))
        assert front.host in registry_client.whole_blob_hosts  # no more ranges from it this run
    assert_exact(registry, image)
    # The wrong answer was dropped unread past its head; the blob came whole once more.
    assert copier.downloads.restarts == 1
    assert received(copier, image) == size + MiB
    whole = [s for s in front.seen if s.method == "GET" and digest in s.path and "Range" not in s.headers]
    assert len(whole) == 2


def test_a_slow_stream_goes_on_as_parallel_ranges_digest_exact(
    source: RegistryServer, registry: RegistryServer, src_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(5 * MiB + 12345,), seed=3)
    digest, size = layer_of(image)
    gets: list[int] = []

    def reset_first_part(request: ProxyRequest) -> Fault | None:
        # The first part (the second GET) breaks after 100 KiB: that part alone continues from there.
        if request.method == "GET" and digest in request.path:
            gets.append(request.index)
            if len(gets) == 2:
                return Fault.reset_mid_body(100 * KiB, within_body=False)
        return None

    src_proxy.fault = reset_first_part
    # Every stream counts as slow at once: the blob goes on as ranges after its first chunk.
    settings = TransferSettings(
        part_size=512 * KiB, parts=4, parted_from=MiB, buffer_bytes=2 * MiB, slow_stream=1e15, probe_seconds=0
    )
    result, copier = copy(src_proxy.host, registry.host, settings)
    assert result.blobs_copied == 2
    assert_exact(registry, image)
    statuses = [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")]
    assert statuses[0] == 200 and set(statuses[1:]) == {206}
    assert len(statuses) >= 1 + size // (512 * KiB)  # the parts of the rest, and the resumed one
    assert received(copier, image) == size  # nothing read twice
    assert copier.downloads.resumes == 1


def test_a_fast_stream_stays_one_stream(
    source: RegistryServer, registry: RegistryServer, src_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(3 * MiB,), seed=7)
    digest, _size = layer_of(image)
    settings = TransferSettings(part_size=512 * KiB, parts=4, parted_from=MiB, slow_stream=1024, probe_seconds=0)
    copy(src_proxy.host, registry.host, settings)
    assert_exact(registry, image)
    assert [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")] == [200]


class Slots:
    """The source host's stream slots as a :class:`~bot.registry.ranges.SpareStreams`: ``free`` of them."""

    def __init__(self, free: int) -> None:
        self.free, self.taken = free, 0

    def spare(self) -> int:
        return self.free

    def try_acquire(self) -> bool:
        if self.free == 0:
            return False
        self.free -= 1
        self.taken += 1
        return True

    def release(self) -> None:
        self.free += 1


def read_blob(host: str, digest: str, size: int, settings: TransferSettings, **kwargs: object) -> bytes:
    with client() as registry:
        buffer = new_buffer(settings)
        reader = SourceReader(registry, host, "lib/app", digest, size, settings=settings, buffer=buffer, **kwargs)  # type: ignore[arg-type]
        return b"".join(reader)


def test_a_slow_stream_splits_only_while_the_host_has_slots_to_spare(
    image: PushedImage, source: RegistryServer, src_proxy: CountingProxy
) -> None:
    digest, size = layer_of(image)
    slow = TransferSettings(part_size=512 * KiB, parts=4, parted_from=MiB, slow_stream=1e15, probe_seconds=0)
    # Every slot busy: more streams would only share the link; the blob keeps its one stream.
    busy = Slots(0)
    body = read_blob(src_proxy.host, digest, size, slow, streams=busy)
    assert hashlib.sha256(body).hexdigest() == digest.removeprefix("sha256:")
    assert [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")] == [200]
    # Two slots spare: the rest goes as ranges, at most two of them beside the blob's own stream at a time,
    # and every slot taken is given back.
    src_proxy.reset()
    spare = Slots(2)
    body = read_blob(src_proxy.host, digest, size, slow, streams=spare)
    assert hashlib.sha256(body).hexdigest() == digest.removeprefix("sha256:")
    statuses = [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")]
    assert statuses[0] == 200 and set(statuses[1:]) == {206} and len(statuses) >= 1 + (size - MiB) // (512 * KiB)
    assert spare.taken >= 1 and spare.free == 2


def test_a_blob_other_images_wait_for_splits_without_spare_slots(image: PushedImage, src_proxy: CountingProxy) -> None:
    digest, size = layer_of(image)
    slow = TransferSettings(part_size=512 * KiB, parts=4, parted_from=MiB, slow_stream=1e15, probe_seconds=0)
    busy = Slots(0)
    body = read_blob(src_proxy.host, digest, size, slow, streams=busy, urgent=lambda: True)
    assert hashlib.sha256(body).hexdigest() == digest.removeprefix("sha256:")
    statuses = [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")]
    assert statuses[0] == 200 and len(statuses) > 2 and set(statuses[1:]) == {206}
    assert busy.free == 0 and busy.taken == 0


def test_a_download_held_back_by_its_upload_is_not_slow(image: PushedImage, src_proxy: CountingProxy) -> None:
    """Slowness is the source's pace: time the consumer (a slow upload) holds the stream does not count."""
    digest, size = layer_of(image)
    # 3 MiB/s of waiting for the source is slow; a loopback registry sends far faster than that, while the
    # consumer below takes 0.25 s per chunk (a whole-stream pace under 3 MiB/s once the chunks are under 768
    # KiB, which they are: at most 1 MiB and usually less).
    settings = TransferSettings(part_size=512 * KiB, parts=4, parted_from=MiB, slow_stream=3 * MiB, probe_seconds=0.2)
    with client() as registry:
        reader = SourceReader(registry, src_proxy.host, "lib/app", digest, size, settings=settings)
        for _chunk in reader:
            time.sleep(0.25)
    assert reader.offset == size
    assert [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")] == [200]


def test_parallel_ranges_fall_back_when_the_source_ignores_them(
    source: RegistryServer, registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(2 * MiB,), seed=4)
    front = proxy_for(source, ranges="ignore")
    settings = TransferSettings(part_size=256 * KiB, parts=4, parted_from=MiB, slow_stream=1e15, probe_seconds=0)
    _result, copier = copy(front.host, registry.host, settings)
    assert_exact(registry, image)
    assert front.host in copier.client.whole_blob_hosts


# -- uploads ---------------------------------------------------------------------------------------------

BIG = 12 * MiB  # three upload chunks of 5 MiB (ECR's smallest part), the last one 2 MiB
CHUNKED = TransferSettings(parts=1, upload_chunk=5 * MiB)


def second_patch(fault: Fault) -> Callable[[ProxyRequest], Fault | None]:
    seen: list[int] = []

    def hook(request: ProxyRequest) -> Fault | None:
        if request.method != "PATCH":
            return None
        seen.append(request.index)
        return fault if len(seen) == 2 else None

    return hook


def test_a_broken_upload_continues_where_the_registry_says(
    source: RegistryServer, registry: RegistryServer, src_proxy: CountingProxy, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(BIG,), seed=5)
    digest, size = layer_of(image)
    # The second chunk's connection is reset before the registry got any of it: the session holds 5 MiB.
    dst_proxy.fault = second_patch(Fault.reset_connection())
    result, copier = copy(src_proxy.host, dst_proxy.host, CHUNKED)
    assert result.blobs_copied == 2
    assert_exact(registry, image)
    patches = dst_proxy.matching(method="PATCH", path="/blobs/uploads/")
    assert [p.status for p in patches] == [202, 0, 202, 202]
    assert dst_proxy.request_bytes(method="PATCH", path="/blobs/uploads/") == size  # the registry got each byte once
    assert dst_proxy.count(method="GET", path="/blobs/uploads/", status=204) == 1  # asked how much it holds
    assert dst_proxy.count(method="POST", path="/blobs/uploads/") == 2  # no new session
    # The source was read again from the 5 MiB mark, not from byte 0 (counted as received: the proxy also
    # counts what it had pushed into the socket buffers when the reader let go).
    assert size < received(copier, image) <= size + 5 * MiB
    assert [g.status for g in src_proxy.matching(method="GET", path=f"/blobs/{digest}$")] == [200, 206]


def test_an_upload_the_registry_cannot_continue_starts_over(
    source: RegistryServer, registry: RegistryServer, dst_proxy: CountingProxy
) -> None:
    image = push_image(source, "lib/app", "v1", kind="oci-manifest", layers=(BIG,), seed=6)
    _digest, size = layer_of(image)
    # Cut mid-chunk: distribution keeps the partial bytes and then refuses the session (404 on its status).
    dst_proxy.fault = second_patch(Fault.cut_request(MiB, within_body=False))
    result, _copier = copy(source.host, dst_proxy.host, CHUNKED)
    assert result.blobs_copied == 2
    assert_exact(registry, image)
    assert dst_proxy.count(method="GET", path="/blobs/uploads/", status=404) == 1
    assert dst_proxy.count(method="POST", path="/blobs/uploads/") == 3  # a new session for the layer
    sent = dst_proxy.request_bytes(method="PATCH", path="/blobs/uploads/")
    assert sent == size + 5 * MiB + MiB  # the first chunk and the cut part of the second, sent again
