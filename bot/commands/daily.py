"""``daily``: copy new (and moved) tags of the repositories in required-images-daily.txt."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from bot.cancel import Cancellation, cancellation, report_not_done
from bot.collisions import PathClaims
from bot.commands._options import client_options, platforms_from_args
from bot.commands._run import add_run_options, run_config
from bot.daily import (
    PullBudget,
    RepositoryPlan,
    TagFilter,
    TagPlan,
    copy_within_budget,
    limit_note,
    plan_repository,
    refused_tags_note,
)
from bot.errors import MappingError
from bot.github import actions
from bot.lists import DAILY_LIST, ListKind, read_list
from bot.recording import RunLog, finish
from bot.reference import Reference
from bot.registry.progress import Progress
from bot.report.summary import FAILED, Row
from bot.rules import Mapper
from bot.shard import ALL
from bot.sync import sync
from bot.targets import TargetSession, mapper_for, open_target
from bot.units import plural

DEFAULT_RESERVE = 10


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "daily",
        help="copy new tags of the daily repositories",
        description="For each repository of the daily list, list the upstream tags, keep those the 'daily:' "
        "config allows (pre-releases are skipped by default), and copy the tags that are new or whose upstream "
        "digest moved since mirrored-images.txt pinned it (checked with HEAD requests only). Records the "
        "verified images in the mirrored list; exit status 1 if anything failed. SIGINT or SIGTERM stops the run "
        "gracefully: what was verified is recorded, the rest is named, and the exit status is 130 or 143.",
    )
    parser.add_argument(
        "--list",
        type=Path,
        default=DAILY_LIST,
        metavar="FILE",
        help="list of repositories (default: %(default)s)",
    )
    parser.add_argument(
        "--reserve",
        type=int,
        default=DEFAULT_RESERVE,
        metavar="N",
        help="pulls of a registry's rate limit (Docker Hub's ratelimit-remaining) left unspent (default: %(default)s)",
    )
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = run_config(args)
    mapper = mapper_for(config)
    tag_filter = TagFilter.from_config(config.daily, source=config.source)
    shard = args.shard or ALL
    listing = read_list(args.list, ListKind.DAILY)
    for problem in listing.problems:
        print(actions.safe_line(f"error: {problem}"), file=sys.stderr)
    repositories = _unique(entry.ref for entry in listing.entries if shard.owns(entry.ref))
    mirrored = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True).entries
    budget = PullBudget(args.reserve)
    deferred: dict[str, int] = {}
    warnings: list[str] = []
    with cancellation() as cancel:
        with open_target(config, client_options(args)) as target:
            target.client.transport.on_response = budget.observe
            target.client.transport.cancel_on(cancel.event)  # retry waits while listing tags end at a cancel
            daily = _Copier(args, mapper, target, cancel, PathClaims(mirrored, mapper))
            daily.log.failures.extend((f"{p.file}:{p.line}", p.message) for p in listing.problems if p.is_error)
            for repository in repositories:
                if cancel.requested:  # not even listed: its new tags are for the next run
                    daily.not_done.append(str(repository))
                    daily.failed(
                        repository, f"not done: the run was cancelled ({cancel.name}) before its tags were listed"
                    )
                    continue
                try:  # an unknown or denied registry is refused before any request
                    mapper.target(repository)
                except MappingError as exc:
                    daily.failed(repository, exc.message)
                    continue
                plan = plan_repository(repository, mirrored, target.client, tag_filter)
                print(actions.safe_line(_describe(plan)))
                if plan.refused:
                    warning = refused_tags_note(repository, plan.refused)
                    warnings.append(warning)  # the log gets it with the run's notes
                    if actions.in_actions():
                        print(actions.annotation("warning", warning, title="tags refused"))
                if plan.error is not None:
                    daily.failed(repository, plan.error)
                    continue
                left = copy_within_budget(plan, budget, target.client, functools.partial(daily.copy, plan))
                if left:
                    deferred[repository.host] = deferred.get(repository.host, 0) + len(left)
        note = limit_note(budget, deferred)
        if note:
            print(actions.safe_line(note), file=sys.stderr)
        if args.dry_run:
            return cancel.status(1 if daily.log.failures else 0)
        notes = (*warnings, *((note,) if note else ()))
        status = finish(
            daily.log.results("daily", shard, notes),
            results_file=args.results,
            mirrored=args.mirrored,
            commit=args.commit,
            title="Daily new tags",
        )
        report_not_done(cancel, daily.not_done)
        return cancel.status(status)


class _Copier:
    """Copies chosen tags of one repository at a time and logs rows, verified images and failures."""

    def __init__(
        self, args: argparse.Namespace, mapper: Mapper, target: TargetSession, cancel: Cancellation, claims: PathClaims
    ) -> None:
        self.args = args
        self.claims = claims
        self.mapper = mapper
        self.target = target
        self.cancel = cancel
        self.platforms = platforms_from_args(args)
        self.progress = Progress.for_stream(sys.stderr)
        self.log = RunLog()
        self.not_done: list[str] = []  # images and repositories a cancellation left undone

    def failed(self, repository: Reference, reason: str) -> None:
        self.log.rows.append(Row(str(repository), "-", result=FAILED, detail=reason))
        self.log.failures.append((str(repository), reason))

    def copy(self, plan: RepositoryPlan, tags: Sequence[TagPlan]) -> None:
        why = {tag.tag: tag.reason or "" for tag in tags}
        report = sync(
            plan.references(tags),
            self.mapper,
            self.target.client,
            platforms=self.platforms,
            dry_run=self.args.dry_run,
            concurrency=self.args.concurrency,
            progress=self.progress,
            prepare=self.target.prepare,
            mount_policy=self.target.mount_policy,
            cancel=self.cancel.event,
            claims=self.claims,
        )
        for result in report.results:
            print(actions.safe_line(result.describe()))
            self.log.add(result, self.target.explain, why.get(result.source.tag or "", ""))
            if result.cancelled:
                self.not_done.append(str(result.source))


def _unique(refs: Iterable[Reference]) -> list[Reference]:
    seen: set[str] = set()
    result: list[Reference] = []
    for ref in refs:
        if ref.canonical_name not in seen:
            seen.add(ref.canonical_name)
            result.append(ref)
    return result


def _describe(plan: RepositoryPlan) -> str:
    if plan.error is not None:
        return f"FAILED  {plan.repository}: {plan.error}"
    return (
        f"{plan.repository}: {plural(plan.tags, 'tag')} upstream, {len(plan.selected)} selected, "
        f"{len(plan.copy)} new or moved"
    )
