"""A forwarding proxy in front of a real registry that injects what a healthy registry never produces:
429 and 503 answers, redirects of blob downloads to storage, relative ``Location`` headers, slow streams
and paginated tag lists.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import requests

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FaultProxy:
    """Forwards to ``upstream`` (a registry URL) and injects faults.

    - ``faults``: ``(method, path substring, status, headers)`` answered instead of forwarding, each once.
    - ``redirect_blobs``: blob GETs get ``307`` to ``storage`` (another proxy), as Docker Hub sends to a CDN.
    - ``relative_location``: ``Location`` headers are made relative (``/v2/...``).
    - ``chunk_delay``: seconds to sleep per 64 KiB of response body (a slow source).
    - ``upstream_headers``: added when forwarding (a storage URL that carries its own authorisation).
    - ``ranges``: what blob ``GET``s with a ``Range`` header get: ``"honour"`` (forwarded; distribution answers
      206 with the matching ``Content-Range``), ``"ignore"`` (the header is dropped, so the answer is 200 with
      the whole blob, as a server that does not support ranges answers: RFC 9110 section 14.2,
      https://www.rfc-editor.org/rfc/rfc9110#name-range) or ``"wrong"`` (206 with the blob from byte 0 and a
      ``Content-Range`` saying so, not the range asked for: a broken CDN).
    - ``cut_blob_after``: the first whole-blob ``GET`` (no ``Range``) of a larger blob is cut after this many
      body bytes.
    - ``tag_page_size``: answer tag lists in sorted pages with ``Link: <...>; rel="next"`` (distribution 2.8
      ignores ``n``; Docker Hub, GCR and distribution 3 paginate).
    """

    upstream: str
    faults: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    redirect_blobs: FaultProxy | None = None
    relative_location: bool = False
    chunk_delay: float = 0.0
    upstream_headers: dict[str, str] = field(default_factory=dict)
    tag_page_size: int | None = None
    ranges: str = "honour"
    cut_blob_after: int | None = None
    body_bytes: int = 0  # blob body bytes sent to clients
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def methods(self, predicate: Callable[[Seen], bool] = lambda s: True) -> list[str]:
        return [s.method for s in self.seen if predicate(s)]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.seen.append(Seen(method, path, dict(handler.headers.items())))
            fault = next((f for f in self.faults if f[0] == method and f[1] in path), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            self._reply(handler, fault[2], fault[3], b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')
            return
        if self.redirect_blobs is not None and method == "GET" and "/blobs/sha256:" in path:
            self._reply(handler, 307, {"Location": self.redirect_blobs.url + path}, b"")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
        headers.update(self.upstream_headers)
        cut = None
        if method == "GET" and "/blobs/sha256:" in path:
            asked = headers.pop("Range", None)
            if asked is not None and self.ranges == "honour":
                headers["Range"] = asked
            elif asked is not None and self.ranges == "wrong":
                headers["Range"] = "bytes=0-"
            elif asked is None:
                cut = self.cut_blob_after
        if self.tag_page_size and method == "GET" and "/tags/list" in path:
            self._tag_page(handler, path, headers)
            return
        upstream = requests.request(
            method, self.upstream + path, data=body, headers=headers, stream=True, allow_redirects=False, timeout=60
        )
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        location = out.get("Location")
        if location and self.relative_location:
            parts = urlsplit(location)
            out["Location"] = parts.path + (f"?{parts.query}" if parts.query else "")
        elif location and location.startswith(self.upstream):
            out["Location"] = self.url + location[len(self.upstream) :]
        if cut is not None:
            with self._lock:  # once, and only a body longer than the cut
                if self.cut_blob_after is None or int(upstream.headers.get("Content-Length") or 0) <= cut:
                    cut = None
                self.cut_blob_after = None if cut is not None else self.cut_blob_after
        handler.send_response(upstream.status_code)
        for key, value in out.items():
            handler.send_header(key, value)
        handler.end_headers()
        if method != "HEAD":
            sent = 0
            for chunk in upstream.raw.stream(65536, decode_content=False):
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
                if cut is not None and sent + len(chunk) >= cut:
                    handler.wfile.write(chunk[: cut - sent])
                    self._count(cut - sent, path)
                    handler.close_connection = True
                    handler.wfile.flush()
                    handler.connection.shutdown(2)  # the body ends early: the client sees a broken body
                    break
                handler.wfile.write(chunk)
                sent += len(chunk)
                self._count(len(chunk), path)
        upstream.close()

    def _count(self, size: int, path: str) -> None:
        if "/blobs/sha256:" in path:
            with self._lock:
                self.body_bytes += size

    def _tag_page(self, handler: BaseHTTPRequestHandler, path: str, headers: dict[str, str]) -> None:
        assert self.tag_page_size is not None
        parts = urlsplit(path)
        upstream = requests.get(self.upstream + parts.path, headers=headers, timeout=60)
        if upstream.status_code != 200:
            self._reply(handler, upstream.status_code, {}, upstream.content)
            return
        query = dict(parse_qsl(parts.query))
        tags = sorted(upstream.json()["tags"])
        last = query.get("last")
        rest = [tag for tag in tags if last is None or tag > last]
        page = rest[: self.tag_page_size]
        extra = {"Content-Type": "application/json"}
        if len(rest) > len(page):
            # Relative, as Docker Hub sends it.
            extra["Link"] = f'<{parts.path}?n={self.tag_page_size}&last={page[-1]}>; rel="next"'
        body = json.dumps({"name": upstream.json()["name"], "tags": page}).encode()
        self._reply(handler, 200, extra, body)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
