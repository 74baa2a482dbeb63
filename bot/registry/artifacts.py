"""What a manifest holds (an image, a Helm chart, a signature, an SBOM, an attestation) and the tag names that
attach artifacts to an image (pure).

Sources, cited where each rule is used:
- OCI image spec, manifest ``artifactType`` and the guidance for artifacts:
  https://github.com/opencontainers/image-spec/blob/main/manifest.md#guidelines-for-artifact-usage
- OCI distribution spec, the referrers tag schema (``<alg>-<ref>``, an OCI index of referrers):
  https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema
- cosign's tag convention (``sha256-<hex>.sig``, ``.att``, ``.sbom`` next to the image):
  https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md and specs/ATTESTATION_SPEC.md, SBOM_SPEC.md
- Helm charts in OCI registries: https://helm.sh/docs/topics/registries/ (config
  ``application/vnd.cncf.helm.config.v1+json``)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.reference import is_tag
from bot.registry.models import Manifest

IMAGE = "image"
SIGNATURE = "signature"
ATTESTATION = "attestation"
SBOM = "SBOM"
HELM_CHART = "Helm chart"
ARTIFACT = "artifact"

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SBOM = "application/vnd.dev.cosign.artifact.sbom.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"

# The artifact type each cosign tag suffix stands for, so one ``artifact_types`` filter covers both ways of
# attaching (cosign uses these types when it attaches through the referrers API instead of tags).
COSIGN_TAGS: tuple[tuple[str, str], ...] = ((".sig", COSIGN_SIGNATURE), (".att", DSSE_ENVELOPE), (".sbom", COSIGN_SBOM))

_IMAGE_CONFIGS = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
# Media types (artifactType, config or layer) that say what an artifact is; prefixes end with a dot or a slash.
_KINDS: tuple[tuple[str, str], ...] = (
    ("application/vnd.dev.cosign.artifact.sig", SIGNATURE),
    ("application/vnd.dev.cosign.simplesigning", SIGNATURE),
    ("application/vnd.dev.sigstore.bundle", SIGNATURE),
    ("application/vnd.cncf.notary.signature", SIGNATURE),
    ("application/vnd.dsse.envelope", ATTESTATION),
    ("application/vnd.in-toto", ATTESTATION),
    ("application/vnd.dev.cosign.artifact.sbom", SBOM),
    ("application/spdx", SBOM),
    ("text/spdx", SBOM),
    ("application/vnd.cyclonedx", SBOM),
    ("application/vnd.syft", SBOM),
    (HELM_CONFIG, HELM_CHART),
    ("application/vnd.cncf.helm.", HELM_CHART),
)
SIGNATURE_KINDS = frozenset({SIGNATURE})

# A sha256 digest's fallback tag: ``sha256-`` and 64 hex digits, optionally a cosign suffix.
_REFERRER_TAG = re.compile(r"sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?")
_COSIGN_SUFFIX = re.compile(r".*\.(?:sig|att|sbom)")


def kind_of_type(media_type: str | None) -> str | None:
    """The kind a media type names (``application/spdx+json`` -> ``SBOM``), or ``None`` when it says none."""
    if not media_type:
        return None
    lowered = media_type.lower()
    for prefix, kind in _KINDS:
        if lowered.startswith(prefix):
            return kind
    return None


def artifact_type(manifest: Manifest) -> str | None:
    """The manifest's artifact type: ``artifactType``, else a config media type that is no image config."""
    declared = manifest.data.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    config = manifest.data.get("config")
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(media_type, str) and media_type and media_type not in _IMAGE_CONFIGS:
        return media_type
    return None


def manifest_kind(manifest: Manifest) -> str:
    """What the manifest holds: :data:`IMAGE` unless its artifact type, config or layers say otherwise."""
    kind = kind_of_type(artifact_type(manifest))
    if kind is not None:
        return kind
    if manifest.is_index:
        return IMAGE
    layers = manifest.data.get("layers")
    types = [layer.get("mediaType") for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []
    for media_type in types:
        kind = kind_of_type(media_type if isinstance(media_type, str) else None)
        if kind is not None:
            return kind
    return ARTIFACT if artifact_type(manifest) is not None else IMAGE


def fallback_tag(digest: str) -> str | None:
    """``sha256:<hex>`` -> ``sha256-<hex>`` (the referrers tag schema and cosign's base); ``None`` for other
    algorithms, whose tag would not fit the 128 characters a tag may have."""
    algorithm, _, encoded = digest.partition(":")
    tag = f"{algorithm}-{encoded}"
    return tag if algorithm == "sha256" and _REFERRER_TAG.fullmatch(tag) and is_tag(tag) else None


def is_referrer_tag(tag: str) -> bool:
    """A tag that attaches something to an image rather than naming a release: ``sha256-<hex>`` (the
    referrers tag schema), or any tag ending in ``.sig``, ``.att`` or ``.sbom`` (cosign)."""
    return bool(_REFERRER_TAG.fullmatch(tag) or _COSIGN_SUFFIX.fullmatch(tag))


def count_phrase(kinds: Iterable[str]) -> str:
    """``2 signatures, 1 SBOM`` in a stable order; empty when there are none."""
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    order = (SIGNATURE, ATTESTATION, SBOM, HELM_CHART, IMAGE, ARTIFACT)
    parts = []
    for kind in sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k)):
        count = counts[kind]
        parts.append(f"{count} {kind}{'' if count == 1 else 's'}")
    return ", ".join(parts)
