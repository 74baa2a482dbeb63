"""A counting, fault-injecting HTTP/1.1 reverse proxy in front of a test registry.

Usage::

    with CountingProxy(registry) as proxy:
        run_the_bot(registry=proxy.registry)           # a RegistryServer view: same credentials, CA, storage
        assert proxy.blob_downloads() == [layer_digest]  # GET .../blobs/<digest> answered 200
        assert proxy.response_bytes(method="GET", path=r"/blobs/", status=200) == layer_size
        assert proxy.count(method="PUT", path=r"/manifests/") == 3

Every request is recorded as a :class:`ProxyRecord` (method, path, query, status, body bytes each way);
401 challenges are requests too, so filter by ``status`` when counting payload. Counters move before the
bytes are sent, so once a client has its response the records already show it.
Bodies stream through in 64 KiB chunks, so large blobs pass without being held in memory. The proxy speaks
TLS to clients when the registry does (same CA, so ``proxy.registry.verify`` works) and preserves the
``Host`` header, so the registry's absolute ``Location`` URLs point back at the proxy.

Faults: set ``proxy.fault`` (or pass ``fault=``) to a callable taking a :class:`ProxyRequest` and
returning a :class:`Fault` or None (pass through). :class:`FaultRule` covers the usual cases::

    proxy.fault = FaultRule(Fault.respond(503, retry_after=1), method="GET", path=r"/blobs/sha256:", times=2)
    proxy.fault = FaultRule(Fault.reset_connection())       # the next request: TCP reset, no response
    proxy.fault = FaultRule(Fault.truncate(1000), path=r"/blobs/")  # forward, cut the body after 1000 bytes
    proxy.fault = FaultRule(Fault.corrupt(10), path=r"/blobs/")     # forward with body byte 10 flipped
    proxy.fault = FaultRule(Fault.reset_mid_body(1000))  # forward, send 1000 body bytes, then TCP reset
    proxy.fault = FaultRule(Fault.stall_mid_body(1000, 30))  # forward, send 1000 body bytes, go silent 30 s
    proxy.fault = FaultRule(Fault.cut_request(1000), method="PUT")  # forward 1000 upload bytes, then TCP reset

Body offsets count response body bytes, except for ``cut_request``, whose offset counts request body bytes:
the registry gets the head and part of the upload, then both connections are reset (the registry sees a
body that broke off, the client a reset while it sends). With ``within_body=True`` an offset past the end of a known
``Content-Length`` wraps into the body (``offset % length``), so a fault picked before the response is seen
still hits it; a reset or stall of an empty body (a HEAD, a 201 to a PUT) happens after the registry has
acted on the request but before the client sees the status line: the work is done, the answer is lost.
A stall ends early when the proxy stops.

Faulted requests are recorded with ``fault`` set; a responded fault is not forwarded to the registry.

A Bearer registry's token server sits elsewhere; :func:`front_token_server` puts a second proxy in front of
it and has the registry's proxy name that one as the realm in its challenges (``header_rewrites``), so the
token requests can be counted and faulted too.
For random faults on many requests see :class:`tests.harness.fault_schedule.FaultSchedule`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

from tests.harness.registry import RegistryServer

_CHUNK = 64 * 1024
_TIMEOUT = 120.0
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class ProxyRequest:
    """What a fault hook sees: the request line and headers (names lower-case), before any body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    index: int  # 0-based position among all requests through this proxy


