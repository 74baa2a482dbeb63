"""Build test images in Python and push them with plain ``requests``, independent of the bot's own client.

Usage::

    image = push_image(registry, "library/app", "v1")  # OCI index for linux/amd64 + linux/arm64
    image.digest, image.platforms["linux/arm64"], image.blob_digests
    single = push_image(registry, "app", "solo", kind="docker-manifest", platforms=("linux/amd64",))
    big = push_image(registry, "big", "v1", layers=(200 * MiB,), seed=7)  # streamed through a temp file

    assert get_manifest_digest(target, "library/app", "v1") == image.digest
    assert image.blob_digests <= list_blobs(target)

Content is deterministic: the same ``seed``, sizes and platforms give byte-identical blobs and manifests, so
two pushes of the same arguments give the same digest and a different ``seed`` a different image.
``base_layers`` (``LayerSpec``) share content across images: two images with the same base layer spec
share those blobs (per platform unless ``per_platform=False``). Layers are random, incompressible bytes in
a gzip tar; layers above 4 MiB are generated in 1 MiB chunks into a temp file (never whole in memory) and
cached per process, so pushing the same big image to several registries builds it once.

``kind``: ``"oci-index"`` and ``"docker-list"`` (one child per platform, plus buildx-style attestation
manifests for an OCI index with ``attestations=True``), ``"oci-manifest"`` and ``"docker-manifest"``
(exactly one platform). Push order is the one registries enforce: blobs, child manifests by digest, then
the top manifest by tag.

:class:`RegistryClient` is the small pusher/puller with Basic and Bearer auth that these helpers use;
tests can use it for direct API calls (``client.request("GET", "/v2/repo/tags/list", repository="repo")``).
"""

from __future__ import annotations

import atexit
import dataclasses
import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
import tempfile
import threading
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlencode, urljoin

import requests

from tests.harness.registry import RegistryServer

KiB = 1024
MiB = 1024 * KiB

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
# What a manifest GET must accept, or the registry hides indexes (404) and lists (400).
ACCEPT_ALL = ", ".join(MANIFEST_TYPES)

Kind = Literal["oci-index", "docker-list", "oci-manifest", "docker-manifest"]
KIND_MEDIA_TYPES: dict[str, str] = {
    "oci-index": OCI_INDEX,
    "docker-list": DOCKER_LIST,
    "oci-manifest": OCI_MANIFEST,
    "docker-manifest": DOCKER_MANIFEST,
}

# Layers above this size are generated into a file instead of memory.
MEMORY_LIMIT = 4 * MiB
_CHUNK = MiB
_CREATED = "2024-01-01T00:00:00Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LayerSpec:
    """A layer whose content depends only on ``seed``, ``size`` (payload bytes) and, if ``per_platform``,
    the platform: the same spec in two images gives the same blob."""

    size: int = KiB
    seed: int = 0
    per_platform: bool = True


