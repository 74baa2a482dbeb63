"""Use case: copy a list of images to their mirror paths and report, per image, what happened (as data).

The registry client is passed in (built by the command from the config), so callers choose endpoints,
credentials and the allow-list. Nothing here writes files: callers write ``mirrored-images.txt`` from
:meth:`SyncReport.verified`, which holds only images whose digest was confirmed at the target.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.collisions import Clash, PathClaims, PathKey, path_key, same_source
from bot.errors import BotError, Failure, MappingError
from bot.lists import Entry, MirroredIndex
from bot.reference import Reference
from bot.registry.models import MOUNT_ANY, Platform
from bot.registry.progress import Progress
from bot.rules import Mapper, Target
from bot.units import binary_size

if TYPE_CHECKING:  # the engine (and requests) loads when a sync runs, not when the CLI starts
    from bot.registry.client import RegistryClient
    from bot.registry.copy import CopyLimits, CopyResult, ImageLocation
    from bot.registry.referrers import AttachedReport, ReferrerPolicy


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The outcome for one source image.

    ``ok`` with ``verified``: the target tag was read back and holds ``target_digest``. ``skipped``: it
    already did before this run. ``reason`` says why a failed image failed; ``cancelled`` failed images were
    not started, or abandoned, because the run was cancelled.
    """

    source: Reference
    target: Target | None
    ok: bool
    reason: str | None = None
    source_digest: str | None = None
    target_digest: str | None = None
    bytes_moved: int = 0
    skipped: bool = False
    verified: bool = False
    platforms: tuple[Platform, ...] = ()
    copy: CopyResult | None = None
    cancelled: bool = False
    failure: Failure | None = None  # why the copy failed, as data (the target kind explains it)
    deferred: bool = False  # left for the next run by the run's byte cap: not a failure

    @property
    def attached(self) -> AttachedReport | None:
        """What the image is and the signatures, attestations and SBOMs copied with it (``None``: not looked at)."""
        return self.copy.attached if self.copy is not None else None

    @property
    def pinned_source(self) -> str:
        """``source-ref@sha256:...``: the line ``mirrored-images.txt`` records for this image."""
        digest = self.source_digest or self.source.digest
        return str(self.source.with_digest(digest))

    def describe(self) -> str:
        target = str(self.target) if self.target else "-"
        if self.cancelled:
            return f"NOTDONE {self.source} -> {target}: {self.reason}"
        if not self.ok:
            return f"FAILED  {self.source} -> {target}: {self.reason}"
        if self.copy is not None and self.copy.dry_run:
            what = "up to date" if self.skipped else f"would copy {binary_size(self.bytes_moved)}"
            return f"DRY-RUN {self.source} -> {target}: {what}"
        extra = self.attached.note() if self.attached is not None else ""
        if self.skipped:
            return f"OK      {self.source} -> {target}: already up to date ({self.target_digest}){extra}"
        copy = self.copy
        blobs = (
            f", blobs {copy.blobs_copied} copied / {copy.blobs_mounted} mounted / {copy.blobs_skipped} present"
            if copy
            else ""
        )
        moved = f"{binary_size(self.bytes_moved)} moved{blobs}"
        return f"OK      {self.source} -> {target}: {moved} ({self.target_digest}){extra}"


@dataclass(frozen=True, slots=True)
class SyncReport:
    results: tuple[ImageResult, ...]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failed(self) -> tuple[ImageResult, ...]:
        return tuple(result for result in self.results if not result.ok)

    @property
    def cancelled(self) -> tuple[ImageResult, ...]:
        """Images not done because the run was cancelled (they are among :attr:`failed`)."""
        return tuple(result for result in self.results if result.cancelled)

    @property
    def succeeded(self) -> tuple[ImageResult, ...]:
        return tuple(result for result in self.results if result.ok)

    def verified(self) -> tuple[ImageResult, ...]:
        """Images confirmed at the target (never set by a dry run)."""
        return tuple(result for result in self.results if result.ok and result.verified)

    @property
    def bytes_moved(self) -> int:
        return sum(result.bytes_moved for result in self.results)

    def summary_lines(self) -> list[str]:
        lines = [result.describe() for result in self.results]
        skipped = sum(1 for r in self.results if r.ok and r.skipped)
        verb = "would move" if self.dry_run else "moved"
        images = f"{len(self.results)} image{'' if len(self.results) == 1 else 's'}"
        cancelled = len(self.cancelled)
        failed = f"{len(self.failed) - cancelled} failed" + (f", {cancelled} not done (cancelled)" if cancelled else "")
        lines.append(
            f"{images}: {len(self.succeeded)} ok ({skipped} already up to date), "
            f"{failed}; {verb} {binary_size(self.bytes_moved)}"
        )
        return lines


