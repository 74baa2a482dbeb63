"""A seeded random fault schedule for :class:`~tests.harness.proxy.CountingProxy`.

Usage::

    schedule = FaultSchedule(seed=7, rate=0.10)
    with CountingProxy(registry, fault=schedule) as proxy:
        run_the_bot(...)
    schedule.counts  # Counter({"5xx": 9, "reset": 7, ...}): what was injected, per kind
    schedule.seen    # requests the schedule was asked about

Whether a request is faulted, and how, is a pure function of the seed, the ``salt``, the method, the
request's key and how many times that key was asked before (:func:`decide`). The key is the path and query
with what a registry makes up per session left out (upload UUIDs and ``_state``), so the same request gets
the same decision in every run, whatever order the threads of the bot send it in.

Kinds (:data:`KINDS`):

- ``reset``: forward, deliver part of the response body, then a TCP reset; for a response without a body
  (HEAD, a 201 to a PUT) the reset comes after the registry acted, before the status line.
- ``5xx``: answer 500, 502 or 503 without forwarding.
- ``429``: answer 429 with ``Retry-After`` (``retry_after`` seconds) without forwarding.
- ``stall``: forward, deliver part of the body (or nothing, when there is none), then go silent for
  ``stall_seconds``; a client without a read timeout hangs.
- ``truncate``: forward and close the connection part-way through the body.
- ``corrupt``: forward with one body byte flipped (length intact).
- ``request body cut``: forward the head and part of the request body (an upload), then reset both
  connections; the registry sees an upload that broke off, the client a reset while it sends.

``truncate`` and ``corrupt`` need a response body, so only GET requests get them (a faulted GET draws
each of them twice as often as another kind, to make up for it); likewise ``request body cut`` needs a
request body (a faulted PUT or PATCH with one draws it twice as often); the other kinds apply to every method.
``eligible`` narrows the requests that may be faulted at all.

:func:`push_catalogue` pushes a workload for such runs (small multi-arch images of every kind, some layers
shared) and :func:`missing_at_target` checks one image digest-exact at a target through its API.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Collection
from urllib.parse import parse_qsl, urlencode

from tests.harness.images import KiB, Kind, LayerSpec, PushedImage, get_manifest_digest, push_image
from tests.harness.images import RegistryClient as ImageClient
from tests.harness.proxy import Fault, ProxyRequest
from tests.harness.registry import RegistryServer

RESET = "reset"
SERVER_ERROR = "5xx"
THROTTLE = "429"
STALL = "stall"
TRUNCATE = "truncate"
CORRUPT = "corrupt"
CUT_REQUEST = "request body cut"
KINDS: tuple[str, ...] = (RESET, SERVER_ERROR, THROTTLE, STALL, TRUNCATE, CORRUPT, CUT_REQUEST)
BODY_KINDS = frozenset({TRUNCATE, CORRUPT})  # need a response body
UPLOAD_KINDS = frozenset({CUT_REQUEST})  # need a request body
SERVER_ERROR_STATUSES = (500, 502, 503)
# Query parameters that differ between runs of the same request.
_VOLATILE_QUERY = frozenset({"_state"})


def request_key(request: ProxyRequest) -> str:
    """``path?query`` with per-session parts (upload UUIDs, ``_state``) replaced, so runs agree on it."""
    head, marker, rest = request.path.partition("/blobs/uploads/")
    path = f"{head}{marker}{{session}}" if marker and rest else request.path
    query = sorted((k, v) for k, v in parse_qsl(request.query, keep_blank_values=True) if k not in _VOLATILE_QUERY)
    return path + ("?" + urlencode(query, safe=":/") if query else "")


def _draw(*parts: object) -> int:
    """64 deterministic random bits from ``parts``."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def has_request_body(request: ProxyRequest) -> bool:
    """Does ``request`` carry a body (a ``Content-Length`` above 0, or chunked)?"""
    length = request.headers.get("content-length", "")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    return chunked or (length.isdigit() and int(length) > 0)


def decide(
    seed: int,
    salt: str,
    method: str,
    key: str,
    occurrence: int,
    *,
    rate: float,
    has_body: bool = False,
    kinds: Collection[str] = KINDS,
    retry_after: int = 1,
    stall_seconds: float = 30.0,
) -> tuple[str, Fault] | None:
    """The fault (and its kind) for the ``occurrence``-th (0-based) request ``method key``, or None.
    ``has_body``: the request carries a body (only then can it be cut)."""
    if _draw(seed, salt, "fault?", method, key, occurrence) >= rate * 2**64:
        return None
    # A GET draws a body fault twice as often as another kind: only GETs can have them at all; likewise an
    # upload for a cut of its request body.
    applicable = [
        kind
        for kind in KINDS
        for _ in range(2 if kind in BODY_KINDS | UPLOAD_KINDS else 1)
        if kind in kinds
        and (method == "GET" or kind not in BODY_KINDS)
        and ((has_body and method in ("PUT", "PATCH")) or kind not in UPLOAD_KINDS)
    ]
    if not applicable:
        return None
    kind = applicable[_draw(seed, salt, "kind", method, key, occurrence) % len(applicable)]
    # Where in the body the fault lands; wrapped into the real body length by the proxy.
    offset = _draw(seed, salt, "offset", method, key, occurrence) % (1 << 31)
    if kind == RESET:
        return kind, Fault.reset_mid_body(offset)
    if kind == SERVER_ERROR:
        status = SERVER_ERROR_STATUSES[offset % len(SERVER_ERROR_STATUSES)]
        return kind, Fault.respond(status)
    if kind == THROTTLE:
        return kind, Fault.respond(429, retry_after=retry_after)
    if kind == STALL:
        return kind, Fault.stall_mid_body(offset, stall_seconds)
    if kind == TRUNCATE:
        return kind, Fault(truncate_after=offset, within_body=True)
    if kind == CUT_REQUEST:
        return kind, Fault.cut_request(offset)
    return kind, Fault(corrupt_at=offset, within_body=True)


