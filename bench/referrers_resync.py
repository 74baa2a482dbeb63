"""What carrying signatures, attestations and SBOMs adds to a no-op re-sync (run by hand, never a timed test).

    .venv/bin/python bench/referrers_resync.py [--images 20] [--reps 5]

A source registry (distribution 2.8, no referrers API) holds ``--images`` multi-arch images; each is signed
(cosign ``.sig`` tag), has an SBOM referrer that is signed itself and an in-toto attestation referrer (both
listed in the ``sha256-<hex>`` fallback index, as cosign and oras leave them on such a registry), and its
arm64 manifest is signed too. A first ``sync`` fills a target registry with the images and what refers to
them. Then the same list is synced again, which must move nothing, in three ways:

- ``sync --all --no-referrers``: every image checked at the target, images only;
- ``sync --all``: the same, plus the referrers and cosign tags of each image and platform manifest;
- ``sync`` with the mirrored list: the everyday path (one HEAD per image to the source); referrers are not
  looked at there, so it costs what it cost before;

and ``skopeo sync --all`` of the same images into another filled target (images only; skopeo 1.9 copies no
referrers) as the reference. Requests are counted by the test harness's counting proxy in front of each
registry; the target must see no PUT, POST or PATCH during a re-sync. Times are best and median of ``--reps``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.artifacts import IN_TOTO, SIGSTORE_BUNDLE, SPDX, descriptor_of, push_referrer, sign  # noqa: E402
from tests.harness.images import RegistryClient, push_image  # noqa: E402
from tests.harness.proxy import CountingProxy  # noqa: E402
from tests.harness.registry import RegistryServer, start_registry  # noqa: E402


def publish(source: RegistryServer, count: int) -> list[str]:
    refs = []
    with RegistryClient(source) as client:
        for index in range(count):
            repository = f"bench/app{index:02d}"
            image = push_image(source, repository, "1.0", seed=index, layers=(4096,), client=client)
            subject = descriptor_of(client, repository, image.digest)
            sign(client, repository, image.digest)
            sbom = push_referrer(client, repository, subject, SPDX, b'{"spdxVersion": "SPDX-2.3"}')
            push_referrer(client, repository, descriptor_of(client, repository, sbom.digest), SIGSTORE_BUNDLE, b"{}")
            push_referrer(client, repository, subject, IN_TOTO, b'{"_type": "https://in-toto.io/Statement/v1"}')
            sign(client, repository, image.platforms["linux/arm64"])
            refs.append(f"{source.host}/{repository}:1.0")
    return refs


def bot_sync(work: Path, source: str, target: str, refs: list[str], *extra: str) -> float:
    config = work / "config.yml"
    config.write_text(
        json.dumps({"target": {"registry": target}, "rules": [{"source": f"{source}/bench", "target": "mirror"}]})
    )
    listing = work / "required-images.txt"
    listing.write_text("".join(f"{ref}\n" for ref in refs))
    argv = [sys.executable, "-m", "bot", "sync", "--config", str(config), "--list", str(listing)]
    argv += ["--mirrored", str(work / "mirrored-images.txt"), *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bot sync failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def skopeo_sync(work: Path, source: str, target: str, count: int) -> float:
    conf = work / "registries.conf"
    conf.write_text("".join(f'[[registry]]\nlocation = "{h}"\ninsecure = true\n\n' for h in (source, target)))
    images = {f"bench/app{i:02d}": ["1.0"] for i in range(count)}
    (work / "images.yml").write_text(json.dumps({source: {"tls-verify": False, "images": images}}))
    argv = ["skopeo", "--registries-conf", str(conf), "sync", "--all", "--src", "yaml", "--dest", "docker"]
    argv += ["--src-tls-verify=false", "--dest-tls-verify=false", "--src-no-creds", "--dest-no-creds"]
    argv += [str(work / "images.yml"), f"{target}/mirror"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"skopeo sync failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="referrers-bench-") as tmp:
        base = Path(tmp)
        source = start_registry(base / "source")
        bot_target = start_registry(base / "bot-target")
        skopeo_target = start_registry(base / "skopeo-target")
        try:
            published = publish(source, args.images)
            with CountingProxy(source) as src, CountingProxy(bot_target) as dst:
                refs = [ref.replace(source.host, src.host, 1) for ref in published]
                first = base / "first"
                first.mkdir()
                bot_sync(first, src.host, dst.host, refs)
                skopeo_sync(base, source.host, skopeo_target.host, args.images)
                cases = {
                    "sync --all --no-referrers": ("--all", "--no-referrers"),
                    "sync --all (referrers)": ("--all",),
                    "sync, mirrored list pins every digest": (),
                }
                rows: list[tuple[str, float, float, tuple[int, int]]] = []
                for name, extra in cases.items():
                    times: list[float] = []
                    counts: list[tuple[int, int]] = []
                    for rep in range(args.reps):
                        work = base / f"{len(rows)}-{rep}"
                        work.mkdir()
                        if not extra:
                            (work / "mirrored-images.txt").write_text((first / "mirrored-images.txt").read_text())
                        before_src, before_dst = len(src.records), len(dst.records)
                        times.append(bot_sync(work, src.host, dst.host, refs, *extra))
                        new_dst = dst.records[before_dst:]
                        writes = [r for r in new_dst if r.method in ("PUT", "POST", "PATCH")]
                        if writes:
                            raise SystemExit(f"{name}: not a no-op, the target saw {len(writes)} writes")
                        counts.append((len(src.records) - before_src, len(new_dst)))
                    rows.append((name, min(times), statistics.median(times), counts[-1]))
                skopeo_times = [
                    skopeo_sync(base, source.host, skopeo_target.host, args.images) for _ in range(args.reps)
                ]
            print(f"no-op re-sync of {args.images} signed multi-arch images, {args.reps} runs each")
            print(f"{'case':42} {'best s':>7} {'median s':>9} {'source req':>11} {'target req':>11} {'/ skopeo':>9}")
            reference = min(skopeo_times)
            for name, best, median, (source_requests, target_requests) in rows:
                requests = f"{source_requests:11d} {target_requests:11d}"
                print(f"{name:42} {best:7.2f} {median:9.2f} {requests} {best / reference:9.2f}")
            print(f"{'skopeo sync --all (images only)':42} {reference:7.2f} {statistics.median(skopeo_times):9.2f}")
            base_row, ref_row = rows[0], rows[1]
            extra_requests = sum(ref_row[3]) - sum(base_row[3])
            print(
                f"referrers add {extra_requests} requests ({extra_requests / args.images:.1f} per image) and "
                f"{ref_row[1] - base_row[1]:+.2f} s (best) to sync --all; the target saw no write"
            )
        finally:
            for server in (source, bot_target, skopeo_target):
                server.stop()


if __name__ == "__main__":
    main()
