"""``preview [FILE...]``: the pull request check's table for whole list files, offline.

Shows what a merge would do, with no network and no credentials: every line of the files is treated as added
by a pull request, checked offline (syntax, rules, deny list, duplicates, already mirrored, colliding paths)
and rendered with the pull request comment's own template. Platforms and sizes need the registries, so they
are left out; ``validate-pr`` fills them in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.collisions import PathClaims
from bot.commands._options import add_config_options, config_from_args
from bot.errors import ListFileError
from bot.lists import (
    DAILY_LIST,
    MAX_LIST_BYTES,
    MIRRORED_LIST,
    REQUIRED_LIST,
    ListKind,
    MirroredIndex,
    read_list,
    too_large_message,
)
from bot.report.comment import render_report
from bot.targets import mapper_for
from bot.validate import ListChange, validate_changes


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="show, offline, the mirror path of every line and what a merge would do",
        description="Render the pull request check's table for whole list files, as if a pull request added "
        "every line: the mirror path of each image, whether the merge copies it or it is already mirrored, and "
        "every problem with its fix. Offline: no registry is asked, so platforms and sizes are left out. "
        "Exit status 1 when a line has an error.",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help=f"list files (default: {REQUIRED_LIST} and {DAILY_LIST}); the kind is taken from the file name",
    )
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_LIST,
        metavar="FILE",
        help="the mirrored list that decides what is already mirrored (default: %(default)s)",
    )
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    mapper = mapper_for(config)  # the target's naming rules too, as validate-pr applies them
    files: list[Path] = args.files or [REQUIRED_LIST, DAILY_LIST]
    changes = [_whole_file(path, missing_ok=not args.files) for path in files]
    mirrored = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True)
    result = validate_changes(
        changes,
        mapper=mapper,
        upstream=None,
        limits=config.limits,
        mirrored=MirroredIndex(mirrored.entries),
        claims=PathClaims(mirrored.entries, mapper),
        daily=config.daily,
    )
    print(render_report(result, marker=False), end="")
    return 0 if result.ok else 1


def _whole_file(path: Path, *, missing_ok: bool) -> ListChange:
    """``path`` as a pull request that adds the whole file (absent and allowed to be: adds nothing)."""
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:  # refused before it is read, as validate-pr does
            return ListChange(str(path), None, None, refused=too_large_message(str(path), size))
        return ListChange(str(path), None, path.read_bytes())
    except FileNotFoundError:
        if missing_ok:
            return ListChange(str(path), None, None)
        raise ListFileError(f"{path}: file not found; name an existing list file") from None
    except OSError as exc:
        raise ListFileError(f"{path}: cannot read the file: {exc.strerror}") from exc
