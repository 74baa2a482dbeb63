"""Daily new-tag sync: which upstream tags to copy (pure), and the run over every daily repository.

A tag is copied when it passes the filter and is either not mirrored yet or its upstream digest moved away
from the digest pinned in mirrored-images.txt. Moved digests are found with ``HEAD`` requests only, which
Docker Hub does not count against its pull limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from bot.collisions import PathClaims
from bot.config import DailyConfig
from bot.errors import BotError, ConfigError, MappingError
from bot.lists import Entry
from bot.reference import DOCKER_HUB, Reference, fold_host, is_tag
from bot.registry.artifacts import is_referrer_tag
from bot.registry.models import MOUNT_ANY
from bot.rules import Mapper, Target
from bot.units import binary_size, plural

if TYPE_CHECKING:
    import requests

    from bot.registry.client import RegistryClient
    from bot.registry.models import Platform
    from bot.registry.progress import Progress
    from bot.registry.referrers import ReferrerPolicy
    from bot.sync import ImageResult

_WORDS = re.compile(r"[a-z]+")
_VERSION = re.compile(r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:\.([0-9]+))?(?![0-9])")
_COMPARATOR = re.compile(r"(>=|<=|==|!=|>|<|=|\^|~)?\s*v?([0-9]+(?:\.[0-9]+){0,3})(?:\.[x*])?")

Version = tuple[int, ...]


def parse_version(tag: str) -> Version | None:
    """The numeric release a tag starts with (``v1.2.3-alpine`` -> ``(1, 2, 3)``), or ``None``."""
    match = _VERSION.match(tag)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _pad(version: Version, length: int = 4) -> Version:
    return version + (0,) * (length - len(version))


@dataclass(frozen=True, slots=True)
class Comparator:
    op: str
    version: Version

    def __call__(self, version: Version) -> bool:
        have, want = _pad(version), _pad(self.version)
        if self.op == "^":  # same first non-zero component, not lower
            pivot = next((i for i, part in enumerate(self.version) if part), len(self.version) - 1)
            return have >= want and have[: pivot + 1] == want[: pivot + 1]
        if self.op in ("~", "=", "=="):  # every written component equal (1.2 matches 1.2.x)
            if self.op == "~" and len(self.version) > 2:
                return have >= want and have[:2] == want[:2]
            return version[: len(self.version)] == self.version
        if self.op == "!=":
            return version[: len(self.version)] != self.version
        return {">": have > want, ">=": have >= want, "<": have < want, "<=": have <= want}[self.op]


def parse_range(text: str, key: str = "mirror/config.yml: daily.semver") -> tuple[Comparator, ...]:
    """``>=1.20, <2``, ``^1.2``, ``~1.4``, ``1.x``: comparators that must all hold (space or comma separated)."""
    comparators = []
    joined = re.sub(r"(>=|<=|==|!=|>|<|=|\^|~)\s+", r"\1", text.replace(",", " "))
    for part in joined.split():
        match = _COMPARATOR.fullmatch(part)
        if match is None:
            raise ConfigError(f"{key}: {part!r} is not a version comparator; write e.g. '>=1.20, <2' or '^1.2'")
        op = match[1] or "="
        comparators.append(Comparator(op, tuple(int(piece) for piece in match[2].split("."))))
    if not comparators:
        raise ConfigError(f"{key} is empty; remove it or write e.g. '>=1.20, <2'")
    return tuple(comparators)


@dataclass(frozen=True, slots=True)
class TagFilter:
    """Which tags of a daily repository are wanted (compiled from the ``daily:`` config section)."""

    skip_words: tuple[str, ...]
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    semver: tuple[Comparator, ...] = ()
    newest: int | None = None

    @classmethod
    def from_config(cls, daily: DailyConfig, source: str = "mirror/config.yml") -> TagFilter:
        """Compile the ``daily:`` section; a bad pattern or range is a :class:`ConfigError` naming its key."""
        return cls(
            skip_words=tuple(word.lower() for word in daily.skip_words),
            include=_compile(daily.include, f"{source}: daily.include"),
            exclude=_compile(daily.exclude, f"{source}: daily.exclude"),
            semver=parse_range(daily.semver, f"{source}: daily.semver") if daily.semver is not None else (),
            newest=daily.newest,
        )

    def skipped_word(self, tag: str) -> str | None:
        """The skip word that rules ``tag`` out: a word of the tag (its letters between digits and
        punctuation, any case) that starts with it, so ``2.0-rc1`` and ``1.0-beta.2`` are skipped while
        ``source`` or ``arch`` are not."""
        for word in _WORDS.findall(tag.lower()):
            for skip in self.skip_words:
                if word.startswith(skip):
                    return skip
        return None

    def wanted(self, tag: str) -> bool:
        """Every rule but ``newest``: skip words, include/exclude patterns, the version range. A tag that attaches
        something to an image (``sha256-<hex>``, ``*.sig``, ``*.att``, ``*.sbom``) is never a release; such
        artifacts travel with the image they belong to."""
        if is_referrer_tag(tag) or self.skipped_word(tag) is not None:
            return False
        if self.include and not any(pattern.search(tag) for pattern in self.include):
            return False
        if any(pattern.search(tag) for pattern in self.exclude):
            return False
        if self.semver:
            version = parse_version(tag)
            if version is None or not all(comparator(version) for comparator in self.semver):
                return False
        return True

    def select(self, tags: Iterable[str]) -> list[str]:
        """The wanted tags, sorted; with ``newest: N`` only the tags of the N highest versions (every variant
        of a version counts as that version, e.g. ``1.27.3`` and ``1.27.3-alpine``) and tags that are no
        version at all (``latest``, ``stable``; drop those with ``exclude``)."""
        wanted = sorted({tag for tag in tags if self.wanted(tag)})
        if self.newest is None:
            return wanted
        versions = sorted({version for tag in wanted if (version := parse_version(tag)) is not None}, reverse=True)
        keep = {_pad(version) for version in versions[: self.newest]}
        return [tag for tag in wanted if (version := parse_version(tag)) is None or _pad(version) in keep]


def _compile(patterns: tuple[str, ...], key: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(f"{key}[{index}]: {pattern!r} is not a valid regular expression: {exc}") from exc
    return tuple(compiled)


@dataclass(frozen=True, slots=True)
class TagPlan:
    """What to do with one upstream tag."""

    tag: str
    upstream_digest: str | None
    pinned_digest: str | None

    @property
    def reason(self) -> str | None:
        """``new``, ``moved`` or ``None`` (already mirrored at the same digest)."""
        if self.pinned_digest is None:
            return "new"
        if self.upstream_digest is not None and self.upstream_digest != self.pinned_digest:
            return "moved"
        return None


def plan_tags(
    selected: Iterable[str], upstream: Mapping[str, str | None], pinned: Mapping[str, str | None]
) -> list[TagPlan]:
    """Tags to copy: new ones and those whose upstream digest differs from the pinned one.

    ``upstream`` maps a tag to its digest from a HEAD request (``None`` when the HEAD gave none), ``pinned``
    maps a mirrored tag to the digest its line is pinned to (``None`` for an unpinned line).
    """
    plans = []
    for tag in selected:
        if tag in pinned:
            pin = pinned[tag]
            # An unpinned mirrored line cannot say whether the tag moved; pin it by copying again.
            plan = TagPlan(tag, upstream.get(tag), pin if pin is not None else "")
        else:
            plan = TagPlan(tag, upstream.get(tag), None)
        if plan.reason is not None:
            plans.append(plan)
    return plans


# -- Docker Hub's pull limit ---------------------------------------------------------------------------------


# Docker Hub counts manifest GETs: a multi-platform image needs one for the index and one per platform. The
# first guess; the budget learns the real figure from the counts it sees.
PULLS_PER_IMAGE = 3


def parse_ratelimit(value: str | None) -> int | None:
    """``76;w=21600`` -> 76."""
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() else None


class PullBudget:
    """Tracks ``ratelimit-remaining`` per registry from every response and keeps ``reserve`` pulls unused.

    Docker Hub sends the header on manifest requests (a HEAD shows it without spending a pull). Registries
    that send no such header are never limited here. What one image costs is measured from the counts seen
    before and after copies (``pulls_per_image`` until then).
    """

    def __init__(self, reserve: int = 10, pulls_per_image: int = PULLS_PER_IMAGE) -> None:
        self.reserve = reserve
        self.pulls_per_image = pulls_per_image
        self._remaining: dict[str, int] = {}
        self._cost: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, response: requests.Response) -> None:
        remaining = parse_ratelimit(response.headers.get("ratelimit-remaining"))
        if remaining is None:
            return
        host = urlsplit(response.url).netloc.lower()
        with self._lock:
            self._remaining[fold_host(host)] = remaining

    def remaining(self, host: str) -> int | None:
        with self._lock:
            return self._remaining.get(fold_host(host))

    def cost(self, host: str) -> int:
        """Pulls one image is taken to cost: what copies were seen to spend, else ``pulls_per_image``."""
        with self._lock:
            return self._cost.get(fold_host(host), self.pulls_per_image)

    def knows_cost(self, host: str) -> bool:
        with self._lock:
            return fold_host(host) in self._cost

    def images_allowed(self, host: str, wanted: int) -> int:
        """How many of ``wanted`` images from ``host`` may be copied now without touching the reserve."""
        remaining = self.remaining(host)
        if remaining is None:
            return wanted
        return max(0, min(wanted, (remaining - self.reserve) // self.cost(host)))

    def learn(self, host: str, before: int | None, images: int) -> None:
        """Record what copying ``images`` images just spent (the highest cost per image seen wins)."""
        after = self.remaining(host)
        if before is None or after is None or images <= 0:
            return
        spent = max(1, -(-(before - after) // images))  # ceiling; never below one pull
        with self._lock:
            key = fold_host(host)
            self._cost[key] = max(self._cost.get(key, 0), spent)


# -- the daily run --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryPlan:
    """One daily repository: how many tags upstream has, the selection, and the tags to copy.

    ``refused`` holds tags of the registry's answer that the reference grammar does not allow (``../x``,
    ``a/b``, CR/LF): they are reported, never selected, never sent in a request.
    """

    repository: Reference
    tags: int = 0
    selected: tuple[str, ...] = ()
    copy: tuple[TagPlan, ...] = ()
    error: str | None = None
    refused: tuple[str, ...] = ()

    def references(self, plans: Iterable[TagPlan] | None = None) -> list[Reference]:
        """Source references ``repository:tag``, spelled as the daily list spells the repository."""
        return [self.repository.with_tag(plan.tag) for plan in (self.copy if plans is None else plans)]


def pinned_tags(repository: Reference, mirrored: Iterable[Entry]) -> dict[str, str | None]:
    """Tag -> pinned digest of ``repository``'s lines in mirrored-images.txt (any spelling)."""
    result: dict[str, str | None] = {}
    for entry in mirrored:
        ref = entry.ref
        if (ref.host, ref.repository) == (repository.host, repository.repository) and ref.effective_tag is not None:
            result[ref.effective_tag] = ref.digest
    return result


