"""A fault soak of ``python -m bot sync`` (run by hand, never a timed test).

    .venv/bin/python bench/fault_soak.py [--seeds 10] [--rates 0.1,0.2,0.3] [--images 40] [--timeout 1]

The longer sibling of ``tests/integration/test_fault_injection.py``. A source registry holds ``--images``
small multi-arch images (OCI indexes, some with attestations, Docker manifest lists, single-platform
manifests; some layers shared: ``tests.harness.fault_schedule.push_catalogue``). For every fault rate and
seed, a fresh target registry (Basic auth) is filled by ``sync`` run in this process, with a counting proxy
in front of the source and one in front of the target, each faulting that share of the requests with a
seeded :class:`FaultSchedule` (resets mid-body, 500/502/503, 429 with ``Retry-After: 1``, stalls past the
read timeout, truncated and corrupted bodies).

When a run reports failed images (at high rates a try budget can run out), ``sync`` is run again, up to
``--reruns`` times, as a user would. After every run each image recorded in ``mirrored-images.txt`` is
checked digest-exact at the target through its API (tag, child manifests, blobs), and every image the run
reported as copied must be recorded. The figures printed at the end are the README's: requests through the
fault proxies, requests faulted (per kind), images verified digest-exact at the target, and wrong entries in
``mirrored-images.txt`` (any recorded image the target does not hold exactly; must be 0). The exit status
is 0 only when there were no wrong entries and every image was complete after the re-runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.cli import main as bot_main  # noqa: E402
from tests.harness.fault_schedule import KINDS, FaultSchedule, missing_at_target, push_catalogue  # noqa: E402
from tests.harness.images import PushedImage  # noqa: E402
from tests.harness.proxy import CountingProxy  # noqa: E402
from tests.harness.registry import RegistryServer, start_registry  # noqa: E402


@dataclass
class Tally:
    runs: int = 0
    runs_ok: int = 0
    reruns: int = 0
    requests: int = 0
    faulted: Counter[str] = field(default_factory=Counter)
    verified: int = 0
    reported_failed: int = 0
    incomplete: int = 0
    wrong_entries: int = 0
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        self.runs += other.runs
        self.runs_ok += other.runs_ok
        self.reruns += other.reruns
        self.requests += other.requests
        self.faulted += other.faulted
        self.verified += other.verified
        self.reported_failed += other.reported_failed
        self.incomplete += other.incomplete
        self.wrong_entries += other.wrong_entries
        self.seconds += other.seconds


def _sync(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = bot_main(argv)
    return status, out.getvalue() + err.getvalue()


def soak_one(
    source: RegistryServer,
    images: Sequence[PushedImage],
    work: Path,
    *,
    seed: int,
    rate: float,
    timeout: float,
    concurrency: int,
    reruns: int,
    verbose: bool,
) -> Tally:
    """One seed at one rate: a fresh target, sync (and re-runs) through faulting proxies, every check."""
    tally = Tally()
    target = start_registry(work / "target", auth="basic")
    stem = "MIRROR_AUTH_" + target.host.replace(".", "_").replace(":", "_")
    os.environ[stem + "_USERNAME"] = "user"
    os.environ[stem + "_PASSWORD"] = "pass"
    config = work / "config.yml"
    config.write_text(
        json.dumps({"target": {"registry": target.host}, "rules": [{"source": source.host, "target": "src"}]})
    )
    listing = work / "required-images.txt"
    listing.write_text("".join(f"{source.host}/{image.repository}:{image.tag}\n" for image in images))
    mirrored = work / "mirrored-images.txt"
    expected = {f"{source.host}/{image.repository}:{image.tag}@{image.digest}": image for image in images}
    src_schedule = FaultSchedule(seed, rate=rate, salt="source")
    dst_schedule = FaultSchedule(seed, rate=rate, salt="target")
    started = time.monotonic()
    try:
        with (
            CountingProxy(source, fault=src_schedule) as src_proxy,
            CountingProxy(target, fault=dst_schedule) as dst_proxy,
        ):
            argv = [
                "sync",
                *("--config", str(config), "--list", str(listing), "--mirrored", str(mirrored)),
                *("--endpoint", f"{source.host}={src_proxy.url}", "--endpoint", f"{target.host}={dst_proxy.url}"),
                *("--timeout", str(timeout), "--concurrency", str(concurrency)),
            ]
            for attempt in range(1 + reruns):
                status, output = _sync(argv)
                tally.runs += 1
                tally.reruns += attempt > 0
                failed = [line for line in output.splitlines() if line.startswith("FAILED  ")]
                tally.reported_failed += len(failed)
                if verbose:
                    for line in failed:
                        print(f"    seed {seed} run {attempt + 1}: {line[:300]}")
                # Everything recorded must be complete at the target, run after run.
                lines = mirrored.read_text().splitlines() if mirrored.exists() else []
                for line in (line for line in lines if line.strip() and not line.startswith("#")):
                    image = expected.get(line)
                    if image is None or missing_at_target(target, f"src/{image.repository}", image):
                        tally.wrong_entries += 1
                        print(f"    WRONG ENTRY seed {seed}: {line}")
                if status == 0:
                    tally.runs_ok += 1
                    break
            tally.requests = len(src_proxy.records) + len(dst_proxy.records)
        tally.seconds = time.monotonic() - started
        recorded = set(mirrored.read_text().splitlines()) if mirrored.exists() else set()
        for line, image in expected.items():
            if line in recorded and not missing_at_target(target, f"src/{image.repository}", image):
                tally.verified += 1
            else:
                tally.incomplete += 1
    finally:
        target.stop()
        shutil.rmtree(work / "target", ignore_errors=True)
    tally.faulted = src_schedule.counts + dst_schedule.counts
    return tally


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per rate (default: %(default)s)")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--rates", default="0.1,0.2,0.3", help="fault rates, comma-separated (default: %(default)s)")
    parser.add_argument("--images", type=int, default=40, help="images in the list (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1.0, help="the bot's read timeout, seconds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--reruns", type=int, default=2, help="re-runs of a sync that reported failures")
    parser.add_argument("--verbose", action="store_true", help="print every failure a run reported")
    args = parser.parse_args(argv)
    rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]

    base = Path(tempfile.mkdtemp(prefix="fault-soak-"))
    os.environ["DOCKER_CONFIG"] = str(base / "docker")
    source = start_registry(base / "source")
    totals = Tally()
    try:
        print(f"pushing {args.images} images to the source ...", flush=True)
        images = push_catalogue(source, args.images)
        for rate in rates:
            per_rate = Tally()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                work = base / f"rate-{rate:g}-seed-{seed}"
                work.mkdir()
                one = soak_one(
                    source,
                    images,
                    work,
                    seed=seed,
                    rate=rate,
                    timeout=args.timeout,
                    concurrency=args.concurrency,
                    reruns=args.reruns,
                    verbose=args.verbose,
                )
                per_rate.add(one)
                print(
                    f"  rate {rate:.0%} seed {seed}: {one.runs} run(s), {sum(one.faulted.values())} of "
                    f"{one.requests} requests faulted, {one.verified}/{len(images)} verified, "
                    f"{one.reported_failed} failures reported, {one.wrong_entries} wrong entries, "
                    f"{one.seconds:.1f} s",
                    flush=True,
                )
            print(
                f"rate {rate:.0%}: {per_rate.runs_ok}/{args.seeds} seeds complete, {per_rate.reruns} re-runs needed, "
                f"{per_rate.incomplete} images incomplete at the end, {per_rate.wrong_entries} wrong entries"
            )
            totals.add(per_rate)
    finally:
        source.stop()
        shutil.rmtree(base, ignore_errors=True)

    faulted = sum(totals.faulted.values())
    print()
    print("fault soak figures")
    print(f"{totals.requests:>8}  requests through the fault proxies")
    print(f"{faulted:>8}  requests faulted ({faulted / max(totals.requests, 1):.1%})")
    for kind in KINDS:
        print(f"{totals.faulted[kind]:>8}  requests faulted: {kind}")
    print(f"{totals.verified:>8}  images verified digest-exact at the target")
    print(f"{totals.reported_failed:>8}  image failures reported (and not recorded), before re-runs succeeded")
    print(f"{totals.incomplete:>8}  images still incomplete after {args.reruns} re-runs")
    print(f"{totals.wrong_entries:>8}  wrong entries in mirrored-images.txt")
    print(f"{totals.seconds:>8.0f}  seconds of syncing")
    return 0 if totals.wrong_entries == 0 and totals.incomplete == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
