"""``sync``: copy every image of the request list that is not mirrored yet, record it, optionally commit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cancel import cancellation, report_not_done
from bot.collisions import PathClaims
from bot.commands._options import client_options, platforms_from_args, referrer_policy
from bot.commands._run import add_run_options, run_config
from bot.errors import UsageError
from bot.github import actions
from bot.lists import REQUIRED_LIST, Entry, ListKind, MirroredIndex, read_list
from bot.recording import RunLog, finish
from bot.registry.progress import Progress
from bot.shard import ALL
from bot.sync import SyncReport, copy_limits, pending, sync
from bot.targets import mapper_for, open_target


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="copy every image of a list to the mirror and record it",
        description="Copy each image of the list(s) that is not yet mirrored at the same digest to its mirror "
        "path under the target registry (ECR, whose repositories are created on demand, or any OCI "
        "registry), verify the digest at the target, and record it in the mirrored list (sorted, unique, "
        "existing lines kept). Prints one line per image; exit status 1 if any image failed (what succeeded "
        "is still recorded). SIGINT or SIGTERM stops the run gracefully: what was verified is recorded, the rest "
        "is named, and the exit status is 130 or 143; a second signal exits at once.",
    )
    parser.add_argument(
        "--list",
        dest="lists",
        action="append",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"list of image references (repeatable; default: {REQUIRED_LIST})",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="check every entry at the target, also those the mirrored list already pins at the source's digest",
    )
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = run_config(args)
    mapper = mapper_for(config)
    platforms = platforms_from_args(args)
    shard = args.shard or ALL
    status = 0
    entries: list[Entry] = []
    log = RunLog()
    for path in args.lists or [REQUIRED_LIST]:
        listing = read_list(path, ListKind.REQUIRED)
        for problem in listing.problems:
            print(actions.safe_line(f"error: {problem}" if problem.is_error else str(problem)), file=sys.stderr)
            if problem.is_error:
                status = 1
                log.failures.append((f"{problem.file}:{problem.line}", problem.message))
        entries.extend(entry for entry in listing.entries if shard.owns(entry.ref))
    if not entries and status == 0 and args.shard is None:
        raise UsageError("the list holds no images; nothing to copy")
    recorded_entries = read_list(args.mirrored, ListKind.MIRRORED, missing_ok=True).entries
    mirrored = MirroredIndex(() if args.all else recorded_entries)
    progress = Progress.for_stream(sys.stderr)
    with cancellation() as cancel:
        with open_target(config, client_options(args), mask=args.settings.in_actions) as target:
            refs = [entry.ref for entry in entries]
            copy, unchanged = pending(refs, mirrored, mapper, target.client, args.concurrency, cancel=cancel.event)
            report = sync(
                copy,
                mapper,
                target.client,
                platforms=platforms,
                dry_run=args.dry_run,
                concurrency=args.concurrency,
                progress=progress,
                prepare=target.prepare,
                mount_policy=target.mount_policy,
                cancel=cancel.event,
                claims=PathClaims(recorded_entries, mapper),
                referrers=referrer_policy(args, config),
                limits=copy_limits(config.limits.max_image_bytes),
            )
            combined = SyncReport((*unchanged, *report.results), report.dry_run)
            for result in combined.results:
                log.add(result, target.explain)
        for line in combined.summary_lines():
            print(actions.safe_line(line))
        if args.dry_run:
            return cancel.status(0 if combined.ok and status == 0 else 1)
        recorded = finish(
            log.results("sync", shard),
            results_file=args.results,
            mirrored=args.mirrored,
            commit=args.commit,
            title="Sync",
            settings=args.settings,
        )
        report_not_done(cancel, [str(result.source) for result in combined.cancelled])
        return cancel.status(1 if recorded or status or not combined.ok else 0)
