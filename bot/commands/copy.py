"""``copy SRC DST``: copy one image between any two registries, every platform, digest-exact."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bot.commands._options import (
    add_config_options,
    add_registry_options,
    client_options,
    config_from_args,
    platforms_from_args,
    referrer_policy,
)
from bot.config import Config, EcrConfig
from bot.errors import BotError, CopyError, Failure
from bot.registry.auth import normalize_host
from bot.registry.progress import Progress
from bot.rules import Target
from bot.targets import open_target
from bot.units import binary_size


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy one image between two registries",
        description="Copy SRC to DST with every platform (or --platform), manifests byte for byte so the "
        "digest stays the same. Blobs the target has are skipped; an image already at the target is "
        "detected with HEAD requests alone. Only the two registries named are contacted. Into ECR the bot "
        "logs in, creates the repository and uses the config's ecr: settings when DST is the target registry.",
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
    config = _target_config(config_from_args(args), dst.host)
    progress = Progress.for_stream(sys.stderr)
    policy = referrer_policy(args, config)
    carrier = Referrers(policy, concurrency=args.concurrency) if policy.copy else None

    def prepare(location: ImageLocation) -> None:
        target.prepare(Target(location.host, location.repository, location.tag, location.digest))

    with (
        open_target(
            config, client_options(args), extra_hosts=(src.host, dst.host), mask=args.settings.in_actions
        ) as target,
        Copier(
            target.client,
            concurrency=args.concurrency,
            progress=progress,
            dry_run=args.dry_run,
            prepare=prepare,
            mount_policy=target.mount_policy,
            attach=carrier.attach if carrier is not None else None,
        ) as copier,
    ):
        progress.add_images(1)
        try:
            result = copier.copy(src, dst, platforms)
        except BotError as exc:
            hint = target.explain(Failure.of(exc))
            if hint is None:
                raise
            raise CopyError(f"{exc} ({hint})") from exc
        finally:
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


def _target_config(config: Config, host: str) -> Config:
    """The config with ``host`` as its target: as it is when ``host`` is the configured target (its ``ecr:``
    settings apply), else with the target's ``ecr:`` settings dropped (they name another registry)."""
    if normalize_host(host) == normalize_host(config.target_registry):
        return config
    ecr = EcrConfig(sources=config.ecr.sources)
    return replace(config.with_target_registry(host), ecr=ecr)
