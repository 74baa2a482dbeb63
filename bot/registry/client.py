"""Registry operations (OCI distribution spec) over a :class:`~bot.registry.transport.Transport`.

Every method takes the registry ``host`` as written in references (``docker.io``, ``127.0.0.1:5000``) and the
repository as the API knows it (``library/nginx``).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests
import urllib3.exceptions

from bot.errors import RegistryError
from bot.reference import is_digest, is_repository_path, is_tag
from bot.registry.auth import Credentials, Scope
from bot.registry.models import ACCEPT, MAX_MANIFEST_BYTES, OCI_INDEX, Descriptor, Manifest, sha256_digest
from bot.registry.throughput import MIN_RATE, Throughput
from bot.registry.transfer import TransferSettings
from bot.registry.transport import Transport, TransportSettings

CHUNK_SIZE = 1024 * 1024
# Chunks a blob download yields: what arrived, joined up to this size or until _FLUSH_SECONDS passed.
COALESCE = 256 * 1024
_FLUSH_SECONDS = 0.25
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# What reading a response body raises when the connection is reset, cut or silent past the read timeout.
_BODY_FAILURES: tuple[type[Exception], ...] = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    http.client.HTTPException,
    OSError,
)


def _broken_body(exc: Exception, what: str, received: int) -> RegistryError:
    """A body that broke off mid-way: temporary, the caller starts the read over."""
    if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        detail = "the registry stopped sending mid-answer for longer than the read timeout (--timeout)"
    else:
        detail = f"the connection broke off after {received} bytes ({type(exc).__name__})"
    return RegistryError(f"{what}: {detail}", temporary=True)


def _safe_path(host: str, repository: str, reference: str | None = None, *, digest: bool = False) -> None:
    """Refuse, before any request, a repository, tag or digest that the reference grammar does not allow.

    Tags, digests and names can come from a registry's answers (a tag list, an index, a header): one like
    ``../../victim/app/manifests/latest`` or ``x%2f..`` must never become a request path.
    """
    problem = None
    if not is_repository_path(repository):
        problem = f"repository name {repository[:80]!r}"
    elif reference is not None and not (is_digest(reference) or (not digest and is_tag(reference))):
        problem = f"{'digest' if digest else 'tag or digest'} {reference[:80]!r}"
    if problem is not None:
        raise RegistryError(
            f"{host}: refused to request {problem}: it is not allowed by the image reference grammar "
            "(a registry's answer may have named it); nothing was requested with it"
        )


def _pull(repository: str) -> tuple[Scope, ...]:
    return ((repository, "pull"),)


def _push(repository: str) -> tuple[Scope, ...]:
    return ((repository, "pull"), (repository, "push"))


@dataclass(frozen=True, slots=True)
class MountResult:
    """``mounted`` when the registry linked the blob; otherwise ``upload_url`` is the session it opened."""

    mounted: bool
    upload_url: str | None = None


class BlobStream:
    """A blob being downloaded: iterate for chunks; the sha256 and size are checked when the stream ends.

    Chunks come as the network delivers them (at most ``chunk_size``, coalesced up to :data:`COALESCE` while
    they keep coming), so a trickling registry is noticed: below :data:`~bot.registry.throughput.MIN_RATE`
    over the last ``window`` seconds the stream fails as a temporary error (see :mod:`bot.registry.throughput`).
    """

    def __init__(
        self,
        response: requests.Response,
        digest: str,
        size: int | None,
        chunk_size: int,
        what: str = "",
        *,
        window: float = 60.0,
        min_rate: float = MIN_RATE,
        verify: bool = True,
    ) -> None:
        import hashlib

        self._response = response
        self.status = response.status_code
        self.content_range = response.headers.get("Content-Range")
        self._verify = verify
        self.what = what or f"downloading {digest}"
        self.digest = digest
        self.size = size
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256()
        self.received = 0
        self._throughput = Throughput(self.what, window, min_rate)

    def __iter__(self) -> Iterator[bytes]:
        if not self._verify:  # a part of the blob: the caller checks size and digest of the whole
            for chunk in self._chunks():
                self.received += len(chunk)
                yield chunk
            return
        algorithm, _, expected = self.digest.partition(":")
        check = algorithm == "sha256"
        for chunk in self._chunks():
            if not chunk:
                continue
            self.received += len(chunk)
            if self.size is not None and self.received > self.size:
                raise RegistryError(f"blob {self.digest} is larger than the {self.size} bytes its descriptor says")
            if check:
                self._hash.update(chunk)
            yield chunk
        if self.size is not None and self.received != self.size:
            raise RegistryError(
                f"blob {self.digest}: received {self.received} bytes, expected {self.size}", temporary=True
            )
        if check and self._hash.hexdigest() != expected:
            raise RegistryError(f"blob {self.digest}: the content does not match its digest", temporary=True)

    def _chunks(self) -> Iterator[bytes]:
        """The raw body; a reset, cut, stalled or trickling connection becomes a temporary
        :class:`RegistryError`."""
        raw = self._response.raw
        limit = min(self._chunk_size, COALESCE)
        pending: list[bytes] = []
        buffered = 0
        last = time.monotonic()
        self._throughput.start()
        while True:
            try:
                # read1: whatever the next network read brings, so each read returns within --timeout.
                piece = raw.read1(self._chunk_size - buffered, decode_content=False)
            except _BODY_FAILURES as exc:
                if pending:  # what arrived before the break is good: a resumed download starts after it
                    yield b"".join(pending)
                raise _broken_body(exc, self.what, self.received + buffered) from exc
            if piece:
                self._throughput.add(len(piece))
                pending.append(piece)
                buffered += len(piece)
            now = time.monotonic()
            if pending and (not piece or buffered >= limit or now - last >= _FLUSH_SECONDS):
                yield b"".join(pending)
                pending, buffered, last = [], 0, now
            if not piece:
                return

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> BlobStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SizedBody:
    """An iterable request body with a known length, so requests sends ``Content-Length`` (not chunked).

    With ``throughput`` an upload that takes the body too slowly fails (checked as each chunk is taken)."""

    def __init__(self, chunks: Iterable[bytes], size: int, throughput: Throughput | None = None) -> None:
        self._chunks = chunks
        self._size = size
        self._throughput = throughput

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        throughput = self._throughput
        if throughput is None:
            yield from self._chunks
            return
        throughput.start()
        for chunk in self._chunks:
            throughput.add(len(chunk))
            yield chunk


class RegistryClient:
    """Manifests, tags and blobs of any OCI registry. Thread-safe."""

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        settings: TransportSettings | None = None,
        credentials: Credentials | None = None,
        chunk_size: int = CHUNK_SIZE,
        min_rate: float = MIN_RATE,
        transfer: TransferSettings | None = None,
    ) -> None:
        self.transport = transport or Transport(settings, credentials)
        self.transfer = transfer or TransferSettings()  # how the copy engine moves blobs through this client
        self.chunk_size = chunk_size
        self.min_rate = min_rate  # bytes/s a blob transfer must keep up over --timeout seconds
        self._chunked_hosts: set[str] = set()
        # Hosts that answered a range with something else than exactly that range: downloaded whole from then on.
        self.whole_blob_hosts: set[str] = set()
        # Hosts that answered a manifest PUT with ``OCI-Subject``: they keep the referrers list themselves.
        self.referrers_api_hosts: set[str] = set()

    @property
    def credentials(self) -> Credentials:
        return self.transport.credentials

    def close(self) -> None:
        self.transport.close()

    def cancel_on(self, event: threading.Event) -> None:
        """Once ``event`` is set, every wait between retries ends at once (the run was cancelled)."""
        self.transport.cancel_on(event)

    def observe_responses(self, callback: Callable[[requests.Response], None]) -> None:
        """Call ``callback`` with every registry answer, e.g. to read a pull limit's headers."""
        self.transport.on_response = callback

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifests -----------------------------------------------------------------------------------------

    def head_manifest(self, host: str, repository: str, reference: str) -> Descriptor | None:
        """The manifest's descriptor (digest, media type, size, response headers), or ``None`` when missing.

        A HEAD does not count against Docker Hub's pull limit; its ``ratelimit-remaining`` header is in
        ``Descriptor.headers``. When a registry sends no valid ``Docker-Content-Digest`` the manifest is fetched.
        """
        _safe_path(host, repository, reference)
        response = self.transport.request(
            "HEAD",
            host,
            f"/v2/{repository}/manifests/{reference}",
            scopes=_pull(repository),
            headers={"Accept": ACCEPT},
            allow=(404,),
            what=_where(host, repository, reference),
        )
        response.close()
        if response.status_code == 404:
            return None
        headers = dict(response.headers)
        digest = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        length = response.headers.get("Content-Length")
        if not digest or not is_digest(digest) or not media_type or not (length and length.isdigit()):
            manifest = self.get_manifest(host, repository, reference)
            return Descriptor(manifest.digest, manifest.media_type, manifest.size, headers=headers)
        return Descriptor(digest, media_type, int(length), headers=headers)

    def get_manifest(self, host: str, repository: str, reference: str) -> Manifest:
        """The manifest bytes as stored; a digest reference is verified against the bytes.

        A body that breaks off, stalls or (for a digest reference) does not match the digest is read again,
        under the host's request policy. Raises :class:`NotFound` when missing and
        :class:`RegistryError` for schema 1 or unknown types.
        """
        _safe_path(host, repository, reference)
        where = _where(host, repository, reference)
        return self.transport.repeat(host, lambda: self._get_manifest_once(host, repository, reference, where))

    def _get_manifest_once(self, host: str, repository: str, reference: str, where: str) -> Manifest:
        response = self.transport.request(
            "GET",
            host,
            f"/v2/{repository}/manifests/{reference}",
            scopes=_pull(repository),
            headers={"Accept": ACCEPT},
            stream=True,
            what=where,
        )
        try:
            body = _read_limited(response, MAX_MANIFEST_BYTES, where)
        finally:
            response.close()
        if reference.startswith("sha256:") and (got := sha256_digest(body)) != reference:
            # Checked before parsing: bytes damaged on the way are worth another read, not a parse error.
            raise RegistryError(f"{where}: the manifest bytes do not match the digest (got {got})", temporary=True)
        return Manifest.parse(body, response.headers.get("Content-Type"), where)

    def put_manifest(self, host: str, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Store ``body`` unchanged under a tag or digest; returns its digest (checked against the registry's)."""
        _safe_path(host, repository, reference)
        digest = sha256_digest(body)
        response = self.transport.request(
            "PUT",
            host,
            f"/v2/{repository}/manifests/{reference}",
            scopes=_push(repository),
            headers={"Content-Type": media_type},
            data=body,
            what=f"pushing the manifest of {host}/{repository}:{reference}",
        )
        response.close()
        if response.headers.get("OCI-Subject"):
            # https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests-with-subject
            self.referrers_api_hosts.add(host)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(f"{host}/{repository}: the registry stored the manifest as {answered}, not {digest}")
        return digest

    def get_referrers(self, host: str, repository: str, digest: str) -> Manifest | None:
        """The OCI index listing the manifests whose ``subject`` is ``digest``, or ``None`` when the registry has
        no referrers API (it answers 404, the spec's signal; 405 or 501 from a registry that does not know the
        route mean the same; a registry that has one answers 200 even for an unknown digest).

        https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
        """
        _safe_path(host, repository, digest, digest=True)
        where = f"listing the referrers of {host}/{repository}@{digest}"
        response = self.transport.request(
            "GET",
            host,
            f"/v2/{repository}/referrers/{digest}",
            scopes=_pull(repository),
            headers={"Accept": OCI_INDEX},
            allow=(404, 405, 501),
            stream=True,
            what=where,
        )
        try:
            if response.status_code in (404, 405, 501):
                return None
            body = _read_limited(response, MAX_MANIFEST_BYTES, where)
        finally:
            response.close()
        return Manifest.parse(body, OCI_INDEX, where)

    # -- tags ----------------------------------------------------------------------------------------------

    def list_tags(self, host: str, repository: str, page_size: int | None = None) -> list[str]:
        """Every tag of the repository, following ``Link: <...>; rel="next"`` pagination.

        The tags are returned as the registry sent them: callers check them (:func:`bot.reference.is_tag`)
        before use. A ``next`` link must stay on this repository's tag list.
        """
        _safe_path(host, repository)
        tags: list[str] = []
        path = f"/v2/{repository}/tags/list"
        params: dict[str, str] | None = {"n": str(page_size)} if page_size else None
        for _ in range(10_000):
            data, response = self._tags_page(host, repository, path, params)
            page = data.get("tags") if isinstance(data, dict) else None
            tags.extend(tag for tag in (page or []) if isinstance(tag, str))
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            if not match:
                return tags
            next_url = urljoin(response.url, match.group(1))
            parts = urlsplit(next_url)
            if parts.path != path or urlsplit(response.url).netloc != parts.netloc:
                raise RegistryError(
                    f"listing tags of {host}/{repository}: the next page link {parts.path[:80]!r} leaves the "
                    "repository's tag list; refused, nothing was requested with it"
                )
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
        raise RegistryError(f"listing tags of {host}/{repository}: too many pages")

    def _tags_page(
        self, host: str, repository: str, path: str, params: dict[str, str] | None
    ) -> tuple[object, requests.Response]:
        """One page of the tag list, parsed; a body damaged on the way (not JSON) is read again under the
        host's request policy."""
        what = f"listing tags of {host}/{repository}"

        def page() -> tuple[object, requests.Response]:
            response = self.transport.request("GET", host, path, scopes=_pull(repository), params=params, what=what)
            try:
                return response.json(), response
            except ValueError:
                raise RegistryError(f"{what}: the answer is not JSON", temporary=True) from None
            finally:
                response.close()

        return self.transport.repeat(host, page)

    # -- blobs ---------------------------------------------------------------------------------------------

    def head_blob(self, host: str, repository: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else ``None``."""
        _safe_path(host, repository, digest, digest=True)
        response = self.transport.request(
            "HEAD", host, f"/v2/{repository}/blobs/{digest}", scopes=_pull(repository), allow=(404,)
        )
        response.close()
        if response.status_code == 404:
            return None
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def get_blob(self, host: str, repository: str, digest: str, size: int | None = None) -> BlobStream:
        """Open a streaming download; iterating checks size and sha256 at the end. Close it (``with``)."""
        _safe_path(host, repository, digest, digest=True)
        response = self.transport.request(
            "GET",
            host,
            f"/v2/{repository}/blobs/{digest}",
            scopes=_pull(repository),
            stream=True,
            what=f"downloading {digest} from {host}/{repository}",
        )
        return BlobStream(
            response,
            digest,
            size,
            self.chunk_size,
            f"downloading {digest} from {host}/{repository}",
            window=self.transport.settings.read_timeout,
            min_rate=self.min_rate,
        )

    def get_blob_part(self, host: str, repository: str, digest: str, start: int, end: int | None = None) -> BlobStream:
        """Open a download of bytes ``start``..``end`` (inclusive; to the end when ``None``) with a ``Range``
        request (none for the whole blob). Unverified: the caller checks ``status`` and ``content_range`` (a
        registry may ignore the range and answer 200 with the whole blob) and the digest of the whole."""
        what = f"downloading {digest} from {host}/{repository}"
        response = self.transport.request(
            "GET",
            host,
            f"/v2/{repository}/blobs/{digest}",
            scopes=_pull(repository),
            headers={"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else None,
            stream=True,
            what=what,
        )
        return BlobStream(
            response,
            digest,
            None,
            self.chunk_size,
            what,
            window=self.transport.settings.read_timeout,
            min_rate=self.min_rate,
            verify=False,
        )

    def mount_blob(self, host: str, repository: str, digest: str, from_repository: str) -> MountResult:
        """Ask the registry to link ``digest`` from ``from_repository`` (same host) into ``repository``."""
        _safe_path(host, repository, digest, digest=True)
        _safe_path(host, from_repository)
        response = self.transport.request(
            "POST",
            host,
            f"/v2/{repository}/blobs/uploads/",
            scopes=(*_push(repository), (from_repository, "pull")),
            params={"mount": digest, "from": from_repository},
            headers={"Content-Length": "0"},
            what=f"mounting {digest} into {host}/{repository}",
        )
        response.close()
        if response.status_code == 201:
            return MountResult(True)
        location = response.headers.get("Location")
        return MountResult(False, urljoin(response.url, location) if location else None)

    def start_upload(self, host: str, repository: str) -> str:
        """Open an upload session; returns its absolute URL (relative ``Location`` headers are resolved)."""
        _safe_path(host, repository)
        response = self.transport.request(
            "POST",
            host,
            f"/v2/{repository}/blobs/uploads/",
            scopes=_push(repository),
            headers={"Content-Length": "0"},
            what=f"starting an upload to {host}/{repository}",
        )
        response.close()
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{host}/{repository}: the upload answer has no Location header")
        return urljoin(response.url, location)

    def upload_blob(
        self,
        host: str,
        repository: str,
        digest: str,
        size: int,
        chunks: Iterable[bytes],
        *,
        upload_url: str | None = None,
    ) -> None:
        """Stream ``size`` bytes to the repository and commit them as ``digest``.

        Monolithic: ``PUT <session>?digest=`` with the body and ``Content-Length``. Hosts that refused that
        once in this run get ``PATCH`` with the body, then an empty ``PUT ?digest=``.
        """
        _safe_path(host, repository, digest, digest=True)
        url = upload_url or self.start_upload(host, repository)
        scopes = _push(repository)
        what = f"uploading {digest} to {host}/{repository}"
        body = _SizedBody(chunks, size, Throughput(what, self.transport.settings.read_timeout, self.min_rate))
        if host in self._chunked_hosts:
            response = self.transport.request(
                "PATCH",
                host,
                url,
                scopes=scopes,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}
                | ({"Content-Range": f"0-{size - 1}"} if size else {}),
                data=body,
                replayable=False,
                what=what,
            )
            response.close()
            location = response.headers.get("Location")
            url = urljoin(response.url, location) if location else url
            body = _SizedBody((), 0)
        try:
            response = self.transport.request(
                "PUT",
                host,
                url,
                scopes=scopes,
                params={"digest": digest},
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(body))},
                data=body,
                replayable=False,
                what=what,
            )
        except RegistryError as exc:
            if exc.status in (405, 416, 501) and host not in self._chunked_hosts:
                # The registry wants chunked uploads; the caller restarts the stream and we PATCH next time.
                self._chunked_hosts.add(host)
                exc.temporary = True
            raise
        response.close()

    def upload_status(self, host: str, repository: str, url: str) -> tuple[int, str] | None:
        """How many bytes an upload session holds, and the URL to continue it at (``GET`` on the session,
        answered ``204`` with ``Range: 0-<last>``); ``None`` when the registry no longer knows the session."""
        response = self.transport.request(
            "GET",
            host,
            url,
            scopes=_push(repository),
            allow=(400, 404, 405, 416),
            what=f"asking {host}/{repository} how much of an upload it holds",
        )
        response.close()
        held = _range_end(response.headers.get("Range", ""))
        if response.status_code >= 300 or held is None:
            return None
        location = response.headers.get("Location")
        return held, urljoin(response.url, location) if location else url

    def upload_chunk(  # noqa: PLR0917 - the session, where the chunk goes and its bytes
        self, host: str, repository: str, url: str, offset: int, size: int, chunks: Iterable[bytes]
    ) -> str:
        """Send ``size`` bytes of an upload session, starting at ``offset``, with a ``PATCH``; returns the URL
        to continue the session at. Not retried here: the body is a stream, the caller resumes."""
        what = f"uploading {size} bytes at {offset} to {host}/{repository}"
        body = _SizedBody(chunks, size, Throughput(what, self.transport.settings.read_timeout, self.min_rate))
        response = self.transport.request(
            "PATCH",
            host,
            url,
            scopes=_push(repository),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "Content-Range": f"{offset}-{offset + size - 1}",
            },
            data=body,
            replayable=False,
            what=what,
        )
        response.close()
        location = response.headers.get("Location")
        return urljoin(response.url, location) if location else url

    def finish_upload(self, host: str, repository: str, url: str, digest: str) -> None:
        """Commit an upload session whose bytes were all sent with :meth:`upload_chunk`."""
        response = self.transport.request(
            "PUT",
            host,
            url,
            scopes=_push(repository),
            params={"digest": digest},
            headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
            data=b"",
            what=f"committing {digest} at {host}/{repository}",
        )
        response.close()


def _range_end(header: str) -> int | None:
    """Bytes held according to an upload's ``Range: 0-<last>`` header (``0-0`` may also mean none)."""
    start, sep, last = header.strip().removeprefix("bytes=").partition("-")
    if not sep or start != "0" or not last.isdigit():
        return None
    return int(last) + 1


def _where(host: str, repository: str, reference: str) -> str:
    """``host/repository:tag`` or ``host/repository@digest``, for messages."""
    return f"{host}/{repository}" + (f"@{reference}" if ":" in reference else f":{reference}")


def _read_limited(response: requests.Response, limit: int, where: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    body = response.iter_content(65536)
    while True:
        try:
            chunk = next(body)
        except StopIteration:
            break
        except _BODY_FAILURES as exc:
            raise _broken_body(exc, where, total) from exc
        total += len(chunk)
        if total > limit:
            raise RegistryError(f"{where}: the manifest is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
