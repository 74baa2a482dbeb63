"""Decide what one image reference becomes in the mirror (pure).

By default only mirrored images are rewritten: pointing a workload at a path the mirror does not hold turns a
working pod into ``ImagePullBackOff``. A digest-pinned reference is rewritten only when the mirror holds that
digest; the target keeps the digest, which is valid because copies are digest-exact.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum

from bot.errors import InvalidReference, MappingError
from bot.lists import Entry, MirroredIndex
from bot.reference import Reference, parse_reference
from bot.rules import Mapper, Target


class Mode(Enum):
    MIRRORED = "mirrored"  # only images listed in mirrored-images.txt
    MAPPABLE = "mappable"  # every image a rule covers, mirrored or not


class Status(Enum):
    REWRITE = "rewrite"
    IN_MIRROR = "already in the mirror"
    NOT_MIRRORED = "not mirrored"
    UNMAPPED = "no mirror rule"
    INVALID = "invalid reference"
    UNRESOLVED = "unresolved variable"


@dataclass(frozen=True, slots=True)
class Decision:
    image: str
    status: Status
    target: str | None = None
    reason: str = ""

    @property
    def rewrites(self) -> bool:
        return self.status is Status.REWRITE


def find_mirrored(index: MirroredIndex, ref: Reference) -> Entry | None:
    """The mirrored entry holding ``ref``; a digest pin must match the mirrored digest."""
    entry = index.find(ref)
    if entry is None and ref.digest is not None and ref.tag is not None:
        # The tag may have been mirrored more than once; the digest alone still identifies the copy.
        entry = index.find(ref.with_tag(None))
    return entry


class Policy:
    """Decides for image strings; decisions are cached because a cluster repeats the same few images."""

    def __init__(self, mapper: Mapper, index: MirroredIndex, mode: Mode, *, cache_size: int = 4096) -> None:
        self.mapper = mapper
        self.index = index
        self.mode = mode
        self._cache: dict[str, Decision] = {}
        self._cache_size = cache_size

    def decide(self, image: str) -> Decision:
        decision = self._cache.get(image)
        if decision is None:
            decision = decide(image, self.mapper, self.index, self.mode)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[image] = decision
        return decision


def decide(image: str, mapper: Mapper, index: MirroredIndex, mode: Mode) -> Decision:
    """What ``image`` (as written in a manifest) becomes, with the reason when it stays as it is."""
    if "$" in image or "{{" in image:
        return Decision(image, Status.UNRESOLVED, reason="holds a template or variable; resolve it first")
    try:
        ref = parse_reference(image)
    except InvalidReference as exc:
        return Decision(image, Status.INVALID, reason=f"column {exc.column}: {exc.reason}")
    if mapper.is_target(ref):
        return Decision(image, Status.IN_MIRROR, reason="already points into the mirror registry")
    try:
        target = mapper.target(ref)
    except MappingError as exc:
        return Decision(image, Status.UNMAPPED, reason=exc.reason)
    entry = find_mirrored(index, ref)
    if mode is Mode.MIRRORED and entry is None:
        if ref.digest is not None and ref.tag is not None and index.find(ref.with_digest(None)) is not None:
            reason = f"the mirror holds {ref.name}:{ref.effective_tag} with another digest; request this digest"
        else:
            reason = "not in mirrored-images.txt; request it in mirror/required-images.txt"
        return Decision(image, Status.NOT_MIRRORED, str(target), reason)
    if entry is not None:
        # The copy lives where the listed spelling maps to: a rule without a path prefix keeps the path as
        # written, so ``docker.io/library/nginx`` and a listed ``nginx`` map to different repositories.
        with contextlib.suppress(MappingError):
            listed = mapper.target(entry.ref)
            target = Target(listed.registry, listed.repository, target.tag, target.digest)
    return Decision(image, Status.REWRITE, str(target))
