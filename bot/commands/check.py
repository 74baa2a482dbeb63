"""``check [FILE...]``: offline lint of the list files."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bot.checks import CheckResult, check_lists
from bot.collisions import PathClaims
from bot.commands._options import add_config_options, config_from_args
from bot.config import Config
from bot.github import actions
from bot.lists import DAILY_LIST, MIRRORED_LIST, REQUIRED_LIST, ListKind, MirroredIndex, Problem, read_list
from bot.targets import mapper_for, source_credentials_missing
from bot.units import plural

DEFAULT_FILES = (REQUIRED_LIST, DAILY_LIST)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="lint the list files offline",
        description="Check list files without any network access: syntax, allowed and denied registries, "
        "duplicates, and requests that are already mirrored. Prints the mirror target of every valid entry "
        "on stdout and each problem as file:line:col on stderr; exit status 1 when any error is found.",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="list files (default: the lists under mirror/); the kind is taken from the file name",
    )
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_LIST,
        metavar="FILE",
        help="the mirrored list that already-mirrored requests are compared with (default: %(default)s)",
    )
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    mapper = mapper_for(config)
    files: list[Path] = args.files or list(DEFAULT_FILES)
    lists = [read_list(path, missing_ok=not args.files) for path in files]
    # A FILE that is the mirrored list itself is read once, or each of its lines would duplicate itself.
    named = [
        listing
        for path, listing in zip(files, lists, strict=True)
        if listing.kind is ListKind.MIRRORED and path.resolve() == args.mirrored.resolve()
    ]
    mirrored_list = named[0] if named else read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True)
    if not named:
        lists.append(mirrored_list)
    claims = PathClaims(mirrored_list.entries, mapper)
    result = check_lists(lists, mapper, MirroredIndex(mirrored_list.entries), claims)
    result = replace(
        result,
        problems=tuple(
            sorted((*result.problems, *_private_sources(result, config, args.settings.aws_credentials)), key=_where)
        ),
    )
    for checked in result.entries:
        print(f"{checked.entry.ref} -> {checked.target}")
    annotate = args.settings.in_actions
    budget = actions.AnnotationBudget()
    for problem in result.problems:
        print(actions.safe_line(str(problem)), file=sys.stderr)
        level = "error" if problem.is_error else "warning"
        if annotate and budget.take(level):
            print(actions.annotation(level, problem.message, file=problem.file, line=problem.line, col=problem.col))
    if annotate and budget.skipped:
        print(budget.overflow_notice("every problem is listed in this step's log as file:line:col"))
    errors = len(result.errors)
    warnings = len(result.problems) - errors
    print(
        f"checked {plural(len(lists), 'file')}: {plural(len(result.entries), 'entry', 'entries')}, "
        f"{plural(errors, 'error')}, {plural(warnings, 'warning')}",
        file=sys.stderr,
    )
    return 1 if errors else 0


def _private_sources(result: CheckResult, config: Config, aws_credentials: bool) -> list[Problem]:
    """A warning on each entry from a private ECR registry when nothing gives the bot credentials to read it."""
    problems = []
    for entry in (checked.entry for checked in result.entries):
        missing = source_credentials_missing(config, entry.ref.host, aws_credentials=aws_credentials)
        if missing is not None:
            message = f"{entry.ref.host} is a private ECR registry: {missing}"
            problems.append(Problem(entry.file, entry.line, entry.col, message, "warning"))
    return problems


def _where(problem: Problem) -> tuple[str, int, int]:
    return problem.file, problem.line, problem.col
