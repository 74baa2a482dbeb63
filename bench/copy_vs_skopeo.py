"""The copy engine against skopeo, in the same run, on loopback registries (run by hand, never a timed test).

    .venv/bin/python bench/copy_vs_skopeo.py [--scale 1] [--reps 2] [--concurrency N]

A source registry holds ~20 multi-arch images sharing base layers (~1 GB of distinct blobs) and one image
with a 1 GiB layer (``bench/dataset.py``; generated once and cached under ``bench/.data/``). For every
repetition, each tool copies into its own fresh target registry, so neither benefits from the other's work;
the order of the tools alternates between repetitions. Measured:

- many-image sync: ``python -m bot sync --list FILE`` vs ``skopeo sync --all --src yaml --dest docker`` (not
  ``--scoped``: skopeo then puts ``bench/app00:1.0`` at ``DEST/app00:1.0``, and the bot's rule
  ``{source: HOST/bench, target: mirror}`` puts it at ``mirror/app00:1.0`` too, so both write the same
  repositories);
- the no-op re-sync of the same list into the filled target: the bot with ``--all`` (checks every image at
  the target, like skopeo does) and without it (the everyday path: the mirrored list pins the digest, one
  HEAD to the source per image); zero blob bytes moved is shown from the registries' access logs and again
  through the test harness's counting proxy. The same again with a 200-entry list (each image under 10 tags,
  the extra tags put into the target untimed first), where per-image costs outweigh the process start;
- one large image: ``python -m bot copy`` vs ``skopeo copy --all``, and the bot's peak RSS while it copies
  the big layer (VmHWM polled from ``/proc/<pid>/status`` every 10 ms while it runs).

Every copy is checked: each target tag must hold the source digest. Ratios are bot / skopeo: of the best
times, of the median times, and the median of the ratios within each repetition ("paired"). The targets are
judged on the best times. Options ``--tool`` and ``--skip`` narrow a run down for profiling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dataset import DATA_DIR, EXTRA_TAGS, Dataset, SourceImage, open_source, scale_label  # noqa: E402

from tests.harness.images import get_manifest_digest  # noqa: E402
from tests.harness.proxy import CountingProxy  # noqa: E402
from tests.harness.registry import RegistryServer, start_registry  # noqa: E402

BOT = "bot"
SKOPEO = "skopeo"
TARGETS = {"many": 0.5, "large": 1.0, "noop": 0.25}
RSS_TARGET_MB = 100.0
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) (?P<bytes>\d+|-)')


# -- processes ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    returncode: int
    cpu_seconds: float
    # The highest VmHWM seen while polling /proc/<pid>/status. Not ru_maxrss: that one also counts the
    # forked copy of this (bigger) Python process before the exec.
    peak_rss_mb: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)


def _poll_hwm(pid: int, done: threading.Event, seen: list[int]) -> None:
    status = Path(f"/proc/{pid}/status")
    while not done.is_set():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    seen[0] = max(seen[0], int(line.split()[1]))
                    break
        except (OSError, ValueError):
            pass
        done.wait(0.01)


def run_process(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, label: str, timeout: float | None = None
) -> Run:
    """Run ``argv`` to the end; wall time, CPU time (wait4) and peak RSS of that one process. After ``timeout``
    seconds it is killed (exit -9: the caller reports the run as not finished)."""
    out_path = cwd / f"{label}.stdout"
    err_path = cwd / f"{label}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        done = threading.Event()
        seen = [0]
        poller = threading.Thread(target=_poll_hwm, args=(process.pid, done, seen), daemon=True)
        poller.start()
        killer = threading.Timer(timeout, process.kill) if timeout else None
        if killer is not None:
            killer.start()
        _, status, usage = os.wait4(process.pid, 0)
        if killer is not None:
            killer.cancel()
        seconds = time.perf_counter() - started
        done.set()
        poller.join()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    return Run(
        seconds=seconds,
        returncode=process.returncode,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=seen[0] / 1024,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def _check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return run


# -- access logs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """What one registry saw between two points, from its access log."""

    requests: int
    blob_gets: int
    blob_get_bytes: int
    blob_uploads: int  # POST/PATCH/PUT on .../blobs/uploads/
    manifest_puts: int
    heads: int
    cpu_seconds: float = 0.0  # the registry process's CPU time

    def describe(self) -> str:
        return (
            f"cpu {self.cpu_seconds:.2f} s, {self.requests} requests ({self.heads} HEAD), {self.blob_gets} blob GETs "
            f"({self.blob_get_bytes} B), {self.blob_uploads} upload requests, {self.manifest_puts} manifest PUTs"
        )


def _traffic(lines: Sequence[str]) -> Traffic:
    requests = blob_gets = blob_bytes = uploads = manifest_puts = heads = 0
    for line in lines:
        match = _ACCESS.search(line)
        if match is None:
            continue
        requests += 1
        method, path, status = match["method"], match["path"].split("?")[0], int(match["status"])
        heads += method == "HEAD"
        if method == "GET" and "/blobs/sha256:" in path and status in (200, 206):
            blob_gets += 1
            blob_bytes += int(match["bytes"]) if match["bytes"] != "-" else 0
        if "/blobs/uploads/" in path:
            uploads += 1
        if method == "PUT" and "/manifests/" in path:
            manifest_puts += 1
    return Traffic(requests, blob_gets, blob_bytes, uploads, manifest_puts, heads)


def _cpu_seconds(registry: RegistryServer) -> float:
    """User + system CPU time the registry process has used so far."""
    if registry.process is None:
        return 0.0
    fields = Path(f"/proc/{registry.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def watch(*registries: RegistryServer) -> Iterator[list[Traffic]]:
    """Yields a list that holds, after the block, each registry's traffic and CPU time during it."""
    marks = [len(r.access_log_lines()) for r in registries]
    cpu = [_cpu_seconds(r) for r in registries]
    result: list[Traffic] = []
    yield result
    time.sleep(0.2)  # the registry writes its access log line after the response
    for registry, mark, before in zip(registries, marks, cpu, strict=True):
        traffic = _traffic(registry.access_log_lines()[mark:])
        result.append(dataclasses.replace(traffic, cpu_seconds=_cpu_seconds(registry) - before))