@dataclass(frozen=True)
class Blob:
    """A built blob: in memory (``data``) or in a file (``path``) for big layers."""

    digest: str
    size: int
    media_type: str
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    diff_id: str | None = None  # sha256 of the uncompressed tar, for layers

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def with_media_type(self, media_type: str) -> Blob:
        return dataclasses.replace(self, media_type=media_type)


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A built manifest: exact bytes, media type and digest of those bytes."""

    media_type: str
    data: bytes = field(repr=False)
    digest: str

    @classmethod
    def of(cls, document: dict[str, object]) -> Manifest:
        data = json.dumps(document, indent=2).encode()
        return cls(media_type=str(document["mediaType"]), data=data, digest=sha256_digest(data))

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class BuiltImage:
    """An image ready to push: ``top`` plus its child manifests (children first) and every blob."""

    top: Manifest
    children: tuple[Manifest, ...]
    platforms: dict[str, str]  # "linux/arm64/v8" -> platform manifest digest
    blobs: tuple[Blob, ...]  # configs and layers, each digest once


@dataclass(frozen=True)
class PushedImage:
    """What ``push_image`` pushed. ``blobs`` lists every config and layer blob once."""

    host: str
    repository: str
    tag: str
    digest: str
    media_type: str
    manifest: bytes = field(repr=False)
    platforms: dict[str, str]
    children: dict[str, bytes] = field(repr=False)  # digest -> bytes of every child manifest
    blobs: tuple[BlobInfo, ...]

    @property
    def reference(self) -> str:
        """``host/repository:tag``."""
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """``host/repository@digest``."""
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def blob_digests(self) -> frozenset[str]:
        return frozenset(blob.digest for blob in self.blobs)

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)

    @property
    def manifest_digests(self) -> frozenset[str]:
        """The top manifest and every child manifest."""
        return frozenset({self.digest, *self.children})


# ---------------------------------------------------------------------------------------------------------
# Building


class _RandomReader:
    """``size`` deterministic random bytes from ``material``, read in order in any chunk sizes."""

    def __init__(self, material: str, size: int) -> None:
        self._random = random.Random(material)
        self._left = size
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._left + len(self._buffer)
        while len(self._buffer) < n and self._left > 0:
            take = min(_CHUNK, self._left)
            self._buffer += self._random.randbytes(take)
            self._left -= take
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


class _HashingWriter:
    """A write-only file that hashes and counts what passes through to ``target``."""

    def __init__(self, target: typing.IO[bytes] | None) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()


_cache_lock = threading.Lock()
_layer_cache: dict[tuple[str, int, int], Blob] = {}
_cache_dir: Path | None = None


def _layer_dir() -> Path:
    global _cache_dir
    with _cache_lock:
        if _cache_dir is None:
            _cache_dir = Path(tempfile.mkdtemp(prefix="test-layers-"))
            atexit.register(shutil.rmtree, _cache_dir, True)
        return _cache_dir


def build_layer(material: str, size: int, *, media_type: str = OCI_LAYER, compresslevel: int | None = None) -> Blob:
    """A gzip tar holding one file of ``size`` random bytes seeded by ``material`` (cached per process).

    ``compresslevel`` None means 1 for small layers and 0 (stored) above ``MEMORY_LIMIT``: random bytes do
    not compress, and level 0 builds big layers about four times faster (~90 MB/s).
    """
    if compresslevel is None:
        compresslevel = 0 if size > MEMORY_LIMIT else 1
    key = (material, size, compresslevel)
    with _cache_lock:
        cached = _layer_cache.get(key)
    if cached is not None:
        return cached.with_media_type(media_type)
    in_file = size > MEMORY_LIMIT
    path: Path | None = None
    sink: typing.IO[bytes]
    if in_file:
        fd, name = tempfile.mkstemp(dir=_layer_dir(), suffix=".tar.gz")
        path = Path(name)
        sink = open(fd, "wb")  # noqa: PTH123, SIM115 - closed below
    else:
        sink = io.BytesIO()
    try:
        compressed = _HashingWriter(sink)
        # mtime=0 and no file name keep the gzip header, and so the digest, reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=compresslevel, mtime=0) as gz:
            uncompressed = _HashingWriter(typing.cast(typing.IO[bytes], gz))
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                info = tarfile.TarInfo(f"data/{hashlib.sha256(material.encode()).hexdigest()[:16]}.bin")
                info.size = size
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, typing.cast(typing.IO[bytes], _RandomReader(material, size)))
        data = None if in_file else typing.cast(io.BytesIO, sink).getvalue()
    finally:
        sink.close()
    blob = Blob(
        digest="sha256:" + compressed.hash.hexdigest(),
        size=compressed.size,
        media_type=media_type,
        data=data,
        path=path,
        diff_id="sha256:" + uncompressed.hash.hexdigest(),
    )
    with _cache_lock:
        _layer_cache.setdefault(key, blob)
    return blob


def parse_platform(platform: str) -> dict[str, str]:
    """``"linux/arm64/v8"`` -> ``{"os": "linux", "architecture": "arm64", "variant": "v8"}``."""
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform must be os/arch[/variant], got {platform!r}")
    result = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


def _as_spec(layer: int | LayerSpec) -> LayerSpec:
    return layer if isinstance(layer, LayerSpec) else LayerSpec(size=layer)


def build_image(
    *,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    kind: Kind = "oci-index",
    layers: Sequence[int | LayerSpec] = (KiB,),
    base_layers: Sequence[LayerSpec] = (),
    seed: int = 0,
    attestations: bool = False,
    compresslevel: int | None = None,
) -> BuiltImage:
    """Build (but do not push) an image; see the module docstring for the arguments."""
    if kind not in KIND_MEDIA_TYPES:
        raise ValueError(f"unknown kind {kind!r}")
    if not platforms:
        raise ValueError("at least one platform is needed")
    single = kind in ("oci-manifest", "docker-manifest")
    if single and len(platforms) != 1:
        raise ValueError(f"{kind} holds exactly one platform, got {list(platforms)}")
    if attestations and kind != "oci-index":
        raise ValueError("attestations need kind='oci-index'")
    oci = kind.startswith("oci")
    manifest_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    config_type = OCI_CONFIG if oci else DOCKER_CONFIG
    layer_type = OCI_LAYER if oci else DOCKER_LAYER

    blobs: dict[str, Blob] = {}
    children: list[Manifest] = []
    platform_digests: dict[str, str] = {}
    entries: list[dict[str, object]] = []
    for platform in platforms:
        fields = parse_platform(platform)
        layer_blobs: list[Blob] = []
        for spec in base_layers:
            scope = platform if spec.per_platform else "*"
            material = f"base:{spec.seed}:{scope}:{spec.size}"
            layer_blobs.append(build_layer(material, spec.size, media_type=layer_type, compresslevel=compresslevel))
        for index, layer in enumerate(layers):
            spec = _as_spec(layer)
            scope = platform if spec.per_platform else "*"
            material = f"image:{seed}:{spec.seed}:{scope}:{index}:{spec.size}"
            layer_blobs.append(build_layer(material, spec.size, media_type=layer_type, compresslevel=compresslevel))
        config_doc = {
            **fields,
            "created": _CREATED,
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"test.seed": str(seed), "test.platform": platform}},
            "rootfs": {"type": "layers", "diff_ids": [blob.diff_id for blob in layer_blobs]},
            "history": [{"created": _CREATED, "created_by": f"layer {i}"} for i in range(len(layer_blobs))],
        }
        config_data = json.dumps(config_doc, indent=2, sort_keys=True).encode()
        config = Blob(sha256_digest(config_data), len(config_data), config_type, data=config_data)
        manifest = Manifest.of(
            {
                "schemaVersion": 2,
                "mediaType": manifest_type,
                "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
                "layers": [
                    {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size} for blob in layer_blobs
                ],
            }
        )
        for blob in (config, *layer_blobs):
            blobs.setdefault(blob.digest, blob)
        children.append(manifest)
        platform_digests[platform] = manifest.digest
        entries.append({**manifest.descriptor(), "platform": fields})

    if single:
        return BuiltImage(top=children[0], children=(), platforms=platform_digests, blobs=tuple(blobs.values()))

    if attestations:
        for platform, digest in list(platform_digests.items()):
            statement = json.dumps(
                {"_type": "https://in-toto.io/Statement/v0.1", "subject": [{"name": platform, "digest": digest}]}
            ).encode()
            proof = Blob(sha256_digest(statement), len(statement), IN_TOTO, data=statement)
            config_data = json.dumps(
                {"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers"}}
            ).encode()
            config = Blob(sha256_digest(config_data), len(config_data), OCI_CONFIG, data=config_data)
            manifest = Manifest.of(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
                    "layers": [{"mediaType": IN_TOTO, "digest": proof.digest, "size": proof.size}],
                }
            )
            for blob in (config, proof):
                blobs.setdefault(blob.digest, blob)
            children.append(manifest)
            entries.append(
                {
                    **manifest.descriptor(),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.digest": digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                }
            )

    top = Manifest.of({"schemaVersion": 2, "mediaType": KIND_MEDIA_TYPES[kind], "manifests": entries})
    return BuiltImage(top=top, children=tuple(children), platforms=platform_digests, blobs=tuple(blobs.values()))


# ---------------------------------------------------------------------------------------------------------
# Talking to a registry


class RegistryClient:
    """A minimal distribution API client with Basic and Bearer auth, for test set-up and assertions.

    Credentials default to the registry's; ``anonymous=True`` sends none. Bearer tokens are fetched per
    repository and action set and cached. ``requests_sent`` counts HTTP requests made to the registry.
    """

    def __init__(
        self,
        registry: RegistryServer,
        *,
        username: str | None = None,
        password: str | None = None,
        anonymous: bool = False,
    ) -> None:
        self.registry = registry
        self.username = None if anonymous else (username if username is not None else registry.username)
        self.password = None if anonymous else (password if password is not None else registry.password)
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=; no proxies on loopback
        self._tokens: dict[str, str] = {}
        self._basic = False
        self.requests_sent = 0
        self.tokens_fetched = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def _send(
        self, method: str, url: str, scope: str, body: bytes | Blob | None, headers: dict[str, str], stream: bool
    ) -> requests.Response:
        auth_headers = dict(headers)
        token = self._tokens.get(scope)
        credentials = self._credentials()
        if token is not None:
            auth_headers["Authorization"] = f"Bearer {token}"
        auth = credentials if (self._basic and token is None) else None
        data: bytes | BinaryIO | None = body.open() if isinstance(body, Blob) else body
        if isinstance(body, Blob):
            auth_headers["Content-Length"] = str(body.size)
        self.requests_sent += 1
        try:
            return self.session.request(
                method,
                url,
                data=data,
                headers=auth_headers,
                auth=auth,
                verify=self.registry.verify,
                stream=stream,
                allow_redirects=False,
                timeout=60,
            )
        finally:
            if isinstance(body, Blob) and data is not None and not isinstance(data, bytes):
                data.close()

    def _authorize(self, challenge: str, scope: str) -> bool:
        """Act on a WWW-Authenticate challenge; True if a retry may now succeed."""
        scheme, _, params_text = challenge.partition(" ")
        credentials = self._credentials()
        if scheme.lower() == "basic":
            if credentials is None or self._basic:
                return False
            self._basic = True
            return True
        if scheme.lower() != "bearer":
            return False
        params = _parse_challenge(params_text)
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        response = self.session.get(
            params["realm"] + "?" + urlencode(query),
            auth=credentials,
            verify=self.registry.verify,
            timeout=30,
        )
        if response.status_code != 200:
            return False
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token or self._tokens.get(scope) == token:
            return False
        self.tokens_fetched += 1
        self._tokens[scope] = str(token)
        return True

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repository: str | None = None,
        actions: str = "pull",
        data: bytes | Blob | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request (``path_or_url`` relative to the registry URL), answering auth challenges."""
        url = urljoin(self.registry.url + "/", path_or_url)
        scope = f"repository:{repository}:{actions}" if repository else ""
        response = self._send(method, url, scope, data, headers or {}, stream)
        for _ in range(2):
            challenge = response.headers.get("WWW-Authenticate")
            if response.status_code != 401 or not challenge or not self._authorize(challenge, scope):
                break
            response.close()
            response = self._send(method, url, scope, data, headers or {}, stream)
        return response

    # -- blobs and manifests --------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository)
        return response.status_code == 200

    def push_blob(self, repository: str, blob: Blob, *, skip_existing: bool = True) -> bool:
        """Upload ``blob`` monolithically (POST then PUT ?digest=); False if it was already there."""
        if skip_existing:
            response = self.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}", repository=repository)
            if response.status_code == 200:
                return False
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions="pull,push")
        _expect(response, 202, f"start upload of {blob.digest} to {repository}")
        location = urljoin(self.registry.url + "/", response.headers["Location"])
        location += ("&" if "?" in location else "?") + urlencode({"digest": blob.digest})
        response = self.request(
            "PUT",
            location,
            repository=repository,
            actions="pull,push",
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(response, 201, f"upload {blob.digest} to {repository}")
        return True

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository=repository,
            actions="pull,push",
            data=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        _expect(response, 201, f"push manifest {reference} to {repository}")
        digest = response.headers.get("Docker-Content-Digest", manifest.digest)
        assert digest == manifest.digest, f"registry computed {digest}, expected {manifest.digest}"
        return digest

    def get_manifest(self, repository: str, reference: str, *, accept: str = ACCEPT_ALL) -> requests.Response:
        return self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", repository=repository, headers={"Accept": accept}
        )

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository)
        _expect(response, 200, f"get blob {digest} from {repository}")
        return response.content

    def list_tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list", repository=repository)
        if response.status_code == 404:
            return []
        _expect(response, 200, f"list tags of {repository}")
        return list(response.json().get("tags") or [])

    def delete_manifest(self, repository: str, digest: str) -> None:
        response = self.request("DELETE", f"/v2/{repository}/manifests/{digest}", repository=repository, actions="*")
        _expect(response, 202, f"delete {digest} from {repository}")


