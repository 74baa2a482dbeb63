"""``python -m bot sync`` through fault-injecting proxies in front of the source AND the target registry.

A seeded :class:`FaultSchedule` faults about 10% of the requests (connection resets mid-body, 500/502/503,
429 with ``Retry-After``, stalls past the read timeout, truncated and corrupted bodies, uploads cut
mid-body). Whatever it does, the run must end with every image digest-exact at the target (checked through
the registry's API, not through the proxy) and ``mirrored-images.txt`` naming exactly those images; also
with TLS to an ECR-like target and a Bearer-token source whose token server is faulted too. A permanent
fault fails only its image, and a registry that stalls forever costs a bounded time.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bot.cli import main
from bot.commands._options import add_registry_options, client_options
from bot.config import parse_config
from bot.errors import AuthError, NotFound, RegistryError, UsageError
from bot.registry.auth import Credentials
from bot.registry.client import RegistryClient
from bot.registry.copy import ImageLocation, copy_image
from bot.registry.factory import DEFAULT_TIMEOUT
from bot.registry.transport import Transport, TransportSettings
from bot.settings import Settings
from tests.harness import figures
from tests.harness.fault_schedule import (
    BODY_KINDS,
    CUT_REQUEST,
    KINDS,
    UPLOAD_KINDS,
    FaultSchedule,
    decide,
    missing_at_target,
    push_catalogue,
    request_key,
)
from tests.harness.images import KiB, PushedImage, get_manifest_digest, list_tags, push_image
from tests.harness.proxy import CountingProxy, Fault, FaultHook, FaultRule, ProxyRequest, front_token_server
from tests.harness.registry import RegistryServer

READ_TIMEOUT = "1"  # seconds; a stalled response costs one of these per try


@pytest.fixture
def target(basic_registry: RegistryServer) -> RegistryServer:
    """The target needs credentials to push (``user``/``pass``); the source is anonymous."""
    return basic_registry


@pytest.fixture
def proxies(source: RegistryServer, target: RegistryServer) -> Iterator[tuple[CountingProxy, CountingProxy]]:
    with CountingProxy(source) as src_proxy, CountingProxy(target) as dst_proxy:
        yield src_proxy, dst_proxy


@dataclass
class Run:
    status: int
    out: str
    err: str
    seconds: float
    mirrored: list[str]


class Mirror:
    """A sync set-up: the list of images, config, credentials and the two proxies, run through the CLI."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        source: RegistryServer,
        target: RegistryServer,
        proxies: tuple[CountingProxy, CountingProxy],
    ) -> None:
        self.tmp_path = tmp_path
        self.source = source
        self.target = target
        self.src_proxy, self.dst_proxy = proxies
        stem = "MIRROR_AUTH_" + target.host.replace(".", "_").replace(":", "_")
        monkeypatch.setenv(stem + "_USERNAME", target.username or "")
        monkeypatch.setenv(stem + "_PASSWORD", target.password or "")
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        monkeypatch.chdir(tmp_path)
        self.config = tmp_path / "config.yml"
        rules = {"target": {"registry": target.host}, "rules": [{"source": source.host, "target": "src"}]}
        self.config.write_text(json.dumps(rules))
        self.listing = tmp_path / "required-images.txt"
        self.mirrored = tmp_path / "mirrored-images.txt"
        self.extra_args: list[str] = ["--ca-bundle", target.ca_bundle] if target.ca_bundle else []

    def target_repository(self, image: PushedImage) -> str:
        return f"src/{image.repository}"

    def pinned(self, image: PushedImage) -> str:
        return f"{self.source.host}/{image.repository}:{image.tag}@{image.digest}"

    def sync(self, images: list[PushedImage], capsys: pytest.CaptureFixture[str]) -> Run:
        self.listing.write_text("".join(f"{self.source.host}/{i.repository}:{i.tag}\n" for i in images))
        argv = [
            "sync",
            "--config",
            str(self.config),
            "--list",
            str(self.listing),
            "--mirrored",
            str(self.mirrored),
            "--endpoint",
            f"{self.source.host}={self.src_proxy.url}",
            "--endpoint",
            f"{self.target.host}={self.dst_proxy.url}",
            "--timeout",
            READ_TIMEOUT,
            *self.extra_args,
        ]
        started = time.monotonic()
        status = main(argv)
        seconds = time.monotonic() - started
        captured = capsys.readouterr()
        lines = self.mirrored.read_text().splitlines() if self.mirrored.exists() else []
        mirrored = [line for line in lines if line.strip() and not line.startswith("#")]
        return Run(status, captured.out, captured.err, seconds, mirrored)

    def requests_through_proxies(self) -> int:
        return len(self.src_proxy.records) + len(self.dst_proxy.records)