# -- the two tools ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, dataset: Dataset, work: Path, concurrency: int | None) -> None:
        self.ds = dataset
        self.work = work
        self.concurrency = concurrency
        self.env = dict(os.environ)
        docker_config = work / "docker-config"  # no credentials of this machine
        docker_config.mkdir(parents=True, exist_ok=True)
        self.env.update(DOCKER_CONFIG=str(docker_config), PYTHONPATH=str(REPO))
        self.env.pop("GITHUB_STEP_SUMMARY", None)
        self.env.pop("GITHUB_ACTIONS", None)
        self._count = 0

    @property
    def source(self) -> RegistryServer:
        return self.ds.registry

    def target(self, label: str) -> RegistryServer:
        self._count += 1
        return start_registry(self.work / f"target-{self._count:02d}-{label}", accesslog=True)

    def scratch(self, label: str) -> Path:
        path = self.work / "runs" / label
        path.mkdir(parents=True, exist_ok=True)
        return path

    # bot

    def _bot(self, args: list[str]) -> list[str]:
        extra = ["--concurrency", str(self.concurrency)] if self.concurrency else []
        return [sys.executable, "-m", "bot", *args, *extra]

    def entries(self, wide: bool) -> list[tuple[str, str]]:
        """(repository, tag) of every image, with the extra tags when ``wide``."""
        return [
            (image.spec.repository, tag)
            for image in self.ds.images
            for tag in (image.spec.tag, *(image.spec.extra_tags if wide else ()))
        ]

    def bot_files(
        self, source_host: str, target: RegistryServer, cwd: Path, *, wide: bool = False
    ) -> tuple[Path, Path, Path]:
        config = cwd / "config.yml"
        rules = [{"source": f"{source_host}/bench", "target": "mirror"}]
        config.write_text(json.dumps({"target": {"registry": target.host}, "rules": rules}))
        listing = cwd / "required-images.txt"
        listing.write_text("".join(f"{source_host}/{repo}:{tag}\n" for repo, tag in self.entries(wide)))
        return config, listing, cwd / "mirrored-images.txt"

    def bot_sync(
        self, target: RegistryServer, label: str, *, check_all: bool, source_host: str = "", wide: bool = False
    ) -> Run:
        cwd = self.scratch(label)
        config, listing, mirrored = self.bot_files(source_host or self.source.host, target, cwd, wide=wide)
        argv = ["sync", "--config", str(config), "--list", str(listing), "--mirrored", str(mirrored)]
        run = run_process(self._bot([*argv, *(["--all"] if check_all else [])]), env=self.env, cwd=cwd, label=label)
        return _check(run, f"bot sync ({label})")

    def bot_resync_from_list(self, target: RegistryServer, first_label: str, label: str, *, wide: bool = False) -> Run:
        """The no-op run as a daily job does it: the mirrored list of the first run pins every digest."""
        cwd = self.scratch(label)
        config, listing, mirrored = self.bot_files(self.source.host, target, cwd, wide=wide)
        shutil.copy(self.scratch(first_label) / "mirrored-images.txt", mirrored)
        argv = ["sync", "--config", str(config), "--list", str(listing), "--mirrored", str(mirrored)]
        return _check(run_process(self._bot(argv), env=self.env, cwd=cwd, label=label), f"bot sync ({label})")

    def bot_copy(self, target: RegistryServer, label: str) -> Run:
        cwd = self.scratch(label)
        config = cwd / "config.yml"
        config.write_text(json.dumps({"target": {"registry": target.host}, "rules": []}))
        big = self.ds.big.spec
        src = f"{self.source.host}/{big.repository}:{big.tag}"
        dst = f"{target.host}/mirror/{big.name}:{big.tag}"
        argv = self._bot(["copy", "--config", str(config), src, dst])
        return _check(run_process(argv, env=self.env, cwd=cwd, label=label), f"bot copy ({label})")

    # skopeo

    def _skopeo(self, cwd: Path, hosts: Sequence[str]) -> list[str]:
        conf = cwd / "registries.conf"
        conf.write_text("".join(f'[[registry]]\nlocation = "{h}"\ninsecure = true\n\n' for h in hosts))
        return ["skopeo", "--registries-conf", str(conf)]

    def skopeo_sync(self, target: RegistryServer, label: str, *, source_host: str = "", wide: bool = False) -> Run:
        cwd = self.scratch(label)
        source_host = source_host or self.source.host
        images: dict[str, list[str]] = {}
        for repository, tag in self.entries(wide):
            images.setdefault(repository, []).append(tag)
        # JSON is YAML.
        (cwd / "images.yml").write_text(json.dumps({source_host: {"tls-verify": False, "images": images}}))
        argv = [
            *self._skopeo(cwd, (source_host, target.host)),
            "sync",
            "--all",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            str(cwd / "images.yml"),
            f"{target.host}/mirror",
        ]
        return _check(run_process(argv, env=self.env, cwd=cwd, label=label), f"skopeo sync ({label})")

    def skopeo_copy(self, target: RegistryServer, label: str) -> Run:
        cwd = self.scratch(label)
        big = self.ds.big.spec
        argv = [
            *self._skopeo(cwd, (self.source.host, target.host)),
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            f"docker://{self.source.host}/{big.repository}:{big.tag}",
            f"docker://{target.host}/mirror/{big.name}:{big.tag}",
        ]
        return _check(run_process(argv, env=self.env, cwd=cwd, label=label), f"skopeo copy ({label})")

    # checks

    def verify(self, target: RegistryServer, images: Sequence[SourceImage], tool: str) -> None:
        wrong = []
        for image in images:
            got = get_manifest_digest(target, f"mirror/{image.spec.name}", image.spec.tag)
            if got != image.digest:
                wrong.append(f"mirror/{image.spec.name}:{image.spec.tag} holds {got}, not {image.digest}")
        if wrong:
            raise SystemExit(f"{tool} did not copy digest-exact:\n" + "\n".join(wrong))


