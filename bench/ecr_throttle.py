"""A sync into the ECR stand-in under per-API quotas, against the same sync unthrottled (run by hand).

    .venv/bin/python bench/ecr_throttle.py [--images 24] [--rate 10] [--burst 1] [--reps 2] [--concurrency 8]

The stand-in (``tests/harness/ecr_standin.py``) answers 429 ``TOOMANYREQUESTS`` "Rate exceeded" without
``Retry-After`` once an ECR API goes over ``--rate`` requests per second. A source registry holds ``--images``
small images (OCI indexes, Docker lists, single manifests; 2 KiB layers, so request counts, not bytes, set the
pace). For every repetition each tool syncs the list into a fresh stand-in, unthrottled and throttled:

- the bot: ``python -m bot sync`` (it creates the repositories and logs in through the stand-in's ECR API);
- skopeo: ``skopeo sync --all --src yaml`` with the stand-in's token (the repositories are created first, as
  skopeo does not create them).

Reported per tool: wall time unthrottled and throttled, their ratio, the images that failed, the 429 answers,
and the lower bound of the throttled run (the busiest API's requests divided by the rate). Every image that a
tool reports copied is checked digest-exact at the target. Exit status 0 when the bot failed no image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.harness.ecr_standin import EcrStandIn  # noqa: E402
from tests.harness.images import Kind, PushedImage, get_manifest_digest, push_image  # noqa: E402
from tests.harness.registry import RegistryServer, start_registry  # noqa: E402

KINDS: tuple[Kind, ...] = ("oci-index", "docker-list", "oci-manifest", "docker-manifest")


@dataclass
class Outcome:
    tool: str
    throttled: bool
    seconds: float
    failed: int
    throttles: int
    busiest: int  # requests of the busiest API


def push_images(source: RegistryServer, count: int) -> list[PushedImage]:
    return [
        push_image(source, f"bench/app{i:02d}", "1.0", kind=KINDS[i % 4], layers=(2048,), seed=i) for i in range(count)
    ]


def aws_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def run_bot(
    standin: EcrStandIn, source: RegistryServer, images: list[PushedImage], work: Path, args: argparse.Namespace
) -> int:
    mirror = work / "mirror"
    mirror.mkdir(parents=True)
    config = standin.config(rules=[{"source": source.host, "target": "up"}])
    (mirror / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    listing = "".join(f"{source.host}/{image.repository}:{image.tag}\n" for image in images)
    (mirror / "required-images.txt").write_text(listing, encoding="utf-8")
    env = aws_environment() | {"DOCKER_CONFIG": str(work / "docker")}
    argv = [
        sys.executable,
        "-m",
        "bot",
        "sync",
        "--ca-bundle",
        standin.ca_bundle,
        "--concurrency",
        str(args.concurrency),
    ]
    result = subprocess.run(argv, cwd=work, env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise SystemExit(f"bot sync crashed ({result.returncode}):\n{result.stderr[-3000:]}")
    return sum(1 for line in result.stderr.splitlines() if line.startswith("FAILED "))


def run_skopeo(standin: EcrStandIn, source: RegistryServer, images: list[PushedImage], work: Path) -> int:
    work.mkdir(parents=True)
    for image in images:
        standin.create_repository(f"up/{image.repository}")
    user, password = standin.login()
    spec = {source.host: {"images": {image.repository: [image.tag] for image in images}, "tls-verify": False}}
    (work / "sync.yml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    certs = work / "certs"
    certs.mkdir()
    shutil.copy(standin.ca_bundle, certs / "ca.crt")
    argv = [
        "skopeo", "sync", "--all", "--src", "yaml", "--dest", "docker", "--keep-going",
        "--dest-creds", f"{user}:{password}", "--dest-cert-dir", str(certs),
        str(work / "sync.yml"), f"{standin.host}/up",
    ]  # fmt: skip
    result = subprocess.run(argv, cwd=work, capture_output=True, text=True)
    if result.returncode != 0 and "--keep-going" not in argv:
        raise SystemExit(f"skopeo sync failed:\n{result.stderr[-3000:]}")
    assert standin.registry is not None
    return sum(
        1
        for image in images
        if get_manifest_digest(standin.registry, f"up/{image.repository}", image.tag) != image.digest
    )


def verify(standin: EcrStandIn, images: list[PushedImage], failed: int) -> None:
    """Every image not reported failed is at the target, digest-exact."""
    assert standin.registry is not None
    present = sum(
        1
        for image in images
        if get_manifest_digest(standin.registry, f"up/{image.repository}", image.tag) == image.digest
    )
    if present != len(images) - failed:
        raise SystemExit(f"{present} images at the target, {len(images) - failed} expected")


def one_run(
    tool: str, throttled: bool, source: RegistryServer, images: list[PushedImage], base: Path, args: argparse.Namespace
) -> Outcome:
    with tempfile.TemporaryDirectory(dir=base) as scratch, EcrStandIn(Path(scratch) / "ecr") as standin:
        if throttled:
            standin.throttle(args.rate, burst=args.burst)
        started = time.monotonic()
        if tool == "bot":
            failed = run_bot(standin, source, images, Path(scratch) / "run", args)
        else:
            failed = run_skopeo(standin, source, images, Path(scratch) / "run")
        seconds = time.monotonic() - started
        verify(standin, images, failed)
        per_api = Counter(exchange.api for exchange in standin.exchanges if exchange.api and exchange.status != 429)
        return Outcome(tool, throttled, seconds, failed, standin.count(status=429), max(per_api.values(), default=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second per ECR API")
    parser.add_argument("--burst", type=float, default=1.0, help="bucket size of each quota (1: no bursts)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tool", choices=("bot", "skopeo", "both"), default="both")
    args = parser.parse_args()
    os.environ.update(aws_environment())  # the stand-in's ECR API is called from here too
    tools = ["bot", "skopeo"] if args.tool == "both" else [args.tool]
    if "skopeo" in tools and shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (apt-get install skopeo), or pass --tool bot")
    base = Path(tempfile.mkdtemp(prefix="ecr-throttle-"))
    outcomes: list[Outcome] = []
    try:
        source = start_registry(base / "source")
        try:
            images = push_images(source, args.images)
            for rep in range(args.reps):
                order = tools if rep % 2 == 0 else list(reversed(tools))
                for tool in order:
                    for throttled in (False, True):
                        outcome = one_run(tool, throttled, source, images, base, args)
                        outcomes.append(outcome)
                        label = "throttled" if throttled else "free"
                        print(
                            f"rep {rep + 1} {tool:6} {label:9} {outcome.seconds:6.2f} s  "
                            f"failed {outcome.failed:2}/{len(images)}  429s {outcome.throttles:4}  "
                            f"busiest API {outcome.busiest} requests",
                            flush=True,
                        )
        finally:
            source.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    quota = f"quotas {args.rate:g} requests/s per API (burst {args.burst:g})"
    print(f"\n{args.images} images, {quota}, concurrency {args.concurrency}")
    for tool in tools:
        free = [o.seconds for o in outcomes if o.tool == tool and not o.throttled]
        slow = [o for o in outcomes if o.tool == tool and o.throttled]
        ratio = statistics.median(slow_run.seconds for slow_run in slow) / statistics.median(free)
        bound = max(o.busiest for o in slow) / args.rate
        failed = [o.failed for o in slow]
        slow_seconds = statistics.median(slow_run.seconds for slow_run in slow)
        print(
            f"{tool:6}: free {statistics.median(free):.2f} s, throttled {slow_seconds:.2f} s "
            f"(ratio {ratio:.1f}x; lower bound {bound:.1f} s), images failed under throttling {failed}, "
            f"429s {[o.throttles for o in slow]}"
        )
    bot_failed = sum(o.failed for o in outcomes if o.tool == "bot")
    return 0 if bot_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
