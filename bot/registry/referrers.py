"""Signatures, attestations, SBOMs and other artifacts that refer to an image travel with it.

For the image's digest and each platform manifest's, the source is asked three ways:

- the referrers API, ``GET /v2/<name>/referrers/<digest>`` (an OCI index of the manifests whose ``subject``
  is that digest): https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
- where the source has none (it answers 404), the referrers tag schema: the tag ``sha256-<hex>`` holds that
  index: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema
- cosign's tags ``sha256-<hex>.sig``, ``.att`` and ``.sbom``.

Each artifact found is copied digest-exact (a cosign tag keeps its name), and what refers to it is looked for
in turn (a signature of an SBOM), a few levels deep. At the target a referrer is pushed by digest; a registry
with the referrers API indexes it itself (it answers the push with ``OCI-Subject``), otherwise the
``sha256-<hex>`` index at the target gets the new descriptors, as the spec asks a client to do:
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests-with-subject

An artifact that fails to copy is reported and does not fail its image, unless the image must be signed
(``require_signature``) and no signature arrived.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from bot.errors import BotError, Cancelled, CopyError, NotFound
from bot.reference import is_digest
from bot.registry.artifacts import (
    COSIGN_TAGS,
    IMAGE,
    SIGNATURE,
    count_phrase,
    fallback_tag,
    kind_of_type,
    manifest_kind,
)
from bot.registry.models import OCI_INDEX, Manifest

if TYPE_CHECKING:
    from bot.registry.client import RegistryClient
    from bot.registry.copy import Copier, CopyResult, ImageLocation

# image -> signature -> signature of the signature: deeper chains are not followed.
MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class ReferrerPolicy:
    """What to carry: everything (``artifact_types`` empty) or the artifact types matching one of the patterns
    (``fnmatch``, e.g. ``application/vnd.dev.cosign.*``); which images must arrive signed (``require_signature``:
    ``host`` or ``host/repository`` patterns)."""

    copy: bool = True
    artifact_types: tuple[str, ...] = ()
    require_signature: tuple[str, ...] = ()

    def wants(self, artifact_type: str | None) -> bool:
        if not self.artifact_types:
            return True
        return artifact_type is not None and any(fnmatchcase(artifact_type, p) for p in self.artifact_types)

    def signature_required(self, name: str) -> str | None:
        """The ``require_signature`` pattern that covers ``host/repository``, if any."""
        return required_by(self.require_signature, name)


def required_by(patterns: Iterable[str], name: str) -> str | None:
    """The first pattern covering ``name`` (``host/repository``): a bare host covers its whole registry."""
    for pattern in patterns:
        if fnmatchcase(name, pattern if "/" in pattern else f"{pattern}/*"):
            return pattern
    return None


@dataclass(frozen=True, slots=True)
class Found:
    """One artifact attached to ``subject`` at the source: a referrer (``tag`` is None) or a cosign tag."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str
    tag: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        return kind_of_type(self.artifact_type) or "artifact"

    def descriptor(self) -> dict[str, Any]:
        """The descriptor a referrers index lists for it."""
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True, slots=True)
class Attached:
    """One artifact of an image as copied: ``error`` says why it did not arrive."""

    digest: str
    kind: str
    subject: str
    tag: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class AttachedReport:
    """What the image is (``kind``: image, Helm chart, SBOM, ...) and the artifacts that came with it."""

    kind: str
    items: tuple[Attached, ...] = ()

    @property
    def arrived(self) -> tuple[Attached, ...]:
        return tuple(item for item in self.items if item.ok)

    @property
    def failed(self) -> tuple[Attached, ...]:
        return tuple(item for item in self.items if not item.ok)

    @property
    def signed(self) -> bool:
        return any(item.kind == SIGNATURE for item in self.arrived)

    def note(self) -> str:
        """``; Helm chart; attached: 2 signatures`` for a log line (empty for a plain image with nothing attached)."""
        parts = [] if self.kind == IMAGE else [self.kind]
        described = self.describe()
        if described:
            parts.append(f"attached: {described}")
        return "".join(f"; {part}" for part in parts)

    def describe(self) -> str:
        """``2 signatures, 1 SBOM`` (and ``1 failed: …``); empty when nothing is attached."""
        text = count_phrase(item.kind for item in self.arrived)
        failed = self.failed
        if failed:
            first = failed[0]
            what = first.tag or first.digest
            text += ("; " if text else "") + f"{len(failed)} failed ({what}: {first.error})"
        return text


