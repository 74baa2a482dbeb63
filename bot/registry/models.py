"""Registry data: media types, descriptors, platforms and parsed manifests (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import RegistryError
from bot.reference import is_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# Every type we can copy, most specific first; schema 1 is left out on purpose so a registry that can convert
# answers with schema 2.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Layers that live outside the registry (Windows base layers); registries accept manifests without them.
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# Where the copy engine may mount a blob from instead of uploading it (a target kind says which its registry
# honours): any repository of the target registry that holds the blob (distribution), or only one where a
# manifest pushed in this run references it (ECR).
MOUNT_ANY = "any"
MOUNT_REFERENCED = "referenced"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    """``os/architecture[/variant]``, e.g. ``linux/arm64/v8``."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform; write os/architecture[/variant], e.g. linux/arm64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: object) -> Platform | None:
        if not isinstance(data, dict):
            return None
        os_name, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            return None
        return cls(os_name, arch, variant if isinstance(variant, str) and variant else None)

    def matches(self, wanted: Platform) -> bool:
        """True when this platform satisfies ``wanted`` (a wanted variant must match; none means any)."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if wanted.variant is None:
            return True
        # arm64 images usually omit the only variant there is.
        return self.variant == wanted.variant or (
            self.variant is None and wanted.architecture == "arm64" and wanted.variant == "v8"
        )

    @property
    def is_unknown(self) -> bool:
        """``unknown/unknown`` marks attestation manifests in images built by BuildKit."""
        return self.os == "unknown" or self.architecture == "unknown"

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What a registry says about one manifest or blob.

    ``headers`` holds the response headers of the request that produced it (for a manifest HEAD, e.g. Docker
    Hub's ``ratelimit-remaining``); empty for descriptors read from a manifest body.
    """

    digest: str
    media_type: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: object, where: str) -> Descriptor:
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: a descriptor is not a JSON object")
        digest, media_type, size = data.get("digest"), data.get("mediaType", ""), data.get("size")
        if not isinstance(digest, str) or not isinstance(media_type, str):
            raise RegistryError(f"{where}: a descriptor has no valid digest or mediaType")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise RegistryError(f"{where}: descriptor {digest} has no valid size")
        if not is_digest(digest):
            # It goes into request paths (blobs/<digest>): never let an upstream manifest steer those.
            raise RegistryError(f"{where}: {digest[:80]!r} is not a valid digest")
        urls = data.get("urls") or ()
        return cls(
            digest,
            media_type,
            size,
            Platform.from_json(data.get("platform")),
            tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
        )

    @property
    def is_foreign(self) -> bool:
        return self.media_type in FOREIGN_LAYER_TYPES


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest exactly as the registry sent it: ``body`` is never re-serialised, so the digest holds."""

    body: bytes
    media_type: str
    digest: str
    data: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, body: bytes, content_type: str | None, where: str) -> Manifest:
        """Parse ``body``; the media type comes from the body, else from the ``Content-Type`` header."""
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"{where}: the manifest is {len(body)} bytes; at most {MAX_MANIFEST_BYTES} allowed")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{where}: the manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: the manifest is not a JSON object")
        header_type = (content_type or "").split(";")[0].strip()
        body_type = data.get("mediaType")
        media_type = body_type if isinstance(body_type, str) and body_type else header_type
        if not media_type and data.get("schemaVersion") == 2:
            media_type = OCI_INDEX if "manifests" in data else OCI_MANIFEST
        if media_type in SCHEMA1_TYPES or data.get("schemaVersion") == 1:
            raise RegistryError(
                f"{where}: a Docker schema 1 manifest, which current registries no longer accept; "
                "pick a newer tag or ask the image's owners to publish it again (schema 2 or OCI)"
            )
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{where}: unsupported manifest media type {media_type!r}")
        return cls(body, media_type, sha256_digest(body), data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.digest, self.media_type, self.size)

    def children(self) -> tuple[Descriptor, ...]:
        """The manifests an index lists, in order (empty for an image manifest)."""
        if not self.is_index:
            return ()
        items = self.data.get("manifests")
        if not isinstance(items, list):
            raise RegistryError(f"index {self.digest} has no 'manifests' list")
        return tuple(Descriptor.from_json(item, f"index {self.digest}") for item in items)

    @property
    def config(self) -> Descriptor | None:
        if self.is_index:
            return None
        return Descriptor.from_json(self.data.get("config"), f"manifest {self.digest}")

    def layers(self) -> tuple[Descriptor, ...]:
        if self.is_index:
            return ()
        items = self.data.get("layers")
        if not isinstance(items, list):
            raise RegistryError(f"manifest {self.digest} has no 'layers' list")
        return tuple(Descriptor.from_json(item, f"manifest {self.digest}") for item in items)

    def blobs(self) -> Iterator[Descriptor]:
        """Config first, then layers (an image manifest's blobs; nothing for an index)."""
        config = self.config
        if config is not None:
            yield config
        yield from self.layers()


def select_children(index: Manifest, platforms: tuple[Platform, ...] | None) -> tuple[Descriptor, ...]:
    """The children of ``index`` to copy: all of them, or those matching one of ``platforms``."""
    children = index.children()
    if platforms is None:
        return children
    return tuple(
        child
        for child in children
        if child.platform is not None
        and not child.platform.is_unknown
        and any(child.platform.matches(wanted) for wanted in platforms)
    )


def filtered_index(index: Manifest, keep: tuple[Descriptor, ...]) -> bytes:
    """A new index body holding only the ``keep`` children (used when a platform filter drops some)."""
    wanted = {child.digest for child in keep}
    data = dict(index.data)
    items = data.get("manifests")
    assert isinstance(items, list)
    data["manifests"] = [item for item in items if isinstance(item, dict) and item.get("digest") in wanted]
    return json.dumps(data, indent=3).encode()
