"""``merge-results FILE...``: fold the results files of sharded jobs into mirrored-images.txt, commit once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands._options import add_config_options, config_from_args
from bot.commands._run import add_record_options
from bot.github import actions
from bot.recording import record
from bot.rules import Mapper
from bot.shard import read_results


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "merge-results",
        help="fold sharded results files into mirrored-images.txt and commit once",
        description="Read the results files that 'sync --shard K/N --results FILE' or 'daily --shard K/N "
        "--results FILE' jobs wrote, add every verified image to the mirrored list (sorted, unique, existing "
        "lines kept), write one job summary and, with --commit, commit the list once. Exit status 1 when an "
        "image failed or a shard of the matrix sent no results.",
    )
    # Zero files is allowed here: the matrix's download step found none, which is a shard failure, not a typo.
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="results files of the shard jobs")
    add_record_options(parser)
    add_config_options(parser)
    parser.set_defaults(handler=run)


NO_FILE = (
    "no results file: a shard sent no file, so nothing is recorded; check that the shard jobs uploaded "
    "their results and that this job downloaded them"
)


def run(args: argparse.Namespace) -> int:
    if not args.files:
        print(f"error: {NO_FILE}", file=sys.stderr)
        if args.settings.in_actions:
            print(actions.annotation("error", NO_FILE))
        return 1
    # Each row is checked like any input: the rules of this config decide what may be recorded.
    mapper = Mapper(config_from_args(args))
    results = [read_results(path, mapper) for path in args.files]
    return record(
        results, mirrored=args.mirrored, commit=args.commit, title="Merged shard results", settings=args.settings
    )