@pytest.fixture
def proxies_for_bearer(bearer_registry: RegistryServer) -> Iterator[tuple[CountingProxy, CountingProxy]]:
    """A proxy in front of a Bearer registry and one in front of its token server (the realm it names)."""
    with CountingProxy(bearer_registry) as registry_proxy, front_token_server(registry_proxy) as token_proxy:
        yield registry_proxy, token_proxy


@pytest.fixture
def mirror(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: RegistryServer,
    target: RegistryServer,
    proxies: tuple[CountingProxy, CountingProxy],
) -> Mirror:
    return Mirror(tmp_path, monkeypatch, source, target, proxies)


def schedules(seed: int, rate: float = 0.10) -> tuple[FaultSchedule, FaultSchedule]:
    return FaultSchedule(seed, rate=rate, salt="source"), FaultSchedule(seed, rate=rate, salt="target")


def first(*hooks: FaultHook) -> FaultHook:
    """A hook that applies the first of ``hooks`` with a fault for the request."""

    def hook(request: ProxyRequest) -> Fault | None:
        for one in hooks:
            fault = one(request)
            if fault is not None:
                return fault
        return None

    return hook


# -- the schedule itself ------------------------------------------------------------------------------------


def test_schedule_decisions_depend_only_on_seed_request_and_occurrence() -> None:
    paths = [f"/v2/team/app{n:02d}/blobs/sha256:{n:064x}" for n in range(400)]
    calls = [(method, path, n) for method in ("GET", "HEAD") for path in paths for n in range(3)]

    def run(order: list[tuple[str, str, int]], seed: int) -> dict[tuple[str, str, int], str | None]:
        decisions = {}
        for method, path, n in order:
            decision = decide(seed, "source", method, path, n, rate=0.10)
            decisions[(method, path, n)] = None if decision is None else decision[1].describe()
        return decisions

    forward = run(calls, seed=1)
    assert run(list(reversed(calls)), seed=1) == forward
    assert run(calls, seed=2) != forward
    faulted = [key for key, fault in forward.items() if fault is not None]
    assert 0.07 < len(faulted) / len(calls) < 0.13
    # Body faults only where there is a body to damage, request body cuts only where there is an upload.
    heads = [decide(1, "source", "HEAD", path, n, rate=1.0) for path in paths for n in range(3)]
    assert {kind for kind, _ in filter(None, heads)} == set(KINDS) - BODY_KINDS - UPLOAD_KINDS
    puts = [decide(1, "target", "PUT", path, n, rate=1.0, has_body=True) for path in paths for n in range(3)]
    assert {kind for kind, _ in filter(None, puts)} == set(KINDS) - BODY_KINDS
    empty = [decide(1, "target", "PUT", path, n, rate=1.0, has_body=False) for path in paths for n in range(3)]
    assert CUT_REQUEST not in {kind for kind, _ in filter(None, empty)}


def test_schedule_keys_ignore_what_a_registry_makes_up_per_session() -> None:
    def request(path: str, query: str) -> ProxyRequest:
        return ProxyRequest("PUT", path, query, {}, 0)

    one = request("/v2/a/blobs/uploads/1f0c-uuid", "_state=abc&digest=sha256%3A00")
    two = request("/v2/a/blobs/uploads/99aa-uuid", "digest=sha256:00&_state=zzz")
    assert request_key(one) == request_key(two) == "/v2/a/blobs/uploads/{session}?digest=sha256:00"
    assert request_key(request("/v2/a/blobs/uploads/", "mount=sha256:00&from=b")) == (
        "/v2/a/blobs/uploads/?from=b&mount=sha256:00"
    )
    schedule = FaultSchedule(3, rate=1.0, kinds=("5xx",))
    assert schedule(one) is not None and schedule(two) is not None
    assert schedule.counts == {"5xx": 2}
    assert schedule.seen == 2
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultSchedule(1, kinds=("boom",))


