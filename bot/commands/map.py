"""``map REF...``: print the mirror target of each reference."""

from __future__ import annotations

import argparse
import sys

from bot.commands._options import add_config_options, config_from_args
from bot.errors import InvalidReference, MappingError
from bot.reference import parse_reference
from bot.targets import mapper_for


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "map",
        help="print the mirror target of image references",
        description="Print the full mirror target of each reference, one per line, in input order. "
        "Invalid or unmapped references are reported on stderr and make the exit status 1. With --reverse, "
        "print the source each mirror path was copied from.",
    )
    parser.add_argument("refs", nargs="+", metavar="REF", help="image reference, e.g. nginx:1.17.9")
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="the REFs are mirror paths ([registry/]path[:tag]); print their sources",
    )
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    mapper = mapper_for(config_from_args(args, needs_target="map"))
    status = 0
    for text in args.refs:
        try:
            print(mapper.source(text) if args.reverse else mapper.target(parse_reference(text)))
        except (InvalidReference, MappingError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status
