"""How a copying run ends: the mirrored list, the job summary and the commit, or a results file of a shard.

``sync``, ``daily`` and ``merge-results`` all end in :func:`record` (or :func:`finish`), so an unsharded run and
a merge of shards write the list, the summary and the commit the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import Failure, GitHubError, ListFileError
from bot.github import actions
from bot.github.commit import commit_file, workflow_repository
from bot.lists import locked, write_atomically
from bot.reference import Reference
from bot.report.summary import Row, render, result_output, row_for
from bot.settings import Settings
from bot.shard import Results, Shard, merge_mirrored, merge_results, write_results

if TYPE_CHECKING:
    from bot.sync import ImageResult

MAX_LISTED = 30


@dataclass
class RunLog:
    """What a copying run collects for :func:`finish`: summary rows, verified images and failures."""

    rows: list[Row] = field(default_factory=list)
    verified: list[Reference] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: ImageResult, explain: Callable[[Failure], str | None], detail: str = "") -> None:
        """One image's outcome; ``explain`` adds to a failure what the target wants (e.g. an IAM action)."""
        reason = None
        if not result.ok and not result.deferred:  # a deferred image is the next run's, not a failure
            reason = result.reason or "failed"
            hint = explain(result.failure) if result.failure is not None else None
            if hint:
                reason += f" ({hint})"
        self.rows.append(row_for(result, detail, reason))
        if reason is not None:
            self.failures.append((str(result.source), reason))
        elif result.verified:
            self.verified.append(result.source.with_digest(result.target_digest))

    def results(self, command: str, shard: Shard, notes: Sequence[str] = ()) -> Results:
        return Results(command, shard, tuple(self.verified), tuple(self.rows), tuple(notes), tuple(self.failures))


def finish(
    results: Results, *, results_file: Path | None, mirrored: Path, commit: bool, title: str, settings: Settings
) -> int:
    """End a copying run: a results file for ``merge-results``, or the mirrored list, summary and commit."""
    if results_file is None:
        return record([results], mirrored=mirrored, commit=commit, title=title, settings=settings)
    write_results(results_file, results)
    for image, reason in results.failures:
        print(actions.safe_line(f"FAILED {image}: {reason}"), file=sys.stderr)
    print(f"{results_file}: {len(results.mirrored)} verified images, {len(results.failures)} failures")
    actions.append_summary(render(f"{title} (shard {results.shard})", results.rows, results.notes), settings)
    return 1 if results.failures else 0


def record(results: Sequence[Results], *, mirrored: Path, commit: bool, title: str, settings: Settings) -> int:
    """Write the verified images into ``mirrored``, report failures, summarise, commit; the exit status."""
    merged = merge_results(results)
    notes = list(merged.notes)
    # Read, merge and write under the list's lock: another run in this checkout merges after us, not over us.
    with locked(mirrored):
        try:
            existing = mirrored.read_text(encoding="utf-8") if mirrored.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ListFileError(f"{mirrored}: cannot read the mirrored list: {exc}") from exc
        updated = merge_mirrored(existing, merged.mirrored)
        if updated != existing:
            write_atomically(mirrored, updated.encode("utf-8"))
            print(f"{mirrored}: recorded {len(set(map(str, merged.mirrored)))} verified images")
    commit_failed = False
    if commit:
        path = str(mirrored)
        try:
            path = _repository_path(mirrored)
            outcome = commit_file(
                workflow_repository(settings),
                path,
                lambda text: merge_mirrored(text, merged.mirrored),
                commit_message(merged.mirrored, path),
            )
        except (GitHubError, ListFileError) as exc:
            # Nothing reached the branch half-way: the contents API commits whole or not at all.
            commit_failed = True
            note = (
                f"not committed: {exc}. {mirrored} in this checkout holds the verified images; run the job again "
                "to commit them (images already at the target are only checked, not copied again)"
            )
            notes.append(note)
            if settings.in_actions:
                print(actions.annotation("error", note, title="mirrored list not committed"))
        else:
            notes.append(outcome.describe(path))
    for shard in merged.missing:
        notes.append(f"shard {shard} sent no results file; its images are not recorded (run it again)")
    for image, reason in merged.failures:
        print(actions.safe_line(f"FAILED {image}: {reason}"), file=sys.stderr)
        if settings.in_actions:
            print(actions.annotation("error", f"{image}: {reason}", title="image not mirrored"))
    for note in notes:
        print(actions.safe_line(note), file=sys.stderr)
    actions.append_summary(render(title, merged.rows, notes), settings)
    actions.set_output("result", result_output(merged.rows), settings)
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
