"""Artifacts that refer to images, pushed the way the tools that make them push them, and looked up the way
``cosign tree`` and ``oras discover`` look for them.

- cosign's tags (``sha256-<hex>.sig`` / ``.att`` / ``.sbom``), one manifest whose layers are the signatures,
  attestations or SBOM: https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md
- OCI 1.1 referrers (``oras attach``, ``cosign attach sbom --registry-referrers-mode oci-1-1``): an image
  manifest with ``artifactType``, the empty config and a ``subject``
  (https://github.com/opencontainers/image-spec/blob/main/manifest.md#guidelines-for-artifact-usage); on a
  registry without the referrers API the pusher also maintains the ``sha256-<hex>`` index
  (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests-with-subject).
- a Helm chart (``helm push``): config ``application/vnd.cncf.helm.config.v1+json`` and one chart layer
  (https://helm.sh/docs/topics/registries/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.harness.images import Blob, Manifest, RegistryClient, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SPDX = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")


def _blob(data: bytes, media_type: str) -> Blob:
    return Blob(sha256_digest(data), len(data), media_type, data=data)


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


@dataclass(frozen=True)
class Pushed:
    """An artifact at the source: its manifest digest and, for a cosign tag, the tag."""

    digest: str
    tag: str | None = None


def _push(client: RegistryClient, repository: str, reference: str, manifest: Manifest, blobs: list[Blob]) -> str:
    for blob in blobs:
        client.push_blob(repository, blob)
    return client.push_manifest(repository, reference, manifest)


def push_cosign_tag(
    client: RegistryClient, repository: str, subject: str, suffix: str, payload: bytes, layer_type: str
) -> Pushed:
    """A cosign-style tag for ``subject``: ``.sig`` (simple signing layer), ``.att`` (DSSE) or ``.sbom``."""
    config = _blob(
        json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers"}}).encode(), OCI_CONFIG
    )
    layer = _blob(payload, layer_type)
    annotations = {"dev.cosignproject.cosign/signature": "MEUCIQ-test-signature"} if suffix == ".sig" else {}
    manifest = Manifest.of(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [
                {"mediaType": layer_type, "digest": layer.digest, "size": layer.size, "annotations": annotations}
            ],
        }
    )
    tag = fallback_tag(subject) + suffix
    return Pushed(_push(client, repository, tag, manifest, [config, layer]), tag)


def sign(client: RegistryClient, repository: str, subject: str) -> Pushed:
    """What ``cosign sign`` leaves: the ``.sig`` tag, its payload naming the subject digest."""
    payload = json.dumps(
        {"critical": {"identity": {"docker-reference": repository}, "image": {"docker-manifest-digest": subject}}}
    ).encode()
    return push_cosign_tag(client, repository, subject, ".sig", payload, SIMPLESIGNING)


def push_referrer(
    client: RegistryClient,
    repository: str,
    subject: Manifest | dict[str, Any],
    artifact_type: str,
    payload: bytes,
    *,
    fallback: bool = True,
) -> Pushed:
    """An OCI 1.1 artifact whose ``subject`` is ``subject``; with ``fallback`` the ``sha256-<hex>`` index is
    updated too, as a client must do on a registry without the referrers API."""
    descriptor = subject.descriptor() if isinstance(subject, Manifest) else subject
    empty = _blob(b"{}", EMPTY)
    layer = _blob(payload, artifact_type)
    manifest = Manifest.of(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": empty.digest, "size": empty.size},
            "layers": [{"mediaType": artifact_type, "digest": layer.digest, "size": layer.size}],
            "subject": descriptor,
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    )
    digest = _push(client, repository, manifest.digest, manifest, [empty, layer])
    if fallback:
        tag = fallback_tag(str(descriptor["digest"]))
        response = client.get_manifest(repository, tag, accept=OCI_INDEX)
        entries = response.json()["manifests"] if response.status_code == 200 else []
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest.data),
                "artifactType": artifact_type,
                "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
            }
        )
        client.push_manifest(
            repository, tag, Manifest.of({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        )
    return Pushed(digest)


def descriptor_of(client: RegistryClient, repository: str, digest: str) -> dict[str, Any]:
    response = client.get_manifest(repository, digest)
    assert response.status_code == 200, response.text
    return {
        "mediaType": response.headers["Content-Type"].split(";")[0],
        "digest": digest,
        "size": len(response.content),
    }


def push_helm_chart(client: RegistryClient, repository: str, tag: str) -> Pushed:
    """What ``helm push`` leaves: a chart config and one gzip tar layer."""
    config = _blob(json.dumps({"apiVersion": "v2", "name": "demo", "version": tag}).encode(), HELM_CONFIG)
    chart = _blob(b"\x1f\x8b\x08\x00" + b"chart-bytes" * 40, HELM_CHART)
    manifest = Manifest.of(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": HELM_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": HELM_CHART, "digest": chart.digest, "size": chart.size}],
        }
    )
    return Pushed(_push(client, repository, tag, manifest, [config, chart]), tag)


def tree(client: RegistryClient, repository: str, digest: str, depth: int = 3) -> dict[str, Any]:
    """What ``cosign tree`` / ``oras discover`` find attached to ``digest``: the referrers API's index (200), else
    the ``sha256-<hex>`` tag's index, plus the cosign tags; recursively. ``{digest: {"via": ..., "children": ...}}``."""
    found: dict[str, Any] = {}
    response = client.request(
        "GET", f"/v2/{repository}/referrers/{digest}", repository=repository, headers={"Accept": OCI_INDEX}
    )
    via = "referrers API"
    if response.status_code != 200:
        via = "fallback tag"
        response = client.get_manifest(repository, fallback_tag(digest), accept=OCI_INDEX)
    if response.status_code == 200:
        for entry in response.json().get("manifests", []):
            found[entry["digest"]] = {"via": via, "artifactType": entry.get("artifactType")}
    for suffix in COSIGN_SUFFIXES:
        tagged = client.get_manifest(repository, fallback_tag(digest) + suffix)
        if tagged.status_code == 200:
            found[sha256_digest(tagged.content)] = {"via": suffix}
    if depth > 1:
        for child, info in found.items():
            info["children"] = tree(client, repository, child, depth - 1)
    return found
