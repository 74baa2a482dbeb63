"""Offline lint of the list files: syntax, allowed registries, duplicates, already mirrored (pure)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from bot.collisions import FIX, Clash, PathClaims, RequestPaths, taken_path
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


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the offline checks found about one line, as data: ``check`` and ``validate-pr`` word it each their
    way (a lint line; a pull request's line with its fix). At most one of ``duplicate``, ``refused`` and
    ``clash`` is set, and then the later checks did not run."""

    entry: Entry
    target: Target | None = None  # its mirror location, when the rules allow it
    path: Target | None = None  # the mirror path it takes (a daily line: its whole repository)
    duplicate: Entry | None = None  # an earlier line of the same image
    refused: MappingError | None = None  # the rules refuse it: unknown or denied registry
    clash: Clash | None = None  # another source already takes its mirror path...
    recorded: bool = False  # ...as recorded in mirrored-images.txt (else: an earlier line)
    mirrored: Entry | None = None  # a request already mirrored: its line in mirrored-images.txt

    @property
    def ok(self) -> bool:
        return self.duplicate is None and self.refused is None and self.clash is None


class LineChecks:
    """The offline checks of the lines of one kind of list, in the order they come (pure).

    Per line: a duplicate of an earlier line; the rules (unknown or denied registry); a mirror path another
    source takes (an earlier line, or ``claims`` from mirrored-images.txt); and, for requests, already mirrored.
    """

    def __init__(
        self,
        kind: ListKind,
        mapper: Mapper,
        mirrored: MirroredIndex | None = None,
        claims: PathClaims | None = None,
    ) -> None:
        self.kind = kind
        self.mapper = mapper
        self.mirrored = mirrored
        self.claims = claims
        self._first: dict[tuple[str, str, str | None, str | None], Entry] = {}
        self._paths = RequestPaths(mapper)

    def listed(self, entry: Entry) -> None:
        """A line that is there already and is not checked (not added by the pull request): later lines are
        compared with it."""
        self._first.setdefault(entry.ref.identity(), entry)
        with contextlib.suppress(MappingError):
            self._paths.clash(entry, taken_path(self.mapper.target(entry.ref), self.kind))

    def first(self, entry: Entry) -> Entry | None:
        """The earlier line of the same image, if any (``entry`` is remembered either way)."""
        first = self._first.setdefault(entry.ref.identity(), entry)
        return None if first is entry else first

    def check(self, entry: Entry) -> Verdict:
        duplicate = self.first(entry)
        try:
            target = self.mapper.target(entry.ref)
        except MappingError as exc:
            return Verdict(entry, duplicate=duplicate, refused=None if duplicate else exc)
        path = taken_path(target, self.kind)
        if duplicate is not None:
            return Verdict(entry, target, path, duplicate=duplicate)
        clash = self._paths.clash(entry, path)
        if clash is None and self.claims is not None:
            held = self.claims.holder(entry.ref, path)
            if held is not None and not held.alias:  # aliases may share a path: the sync compares digests
                return Verdict(entry, target, path, clash=held, recorded=True)
        if clash is not None:
            return Verdict(entry, target, path, clash=clash)
        done = self.mirrored.find(entry.ref) if self.mirrored is not None and self.kind is ListKind.REQUIRED else None
        return Verdict(entry, target, path, mirrored=done)


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
    checks: dict[ListKind, LineChecks] = {}
    for list_file in lists:
        problems.extend(list_file.problems)
        lines = checks.setdefault(list_file.kind, LineChecks(list_file.kind, mapper, mirrored, claims))
        for entry in list_file.entries:
            if list_file.kind is ListKind.MIRRORED:  # written by the bot: only duplicates are worth a word
                first = lines.first(entry)
                if first is not None:
                    problems.append(_problem(entry, _duplicate(first)))
                continue
            verdict = lines.check(entry)
            if verdict.ok and verdict.target is not None:
                checked.append(CheckedEntry(entry, verdict.target))
                if list_file.kind is ListKind.REQUIRED and entry.ref.tag is None and entry.ref.digest is None:
                    problems.append(_problem(entry, _untagged(entry), "warning"))
            problem = _lint(verdict)
            if problem is not None:
                problems.append(problem)
    problems.sort(key=lambda problem: (problem.file, problem.line, problem.col))
    return CheckResult(tuple(checked), tuple(problems))


def _untagged(entry: Entry) -> str:
    return (
        f"no tag: '{entry.text}' means '{entry.text}:latest', which moves upstream; "
        f"write the tag to mirror, e.g. '{entry.text}:1.2.3'"
    )


def _lint(verdict: Verdict) -> Problem | None:
    """The verdict as ``check`` words it."""
    entry = verdict.entry
    if verdict.duplicate is not None:
        return _problem(entry, _duplicate(verdict.duplicate))
    if isinstance(verdict.refused, TargetNameError):
        return Problem(entry.file, entry.line, name_column(entry, verdict.refused), verdict.refused.message)
    if verdict.refused is not None:
        return _problem(entry, verdict.refused.message)
    if verdict.clash is not None and verdict.path is not None:
        return _problem(entry, f"{verdict.clash.message(verdict.path, recorded=verdict.recorded)}; {FIX}")
    if verdict.mirrored is not None:
        done = verdict.mirrored
        return _problem(entry, f"already mirrored ({_where(done)}: {done.text}); this line can be removed", "warning")
    return None


def name_column(entry: Entry, exc: TargetNameError) -> int:
    """The column of the part of ``entry`` that a target naming rule refused (its tag, else its start)."""
    tag = entry.ref.tag
    if exc.part == "tag" and tag:
        at = entry.text.rfind(f":{tag}")
        if at >= 0:
            return entry.col + at + 1
    return entry.col


def _duplicate(first: Entry) -> str:
    return f"duplicate of {_where(first)} (the same image as '{first.text}')"


def _where(entry: Entry) -> str:
    return f"{entry.file}:{entry.line}"


def _problem(entry: Entry, message: str, severity: str = "error") -> Problem:
    return Problem(entry.file, entry.line, entry.col, message, severity)
