"""Start the real reference registry (distribution 2.8, ``docker-registry`` Debian package) on loopback.

Usage::

    server = start_registry(tmp_path, auth="basic", tls=True, username="AWS", password=token)
    try:
        requests.get(f"{server.url}/v2/", auth=server.auth, verify=server.verify)
    finally:
        server.stop()

In tests prefer the fixtures of ``tests/conftest.py`` (``registry``, ``basic_registry``,
``bearer_registry``, ``tls_registry``, ``registry_factory``).

Modes: ``auth="none"`` (anonymous), ``"basic"`` (htpasswd, bcrypt), ``"bearer"`` (a
:class:`~tests.harness.tokenserver.TokenServer` started alongside; ``server.token_server`` exposes it), and
``tls=True`` with any of them (a throw-away CA signs a certificate for IP 127.0.0.1; ``server.ca_bundle``
is the CA file, ``server.cert_dir`` a directory holding it as ``ca.crt`` for skopeo's ``--*-cert-dir``).
Storage lives in ``server.root``; blobs are under ``root/docker/registry/v2/blobs``. With
``accesslog=True`` the registry writes one combined-log line per request to ``server.access_log``.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import functools
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.harness.tokenserver import Anonymous, TokenServer

Auth = Literal["none", "basic", "bearer"]

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 15.0
_START_ATTEMPTS = 5
# The readiness probe's User-Agent; access_log_lines() leaves its lines out.
READINESS_AGENT = "registry-harness-readiness"
# Every response carries this header with a per-start random value (see _wait_ready).
INSTANCE_HEADER = "X-Harness-Instance"

_live: set[RegistryServer] = set()


class RegistryStartError(RuntimeError):
    """The registry process did not come up; the message holds its log."""


@dataclass(eq=False)
class RegistryServer:
    """A running registry. ``host`` is ``127.0.0.1:PORT``; ``url`` is ``http(s)://host``."""

    host: str
    url: str
    username: str | None
    password: str | None
    ca_bundle: str | None
    root: Path
    auth_mode: Auth = "none"
    tls: bool = False
    workdir: Path = field(default_factory=Path)
    cert_dir: str | None = None
    access_log: Path | None = None
    log_file: Path | None = None
    token_server: TokenServer | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Set on a view through a proxy (tests.harness.proxy): the real server, which stop() leaves running.
    proxy_of: RegistryServer | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    @property
    def auth(self) -> tuple[str, str] | None:
        """Basic credentials for ``requests`` (``auth=``), or None for an anonymous registry."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    @property
    def verify(self) -> str | bool:
        """``requests`` ``verify=`` value: the CA bundle for TLS registries."""
        return self.ca_bundle if self.ca_bundle else True

    @property
    def blobs_dir(self) -> Path:
        return self.root / "docker" / "registry" / "v2" / "blobs" / "sha256"

    def session(self) -> requests.Session:
        """A plain session trusting this registry's CA (no credentials attached).

        ``trust_env`` is off because ``REQUESTS_CA_BUNDLE`` in the environment would override
        ``session.verify``; pass ``verify=server.verify`` per request when using another session.
        """
        session = requests.Session()
        session.trust_env = False
        session.verify = self.verify
        return session

    def access_log_lines(self) -> list[str]:
        """Access-log lines so far (needs ``accesslog=True``)."""
        if self.access_log is None:
            raise RuntimeError("registry started without accesslog=True")
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text(errors="replace").splitlines()
        return [line for line in lines if '"' in line and READINESS_AGENT not in line]

    def running(self) -> bool:
        if self.proxy_of is not None:
            return self.proxy_of.running()
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Terminate the registry (then kill it if it lingers) and the token server. Idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.token_server is not None and self.proxy_of is None:
            self.token_server.stop()
        _live.discard(self)

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


def free_port() -> int:
    """A port free right now on 127.0.0.1 (callers retry if another process grabs it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def _htpasswd_line(username: str, password: str) -> str:
    # -B is bcrypt, the only scheme distribution accepts; -C 4 is the cheapest cost, tests need no strength.
    result = subprocess.run(
        ["htpasswd", "-Bbn", "-C", "4", username, password], check=True, capture_output=True, text=True
    )
    return result.stdout.strip() + "\n"


@functools.cache
def tls_material() -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM); the server certificate is valid for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "image-mirror-bot test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _wait_ready(process: subprocess.Popen[bytes], url: str, verify: str | bool, instance: str, deadline: float) -> bool:
    """True once ``GET /v2/`` is answered (200 or 401) by this very process; False if it died first.

    The ``X-Harness-Instance`` header tells our registry from another test run's that took the port.
    """
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # verify= per request: a Session's verify loses against REQUESTS_CA_BUNDLE from the environment.
            response = requests.get(f"{url}/v2/", timeout=1, verify=verify, headers={"User-Agent": READINESS_AGENT})
        except requests.exceptions.SSLError as exc:
            if process.poll() is not None:
                return False
            raise RegistryStartError(f"TLS to {url} failed: {exc}") from exc
        except requests.ConnectionError:
            time.sleep(0.01)
            continue
        return response.headers.get(INSTANCE_HEADER) == instance
    return False


