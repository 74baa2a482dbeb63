"""``copy SRC DST``: copy one image between any two registries, every platform, digest-exact."""

from __future__ import annotations

import argparse
import sys

from bot.commands._options import add_config_options, config_from_args
from bot.registry.factory import add_registry_options, client_from_args, platforms_from_args, referrer_policy
from bot.registry.progress import Progress
from bot.units import binary_size


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy one image between two registries",
        description="Copy SRC to DST with every platform (or --platform), manifests byte for byte so the "
        "digest stays the same. Blobs the target has are skipped; an image already at the target is "
        "detected with HEAD requests alone. Only the two registries named are contacted.",
    )
    parser.add_argument("src", metavar="SRC", help="source image, e.g. docker.io/library/nginx:1.25")
    parser.add_argument("dst", metavar="DST", help="target image, e.g. registry.example.com/mirror/nginx:1.25")
    add_registry_options(parser)
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.registry.copy import Copier, ImageLocation
    from bot.registry.referrers import Referrers

    src = ImageLocation.parse(args.src)
    dst = ImageLocation.parse(args.dst)
    platforms = platforms_from_args(args)
    config = config_from_args(args)
    progress = Progress.for_stream(sys.stderr)
    policy = referrer_policy(args, config)
    carrier = Referrers(policy, concurrency=args.concurrency) if policy.copy else None
    with (
        client_from_args(args, config, extra_hosts=(src.host, dst.host)) as client,
        Copier(
            client,
            concurrency=args.concurrency,
            progress=progress,
            dry_run=args.dry_run,
            attach=carrier.attach if carrier is not None else None,
        ) as copier,
    ):
        progress.add_images(1)
        result = copier.copy(src, dst, platforms)
        progress.image_done()
    if carrier is not None:
        carrier.close()
    progress.finish()
    attached = result.attached
    extra = attached.note() if attached is not None else ""
    if result.skipped:
        print(f"{dst}: already up to date ({result.target_digest}){extra}")
    elif result.dry_run:
        print(
            f"{src} -> {dst}: would copy {result.blobs_copied} blobs ({binary_size(result.bytes_moved)}), "
            f"mount {result.blobs_mounted}, {result.blobs_skipped} already present"
        )
    else:
        single = "single platform" if attached is None or attached.kind == "image" else attached.kind
        platforms_text = ", ".join(str(p) for p in result.platforms) or single
        blobs = f"blobs {result.blobs_copied} copied / {result.blobs_mounted} mounted / {result.blobs_skipped} present"
        print(
            f"{src} -> {dst}: {result.target_digest} ({platforms_text}); {binary_size(result.bytes_moved)} moved, "
            f"{blobs}{extra}"
        )
    return 0
