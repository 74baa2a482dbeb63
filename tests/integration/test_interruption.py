"""Interrupted runs: SIGKILL at seeded points, and a graceful SIGINT/SIGTERM.

Each kill trial runs ``python -m bot sync`` as a child process against a fresh target (behind a counting proxy
and a relay that can hold a request body part-way) and kills it with SIGKILL in one phase of the run, chosen
by the seed: while the interpreter starts and the mirrored list is compared; mid-body of a blob upload (the
relay lets a seeded number of body bytes reach the registry, holds the rest, and the kill comes then); on the
k-th manifest push or the k-th read-back of a pushed tag (``k`` and a delay of a few milliseconds from the
seed); or while the mirrored list is written (a 2 MB list of another mirror widens that window; the kill comes
when the temporary file appears). Each trial asserts the kill landed where intended. Afterwards every tag of
the target must point at a complete image (walked through the registry API down to every blob), and the
mirrored list, if there is one, must name only images the target holds at the recorded digest. A second run
without a kill must then finish with every image digest-exact and the list complete. ``daily`` and a sharded
``sync --results`` are killed mid-upload the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.reference import parse_reference
from bot.registry.auth import Credentials
from bot.registry.factory import build_client
from bot.rules import Mapper
from bot.sync import sync
from tests.harness import figures
from tests.harness.bot_process import Checkout
from tests.harness.images import (
    KiB,
    LayerSpec,
    MiB,
    PushedImage,
    blob_path,
    corrupt_blob,
    get_manifest_digest,
    push_image,
)
from tests.harness.proxy import CountingProxy, Fault, FaultRule, ProxyRequest
from tests.harness.registry import RegistryFactory, RegistryServer
from tests.harness.target_check import check_mirrored_list, check_target
from tests.harness.trickle import Trickle, TrickleRelay

BASE = (LayerSpec(size=MiB, seed=1), LayerSpec(size=256 * KiB, seed=2, per_platform=False))
PHASES = ("startup", "blob upload", "manifest push", "verification", "list write")
# The longest delay after the trigger, per phase (startup: the kill time itself), so kills land inside the phase.
DELAYS = {"startup": 0.35, "blob upload": 0.01, "manifest push": 0.005, "verification": 0.002, "list write": 0.003}
TRIALS = 12


@dataclass
class Source:
    registry: RegistryServer
    images: dict[str, PushedImage]

    def references(self, keys: list[str] | None = None) -> list[str]:
        return [self.images[key].reference for key in keys or list(self.images)]

    def lines(self, keys: list[str] | None = None) -> list[str]:
        chosen = [self.images[key] for key in keys or list(self.images)]
        return sorted(f"{image.reference}@{image.digest}" for image in chosen)


@pytest.fixture(scope="module")
def origin(registry_factory: RegistryFactory) -> Iterator[Source]:
    """Five images with shared layers: indexes (one with attestations, one with three platforms), a docker
    list and a single-platform manifest."""
    with registry_factory() as server:
        images = {
            "app:1": push_image(
                server, "team/app", "1", base_layers=BASE, layers=(1536 * KiB,), seed=1, attestations=True
            ),
            "app:2": push_image(server, "team/app", "2", base_layers=BASE, layers=(512 * KiB, 64 * KiB), seed=2),
            "tool:1": push_image(server, "team/tool", "1", base_layers=BASE[:1], layers=(MiB,), kind="docker-list"),
            "web:1": push_image(
                server,
                "library/web",
                "1",
                base_layers=BASE,
                layers=(256 * KiB,),
                platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"),
                seed=4,
            ),
            "solo:1": push_image(
                server, "team/solo", "1", base_layers=BASE[1:], layers=(768 * KiB,), kind="oci-manifest"
            ),
        }
        yield Source(server, images)


def phase_of(request: ProxyRequest, pushed_tags: set[str]) -> str | None:
    """The phase a request at the target belongs to (``None``: the ping, HEADs before a push...)."""
    if "/blobs/uploads/" in request.path and request.method in ("PUT", "PATCH"):
        return "blob upload"  # the request that carries the blob
    if "/manifests/" in request.path:
        if request.method == "PUT":
            if "/manifests/sha256:" not in request.path:
                pushed_tags.add(request.path)
            return "manifest push"
        if request.method == "HEAD" and request.path in pushed_tags:
            return "verification"
    return None


@dataclass
class Killer:
    """Kills the child with SIGKILL on the ``k``-th request of ``phase`` (after ``delay`` seconds)."""

    phase: str
    k: int
    delay: float
    pid: int | None = None
    landed: str | None = None
    requests: Callable[[], int] | None = None  # how many requests the target saw so far
    requests_at_kill: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    pushed_tags: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: ProxyRequest) -> Fault | None:
        with self.lock:
            phase = phase_of(request, self.pushed_tags)
            if phase is None:
                return None
            self.seen[phase] = self.seen.get(phase, 0) + 1
            if phase == self.phase and self.seen[phase] == self.k + 1 and self.landed is None:
                self.landed = f"{phase} #{self.k + 1} (+{self.delay * 1000:.1f} ms)"
                if self.delay:
                    threading.Timer(self.delay, self.kill).start()
                else:
                    self.kill()
        return None

    def kill(self) -> None:
        if self.requests is not None:
            self.requests_at_kill = self.requests()
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class Output:
    """Drains a child's stdout and stderr; ``on_line`` sees every stdout line as it comes."""

    def __init__(self, process: subprocess.Popen[str], on_line: Callable[[str], None] | None = None) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(process.stdout, self.out, on_line), daemon=True),
            threading.Thread(target=self._drain, args=(process.stderr, self.err, None), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(stream: object, into: list[str], on_line: Callable[[str], None] | None) -> None:
        assert stream is not None
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)
            if on_line is not None:
                on_line(line)

    def join(self) -> str:
        for thread in self._threads:
            thread.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return "".join(self.out) + "".join(self.err)