def parse_listing(index: Manifest, subject: str) -> list[Found]:
    """The referrers an OCI index lists (the referrers API's answer or the ``sha256-<hex>`` tag's index); entries
    with a malformed digest are dropped, since the digest goes into request paths."""
    items = index.data.get("manifests")
    found = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        digest, media_type, size = item.get("digest"), item.get("mediaType"), item.get("size")
        if not isinstance(digest, str) or not is_digest(digest) or not isinstance(media_type, str):
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            continue
        artifact_type = item.get("artifactType")
        annotations = item.get("annotations")
        pairs = (
            tuple(sorted((k, v) for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)))
            if isinstance(annotations, dict)
            else ()
        )
        declared = artifact_type if isinstance(artifact_type, str) else None
        found.append(Found(digest, media_type, size, declared, subject, None, pairs))
    return found


@dataclass(slots=True)
class _Run:
    """One image's walk: where from, where to, what arrived so far and the digests already handled."""

    copier: Copier
    src: ImageLocation
    dst: ImageLocation
    items: list[Attached] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the subjects are walked in parallel

    def claim(self, digest: str) -> bool:
        """True the first time ``digest`` is met in this image's walk."""
        with self.lock:
            if digest in self.seen:
                return False
            self.seen.add(digest)
            return True

    def add(self, item: Attached) -> None:
        with self.lock:
            self.items.append(item)


_WIDTH = 4  # subjects looked at at once per unit of --concurrency


