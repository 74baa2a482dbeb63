"""The copy engine against skopeo over emulated long and lossy links (run by hand as root, never a timed test).

    .venv/bin/python bench/wan.py [--reps 2] [--profile cross-border --profile good-wan]
                                  [--placement near-target --placement near-source] [--skip resets]

This kernel has no ``sch_netem``, so the benchmark builds its links itself: two network namespaces ("near",
where the tool runs, and "far") joined by two TUN devices and ``bench/wanlink.c`` (built here with gcc), a
user-space forwarder with per-direction delay, a bottleneck rate with a drop-tail buffer of about one
bandwidth-delay product, and random loss. TCP in both namespaces uses cubic (``ip route ... congctl cubic``),
as on GitHub's hosted runners. Profiles:

- ``cross-border``: 180 ms RTT, 50 Mbit/s, 0.5% loss each way (the 20-image set at scale 0.1, ~94 MB);
- ``good-wan``: 40 ms RTT, 200 Mbit/s, no loss (the 20-image set at scale 0.3, ~280 MB);

and both placements: ``near-target`` (the tool next to the target, the source across the link: a runner in
China pulling from Docker Hub) and ``near-source`` (the tool next to the source, the target across the link:
a hosted runner pushing into ECR China). Each repetition runs ``python -m bot sync`` and ``skopeo sync --all``
into fresh target registries, alternating which goes first, then each again into its filled target (the no-op
re-sync: the bot from the mirrored list it wrote, its everyday path), plus one large image (the big layer of the set,
102 MB at scale 0.1, 307 MB at 0.3: how the bot fares when one huge layer dominates an image).

The reset scenario (loopback, no emulated link): the 307 MB layer through a TCP proxy that cuts every
connection after ``--reset-mb`` MB (default 50) with a reset; bytes the proxy passed to the tool against the
blob's size, for the bot and for skopeo.

Printed per run: wall time, bytes over the link each way, the share of the link's capacity (the set's
distinct blob bytes / time / rate), and the bot / skopeo ratio. Before the runs on each link and placement,
its ceiling: the share raw TCP reaches moving the same bytes the same way (``bench/link_probe.py``, see
:func:`link_ceiling`; ``--skip ceiling`` leaves it out). Every copy is checked digest-exact in the
target's storage. Every namespace, device, process and file the benchmark made is removed at the end (also
after Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from copy_vs_skopeo import Run, run_process  # noqa: E402
from dataset import Dataset, SourceImage, open_source  # noqa: E402

BOT = "bot"
SKOPEO = "skopeo"
FAR_IP, NEAR_IP = "10.77.0.1", "10.77.0.2"
MTU = 1500


@dataclass(frozen=True)
class Profile:
    name: str
    rtt_ms: float
    mbit: float
    loss: float
    scale: float
    targets: float  # the share of the link the bot should reach

    @property
    def rate_bps(self) -> float:
        return self.mbit * 1e6

    @property
    def bdp_bytes(self) -> int:
        return int(self.rate_bps / 8 * self.rtt_ms / 1000)


PROFILES = {
    "cross-border": Profile("cross-border", 180, 50, 0.005, 0.1, 0.60),
    "good-wan": Profile("good-wan", 40, 200, 0.0, 0.3, 0.90),
}
PLACEMENTS = ("near-target", "near-source")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


# -- the emulated link --------------------------------------------------------------------------------------


class Link:
    """Namespaces "far" and "near" joined by the forwarder; everything made is listed for removal."""

    def __init__(self, profile: Profile, work: Path, binary: Path) -> None:
        tag = secrets.token_hex(3)
        self.profile = profile
        self.far, self.near = f"wanb-far-{tag}", f"wanb-near-{tag}"
        self.tun_far, self.tun_near = f"wbf{tag}", f"wbn{tag}"
        self.stats = work / f"link-{tag}.stats"
        self.binary = binary
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Link:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        p = self.profile
        for ns in (self.far, self.near):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Each direction: the one-way delay is half the RTT; the buffer about one BDP (at least 64 packets).
        argv = [
            str(self.binary),
            self.tun_far,
            self.tun_near,
            f"{p.rate_bps:.0f}",
            str(int(p.rtt_ms * 500)),
            str(p.loss),
            str(max(p.bdp_bytes, 64 * MTU)),
            "14",
            str(self.stats),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("the link forwarder did not start")
        for ns, dev, mine, peer in (
            (self.far, self.tun_far, FAR_IP, NEAR_IP),
            (self.near, self.tun_near, NEAR_IP, FAR_IP),
        ):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{mine}/32", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up", "mtu", str(MTU))
            sh("ip", "-n", ns, "route", "add", f"{peer}/32", "dev", dev, "congctl", "cubic")

    def counters(self) -> tuple[int, int]:
        """Bytes delivered so far: far -> near, near -> far."""
        time.sleep(0.6)  # the forwarder writes its counters every half second
        with contextlib.suppress(OSError, ValueError):
            fields = self.stats.read_text().split()
            return int(fields[0]), int(fields[1])
        return 0, 0

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            if self.process.poll() is None:
                self.process.kill()
            self.process = None
        for ns in (self.far, self.near):
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():  # what a failure left running
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "delete", ns, check=False)  # also deletes a device still inside
        for dev in (self.tun_far, self.tun_near):
            sh("ip", "link", "delete", dev, check=False)
        self.stats.unlink(missing_ok=True)


# -- registries inside a namespace --------------------------------------------------------------------------


@dataclass
class NsRegistry:
    ns: str
    ip: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.port}"

    def start(self, work: Path) -> NsRegistry:
        config = work / f"registry-{self.ns}-{self.port}.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "error", "accesslog": {"disabled": True}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(self.root)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}},
                    },
                    "http": {"addr": self.host, "secret": secrets.token_hex(16)},
                }
            )
        )
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if (
                sh("ip", "netns", "exec", self.ns, "curl", "-sf", f"http://{self.host}/v2/", check=False).returncode
                == 0
            ):
                return self
            time.sleep(0.05)
        raise SystemExit(f"the registry in {self.ns} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def distinct_bytes(images: Sequence[SourceImage]) -> int:
    """Distinct blob bytes of ``images``, read from the source storage's manifests (shared layers once)."""
    return sum(size for size in blob_sizes(images).values())