@pytest.fixture(scope="module")
def baseline(
    origin: Source, registry_factory: RegistryFactory, tmp_path_factory: pytest.TempPathFactory
) -> dict[bool, dict[str, int]]:
    """Requests per phase of uninterrupted runs (what the seeds choose ``k`` from): of a run copying every
    image (``False``) and of one after the first two were mirrored already (``True``)."""
    seen: dict[bool, dict[str, int]] = {}
    for partial in (False, True):
        with registry_factory() as target, CountingProxy(target) as proxy:
            checkout = Checkout.create(tmp_path_factory.mktemp("baseline"), origin.registry.host, proxy.host, [])
            if partial:
                checkout.write_images(origin.references(list(origin.images)[:2]))
                status, out, err = checkout.sync()
                assert status == 0, out + err
            counter = Killer("none", 0, 0.0)
            proxy.fault = counter
            checkout.write_images(origin.references())
            status, out, err = checkout.sync()
            assert status == 0, out + err
            assert checkout.mirrored_lines() == origin.lines()
            seen[partial] = counter.seen
    return seen


def assert_sound(target: RegistryServer, checkout: Checkout, origin: Source) -> int:
    """No tag of the target points at an incomplete image, every tag holds its source's digest, and the list
    names only what the target holds; returns the number of tags checked."""
    state = check_target(target)
    assert state.problems == []
    by_tag = {(f"src/{image.repository}", image.tag): image.digest for image in origin.images.values()}
    for key, digest in state.tags.items():
        assert by_tag.get(key) == digest, key
    assert check_mirrored_list(checkout.mirrored, checkout.mapper, target, state, source=origin.registry.host) == []
    return len(state.tags)


BALLAST = Path(__file__).resolve().parents[1] / "data" / "upstream" / "upstream-mirrored-images.txt"


def ours(lines: list[str], origin: Source) -> list[str]:
    """The lines of ``origin``'s images (a list may also hold the ballast of another mirror)."""
    return [line for line in lines if line.startswith(origin.registry.host + "/")]


