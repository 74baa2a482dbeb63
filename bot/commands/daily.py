"""``daily``: copy new (and moved) tags of the repositories in required-images-daily.txt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cancel import cancellation, report_not_done
from bot.commands._options import client_options, platforms_from_args, referrer_policy
from bot.commands._run import add_run_options, run_config
from bot.daily import DEFAULT_RESERVE, DailyOptions, TagCopied, TagFilter, run_daily, unique_repositories
from bot.github import actions
from bot.lists import DAILY_LIST, ListKind, read_list
from bot.recording import RunLog, finish
from bot.registry.progress import Progress
from bot.report.summary import FAILED, Row
from bot.shard import ALL
from bot.targets import mapper_for, open_target


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
    options = DailyOptions(
        reserve=args.reserve,
        platforms=platforms_from_args(args),
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        referrers=referrer_policy(args, config),
        max_image_bytes=config.limits.max_image_bytes,
        max_tags=config.daily.max_tags_per_run,
        max_bytes=config.daily.max_bytes_per_run,
    )
    shard = args.shard or ALL
    listing = read_list(args.list, ListKind.DAILY)
    for problem in listing.problems:
        print(actions.safe_line(f"error: {problem}"), file=sys.stderr)
    repositories = unique_repositories(entry.ref for entry in listing.entries if shard.owns(entry.ref))
    mirrored = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True).entries
    log = RunLog()
    log.failures.extend((f"{p.file}:{p.line}", p.message) for p in listing.problems if p.is_error)

    def say(line: str) -> None:
        print(actions.safe_line(line))

    def warn(warning: str) -> None:  # the log gets it with the run's notes
        if args.settings.in_actions:
            print(actions.annotation("warning", warning, title="tags refused"))

    with cancellation() as cancel:
        with open_target(config, client_options(args), mask=args.settings.in_actions) as target:
            report = run_daily(
                repositories,
                mirrored,
                mapper,
                target.client,
                tag_filter=tag_filter,
                options=options,
                cancel=cancel,
                prepare=target.prepare,
                mount_policy=target.mount_policy,
                progress=Progress.for_stream(sys.stderr),
                say=say,
                warn=warn,
            )
            for outcome in report.outcomes:
                if isinstance(outcome, TagCopied):
                    log.add(outcome.result, target.explain, outcome.why)
                else:
                    log.rows.append(Row(str(outcome.repository), "-", result=FAILED, detail=outcome.reason))
                    log.failures.append((str(outcome.repository), outcome.reason))
        if report.limit_note:
            print(actions.safe_line(report.limit_note), file=sys.stderr)
        if args.dry_run:
            return cancel.status(1 if log.failures else 0)
        status = finish(
            log.results("daily", shard, report.notes),
            results_file=args.results,
            mirrored=args.mirrored,
            commit=args.commit,
            title="Daily new tags",
            settings=args.settings,
        )
        report_not_done(cancel, report.not_done)
        return cancel.status(status)
