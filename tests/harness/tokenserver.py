"""A Bearer token server for the reference registry, the way Docker Hub, GCR and Quay authenticate.

Usage::

    server = TokenServer(service="registry.test", users={"user": "pass"}, anonymous="pull")
    server.start()
    # registry config: auth.token = {realm: server.realm, service: server.service,
    #                                issuer: server.issuer, rootcertbundle: <file with server.cert_pem>}
    ...
    server.stop()

``GET /token?service=S&scope=repository:NAME:pull,push`` (or the OAuth2 ``POST /token`` form with
``grant_type=password``) answers ``{"token", "access_token", "expires_in",
"issued_at"}``. The token is an RS256 JWT whose header carries ``x5c`` (the signing certificate), which is
how distribution 2.8 checks it against ``rootcertbundle``. Valid Basic credentials get every action they
ask for; anonymous callers get ``pull`` only (``anonymous="pull"``) or nothing (``anonymous="none"``); wrong
credentials get 401. ``tokens_issued`` counts the tokens handed out, ``requests`` records every query.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

Anonymous = Literal["pull", "none"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.cache
def signing_key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """One RSA key and self-signed certificate per process: key generation is the slow part of a start."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered (or refused)."""

    username: str | None
    service: str | None
    scopes: tuple[str, ...]
    status: int
    granted: tuple[tuple[str, tuple[str, ...]], ...]  # (repository, actions) pairs put in the token


@dataclass
class TokenServer:
    """Threaded HTTP token server on 127.0.0.1; see the module docstring."""

    service: str = "registry.test"
    issuer: str = "test-token-issuer"
    users: dict[str, str] = field(default_factory=dict)
    anonymous: Anonymous = "pull"
    expires_in: int = 300
    host: str = "127.0.0.1"
    tokens_issued: int = 0
    requests: list[TokenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("token server not started")
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://{self.host}:{self.port}/token"

    @property
    def cert_pem(self) -> bytes:
        return signing_key_and_cert()[1].public_bytes(serialization.Encoding.PEM)

    def start(self) -> TokenServer:
        if self._server is not None:
            return self
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self)

            def do_POST(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((self.host, 0), Handler)
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps stop() (server.shutdown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def issue(self, access: list[tuple[str, tuple[str, ...]]], *, subject: str = "", service: str | None = None) -> str:
        """Sign a token granting ``access`` (repository name, actions) pairs; usable directly by tests."""
        key, cert = signing_key_and_cert()
        now = int(time.time())
        header = {
            "alg": "RS256",
            "typ": "JWT",
            "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service or self.service,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": [{"type": "repository", "name": name, "actions": list(actions)} for name, actions in access],
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def _authenticate(self, authorization: str | None) -> tuple[bool, str | None]:
        """(credentials acceptable, username). No header is anonymous; a wrong password is refused."""
        if not authorization:
            return True, None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            username, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        expected = self.users.get(username)
        if expected is None or not secrets.compare_digest(expected, password):
            return False, username
        return True, username

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        authorization = handler.headers.get("Authorization")
        if handler.command == "POST":
            # The OAuth2 form (grant_type=password) some clients try before GET.
            length = int(handler.headers.get("Content-Length") or 0)
            form = parse_qs(handler.rfile.read(length).decode("utf-8", "replace"))
            query = {**query, **form}
            if form.get("grant_type") == ["password"]:
                user = (form.get("username") or [""])[0]
                secret = (form.get("password") or [""])[0]
                authorization = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        services = query.get("service")
        service = services[0] if services else None
        # Scopes come as repeated parameters or space-separated in one.
        scopes = tuple(scope for value in query.get("scope", []) for scope in value.split())
        if url.path != "/token":
            self._reply(handler, 404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        ok, username = self._authenticate(authorization)
        if not ok:
            self._record(TokenRequest(username, service, scopes, 401, ()))
            self._reply(handler, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return
        granted: list[tuple[str, tuple[str, ...]]] = []
        for scope in scopes:
            # repository:NAME:ACTIONS, NAME may hold a port-less path; actions are the last field.
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = tuple(a for a in actions.split(",") if a)
            if username is None:
                wanted = tuple(a for a in wanted if a == "pull") if self.anonymous == "pull" else ()
            if wanted:
                granted.append((name, wanted))
        token = self.issue(granted, subject=username or "", service=service)
        with self._lock:
            self.tokens_issued += 1
        self._record(TokenRequest(username, service, scopes, 200, tuple(granted)))
        issued_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": issued_at}
        self._reply(handler, 200, body)

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="token"')
        handler.end_headers()
        handler.wfile.write(data)