class Referrers:
    """Finds and copies what refers to images; one instance per run, shared by the image threads.

    ``attach`` is the hook the copy engine calls after each image (see :meth:`Copier.copy`).
    """

    def __init__(self, policy: ReferrerPolicy, *, concurrency: int = 4) -> None:
        self.policy = policy
        # Images finish together (they wait for the same base layers), and each has about three subjects of four
        # look-ups, each a round trip to the source: with a pool the size of ``concurrency`` the look-ups of 20
        # images queued for 4 s after the last blob over a 180 ms link. Threads are made as work comes.
        width = max(2, concurrency) * _WIDTH
        self._pool = ThreadPoolExecutor(4 * width, thread_name_prefix="referrers")
        # One task per subject (index, platform manifest); its look-ups run in ``_pool``, so none waits on its own.
        self._subjects = ThreadPoolExecutor(width, thread_name_prefix="referrer-subjects")
        self._lock = threading.Lock()
        self._source_api: dict[str, bool] = {}  # host -> has the referrers API
        self._target_api: dict[str, bool] = {}
        self._index_locks: dict[tuple[str, str, str], threading.Lock] = {}

    def close(self) -> None:
        self._subjects.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- finding ------------------------------------------------------------------------------------------

    def discover(self, client: RegistryClient, host: str, repository: str, subject: str) -> list[Found]:
        """Everything attached to ``subject`` at ``host/repository``: referrers, then cosign tags."""
        base = fallback_tag(subject)
        tags = [(f"{base}{suffix}", artifact_type) for suffix, artifact_type in COSIGN_TAGS] if base else []

        def lookup(index: int) -> list[Found]:
            if index == 0:
                return self._listed(client, host, repository, subject)
            tag, artifact_type = tags[index - 1]
            return _tagged(client, host, repository, tag, artifact_type=artifact_type, subject=subject)

        found: list[Found] = []
        for part in self._pool.map(lookup, range(len(tags) + 1)):
            found.extend(part)
        return found

    def _listed(self, client: RegistryClient, host: str, repository: str, subject: str) -> list[Found]:
        if self._source_api.get(host) is not False:
            index = client.get_referrers(host, repository, subject)
            with self._lock:
                self._source_api[host] = index is not None
            if index is not None:
                return parse_listing(index, subject)
        tag = fallback_tag(subject)
        if tag is None:
            return []
        try:
            index = client.get_manifest(host, repository, tag)
        except NotFound:
            return []
        return parse_listing(index, subject) if index.is_index else []

    # -- copying ------------------------------------------------------------------------------------------

    def attach(self, copier: Copier, src: ImageLocation, dst: ImageLocation, result: CopyResult) -> CopyResult:
        """Carry what refers to the copied image (its index and each platform manifest) to the target."""
        client = copier.client
        run = _Run(copier, src, dst)
        try:
            top = client.get_manifest(dst.host, dst.repository, result.target_digest)
        except Cancelled:
            raise
        except BotError as exc:  # the image is there (it was read back or just pushed): report, do not fail it
            why = f"reading the copied manifest back to look for artifacts failed: {exc}"
            report = AttachedReport(
                IMAGE, (Attached(result.target_digest, "artifact", result.target_digest, None, why),)
            )
            return self._checked(src, replace(result, attached=report))
        # The source's own digest when the copy kept it; a platform filter that picked one platform keeps that
        # platform manifest's digest.
        subjects = [result.source_digest] if result.digest_exact else []
        if not result.digest_exact and not top.is_index:
            subjects.append(result.target_digest)
        # BuildKit's attestation manifests (platform unknown/unknown) are children of the index already.
        subjects += [
            child.digest for child in top.children() if child.platform is None or not child.platform.is_unknown
        ]
        if self.policy.copy:
            list(self._subjects.map(lambda subject: self._carry(run, subject, 1), subjects))
        return self._checked(src, replace(result, attached=AttachedReport(manifest_kind(top), tuple(run.items))))

    def _checked(self, src: ImageLocation, result: CopyResult) -> CopyResult:
        """``result``, unless a ``require_signature`` pattern covers the image and no signature arrived."""
        report = result.attached
        assert report is not None
        pattern = self.policy.signature_required(f"{src.host}/{src.repository}")
        if pattern is not None and not report.signed:
            why = "; ".join(
                f"{item.tag or item.digest}: {item.error}" for item in report.failed if item.kind == SIGNATURE
            )
            raise CopyError(
                f"{src}: a signature is required (require_signature: {pattern}) but "
                + (f"copying it failed: {why}" if why else "the source image carries none")
                + "; ask the image's publishers to sign it, or remove the pattern from require_signature in "
                "mirror/config.yml"
            )
        return result

    def _carry(self, run: _Run, subject: str, depth: int) -> None:
        copier, src, dst = run.copier, run.src, run.dst
        client = copier.client
        try:
            found = self.discover(client, src.host, src.repository, subject)
        except Cancelled:
            raise
        except BotError as exc:
            run.add(Attached(subject, "artifact", subject, None, f"looking for artifacts failed: {exc}"))
            return
        listed: list[Found] = []
        for item in found:
            if not self.policy.wants(item.artifact_type) or not run.claim(item.digest):
                continue
            try:
                pushed = self._copy_one(copier, src, dst, item)
            except Cancelled:
                raise
            except BotError as exc:
                run.add(Attached(item.digest, item.kind, subject, item.tag, str(exc)))
                continue
            run.add(Attached(item.digest, item.kind, subject, item.tag))
            if item.tag is None:
                listed.append(item)
                if pushed and dst.host not in client.referrers_api_hosts:
                    with self._lock:  # pushed a manifest with a subject and got no OCI-Subject back
                        self._target_api.setdefault(dst.host, False)
            # What refers to an SBOM or an attestation (its signature) comes too; a signature of a signature is
            # rare enough not to cost four more requests per signature.
            if depth < MAX_DEPTH and item.kind != SIGNATURE:
                self._carry(run, item.digest, depth + 1)
        if listed:
            try:
                self._index_at_target(client, dst, subject, listed)
            except Cancelled:
                raise
            except BotError as exc:
                failed = {item.digest for item in listed}
                why = f"the referrers index at the target could not be updated: {exc}"
                with run.lock:
                    run.items[:] = [replace(i, error=why) if i.digest in failed and i.ok else i for i in run.items]

    def _copy_one(self, copier: Copier, src: ImageLocation, dst: ImageLocation, item: Found) -> bool:
        """Copy one artifact unless the target has it; True when something was pushed."""
        from bot.registry.copy import ImageLocation

        reference = item.tag or item.digest
        present = copier.client.head_manifest(dst.host, dst.repository, reference)
        if present is not None and present.digest == item.digest:
            return False
        copied = copier.copy_manifests(
            ImageLocation(src.host, src.repository, item.tag, item.digest),
            ImageLocation(dst.host, dst.repository, item.tag, None if item.tag else item.digest),
        )
        return copied.manifests_pushed > 0

    def _target_has_api(self, client: RegistryClient, dst: ImageLocation, subject: str) -> bool:
        if dst.host in client.referrers_api_hosts:
            return True
        with self._lock:
            known = self._target_api.get(dst.host)
        if known is not None:
            return known
        has = client.get_referrers(dst.host, dst.repository, subject) is not None
        with self._lock:
            self._target_api.setdefault(dst.host, has)
        return has

    def _index_at_target(self, client: RegistryClient, dst: ImageLocation, subject: str, listed: list[Found]) -> None:
        """Where the target has no referrers API, add ``listed`` to the ``sha256-<hex>`` index of ``subject``."""
        if self._target_has_api(client, dst, subject):
            return
        tag = fallback_tag(subject)
        if tag is None:
            return
        with self._index_lock(dst.host, dst.repository, tag):
            try:
                current: Manifest | None = client.get_manifest(dst.host, dst.repository, tag)
            except NotFound:
                current = None
            if current is not None and current.media_type != OCI_INDEX:
                raise CopyError(f"{dst.host}/{dst.repository}:{tag} is not a referrers index ({current.media_type})")
            entries = list(current.data.get("manifests") or []) if current is not None else []
            have = {entry.get("digest") for entry in entries if isinstance(entry, dict)}
            missing = [item.descriptor() for item in listed if item.digest not in have]
            if not missing:
                return
            body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries + missing}
            client.put_manifest(dst.host, dst.repository, tag, json.dumps(body, indent=2).encode(), OCI_INDEX)

    @contextmanager
    def _index_lock(self, host: str, repository: str, tag: str) -> Iterator[None]:
        with self._lock:
            lock = self._index_locks.setdefault((host, repository, tag), threading.Lock())
        with lock:
            yield


def _tagged(
    client: RegistryClient, host: str, repository: str, tag: str, *, artifact_type: str, subject: str
) -> list[Found]:
    found = client.head_manifest(host, repository, tag)
    if found is None:
        return []
    return [Found(found.digest, found.media_type, found.size, artifact_type, subject, tag)]


@dataclass(frozen=True, slots=True)
class Signing:
    """Whether an upstream image carries a signature, and what is attached to it (for ``validate-pr``)."""

    signed: bool
    attached: tuple[str, ...] = field(default=())  # kinds, one per artifact


def signing_of(
    referrers: Referrers, client: RegistryClient, host: str, repository: str, digests: Iterable[str]
) -> Signing:
    """Look at what is attached to each of ``digests`` (the image and its platform manifests), one level."""
    kinds: list[str] = []
    for digest in digests:
        kinds.extend(item.kind for item in referrers.discover(client, host, repository, digest))
    return Signing(SIGNATURE in kinds, tuple(kinds))