def sync(
    entries: Iterable[Entry | Reference],
    mapper: Mapper,
    client: RegistryClient,
    *,
    platforms: tuple[Platform, ...] | None = None,
    dry_run: bool = False,
    concurrency: int = 4,
    progress: Progress | None = None,
    prepare: Callable[[Target], None] | None = None,
    cancel: threading.Event | None = None,
    mount_policy: str = MOUNT_ANY,
    claims: PathClaims | None = None,
    referrers: ReferrerPolicy | None = None,
    limits: CopyLimits | None = None,
) -> SyncReport:
    """Copy every entry to ``mapper.target(entry)``; one failing image never stops the others.

    With ``referrers`` whose ``copy`` is on, what refers to each image (signatures, attestations, SBOMs) comes
    with it (see :mod:`bot.registry.referrers`).

    ``prepare`` runs for each target that needs a push (e.g. create the ECR repository), after HEAD requests
    have shown that the source exists and the target lacks it, and before anything is pushed; it may run in
    several threads at once. When it raises a :class:`BotError` that image fails with its message.
    ``mount_policy`` says which blobs the target registry mounts (see :class:`~bot.registry.copy.Copier`). Duplicate
    entries (any spelling of the same image) are copied once.

    Once ``cancel`` is set no further image starts and transfers in flight are abandoned (see
    :class:`~bot.registry.copy.Copier`); images that were not finished come back ``cancelled``, and those that
    were are still read back and verified, so the caller can record them.

    One mirror tag holds one source: an image whose target tag another image of this run takes is refused, and
    one whose target tag ``claims`` (mirrored-images.txt) gives to another source is copied only when its
    upstream digest is the one recorded there (declared aliases), pinned to that digest; else it is refused.
    """
    from bot.registry.copy import Copier, ImageLocation
    from bot.registry.referrers import Referrers

    results: dict[int, ImageResult] = {}
    jobs: list[tuple[int, Reference, Target]] = []
    seen: set[tuple[object, ...]] = set()
    taken: dict[PathKey, Reference] = {}
    pins: dict[int, str] = {}
    for index, item in enumerate(entries):
        ref = item.ref if isinstance(item, Entry) else item
        try:
            target = mapper.target(ref)
        except MappingError as exc:  # the report names the image already: the reason alone
            results[index] = ImageResult(ref, None, False, exc.reason)
            continue
        key = (*ref.identity(), str(target))
        if key in seen:
            continue
        seen.add(key)
        if target.tag is not None:
            first = taken.setdefault(path_key(target), ref)
            if first is not ref and not same_source(first, ref):
                why = f"refused: {first}, another image of this run, takes the mirror path {target}; {_ONE_SOURCE}"
                results[index] = ImageResult(ref, target, False, why)
                continue
            clash = claims.holder(ref, target) if claims is not None else None
            if clash is not None:
                pinned, why = _agreed_digest(client, ref, target, clash)
                if pinned is None:
                    results[index] = ImageResult(ref, target, False, why)
                    continue
                pins[index] = pinned
        jobs.append((index, ref, target))

    by_location = {(target.registry.lower(), target.repository): target for _, _, target in jobs}

    def prepare_target(location: ImageLocation) -> None:
        assert prepare is not None
        # The image's own tag: several tags of one repository share the entry of ``by_location``.
        target = by_location[(location.host, location.repository)]
        prepare(Target(target.registry, target.repository, location.tag, location.digest))

    hook = prepare_target if prepare is not None else None
    if cancel is not None:
        client.cancel_on(cancel)
    carrier = Referrers(referrers, concurrency=concurrency) if referrers is not None and referrers.copy else None
    # Each image is read back in its own worker as soon as it is done, while other images still move: one by
    # one after the run, each a round trip to the target, the reads took seconds on a long link.
    checks: dict[ImageLocation, tuple[bool, str | None]] = {}

    def finish(copier: Copier, src: ImageLocation, dst: ImageLocation, copy: CopyResult) -> CopyResult:
        if carrier is not None:
            copy = carrier.attach(copier, src, dst, copy)
        checks[dst] = _verify(client, dst, copy)
        return copy

    try:
        with Copier(
            client,
            concurrency=concurrency,
            progress=progress,
            dry_run=dry_run,
            prepare=hook,
            cancel=cancel,
            attach=finish,
            mount_policy=mount_policy,
            limits=limits,
        ) as copier:
            pairs = [
                (
                    ImageLocation.from_reference(ref).with_digest(pins.get(index, ref.digest)),
                    ImageLocation.from_target(target),
                )
                for index, ref, target in jobs
            ]
            outcomes = copier.copy_many(pairs, platforms)
    finally:
        if carrier is not None:
            carrier.close()
    if progress is not None:
        progress.finish()

    for (index, ref, target), outcome in zip(jobs, outcomes, strict=True):
        copy = outcome.result
        if outcome.cancelled:
            results[index] = ImageResult(ref, target, False, CANCELLED, cancelled=True)
            continue
        if outcome.deferred:
            reason = _without_own_name(outcome.error, ref, outcome.source)
            results[index] = ImageResult(ref, target, False, reason, deferred=True)
            continue
        if copy is None:
            reason = _without_own_name(outcome.error, ref, outcome.source)
            results[index] = ImageResult(ref, target, False, reason, failure=outcome.failure)
            continue
        verified = False
        reason = None
        if not dry_run:
            verified, reason = checks[outcome.target]  # every copied image passed through ``finish``
        results[index] = ImageResult(
            ref,
            target,
            reason is None,
            reason,
            copy.source_digest,
            copy.target_digest,
            copy.bytes_moved,
            copy.skipped,
            verified,
            copy.platforms,
            copy,
        )
    if claims is not None:
        for result in results.values():
            if result.verified and result.target is not None and result.target.tag is not None:
                claims.add(result.source.with_digest(result.target_digest), result.target)
    return SyncReport(tuple(results[i] for i in sorted(results)), dry_run)


