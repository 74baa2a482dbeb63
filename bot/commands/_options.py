"""Options shared by several sub-commands (the leading underscore: a helper, not a sub-command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.config import Config, load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="config file (default: mirror/config.yml when it exists, else built-in defaults)",
    )
    parser.add_argument(
        "--registry",
        default=None,
        metavar="HOST[/PREFIX]",
        help="target registry and optional path prefix, overriding the config's target.registry",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    if args.registry:
        config = config.with_target_registry(args.registry)
    return config