# -- the measurements ---------------------------------------------------------------------------------------


@dataclass
class Results:
    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rss: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    traffic: dict[tuple[str, str], list[tuple[Traffic, Traffic]]] = field(default_factory=dict)

    def add(self, tool: str, what: str, run: Run, traffic: Sequence[Traffic] = ()) -> None:
        key = (tool, what)
        self.seconds.setdefault(key, []).append(run.seconds)
        self.cpu.setdefault(key, []).append(run.cpu_seconds)
        self.rss.setdefault(key, []).append(run.peak_rss_mb)
        if traffic:
            self.traffic.setdefault(key, []).append((traffic[0], traffic[1]))
        tail = f"  [{' | '.join(t.describe() for t in traffic)}]" if traffic else ""
        print(
            f"  {tool:6} {what:10} {run.seconds:8.2f} s  cpu {run.cpu_seconds:6.2f} s  "
            f"peak RSS {run.peak_rss_mb:6.1f} MB{tail}",
            flush=True,
        )


def many_and_noop(bench: Bench, tool: str, rep: int, results: Results) -> None:
    target = bench.target(f"{tool}-many-{rep}")
    try:
        label = f"{tool}-many-{rep}"
        with watch(bench.source, target) as traffic:
            run = bench.bot_sync(target, label, check_all=False) if tool == BOT else bench.skopeo_sync(target, label)
        bench.verify(target, bench.ds.images, tool)
        results.add(tool, "many", run, traffic)
        with watch(bench.source, target) as traffic:
            if tool == BOT:
                run = bench.bot_sync(target, f"{tool}-noop-{rep}", check_all=True)
            else:
                run = bench.skopeo_sync(target, f"{tool}-noop-{rep}")
        bench.verify(target, bench.ds.images, tool)
        results.add(tool, "noop", run, traffic)
        if tool == BOT:
            with watch(bench.source, target) as traffic:
                run = bench.bot_resync_from_list(target, label, f"{tool}-noop-list-{rep}")
            results.add(tool, "noop-list", run, traffic)
        # A longer list: every image under 10 tags. Untimed: tag the target; timed: the no-op re-sync.
        fill = f"{tool}-wide-fill-{rep}"
        if tool == BOT:
            bench.bot_sync(target, fill, check_all=False, wide=True)
            with watch(bench.source, target) as traffic:
                run = bench.bot_sync(target, f"{tool}-noop-wide-{rep}", check_all=True, wide=True)
            results.add(tool, "noop-wide", run, traffic)
            with watch(bench.source, target) as traffic:
                run = bench.bot_resync_from_list(target, fill, f"{tool}-noop-wide-list-{rep}", wide=True)
            results.add(tool, "noop-wide-list", run, traffic)
        else:
            bench.skopeo_sync(target, fill, wide=True)
            with watch(bench.source, target) as traffic:
                run = bench.skopeo_sync(target, f"{tool}-noop-wide-{rep}", wide=True)
            results.add(tool, "noop-wide", run, traffic)
    finally:
        target.stop()
        shutil.rmtree(target.workdir, ignore_errors=True)