def test_proxy_resets_and_stalls_mid_body(registry: RegistryServer) -> None:
    image = push_image(registry, "app", "v1", kind="oci-manifest", layers=(200 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    with CountingProxy(registry) as proxy:
        url = f"{proxy.url}/v2/app/blobs/{layer.digest}"
        proxy.fault = FaultRule(Fault.reset_mid_body(1000 + layer.size))  # wraps to byte 1000
        with pytest.raises(requests.exceptions.ChunkedEncodingError, match="reset by peer"):
            requests.get(url, timeout=10)
        assert proxy.records[-1].response_bytes == 1000
        assert proxy.records[-1].fault == f"reset after {1000 + layer.size}"

        proxy.fault = FaultRule(Fault.stall_mid_body(5000, 30))
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError, match="timed out"):  # the read timeout, mid-body
            requests.get(url, timeout=(5, 0.5))
        assert time.monotonic() - started < 5
        assert proxy.records[-1].response_bytes == 5000

        # No body to cut: the registry acts, the client never hears back.
        proxy.fault = FaultRule(Fault.stall_mid_body(0, 30), method="HEAD")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.head(url, timeout=(5, 0.5))
        proxy.fault = FaultRule(Fault.reset_mid_body(0), method="HEAD")
        with pytest.raises(requests.ConnectionError):
            requests.head(url, timeout=10)
        assert proxy.records[-1].status == 0

        # An upload cut mid-body: the registry gets the head and 1000 bytes, the client a reset.
        proxy.fault = FaultRule(Fault.cut_request(1000 + 200_000), method="PUT")  # wraps to byte 1000
        with pytest.raises(requests.ConnectionError):
            requests.put(f"{proxy.url}/v2/app/blobs/uploads/cut", data=b"x" * 200_000, timeout=10)
        assert proxy.records[-1].request_bytes == 1000 and proxy.records[-1].status == 0
        assert proxy.records[-1].fault == f"cut request after {1000 + 200_000}"

        proxy.fault = None
        assert len(requests.get(url, timeout=10).content) == layer.size


# -- 10% of requests faulted --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [11, 23, 47])
def test_sync_through_faults_ends_digest_exact(
    seed: int, source: RegistryServer, target: RegistryServer, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    images = push_catalogue(source, 20)
    src_schedule, dst_schedule = schedules(seed)
    mirror.src_proxy.fault, mirror.dst_proxy.fault = src_schedule, dst_schedule

    run = mirror.sync(images, capsys)

    assert run.status == 0, run.out + run.err
    assert "20 images: 20 ok (0 already up to date), 0 failed" in run.out
    for image in images:
        assert missing_at_target(target, mirror.target_repository(image), image) == []
    assert sorted(run.mirrored) == sorted(mirror.pinned(image) for image in images)
    counts = src_schedule.counts + dst_schedule.counts
    total = sum(counts.values())
    seen = mirror.requests_through_proxies()
    assert total >= 0.06 * seen, (total, seen)
    for kind in KINDS:
        assert counts[kind] >= 3, (kind, counts)
    # Both sides were faulted, on reads and on writes.
    assert src_schedule.total >= 10 and dst_schedule.total >= 10
    assert {method for _, method, _ in dst_schedule.faulted} >= {"HEAD", "POST", "PUT"}

    figures.count("requests through the fault proxies", seen)
    figures.count("requests faulted", total)
    for kind in KINDS:
        figures.count(f"requests faulted: {kind}", counts[kind])
    figures.count("images verified digest-exact at the target", len(images))
    figures.count("wrong entries in mirrored-images.txt", 0)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sync_through_faults_over_tls_from_a_bearer_source_ends_digest_exact(
    bearer_registry: RegistryServer,
    tls_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The same 10% schedule with TLS to the target (ECR-like: HTTPS, Basic AWS/ecr-test-password), where a
    # reset can show up as a TLS error, and a Bearer-token source whose token server is faulted too.
    seed = 31
    source, target = bearer_registry, tls_registry
    images = push_catalogue(source, 20)
    src_schedule, dst_schedule = schedules(seed)
    token_schedule = FaultSchedule(seed, rate=0.10, salt="token server")
    with (
        CountingProxy(source, fault=src_schedule) as src_proxy,
        CountingProxy(target, fault=dst_schedule) as dst_proxy,
        front_token_server(src_proxy, fault=token_schedule) as token_proxy,
    ):
        mirror = Mirror(tmp_path, monkeypatch, source, target, (src_proxy, dst_proxy))
        run = mirror.sync(images, capsys)

    assert run.status == 0, run.out + run.err
    assert "20 images: 20 ok (0 already up to date), 0 failed" in run.out
    for image in images:
        assert missing_at_target(target, mirror.target_repository(image), image) == []
    assert sorted(run.mirrored) == sorted(mirror.pinned(image) for image in images)
    assert target.tls and target.username == "AWS"
    # Tokens came through the token proxy (anonymous pull tokens, one per repository at least), some faulted.
    token_requests = token_proxy.matching(method="GET", path="^/token$")
    assert len(token_requests) >= len(images)
    assert token_schedule.total >= 1, token_schedule.counts
    counts = src_schedule.counts + dst_schedule.counts + token_schedule.counts
    assert dst_schedule.counts[CUT_REQUEST] >= 2 and dst_schedule.counts["reset"] >= 2, dst_schedule.counts
    total = sum(counts.values())
    seen = mirror.requests_through_proxies() + len(token_proxy.records)

    figures.count("requests through the fault proxies", seen)
    figures.count("requests faulted", total)
    for kind in KINDS:
        figures.count(f"requests faulted: {kind}", counts[kind])
    figures.count("requests faulted over TLS", dst_schedule.total)
    figures.count("token server requests faulted", token_schedule.total)
    figures.count("images verified digest-exact at the target", len(images))
    figures.count("wrong entries in mirrored-images.txt", 0)


# -- a permanent fault ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["corrupt", "500"])
def test_a_permanent_fault_fails_only_its_image(
    fault: str, source: RegistryServer, target: RegistryServer, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    images = push_catalogue(source, 8)
    broken = images[5]  # a Docker manifest list
    own = broken.blob_digests - set().union(*(image.blob_digests for image in images if image is not broken))
    layer = sorted(own)[0]
    permanent = Fault(corrupt_at=100, within_body=True) if fault == "corrupt" else Fault.respond(500)
    rule = FaultRule(permanent, method="GET", path=f"/{broken.repository}/blobs/{layer}$", times=None)
    src_schedule, dst_schedule = schedules(seed=5)
    mirror.src_proxy.fault, mirror.dst_proxy.fault = first(rule, src_schedule), dst_schedule

    run = mirror.sync(images, capsys)

    assert run.status == 1
    name = f"{source.host}/{broken.repository}:{broken.tag} -> {target.host}/src/{broken.repository}:{broken.tag}"
    failed = [line for line in run.out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith(f"FAILED  {name}: "), failed
    reason = "does not match its digest" if fault == "corrupt" else "500 UNAVAILABLE: injected fault"
    assert layer in failed[0] and reason in failed[0], failed[0]
    assert failed[0].endswith("(gave up after 5 tries)"), failed[0]
    assert f"{source.host}/{broken.repository}:{broken.tag}" in run.err  # the failure is repeated on stderr
    assert "8 images: 7 ok (0 already up to date), 1 failed" in run.out
    # Nothing recorded for it, nothing tagged at the target; the rest complete and recorded.
    assert sorted(run.mirrored) == sorted(mirror.pinned(image) for image in images if image is not broken)
    assert list_tags(target, mirror.target_repository(broken)) == []
    assert get_manifest_digest(target, mirror.target_repository(broken), broken.tag) is None
    for image in images:
        if image is not broken:
            assert missing_at_target(target, mirror.target_repository(image), image) == []
    # Bounded: the corrupt blob was fetched a few times, never in a loop.
    fetches = mirror.src_proxy.count(method="GET", path=f"/blobs/{layer}$")
    assert fetches == rule.hits == 5  # the transport's 5 tries for a 500, the copy's 5 for a bad digest

    figures.count("requests through the fault proxies", mirror.requests_through_proxies())
    figures.count("requests faulted", rule.hits + src_schedule.total + dst_schedule.total)
    figures.count("images verified digest-exact at the target", len(images) - 1)
    figures.count("wrong entries in mirrored-images.txt", 0)


# -- a registry that stalls forever -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_source_that_stalls_forever_costs_a_bounded_time(
    source: RegistryServer, target: RegistryServer, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    images = push_catalogue(source, 3)
    stuck = images[0]
    layer = max(stuck.blobs, key=lambda blob: blob.size).digest
    rule = FaultRule(
        Fault.stall_mid_body(10_000, 3600), method="GET", path=f"/{stuck.repository}/blobs/{layer}$", times=None
    )
    mirror.src_proxy.fault = rule

    run = mirror.sync(images, capsys)

    assert run.status == 1
    # Each try waits one read timeout (1 s); a few tries and backoffs, far below the hour the stall lasts.
    assert run.seconds < 30, run.seconds
    failed = [line for line in run.out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert f"{source.host}/{stuck.repository}:{stuck.tag}" in failed[0]
    assert layer in failed[0] and "stopped sending mid-answer for longer than the read timeout" in failed[0]
    assert failed[0].endswith("(gave up after 5 tries)"), failed[0]
    assert sorted(run.mirrored) == sorted(mirror.pinned(image) for image in images[1:])
    assert get_manifest_digest(target, mirror.target_repository(stuck), stuck.tag) is None
    assert 2 <= rule.hits <= 10

    figures.count("stalled transfers ended by the read timeout", rule.hits)
    figures.count("wrong entries in mirrored-images.txt", 0)


# -- what the faults turned up in the engine, one focused test each ----------------------------------------


def engine_client(
    *proxies: CountingProxy, read_timeout: float = 5.0, verify: bool | str | None = None
) -> tuple[RegistryClient, list[float]]:
    """A client through ``proxies`` whose backoff sleeps are recorded, not slept. TLS proxies are reached over
    HTTPS, trusting their registry's CA unless ``verify`` says otherwise."""
    credentials = Credentials()
    endpoints: dict[str, str] = {}
    bundle: bool | str = True
    for proxy in proxies:
        view = proxy.registry
        if view.username and view.password:
            credentials.add(view.host, view.username, view.password)
        if view.tls:
            endpoints[view.host] = view.url
            bundle = view.ca_bundle or True
    sleeps: list[float] = []
    settings = TransportSettings(
        read_timeout=read_timeout, endpoints=endpoints, verify=bundle if verify is None else verify
    )
    return RegistryClient(Transport(settings, credentials, sleep=sleeps.append)), sleeps


def at(proxy: CountingProxy, repository: str, tag: str | None = None) -> ImageLocation:
    return ImageLocation(proxy.host, repository, tag)


@pytest.mark.parametrize(
    "fault",
    [Fault.truncate(40), Fault.reset_mid_body(40), Fault.stall_mid_body(40, 30), Fault.corrupt(40)],
    ids=["truncated", "reset", "stalled", "corrupted"],
)
def test_a_manifest_read_that_breaks_off_is_read_again(
    fault: Fault, source: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # A manifest body cut, reset, stalled or damaged on the way escaped as a raw requests exception (a
    # traceback for the whole sync), or failed the image for good; it is a temporary failure, read again.
    src_proxy, _ = proxies
    image = push_image(source, "team/app", "v1")
    src_proxy.fault = FaultRule(fault, method="GET", path=f"/manifests/{image.digest}$", times=2)
    client, sleeps = engine_client(src_proxy, read_timeout=0.5)
    with client:
        manifest = client.get_manifest(src_proxy.host, "team/app", image.digest)
    assert manifest.digest == image.digest and manifest.body == image.manifest
    assert src_proxy.count(method="GET", path=f"/manifests/{image.digest}$") == 3
    assert len(sleeps) == 2


def test_a_source_that_always_serves_a_wrong_manifest_fails_after_the_bound(
    source: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    src_proxy, _ = proxies
    image = push_image(source, "team/app", "v1")
    src_proxy.fault = FaultRule(Fault.corrupt(3), method="GET", path="/manifests/sha256:", times=None)
    client, _ = engine_client(src_proxy)
    with client, pytest.raises(RegistryError, match="do not match the digest") as caught:
        client.get_manifest(src_proxy.host, "team/app", image.digest)
    assert not isinstance(caught.value, NotFound)
    assert src_proxy.count(method="GET", path="/manifests/sha256:") == client.transport.settings.max_attempts


@pytest.mark.parametrize("fault", [Fault.reset_mid_body(1000), Fault.stall_mid_body(1000, 30)], ids=["reset", "stall"])
def test_a_blob_read_that_breaks_off_is_a_temporary_registry_error(
    fault: Fault, source: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # It escaped as a urllib3 exception: not a BotError, so `inspect` (validate-pr) crashed on it.
    src_proxy, _ = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(100 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    src_proxy.fault = FaultRule(fault, method="GET", path=layer.digest)
    client, _ = engine_client(src_proxy, read_timeout=0.5)
    with (
        client,
        pytest.raises(RegistryError) as caught,
        client.get_blob(src_proxy.host, "team/app", layer.digest, layer.size) as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.temporary
    assert f"downloading {layer.digest} from {src_proxy.host}/team/app" in str(caught.value)
    stalled = "stopped sending mid-answer for longer than the read timeout (--timeout)"
    assert (stalled if fault.stall_after is not None else "the connection broke off after") in str(caught.value)


def test_a_retried_request_is_not_retried_again_by_the_copy(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # A blob GET answered 500 every time was tried 5 times by the transport, and that 3 times over by the
    # copy (15 requests, ~20 s of backoff); the transport's bound is the bound.
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(10 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    src_proxy.fault = FaultRule(Fault.respond(500), method="GET", path=layer.digest, times=None)
    client, sleeps = engine_client(src_proxy, dst_proxy)
    with client, pytest.raises(RegistryError, match="gave up after 5 tries") as caught:
        copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert caught.value.status == 500 and not caught.value.temporary
    assert src_proxy.count(method="GET", path=layer.digest) == 5
    assert len(sleeps) == 4
    assert get_manifest_digest(target, "mirror/app", "v1") is None


def test_an_upload_whose_answer_is_lost_is_not_sent_again(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # The registry committed the blob, then the connection reset before the 201 reached us: the copy used to
    # stream the blob a second time. It now asks the target first, and counts the bytes once.
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(300 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    lost: list[str] = []

    def lose_the_layers_answer(request: ProxyRequest) -> Fault | None:
        # The config and the layer upload at the same time; only the layer's PUT loses its answer.
        if request.method == "PUT" and layer.digest in request.query.replace("%3A", ":") and not lost:
            lost.append(request.path)
            return Fault.reset_mid_body(0)
        return None

    dst_proxy.fault = lose_the_layers_answer
    client, sleeps = engine_client(src_proxy, dst_proxy)
    with client:
        result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "mirror/app", "v1")
    uploads = dst_proxy.matching(method="PUT", path="/blobs/uploads/")
    assert len(uploads) == len(image.blobs)  # one PUT per blob, the lost one included
    assert dst_proxy.request_bytes(method="PUT", path="/blobs/uploads/") == image.blob_bytes
    assert result.bytes_moved == image.blob_bytes and result.blobs_copied == len(image.blobs)
    assert [record.path for record in uploads if record.status == 0] == lost  # the lost answer, nothing else
    assert len(sleeps) == 1  # a backoff before asking


def test_a_blob_gets_as_many_tries_as_a_request(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # A blob is three requests (GET, POST, PUT) and each can fail; three tries for the lot was less than
    # one request gets, and a 10% fault rate failed about one image in three runs. Tries back off too.
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(50 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    src_proxy.fault = FaultRule(Fault.corrupt(100), method="GET", path=layer.digest, times=4)
    client, sleeps = engine_client(src_proxy, dst_proxy)
    with client:
        result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "mirror/app", "v1")
    assert src_proxy.count(method="GET", path=layer.digest) == 5
    assert result.bytes_moved == image.blob_bytes
    assert len(sleeps) == 4


def test_the_source_and_the_target_each_get_their_own_tries(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # A download that breaks off is resumed inside the upload it feeds (a Range request), so four broken reads
    # of a flaky source do not use up the tries of a healthy-but-busy target that turns four uploads away.
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(300 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    broken = FaultRule(Fault.reset_mid_body(100_000), method="GET", path=layer.digest, times=4)
    src_proxy.fault = broken
    busy: list[str] = []

    def target_busy(request: ProxyRequest) -> Fault | None:
        layer_put = request.method == "PUT" and layer.digest in request.query.replace("%3A", ":")
        if layer_put and len(busy) < 4:
            busy.append(request.path)
            return Fault.respond(503)
        return None

    dst_proxy.fault = target_busy
    client, _ = engine_client(src_proxy, dst_proxy)
    with client:
        result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "mirror/app", "v1")
    assert len(busy) == 4 and broken.hits == 4
    # 4 broken reads, each continued with a range; up to 5 tries of the upload, each reading the source anew
    ranged = [r for r in src_proxy.matching(method="GET", path=layer.digest) if r.status == 206]
    assert len(ranged) >= 1
    assert 5 <= src_proxy.count(method="GET", path=layer.digest) <= 9
    assert result.bytes_moved == image.blob_bytes


def test_an_upload_answered_429_waits_as_asked_before_it_starts_over(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    # A streamed upload cannot be replayed by the transport, so its Retry-After was dropped and the copy tried
    # again at once; the transport now waits as asked before it hands the failure back.
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(20 * KiB,))
    dst_proxy.fault = FaultRule(Fault.respond(429, retry_after=7), method="PUT", path="/blobs/uploads/")
    client, sleeps = engine_client(src_proxy, dst_proxy)
    with client:
        result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "mirror/app", "v1")
    assert sleeps[0] == 7.0
    assert dst_proxy.count(method="PUT", path="/blobs/uploads/") == len(image.blobs) + 1


def test_a_chunked_upload_cut_off_after_the_registry_took_a_chunk_starts_a_fresh_session(
    source: RegistryServer, target: RegistryServer, proxies: tuple[CountingProxy, CountingProxy]
) -> None:
    src_proxy, dst_proxy = proxies
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(200 * KiB,))
    refuse_put = FaultRule(Fault.respond(405), method="PUT", path="/blobs/uploads/")  # wants PATCH
    lose_patch = FaultRule(Fault.reset_mid_body(0), method="PATCH")  # taken by the registry, answer lost
    dst_proxy.fault = first(refuse_put, lose_patch)
    client, _ = engine_client(src_proxy, dst_proxy)
    with client:
        result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
    assert result.target_digest == image.digest == get_manifest_digest(target, "mirror/app", "v1")
    assert refuse_put.hits == lose_patch.hits == 1
    patches = [record.path for record in dst_proxy.matching(method="PATCH")]
    # The lost PATCH and its fresh session; the other blob goes chunked too unless its PUT won the race.
    assert 2 <= len(patches) <= len(image.blobs) + 1
    assert len(set(patches)) == len(patches)  # never a second PATCH into a session that took one
    assert result.bytes_moved == image.blob_bytes


def test_the_read_timeout_is_an_option_with_a_sensible_default() -> None:
    assert TransportSettings().read_timeout == DEFAULT_TIMEOUT == 60.0
    parser = argparse.ArgumentParser()
    add_registry_options(parser)

    def parse(argv: list[str]) -> argparse.Namespace:  # as bot.cli.main hands them over: with the settings
        return parser.parse_args(argv, argparse.Namespace(settings=Settings()))

    assert client_options(parse([])).timeout == 60.0
    options = client_options(parse(["--timeout", "2.5"]))
    with options.build(parse_config(None)) as client:
        assert client.transport.settings.read_timeout == 2.5
    for bad in ("0", "-1", "nan", "7200"):
        with pytest.raises(UsageError, match="--timeout"):
            client_options(parse(["--timeout", bad]))


# -- TLS, token servers and tag lists ------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["blob", "manifest"])
# The connection the proxy cuts mid-TLS-record is dropped by urllib3's pool without an explicit close; the
# garbage collector may report it during a later test's teardown (seen on quiet and loaded runs alike).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_upload_cut_off_over_tls_is_sent_again(
    what: str, source: RegistryServer, tls_registry: RegistryServer
) -> None:
    # Over TLS a reset mid-upload mostly arrives as an SSLError (SSLEOFError, when the client is still
    # writing: a large blob): it was taken for a failed certificate check ("pass --ca-bundle") and failed the
    # image for good. It is connection trouble, tried again. (A small manifest is written before the reset
    # lands, so it sees a plain disconnect; tests/unit/test_registry_transport.py covers its SSLEOFError.)
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(4096 * KiB,))
    layer = max(image.blobs, key=lambda blob: blob.size)
    path = f"/blobs/uploads/.*{layer.digest.replace(':', '(:|%3A)')}" if what == "blob" else "/manifests/v1$"
    cuts = 3 if what == "blob" else 2
    rule = FaultRule(Fault.cut_request(100), method="PUT", times=cuts)
    pattern = re.compile(path)

    def cut_the_upload(request: ProxyRequest) -> Fault | None:
        where = request.path + (f"?{request.query}" if request.query else "")
        return rule(request) if pattern.search(where) else None

    with CountingProxy(source) as src_proxy, CountingProxy(tls_registry, fault=cut_the_upload) as dst_proxy:
        client, sleeps = engine_client(src_proxy, dst_proxy)
        with client:
            result = copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
        cut = [record for record in dst_proxy.records if record.fault is not None]
    assert rule.hits == len(cut) == cuts
    # The registry got 100 bytes, then a reset, every time; the next try went through.
    assert {(record.status, record.request_bytes) for record in cut} == {(0, 100)}
    assert result.target_digest == image.digest == get_manifest_digest(tls_registry, "mirror/app", "v1")
    assert len(sleeps) >= cuts

    figures.count("requests faulted over TLS", rule.hits)
    figures.count(f"requests faulted: {CUT_REQUEST}", rule.hits)
    figures.count("requests faulted", rule.hits)


def test_a_failed_certificate_check_fails_at_once_with_the_ca_bundle_hint(
    source: RegistryServer, tls_registry: RegistryServer
) -> None:
    image = push_image(source, "team/app", "v1", kind="oci-manifest", layers=(10 * KiB,))
    with CountingProxy(source) as src_proxy, CountingProxy(tls_registry) as dst_proxy:
        client, sleeps = engine_client(src_proxy, dst_proxy, verify=True)  # the system CAs: not the test CA
        with client, pytest.raises(RegistryError, match="TLS verification failed") as caught:
            copy_image(client, at(src_proxy, "team/app", "v1"), at(dst_proxy, "mirror/app", "v1"))
        assert dst_proxy.records == []  # no request ever got past the handshake
    assert "pass its certificate with --ca-bundle" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert not caught.value.temporary and "gave up" not in str(caught.value)
    assert sleeps == []  # not retried
    assert get_manifest_digest(tls_registry, "mirror/app", image.tag) is None


@pytest.mark.parametrize("times", [2, None], ids=["twice", "always"])
def test_a_damaged_token_answer_is_read_again(
    times: int | None, bearer_registry: RegistryServer, proxies_for_bearer: tuple[CountingProxy, CountingProxy]
) -> None:
    # A token body damaged on the way ("answered without JSON") failed the image at once; it is read again
    # within the transport's tries, like a damaged manifest.
    src_proxy, token_proxy = proxies_for_bearer
    image = push_image(bearer_registry, "team/app", "v1")
    rule = FaultRule(Fault.corrupt(0), method="GET", path="^/token$", times=times)
    token_proxy.fault = rule
    client, sleeps = engine_client(src_proxy)
    with client:
        if times is None:
            with pytest.raises(AuthError, match="answered without JSON") as caught:
                client.get_manifest(src_proxy.host, "team/app", image.digest)
            assert str(caught.value).endswith("(gave up after 5 tries)") and not caught.value.temporary
        else:
            assert client.get_manifest(src_proxy.host, "team/app", image.digest).digest == image.digest
    tries = 5 if times is None else times + 1
    assert token_proxy.count(method="GET", path="^/token$") == tries
    assert rule.hits == (times or tries)
    assert len(sleeps) == tries - 1

    figures.count("token server requests faulted", rule.hits)
    figures.count("requests faulted: corrupt", rule.hits)
    figures.count("requests faulted", rule.hits)


@pytest.mark.parametrize("times", [2, None], ids=["twice", "always"])
def test_a_damaged_tag_list_is_read_again(times: int | None, registry: RegistryServer) -> None:
    # A tag list damaged on the way ("the answer is not JSON") failed at once; it is read again.
    push_image(registry, "team/app", "v1", kind="oci-manifest", layers=(KiB,))
    push_image(registry, "team/app", "v2", kind="oci-manifest", layers=(KiB,))
    rule = FaultRule(Fault.corrupt(0), method="GET", path="/tags/list$", times=times)
    with CountingProxy(registry, fault=rule) as proxy:
        client, sleeps = engine_client(proxy)
        with client:
            if times is None:
                with pytest.raises(RegistryError, match="the answer is not JSON") as caught:
                    client.list_tags(proxy.host, "team/app")
                assert str(caught.value).endswith("(gave up after 5 tries)") and not caught.value.temporary
            else:
                assert sorted(client.list_tags(proxy.host, "team/app")) == ["v1", "v2"]
        tries = 5 if times is None else times + 1
        assert proxy.count(method="GET", path="/tags/list$") == tries
    assert len(sleeps) == tries - 1

    figures.count("requests faulted: corrupt", rule.hits)
    figures.count("requests faulted", rule.hits)
