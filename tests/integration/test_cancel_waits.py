"""A cancelled run is not held up by retries or by HEADs to a stalled registry: backoff waits end at the cancel,
and the pre-copy HEADs (``pending``) return at once, their unanswered requests left to the (cancelled) copy."""

from __future__ import annotations

import threading
import time

import pytest

from bot.config import parse_config
from bot.errors import Cancelled
from bot.lists import MirroredIndex, parse_list
from bot.registry.client import RegistryClient
from bot.registry.transport import Transport, TransportSettings
from bot.rules import Mapper
from bot.sync import pending
from tests.harness.images import KiB, push_image
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryServer


def cancel_after(seconds: float) -> threading.Event:
    event = threading.Event()
    threading.Timer(seconds, event.set).start()
    return event


@pytest.mark.timeout(30)
def test_a_backoff_wait_ends_at_the_cancel(registry: RegistryServer) -> None:
    with CountingProxy(registry) as proxy:
        proxy.fault = FaultRule(Fault.respond(503, retry_after=30), path="/tags/list", times=None)
        # Retry-After: 30 on every answer: without the cancel the request would wait 4 x 30 s.
        transport = Transport(TransportSettings(max_attempts=5, max_backoff=30.0))
        transport.cancel_on(cancel_after(0.5))
        started = time.monotonic()
        with pytest.raises(Cancelled, match="not retried: the run was cancelled"), transport:
            transport.request("GET", proxy.host, "/v2/team/app/tags/list")
        seconds = time.monotonic() - started
    assert seconds < 1.5, seconds
    assert proxy.count(method="GET", path="/tags/list") == 1  # no try after the cancel


@pytest.mark.timeout(30)
def test_pending_returns_at_the_cancel_without_waiting_for_stalled_heads(
    source: RegistryServer, registry: RegistryServer
) -> None:
    image = push_image(source, "team/app", "1", kind="oci-manifest", layers=(KiB,))
    with CountingProxy(source) as proxy:
        host = proxy.host
        config = parse_config(
            {"target": {"registry": registry.host}, "rules": [{"source": proxy.host, "target": "src"}]}
        )
        mirrored = parse_list(f"{proxy.host}/team/app:1@{image.digest}\n", "mirrored-images.txt")
        requests = parse_list(f"{proxy.host}/team/app:1\n{proxy.host}/team/app:2\n", "required-images.txt")
        # Every HEAD stalls: each try costs the read timeout (20 s), then backoff, five times.
        proxy.fault = FaultRule(Fault.stall_mid_body(0, 600), method="HEAD", times=None)
        cancel = cancel_after(0.5)
        started = time.monotonic()
        with RegistryClient(Transport(TransportSettings(read_timeout=20.0))) as client:
            copy, unchanged = pending(
                [entry.ref for entry in requests.entries],
                MirroredIndex(mirrored.entries),
                Mapper(config),
                client,
                cancel=cancel,
            )
        seconds = time.monotonic() - started
        assert proxy.count(method="HEAD") >= 1
    assert seconds < 1.5, seconds
    # The HEAD never answered: the image is not taken as up to date, it goes to the copy (which, cancelled,
    # does not start it); the unlisted one goes there anyway.
    assert [str(ref) for ref in copy] == [f"{host}/team/app:1", f"{host}/team/app:2"]
    assert unchanged == []