def blob_sizes(images: Sequence[SourceImage]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for image in images:
        root = image_root(image)
        pending = [image.digest]
        while pending:
            data = blob_path(root, pending.pop())
            doc = json.loads(data.read_bytes())
            for child in doc.get("manifests", []):
                pending.append(child["digest"])
            for blob in [*doc.get("layers", []), *([doc["config"]] if "config" in doc else [])]:
                sizes[blob["digest"]] = int(blob["size"])
    return sizes


def image_root(image: SourceImage) -> Path:
    return SOURCE_ROOTS[image.spec.repository]


def blob_path(root: Path, digest: str) -> Path:
    return root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"


SOURCE_ROOTS: dict[str, Path] = {}


def tag_digest(root: Path, repository: str, tag: str) -> str | None:
    link = root / "docker/registry/v2/repositories" / repository / "_manifests/tags" / tag / "current/link"
    return link.read_text().strip() if link.exists() else None


def missing_in_storage(root: Path, repository: str, image: SourceImage) -> list[str]:
    """What of ``image`` the target storage lacks: the tag's digest, every child manifest and blob."""
    got = tag_digest(root, repository, image.spec.tag)
    if got != image.digest:
        return [f"{repository}:{image.spec.tag} holds {got}, not {image.digest}"]
    missing: list[str] = []
    pending = [image.digest]
    while pending:
        digest = pending.pop()
        data = root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
        if not data.exists():
            missing.append(f"{repository}: {digest} missing")
            continue
        if digest == image.digest or data.stat().st_size < 1 << 20:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                doc = json.loads(data.read_bytes())
                if isinstance(doc, dict) and ("manifests" in doc or "layers" in doc):
                    children = [*doc.get("manifests", []), *doc.get("layers", []), doc.get("config") or {}]
                    pending.extend(c["digest"] for c in children if isinstance(c, dict) and "digest" in c)
    return missing


# -- the tools ----------------------------------------------------------------------------------------------


class Tools:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = dict(os.environ)
        docker_config = work / "docker-config"
        docker_config.mkdir(parents=True, exist_ok=True)
        self.env.update(DOCKER_CONFIG=str(docker_config), PYTHONPATH=str(REPO))
        for key in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
            self.env.pop(key, None)
        self.count = 0
        self.last: dict[str, Path] = {}  # tool -> the directory of its last run
        self.bot_args: list[str] = []
        self.timeout: float | None = None  # seconds a run may take before it is killed and reported unfinished

    def scratch(self, label: str) -> Path:
        self.count += 1
        path = self.work / f"{self.count:03d}-{label}"
        path.mkdir(parents=True)
        return path

    def run(
        self,
        ns: str | None,
        tool: str,
        label: str,
        source: str,
        target: str,
        images: Sequence[SourceImage],
        *,
        again: bool = False,
    ) -> Run:
        """One run of ``tool``; ``again``: the bot starts from the mirrored list its previous run wrote."""
        previous = self.last.get(tool)
        cwd = self.scratch(f"{tool}-{label}")
        self.last[tool] = cwd
        if again and previous is not None and (previous / "mirrored-images.txt").exists():
            shutil.copy(previous / "mirrored-images.txt", cwd / "mirrored-images.txt")
        prefix = ["ip", "netns", "exec", ns] if ns else []
        if tool == BOT:
            config = cwd / "config.yml"
            config.write_text(
                json.dumps(
                    {
                        "target": {"registry": target},
                        "rules": [{"source": f"{source}/bench", "target": "mirror"}],
                        "insecure_registries": [source, target],
                    }
                )
            )
            listing = cwd / "required-images.txt"
            listing.write_text("".join(f"{source}/{i.spec.repository}:{i.spec.tag}\n" for i in images))
            argv = [sys.executable, "-m", "bot", "sync", "--config", str(config), "--list", str(listing)]
            argv += ["--mirrored", str(cwd / "mirrored-images.txt"), *self.bot_args]
        else:
            conf = cwd / "registries.conf"
            conf.write_text("".join(f'[[registry]]\nlocation = "{h}"\ninsecure = true\n\n' for h in (source, target)))
            wanted: dict[str, list[str]] = {}
            for image in images:
                wanted.setdefault(image.spec.repository, []).append(image.spec.tag)
            (cwd / "images.yml").write_text(json.dumps({source: {"tls-verify": False, "images": wanted}}))
            argv = ["skopeo", "--registries-conf", str(conf), "sync", "--all", "--src", "yaml", "--dest", "docker"]
            argv += ["--src-tls-verify=false", "--dest-tls-verify=false", "--src-no-creds", "--dest-no-creds"]
            argv += [str(cwd / "images.yml"), f"{target}/mirror"]
        return run_process([*prefix, *argv], env=self.env, cwd=cwd, label=label, timeout=self.timeout)


# -- one measurement ----------------------------------------------------------------------------------------


@dataclass
class Measure:
    profile: str
    placement: str
    scenario: str
    tool: str
    seconds: float
    payload: int
    link_bytes: tuple[int, int] = (0, 0)  # far -> near, near -> far
    rate_bps: float = 0.0
    ok: bool = True
    peak_rss_mb: float = 0.0

    @property
    def share(self) -> float:
        return self.payload * 8 / self.seconds / self.rate_bps if self.rate_bps else 0.0


def link_runs(
    profile: Profile, placement: str, dataset: Dataset, args: argparse.Namespace, tools: Tools, work: Path, binary: Path
) -> list[Measure]:
    results: list[Measure] = []
    with Link(profile, work, binary) as link:
        far_source = placement == "near-target"
        source = NsRegistry(
            link.far if far_source else link.near, FAR_IP if far_source else NEAR_IP, 5000, dataset.registry.root
        )
        source.start(work)
        try:
            images = list(dataset.images[: args.images])
            scenarios = [("many", images, distinct_bytes(images))]
            if "big" not in args.skip:
                scenarios.append(("big", [dataset.big], dataset.big.blob_bytes))
            if "ceiling" not in args.skip:
                CEILINGS[(profile.name, placement)] = link_ceiling(link, profile, placement, images)
            for rep in range(1, args.reps + 1):
                order = tuple(t for t in ((BOT, SKOPEO) if rep % 2 else (SKOPEO, BOT)) if t in args.tool)
                for scenario, images, payload in scenarios:
                    for tool in order:
                        for measure in one_run(
                            link, profile, placement, scenario, tool, rep, images, payload, source, tools, work
                        ):
                            results.append(measure)
                            print("  " + describe(measure), flush=True)
        finally:
            source.stop()
    return results


# -- the link's own ceiling ----------------------------------------------------------------------------------

PROBE_PORT = 5002
PROBE_STREAMS = (8, 32, 128)
CEILINGS: dict[tuple[str, str], float] = {}  # (profile, placement) -> the highest share any client can reach


def link_ceiling(link: Link, profile: Profile, placement: str, images: Sequence[SourceImage]) -> float:
    """The share of the link raw TCP reaches moving the same bytes the same way, with no registry protocol.

    The slower of two transfers: all the set's distinct bytes sent at once, split evenly over 8, 32 or 128
    connections (the best count counts), and, with the tool next to the source, the largest blob sent over one
    connection. That second one is a hard bound: a blob's upload is one ordered stream by protocol (chunked
    PATCH, ECR's UploadLayerPart). Next to the target the largest blob is downloaded in ranged parts, so it
    does not apply there. The first is a reference, not a bound: a tool opening more connections, or fresh ones
    (a new connection's slow start outruns a lossy link's steady state), can beat it a little.
    """
    sizes = blob_sizes(images)
    payload = sum(sizes.values())
    sender, receiver, receiver_ip = (
        (link.far, link.near, NEAR_IP) if placement == "near-target" else (link.near, link.far, FAR_IP)
    )
    probe = str(REPO / "bench" / "link_probe.py")

    def probe_send(total: int, streams: int) -> subprocess.CompletedProcess[str]:
        argv = ["ip", "netns", "exec", sender, sys.executable, probe, "send", receiver_ip, str(PROBE_PORT)]
        return sh(*argv, str(total), str(streams), check=False)

    def send(total: int, streams: int) -> float:
        done = probe_send(total, streams)
        if done.returncode != 0:
            raise SystemExit(f"link probe failed: {done.stderr.strip()[-300:]}")
        return float(json.loads(done.stdout)["seconds"])

    sink = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, probe, "sink", str(PROBE_PORT)])
    try:
        for _ in range(100):  # the sink is listening once a one-byte send goes through
            if probe_send(1, 1).returncode == 0:
                break
            time.sleep(0.05)
        bulk = {streams: send(payload, streams) for streams in PROBE_STREAMS}
        best = min(bulk.values())
        largest = max(sizes.values())
        single = send(largest, 1) if placement == "near-source" else 0.0
    finally:
        sink.terminate()
        sink.wait(5)
    ceiling = payload * 8 / max(best, single) / profile.rate_bps
    shown = ", ".join(f"{n} streams {t:.1f} s" for n, t in bulk.items())
    one = f"; the largest blob ({largest / 1e6:.0f} MB) over one stream {single:.1f} s" if single else ""
    print(
        f"  {profile.name:12} {placement:11} ceiling: raw TCP, {payload / 1e6:.0f} MB: {shown}{one}: "
        f"share {ceiling:.0%}",
        flush=True,
    )
    return ceiling