def large(bench: Bench, tool: str, rep: int, results: Results) -> None:
    target = bench.target(f"{tool}-large-{rep}")
    try:
        with watch(bench.source, target) as traffic:
            if tool == BOT:
                run = bench.bot_copy(target, f"{tool}-large-{rep}")
            else:
                run = bench.skopeo_copy(target, f"{tool}-large-{rep}")
        bench.verify(target, [bench.ds.big], tool)
        results.add(tool, "large", run, traffic)
    finally:
        target.stop()
        shutil.rmtree(target.workdir, ignore_errors=True)


@dataclass(frozen=True)
class ProxyProof:
    tool: str
    source_blob_downloads: int
    source_bytes: int
    target_uploads: int
    target_upload_bytes: int


def noop_through_proxies(bench: Bench, tool: str) -> ProxyProof:
    """Fill a target, then re-sync through counting proxies on both registries and count the blob bytes."""
    target = bench.target(f"{tool}-proxy")
    try:
        if tool == BOT:
            bench.bot_sync(target, f"{tool}-proxy-fill", check_all=False)
        else:
            bench.skopeo_sync(target, f"{tool}-proxy-fill")
        with CountingProxy(bench.source) as src_proxy, CountingProxy(target) as dst_proxy:
            seen_target = dst_proxy.registry
            if tool == BOT:
                bench.bot_sync(seen_target, f"{tool}-proxy-noop", check_all=True, source_host=src_proxy.host)
            else:
                bench.skopeo_sync(seen_target, f"{tool}-proxy-noop", source_host=src_proxy.host)
            return ProxyProof(
                tool,
                len(src_proxy.blob_downloads()),
                src_proxy.response_bytes(method="GET", path=r"/blobs/sha256:"),
                dst_proxy.count(path=r"/blobs/uploads/"),
                dst_proxy.request_bytes(path=r"/blobs/uploads/"),
            )
    finally:
        target.stop()
        shutil.rmtree(target.workdir, ignore_errors=True)


