"""Options of the commands that copy and record (``sync``, ``daily``, ``merge-results``); a helper, not a
sub-command."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.commands._options import add_config_options, add_registry_options, config_from_args
from bot.config import Config
from bot.errors import UsageError
from bot.lists import MIRRORED_LIST
from bot.shard import Shard, parse_shard


def add_record_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_LIST,
        metavar="FILE",
        help="the mirrored list to update (default: %(default)s)",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the updated list to the default branch through the GitHub API (needs GITHUB_TOKEN, "
        "GITHUB_REPOSITORY; a protected branch gets a pull request instead)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that copy (``sync``, ``daily``): recording, committing, sharding, the registries
    and the config."""
    add_record_options(parser)
    parser.add_argument(
        "--shard",
        type=_shard_argument,
        default=None,
        metavar="K/N",
        help="handle only the repositories of shard K of N (1-based; every tag of a repository stays on one "
        "shard); use with --results and merge the files with 'merge-results'",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="FILE",
        help="write what this run verified and what failed to FILE (JSON) instead of updating the mirrored list",
    )
    add_registry_options(parser)
    add_config_options(parser)


def run_config(args: argparse.Namespace) -> Config:
    """The config of a copying run, after refusing option combinations before anything is copied."""
    if args.commit and args.results is not None:
        raise UsageError("--commit and --results do not go together: commit once with 'merge-results --commit'")
    return config_from_args(args)


def _shard_argument(text: str) -> Shard:
    try:
        return parse_shard(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix(f"--shard {text!r}: ")) from None
