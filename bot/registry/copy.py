"""The copy engine: every platform, digest-exact, streaming, each blob over the network at most once per run.

Copy by descriptor, like go-containerregistry: the source manifest bytes are pushed unchanged, children
before their parent, the tag last, so a target tag never points at an incomplete image and an interrupted
run, run again, moves only what is missing.

Per blob and target repository: known present in this run -> nothing; ``HEAD`` says present -> skipped;
already put in another repository of the same target registry in this run -> mounted; being uploaded right
now by another image -> wait for it, then mount; otherwise streamed from the source straight into the upload,
its sha256 and size checked on the way.

Registries that mount only what a manifest of the source repository references (ECR, with its opt-in
registry setting) get ``mount_policy="referenced"``: a blob is mounted only from a repository where this run
already pushed a manifest that references it, nobody waits for another image's upload to finish, and after
the registry refuses one mount (the setting is off) the rest of the run uploads without asking.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.errors import BotError, Cancelled, CopyError, Deferred, Failure, NotFound, RegistryError
from bot.reference import Reference, format_reference, parse_reference
from bot.registry.artifacts import IMAGE, manifest_kind
from bot.registry.client import RegistryClient
from bot.registry.models import (
    IMAGE_TYPES,
    MOUNT_ANY,
    MOUNT_REFERENCED,
    Descriptor,
    Manifest,
    Platform,
    filtered_index,
    select_children,
)
from bot.registry.progress import Progress
from bot.registry.ranges import DownloadStats, new_buffer
from bot.registry.resume import BlobTransfer
from bot.registry.streams import StreamLimits
from bot.registry.transfer import TransferSettings
from bot.registry.transport import gave_up
from bot.rules import Target
from bot.units import binary_size

if TYPE_CHECKING:
    from bot.registry.referrers import AttachedReport

# Called after each image: carries what refers to it (see bot.registry.referrers) and returns the result.
AttachHook = Callable[["Copier", "ImageLocation", "ImageLocation", "CopyResult"], "CopyResult"]


@dataclass(frozen=True, slots=True)
class ImageLocation:
    """One image in one registry: ``host/repository[:tag][@digest]`` (repository as the API names it)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def from_reference(cls, ref: Reference) -> ImageLocation:
        return cls(ref.host, ref.repository, ref.effective_tag, ref.digest)

    @classmethod
    def from_target(cls, target: Target) -> ImageLocation:
        return cls(target.registry.lower(), target.repository, target.tag, target.digest)

    @classmethod
    def parse(cls, text: str) -> ImageLocation:
        """Parse any image reference (``nginx``, ``127.0.0.1:5000/a/b:1``); raises InvalidReference."""
        return cls.from_reference(parse_reference(text))

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str | None) -> ImageLocation:
        return ImageLocation(self.host, self.repository, self.tag, digest)

    def __str__(self) -> str:
        return format_reference(f"{self.host}/{self.repository}", self.tag, self.digest)


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What one copy did.

    ``skipped`` is true when the target already held the source digest (checked with two HEAD requests and
    nothing else). ``platforms`` are the platforms of the copied index (empty for a single-platform image or
    a skipped one). With a platform filter that drops platforms, ``target_digest`` differs from
    ``source_digest``; otherwise they are equal.
    """

    source: ImageLocation
    target: ImageLocation
    source_digest: str
    target_digest: str
    media_type: str
    platforms: tuple[Platform, ...] = ()
    bytes_moved: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    manifests_pushed: int = 0
    skipped: bool = False
    dry_run: bool = False
    attached: AttachedReport | None = None  # what the image is and what came with it (signatures, SBOMs, ...)

    @property
    def digest_exact(self) -> bool:
        return self.source_digest == self.target_digest


class CopyLimits:
    """Limits checked once an image's blobs are known and before any of them moves (thread-safe).

    ``max_image_bytes``: an image whose config and layers add up to more is refused (a tag re-pushed as a
    bigger image after it was approved). ``run_bytes``: what the whole run may copy; an image that would go
    over it is :class:`~bot.errors.Deferred` to the next run.
    """

    def __init__(self, max_image_bytes: int | None = None, run_bytes: int | None = None) -> None:
        self.max_image_bytes = max_image_bytes
        self.run_bytes = run_bytes
        self.taken = 0
        self.deferred = 0
        self._lock = threading.Lock()

    def admit(self, image: object, size: int) -> None:
        if self.max_image_bytes is not None and size > self.max_image_bytes:
            raise CopyError(
                f"{image}: the image is {binary_size(size)} compressed, over the limit of "
                f"{binary_size(self.max_image_bytes)} per image (limits.max_image_bytes); nothing was copied"
            )
        if self.run_bytes is None:
            return
        with self._lock:
            if self.taken + size > self.run_bytes:
                self.deferred += 1
                raise Deferred(
                    f"{image}: deferred to the next run: this run's cap of {binary_size(self.run_bytes)} "
                    "(daily.max_bytes_per_run) is reached"
                )
            self.taken += size


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    """One image of a batch: ``result`` when it worked, else ``error`` (a message for people) and ``failure``
    (the same as data: kind, status, method, registry, path)."""

    source: ImageLocation
    target: ImageLocation
    result: CopyResult | None = None
    error: str | None = None
    cancelled: bool = False  # not started, or abandoned, because the run was cancelled
    deferred: bool = False  # left for the next run: the run's byte cap is reached
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What :func:`inspect` learns about a source image without copying it."""

    source: ImageLocation
    digest: str
    media_type: str
    platforms: tuple[Platform, ...]
    total_size: int  # compressed: config + layers of every platform, each distinct blob once
    manifests: int
    blobs: int
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    kind: str = IMAGE  # or Helm chart, SBOM, signature, ... (bot.registry.artifacts)
    children: tuple[str, ...] = ()  # digests of the platform manifests of an index

    @property
    def is_index(self) -> bool:
        return self.media_type not in IMAGE_TYPES


