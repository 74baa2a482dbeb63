"""``validate-pr``: check the lines a pull request adds to the lists and answer with one sticky comment.

Runs in a ``pull_request_target`` job. The config and ``mirrored-images.txt`` come from the working tree,
which is the base branch (trusted); the pull request's list files are read through the API as data. Output:
the comment, ``::error`` annotations on the exact lines, the job summary, the ``result`` and ``comment-url``
step outputs, and exit status 1 when any line is invalid.

A pull request may add thousands of lines, and GitHub caps each channel: a comment at 65536 characters, the
job summary at 1 MiB, step outputs at 1 MB per job, and it shows only the first 10 error and 10 warning
annotations of a step. So the log is the complete record (one line per added line, one per problem, user
text clipped), and the other channels hold what fits and say how much they left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.collisions import PathClaims
from bot.commands._options import add_config_options, config_from_args
from bot.config import DEFAULT_CONFIG_PATH, Limits
from bot.errors import ConfigError, GitHubError
from bot.github import actions
from bot.lists import DAILY_LIST, MIRRORED_LIST, REQUIRED_LIST, ListKind, MirroredIndex, read_list
from bot.reference import Reference
from bot.report.comment import MARKER, Summary, render_comment, render_summary
from bot.settings import Settings
from bot.targets import mapper_for, registry_credentials
from bot.units import plural
from bot.validate import (
    DEFAULT_WORKERS,
    ImageFacts,
    Issue,
    LineResult,
    ValidationResult,
    clip,
    result_output,
    validate_changes,
)

if TYPE_CHECKING:
    from bot.registry.client import RegistryClient
    from bot.registry.referrers import Signing

LIST_PATHS = (REQUIRED_LIST.as_posix(), DAILY_LIST.as_posix())
CONFIG_PATH = DEFAULT_CONFIG_PATH.as_posix()


class RegistryUpstream:
    """:class:`bot.validate.Upstream` over the registry client (which refuses hosts no rule allows)."""

    def __init__(self, client: RegistryClient) -> None:
        from bot.registry.referrers import ReferrerPolicy, Referrers

        self.client = client
        self.referrers = Referrers(ReferrerPolicy())
        # (host, repository, digest) -> what is attached: many tags of one image are looked at once.
        self._signing: dict[tuple[str, str, str], Signing] = {}

    def close(self) -> None:
        self.referrers.close()

    def inspect(self, ref: Reference) -> ImageFacts:
        from bot.registry.copy import ImageLocation, inspect
        from bot.registry.referrers import signing_of

        info = inspect(self.client, ImageLocation.from_reference(ref), concurrency=2)
        # What is attached to the image and to each platform manifest: a signature of either counts.
        key = (ref.host, ref.repository, info.digest)
        signing = self._signing.get(key)
        if signing is None:
            digests = (info.digest, *info.children)
            signing = self._signing[key] = signing_of(self.referrers, self.client, ref.host, ref.repository, digests)
        return ImageFacts(
            info.digest,
            tuple(str(platform) for platform in info.platforms),
            info.total_size,
            info.kind,
            signing.signed,
            signing.attached,
        )

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
        default=MIRRORED_LIST,
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
    from bot.github.pull_request import DEFAULT_API_URL, PullRequestEvent, PullRequestFiles, connect
    from bot.registry.factory import build_client

    settings: Settings = args.settings
    config = config_from_args(args)
    if args.workers < 1:
        raise ConfigError("--workers must be 1 or more")
    token = settings.github_token
    if not token:
        raise ConfigError(
            "validate-pr needs GITHUB_TOKEN (the action passes its github-token input); the workflow needs "
            "'permissions: pull-requests: write' and 'contents: read'"
        )
    if args.repository and args.pull:
        repository, number = args.repository, args.pull
    else:
        event = PullRequestEvent.from_settings(settings)
        repository, number = args.repository or event.repository, args.pull or event.number

    paths: list[str] = args.lists or list(LIST_PATHS)
    try:
        pull = PullRequestFiles(connect(settings.github_api_url or DEFAULT_API_URL, token), repository, number)
        changes = pull.list_changes([*paths, CONFIG_PATH])
    except GitHubError as exc:
        return _unread(exc, config.limits, settings)
    config_changed = any(change.path == CONFIG_PATH for change in changes)
    changes = [change for change in changes if change.path != CONFIG_PATH]

    mirrored = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True)
    mapper = mapper_for(config)
    # Private ECR sources get a token minted with ecr.sources' credentials (a read-only role is enough).
    credentials = registry_credentials(config, settings.registry_environ, mask=settings.in_actions)
    with build_client(config, credentials=credentials, concurrency=args.workers) as client:
        upstream = RegistryUpstream(client)
        try:
            result = validate_changes(
                changes,
                mapper=mapper,
                upstream=upstream,
                limits=config.limits,
                mirrored=MirroredIndex(mirrored.entries),
                claims=PathClaims(mirrored.entries, mapper),
                daily=config.daily,
                workers=args.workers,
                require_signature=config.require_signature,
            )
        finally:
            upstream.close()
    if config_changed:
        note = Issue(
            f"this pull request changes {CONFIG_PATH}; lines were checked with the rules of the base branch",
            "merge the config change in its own pull request first, then push again here",
            severity="warning",
        )
        result = replace(result, issues=(*result.issues, note))

    summary = report(result, paths[0], settings)
    comment_url = ""
    body = render_comment(result, head_sha=pull.head_sha, summary_rows=summary.rows)
    if args.dry_run:
        print(body)
    else:
        try:
            # A push that adds no line only updates an earlier comment; it does not start one.
            comment_url = pull.upsert_comment(body, MARKER, create=bool(result.lines or result.issues))
        except GitHubError as exc:
            _outputs(result, "", settings)
            _error(exc, settings)
            return 1
    _outputs(result, comment_url, settings)
    if comment_url:
        print(actions.safe_line(f"comment: {comment_url}"))
    return 0 if result.ok else 1


def report(result: ValidationResult, default_file: str, settings: Settings) -> Summary:
    """The log, annotations and the job summary; returns the summary (the comment says what it holds).

    The log gets one line per added line and one per problem, always, so it is the complete record. In
    Actions the first problems of each level are also annotations on their lines (GitHub shows no more), and
    one notice says how many more are only in the log.
    """
    in_actions = settings.in_actions
    budget = actions.AnnotationBudget()
    # Problems of the pull request as a whole (limits, refused files) are few and say the most: first.
    for issue in result.issues:
        _problem(issue, default_file, None, budget if in_actions else None)
    for line in result.lines:
        target = clip(str(line.target)) if line.target is not None else "-"
        print(actions.safe_line(f"{line.file}:{line.line}: {clip(line.text)} -> {target}: {line.status}"))
        for issue in line.issues:
            _problem(issue, line.file, line, budget if in_actions else None)
    if in_actions and budget.skipped:
        print(
            budget.overflow_notice(
                "the log of this step lists every problem, one line each (file:line:col: severity: message)",
                file=default_file,
            )
        )
    status = "ok" if result.ok else plural(result.error_count, "error")
    print(f"validate-pr: {plural(len(result.lines), 'added line')} checked: {status}", file=sys.stderr)
    summary = render_summary(result)
    actions.append_summary(summary.markdown, settings)
    return summary


def _problem(issue: Issue, file: str, line: LineResult | None, budget: actions.AnnotationBudget | None) -> None:
    """One log line for a problem, and an annotation while the budget lasts (in Actions)."""
    text = f"{clip(issue.message)}. Fix: {clip(issue.fix)}"
    where = f"{file}:{line.line}:{issue.col}: " if line is not None else ""
    print(actions.safe_line(f"{where}{issue.severity}: {text}"))
    level = "error" if issue.is_error else "warning"
    if budget is not None and budget.take(level):
        if line is None:
            print(actions.annotation(level, text, file=file))
        else:
            print(actions.annotation(level, text, file=file, line=line.line, col=issue.col))


def _unread(exc: GitHubError, limits: Limits, settings: Settings) -> int:
    """The pull request could not be read: say so in the summary, the outputs and one line on stderr."""
    result = ValidationResult((), (Issue(exc.message, "run the check again once GitHub answers"),), limits)
    actions.append_summary(render_summary(result).markdown, settings)
    _outputs(result, "", settings)
    _error(exc, settings)
    return 1


def _error(exc: GitHubError, settings: Settings) -> None:
    if settings.in_actions:
        print(actions.annotation("error", exc.message))
    print(actions.safe_line(f"error: {exc}"), file=sys.stderr)


def _outputs(result: ValidationResult, comment_url: str, settings: Settings) -> None:
    actions.set_output("result", result_output(result), settings)
    actions.set_output("comment-url", comment_url, settings)