def one_run(
    link: Link,
    profile: Profile,
    placement: str,
    scenario: str,
    tool: str,
    rep: int,
    images: Sequence[SourceImage],
    payload: int,
    source: NsRegistry,
    tools: Tools,
    work: Path,
) -> list[Measure]:
    """The copy into a fresh target; after the many-image copy also its no-op re-sync into the filled target
    (the bot from the mirrored list the copy wrote, its everyday path; skopeo ``sync`` again)."""
    far_target = placement == "near-source"
    root = Path(tempfile.mkdtemp(prefix="target-", dir=work))
    target = NsRegistry(link.far if far_target else link.near, FAR_IP if far_target else NEAR_IP, 5001, root)
    target.start(work)
    measures: list[Measure] = []
    try:
        runs = [scenario, "noop"] if scenario == "many" else [scenario]
        for kind in runs:
            before = link.counters()
            label = f"{profile.name}-{placement}-{kind}-{rep}"
            run = tools.run(link.near, tool, label, source.host, target.host, images, again=kind == "noop")
            after = link.counters()
            problems = [p for image in images for p in missing_in_storage(root, f"mirror/{image.spec.name}", image)]
            if run.returncode != 0 or problems:
                print(f"  {tool} failed (exit {run.returncode}): {run.stderr[-600:]} {problems[:3]}", flush=True)
            moved = (after[0] - before[0], after[1] - before[1])
            ok = run.returncode == 0 and not problems
            measures.append(
                Measure(
                    profile.name,
                    placement,
                    kind,
                    tool,
                    run.seconds,
                    0 if kind == "noop" else payload,
                    moved,
                    profile.rate_bps,
                    ok,
                    run.peak_rss_mb,
                )
            )
            if not ok:
                break
    finally:
        target.stop()
        shutil.rmtree(root, ignore_errors=True)
    return measures