def others(lines: list[str], origin: Source) -> list[str]:
    prefix = origin.registry.host + "/"
    return [line for line in lines if not line.startswith(prefix)]


def temporary_lists(checkout: Checkout) -> list[Path]:
    """Temporary files of the mirrored list being written (or left by a run killed while writing it)."""
    return sorted(checkout.mirrored.parent.glob(f".{checkout.mirrored.name}.*tmp"))


def kill_mid_upload(relay: TrickleRelay, process: subprocess.Popen[str], offset: int, skip: int) -> Callable[[], str]:
    """Let ``offset`` bytes of the body of a blob upload (after ``skip`` such uploads) reach the target, hold
    the rest, and SIGKILL the run then. Returns a check to call after the run ended: where the kill landed."""
    relay.rule = Trickle("PUT", r"/blobs/uploads/", direction="request", after=offset, skip=skip)

    def watch() -> None:
        if relay.reached.wait(60):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()

    def landed() -> str:
        held = [exchange for exchange in relay.exchanges if exchange.shaped == "request"]
        assert len(held) == 1, "no upload body was held: the kill did not land mid-upload"
        body = held[0]
        # Part of the body reached the registry, the rest never did: the kill hit the upload mid-body.
        assert 0 < body.request_bytes == offset < body.declared and not body.done, body
        return f"blob upload, mid-body: {body.request_bytes} of {body.declared} bytes sent"

    return landed