def copy_limits(max_image_bytes: int | None) -> CopyLimits:
    """``limits.max_image_bytes`` for the engine (loaded here, when a run copies, not when the CLI starts)."""
    from bot.registry.copy import CopyLimits

    return CopyLimits(max_image_bytes)


CANCELLED = "not done: the run was cancelled before this image was copied and verified"
_ONE_SOURCE = "a mirror tag holds one image, so it is never moved to another source's image (see 'aliases:')"


def _agreed_digest(client: RegistryClient, ref: Reference, target: Target, clash: Clash) -> tuple[str | None, str]:
    """The digest to copy ``ref`` at when the recorded holder of its mirror tag has that same digest, else
    ``None`` and why not (one HEAD to the source; a request pinned by digest needs none)."""
    holder = clash.entry
    recorded = holder.ref.digest
    current = ref.digest
    if current is None and recorded is not None:
        try:
            found = client.head_manifest(ref.host, ref.repository, ref.effective_tag or "latest")
        except BotError as exc:
            return None, f"cannot compare with {holder.ref}, which holds the mirror path {target}: {exc}"
        current = found.digest if found is not None else None
    if recorded is not None and current == recorded:
        return current, ""
    where = f"{holder.file}:{holder.line}" if holder.line else "this run"
    return None, (
        f"refused: the mirror path {target} holds {holder.ref} ({where}), another source, and {ref} is at "
        f"{current or 'an unknown digest'}; {_ONE_SOURCE}"
    )


def _without_own_name(reason: str | None, ref: Reference, source: object) -> str | None:
    """``reason`` without a leading ``<image>: `` that only repeats the image every report line already names.

    Only an exact repeat of the image's own name goes; a nested error naming another location (a blob, the
    target) keeps its prefix.
    """
    if reason is None:
        return None
    for name in dict.fromkeys((str(ref), str(source))):
        if reason.startswith(f"{name}: ") and len(reason) > len(name) + 2:
            return reason[len(name) + 2 :]
    return reason