def describe(m: Measure) -> str:
    mb = 1e6
    return (
        f"{m.profile:12} {m.placement:11} {m.scenario:5} {m.tool:6} {m.seconds:7.1f} s  "
        f"payload {m.payload / mb:6.0f} MB  "
        f"link far->near {m.link_bytes[0] / mb:6.0f} MB, near->far {m.link_bytes[1] / mb:6.0f} MB  "
        f"share {f'{m.share:4.0%}' if m.payload else '   -'}  rss {m.peak_rss_mb:4.0f} MB{'' if m.ok else '  FAILED'}"
    )


# -- resets -------------------------------------------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy that resets every connection once it has passed ``limit`` bytes towards the client."""

    def __init__(self, upstream: tuple[str, int], limit: int) -> None:
        self.upstream = upstream
        self.limit = limit
        self.sent = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        passed = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counted and passed + len(data) > self.limit:
                    data = data[: self.limit - passed]
                    dst.sendall(data)
                    with self._lock:
                        self.sent += len(data)
                        self.cuts += 1
                    for sock in (src, dst):  # RST, not FIN
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    break
                dst.sendall(data)
                passed += len(data)
                if counted:
                    with self._lock:
                        self.sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.listener.close()


def reset_runs(
    dataset: Dataset, reps: int, limit_mb: int, tools: Tools, work: Path
) -> list[tuple[str, float, int, int, bool]]:
    """(tool, seconds, bytes passed to the tool, cuts, ok) per run of the big image through the cutting proxy."""
    rows = []
    size = dataset.big.blob_bytes
    source = dataset.registry
    for rep in range(1, reps + 1):
        for tool in (BOT, SKOPEO) if rep % 2 else (SKOPEO, BOT):
            proxy = CuttingProxy(("127.0.0.1", source.port), limit_mb * 1000 * 1000)
            root = Path(tempfile.mkdtemp(prefix="target-", dir=work))
            port = free_port()
            target = NsRegistry("", "127.0.0.1", port, root)
            target_start_local(target, work)
            try:
                run = tools.run(None, tool, f"resets-{rep}", proxy.host, target.host, [dataset.big])
            finally:
                target.stop()
                proxy.close()
            problems = missing_in_storage(root, f"mirror/{dataset.big.spec.name}", dataset.big)
            ok = run.returncode == 0 and not problems
            shutil.rmtree(root, ignore_errors=True)
            rows.append((tool, run.seconds, proxy.sent, proxy.cuts, ok))
            print(
                f"  resets every {limit_mb} MB  {tool:6} {run.seconds:6.1f} s  downloaded {proxy.sent / 1e6:6.0f} MB "
                f"for {size / 1e6:.0f} MB ({proxy.sent / size:.2f}x), {proxy.cuts} cuts{'' if ok else '  FAILED'}",
                flush=True,
            )
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def target_start_local(target: NsRegistry, work: Path) -> None:
    """A registry in the root namespace (no ``ip netns exec``)."""
    config = work / f"registry-local-{target.port}.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(target.root)}, "delete": {"enabled": True}},
                "http": {"addr": target.host, "secret": secrets.token_hex(16)},
            }
        )
    )
    target.process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(200):
        if sh("curl", "-sf", f"http://{target.host}/v2/", check=False).returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit("the local target registry did not start")