def start_registry(
    workdir: Path,
    *,
    auth: Auth = "none",
    tls: bool = False,
    username: str = "user",
    password: str = "pass",
    accesslog: bool = False,
    anonymous: Anonymous = "pull",
    token_expires_in: int = 300,
) -> RegistryServer:
    """Start a registry storing into ``workdir/storage``; ``workdir`` also holds config, certs and logs.

    ``username``/``password`` apply to ``basic`` (htpasswd) and ``bearer`` (the token server's user);
    ``anonymous`` says what the token server grants callers without credentials.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": not accesslog}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            # No background purge of upload dirs: it would race with tests that inspect storage.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "", "secret": base64.b64encode(os.urandom(16)).decode(), "headers": {}},
    }
    http = config["http"]
    assert isinstance(http, dict)

    ca_bundle: str | None = None
    cert_dir: str | None = None
    if tls:
        ca_pem, cert_pem, key_pem = tls_material()
        certs = workdir / "certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(ca_pem)
        (workdir / "server.crt").write_bytes(cert_pem)
        (workdir / "server.key").write_bytes(key_pem)
        http["tls"] = {"certificate": str(workdir / "server.crt"), "key": str(workdir / "server.key")}
        ca_bundle = str(certs / "ca.crt")
        cert_dir = str(certs)

    token_server: TokenServer | None = None
    if auth == "basic":
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(_htpasswd_line(username, password))
        config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    elif auth == "bearer":
        token_server = TokenServer(users={username: password}, anonymous=anonymous, expires_in=token_expires_in)
        token_server.start()
        bundle = workdir / "token-signer.pem"
        bundle.write_bytes(token_server.cert_pem)
        config["auth"] = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(bundle),
            }
        }

    scheme = "https" if tls else "http"
    config_path = workdir / "config.yml"
    log_file = workdir / "registry.log"
    access_log = workdir / "access.log" if accesslog else None
    failures: list[str] = []
    try:
        for _attempt in range(_START_ATTEMPTS):
            port = free_port()
            host = f"127.0.0.1:{port}"
            http["addr"] = host
            instance = secrets.token_hex(8)
            http["headers"] = {INSTANCE_HEADER: [instance]}
            config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
            # The access log goes to stdout, everything else to stderr.
            with (
                open(access_log if access_log else os.devnull, "ab") as out,  # noqa: PTH123
                log_file.open("ab") as err,
            ):
                process = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(config_path)], stdout=out, stderr=err, stdin=subprocess.DEVNULL
                )
            url = f"{scheme}://{host}"
            server = RegistryServer(
                host=host,
                url=url,
                username=username if auth != "none" else None,
                password=password if auth != "none" else None,
                ca_bundle=ca_bundle,
                root=root,
                auth_mode=auth,
                tls=tls,
                workdir=workdir,
                cert_dir=cert_dir,
                access_log=access_log,
                log_file=log_file,
                token_server=token_server,
                process=process,
            )
            _live.add(server)
            if _wait_ready(process, url, ca_bundle or True, instance, time.monotonic() + START_TIMEOUT):
                return server
            # Most likely the port was taken between free_port() and bind: try another one.
            server.token_server = None  # keep it for the next attempt
            server.stop()
            failures.append(log_file.read_text(errors="replace")[-2000:])
    except BaseException:
        if token_server is not None:
            token_server.stop()
        raise
    if token_server is not None:
        token_server.stop()
    raise RegistryStartError(f"docker-registry did not start in {_START_ATTEMPTS} attempts:\n" + "\n".join(failures))


class RegistryFactory:
    """Starts registries in fresh directories under ``base`` and stops them all in :meth:`stop_all`."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.servers: list[RegistryServer] = []
        self._count = 0

    def __call__(
        self,
        *,
        auth: Auth = "none",
        tls: bool = False,
        username: str = "user",
        password: str = "pass",
        accesslog: bool = False,
        anonymous: Anonymous = "pull",
        token_expires_in: int = 300,
    ) -> RegistryServer:
        self._count += 1
        workdir = self.base / f"registry-{self._count}-{auth}{'-tls' if tls else ''}"
        server = start_registry(
            workdir,
            auth=auth,
            tls=tls,
            username=username,
            password=password,
            accesslog=accesslog,
            anonymous=anonymous,
            token_expires_in=token_expires_in,
        )
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
