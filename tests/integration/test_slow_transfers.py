"""A registry that trickles bytes cannot hold a run: blob transfers below 1 KiB/s over --timeout seconds fail
(temporary, so retried), while a slow but healthy link (100 KiB/s) is never tripped.

The read timeout alone bounds only silence: a registry sending a byte every 0.8 s never stays silent for a
second, so without the throughput floor a 1 MB blob would take 9 days with --timeout 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import RegistryError
from bot.registry.client import RegistryClient
from bot.registry.models import sha256_digest
from bot.registry.transport import Transport, TransportSettings
from tests.harness import figures
from tests.harness.bot_process import Checkout
from tests.harness.images import KiB, get_manifest_digest, push_image
from tests.harness.registry import RegistryServer
from tests.harness.trickle import Trickle, TrickleRelay

TIMEOUT = 1.0  # --timeout of these runs: the read timeout, and the window the rate is averaged over


def client(timeout: float = TIMEOUT) -> RegistryClient:
    return RegistryClient(Transport(TransportSettings(read_timeout=timeout, max_attempts=1)))


@pytest.mark.timeout(30)
def test_a_trickling_download_fails_within_the_window(source: RegistryServer) -> None:
    image = push_image(source, "team/app", "1", kind="oci-manifest", layers=(64 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    with TrickleRelay(source) as relay:
        # 10 bytes every 0.1 s: never silent for the read timeout, but 100 B/s, far below the floor.
        relay.rule = Trickle("GET", f"/blobs/{layer.digest}$", after=1000, piece=10, interval=0.1)
        started = time.monotonic()
        with (
            pytest.raises(RegistryError) as caught,
            client() as registry,
            registry.get_blob(relay.host, "team/app", layer.digest, layer.size) as stream,
        ):
            for _ in stream:
                pass
        seconds = time.monotonic() - started
    message = str(caught.value)
    assert caught.value.temporary
    assert message.startswith(f"downloading {layer.digest} from {relay.host}/team/app: only "), message
    assert "below the minimum of 1 KiB/s" in message
    # The window (1 s) plus one sample interval and a read: far below the 10 min the body would trickle for.
    assert seconds < 3 * TIMEOUT, seconds
    shaped = [exchange for exchange in relay.exchanges if exchange.shaped]
    assert len(shaped) == 1 and 1000 <= shaped[0].response_bytes < layer.size // 4
    figures.count("trickling transfers ended by the throughput floor")


@pytest.mark.timeout(30)
def test_a_slow_healthy_link_is_not_tripped(source: RegistryServer) -> None:
    image = push_image(source, "team/app", "1", kind="oci-manifest", layers=(256 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    with TrickleRelay(source) as relay:
        # 100 KiB/s in bursts every 0.1 s, with a window of 1 s: slow, but far above the floor.
        relay.rule = Trickle("GET", f"/blobs/{layer.digest}$", piece=10 * KiB, interval=0.1)
        started = time.monotonic()
        with client() as registry, registry.get_blob(relay.host, "team/app", layer.digest, layer.size) as stream:
            received = sum(len(chunk) for chunk in stream)
        seconds = time.monotonic() - started
    assert received == layer.size
    assert seconds > 1.5 * TIMEOUT, "the link was not slow: the test proves nothing"
    figures.count("slow healthy transfers completed (100 KiB/s)")


@pytest.mark.timeout(30)
def test_an_upload_fed_too_slowly_fails_within_the_window(registry: RegistryServer) -> None:
    data = b"x" * (8 * KiB)
    digest = sha256_digest(data)

    def dribble() -> Iterator[bytes]:
        for offset in range(0, len(data), 100):
            time.sleep(0.2)  # 500 B/s
            yield data[offset : offset + 100]

    started = time.monotonic()
    with pytest.raises(RegistryError) as caught, client() as registry_client:
        registry_client.upload_blob(registry.host, "team/app", digest, len(data), dribble())
    seconds = time.monotonic() - started
    assert caught.value.temporary
    assert f"uploading {digest} to {registry.host}/team/app: only " in str(caught.value)
    assert "below the minimum of 1 KiB/s" in str(caught.value)
    assert seconds < 3 * TIMEOUT, seconds
    figures.count("trickling transfers ended by the throughput floor")


@pytest.mark.timeout(60)
def test_a_sync_retries_a_trickling_blob_and_completes(
    source: RegistryServer, registry: RegistryServer, tmp_path: Path
) -> None:
    image = push_image(source, "team/app", "1", kind="oci-manifest", layers=(512 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    with TrickleRelay(source) as relay:
        # The first two downloads of the layer trickle at 50 B/s after 4 kB; the third goes through.
        relay.rule = Trickle("GET", f"/blobs/{layer.digest}$", after=4000, piece=5, interval=0.1, times=2)
        checkout = Checkout.create(tmp_path, relay.host, registry.host, [f"{relay.host}/team/app:1"])
        started = time.monotonic()
        status, out, err = checkout.sync("--timeout", str(TIMEOUT))
        seconds = time.monotonic() - started
        downloads = [e for e in relay.exchanges if e.method == "GET" and e.path.endswith(layer.digest)]
    assert status == 0, out + err
    assert get_manifest_digest(registry, "src/team/app", "1") == image.digest
    assert checkout.mirrored_lines() == [f"{relay.host}/team/app:1@{image.digest}"]
    assert [e.shaped is not None for e in downloads] == [True, True, False]
    assert all(e.response_bytes < layer.size for e in downloads[:2])
    assert seconds < 20, seconds
    figures.count("trickling transfers ended by the throughput floor", 2)
    figures.count("images verified digest-exact at the target")
    figures.count("wrong entries in mirrored-images.txt", 0)