# -- report -------------------------------------------------------------------------------------------------


def summary(results: Sequence[Measure]) -> None:
    print("\nsummary (median over repetitions; ratio = bot / skopeo of the medians)")
    keys = sorted({(m.profile, m.placement, m.scenario) for m in results})
    for key in keys:
        runs = {
            tool: [m for m in results if (m.profile, m.placement, m.scenario) == key and m.tool == tool]
            for tool in (BOT, SKOPEO)
        }
        if not runs[BOT] or not runs[SKOPEO]:
            continue
        med = {tool: statistics.median(m.seconds for m in runs[tool]) for tool in runs}
        share = {tool: statistics.median(m.share for m in runs[tool]) for tool in runs}
        span = {
            tool: f"{min(m.seconds for m in runs[tool]):.1f}-{max(m.seconds for m in runs[tool]):.1f} s"
            for tool in runs
        }
        failed = sum(not m.ok for tool in runs for m in runs[tool])
        profile = PROFILES[key[0]]
        goal = ""
        if key[2] == "many":
            ceiling = CEILINGS.get((key[0], key[1]))
            goal = f" (target {profile.targets:.0%}" + (f", ceiling {ceiling:.0%})" if ceiling else ")")
        shares = (f"share {share[BOT]:4.0%}{goal}", f"share {share[SKOPEO]:4.0%}") if key[2] != "noop" else ("", "")
        print(
            f"  {key[0]:12} {key[1]:11} {key[2]:5} bot {span[BOT]:14} {shares[0]:10}  "
            f"skopeo {span[SKOPEO]:14} {shares[1]:10}  ratio {med[BOT] / med[SKOPEO]:.2f}"
            + (f"  {failed} FAILED" if failed else "")
        )