def plan_repository(
    repository: Reference,
    mirrored: Iterable[Entry],
    client: RegistryClient,
    tag_filter: TagFilter,
    *,
    page_size: int | None = None,
) -> RepositoryPlan:
    """List, filter and compare one repository's tags; a registry error becomes the plan's ``error``.

    Only tags already mirrored are checked with a ``HEAD`` (has the tag moved?); new tags are copied anyway,
    and the copy reads them itself. A no-op run therefore costs the tag-list pages plus one HEAD per
    selected tag (plus the registry's auth handshake).
    """
    try:
        listed = client.list_tags(repository.host, repository.repository, page_size)
        tags = [tag for tag in listed if is_tag(tag)]
        refused = tuple(dict.fromkeys(tag for tag in listed if not is_tag(tag)))
        selected = tag_filter.select(tags)
        pinned = pinned_tags(repository, mirrored)
        upstream: dict[str, str | None] = {}
        for tag in selected:
            if tag in pinned:
                found = client.head_manifest(repository.host, repository.repository, tag)
                upstream[tag] = found.digest if found is not None else None
    except BotError as exc:
        return RepositoryPlan(repository, error=str(exc))
    return RepositoryPlan(
        repository, len(tags), tuple(selected), tuple(plan_tags(selected, upstream, pinned)), refused=refused
    )