class FaultSchedule:
    """A fault hook (``proxy.fault = schedule``) that faults about ``rate`` of the requests; see the module
    docstring. ``counts`` holds what was injected per kind, ``seen`` how many requests were asked about and
    ``faulted`` the (method, key) of every faulted request. Thread-safe."""

    def __init__(
        self,
        seed: int,
        *,
        rate: float = 0.10,
        kinds: Collection[str] = KINDS,
        salt: str = "",
        retry_after: int = 1,
        stall_seconds: float = 30.0,
        eligible: Callable[[ProxyRequest], bool] | None = None,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {KINDS}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        self.seed = seed
        self.rate = rate
        self.kinds = frozenset(kinds)
        self.salt = salt
        self.retry_after = retry_after
        self.stall_seconds = stall_seconds
        self.eligible = eligible
        self.counts: Counter[str] = Counter()
        self.seen = 0
        self.faulted: list[tuple[str, str, str]] = []  # (kind, method, key)
        self._occurrences: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Faults injected so far, every kind."""
        with self._lock:
            return sum(self.counts.values())

    def __call__(self, request: ProxyRequest) -> Fault | None:
        key = request_key(request)
        with self._lock:
            self.seen += 1
            occurrence = self._occurrences[(request.method, key)]
            self._occurrences[(request.method, key)] += 1
        if self.eligible is not None and not self.eligible(request):
            return None
        decision = decide(
            self.seed,
            self.salt,
            request.method,
            key,
            occurrence,
            rate=self.rate,
            has_body=has_request_body(request),
            kinds=self.kinds,
            retry_after=self.retry_after,
            stall_seconds=self.stall_seconds,
        )
        if decision is None:
            return None
        kind, fault = decision
        with self._lock:
            self.counts[kind] += 1
            self.faulted.append((kind, request.method, key))
        return fault


# ---------------------------------------------------------------------------------------------------------
# A workload for fault runs: many small multi-arch images that share some layers, and a digest-exact check


_KINDS: tuple[Kind, ...] = ("oci-index", "docker-list", "oci-manifest", "docker-manifest")
# Base layers several images share: per platform (same platform, same blob) and across platforms.
_SHARED_BASE = LayerSpec(size=48 * KiB, seed=101)
_SHARED_ANY = LayerSpec(size=20 * KiB, seed=102, per_platform=False)


def push_catalogue(registry: RegistryServer, count: int = 20, *, prefix: str = "team/app") -> list[PushedImage]:
    """Push ``count`` small images to ``registry`` (``{prefix}NN:vNN``): OCI indexes (some with attestation
    manifests, some with three platforms), Docker manifest lists and single-platform OCI and Docker
    manifests, in turn; a third share a per-platform base layer and a third a layer common to all platforms."""
    images: list[PushedImage] = []
    with ImageClient(registry) as client:
        for number in range(count):
            kind = _KINDS[number % len(_KINDS)]
            platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
            if kind == "oci-index" and number % 8 == 0:
                platforms = ("linux/amd64", "linux/arm64", "linux/arm/v7")
            base = ((_SHARED_BASE,), (_SHARED_ANY,), ())[number % 3]
            images.append(
                push_image(
                    registry,
                    f"{prefix}{number:02d}",
                    f"v{number}",
                    kind=kind,
                    platforms=platforms,
                    layers=(4 * KiB + 256 * number, 70 * KiB),
                    base_layers=base,
                    seed=number,
                    attestations=kind == "oci-index" and number % 8 == 4,
                    client=client,
                )
            )
    return images


def missing_at_target(target: RegistryServer, repository: str, image: PushedImage) -> list[str]:
    """What of ``image`` the target lacks under ``repository``, asked of its API directly: the tag must
    hold the image's digest, and every child manifest and blob must be there. Empty when digest-exact."""
    missing: list[str] = []
    at_tag = get_manifest_digest(target, repository, image.tag)
    if at_tag != image.digest:
        missing.append(f"{repository}:{image.tag} holds {at_tag}, not {image.digest}")
    with ImageClient(target) as client:
        for digest in sorted(image.children):
            if get_manifest_digest(target, repository, digest) != digest:
                missing.append(f"{repository}@{digest}: child manifest missing")
        for digest in sorted(image.blob_digests):
            if not client.blob_exists(repository, digest):
                missing.append(f"{repository}: blob {digest} missing")
    return missing