def _verify(client: RegistryClient, target: ImageLocation, copy: CopyResult) -> tuple[bool, str | None]:
    """Read the target tag back: it must hold the digest just pushed (a skip already checked it)."""
    if copy.skipped:
        return True, None
    try:
        found = client.head_manifest(target.host, target.repository, target.reference)
    except BotError as exc:
        return False, f"the copy finished but reading it back failed: {exc}"
    if found is None or found.digest != copy.target_digest:
        got = found.digest if found else "nothing"
        return False, f"the copy finished but {target} holds {got}, not {copy.target_digest}"
    return True, None


_DELETED_UPSTREAM = "deleted upstream"


def pending(
    refs: Iterable[Reference],
    mirrored: MirroredIndex,
    mapper: Mapper,
    client: RegistryClient,
    concurrency: int = 8,
    *,
    cancel: threading.Event | None = None,
) -> tuple[list[Reference], list[ImageResult]]:
    """Split requests into those to copy and those already mirrored at the digest upstream has now.

    A request is left out when its line in mirrored-images.txt pins the digest the source has: a request
    pinned ``@sha256:`` is compared without any request, a tag with one ``HEAD`` to the source (no pull on
    Docker Hub; ``concurrency`` of them at once); a tag that no longer exists upstream keeps its recorded
    image. Everything else (not listed, unpinned, moved, or the HEAD failed) is copied, and the copy reports
    what goes wrong. Both lists keep the input order. Once ``cancel`` is set no more HEADs are sent (those
    requests go to the copy list, where a cancelled copy does not start).
    """
    if cancel is not None:
        client.cancel_on(cancel)  # a backoff wait between retries ends when the run is cancelled
    unique: dict[tuple[str, str, str | None, str | None], Reference] = {}
    for ref in refs:
        unique.setdefault(ref.identity(), ref)
    pins = {ref: entry.ref.digest for ref in unique.values() if (entry := mirrored.find(ref)) is not None}
    to_head = [ref for ref, pinned in pins.items() if pinned is not None and ref.digest is None]

    def head(ref: Reference) -> str | None:
        """The digest upstream has now; ``None`` when it cannot be told (the copy will say why)."""
        if cancel is not None and cancel.is_set():
            return None
        try:
            found = client.head_manifest(ref.host, ref.repository, ref.effective_tag or "latest")
        except BotError:
            return None
        return found.digest if found is not None else _DELETED_UPSTREAM

    upstream = _ask_all(head, to_head, concurrency, cancel)

    copy: list[Reference] = []
    unchanged: list[ImageResult] = []
    for ref in unique.values():
        pinned = pins.get(ref)
        if pinned is None:
            copy.append(ref)
            continue
        current = ref.digest or upstream.get(ref)
        # A tag deleted upstream stays mirrored as recorded: nothing to copy, nothing failed.
        if current == _DELETED_UPSTREAM:
            current = pinned
        try:
            target = mapper.target(ref)
        except BotError:
            copy.append(ref)
            continue
        if current != pinned:
            copy.append(ref)
            continue
        unchanged.append(ImageResult(ref, target, True, None, pinned, pinned, skipped=True))
    return copy, unchanged


def _ask_all(
    head: Callable[[Reference], str | None],
    refs: list[Reference],
    concurrency: int,
    cancel: threading.Event | None,
) -> dict[Reference, str | None]:
    """``head(ref)`` for every ref, ``concurrency`` at a time. Once ``cancel`` is set this returns at once,
    without the answers still outstanding (their refs go to the copy, where a cancelled copy does not start):
    a HEAD stuck on a stalled registry, or in its retries, must not hold up a cancelled run."""
    if not refs:
        return {}
    pool = ThreadPoolExecutor(max(1, min(concurrency, len(refs))), thread_name_prefix="head")
    futures = {ref: pool.submit(head, ref) for ref in refs}
    try:
        outstanding = set(futures.values())
        while outstanding and not (cancel is not None and cancel.is_set()):
            outstanding = wait(outstanding, timeout=0.1).not_done
    finally:
        pool.shutdown(wait=not (cancel is not None and cancel.is_set()), cancel_futures=True)
    return {ref: future.result() for ref, future in futures.items() if future.done() and not future.cancelled()}