def refused_tags_note(repository: Reference, refused: Sequence[str], shown: int = 3) -> str:
    """The warning for tags a registry listed that are not tags at all (never requested, never copied)."""
    names = ", ".join(repr(tag[:80]) for tag in refused[:shown])
    more = f" and {len(refused) - shown} more" if len(refused) > shown else ""
    return (
        f"{repository}: the registry listed {len(refused)} tag{'s' if len(refused) != 1 else ''} that the image "
        f"reference grammar does not allow ({names}{more}); skipped, nothing was requested with them"
    )


def copy_within_budget(
    plan: RepositoryPlan,
    budget: PullBudget,
    client: RegistryClient,
    copy: Callable[[Sequence[TagPlan]], object],
) -> tuple[TagPlan, ...]:
    """Copy ``plan.copy`` in chunks the registry's remaining pulls allow; return the tags left for later.

    On a limited registry one image goes first, to measure what an image costs; the remaining count is read
    again after every chunk, so the reserve is kept even when images cost more than they did so far. When
    the count is not known yet, one HEAD (which costs no pull) reads it.
    """
    host = plan.repository.host
    todo = plan.copy
    if todo and budget.remaining(host) is None and host == DOCKER_HUB:
        with contextlib.suppress(BotError):  # the copy reports it
            client.head_manifest(host, plan.repository.repository, todo[0].tag)
    while todo:
        count = budget.images_allowed(host, len(todo))
        if count == 0:
            return todo
        if budget.remaining(host) is not None and not budget.knows_cost(host):
            count = 1  # one image first, to see what an image of this registry costs
        before = budget.remaining(host)
        copy(todo[:count])
        budget.learn(host, before, count)
        todo = todo[count:]
    return ()