def kill_mid_list_write(checkout: Checkout, process: subprocess.Popen[str]) -> threading.Thread:
    """SIGKILL the run as soon as its temporary copy of the mirrored list appears (it is being written)."""

    def watch() -> None:
        while process.poll() is None:
            if temporary_lists(checkout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", range(TRIALS))
def test_a_killed_sync_leaves_a_sound_target_and_a_rerun_completes(
    seed: int,
    origin: Source,
    baseline: dict[bool, dict[str, int]],
    registry_factory: RegistryFactory,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    phase = PHASES[seed % len(PHASES)]
    with (
        registry_factory() as target,
        CountingProxy(target) as proxy,
        TrickleRelay(proxy.registry) as relay,
    ):
        checkout = Checkout.create(tmp_path, origin.registry.host, relay.host, [])
        keys = list(origin.images)
        partial = bool(seed % 2)
        if phase == "list write":  # a big list of another mirror: writing it takes a few milliseconds
            checkout.mirrored.write_bytes(BALLAST.read_bytes())
        if partial:  # a list already recording two images, which the kill must leave intact
            checkout.write_images(origin.references(keys[:2]))
            status, out, err = checkout.sync()
            assert status == 0, out + err
        checkout.write_images(origin.references())
        before = checkout.mirrored.read_bytes() if checkout.mirrored.exists() else None
        before_lines = checkout.mirrored_lines()
        proxy.reset()

        delay = rng.choice([0.0, rng.uniform(0.0, DELAYS[phase])])
        killer = Killer(phase, rng.randrange(max(1, baseline[partial].get(phase, 1) * 3 // 4)), delay)
        killer.requests = lambda: len(proxy.records)
        landed: Callable[[], str] | None = None
        started = time.monotonic()
        for _attempt in range(5):  # only "list write" tries again, when its kill came after the rename
            process = checkout.start_sync()
            killer.pid = process.pid
            if phase == "blob upload":
                landed = kill_mid_upload(relay, process, rng.randrange(16 * KiB, 200 * KiB), rng.randrange(3))
            elif phase == "list write":
                kill_mid_list_write(checkout, process)
            else:
                proxy.fault = killer
            output = Output(process)
            if phase == "startup":
                when = rng.uniform(0.05, DELAYS[phase])
                killer.landed = f"startup ({when * 1000:.0f} ms after the start)"
                threading.Timer(when, killer.kill).start()
            status = process.wait(timeout=60)
            text = output.join()
            if phase == "list write" and status == 0:
                # The whole write fell between two looks for the temporary file: restore the list, try again.
                assert before is not None
                checkout.mirrored.write_bytes(before)
                continue
            break
        assert status == -signal.SIGKILL, f"the kill ({killer.landed}) came too late:\n{text}"
        seconds = time.monotonic() - started
        if landed is not None:
            killer.landed = landed()
        if phase == "list write":
            # Killed while writing: its temporary file is left, the list is the old one, whole.
            leftovers = temporary_lists(checkout)
            assert leftovers, "the kill came after the new list was renamed into place"
            assert checkout.mirrored.read_bytes() == before
            size = leftovers[0].stat().st_size
            killer.landed = f"list write (temporary file of {size} bytes, not yet renamed into place)"

        # After the kill: nothing incomplete at the target, the list (old or new) names only what it holds.
        assert_sound(target, checkout, origin)
        after = checkout.mirrored_lines()
        assert ours(after, origin) in (ours(before_lines, origin), origin.lines()), after
        assert others(after, origin) == others(before_lines, origin)  # the ballast is kept, line for line

        proxy.fault = None
        relay.rule = None
        status, out, err = checkout.sync()
        assert status == 0, out + err
        assert assert_sound(target, checkout, origin) == len(origin.images)
        assert ours(checkout.mirrored_lines(), origin) == origin.lines()
        assert temporary_lists(checkout) == []  # the next write cleared what the killed one left
        for image in origin.images.values():
            assert get_manifest_digest(target, f"src/{image.repository}", image.tag) == image.digest
    listed = "the old list kept" if after == before_lines else "the new list written"
    where = f"{killer.landed}, after {killer.requests_at_kill or len(proxy.records)} target requests"
    print(f"seed {seed}: killed after {seconds:.2f} s in {where}; {listed}")
    figures.count("kills survived")
    figures.count("interrupted runs resumed to completion")
    figures.count("images verified digest-exact at the target", len(origin.images))
    figures.count("wrong entries in mirrored-images.txt", 0)


def slowed(proxy: CountingProxy, seconds: float) -> None:
    """Every blob download through ``proxy`` waits ``seconds`` before the registry answers."""

    def fault(request: ProxyRequest) -> Fault | None:
        return Fault.slow(seconds) if request.method == "GET" and "/blobs/sha256:" in request.path else None

    proxy.fault = fault


def tags_present(target: RegistryServer, origin: Source) -> set[str]:
    """Keys of the images whose tag the target holds at the source's digest."""
    return {
        key
        for key, image in origin.images.items()
        if get_manifest_digest(target, f"src/{image.repository}", image.tag) == image.digest
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_sync_and_records_what_was_verified(
    signum: signal.Signals, origin: Source, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    with registry_factory() as target, CountingProxy(origin.registry) as source:
        slowed(source, 0.25)
        checkout = Checkout.create(tmp_path, source.host, target.host, [])
        refs = {key: f"{source.host}/{image.repository}:{image.tag}" for key, image in origin.images.items()}
        checkout.write_images(list(refs.values()))
        process = checkout.start_sync("--concurrency", "2")
        output = Output(process)
        deadline = time.monotonic() + 30
        done: set[str] = set()
        while len(done) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            done = tags_present(target, origin)
        assert process.poll() is None, "the run ended before it could be interrupted"
        signalled = time.monotonic()
        process.send_signal(signum)
        status = process.wait(timeout=30)
        seconds = time.monotonic() - signalled
        text = output.join()
        assert status == 128 + signum, text
        assert seconds < 2.0, f"took {seconds:.1f} s to stop\n{text}"

        # What was finished before the signal is recorded; what was not is named and not recorded.
        recorded = {line.partition("@")[0] for line in checkout.mirrored_lines()}
        assert {refs[key] for key in done} <= recorded
        assert recorded < set(refs.values()), "everything finished: the signal came too late to test anything"
        not_done = sorted(set(refs.values()) - recorded)
        assert f"{signum.name} received: no new images or blobs start" in text
        named = f"cancelled ({signum.name}): {len(not_done)} image{'s' if len(not_done) != 1 else ''} not done"
        line = next(line for line in text.splitlines() if line.startswith(f"cancelled ({signum.name}):"))
        prefix = f"{named} and not recorded; the next run copies them: "
        assert line.startswith(prefix) and sorted(line.removeprefix(prefix).split(", ")) == not_done, line
        for ref in not_done:
            assert f"NOTDONE {ref} -> " in text
        assert_sound(target, checkout, origin)

        # A run without a signal completes everything.
        source.fault = None
        status, out, err = checkout.sync()
        assert status == 0, out + err
        assert assert_sound(target, checkout, origin) == len(origin.images)
        assert [line.partition("@")[0] for line in checkout.mirrored_lines()] == sorted(refs.values())
    print(
        f"{signum.name}: stopped {seconds:.2f} s after the signal; {len(recorded)} recorded, {len(not_done)} not done"
    )
    figures.count("interrupted runs resumed to completion")
    figures.count("images verified digest-exact at the target", len(origin.images))
    figures.count("wrong entries in mirrored-images.txt", 0)


def test_a_second_signal_exits_at_once(origin: Source, registry_factory: RegistryFactory, tmp_path: Path) -> None:
    with registry_factory() as target, CountingProxy(origin.registry) as source:
        slowed(source, 5.0)  # a transfer that would hold the graceful stop for its whole grace period
        checkout = Checkout.create(tmp_path, source.host, target.host, [])
        checkout.write_images([f"{source.host}/{image.repository}:{image.tag}" for image in origin.images.values()])
        process = checkout.start_sync()
        output = Output(process)
        deadline = time.monotonic() + 30
        while source.count(method="GET", path=r"/blobs/sha256:") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        seconds = time.monotonic() - signalled
        text = output.join()
        assert status == 128 + signal.SIGTERM, text
        assert seconds < 1.0, text
        assert "SIGTERM again: exiting at once" in text
        assert_sound(target, checkout, origin)
        assert checkout.mirrored_lines() == []


def test_a_signal_stops_daily_and_records_what_was_verified(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    tags = [f"1.{minor}" for minor in range(5)]
    with registry_factory() as upstream, registry_factory() as target, CountingProxy(upstream) as source:
        pushed = {
            tag: push_image(upstream, "team/app", tag, base_layers=BASE, layers=(MiB,), seed=10 + i)
            for i, tag in enumerate(tags)
        }
        slowed(source, 0.25)
        checkout = Checkout.create(tmp_path, source.host, target.host, [])
        (checkout.path / "mirror" / "required-images-daily.txt").write_text(f"{source.host}/team/app\n")
        process = checkout.start("daily", "--concurrency", "2")
        output = Output(process)
        deadline = time.monotonic() + 30
        done: set[str] = set()
        while not done and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            done = {tag for tag in tags if get_manifest_digest(target, "src/team/app", tag) == pushed[tag].digest}
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = process.wait(timeout=30)
        seconds = time.monotonic() - signalled
        text = output.join()
        assert status == 143, text
        assert seconds < 2.0, text

        recorded = {line.partition("@")[0].rpartition(":")[2] for line in checkout.mirrored_lines()}
        assert done <= recorded < set(tags), text
        line = next(line for line in text.splitlines() if line.startswith("cancelled (SIGTERM):"))
        named = sorted(item.rpartition(":")[2] for item in line.partition("the next run copies them: ")[2].split(", "))
        assert named == sorted(set(tags) - recorded), line
        state = check_target(target)
        assert state.problems == []
        assert check_mirrored_list(checkout.mirrored, checkout.mapper, target, state) == []

        source.fault = None
        process = checkout.start("daily")
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, out + err
        state = check_target(target)
        assert state.problems == []
        assert check_mirrored_list(checkout.mirrored, checkout.mapper, target, state) == []
        assert {key[1]: digest for key, digest in state.tags.items()} == {tag: pushed[tag].digest for tag in tags}
        assert len(checkout.mirrored_lines()) == len(tags)
    figures.count("interrupted runs resumed to completion")
    figures.count("images verified digest-exact at the target", len(tags))
    figures.count("wrong entries in mirrored-images.txt", 0)


def test_a_cancelled_sync_starts_nothing(origin: Source, registry: RegistryServer) -> None:
    """The use case with its cancel event already set: every image comes back not done, and the target is
    never contacted (the source only for the HEADs of images the list pins, here none)."""
    config = parse_config(
        {"target": {"registry": registry.host}, "rules": [{"source": origin.registry.host, "target": "src"}]}
    )
    cancel = threading.Event()
    cancel.set()
    with CountingProxy(registry) as target:
        config = config.with_target_registry(target.host)
        with build_client(config, credentials=Credentials()) as client:
            refs = [parse_reference(image.reference) for image in origin.images.values()]
            report = sync(refs, Mapper(config), client, concurrency=2, cancel=cancel)
        assert target.records == []
    assert [result.cancelled for result in report.results] == [True] * len(refs)
    assert report.verified() == () and not report.ok
    assert (
        report.summary_lines()[-1]
        == f"{len(refs)} images: 0 ok (0 already up to date), 0 failed, {len(refs)} not done (cancelled); moved 0 B"
    )
    assert all(line.startswith("NOTDONE ") for line in report.summary_lines()[:-1])


def test_the_target_check_finds_incomplete_images_and_wrong_entries(source: RegistryServer, tmp_path: Path) -> None:
    """The walk the trials rely on can fail: a missing layer, a damaged config and a wrong list entry show."""
    index = push_image(source, "src/team/app", "1", base_layers=BASE[:1], seed=7)
    single = push_image(source, "src/team/solo", "1", kind="oci-manifest", seed=8)
    assert check_target(source).problems == []
    layer = max(index.blobs, key=lambda blob: blob.size)
    blob_path(source, layer.digest).unlink()
    config = str(json.loads(single.manifest)["config"]["digest"])
    corrupt_blob(source, config)
    state = check_target(source)
    assert any("src/team/app:1 -> sha256:" in p and f"blob {layer.digest}" in p for p in state.problems)
    assert any(p.startswith(f"src/team/solo:1: blob {config}: the content hashes to") for p in state.problems)
    checkout = Checkout.create(tmp_path, "upstream.example", source.host, [])
    checkout.mirrored.write_text(
        f"upstream.example/team/app:1@{index.digest}\nupstream.example/team/solo:1@{index.digest}\n"
        "upstream.example/team/gone:1@sha256:" + "0" * 64 + "\n"
    )
    problems = check_mirrored_list(checkout.mirrored, checkout.mapper, source, state)
    assert any("team/app:1" in p and layer.digest in p for p in problems)  # recorded, but incomplete
    assert any(f"team/solo:1@{index.digest} is recorded, but" in p for p in problems)  # another digest
    assert any("team/gone:1" in p and "holds nothing" in p for p in problems)  # not there at all


def test_a_daily_run_killed_mid_upload_leaves_a_sound_target_and_resumes(
    origin: Source, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    with registry_factory() as target, TrickleRelay(target) as relay:
        checkout = Checkout.create(tmp_path, origin.registry.host, relay.host, [])
        (checkout.path / "mirror" / "required-images-daily.txt").write_text(f"{origin.registry.host}/team/app\n")
        process = checkout.start("daily", "--concurrency", "4")
        landed = kill_mid_upload(relay, process, 100 * KiB, 1)
        output = Output(process)
        status = process.wait(timeout=60)
        text = output.join()
        assert status == -signal.SIGKILL, f"daily was not killed mid-upload:\n{text}"
        where = landed()
        state = check_target(target)
        assert state.problems == []
        assert check_mirrored_list(checkout.mirrored, checkout.mapper, target, state) == []

        relay.rule = None
        process = checkout.start("daily")
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, out + err
        state = check_target(target)
        assert state.problems == []
        expected = {key: origin.images[key] for key in ("app:1", "app:2")}
        assert state.tags == {(f"src/{image.repository}", image.tag): image.digest for image in expected.values()}
        assert checkout.mirrored_lines() == origin.lines(list(expected))
    print(f"daily: killed in {where}")
    figures.count("kills survived")
    figures.count("interrupted runs resumed to completion")
    figures.count("images verified digest-exact at the target", len(expected))
    figures.count("wrong entries in mirrored-images.txt", 0)


def test_a_sharded_sync_killed_mid_upload_writes_no_results_and_resumes(
    origin: Source, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    with registry_factory() as target, TrickleRelay(target) as relay:
        checkout = Checkout.create(tmp_path, origin.registry.host, relay.host, origin.references())
        results = checkout.path / "results" / "shard-1.json"
        process = checkout.start_sync("--shard", "1/1", "--results", str(results))
        landed = kill_mid_upload(relay, process, 64 * KiB, 2)
        output = Output(process)
        status = process.wait(timeout=60)
        text = output.join()
        assert status == -signal.SIGKILL, f"the sharded sync was not killed mid-upload:\n{text}"
        where = landed()
        # Nothing claims the interrupted work: no results file (not even part of one), no list.
        assert not results.parent.exists() or list(results.parent.iterdir()) == []
        assert not checkout.mirrored.exists()
        assert_sound(target, checkout, origin)

        relay.rule = None
        status, out, err = checkout.sync("--shard", "1/1", "--results", str(results))
        assert status == 0, out + err
        assert not checkout.mirrored.exists()  # a shard writes its results file only
        process = checkout.start("merge-results", str(results))
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, out + err
        assert assert_sound(target, checkout, origin) == len(origin.images)
        assert checkout.mirrored_lines() == origin.lines()
    print(f"sync --results: killed in {where}")
    figures.count("kills survived")
    figures.count("interrupted runs resumed to completion")
    figures.count("images verified digest-exact at the target", len(origin.images))
    figures.count("wrong entries in mirrored-images.txt", 0)


def test_a_signal_while_pinned_tags_are_checked_upstream_stops_at_once(
    origin: Source, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """SIGTERM while ``sync`` asks the source whether the tags the list pins moved, and every such HEAD stalls:
    the run stops at once instead of waiting out each HEAD's read timeouts and retries (minutes)."""
    with registry_factory() as target, CountingProxy(origin.registry) as source:
        checkout = Checkout.create(tmp_path, source.host, target.host, [])
        images = list(origin.images.values())
        checkout.write_images([f"{source.host}/{image.repository}:{image.tag}" for image in images])
        pinned = sorted(f"{source.host}/{image.repository}:{image.tag}@{image.digest}" for image in images)
        checkout.mirrored.write_text("".join(f"{line}\n" for line in pinned), encoding="utf-8")
        source.fault = FaultRule(Fault.stall_mid_body(0, 600), method="HEAD", times=None)
        process = checkout.start_sync("--timeout", "30")
        output = Output(process)
        deadline = time.monotonic() + 20
        while source.count(method="HEAD") < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None and source.count(method="HEAD") >= 2, output.join()
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        seconds = time.monotonic() - signalled
        text = output.join()
        assert status == 143, text
        assert seconds < 2.0, f"took {seconds:.1f} s to stop\n{text}"
        # Nothing was copied and nothing recorded wrongly: the list is as it was, every image named not done.
        assert checkout.mirrored_lines() == pinned
        assert check_target(target).tags == {}
        assert f"cancelled (SIGTERM): {len(images)} images not done and not recorded" in text
        assert "Traceback" not in text
    print(f"SIGTERM during the upstream HEADs: stopped {seconds:.2f} s after the signal")
    figures.count("wrong entries in mirrored-images.txt", 0)
