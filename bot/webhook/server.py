"""HTTPS server for the admission webhook (stdlib ``http.server`` and ``ssl``).

- ``POST /mutate``: AdmissionReview v1; the body must declare its length and stay under ``max_body`` bytes.
- ``GET /healthz``: the process serves; ``GET /readyz``: settings and certificate are loaded.

Each accepted connection is wrapped with the TLS context current at that moment, so a renewed certificate
is served to new connections without a restart. The TLS handshake runs in the connection's own thread, and
every socket has a timeout, so a slow or silent client holds only its own thread. Connections are kept
alive (the API server reuses them) and Nagle's algorithm is off so a response is never held back.

Slow clients cannot starve the others: each request (TLS handshake, headers and body, or the wait for the
next request on a kept-alive connection) must arrive within ``deadline`` seconds in total, however slowly its
bytes trickle in (a watchdog shuts the connection down), and one client address holds at most
``per_client`` connections; past either limit a connection is closed at once and everyone else is answered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.webhook.log import Log
from bot.webhook.patch import BadReview, Settings, admit, allow, request_uid
from bot.webhook.reload import Watched

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # a pod and its old version, well above what the API server stores
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 256  # one thread each; the API server keeps a few kept-alive connections per replica
DEFAULT_DEADLINE = 10.0  # seconds for a whole request: handshake, headers and body
DEFAULT_PER_CLIENT = 64  # connections one address may hold (the API server's replicas each use a few)
MAX_LOGGED_IMAGES = 20  # images named per admission log line; the rest are counted


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        settings: Watched[Settings],
        tls: Watched[ssl.SSLContext],
        log: Log,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        deadline: float = DEFAULT_DEADLINE,
        per_client: int = DEFAULT_PER_CLIENT,
    ) -> None:
        self.settings = settings
        self.deadline = deadline
        self.per_client = per_client
        self._clients: Counter[str] = Counter()
        self._due: dict[socket.socket, float] = {}  # connection -> when its current request must be in
        self._watch_lock = threading.Lock()
        threading.Thread(target=self._watchdog, name="webhook-deadlines", daemon=True).start()
        self.tls = tls
        self.log = log
        self.max_body = max_body
        self.timeout_seconds = timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self.draining = False  # set on SIGTERM: readiness fails so the Service stops sending new requests
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(self.timeout_seconds)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.tls.value.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        with self._watch_lock:
            crowded = self._clients[client] >= self.per_client
            if not crowded:
                self._clients[client] += 1
        if crowded:
            self.log.debug("too many connections from one client; closing a new one", client=client)
            self.shutdown_request(request)
            return
        if not self._slots.acquire(blocking=False):
            # Past the limit a connection is closed at once rather than given yet another thread.
            self._leave(client)
            self.log.warning("too many connections; closing a new one", client=client)
            self.shutdown_request(request)
            return
        try:
            self.expect(request)  # the handshake and the first request count against the deadline
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            self.done(request)
            self._leave(client)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.done(request)
            self._slots.release()
            self._leave(str(client_address[0]))

    def _leave(self, client: str) -> None:
        with self._watch_lock:
            self._clients[client] -= 1
            if self._clients[client] <= 0:
                del self._clients[client]

    def expect(self, sock: socket.socket) -> None:
        """The next request on ``sock`` must be complete within the deadline, from now."""
        with self._watch_lock:
            self._due[sock] = time.monotonic() + self.deadline

    def done(self, sock: socket.socket) -> None:
        with self._watch_lock:
            self._due.pop(sock, None)

    def _watchdog(self) -> None:
        """Shut down connections whose request is overdue: a client that sends a byte every few seconds
        never trips the socket timeout, but it does trip this."""
        tick = min(0.5, self.deadline / 4)
        while True:
            time.sleep(tick)
            now = time.monotonic()
            with self._watch_lock:
                overdue = [sock for sock, due in self._due.items() if due <= now]
                for sock in overdue:
                    del self._due[sock]
            for sock in overdue:
                # The plain socket's shutdown (not SSLSocket's): the blocked read returns at once.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.log.debug("connection error", client=str(client_address[0]))


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    server_version = "image-mirror-webhook"
    sys_version = ""
    wbufsize = 64 * 1024  # headers and body leave in one write; flushed after each request

    def setup(self) -> None:
        assert isinstance(self.request, ssl.SSLSocket)
        self.request.do_handshake()
        super().setup()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if not self.close_connection:
            self.server.expect(self.request)  # the next request on this connection gets its own deadline

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log.debug("http", detail=format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # every admission is logged with its outcome instead

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        elif path == "/readyz":
            # Start-up loads settings and certificate before listening; a failed reload keeps the old ones.
            if self.server.draining:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"shutting down\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, b"ready\n", "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        started = time.perf_counter()
        if self.path.split("?", 1)[0] != "/mutate":
            self._refuse(HTTPStatus.NOT_FOUND, "POST AdmissionReviews to /mutate")
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            return
        length = int(length_header)
        if length > self.server.max_body:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is limited to {self.server.max_body} bytes")
            return
        body = self.rfile.read(length)
        try:
            review = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than any real pod
            self._refuse(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return
        try:
            admission = admit(review, self.server.settings.value)
        except BadReview as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except Exception as exc:  # never block a pod on a bug: answer "allowed, unchanged" and log it
            uid = request_uid(review) or ""
            self.server.log.error("admission failed; pod left unchanged", uid=uid, error=repr(exc))
            self._send_json(allow(uid))
            return
        self.server.done(self.request)  # the request is in: answering is not bounded by its deadline
        self._send_json(admission.response())
        log = self.server.log
        if log.enabled("info"):
            log.info(
                "admission",
                uid=admission.uid,
                namespace=admission.namespace,
                pod=admission.name,
                operation=admission.operation,
                skipped=admission.skipped or None,
                rewritten=_some([f"{d.image} -> {d.target}" for d in admission.rewritten]),
                kept=_some([f"{d.image}: {d.reason}" for d in admission.kept]),
                ms=round((time.perf_counter() - started) * 1000, 3),
            )

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self.server.log.warning("bad request", status=int(status), error=message, client=self.client_address[0])
        self.close_connection = True
        self._send(status, json.dumps({"error": message}).encode() + b"\n", "application/json")

    def _send_json(self, payload: dict[str, Any]) -> None:
        self._send(HTTPStatus.OK, json.dumps(payload, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _some(items: list[str], limit: int = MAX_LOGGED_IMAGES) -> list[str] | dict[str, object]:
    """``items``, or when there are more than ``limit`` the first ``limit`` and how many there are: a pod
    with 60,000 images must not write a multi-megabyte log line."""
    if len(items) <= limit:
        return items
    return {"first": [item[:512] for item in items[:limit]], "count": len(items)}