def limit_note(budget: PullBudget, deferred: Mapping[str, int]) -> str | None:
    """The summary line for tags left for a later run because of a pull limit."""
    total = sum(deferred.values())
    if not total:
        return None
    left = ", ".join(f"{host}: {budget.remaining(host)} pulls left" for host in sorted(deferred))
    return (
        f"stopped before exhausting the pull limit ({left}; {budget.reserve} kept in reserve): "
        f"{plural(total, 'tag')} deferred to the next run"
    )


# Pulls of a registry's rate limit a daily run leaves unspent, by default.
DEFAULT_RESERVE = 10


@dataclass(frozen=True, slots=True)
class DailyOptions:
    """How a daily run copies (the command line's options, checked)."""

    reserve: int = DEFAULT_RESERVE  # pulls of a registry's rate limit left unspent
    platforms: tuple[Platform, ...] | None = None  # None: every platform, digest-exact
    dry_run: bool = False
    concurrency: int = 8
    referrers: ReferrerPolicy | None = None  # what travels with each image (signatures, SBOMs)
    max_image_bytes: int | None = None  # limits.max_image_bytes, checked before any blob moves
    max_tags: int | None = None  # daily.max_tags_per_run
    max_bytes: int | None = None  # daily.max_bytes_per_run


@dataclass(frozen=True, slots=True)
class RepositoryFailed:
    """A repository whose tags were not copied at all (refused by the rules, unlisted, or cancelled)."""

    repository: Reference
    reason: str


@dataclass(frozen=True, slots=True)
class TagCopied:
    """One tag the run copied (or tried to): the copy's result and why the tag was picked (new or moved)."""

    result: ImageResult
    why: str


@dataclass
class DailyReport:
    """What a daily run did, in run order, for the caller to log, summarise and record."""

    outcomes: list[RepositoryFailed | TagCopied]
    not_done: list[str]  # images and repositories a cancellation left undone
    warnings: list[str]  # tags a registry listed that are no tags
    limit_note: str | None = None  # tags left for the next run because of a pull limit
    cap_note: str | None = None  # tags left for the next run because of the run's caps

    @property
    def notes(self) -> tuple[str, ...]:
        return (*self.warnings, *(note for note in (self.limit_note, self.cap_note) if note))


class Cancel(Protocol):
    """What the run watches to stop early (bot.cancel.Cancellation)."""

    event: threading.Event

    @property
    def requested(self) -> bool: ...

    @property
    def name(self) -> str: ...


