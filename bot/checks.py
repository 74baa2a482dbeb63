"""Offline lint of the list files: syntax, allowed registries, duplicates, already mirrored (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.collisions import FIX, PathClaims, RequestPaths
from bot.errors import MappingError, TargetNameError
from bot.lists import Entry, ListFile, ListKind, MirroredIndex, Problem
from bot.rules import Mapper, Target


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    entry: Entry
    target: Target


@dataclass(frozen=True, slots=True)
class CheckResult:
    entries: tuple[CheckedEntry, ...]
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(problem for problem in self.problems if problem.is_error)


def check_lists(
    lists: Iterable[ListFile],
    mapper: Mapper,
    mirrored: MirroredIndex | None = None,
    claims: PathClaims | None = None,
) -> CheckResult:
    """Lint parsed lists; ``mirrored`` (from mirrored-images.txt) turns already-mirrored requests into warnings,
    ``claims`` (from the same file) finds requests for a mirror path that another source holds."""
    checked: list[CheckedEntry] = []
    problems: list[Problem] = []
    seen: dict[tuple[ListKind, tuple[str, str, str | None, str | None]], Entry] = {}
    paths: dict[ListKind, RequestPaths] = {}
    for list_file in lists:
        problems.extend(list_file.problems)
        for entry in list_file.entries:
            key = (list_file.kind, entry.ref.identity())
            first = seen.setdefault(key, entry)
            if first is not entry:
                problems.append(_problem(entry, f"duplicate of {_where(first)} (the same image as '{first.text}')"))
                continue
            if list_file.kind is ListKind.MIRRORED:
                continue
            try:
                target = mapper.target(entry.ref)
            except TargetNameError as exc:
                problems.append(Problem(entry.file, entry.line, name_column(entry, exc), exc.message))
                continue
            except MappingError as exc:
                problems.append(_problem(entry, exc.message))
                continue
            # A daily line takes its whole repository: every tag the daily run copies.
            path = (
                Target(target.registry, target.repository, None, None) if list_file.kind is ListKind.DAILY else target
            )
            problem = _collision(entry, path, paths.setdefault(list_file.kind, RequestPaths(mapper)), claims)
            if problem is not None:
                problems.append(problem)
                continue
            checked.append(CheckedEntry(entry, target))
            if list_file.kind is ListKind.REQUIRED and entry.ref.tag is None and entry.ref.digest is None:
                problems.append(_problem(entry, _untagged(entry), "warning"))
            if mirrored is not None and list_file.kind is ListKind.REQUIRED:
                done = mirrored.find(entry.ref)
                if done is not None:
                    problems.append(
                        _problem(
                            entry,
                            f"already mirrored ({_where(done)}: {done.text}); this line can be removed",
                            "warning",
                        )
                    )
    problems.sort(key=lambda problem: (problem.file, problem.line, problem.col))
    return CheckResult(tuple(checked), tuple(problems))


def name_column(entry: Entry, exc: TargetNameError) -> int:
    """The column of the part of ``entry`` that a target naming rule refused (its tag, else its start)."""
    tag = entry.ref.tag
    if exc.part == "tag" and tag:
        at = entry.text.rfind(f":{tag}")
        if at >= 0:
            return entry.col + at + 1
    return entry.col


def _untagged(entry: Entry) -> str:
    return (
        f"no tag: '{entry.text}' means '{entry.text}:latest', which moves upstream; "
        f"write the tag to mirror, e.g. '{entry.text}:1.2.3'"
    )


def _collision(entry: Entry, target: Target, paths: RequestPaths, claims: PathClaims | None) -> Problem | None:
    """A line whose mirror path an earlier line, or a recorded image of another source, already takes."""
    clash = paths.clash(entry, target)
    if clash is not None:
        return _problem(entry, f"{clash.message(target, recorded=False)}; {FIX}")
    clash = claims.holder(entry.ref, target) if claims is not None else None
    if clash is not None and not clash.alias:
        return _problem(entry, f"{clash.message(target, recorded=True)}; {FIX}")
    return None


def _where(entry: Entry) -> str:
    return f"{entry.file}:{entry.line}"


def _problem(entry: Entry, message: str, severity: str = "error") -> Problem:
    return Problem(entry.file, entry.line, entry.col, message, severity)
