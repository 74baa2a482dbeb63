"""A loopback HTTP/1.1 relay that slows chosen request or response bodies to a trickle, or holds them part-way.

Usage::

    with TrickleRelay(registry) as relay:            # bot -> relay.host -> registry (plain HTTP, loopback)
        # blob downloads: the first 1000 body bytes at full speed, then 10 bytes every 0.1 s
        relay.rule = Trickle(method="GET", path=r"/blobs/sha256:", after=1000, piece=10, interval=0.1)
        # blob uploads: pass 100 kB of the request body to the registry, then hold the rest until the relay stops
        relay.rule = Trickle(method="PUT", path=r"/blobs/uploads/", direction="request", after=100_000)
        relay.reached.wait()                         # set when a matching body reached ``after`` bytes
        assert relay.exchanges[-1].request_bytes == 100_000

Every exchange is listed in ``exchanges`` with the body bytes passed each way so far (live counters) and the
request's declared ``Content-Length``, so a test can tell where in a body something happened. A rule applies
to the ``times`` matching requests (``None``: all) after the first ``skip``; a request rule matches only bodies
longer than ``after``. Only what a registry and the bot send is handled:
``Content-Length`` or chunked bodies, no pipelining, no TLS.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from tests.harness.registry import RegistryServer

_MAX_LINE = 65536


@dataclass
class Trickle:
    """Which body to slow and how: ``after`` bytes at full speed, then ``piece`` bytes every ``interval``
    seconds; ``interval=None`` holds the rest until the relay stops."""

    method: str
    path: str
    direction: Literal["request", "response"] = "response"
    after: int = 0
    piece: int = 1
    interval: float | None = None
    times: int | None = 1
    skip: int = 0  # matching requests to let through untouched first
    hits: int = 0

    def matches(self, method: str, path: str, declared: int) -> bool:
        """Does this request match (a request body only when it is longer than ``after``)?"""
        if method != self.method or not re.search(self.path, path):
            return False
        if self.direction == "request" and declared <= self.after:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class Exchange:
    method: str
    path: str
    declared: int  # the request's Content-Length
    request_bytes: int = 0  # request body bytes passed to the registry so far
    response_bytes: int = 0  # response body bytes passed to the client so far
    status: int = 0
    shaped: str | None = None  # "request" or "response" when a rule slowed this exchange
    done: bool = False


@dataclass
class TrickleRelay:
    upstream: RegistryServer
    rule: Trickle | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    reached: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._port = self._listener.getsockname()[1]
        host, _, port = self.upstream.host.rpartition(":")
        self._upstream = (host, int(port))

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._port}"

    def __enter__(self) -> TrickleRelay:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self._upstream)
        with self._lock:
            self._sockets.update((client, upstream))
        reader, upstream_reader = client.makefile("rb"), upstream.makefile("rb")
        try:
            while not self._stop.is_set():
                head = _read_head(reader)
                if head is None:
                    return
                self._exchange(head, reader, client, upstream, upstream_reader)
        except (OSError, ValueError, EOFError):
            return
        finally:
            for closable in (reader, upstream_reader, client, upstream):
                with contextlib.suppress(OSError):
                    closable.close()
            with self._lock:
                self._sockets.difference_update((client, upstream))

    def _exchange(
        self,
        head: list[bytes],
        reader: BinaryIO,
        client: socket.socket,
        upstream: socket.socket,
        upstream_reader: BinaryIO,
    ) -> None:
        method, target, _ = head[0].decode("latin-1").split(" ", 2)
        path = target.partition("?")[0]
        headers = _headers(head)
        exchange = Exchange(method, path, int(headers.get("content-length", "0") or 0))
        with self._lock:
            self.exchanges.append(exchange)
            rule = self.rule if self.rule is not None and self.rule.matches(method, path, exchange.declared) else None
        if rule is not None:
            exchange.shaped = rule.direction
        upstream.sendall(b"".join(head))

        def to_upstream(n: int) -> None:
            exchange.request_bytes += n

        self._body(reader, upstream, headers, to_upstream, rule if rule and rule.direction == "request" else None)
        response = _read_head(upstream_reader)
        while response is not None and response[0].split(b" ", 2)[1].startswith(b"1"):
            client.sendall(b"".join(response))
            response = _read_head(upstream_reader)
        if response is None:
            raise EOFError
        exchange.status = int(response[0].split(b" ", 2)[1])
        client.sendall(b"".join(response))
        response_headers = _headers(response)
        if method == "HEAD" or exchange.status in (204, 304):
            response_headers = {"content-length": "0"}

        def to_client(n: int) -> None:
            exchange.response_bytes += n

        shaped = rule if rule and rule.direction == "response" else None
        self._body(upstream_reader, client, response_headers, to_client, shaped)
        exchange.done = True

    def _body(
        self,
        source: BinaryIO,
        sink: socket.socket,
        headers: dict[str, str],
        count: Callable[[int], None],
        rule: Trickle | None,
    ) -> None:
        sent = 0

        def send(data: bytes) -> None:
            nonlocal sent
            while data:
                if rule is None or sent + len(data) <= rule.after:
                    size = len(data)
                elif sent < rule.after:
                    size = rule.after - sent
                else:
                    if sent == rule.after and not self.reached.is_set():
                        self.reached.set()
                    if rule.interval is None:
                        self._stop.wait()
                        raise EOFError
                    size = min(rule.piece, len(data))
                    time.sleep(rule.interval)
                sink.sendall(data[:size])
                count(size)
                sent += size
                data = data[size:]

        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = source.readline(_MAX_LINE)
                if not line:
                    raise EOFError
                sink.sendall(line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    sink.sendall(source.readline(_MAX_LINE))
                    return
                send(_read_exactly(source, size))
                sink.sendall(source.readline(_MAX_LINE))
        left = int(headers.get("content-length", "0") or 0)
        while left > 0:
            data = source.read1(min(left, 65536))  # type: ignore[attr-defined]
            if not data:
                raise EOFError
            left -= len(data)
            send(data)


def _read_head(reader: BinaryIO) -> list[bytes] | None:
    lines: list[bytes] = []
    while True:
        line = reader.readline(_MAX_LINE)
        if not line:
            return None if not lines else _raise()
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return lines


def _raise() -> list[bytes]:
    raise EOFError


def _headers(head: list[bytes]) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in head[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            result[name.strip().lower()] = value.strip()
    return result


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise EOFError
    return data