def run_daily(
    repositories: Iterable[Reference],
    mirrored: Sequence[Entry],
    mapper: Mapper,
    client: RegistryClient,
    *,
    tag_filter: TagFilter,
    options: DailyOptions,
    cancel: Cancel,
    prepare: Callable[[Target], None] | None = None,
    mount_policy: str = MOUNT_ANY,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda line: None,
    warn: Callable[[str], None] = lambda warning: None,
) -> DailyReport:
    """Copy the new and moved tags of each repository within the registries' pull limits.

    Per repository: refused before any request when no rule allows it; else its tags are listed and chosen
    (:func:`plan_repository`) and copied in chunks the pull budget allows (:func:`copy_within_budget`). ``say``
    gets a log line per repository and per image, ``warn`` each warning as it is found.
    """
    from bot.sync import sync

    budget = PullBudget(options.reserve)
    client.observe_responses(budget.observe)
    client.cancel_on(cancel.event)  # retry waits while listing tags end at a cancel
    from bot.registry.copy import CopyLimits

    claims = PathClaims(mirrored, mapper)
    limits = CopyLimits(options.max_image_bytes, options.max_bytes)
    tags_left = options.max_tags
    capped = 0  # tags the tag cap left for the next run
    report = DailyReport([], [], [])
    deferred: dict[str, int] = {}

    def copy(plan: RepositoryPlan, tags: Sequence[TagPlan]) -> None:
        why = {tag.tag: tag.reason or "" for tag in tags}
        copied = sync(
            plan.references(tags),
            mapper,
            client,
            platforms=options.platforms,
            dry_run=options.dry_run,
            concurrency=options.concurrency,
            progress=progress,
            prepare=prepare,
            mount_policy=mount_policy,
            cancel=cancel.event,
            claims=claims,
            referrers=options.referrers,
            limits=limits,
        )
        for result in copied.results:
            say(result.describe())
            report.outcomes.append(TagCopied(result, why.get(result.source.tag or "", "")))
            if result.cancelled:
                report.not_done.append(str(result.source))

    for repository in repositories:
        if cancel.requested:  # not even listed: its new tags are for the next run
            report.not_done.append(str(repository))
            reason = f"not done: the run was cancelled ({cancel.name}) before its tags were listed"
            report.outcomes.append(RepositoryFailed(repository, reason))
            continue
        try:  # an unknown or denied registry is refused before any request
            mapper.target(repository)
        except MappingError as exc:
            report.outcomes.append(RepositoryFailed(repository, exc.message))
            continue
        plan = plan_repository(repository, mirrored, client, tag_filter)
        say(describe_plan(plan))
        if plan.refused:
            warning = refused_tags_note(repository, plan.refused)
            report.warnings.append(warning)
            warn(warning)
        if plan.error is not None:
            report.outcomes.append(RepositoryFailed(repository, plan.error))
            continue
        if tags_left is not None:  # the run's tag cap: the rest waits, like tags over a pull limit
            capped += max(0, len(plan.copy) - tags_left)
            plan = dataclasses.replace(plan, copy=plan.copy[:tags_left])
            tags_left -= len(plan.copy)
        left = copy_within_budget(plan, budget, client, functools.partial(copy, plan))
        if left:
            deferred[repository.host] = deferred.get(repository.host, 0) + len(left)
    report.limit_note = limit_note(budget, deferred)
    report.cap_note = cap_note(options, capped, limits.deferred)
    return report


def cap_note(options: DailyOptions, tags: int, images: int) -> str | None:
    """The summary line for tags left for the next run by ``daily.max_tags_per_run`` / ``max_bytes_per_run``."""
    parts = []
    if tags:
        parts.append(f"{plural(tags, 'tag')} over daily.max_tags_per_run ({options.max_tags})")
    if images:
        parts.append(f"{plural(images, 'tag')} over daily.max_bytes_per_run ({binary_size(options.max_bytes or 0)})")
    return f"deferred to the next run: {' and '.join(parts)}" if parts else None


def unique_repositories(refs: Iterable[Reference]) -> list[Reference]:
    """``refs`` without a repeated repository (in any spelling), in their order."""
    seen: set[str] = set()
    result: list[Reference] = []
    for ref in refs:
        if ref.canonical_name not in seen:
            seen.add(ref.canonical_name)
            result.append(ref)
    return result


def describe_plan(plan: RepositoryPlan) -> str:
    if plan.error is not None:
        return f"FAILED  {plan.repository}: {plan.error}"
    return (
        f"{plan.repository}: {plural(plan.tags, 'tag')} upstream, {len(plan.selected)} selected, "
        f"{len(plan.copy)} new or moved"
    )
