"""Two sources, one mirror path: which source each mirror tag holds, and requests that would put another there.

The path rules can send different sources to one mirror path (two rules with one target, or ``asia.gcr.io/p/x``
and ``gcr.io/p/x`` under the default rules). One tag holds one image, so the first source recorded in
mirrored-images.txt keeps the path: ``check`` and ``validate-pr`` refuse a request that would share it, and
``sync`` and ``daily`` never move such a tag to another digest. Registries declared under ``aliases:`` (they
serve the same images, e.g. ``registry.k8s.io`` and ``k8s.gcr.io``) may share a path while digests agree (pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import MappingError
from bot.lists import Entry, ListKind
from bot.reference import Reference
from bot.rules import Mapper, Target

PathKey = tuple[str, str]  # (target repository, tag); the tag is "" for a whole repository (daily lines)

FIX = (
    "mirror only one of them, or give one source its own target path with a rule under 'rules:' in "
    "mirror/config.yml (registries that serve the same images may be declared under 'aliases:')"
)


def same_source(a: Reference, b: Reference) -> bool:
    """One upstream image tag, whatever the spelling (``nginx`` and ``docker.io/library/nginx:latest``)."""
    return (a.host, a.repository, a.effective_tag) == (b.host, b.repository, b.effective_tag)


def taken_path(target: Target, kind: ListKind) -> Target:
    """The mirror path a line of ``kind`` takes: a daily line takes its whole repository (every tag it copies)."""
    return Target(target.registry, target.repository, None, None) if kind is ListKind.DAILY else target


def path_key(target: Target) -> PathKey:
    return (target.repository, target.tag or "")


@dataclass(frozen=True, slots=True)
class Clash:
    """``entry`` (an earlier line, or a line of mirrored-images.txt) already holds the mirror path."""

    entry: Entry
    alias: bool  # the two sources are declared aliases: allowed while digests agree

    def message(self, target: Target, *, recorded: bool) -> str:
        where = f"{self.entry.file}:{self.entry.line}"
        if recorded:
            return f"mirror path {target} already holds {self.entry.ref} ({where}); two sources cannot share one path"
        return f"maps to the same mirror path {target} as {self.entry.ref} ({where}); two sources cannot share one path"


class PathClaims:
    """Mirror ``path:tag`` -> the lines of mirrored-images.txt that record a source there."""

    def __init__(self, entries: Iterable[Entry], mapper: Mapper) -> None:
        self.mapper = mapper
        self._entries = entries
        self._targets: list[tuple[Entry, Target]] | None = None
        self._by_path: dict[PathKey, list[Entry]] = {}
        self._by_repository: dict[str, dict[tuple[str, str], Entry]] | None = None

    def _mapped(self) -> list[tuple[Entry, Target]]:
        """Every line with its mirror path, mapped on first use (a 74k-line list costs about half a second)."""
        if self._targets is None:
            self._targets = []
            for entry in self._entries:
                if entry.ref.host not in self.mapper.hosts:
                    continue  # no rule reaches it (checked first: the refusal message is costly to build)
                try:
                    target = self.mapper.target(entry.ref)
                except MappingError:
                    continue  # denied now: it holds no path this config can reach
                self._targets.append((entry, target))
                self._by_path.setdefault(path_key(target), []).append(entry)
        return self._targets

    def _repositories(self) -> dict[str, dict[tuple[str, str], Entry]]:
        if self._by_repository is None:
            self._by_repository = {}
            for entry, target in self._mapped():
                sources = self._by_repository.setdefault(target.repository, {})
                sources.setdefault(self.mapper.upstream_key(entry.ref), entry)
        return self._by_repository

    def add(self, ref: Reference, target: Target) -> None:
        """``ref`` (pinned) now holds ``target``: recorded by this run, so later copies of the run see it."""
        self._mapped()
        entry = Entry("this run", 0, 0, str(ref), ref)
        self._by_path.setdefault(path_key(target), []).append(entry)
        if self._by_repository is not None:
            sources = self._by_repository.setdefault(target.repository, {})
            sources.setdefault(self.mapper.upstream_key(ref), entry)

    def holder(self, ref: Reference, target: Target) -> Clash | None:
        """The recorded line of another source at ``target`` (its tag; for a repository without a tag, any
        tag of it), or ``None`` when the path is free or holds ``ref``'s own source. A digest without a tag
        takes no path: a digest names one image wherever it comes from."""
        if target.tag is None and ref.digest is not None:
            return None
        if target.tag is None:
            key = self.mapper.upstream_key(ref)
            others = [e for k, e in self._repositories().get(target.repository, {}).items() if k != key]
            return Clash(others[0], False) if others else None
        self._mapped()
        # Every other source recorded there counts (an alias's own line may sort first).
        others = [entry for entry in self._by_path.get(path_key(target), ()) if not same_source(entry.ref, ref)]
        if not others:
            return None
        strangers = [entry for entry in others if not self.mapper.same_upstream(entry.ref, ref)]
        return Clash(strangers[0], False) if strangers else Clash(others[0], True)


class RequestPaths:
    """Mirror paths taken by earlier lines of one request: a later line of another source clashes (declared
    aliases too: within one request they are the same image twice)."""

    def __init__(self, mapper: Mapper) -> None:
        self.mapper = mapper
        self._first: dict[PathKey, Entry] = {}

    def clash(self, entry: Entry, target: Target) -> Clash | None:
        if target.tag is None and entry.ref.digest is not None:
            return None
        first = self._first.setdefault(path_key(target), entry)
        if first is entry or same_source(first.ref, entry.ref):
            return None
        return Clash(first, self.mapper.same_upstream(first.ref, entry.ref))
