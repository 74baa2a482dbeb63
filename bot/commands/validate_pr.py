"""``validate-pr``: check the lines a pull request adds to the lists and answer with one sticky comment.

Runs in a ``pull_request_target`` job. The config and ``mirrored-images.txt`` come from the working tree,
which is the base branch (trusted); the pull request's list files are read through the API as data. Output:
the comment, ``::error`` annotations on the exact lines, the job summary, the ``result`` and ``comment-url``
step outputs, and exit status 1 when any line is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot import actions
from bot.errors import ConfigError, GitHubError
from bot.lists import ListKind, MirroredIndex, read_list
from bot.options import add_config_options, config_from_args
from bot.reference import Reference
from bot.render import MARKER, render_comment, render_report
from bot.rules import Mapper
from bot.validate import DEFAULT_WORKERS, ImageFacts, Issue, ValidationResult, result_to_json, validate_changes

if TYPE_CHECKING:
    from bot.registry.client import RegistryClient

LIST_PATHS = ("mirror/required-images.txt", "mirror/required-images-daily.txt")
MIRRORED_PATH = Path("mirror/mirrored-images.txt")
CONFIG_PATH = "mirror/config.yml"


class RegistryUpstream:
    """:class:`bot.validate.Upstream` over the registry client (which refuses hosts no rule allows)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def inspect(self, ref: Reference) -> ImageFacts:
        from bot.registry.copy import ImageLocation, inspect

        info = inspect(self.client, ImageLocation.from_reference(ref), concurrency=2)
        return ImageFacts(info.digest, tuple(str(platform) for platform in info.platforms), info.total_size)

    def tags(self, ref: Reference) -> Sequence[str]:
        return self.client.list_tags(ref.host, ref.repository)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate-pr",
        help="check a pull request's new list lines and comment the mirror paths",
        description="Check every line a pull request adds to the list files (syntax, allowed registry, exists "
        "upstream, platforms, size, limits, duplicates, already mirrored) and keep one comment on the pull "
        "request up to date. Reads GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_API_URL and GITHUB_TOKEN; "
        "the config and mirrored-images.txt come from the working tree (the base branch). Exit status 1 "
        "when any line is invalid.",
    )
    parser.add_argument("--repository", default=None, metavar="OWNER/NAME", help="default: GITHUB_REPOSITORY")
    parser.add_argument("--pull", type=int, default=None, metavar="N", help="default: from GITHUB_EVENT_PATH")
    parser.add_argument(
        "--list",
        dest="lists",
        action="append",
        default=None,
        metavar="PATH",
        help=f"list file paths in the repository (default: {', '.join(LIST_PATHS)})",
    )
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_PATH,
        metavar="FILE",
        help="mirrored list of the base branch (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help="upstream checks at once (default: %(default)s)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the comment instead of posting it")
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.github import DEFAULT_API_URL, PullRequestEvent, PullRequestFiles, connect
    from bot.registry.factory import build_client

    environ = os.environ
    config = config_from_args(args)
    if args.workers < 1:
        raise ConfigError("--workers must be 1 or more")
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        raise ConfigError(
            "validate-pr needs GITHUB_TOKEN (the action passes its github-token input); the workflow needs "
            "'permissions: pull-requests: write' and 'contents: read'"
        )
    if args.repository and args.pull:
        repository, number = args.repository, args.pull
    else:
        event = PullRequestEvent.from_environment(environ)
        repository, number = args.repository or event.repository, args.pull or event.number

    github = connect(environ.get("GITHUB_API_URL") or DEFAULT_API_URL, token)
    pull = PullRequestFiles(github, repository, number)
    paths: list[str] = args.lists or list(LIST_PATHS)
    changes = pull.list_changes([*paths, CONFIG_PATH])
    config_changed = any(change.path == CONFIG_PATH for change in changes)
    changes = [change for change in changes if change.path != CONFIG_PATH]

    mirrored = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True)
    with build_client(config, concurrency=args.workers) as client:
        result = validate_changes(
            changes,
            mapper=Mapper(config),
            upstream=RegistryUpstream(client),
            limits=config.limits,
            mirrored=MirroredIndex(mirrored.entries),
            daily=config.daily,
            workers=args.workers,
        )
    if config_changed:
        note = Issue(
            f"this pull request changes {CONFIG_PATH}; lines were checked with the rules of the base branch",
            "merge the config change in its own pull request first, then push again here",
            severity="warning",
        )
        result = replace(result, issues=(*result.issues, note))

    report(result, paths[0])
    comment_url = ""
    body = render_comment(result, head_sha=pull.head_sha)
    if args.dry_run:
        print(body)
    else:
        try:
            # A push that adds no line only updates an earlier comment; it does not start one.
            comment_url = pull.upsert_comment(body, MARKER, create=bool(result.lines or result.issues))
        except GitHubError as exc:
            print(actions.annotation("error", exc.message) if actions.in_actions() else f"error: {exc}")
            comment_url = ""
            _outputs(result, comment_url)
            return 1
    _outputs(result, comment_url)
    if comment_url:
        print(actions.safe_line(f"comment: {comment_url}"))
    return 0 if result.ok else 1


def report(result: ValidationResult, default_file: str) -> None:
    """One log line per added line, annotations on the lines in Actions, and the job summary."""
    in_actions = actions.in_actions()
    for line in result.lines:
        target = str(line.target) if line.target is not None else "-"
        print(actions.safe_line(f"{line.file}:{line.line}: {line.text} -> {target}: {line.status}"))
        for issue in line.issues:
            text = f"{issue.message}. Fix: {issue.fix}"
            if in_actions:
                level = "error" if issue.is_error else "warning"
                print(actions.annotation(level, text, file=line.file, line=line.line, col=issue.col))
            else:
                print(actions.safe_line(f"{line.file}:{line.line}:{issue.col}: {issue.severity}: {text}"))
    for issue in result.issues:
        text = f"{issue.message}. Fix: {issue.fix}"
        if in_actions:
            level = "error" if issue.is_error else "warning"
            print(actions.annotation(level, text, file=default_file))
        else:
            print(actions.safe_line(f"{issue.severity}: {text}"))
    summary = "ok" if result.ok else f"{result.error_count} errors"
    print(f"validate-pr: {len(result.lines)} added lines checked: {summary}", file=sys.stderr)
    actions.append_summary(render_report(result, marker=False))


def _outputs(result: ValidationResult, comment_url: str) -> None:
    actions.set_output("result", json.dumps(result_to_json(result), separators=(",", ":")))
    actions.set_output("comment-url", comment_url)