def build_forwarder(work: Path) -> Path:
    binary = work / "wanlink"
    sh("gcc", "-O2", "-Wall", "-o", str(binary), str(REPO / "bench" / "wanlink.c"))
    return binary


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each measurement (default: 2)")
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES), help="default: both")
    parser.add_argument("--placement", action="append", choices=PLACEMENTS, help="default: both")
    parser.add_argument("--skip", action="append", default=[], choices=["links", "resets", "big", "ceiling"])
    parser.add_argument("--images", type=int, default=20, help="copy the first N images of the set (default: 20)")
    parser.add_argument("--tool", action="append", choices=[BOT, SKOPEO], help="only this tool (tuning; no ratios)")
    parser.add_argument("--bot-arg", action="append", default=[], help="pass this argument to the bot too")
    parser.add_argument("--reset-mb", type=int, default=50, help="the proxy cuts each connection after this many MB")
    parser.add_argument(
        "--timeout", type=float, default=900, help="kill a run after this many seconds, reported as FAILED (900)"
    )
    args = parser.parse_args(argv)
    args.tool = args.tool or [BOT, SKOPEO]
    signal.signal(signal.SIGTERM, _interrupt)  # clean up on kill too
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces and TUN devices)")
    for tool in ("ip", "gcc", "skopeo", "docker-registry", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool} on PATH (Debian: iproute2, gcc, skopeo, docker-registry, curl)")
    work = Path(tempfile.mkdtemp(prefix="wan-bench-"))
    tools = Tools(work)
    tools.bot_args = args.bot_arg
    tools.timeout = args.timeout
    results: list[Measure] = []
    try:
        binary = build_forwarder(work)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine is noisy)")
        if "links" not in args.skip:
            for name in args.profile or list(PROFILES):
                profile = PROFILES[name]
                dataset = open_source(profile.scale)
                dataset.registry.stop()  # its storage is served from inside the namespaces
                SOURCE_ROOTS.update((i.spec.repository, dataset.registry.root) for i in dataset.images)
                print(
                    f"{name}: {profile.rtt_ms:g} ms RTT, {profile.mbit:g} Mbit/s, {profile.loss:.1%} loss; "
                    f"{len(dataset.images[: args.images])} images, "
                    f"{distinct_bytes(dataset.images[: args.images]) / 1e6:.0f} MB distinct; "
                    f"big image {dataset.big.blob_bytes / 1e6:.0f} MB",
                    flush=True,
                )
                for placement in args.placement or PLACEMENTS:
                    results.extend(link_runs(profile, placement, dataset, args, tools, work, binary))
            summary(results)
        if "resets" not in args.skip:
            dataset = open_source(0.3)
            try:
                print(
                    f"resets: the {dataset.big.blob_bytes / 1e6:.0f} MB image through a proxy cutting every connection"
                )
                reset_runs(dataset, args.reps, args.reset_mb, tools, work)
            finally:
                dataset.registry.stop()
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    sys.exit(main())
