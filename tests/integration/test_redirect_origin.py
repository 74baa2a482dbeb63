"""Credentials follow a redirect only to the same scheme, host and port.

A registry (or whoever answers on its port) that redirects an HTTPS request to ``http://`` on the same host and
port would receive the ``Authorization`` header in clear text. One listener here speaks TLS and plain HTTP on
the same port, as an attacker's would, and records what each request carried.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from bot.errors import RegistryError
from bot.registry.auth import Credentials
from bot.registry.transport import Transport, TransportSettings
from tests.harness import figures
from tests.harness.registry import tls_material


class _DualServer:
    """TLS and plain HTTP on one port: a first byte of 0x16 is a TLS handshake."""

    def __init__(self, tmp_path: Path) -> None:
        ca, cert, key = tls_material()
        (tmp_path / "cert.pem").write_bytes(cert)
        (tmp_path / "key.pem").write_bytes(key)
        self.ca_path = tmp_path / "ca.pem"
        self.ca_path.write_bytes(ca)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[tuple[str, str, str | None]] = []  # scheme, path, Authorization
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        tls = conn.recv(1, socket.MSG_PEEK) == b"\x16"
        sock = self.context.wrap_socket(conn, server_side=True) if tls else conn
        with sock, conn, sock.makefile("rb") as reader:
            while True:
                try:
                    line = reader.readline()
                except OSError:
                    return
                if not line:
                    return
                path = line.split()[1].decode()
                headers = {}
                while (header := reader.readline().strip()) != b"":
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.seen.append(("https" if tls else "http", path, headers.get("authorization")))
                if not tls:
                    answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                elif "authorization" not in headers:
                    answer = (
                        'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\nContent-Length: 0\r\n\r\n'
                    )
                else:
                    location = f"http://127.0.0.1:{self.port}{path}"
                    answer = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                sock.sendall(answer.encode())

    def close(self) -> None:
        self.listener.close()


def test_an_https_to_http_redirect_on_the_same_host_and_port_loses_the_credentials(tmp_path: Path) -> None:
    server = _DualServer(tmp_path)
    host = f"127.0.0.1:{server.port}"
    settings = TransportSettings(endpoints={host: f"https://{host}"}, verify=str(server.ca_path), max_attempts=1)
    credentials = Credentials()
    credentials.add(host, "user", "pass")
    try:
        with Transport(settings, credentials) as transport, pytest.raises(RegistryError, match="404"):
            transport.request("GET", host, "/v2/app/manifests/1.0")
    finally:
        server.close()
    plain = [(path, auth) for scheme, path, auth in server.seen if scheme == "http"]
    assert ("https", "/v2/app/manifests/1.0", "Basic dXNlcjpwYXNz") in server.seen  # credentials over TLS
    assert plain == [("/v2/app/manifests/1.0", None)]  # the downgrade got none
    figures.count("credential downgrades refused")


def test_a_name_that_rebinds_to_an_internal_address_after_the_check_is_never_connected_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers public first, loopback afterwards. The connection goes to the one
    address that was checked, so nothing reaches the loopback listener (a stand-in for an internal service)."""
    inside = socket.create_server(("127.0.0.1", 0))
    inside.settimeout(0.5)
    port = inside.getsockname()[1]
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        if host == "rebind.test":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings = TransportSettings(max_attempts=1, connect_timeout=2)
    try:
        with Transport(settings) as transport:
            # The spelling check alone passes; a first lookup (the check) answers public.
            assert transport._connect_address("rebind.test", port) == "rebind.test"  # not sent there yet
            # The redirect check looks the name up (public); the connection looks again (loopback): refused.
            with pytest.raises(RegistryError, match=r"resolves to a loopback address \(127.0.0.1\); refused"):
                transport.request("GET", "registry.test", f"http://rebind.test:{port}/v2/x/blobs/sha256:0")
        with pytest.raises(TimeoutError):
            inside.accept()[0].close()  # nothing connected
    finally:
        inside.close()
    figures.count("DNS rebinding attempts refused")


def test_a_checked_public_address_is_the_one_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443))],
    )
    with Transport(TransportSettings()) as transport:
        transport._guarded.add("storage.test")
        assert transport._connect_address("storage.test", 443) == "93.184.216.34"