@dataclass(frozen=True)
class Fault:
    """What to do with one request instead of (or while) passing it through."""

    status: int | None = None  # answer with this status, do not forward
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # close the client connection with a TCP reset, no response
    truncate_after: int | None = None  # forward, then cut the response body after this many bytes
    delay: float = 0.0  # seconds to wait before acting
    corrupt_at: int | None = None  # forward, but flip the bits of the response body byte at this offset
    reset_after: int | None = None  # forward, deliver this many response body bytes, then a TCP reset
    stall_after: int | None = None  # forward, deliver this many response body bytes, then send nothing ...
    stall: float = 0.0  # ... for this many seconds (or until the proxy stops), then close
    within_body: bool = False  # offsets past the end of a known body wrap into it (see the module docstring)
    cut_request_after: int | None = None  # forward the head and this many request body bytes, then TCP resets
    reason: str | None = None  # the status line's reason phrase (default: the standard one)

    @classmethod
    def respond(
        cls, status: int, *, retry_after: int | None = None, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Fault:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        if not body and status >= 400:
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            extra.setdefault("Content-Type", "application/json")
        return cls(status=status, headers=extra, body=body)

    @classmethod
    def reset_connection(cls) -> Fault:
        return cls(reset=True)

    @classmethod
    def truncate(cls, after: int) -> Fault:
        return cls(truncate_after=after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def corrupt(cls, at: int = 0) -> Fault:
        """Deliver the response with one body byte changed (length intact): a digest check must catch it."""
        return cls(corrupt_at=at)

    @classmethod
    def reset_mid_body(cls, after: int, *, within_body: bool = True) -> Fault:
        """Forward, deliver the head and ``after`` body bytes, then reset the connection (RST, not FIN)."""
        return cls(reset_after=after, within_body=within_body)

    @classmethod
    def stall_mid_body(cls, after: int, seconds: float, *, within_body: bool = True) -> Fault:
        """Forward, deliver the head and ``after`` body bytes, then go silent for ``seconds`` and close."""
        return cls(stall_after=after, stall=seconds, within_body=within_body)

    @classmethod
    def cut_request(cls, after: int, *, within_body: bool = True) -> Fault:
        """Forward the request head and ``after`` bytes of its body, then reset both connections: an upload
        that breaks off mid-body. The registry never answers; the client sees a reset while it sends."""
        return cls(cut_request_after=after, within_body=within_body)

    def describe(self) -> str:
        if self.reset:
            return "reset"
        if self.cut_request_after is not None:
            return f"cut request after {self.cut_request_after}"
        if self.reset_after is not None:
            return f"reset after {self.reset_after}"
        if self.stall_after is not None:
            return f"stall after {self.stall_after} for {self.stall:g} s"
        if self.status is not None:
            return f"status {self.status}"
        if self.truncate_after is not None:
            return f"truncate after {self.truncate_after}"
        if self.corrupt_at is not None:
            return f"corrupt byte {self.corrupt_at}"
        return f"delay {self.delay}"


FaultHook = Callable[[ProxyRequest], Fault | None]


class FaultRule:
    """A fault hook: apply ``fault`` to the next ``times`` requests matching ``method`` and ``path`` (regex,
    searched in the path). ``times=None`` applies it forever. ``hits`` counts the faults applied."""

    def __init__(
        self, fault: Fault, *, method: str | None = None, path: str | None = None, times: int | None = 1
    ) -> None:
        self.fault = fault
        self.method = method
        self.path = re.compile(path) if path else None
        self.times = times
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self, request: ProxyRequest) -> Fault | None:
        if self.method is not None and request.method != self.method:
            return None
        if self.path is not None and not self.path.search(request.path):
            return None
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return None
            self.hits += 1
        return self.fault


@dataclass(frozen=True)
class ProxyRecord:
    method: str
    path: str
    query: str
    status: int  # 0 when the connection was reset or the registry did not answer
    request_bytes: int  # request body bytes forwarded to the registry
    response_bytes: int  # response body bytes delivered to the client
    fault: str | None = None
    seconds: float = 0.0


class _Closed(Exception):
    """The peer closed the connection."""


def _read_head(reader: BinaryIO) -> list[bytes] | None:
    """Header block lines (without CRLF); None on a clean close before any byte."""
    lines: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(_MAX_HEAD)
        if not line:
            if lines:
                raise _Closed
            return None
        total += len(line)
        if total > _MAX_HEAD:
            raise ValueError("header block too large")
        line = line.rstrip(b"\r\n")
        if not line:
            if not lines:
                continue  # tolerate stray CRLF between requests
            return lines
        lines.append(line)


def _headers(lines: list[bytes]) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        result[name.strip().lower()] = value.strip()
    return result


class _Truncated(Exception):
    """The fault's byte limit was reached."""


def _body_length(method: str, status: int, headers: dict[str, str]) -> int | None:
    """Response body bytes to expect: 0 for HEAD, 204 and 304, else ``Content-Length`` (None if unknown)."""
    if method == "HEAD" or status in (204, 304):
        return 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _place(offset: int | None, length: int | None, wrap: bool) -> int | None:
    """Where a body fault lands: ``offset`` itself, or wrapped into a known non-empty body."""
    if offset is None or not wrap or not length:
        return offset
    return offset % length


@dataclass
class _Live:
    """A record being filled in while its exchange runs; counters move before bytes are sent, so a
    client that has read a response always finds it fully counted."""

    method: str
    path: str
    query: str
    started: float
    status: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    fault: str | None = None
    seconds: float = 0.0

    def freeze(self) -> ProxyRecord:
        return ProxyRecord(
            self.method,
            self.path,
            self.query,
            self.status,
            self.request_bytes,
            self.response_bytes,
            self.fault,
            self.seconds,
        )


class _Sink:
    """Sends body bytes on, counting payload first, cutting it at ``limit`` and flipping byte ``corrupt_at``."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        count: Callable[[int], None],
        limit: int | None,
        corrupt_at: int | None = None,
    ) -> None:
        self.send = send
        self.count = count
        self.limit = limit
        self.corrupt_at = corrupt_at
        self.written = 0

    def payload(self, data: bytes) -> None:
        if self.corrupt_at is not None and self.written <= self.corrupt_at < self.written + len(data):
            offset = self.corrupt_at - self.written
            data = data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]
        if self.limit is not None and self.written + len(data) > self.limit:
            data = data[: self.limit - self.written]
            self.count(len(data))
            self.written += len(data)
            if data:
                self.send(data)
            raise _Truncated
        self.count(len(data))
        self.written += len(data)
        self.send(data)

    def framing(self, data: bytes) -> None:
        self.send(data)


def _discard(_data: bytes) -> None:
    pass


def _copy_exact(reader: BinaryIO, sink: _Sink, length: int) -> None:
    left = length
    while left > 0:
        data = reader.read(min(_CHUNK, left))
        if not data:
            raise _Closed
        left -= len(data)
        sink.payload(data)


def _copy_chunked(reader: BinaryIO, sink: _Sink) -> None:
    """Relay a chunked body as is; only chunk data counts as payload."""
    while True:
        size_line = reader.readline(_MAX_HEAD)
        if not size_line:
            raise _Closed
        size = int(size_line.split(b";")[0].strip(), 16)
        sink.framing(size_line)
        if size == 0:
            while True:  # trailers up to the empty line
                trailer = reader.readline(_MAX_HEAD)
                if not trailer:
                    raise _Closed
                sink.framing(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return
        _copy_exact(reader, sink, size)
        sink.framing(reader.read(2))


def _copy_until_close(reader: BinaryIO, sink: _Sink) -> None:
    while True:
        data = reader.read1(_CHUNK)  # type: ignore[attr-defined]
        if not data:
            return
        sink.payload(data)


class CountingProxy:
    """See the module docstring. ``upstream`` is the registry to front."""

    def __init__(self, upstream: RegistryServer, *, fault: FaultHook | None = None) -> None:
        self.upstream = upstream
        self.fault: FaultHook | None = fault
        self._records: list[_Live] = []
        self._lock = threading.Lock()
        self._index = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        self._upstream_addr = ("127.0.0.1", upstream.port)
        self._stopping = False
        self._stopped = threading.Event()  # ends stalls early
        # Text replaced in every response header line from the registry (``old -> new``).
        self.header_rewrites: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> CountingProxy:
        if self._listener is not None:
            return self
        if self.upstream.tls:
            self._server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._server_ssl.load_cert_chain(
                str(self.upstream.workdir / "server.crt"), str(self.upstream.workdir / "server.key")
            )
            self._client_ssl = ssl.create_default_context(cafile=self.upstream.ca_bundle)
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="counting-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the blocked accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("proxy not started")
        return int(self._listener.getsockname()[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.upstream.tls else 'http'}://{self.host}"

    @property
    def registry(self) -> RegistryServer:
        """The upstream registry as seen through the proxy (its stop() leaves the real one running)."""
        return dataclasses.replace(self.upstream, host=self.host, url=self.url, process=None, proxy_of=self.upstream)

    # -- counting -------------------------------------------------------------------------------------

    @property
    def records(self) -> list[ProxyRecord]:
        with self._lock:
            return [record.freeze() for record in self._records]

    def reset(self) -> None:
        """Forget the records so far."""
        with self._lock:
            self._records.clear()

    def matching(
        self, *, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> list[ProxyRecord]:
        """Records with this method, status and a path matching the ``path`` regex (None matches all)."""
        pattern = re.compile(path) if path else None
        return [
            record
            for record in self.records
            if (method is None or record.method == method)
            and (pattern is None or pattern.search(record.path))
            and (status is None or record.status == status)
        ]

    def count(self, *, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        """Requests seen with this method, status and a path matching the ``path`` regex."""
        return len(self.matching(method=method, path=path, status=status))

    def response_bytes(self, *, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        """Response body bytes delivered to clients (downloads; error bodies count unless ``status`` is given)."""
        return sum(record.response_bytes for record in self.matching(method=method, path=path, status=status))

    def request_bytes(self, *, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        """Request body bytes forwarded to the registry (uploads)."""
        return sum(record.request_bytes for record in self.matching(method=method, path=path, status=status))

    def by_method_and_path(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for record in self.records:
            counts[(record.method, record.path)] = counts.get((record.method, record.path), 0) + 1
        return counts

    def blob_downloads(self) -> list[str]:
        """Digests of blobs fetched in full or in part (GET .../blobs/<digest> answered 200 or 206)."""
        return [
            record.path.rpartition("/")[2]
            for record in self.matching(method="GET", path=r"/blobs/sha256:[0-9a-f]{64}$")
            if record.status in (200, 206)
        ]

    def blob_uploads(self) -> list[str]:
        """Digests of blob uploads completed through the proxy (PUT ...?digest= answered 201)."""
        digests: list[str] = []
        for record in self.matching(method="PUT", path=r"/blobs/uploads/"):
            match = re.search(r"(?:^|&)digest=(sha256(?::|%3A)[0-9a-f]{64})", record.query)
            if match and record.status == 201:
                digests.append(match.group(1).replace("%3A", ":"))
        return digests

    # -- serving --------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), name="counting-proxy-conn", daemon=True).start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _connect_upstream(self) -> socket.socket:
        sock = socket.create_connection(self._upstream_addr, timeout=_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._client_ssl is not None:
            sock = self._client_ssl.wrap_socket(sock, server_hostname="127.0.0.1")
        self._track(sock, True)
        return sock

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client: socket.socket = raw
        self._track(raw, True)
        reader: BinaryIO | None = None
        upstream: socket.socket | None = None
        upstream_reader: BinaryIO | None = None
        try:
            if self._server_ssl is not None:
                client = self._server_ssl.wrap_socket(raw, server_side=True)
                self._track(client, True)
            reader = client.makefile("rb")
            while not self._stopping:
                head = _read_head(reader)
                if head is None:
                    return
                if upstream is None or upstream_reader is None:
                    upstream = self._connect_upstream()
                    upstream_reader = upstream.makefile("rb")
                keep = self._exchange(head, reader, client, upstream, upstream_reader)
                if keep == "close":
                    return
                if keep == "reconnect":
                    self._close(upstream, upstream_reader)
                    upstream = upstream_reader = None
        except (_Closed, OSError, ValueError):
            return
        finally:
            if upstream is not None:
                self._close(upstream, upstream_reader)
            # The file objects hold the descriptor open: close them too, or a reset (SO_LINGER 0) waits.
            self._close(client, reader)
            if client is not raw:
                self._close(raw, None)

    def _rewrite(self, line: bytes) -> bytes:
        for old, new in self.header_rewrites.items():
            line = line.replace(old.encode("latin-1"), new.encode("latin-1"))
        return line

    def _cut(self, how: str, client: socket.socket, fault: Fault | None) -> str:
        """End a response early: a clean close (truncate), a TCP reset, or silence first (stall)."""
        if how == "stall" and fault is not None:
            self._stopped.wait(fault.stall)
        elif how == "reset":
            time.sleep(0.02)  # let the bytes sent so far reach the client before the reset discards them
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "close"

    def _close(self, sock: socket.socket, reader: BinaryIO | None) -> None:
        self._track(sock, False)
        with contextlib.suppress(OSError):
            if reader is not None:
                reader.close()
            sock.close()

    def _exchange(
        self,
        head: list[bytes],
        reader: BinaryIO,
        client: socket.socket,
        upstream: socket.socket,
        upstream_reader: BinaryIO,
    ) -> str:
        """Relay one request and its response. Returns "keep", "reconnect" (upstream unusable) or "close"."""
        method, target, version = head[0].decode("latin-1").split(" ", 2)
        if target.startswith(("http://", "https://")):  # absolute-form, as sent to a forward proxy
            parts = urlsplit(target)
            target = parts.path + ("?" + parts.query if parts.query else "")
        path, _, query = target.partition("?")
        headers = _headers(head[1:])
        live = _Live(method, path, query, time.monotonic())
        with self._lock:
            index = self._index
            self._index += 1
            self._records.append(live)
        try:
            return self._relay(live, index, version, target, head, headers, reader, client, upstream, upstream_reader)
        finally:
            live.seconds = time.monotonic() - live.started

    def _relay(
        self,
        live: _Live,
        index: int,
        version: str,
        target: str,
        head: list[bytes],
        headers: dict[str, str],
        reader: BinaryIO,
        client: socket.socket,
        upstream: socket.socket,
        upstream_reader: BinaryIO,
    ) -> str:
        method = live.method
        hook = self.fault
        fault = hook(ProxyRequest(method, live.path, live.query, headers, index)) if hook is not None else None
        if fault is not None:
            live.fault = fault.describe()
            if fault.delay:
                time.sleep(fault.delay)
        client_close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        chunked_request = "chunked" in headers.get("transfer-encoding", "").lower()
        length = int(headers.get("content-length", "0") or 0)

        if fault is not None and fault.reset:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "close"

        if headers.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        forwarded_head = [line for line in head[1:] if not line.lower().startswith(b"expect:")]

        if fault is not None and fault.status is not None:
            # Consume the request body so the connection stays usable, then answer without forwarding.
            drain = _Sink(_discard, lambda _n: None, None)
            if chunked_request:
                _copy_chunked(reader, drain)
            else:
                _copy_exact(reader, drain, length)
            reason = fault.reason or http.HTTPStatus(fault.status).phrase
            body = b"" if method == "HEAD" else fault.body
            lines = [f"HTTP/1.1 {fault.status} {reason}", f"Content-Length: {len(fault.body)}"]
            lines += [f"{name}: {value}" for name, value in fault.headers.items()]
            if client_close:
                lines.append("Connection: close")
            live.status = fault.status
            live.response_bytes = len(body)
            client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return "close" if client_close else "keep"

        # Forward the request.
        request_line = f"{method} {target} {version}\r\n".encode("latin-1")
        upstream.sendall(request_line + b"".join(line + b"\r\n" for line in forwarded_head) + b"\r\n")

        def count_request(n: int) -> None:
            live.request_bytes += n

        cut_request = None
        if fault is not None and fault.cut_request_after is not None:
            cut_request = _place(fault.cut_request_after, None if chunked_request else length, fault.within_body)
        to_upstream = _Sink(upstream.sendall, count_request, cut_request)
        try:
            if chunked_request:
                _copy_chunked(reader, to_upstream)
            else:
                _copy_exact(reader, to_upstream, length)
        except _Truncated:
            pass
        if cut_request is not None:
            # The body broke off (or, past the end of a chunked body, the answer is lost): reset both sides.
            for sock in (upstream, client):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "close"

        # Relay the response, skipping interim 1xx answers.
        while True:
            response_head = _read_head(upstream_reader)
            if response_head is None:
                raise _Closed
            status = int(response_head[0].split(b" ", 2)[1])
            if not 100 <= status < 200:
                break
        if self.header_rewrites:
            response_head = [response_head[0], *(self._rewrite(line) for line in response_head[1:])]
        response_headers = _headers(response_head[1:])
        upstream_close = response_headers.get("connection", "").lower() == "close"

        def count_response(n: int) -> None:
            live.response_bytes += n

        live.status = status
        body_length = _body_length(method, status, response_headers)
        wrap = fault is not None and fault.within_body
        cut: str | None = None  # what happens where the body stops early: "truncate", "reset" or "stall"
        cut_at: int | None = None
        if fault is not None:
            for kind, offset in (
                ("reset", fault.reset_after),
                ("stall", fault.stall_after),
                ("truncate", fault.truncate_after),
            ):
                if offset is not None:
                    cut, cut_at = kind, _place(offset, body_length, wrap)
                    break
        if cut in ("reset", "stall") and body_length == 0:
            # Nothing to cut: the registry acted on the request, and the client never hears of it.
            live.status = 0
            return self._cut(cut, client, fault)
        corrupt_at = _place(fault.corrupt_at, body_length, wrap) if fault is not None else None
        to_client = _Sink(client.sendall, count_response, cut_at, corrupt_at)
        client.sendall(b"".join(line + b"\r\n" for line in response_head) + b"\r\n")
        try:
            if method == "HEAD" or status in (204, 304):
                pass
            elif "chunked" in response_headers.get("transfer-encoding", "").lower():
                _copy_chunked(upstream_reader, to_client)
            elif "content-length" in response_headers:
                _copy_exact(upstream_reader, to_client, int(response_headers["content-length"]))
            else:
                _copy_until_close(upstream_reader, to_client)
                upstream_close = True
        except _Truncated:
            return self._cut(cut or "truncate", client, fault)
        if client_close:
            return "close"
        return "reconnect" if upstream_close else "keep"


def front_token_server(registry_proxy: CountingProxy, *, fault: FaultHook | None = None) -> CountingProxy:
    """Start a proxy in front of the token server of ``registry_proxy``'s (Bearer) registry, and make
    ``registry_proxy`` name it as the realm in the challenges it relays. The caller stops it."""
    registry = registry_proxy.upstream
    token_server = registry.token_server
    if token_server is None:
        raise ValueError(f"{registry.host} has no token server (start it with auth='bearer')")
    origin = f"{token_server.host}:{token_server.port}"
    view = dataclasses.replace(
        registry, host=origin, url=f"http://{origin}", tls=False, token_server=None, process=None, proxy_of=registry
    )
    token_proxy = CountingProxy(view, fault=fault).start()
    registry_proxy.header_rewrites[f"http://{origin}/"] = f"http://{token_proxy.host}/"
    return token_proxy