@dataclass(slots=True)
class _Counters:
    copied: int = 0
    mounted: int = 0
    skipped: int = 0
    moved: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, moved: int = 0) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.moved += moved


@dataclass(slots=True)
class _Plan:
    """The manifests to push (children first, the top one last) and the distinct blobs they need."""

    manifests: list[Manifest] = field(default_factory=list)
    blobs: dict[str, Descriptor] = field(default_factory=dict)
    platforms: list[Platform] = field(default_factory=list)


class Copier:
    """Copies images between registries with bounded concurrency; one instance per run.

    ``concurrency`` bounds both the images copied at once (:meth:`copy_many`) and the blobs in flight. The
    run-wide blob ledger is what lets later images mount instead of upload. ``prepare`` is called with the
    target of every image that needs a push (the source exists, the target lacks it), before anything is
    pushed, never in a dry run: the ECR adapter creates the repository there. It may run in several threads.

    Once ``cancel`` is set no image, blob or manifest push starts, transfers in flight stop at their next chunk
    (an abandoned upload is never committed), and :meth:`copy_many` returns after at most ``cancel_grace``
    seconds more, marking what did not finish as cancelled.
    """

    def __init__(
        self,
        client: RegistryClient,
        *,
        concurrency: int = 4,
        progress: Progress | None = None,
        dry_run: bool = False,
        prepare: Callable[[ImageLocation], None] | None = None,
        cancel: threading.Event | None = None,
        cancel_grace: float = 2.0,
        transfer: TransferSettings | None = None,
        attach: AttachHook | None = None,
        mount_policy: str = MOUNT_ANY,
        limits: CopyLimits | None = None,
    ) -> None:
        self.client = client
        self.limits = limits or CopyLimits()
        self.attach = attach
        self.mount_policy = mount_policy
        self.transfer = transfer or client.transfer
        self._part_buffer = new_buffer(self.transfer)
        self.downloads = DownloadStats()  # body bytes the sources sent, resumes and restarts, run-wide
        self.prepare = prepare
        self.cancel = cancel
        self.cancel_grace = cancel_grace
        self.concurrency = max(1, concurrency)
        self.progress = progress or Progress()
        self.dry_run = dry_run
        # ``concurrency`` streams per source host to begin with, up to four times that while more streams
        # carry more (a long, lossy link: see bot.registry.streams); more threads than that, because a worker
        # may wait for a layer another image is uploading (to mount it next) and must not hold up a transfer.
        self._streams = StreamLimits(self.concurrency * STREAMS_START, self.concurrency * STREAMS_GROWTH)
        self._blob_pool = ThreadPoolExecutor(self.concurrency * STREAMS_GROWTH * 4, thread_name_prefix="blob")
        self._lock = threading.Lock()
        # (target host, digest) -> repositories of that host known to hold the blob in this run
        self._present: dict[tuple[str, str], set[str]] = {}
        # (target host, digest) -> set when the transfer in progress ends (either way)
        self._inflight: dict[tuple[str, str], threading.Event] = {}
        # (target host, digest) -> workers of other images waiting for that transfer (it is urgent then)
        self._waiters: dict[tuple[str, str], int] = {}
        # digests counted by a dry run (each distinct blob would move once)
        self._planned: set[str] = set()
        # (target host, digest) -> lock: identical manifest content is pushed by one worker at a time, since
        # concurrent writes of the same content race in registry storage (distribution's filesystem driver
        # rewrites the file in place, so a concurrent reader can see it half written).
        self._manifest_locks: dict[tuple[str, str], threading.Lock] = {}
        # (target host, repository, digest) -> lock held while one worker makes sure the repository has the blob
        self._blob_locks: dict[tuple[str, str, str], threading.Lock] = {}
        # (target host, repository, digest) of manifests pushed in this run
        self._pushed: set[tuple[str, str, str]] = set()
        # (target host, blob digest) -> repositories where a manifest pushed in this run references the blob
        self._referenced: dict[tuple[str, str], set[str]] = {}
        # target hosts that refused a mount under the "referenced" policy: the rest of the run uploads
        self._mounts_refused: set[str] = set()

    def close(self) -> None:
        # A cancelled run does not wait for a transfer stuck in a socket read: the process is about to exit.
        self._blob_pool.shutdown(wait=not self._cancelled(), cancel_futures=True)

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _check_cancel(self, what: object) -> None:
        if self._cancelled():
            raise Cancelled(f"{what}: not done, the run was cancelled")

    @contextmanager
    def _stream_slot(self, source: str, blob: Descriptor) -> Iterator[None]:
        """One of the source host's streams; a transfer that waited for it does not start after a cancel."""
        with self._streams.host(source).slot():
            self._check_cancel(blob.digest)
            yield

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batch ---------------------------------------------------------------------------------------------

    def copy_many(
        self,
        pairs: Sequence[tuple[ImageLocation, ImageLocation]],
        platforms: tuple[Platform, ...] | None = None,
    ) -> list[CopyOutcome]:
        """Copy every ``(source, target)`` pair, ``concurrency`` images at a time; outcomes in input order.

        A failing image never stops the others: its outcome carries the error message.
        """
        self.progress.add_images(len(pairs))

        def one(pair: tuple[ImageLocation, ImageLocation]) -> CopyOutcome:
            src, dst = pair
            try:
                return CopyOutcome(src, dst, self.copy(src, dst, platforms))
            except Cancelled as exc:
                return CopyOutcome(src, dst, error=str(exc), cancelled=True, failure=Failure.of(exc))
            except Deferred as exc:
                return CopyOutcome(src, dst, error=str(exc), deferred=True)
            except BotError as exc:
                return CopyOutcome(src, dst, error=str(exc), failure=Failure.of(exc))
            finally:
                self.progress.image_done()

        if self.cancel is None and (len(pairs) <= 1 or self.concurrency == 1):
            return [one(pair) for pair in pairs]
        # Images waiting for their blobs are cheap; the streams per host bound the work (see __init__).
        pool = ThreadPoolExecutor(self.concurrency * STREAMS_GROWTH, thread_name_prefix="image")
        futures = [pool.submit(one, pair) for pair in pairs]
        try:
            self._wait_unless_cancelled(futures)
        finally:
            pool.shutdown(wait=not self._cancelled(), cancel_futures=True)
        return [
            future.result()
            if future.done() and not future.cancelled()
            else CopyOutcome(src, dst, error=f"{src}: not done, the run was cancelled", cancelled=True)
            for future, (src, dst) in zip(futures, pairs, strict=True)
        ]

    def _wait_unless_cancelled(self, futures: Sequence[Future[CopyOutcome]]) -> None:
        """Wait for every future; once the run is cancelled, for ``cancel_grace`` seconds more at most."""
        if self.cancel is None:
            wait(futures)
            return
        pending = set(futures)
        while pending and not self.cancel.is_set():
            pending = wait(pending, timeout=0.1).not_done
        if pending:
            wait(pending, timeout=self.cancel_grace)

    # -- one image -----------------------------------------------------------------------------------------

    def copy(self, src: ImageLocation, dst: ImageLocation, platforms: tuple[Platform, ...] | None = None) -> CopyResult:
        """Copy one image (every platform, or those in ``platforms``) and, with an ``attach`` hook, what refers
        to it; raises CopyError/RegistryError, or Cancelled once the run is cancelled."""
        result = self.copy_manifests(src, dst, platforms)
        if self.attach is None or self.dry_run:
            return result
        return self.attach(self, src, dst, result)

    def copy_manifests(
        self, src: ImageLocation, dst: ImageLocation, platforms: tuple[Platform, ...] | None = None
    ) -> CopyResult:
        """Copy one image's manifests and blobs, nothing that refers to it."""
        self._check_cancel(src)
        source_desc = self.client.head_manifest(src.host, src.repository, src.reference)
        if source_desc is None:
            raise CopyError(f"{src}: the source image does not exist (no such tag or digest)")
        if src.digest and source_desc.digest != src.digest:
            raise CopyError(f"{src}: asked for {src.digest}, the registry answered with {source_desc.digest}")
        source_digest = source_desc.digest
        dst_ref = dst.tag or dst.digest or source_digest

        if platforms is None:
            existing = self.client.head_manifest(dst.host, dst.repository, dst_ref)
            if existing is not None and existing.digest == source_digest:
                return CopyResult(src, dst, source_digest, existing.digest, source_desc.media_type, skipped=True)
            self._prepare(dst)
        top = self.client.get_manifest(src.host, src.repository, source_digest)
        plan = self._plan(src, dst, top, platforms)
        self.limits.admit(src, sum(blob.size for blob in plan.blobs.values()))  # before any blob moves
        final = plan.manifests[-1]
        if dst.digest is not None and dst.digest != final.digest:
            # The registry would refuse the manifest only after every blob had moved: say so now.
            hint = "; a --platform filter changes the digest, so name the target by tag" if platforms else ""
            raise CopyError(f"{src}: the target names {dst}, but the copy to it has digest {final.digest}{hint}")
        if platforms is not None:
            existing = self.client.head_manifest(dst.host, dst.repository, dst_ref)
            if existing is not None and existing.digest == final.digest:
                return CopyResult(
                    src, dst, source_digest, final.digest, final.media_type, tuple(plan.platforms), skipped=True
                )
            self._prepare(dst)
        counters = _Counters()
        self._check_cancel(src)
        self._copy_blobs(src, dst, list(plan.blobs.values()), counters)
        pushed = 0
        if not self.dry_run:
            for manifest in plan.manifests[:-1]:
                self._check_cancel(src)
                self._put_manifest(dst, manifest.digest, manifest)
                pushed += 1
            self._check_cancel(src)
            target_digest = self._put_manifest(dst, dst_ref, final)
            pushed += 1
        else:
            target_digest = final.digest
        return CopyResult(
            src,
            dst,
            source_digest,
            target_digest,
            final.media_type,
            tuple(plan.platforms),
            bytes_moved=counters.moved,
            blobs_copied=counters.copied,
            blobs_mounted=counters.mounted,
            blobs_skipped=counters.skipped,
            manifests_pushed=pushed,
            dry_run=self.dry_run,
        )

    def _prepare(self, dst: ImageLocation) -> None:
        if self.prepare is not None and not self.dry_run:
            self.prepare(dst)

    def _put_manifest(self, dst: ImageLocation, reference: str, manifest: Manifest) -> str:
        with self._lock:
            lock = self._manifest_locks.setdefault((dst.host, manifest.digest), threading.Lock())
        pushed = (dst.host, dst.repository, manifest.digest)
        with lock:
            if reference == manifest.digest and pushed in self._pushed:
                return manifest.digest
            digest = self._put_manifest_racing(dst, reference, manifest)
            with self._lock:
                self._pushed.add(pushed)
                if not manifest.is_index:
                    for blob in manifest.blobs():
                        self._referenced.setdefault((dst.host, blob.digest), set()).add(dst.repository)
            return digest

    def _put_manifest_racing(self, dst: ImageLocation, reference: str, manifest: Manifest) -> str:
        """Put the manifest; retried when another process writing the same content at the same moment made the
        registry misread it (distribution answers DIGEST_INVALID), unless the target then holds it already."""
        budget = self.client.transport.policy.settings(dst.host).max_attempts
        for attempt in range(1, budget + 2):
            try:
                return self.client.put_manifest(dst.host, dst.repository, reference, manifest.body, manifest.media_type)
            except RegistryError as exc:
                if not _write_race(exc) or attempt > budget:
                    raise
            _race_pause(attempt)
            found = self.client.head_manifest(dst.host, dst.repository, reference)
            if found is not None and found.digest == manifest.digest:
                return manifest.digest
        raise AssertionError("unreachable")

    def _plan(
        self, src: ImageLocation, dst: ImageLocation, top: Manifest, platforms: tuple[Platform, ...] | None
    ) -> _Plan:
        plan = _Plan()
        if not top.is_index:
            plan.blobs.update((b.digest, b) for b in top.blobs() if not b.is_foreign)
            plan.manifests.append(top)
            return plan
        children = select_children(top, platforms)
        if not children:
            wanted = ", ".join(str(p) for p in platforms or ())
            offered = ", ".join(str(c.platform) for c in top.children() if c.platform) or "none"
            raise CopyError(f"{src}: no platform matches {wanted}; the image offers {offered}")
        plan.platforms = [c.platform for c in children if c.platform is not None and not c.platform.is_unknown]
        self._plan_children(src, dst, children, plan)
        if platforms is None or len(children) == len(top.children()):
            plan.manifests.append(top)
        elif len(children) == 1:
            # One platform asked for: the target tag points at that platform's manifest itself. When the
            # target already had it, the plan holds no manifest to tag yet.
            child = children[0]
            if not plan.manifests or plan.manifests[-1].digest != child.digest:
                plan.manifests.append(self.client.get_manifest(src.host, src.repository, child.digest))
        else:
            body = filtered_index(top, children)
            plan.manifests.append(Manifest.parse(body, top.media_type, f"filtered index of {src}"))
        return plan

    def _plan_children(
        self, src: ImageLocation, dst: ImageLocation, children: Sequence[Descriptor], plan: _Plan
    ) -> None:
        def fetch(child: Descriptor) -> tuple[Descriptor, Manifest | None]:
            # A child the target already has was pushed complete (children first): skip its blobs.
            present = self.client.head_manifest(dst.host, dst.repository, child.digest)
            if present is not None and present.digest == child.digest:
                return child, None
            return child, self.client.get_manifest(src.host, src.repository, child.digest)

        fetched = list(self._blob_pool.map(fetch, children)) if len(children) > 1 else [fetch(c) for c in children]
        for _child, manifest in fetched:
            if manifest is None:
                continue
            if manifest.is_index:
                self._plan_children(src, dst, manifest.children(), plan)
            else:
                plan.blobs.update((b.digest, b) for b in manifest.blobs() if not b.is_foreign)
            plan.manifests.append(manifest)

    # -- blobs ---------------------------------------------------------------------------------------------

    def _copy_blobs(self, src: ImageLocation, dst: ImageLocation, blobs: list[Descriptor], counters: _Counters) -> None:
        if not blobs:
            return
        # Largest first: the long transfers start early and the small ones fill in around them.
        blobs.sort(key=lambda b: b.size, reverse=True)
        # Everything counts as still to move until a blob turns out to be present or mountable.
        self.progress.add_total(sum(blob.size for blob in blobs))
        futures: list[Future[None]] = [
            self._blob_pool.submit(self._ensure_blob, src, dst, blob, counters) for blob in blobs
        ]
        errors: list[BaseException] = []
        for future in futures:
            exc = future.exception()
            if exc is not None:
                errors.append(exc)
        if errors:
            first = errors[0]
            if isinstance(first, BotError):
                raise first
            raise CopyError(f"{src}: copying a blob failed: {first}") from first

    def _ensure_blob(self, src: ImageLocation, dst: ImageLocation, blob: Descriptor, counters: _Counters) -> None:
        # One worker at a time per blob and target repository: two images sharing a layer must not both
        # mount or upload it into the same repository (concurrent link writes race in registry storage).
        with self._lock:
            lock = self._blob_locks.setdefault((dst.host, dst.repository, blob.digest), threading.Lock())
        with lock:
            self._ensure_blob_locked(src, dst, blob, counters)

    def _ensure_blob_locked(
        self, src: ImageLocation, dst: ImageLocation, blob: Descriptor, counters: _Counters
    ) -> None:
        key = (dst.host, blob.digest)
        referenced = self.mount_policy == MOUNT_REFERENCED
        for _ in range(1000):
            self._check_cancel(blob.digest)
            with self._lock:
                repos = self._present.get(key, set())
                sources = self._mount_sources(key, repos, dst.repository)
                mount_from = min(sources) if sources else None
                waiting = None if referenced else self._inflight.get(key)
            if dst.repository in repos:
                self._done_without_transfer(blob, counters, "skipped")
                return
            if mount_from is not None:
                upload_url = self._mount(dst, blob, mount_from, counters)
                if upload_url is not None:
                    # Refused (the registry may not allow mounts across these repositories): upload instead.
                    if referenced:
                        with self._lock:
                            self._mounts_refused.add(dst.host)
                    self._transfer(src, dst, blob, counters, upload_url or None)
                return
            if referenced:
                self._upload_unless_present(src, dst, blob, counters)
                return
            if waiting is not None:
                with self._lock:
                    self._waiters[key] = self._waiters.get(key, 0) + 1
                try:
                    waiting.wait()
                finally:
                    with self._lock:
                        self._waiters[key] -= 1
                continue
            if self.client.head_blob(dst.host, dst.repository, blob.digest) is not None:
                self._mark_present(key, dst.repository)
                self._done_without_transfer(blob, counters, "skipped")
                return
            if self.dry_run:
                with self._lock:
                    first = blob.digest not in self._planned
                    self._planned.add(blob.digest)
                counters.add("copied", blob.size if first else 0)
                return
            with self._lock:
                if key in self._inflight or self._present.get(key):
                    continue  # another worker claimed it while we asked the registry
                event = threading.Event()
                self._inflight[key] = event
            try:
                self._transfer(src, dst, blob, counters)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()
            return
        raise CopyError(f"{blob.digest}: gave up waiting for a concurrent transfer")

    def _mount_sources(self, key: tuple[str, str], present: set[str], repository: str) -> set[str]:
        """Repositories the blob may be mounted from (caller holds the lock)."""
        if self.mount_policy == MOUNT_ANY:
            return present
        if self.mount_policy != MOUNT_REFERENCED or key[0] in self._mounts_refused:
            return set()
        return self._referenced.get(key, set()) - {repository}

    def _upload_unless_present(
        self, src: ImageLocation, dst: ImageLocation, blob: Descriptor, counters: _Counters
    ) -> None:
        """HEAD, then upload: the path of a blob no mount can bring (each target repository gets its own)."""
        if self.client.head_blob(dst.host, dst.repository, blob.digest) is not None:
            self._mark_present((dst.host, blob.digest), dst.repository)
            self._done_without_transfer(blob, counters, "skipped")
        elif self.dry_run:
            counters.add("copied", blob.size)
        else:
            self._transfer(src, dst, blob, counters)

    def _now_at_target(self, dst: ImageLocation, blob: Descriptor) -> bool:
        """Does the target hold the blob after a failed try (another writer committed it, or the answer to our
        own upload was lost)? Recorded as present when it does."""
        if self.client.head_blob(dst.host, dst.repository, blob.digest) != blob.size:
            return False
        self._mark_present((dst.host, blob.digest), dst.repository)
        return True

    def _landed_anyway(self, dst: ImageLocation, blob: Descriptor, counters: _Counters, delay: float) -> bool:
        """After a failed try, back off ``delay`` seconds, then ask whether the target committed the blob anyway
        (the answer to its upload was lost on the way back); True, and counted as copied, when it did."""
        self.client.transport.wait(delay)
        try:
            landed = self._now_at_target(dst, blob)
        except RegistryError:
            return False  # the next try finds out
        if landed:
            self.progress.advance(blob.size)
            counters.add("copied", blob.size)
        return landed

    def _done_without_transfer(self, blob: Descriptor, counters: _Counters, kind: str) -> None:
        counters.add(kind)
        self.progress.add_total(-blob.size)

    def _mark_present(self, key: tuple[str, str], repository: str) -> None:
        with self._lock:
            self._present.setdefault(key, set()).add(repository)

    def _mount(self, dst: ImageLocation, blob: Descriptor, from_repository: str, counters: _Counters) -> str | None:
        """Mount from another repository of this run; ``None`` when done, else the upload URL to use
        instead (``""`` when the registry opened none)."""
        result = self.client.mount_blob(dst.host, dst.repository, blob.digest, from_repository)
        if not result.mounted:
            return result.upload_url or ""
        self._mark_present((dst.host, blob.digest), dst.repository)
        self._done_without_transfer(blob, counters, "mounted")
        return None

    def _transfer(
        self,
        src: ImageLocation,
        dst: ImageLocation,
        blob: Descriptor,
        counters: _Counters,
        upload_url: str | None = None,
    ) -> None:
        """Stream the blob from the source into the target, retrying temporary failures from the start.

        The source and the target each get their host's tries (:mod:`bot.registry.policy`): a download that
        breaks off also ends the upload it feeds, so with one shared budget a flaky source would use up the tries
        of a healthy target. A 429 counts against the throttling budget, not the failure budget.
        """
        policy = self.client.transport.policy
        tries = {"source": policy.host(src.host).tries(), "target": policy.host(dst.host).tries()}
        connection_failures = 0
        while True:
            transfer = self._blob_transfer(src, dst, blob)
            try:
                with self._stream_slot(src.host, blob), policy.host(dst.host).slot():
                    transfer.run(upload_url)
            except RegistryError as exc:
                self.progress.advance(-transfer.sent)
                if exc.temporary:
                    self._streams.host(src.host).trouble()
                upload_url = None  # a failed session is not reused
                side = tries["target" if exc.method in _UPLOAD_METHODS else "source"]
                retried = (exc.temporary or _write_race(exc)) and not isinstance(exc, NotFound)
                delay = side.retry(throttled=exc.status == 429) if retried else None
                if delay is None:
                    gave_up(exc, side.count)
                    raise
                if _write_race(exc):
                    # Another process committed the same blob at the same moment: it may be there now.
                    _race_pause(side.count)
                    if self._now_at_target(dst, blob):
                        self._done_without_transfer(blob, counters, "skipped")
                        return
                    continue
                if self._landed_anyway(dst, blob, counters, delay):
                    return
                continue
            except OSError as exc:
                self.progress.advance(-transfer.sent)
                upload_url = None
                connection_failures += 1
                if connection_failures == policy.settings(dst.host).max_attempts:
                    raise CopyError(f"{blob.digest}: the transfer broke off: {exc}") from exc
                continue
            self._mark_present((dst.host, blob.digest), dst.repository)
            counters.add("copied", blob.size)
            return

    def _blob_transfer(self, src: ImageLocation, dst: ImageLocation, blob: Descriptor) -> BlobTransfer:
        """One try of a blob's transfer (it resumes on either side by itself; see :mod:`bot.registry.resume`)."""

        policy = self.client.transport.policy
        streams = self._streams.host(src.host)

        def on_chunk(size: int) -> None:
            self._check_cancel(blob.digest)  # abandons the upload: it is never committed
            self.progress.advance(size)
            if size > 0:
                streams.moved(size)

        return BlobTransfer(
            self.client,
            (src.host, src.repository),
            (dst.host, dst.repository),
            blob,
            settings=self.transfer,
            attempts=max(policy.settings(src.host).max_attempts, policy.settings(dst.host).max_attempts),
            buffer=self._part_buffer,
            on_chunk=on_chunk,
            stats=self.downloads,
            streams=streams,
            urgent=lambda: self._waiters.get((dst.host, blob.digest), 0) > 0,
        )


