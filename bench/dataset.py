"""The copy benchmark's source data: ~20 multi-arch images sharing base layers, and one image with a big layer.

Images are built by the test harness (``tests.harness.images``): layers are random, incompressible bytes,
generated 1 MiB at a time into temporary files, never whole in memory. They are pushed once into a source
registry whose storage lives under ``bench/.data/source-<scale>/`` (gitignored); later runs start a registry
on that storage, find every image at its expected digest and push nothing.

At ``scale=1`` the many-image set holds about 1 GB of distinct blobs (two base-layer families shared by the
images, four own layers per image and platform, linux/amd64 + linux/arm64, a mix of OCI indexes with and
without attestation manifests and Docker manifest lists) and the big image one 1 GiB layer. ``scale``
multiplies every layer size; the number of images, layers and platforms stays the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.harness.images import (
    KiB,
    Kind,
    LayerSpec,
    Manifest,
    MiB,
    RegistryClient,
    build_image,
    get_manifest,
    get_manifest_digest,
    push_built,
)
from tests.harness.registry import RegistryServer, start_registry

DATA_DIR = Path(__file__).resolve().parent / ".data"
PLATFORMS = ("linux/amd64", "linux/arm64")
IMAGE_COUNT = 20
SOURCE_PREFIX = "bench"  # source repositories are bench/<name>
BIG_LAYER = 1024 * MiB
# Extra tags per image (same manifests) for the no-op re-sync of a longer list: 20 x (1 + 9) = 200 entries.
EXTRA_TAGS = 9


@dataclass(frozen=True)
class ImageSpec:
    """One source image: ``bench/<name>:<tag>`` built with :func:`tests.harness.images.build_image`."""

    name: str
    tag: str
    kind: Kind
    platforms: tuple[str, ...]
    base_layers: tuple[LayerSpec, ...]
    layers: tuple[LayerSpec, ...]
    seed: int
    attestations: bool = False

    @property
    def repository(self) -> str:
        return f"{SOURCE_PREFIX}/{self.name}"

    @property
    def extra_tags(self) -> tuple[str, ...]:
        return tuple(f"{self.tag}-t{k}" for k in range(1, EXTRA_TAGS + 1))


@dataclass(frozen=True)
class SourceImage:
    spec: ImageSpec
    digest: str
    blob_bytes: int  # distinct compressed blob bytes of this image (shared base layers counted here too)


@dataclass(frozen=True)
class Dataset:
    registry: RegistryServer
    images: tuple[SourceImage, ...]  # the many-image set
    big: SourceImage
    distinct_bytes: int  # distinct blob bytes of the many-image set (each shared base layer once)


def _size(nominal: int, scale: float) -> int:
    return max(KiB, int(nominal * scale))


def many_images(scale: float) -> list[ImageSpec]:
    """~20 images in two families: "debian-like" (two big shared base layers) and "alpine-like" (one small)."""
    debian = (LayerSpec(_size(48 * MiB, scale), seed=101), LayerSpec(_size(16 * MiB, scale), seed=102))
    alpine = (LayerSpec(_size(4 * MiB, scale), seed=201),)
    specs: list[ImageSpec] = []
    for i in range(IMAGE_COUNT):
        kind: Kind = "docker-list" if i % 4 == 0 else "oci-index"
        # Own layers: an application layer of varying size, two mid-size ones and a tiny one.
        own = (
            LayerSpec(_size((10 + i % 7) * MiB, scale), seed=1),
            LayerSpec(_size(5 * MiB, scale), seed=2),
            LayerSpec(_size(1 * MiB, scale), seed=3),
            LayerSpec(_size(32 * KiB, scale), seed=4),
        )
        specs.append(
            ImageSpec(
                name=f"app{i:02d}",
                tag=f"1.{i}",
                kind=kind,
                platforms=PLATFORMS,
                base_layers=alpine if i % 3 == 2 else debian,
                layers=own,
                seed=1000 + i,
                attestations=i % 4 == 1,
            )
        )
    return specs


def big_image(scale: float) -> ImageSpec:
    """One single-platform image: a 1 GiB layer (times ``scale``) and a small one."""
    return ImageSpec(
        name="big",
        tag="1.0",
        kind="oci-manifest",
        platforms=("linux/amd64",),
        base_layers=(),
        layers=(LayerSpec(_size(BIG_LAYER, scale), seed=9), LayerSpec(_size(256 * KiB, scale), seed=10)),
        seed=9000,
    )


def _fingerprint(specs: list[ImageSpec]) -> str:
    text = json.dumps([asdict(spec) for spec in specs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def scale_label(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")


def open_source(scale: float, *, log: bool = True) -> Dataset:
    """Start the source registry for ``scale``, pushing the images first if the cache lacks them."""
    specs = many_images(scale)
    big = big_image(scale)
    workdir = DATA_DIR / f"source-{scale_label(scale)}"
    workdir.mkdir(parents=True, exist_ok=True)
    index_file = workdir / "dataset.json"
    fingerprint = _fingerprint([*specs, big])
    registry = start_registry(workdir, accesslog=True)
    cached: dict[str, Any] = {}
    if index_file.exists():
        loaded = json.loads(index_file.read_text())
        if loaded.get("fingerprint") == fingerprint:
            cached = loaded
    images: dict[str, tuple[str, int]] = {}
    entries: dict[str, Any] = cached.get("images", {})
    for spec in [*specs, big]:
        entry = entries.get(spec.repository)
        if entry is not None and get_manifest_digest(registry, spec.repository, spec.tag) == entry["digest"]:
            images[spec.repository] = (str(entry["digest"]), int(entry["blob_bytes"]))
    missing = [spec for spec in [*specs, big] if spec.repository not in images]
    distinct: dict[str, int] = dict(cached.get("distinct", {}))
    if missing:
        started = time.monotonic()
        if log:
            print(f"building and pushing {len(missing)} source images into {workdir} ...", flush=True)
        with RegistryClient(registry) as client:
            for spec in missing:
                built = build_image(
                    platforms=spec.platforms,
                    kind=spec.kind,
                    layers=spec.layers,
                    base_layers=spec.base_layers,
                    seed=spec.seed,
                    attestations=spec.attestations,
                )
                pushed = push_built(registry, spec.repository, spec.tag, built, client=client)
                images[spec.repository] = (pushed.digest, pushed.blob_bytes)
                if spec is not big:
                    distinct.update((blob.digest, blob.size) for blob in pushed.blobs)
        if log:
            print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
        index_file.write_text(
            json.dumps(
                {
                    "fingerprint": fingerprint,
                    "images": {repo: {"digest": d, "blob_bytes": b} for repo, (d, b) in images.items()},
                    "distinct": distinct,
                },
                indent=1,
            )
        )
    _tag_extra(registry, [(spec, images[spec.repository][0]) for spec in specs])
    many = tuple(SourceImage(spec, *images[spec.repository]) for spec in specs)
    return Dataset(registry, many, SourceImage(big, *images[big.repository]), sum(distinct.values()))


def _tag_extra(registry: RegistryServer, images: list[tuple[ImageSpec, str]]) -> None:
    """Give every image its extra tags (a manifest PUT each; the blobs are shared)."""
    with RegistryClient(registry) as client:
        for spec, digest in images:
            missing = [t for t in spec.extra_tags if get_manifest_digest(registry, spec.repository, t) != digest]
            if not missing:
                continue
            fetched = get_manifest(registry, spec.repository, digest)
            if fetched is None:
                raise RuntimeError(f"{registry.host}/{spec.repository}@{digest} is gone from the source registry")
            manifest = Manifest(fetched.media_type, fetched.data, digest)
            for tag in missing:
                client.push_manifest(spec.repository, tag, manifest)