def _parse_challenge(text: str) -> dict[str, str]:
    """``realm="x",service="y",scope="a,b"`` -> dict (values may hold commas inside quotes)."""
    params: dict[str, str] = {}
    rest = text.strip()
    while rest:
        name, sep, rest = rest.partition("=")
        if not sep:
            break
        name = name.strip().strip(",").strip()
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        params[name.lower()] = value
        rest = rest.lstrip(", ")
    return params


class RegistryHTTPError(AssertionError):
    """The registry answered a harness request with an unexpected status."""


def _expect(response: requests.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RegistryHTTPError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


def push_built(
    registry: RegistryServer, repository: str, tag: str, image: BuiltImage, *, client: RegistryClient | None = None
) -> PushedImage:
    """Push a :func:`build_image` result: blobs, then child manifests by digest, then the top by tag."""
    own = client is None
    client = client or RegistryClient(registry)
    try:
        for blob in image.blobs:
            client.push_blob(repository, blob)
        for child in image.children:
            client.push_manifest(repository, child.digest, child)
        client.push_manifest(repository, tag, image.top)
    finally:
        if own:
            client.close()
    return PushedImage(
        host=registry.host,
        repository=repository,
        tag=tag,
        digest=image.top.digest,
        media_type=image.top.media_type,
        manifest=image.top.data,
        platforms=dict(image.platforms),
        children={child.digest: child.data for child in image.children},
        blobs=tuple(BlobInfo(blob.digest, blob.size) for blob in image.blobs),
    )


def push_image(
    registry: RegistryServer,
    repository: str,
    tag: str,
    *,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    kind: Kind = "oci-index",
    layers: Sequence[int | LayerSpec] = (KiB,),
    base_layers: Sequence[LayerSpec] = (),
    seed: int = 0,
    attestations: bool = False,
    compresslevel: int | None = None,
    client: RegistryClient | None = None,
) -> PushedImage:
    """Build and push a test image; ``layers`` are payload sizes (or specs) of the image's own layers.

    For single-manifest kinds with the default platforms, only the first platform is used.
    """
    if kind in ("oci-manifest", "docker-manifest") and len(platforms) > 1:
        platforms = platforms[:1]
    image = build_image(
        platforms=platforms,
        kind=kind,
        layers=layers,
        base_layers=base_layers,
        seed=seed,
        attestations=attestations,
        compresslevel=compresslevel,
    )
    return push_built(registry, repository, tag, image, client=client)


# ---------------------------------------------------------------------------------------------------------
# Assertions


@dataclass(frozen=True)
class FetchedManifest:
    media_type: str
    data: bytes = field(repr=False)
    digest: str  # sha256 of data, checked against Docker-Content-Digest

    def json(self) -> dict[str, typing.Any]:
        return typing.cast(dict[str, typing.Any], json.loads(self.data))


def get_manifest(
    registry: RegistryServer, repository: str, reference: str, *, accept: str = ACCEPT_ALL
) -> FetchedManifest | None:
    """The manifest at ``reference`` (tag or digest) with every manifest type accepted; None if unknown."""
    with RegistryClient(registry) as client:
        response = client.get_manifest(repository, reference, accept=accept)
    if response.status_code == 404:
        return None
    _expect(response, 200, f"get manifest {repository}:{reference}")
    digest = sha256_digest(response.content)
    header = response.headers.get("Docker-Content-Digest")
    assert header in (None, digest), f"Docker-Content-Digest {header} but body hashes to {digest}"
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return FetchedManifest(media_type=media_type, data=response.content, digest=digest)


def get_manifest_digest(registry: RegistryServer, repository: str, reference: str) -> str | None:
    """sha256 of the manifest bytes at ``reference``, or None if the registry does not know it."""
    fetched = get_manifest(registry, repository, reference)
    return None if fetched is None else fetched.digest


def list_tags(registry: RegistryServer, repository: str) -> list[str]:
    with RegistryClient(registry) as client:
        return sorted(client.list_tags(repository))


def list_blobs(registry: RegistryServer) -> set[str]:
    """Every blob digest stored on disk (``root/docker/registry/v2/blobs/sha256/xx/<hex>/data``).

    Manifests are blobs too, so this holds manifest digests as well as configs and layers.
    """
    base = registry.blobs_dir
    if not base.is_dir():
        return set()
    return {"sha256:" + data.parent.name for data in base.glob("??/*/data")}


def blob_path(registry: RegistryServer, digest: str) -> Path:
    """Where the registry stores ``digest`` on disk (the file may not exist)."""
    algorithm, _, hexdigest = digest.partition(":")
    assert algorithm == "sha256" and len(hexdigest) == 64, digest
    return registry.blobs_dir / hexdigest[:2] / hexdigest / "data"


def corrupt_blob(registry: RegistryServer, digest: str) -> None:
    """Flip the first byte of a stored blob, size unchanged: the registry then serves content that does not
    match its digest, which a careful client must refuse."""
    path = blob_path(registry, digest)
    with path.open("r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))


def list_repositories(registry: RegistryServer) -> set[str]:
    """Repository names that hold at least one manifest, read from storage."""
    base = registry.root / "docker" / "registry" / "v2" / "repositories"
    if not base.is_dir():
        return set()
    return {str(path.parent.relative_to(base)) for path in base.glob("**/_manifests")}


def blob_sizes(blobs: Iterable[BlobInfo]) -> int:
    return sum(blob.size for blob in blobs)