# -- report -------------------------------------------------------------------------------------------------


def _versions() -> tuple[str, str]:
    skopeo = subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    registry = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, check=False)
    return skopeo, registry.stdout.strip()


def _revision() -> str:
    """The bot's git revision, and whether bot/ has uncommitted changes (the numbers belong to that code)."""

    def git(*argv: str) -> str:
        result = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    changed = git("status", "--porcelain", "--", "bot").splitlines()
    return git("rev-parse", "--short", "HEAD") + (
        f" + uncommitted changes in {len(changed)} bot/ files" if changed else ""
    )


def _machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    system = f"{platform.platform()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_gb:.0f} GB RAM, {system}"


def report(results: Results, proofs: Sequence[ProxyProof], dataset: Dataset, args: argparse.Namespace) -> bool:
    skopeo_version, registry_version = _versions()
    print()
    print(f"machine: {_machine()}")
    print(f"bot: {_revision()}; peer: {skopeo_version}; registries: {registry_version}")
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(
        f"dataset: {len(dataset.images)} images, {dataset.distinct_bytes / 1e6:.0f} MB distinct blobs; "
        f"big image {dataset.big.blob_bytes / 1e6:.0f} MB; scale {args.scale:g}, {args.reps} repetitions"
    )
    print()
    header = f"{'scenario':12} {'bot best':>9} {'skopeo best':>12} {'ratio best':>11} {'ratio median':>13}"
    header += f" {'paired':>7} {'target':>8}"
    print(header)
    print("-" * len(header))
    ok = True
    wide = len(dataset.images) * (1 + EXTRA_TAGS)
    rows: list[tuple[str, str, str]] = [
        ("many", "many", "many"),
        ("noop --all", "noop", "noop"),
        ("noop (list)", "noop-list", "noop"),
        (f"noop {wide} --all", "noop-wide", "noop-wide"),
        (f"noop {wide} list", "noop-wide-list", "noop-wide"),
        ("large", "large", "large"),
    ]
    for name, bot_key, skopeo_key in rows:
        bot = results.seconds.get((BOT, bot_key))
        peer = results.seconds.get((SKOPEO, skopeo_key))
        if not bot or not peer:
            continue
        best = min(bot) / min(peer)
        median = statistics.median(bot) / statistics.median(peer)
        # The median of the ratios within each repetition: the two tools ran minutes apart at most.
        paired = statistics.median(b / p for b, p in zip(bot, peer, strict=True))
        target = TARGETS["noop" if bot_key.startswith("noop") else bot_key]
        passed = best <= target
        ok &= passed if bot_key in TARGETS else True  # the other no-op rows are for information
        print(
            f"{name:12} {min(bot):8.2f}s {min(peer):11.2f}s {best:11.3f} {median:13.3f} {paired:7.3f} "
            f"{'<= ' + format(target, 'g'):>8} {'ok' if passed else 'MISSED'}"
        )
    for key, label in ((("large"), "copying the big image"), ("many", "the many-image sync")):
        bot_rss = results.rss.get((BOT, key))
        peer_rss = results.rss.get((SKOPEO, key))
        if bot_rss:
            line = f"bot peak RSS {label}: {max(bot_rss):.1f} MB"
            if key == "large":
                passed = max(bot_rss) <= RSS_TARGET_MB
                ok &= passed
                line += f" (target <= {RSS_TARGET_MB:g} MB: {'ok' if passed else 'MISSED'})"
            if peer_rss:
                line += f"; skopeo {max(peer_rss):.1f} MB"
            print(line)
    bot_start, peer_start = results.seconds.get((BOT, "startup")), results.seconds.get((SKOPEO, "startup"))
    if bot_start and peer_start:
        print(f"process start alone (sync --help, best): bot {min(bot_start):.2f} s, skopeo {min(peer_start):.2f} s")
    for key in ("many", "large"):
        bot_cpu, peer_cpu = results.cpu.get((BOT, key)), results.cpu.get((SKOPEO, key))
        if bot_cpu and peer_cpu:
            print(f"CPU time {key}: bot {min(bot_cpu):.2f} s, skopeo {min(peer_cpu):.2f} s (best)")
    print()
    print("no-op re-sync traffic (access logs; source | target):")
    for tool, key in ((BOT, "noop"), (BOT, "noop-list"), (SKOPEO, "noop")):
        for src, dst in results.traffic.get((tool, key), [])[:1]:
            print(f"  {tool} {key}: source {src.describe()} | target {dst.describe()}")
            if tool == BOT:
                moved = src.blob_get_bytes + dst.blob_uploads
                ok &= moved == 0
    for proof in proofs:
        print(
            f"  counting proxy, {proof.tool} no-op --all: source blob downloads {proof.source_blob_downloads} "
            f"({proof.source_bytes} B), target upload requests {proof.target_uploads} ({proof.target_upload_bytes} B)"
        )
        if proof.tool == BOT:
            ok &= proof.source_bytes == 0 and proof.target_upload_bytes == 0
    print()
    print("every target verified digest-exact after every copy")
    if args.tool and len(set(args.tool)) == 1:
        print("one tool only: no ratios, targets not judged")
        return True
    print("ALL TARGETS MET" if ok else "SOME TARGETS MISSED")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every layer size (default: 1)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each measurement (default: 2)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="pass --concurrency N to the bot (default: its own default)"
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["many", "large", "proxy"], help="leave a scenario out"
    )
    parser.add_argument(
        "--tool", action="append", choices=[BOT, SKOPEO], help="run only this tool (for profiling; no ratios)"
    )
    args = parser.parse_args(argv)
    if shutil.which("skopeo") is None or shutil.which("docker-registry") is None:
        raise SystemExit("needs skopeo and docker-registry on PATH (Debian packages skopeo, docker-registry)")

    dataset = open_source(args.scale)
    # Per process: target registries, tool logs and scratch files (kept when a step fails, for its logs).
    work = DATA_DIR / f"work-{scale_label(args.scale)}-{os.getpid()}"
    bench = Bench(dataset, work, args.concurrency)
    results = Results()
    proofs: list[ProxyProof] = []
    try:
        steps: list[tuple[str, Callable[[Bench, str, int, Results], None]]] = []
        if "many" not in args.skip:
            steps.append(("many", many_and_noop))
        if "large" not in args.skip:
            steps.append(("large", large))
        for rep in range(1, args.reps + 1):
            both = (BOT, SKOPEO) if rep % 2 else (SKOPEO, BOT)
            order = tuple(tool for tool in both if not args.tool or tool in args.tool)
            print(f"repetition {rep} ({' then '.join(order)})", flush=True)
            for _name, step in steps:
                for tool in order:
                    step(bench, tool, rep, results)
        # What a no-op run cannot go below: starting the process (for the bot: the interpreter and imports).
        startup = {BOT: [sys.executable, "-m", "bot", "sync", "--help"], SKOPEO: ["skopeo", "sync", "--help"]}
        for rep in range(1, args.reps + 1):
            for tool, argv in startup.items():
                if not args.tool or tool in args.tool:
                    run = run_process(argv, env=bench.env, cwd=bench.scratch("startup"), label=f"{tool}-{rep}")
                    results.add(tool, "startup", _check(run, f"{tool} sync --help"))
        if "proxy" not in args.skip and "many" not in args.skip and BOT in (args.tool or [BOT]):
            # The bot only: skopeo probes HTTPS first on an insecure registry, which the proxy leaves hanging.
            proofs = [noop_through_proxies(bench, BOT)]
    finally:
        dataset.registry.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0 if report(results, proofs, dataset, args) else 1


if __name__ == "__main__":
    sys.exit(main())
