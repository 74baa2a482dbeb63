"""``merge-results FILE...``: fold the results files of sharded jobs into mirrored-images.txt, commit once.

:func:`record` is also what an unsharded ``sync`` or ``daily`` run ends with, so both paths write the list,
the job summary and the commit the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import actions
from bot.commit import commit_file, repository_from_environment
from bot.errors import GitHubError, ListFileError, UsageError
from bot.reference import Reference
from bot.shard import Results, Shard, merge_mirrored, merge_results, parse_shard, read_results, write_results
from bot.summary import render

DEFAULT_MIRRORED = Path("mirror/mirrored-images.txt")
MAX_LISTED = 30


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "merge-results",
        help="fold sharded results files into mirrored-images.txt and commit once",
        description="Read the results files that 'sync --shard K/N --results FILE' or 'daily --shard K/N "
        "--results FILE' jobs wrote, add every verified image to the mirrored list (sorted, unique, existing "
        "lines kept), write one job summary and, with --commit, commit the list once. Exit status 1 when an "
        "image failed or a shard of the matrix sent no results.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="results files of the shard jobs")
    add_record_options(parser)
    parser.set_defaults(handler=run)


def add_record_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=DEFAULT_MIRRORED,
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
    """Options of the commands that copy (``sync``, ``daily``): recording, committing, sharding."""
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


def check_run_options(args: argparse.Namespace) -> None:
    """Refuse option combinations before anything is copied."""
    if args.commit and args.results is not None:
        raise UsageError("--commit and --results do not go together: commit once with 'merge-results --commit'")


def _shard_argument(text: str) -> Shard:
    try:
        return parse_shard(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix(f"--shard {text!r}: ")) from None


def finish(results: Results, args: argparse.Namespace, title: str) -> int:
    """End a copying run: a results file for ``merge-results``, or the mirrored list, summary and commit."""
    if args.results is None:
        return record([results], mirrored=args.mirrored, commit=args.commit, title=title)
    write_results(args.results, results)
    for image, reason in results.failures:
        print(actions.safe_line(f"FAILED {image}: {reason}"), file=sys.stderr)
    print(f"{args.results}: {len(results.mirrored)} verified images, {len(results.failures)} failures")
    actions.append_summary(render(f"{title} (shard {results.shard})", results.rows, results.notes))
    return 1 if results.failures else 0


def run(args: argparse.Namespace) -> int:
    results = [read_results(path) for path in args.files]
    return record(results, mirrored=args.mirrored, commit=args.commit, title="Merged shard results")


def record(results: Sequence[Results], *, mirrored: Path, commit: bool, title: str) -> int:
    """Write the verified images into ``mirrored``, report failures, summarise, commit; the exit status."""
    merged = merge_results(results)
    notes = list(merged.notes)
    try:
        existing = mirrored.read_text(encoding="utf-8") if mirrored.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ListFileError(f"{mirrored}: cannot read the mirrored list: {exc}") from exc
    updated = merge_mirrored(existing, merged.mirrored)
    if updated != existing:
        mirrored.parent.mkdir(parents=True, exist_ok=True)
        temporary = mirrored.with_name(f".{mirrored.name}.tmp")
        temporary.write_text(updated, encoding="utf-8", newline="\n")
        temporary.replace(mirrored)
        print(f"{mirrored}: recorded {len(set(map(str, merged.mirrored)))} verified images")
    commit_failed = False
    if commit:
        path = _repository_path(mirrored)
        try:
            outcome = commit_file(
                repository_from_environment(),
                path,
                lambda text: merge_mirrored(text, merged.mirrored),
                commit_message(merged.mirrored, path),
            )
        except GitHubError as exc:
            commit_failed = True
            notes.append(f"not committed: {exc}")
        else:
            notes.append(outcome.describe(path))
    for shard in merged.missing:
        notes.append(f"shard {shard} sent no results file; its images are not recorded (run it again)")
    for image, reason in merged.failures:
        print(actions.safe_line(f"FAILED {image}: {reason}"), file=sys.stderr)
        if actions.in_actions():
            print(actions.annotation("error", f"{image}: {reason}", title="image not mirrored"))
    for note in notes:
        print(actions.safe_line(note), file=sys.stderr)
    actions.append_summary(render(title, merged.rows, notes))
    return 1 if merged.failures or merged.missing or commit_failed else 0


def commit_message(refs: Sequence[Reference], path: str) -> str:
    lines = sorted({str(ref) for ref in refs})
    head = f"Record {len(lines)} mirrored image{'s' if len(lines) != 1 else ''} in {path}"
    body = lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        body.append(f"... and {len(lines) - MAX_LISTED} more")
    return head + "\n\n" + "\n".join(body)


def _repository_path(path: Path) -> str:
    """``path`` relative to the checkout (the working directory), as the contents API names it."""
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            raise ListFileError(f"{path}: --commit needs the mirrored list inside the repository checkout") from None
    return path.as_posix()