STREAMS_START = 4  # a host's streams start at this many times --concurrency ...
STREAMS_GROWTH = 8  # ... and may grow to this many times it
_UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _write_race(exc: RegistryError) -> bool:
    """Did the registry misread content because another client wrote the same content at the same moment?

    Distribution's filesystem storage rewrites a blob or manifest file in place; a concurrent reader can see it
    half written and answer DIGEST_INVALID although the bytes sent were right (the engine's own sha256 check
    of every source stream rules out the other cause before a blob is committed).
    """
    return exc.status == 400 and exc.code == "DIGEST_INVALID"


def _race_pause(attempt: int) -> None:
    """A short, jittered pause so the other writer finishes first."""
    time.sleep(random.uniform(0.05, 0.2) * attempt)  # noqa: S311 - jitter, not security


def copy_image(
    client: RegistryClient,
    src: ImageLocation,
    dst: ImageLocation,
    platforms: tuple[Platform, ...] | None = None,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> CopyResult:
    """Copy one image with a fresh :class:`Copier` (see :meth:`Copier.copy`)."""
    with Copier(client, concurrency=concurrency, progress=progress, dry_run=dry_run) as copier:
        return copier.copy(src, dst, platforms)


def inspect(client: RegistryClient, src: ImageLocation, *, concurrency: int = 4) -> ImageInfo:
    """Digest, media type, platforms and total compressed size of a source image (manifests only; a
    single-platform image's config blob is read for its platform)."""
    head = client.head_manifest(src.host, src.repository, src.reference)
    if head is None:
        raise NotFound(f"{src}: no such image (the tag or digest does not exist)", status=404)
    top = client.get_manifest(src.host, src.repository, head.digest)
    blobs: dict[str, int] = {}
    platforms: list[Platform] = []
    manifests = 1

    def walk(manifest: Manifest, pool: ThreadPoolExecutor) -> None:
        nonlocal manifests
        if not manifest.is_index:
            blobs.update((b.digest, b.size) for b in manifest.blobs())
            return
        children = manifest.children()
        platforms.extend(c.platform for c in children if c.platform is not None and not c.platform.is_unknown)
        fetched = pool.map(lambda c: client.get_manifest(src.host, src.repository, c.digest), children)
        for child in fetched:
            manifests += 1
            walk(child, pool)

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        walk(top, pool)
    if not top.is_index:
        config = top.config
        if config is not None:
            platform = _config_platform(client, src, config)
            if platform is not None:
                platforms.append(platform)
    total = sum(blobs.values())
    children = tuple(c.digest for c in top.children() if c.platform is None or not c.platform.is_unknown)
    return ImageInfo(
        src,
        head.digest,
        top.media_type,
        tuple(platforms),
        total,
        manifests,
        len(blobs),
        dict(head.headers),
        manifest_kind(top),
        children,
    )


def _config_platform(client: RegistryClient, src: ImageLocation, config: Descriptor) -> Platform | None:
    import json

    if config.size > 1024 * 1024:
        return None
    with client.get_blob(src.host, src.repository, config.digest, config.size) as stream:
        data = b"".join(stream)
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return Platform.from_json(parsed)
