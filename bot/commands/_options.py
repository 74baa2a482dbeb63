"""Options shared by several sub-commands (the leading underscore: a helper, not a sub-command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.config import DEFAULT_TARGET_REGISTRY, Config, find_config, load_config
from bot.errors import ConfigError
from bot.settings import CONFIG_ENV, Settings


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
