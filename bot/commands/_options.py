"""Options shared by several sub-commands (the leading underscore: a helper, not a sub-command), read from argv
into typed values: the registry layer and the target kinds take :class:`~bot.registry.factory.ClientOptions`
and the config, never an ``argparse.Namespace``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import DEFAULT_TARGET_REGISTRY, Config, find_config, load_config
from bot.errors import ConfigError, UsageError
from bot.registry.factory import DEFAULT_TIMEOUT, ClientOptions
from bot.registry.models import Platform
from bot.settings import CONFIG_ENV, Settings

if TYPE_CHECKING:
    from bot.registry.referrers import ReferrerPolicy


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"config file (default: ${CONFIG_ENV}, else mirror/config.yml in the current directory or in the root "
        "of the git repository it is in, else built-in defaults)",
    )
    parser.add_argument(
        "--registry",
        default=None,
        metavar="HOST[/PREFIX]",
        help="target registry and optional path prefix, overriding the config's target.registry",
    )


def config_from_args(args: argparse.Namespace, *, needs_target: str | None = None) -> Config:
    """The config ``--config``, ``$MIRROR_CONFIG`` or discovery names, with ``--registry`` applied.

    ``needs_target`` names a command that writes mirror paths into workloads: it refuses to run with the
    built-in target (the original service's account, which the user most likely cannot pull from).
    """
    settings: Settings = args.settings
    path = find_config(args.config, settings.config_path or None)
    config = load_config(path) if path is not None else Config()
    if getattr(args, "registry", None):
        config = config.with_target_registry(args.registry)
    if needs_target is not None and config.target_from is None:
        raise ConfigError(
            f"{needs_target}: no target registry is configured ({config.source} leaves target.registry unset), "
            f"and the built-in {DEFAULT_TARGET_REGISTRY} is the original service's account; pass --registry "
            f"HOST[/PREFIX], set target.registry in mirror/config.yml, or name a config file with --config or "
            f"{CONFIG_ENV}"
        )
    return config


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that talks to registries shares."""
    parser.add_argument(
        "--platform",
        action="append",
        default=None,
        metavar="OS/ARCH[/VARIANT]",
        help="copy only these platforms (repeat or separate with commas); default: every platform, digest-exact",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="images and blobs transferred at once (default: %(default)s)",
    )
    parser.add_argument(
        "--part-size",
        type=int,
        default=None,
        metavar="MIB",
        help="large blobs download as ranges of this many MiB, several at once (default: transfer.part_size_mib "
        "of the config, 8)",
    )
    parser.add_argument(
        "--parts",
        type=int,
        default=None,
        metavar="N",
        help="ranges of one large blob downloaded at once; 1 downloads over one connection (default: "
        "transfer.parts of the config, 8)",
    )
    parser.add_argument(
        "--referrers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="copy the signatures, attestations, SBOMs and other artifacts that refer to each image (default: "
        "referrers.copy in the config, on unless it says false)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be copied and how many bytes")
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain HTTP to this registry (loopback registries always are)",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=None,
        metavar="FILE",
        help="CA certificates to verify registries' TLS with (default: the system's)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="HOST=URL",
        help="send requests for HOST to URL instead, e.g. a registry mirror or a test registry",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up a try when a registry sends nothing for this long, mid-answer or before it; the try is "
        "retried, so a stalled registry costs a bounded time, never a hang; a blob transfer that averages under "
        "1 KiB/s over this long is retried too (default: %(default)g)",
    )


def platforms_from_args(args: argparse.Namespace) -> tuple[Platform, ...] | None:
    if not args.platform:
        return None
    result: list[Platform] = []
    for value in args.platform:
        for item in value.split(","):
            try:
                result.append(Platform.parse(item))
            except ValueError as exc:
                raise UsageError(f"--platform: {exc}") from None
    return tuple(result)


def client_options(args: argparse.Namespace) -> ClientOptions:
    """``--endpoint HOST=URL``, ``--ca-bundle``, ``--insecure-registry``, ``--concurrency`` and
    ``--timeout``, checked."""
    if args.concurrency < 1:
        raise UsageError("--concurrency must be 1 or more")
    part_size, parts = getattr(args, "part_size", None), getattr(args, "parts", None)
    if part_size is not None and part_size < 1:
        raise UsageError("--part-size must be 1 (MiB) or more")
    if parts is not None and parts < 1:
        raise UsageError("--parts must be 1 or more")
    timeout = float(args.timeout)
    if not 0 < timeout <= 3600:  # also refuses nan
        raise UsageError(f"--timeout {timeout:g}: give a number of seconds above 0 and at most 3600")
    endpoints: dict[str, str] = {}
    for item in args.endpoint:
        host, sep, url = item.partition("=")
        if not sep or not host or not url.startswith(("http://", "https://")):
            raise UsageError(f"--endpoint {item!r}: write HOST=URL, e.g. registry.example=https://127.0.0.1:5443")
        endpoints[host] = url
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle {args.ca_bundle}: no such file")
    return ClientOptions(
        endpoints=endpoints,
        verify=str(args.ca_bundle) if args.ca_bundle else True,
        insecure_registries=tuple(args.insecure_registry),
        concurrency=args.concurrency,
        environ=args.settings.registry_environ,
        timeout=timeout,
        part_size_mib=part_size,
        parts=parts,
    )


def referrer_policy(args: argparse.Namespace, config: Config) -> ReferrerPolicy:
    """What to carry along with each image: the config's ``referrers:`` and ``require_signature:``, with
    ``--referrers`` / ``--no-referrers`` overriding ``referrers.copy`` for this run."""
    from bot.registry.referrers import ReferrerPolicy

    enabled = config.referrers.copy if args.referrers is None else bool(args.referrers)
    return ReferrerPolicy(enabled, config.referrers.artifact_types, config.require_signature)
