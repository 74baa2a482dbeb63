"""A stand-in that answers as Amazon ECR does: moto for the control plane, the reference registry for the data,
and proxies in front of both that add what ECR does and a kind registry does not.

Usage (the ``ecr_standin`` fixture of ``tests/conftest.py`` starts and stops one)::

    ecr = ecr_standin                                   # an EcrStandIn, started
    ecr.create_repository("up/app", mutability="IMMUTABLE")
    config = ecr.config(rules=[...])                    # a mirror/config.yml mapping pointing at the stand-in
    main(["sync", ..., "--ca-bundle", ecr.ca_bundle])   # the bot logs in through the control plane
    assert get_manifest_digest(ecr.registry, "up/app", "1.0") == digest   # storage behind the proxy

    ecr.throttle(10)                                    # every throttled API: 10 requests/s, burst 10
    ecr.throttle({"PutImage": 2}, burst=1)              # per API
    ecr.blob_mounting = True                            # the registry setting BLOB_MOUNTING=ENABLED
    ecr.expire_tokens()                                 # every token handed out so far answers 403 "expired"
    ecr.count(api="PutImage", status=429), ecr.exchanges   # what the data plane saw and answered

Parts:
- ``endpoint_url``: the ECR API (boto3 ``endpoint_url``), moto behind a proxy that hands out a fresh
  registry password per ``GetAuthorizationToken`` with a real ``expiresAt`` 12 hours ahead (moto's is a fixed
  date in 2015 and the same password each time).
- ``url``: the registry API over TLS (trust ``ca_bundle``), Basic auth ``AWS``/<token password>.
- ``storage_url``: where blob downloads are redirected, an S3-like host (``localhost``, not ``127.0.0.1``).
- ``registry``: the reference registry behind the proxy (plain HTTP, no auth) as a ``RegistryServer``, to
  seed or inspect storage without going through the ECR behaviours.

Each behaviour below cites the page that documents it, or says it was observed on ECR.
Request bodies are held in memory (test images are small); blob downloads stream from storage.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import boto3  # type: ignore[import-untyped]
import requests
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from moto.server import ThreadedMotoServer

from tests.harness.registry import RegistryServer, start_registry, tls_material

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
# The host name the bot is configured with; ``ecr.registry_url`` sends its requests to the stand-in instead.
TARGET_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"

# https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_AuthorizationData.html
# https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html:
# "The authorization token is valid for 12 hours."
TOKEN_LIFETIME = 12 * 3600

# Registry requests and the ECR API each one is counted against (the IAM actions of
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push-iam.html and
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/security_iam_id-based-policy-examples.html);
# each API has its own rate quota (https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html).
THROTTLED_APIS = (
    "BatchCheckLayerAvailability",
    "BatchGetImage",
    "CompleteLayerUpload",
    "GetDownloadUrlForLayer",
    "InitiateLayerUpload",
    "ListImages",
    "PutImage",
    "UploadLayerPart",
)

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags)(?:/(?P<rest>.*))?$")
_ACCEPT_ALL = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def ecr_api(method: str, path: str) -> str | None:
    """The ECR API a registry request is counted against, or None (``/v2/``, upload status, cancel)."""
    match = _PATH.match(path)
    if match is None:
        return None
    kind, rest = match["kind"], match["rest"] or ""
    if kind == "manifests":
        return {"GET": "BatchGetImage", "HEAD": "BatchGetImage", "PUT": "PutImage", "DELETE": "BatchDeleteImage"}.get(
            method
        )
    if kind == "blobs":
        return {"HEAD": "BatchCheckLayerAvailability", "GET": "GetDownloadUrlForLayer"}.get(method)
    if kind == "blobs/uploads":
        if method == "POST" and not rest:
            return "InitiateLayerUpload"
        return {"PATCH": "UploadLayerPart", "PUT": "CompleteLayerUpload"}.get(method)
    if kind == "tags" and method == "GET":
        return "ListImages"
    return None


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@dataclass(frozen=True)
class Exchange:
    """One registry request as the stand-in answered it."""

    method: str
    path: str
    api: str | None
    status: int
    at: float = field(default_factory=time.monotonic)  # when it was answered


class _Bucket:
    """A token bucket: ``rate`` requests per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS when given a context (the handshake runs in the handler thread)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


def _serve(owner: Any, route: str, context: ssl.SSLContext | None) -> _Server:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            self.request.settimeout(120)
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()

        def _any(self) -> None:
            getattr(owner, route)(self)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Server(Handler, context)
    threading.Thread(target=server.serve_forever, name=f"ecr-standin-{route}", daemon=True).start()
    return server


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(1024)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _reply(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD" and body:
        handler.wfile.write(body)


class EcrStandIn:
    """See the module docstring. ``workdir`` holds the registry's storage, config and the CA bundle."""

    def __init__(self, workdir: Path, *, blob_mounting: bool = False) -> None:
        self.workdir = Path(workdir)
        # The registry setting "BLOB_MOUNTING" (aws ecr put-account-setting --name BLOB_MOUNTING --value ENABLED),
        # off unless set: https://docs.aws.amazon.com/AmazonECR/latest/userguide/blob-mounting.html
        self.blob_mounting = blob_mounting
        self.exchanges: list[Exchange] = []
        self.token_requests = 0
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._tokens: dict[str, float] = {}  # password -> expiry (epoch seconds)
        self._expired: set[str] = set()
        self._known_repositories: set[str] = set()
        self._secret = secrets.token_bytes(16)
        self._local = threading.local()
        self._moto: ThreadedMotoServer | None = None
        self._servers: list[_Server] = []
        self.registry: RegistryServer | None = None
        self._moto_url = ""

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> EcrStandIn:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log: a line per ECR API call
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        self._moto = moto
        host, port = moto.get_host_and_port()
        self._moto_url = f"http://{host}:{port}"
        # moto keeps its state per process: start every stand-in from an empty account.
        requests.post(f"{self._moto_url}/moto-api/reset", timeout=30).raise_for_status()
        self.registry = start_registry(self.workdir / "registry")
        ca_pem, cert_pem, key_pem = tls_material()
        (self.workdir / "ca.crt").write_bytes(ca_pem)
        (self.workdir / "server.crt").write_bytes(cert_pem)
        (self.workdir / "server.key").write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.workdir / "server.crt"), str(self.workdir / "server.key"))
        self._data_server = _serve(self, "_data_plane", context)
        self._storage_server = _serve(self, "_storage", context)
        self._control_server = _serve(self, "_control_plane", None)
        self._servers = [self._data_server, self._storage_server, self._control_server]
        self.ecr = self._direct_client()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        if self.registry is not None:
            self.registry.stop()
        if self._moto is not None:
            # moto's state is per process: leave none behind for other tests' moto servers.
            with contextlib.suppress(requests.RequestException):
                requests.post(f"{self._moto_url}/moto-api/reset", timeout=30)
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> EcrStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where things are -----------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the registry API."""
        return f"127.0.0.1:{self._data_server.server_address[1]}"

    @property
    def url(self) -> str:
        """The registry API (``ecr.registry_url``)."""
        return f"https://{self.host}"

    @property
    def endpoint_url(self) -> str:
        """The ECR API (``ecr.endpoint_url``, boto3 ``endpoint_url``)."""
        return f"http://127.0.0.1:{self._control_server.server_address[1]}"

    @property
    def storage_url(self) -> str:
        return f"https://localhost:{self._storage_server.server_address[1]}"

    @property
    def ca_bundle(self) -> str:
        return str(self.workdir / "ca.crt")

    def config(self, **extra: object) -> dict[str, Any]:
        """A ``mirror/config.yml`` mapping whose target is this stand-in; ``extra`` adds top-level keys
        (``rules=[...]``) and ``ecr={...}`` merges into the ``ecr`` section."""
        ecr = {"endpoint_url": self.endpoint_url, "registry_url": self.url, "region": REGION}
        ecr.update(extra.pop("ecr", {}) or {})  # type: ignore[call-overload]
        return {"target": {"registry": TARGET_HOST}, "ecr": ecr, **extra}

    def client(self) -> ECRClient:
        """A boto3 ECR client for the control plane (the process needs AWS credentials in its environment,
        any values; see the ``aws_env`` fixture)."""
        client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=self.endpoint_url)
        return client

    def view(self) -> RegistryServer:
        """The registry API as a ``RegistryServer`` with fresh credentials, for the harness helpers
        (``push_image``, ``get_manifest``...): every request goes through the ECR behaviours."""
        assert self.registry is not None
        user, password = self.login()
        return dataclasses.replace(
            self.registry,
            host=self.host,
            url=self.url,
            username=user,
            password=password,
            ca_bundle=self.ca_bundle,
            auth_mode="basic",
            tls=True,
            process=None,
            proxy_of=self.registry,
        )

    def login(self) -> tuple[str, str]:
        """Fresh registry credentials (``AWS``, password) from ``GetAuthorizationToken``."""
        data = self.client().get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return user, password

    # -- knobs ----------------------------------------------------------------------------------------------

    def create_repository(self, name: str, *, mutability: Literal["MUTABLE", "IMMUTABLE"] = "MUTABLE") -> None:
        """Create a repository through the control plane, as the bot or an operator would."""
        self.ecr.create_repository(repositoryName=name, imageTagMutability=mutability)

    def throttle(self, rates: float | Mapping[str, float] | None, *, burst: float | None = None) -> None:
        """Per-API rate quotas in requests per second: one rate for every API of ``THROTTLED_APIS``, a mapping
        ``{api: rate}``, or None for none. ``burst`` is the bucket size (default: one second's worth)."""
        if rates is None:
            chosen: dict[str, float] = {}
        elif isinstance(rates, Mapping):
            unknown = set(rates) - set(THROTTLED_APIS)
            if unknown:
                raise ValueError(f"not throttled APIs: {sorted(unknown)}; choose from {THROTTLED_APIS}")
            chosen = dict(rates)
        else:
            chosen = dict.fromkeys(THROTTLED_APIS, float(rates))
        with self._lock:
            self._buckets = {api: _Bucket(rate, burst if burst is not None else rate) for api, rate in chosen.items()}

    def expire_tokens(self) -> None:
        """Every registry password handed out so far is now expired; the next ``GetAuthorizationToken`` works."""
        with self._lock:
            self._expired.update(self._tokens)

    def count(self, *, api: str | None = None, status: int | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for exchange in self.exchanges
                if (api is None or exchange.api == api)
                and (status is None or exchange.status == status)
                and (method is None or exchange.method == method)
            )

    # -- the control plane ----------------------------------------------------------------------------------

    def _direct_client(self) -> ECRClient:
        client: ECRClient = boto3.client(
            "ecr",
            region_name=REGION,
            endpoint_url=self._moto_url,
            aws_access_key_id="standin",
            aws_secret_access_key="standin",
        )
        return client

    def _control_plane(self, handler: BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        upstream = self._session().request(
            handler.command, self._moto_url + handler.path, data=body, headers=headers, timeout=60
        )
        content = upstream.content
        target = handler.headers.get("X-Amz-Target", "")
        if target.endswith(".DeleteRepository"):
            with self._lock:
                self._known_repositories.clear()
        if target.endswith(".GetAuthorizationToken") and upstream.status_code == 200:
            content = self._fresh_tokens(content)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP | {"content-encoding"}}
        _reply(handler, upstream.status_code, out, content)

    def _fresh_tokens(self, content: bytes) -> bytes:
        """A new password per call with a real expiry, where moto repeats one password that expired in 2015."""
        payload = json.loads(content)
        expires = time.time() + TOKEN_LIFETIME
        for item in payload.get("authorizationData", []):
            password = secrets.token_urlsafe(24)
            with self._lock:
                self._tokens[password] = expires
                self.token_requests += 1
            item["authorizationToken"] = base64.b64encode(f"AWS:{password}".encode()).decode()
            item["expiresAt"] = expires
        return json.dumps(payload).encode()

    def _repository_exists(self, name: str) -> bool:
        with self._lock:
            if name in self._known_repositories:
                return True
        try:
            self.ecr.describe_repositories(repositoryNames=[name])
        except ClientError:
            return False
        with self._lock:
            self._known_repositories.add(name)
        return True

    def _mutability(self, name: str) -> str:
        repositories = self.ecr.describe_repositories(repositoryNames=[name])["repositories"]
        return str(repositories[0].get("imageTagMutability", "MUTABLE"))

    # -- the data plane -------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
        return session

    def _record(self, handler: BaseHTTPRequestHandler, path: str, api: str | None, status: int) -> None:
        with self._lock:
            self.exchanges.append(Exchange(handler.command, path, api, status))

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        api: str | None,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._record(handler, path, api, status)
        out = {"Content-Type": "application/json; charset=utf-8"} if body else {}
        out.update(headers or {})
        _reply(handler, status, out, body)

    def _authorized(self, handler: BaseHTTPRequestHandler, path: str, api: str | None) -> bool:
        header = handler.headers.get("Authorization", "")
        password = None
        if header.lower().startswith("basic "):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
                password = secret if user == "AWS" else None
        with self._lock:
            expiry = self._tokens.get(password) if password is not None else None
            expired = password in self._expired or (expiry is not None and expiry < time.time())
        if expiry is not None and expired:
            # Observed on ECR (and in its troubleshooting guides): a token past its 12 hours answers 403 with
            # this message, not a 401 challenge.
            message = "Your authorization token has expired. Reauthenticate and try again."
            self._answer(handler, path, api, 403, _error("DENIED", message))
            return False
        if expiry is None:
            # Observed: ECR challenges with Basic, realm the registry URL, service ecr.amazonaws.com
            # (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html: Basic auth, user AWS).
            challenge = f'Basic realm="https://{TARGET_HOST}/",service="ecr.amazonaws.com"'
            body = _error("UNAUTHORIZED", "authentication required")
            self._answer(handler, path, api, 401, body, {"WWW-Authenticate": challenge})
            return False
        return True

    def _throttled(self, api: str | None) -> bool:
        if api is None:
            return False
        with self._lock:
            bucket = self._buckets.get(api)
            return bucket is not None and not bucket.take()

    def _data_plane(self, handler: BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        parts = urlsplit(handler.path)
        path, query = parts.path, parts.query
        api = ecr_api(handler.command, path)
        if not self._authorized(handler, path, api):
            return
        if self._throttled(api):
            # https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors.html ("HTTP 429: Too Many
            # Requests or ThrottleException"), per-API rates on
            # https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html. Observed: the body
            # says TOOMANYREQUESTS "Rate exceeded" and there is no Retry-After header.
            self._answer(handler, path, api, 429, _error("TOOMANYREQUESTS", "Rate exceeded"))
            return
        match = _PATH.match(path)
        if match is not None and not self._repository_exists(match["name"]):
            # Repositories exist only once created through the API, a push does not create one:
            # https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors.html ("HTTP 404: Repository
            # Does Not Exist"), https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-create.html.
            # The code and message are as observed.
            name = match["name"]
            message = f"The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
            self._answer(handler, path, api, 404, _error("NAME_UNKNOWN", message))
            return
        kind = match["kind"] if match is not None else None
        rest = (match["rest"] or "") if match is not None else ""
        name = match["name"] if match is not None else ""
        if kind == "blobs" and handler.command == "GET":
            self._redirect_blob(handler, path, api, name, rest)
            return
        if kind == "blobs/uploads" and handler.command == "POST":
            query = self._mount_query(name, query)
        if kind == "manifests" and handler.command == "PUT" and not self._may_tag(handler, path, api, name, rest, body):
            return
        self._forward(handler, path, query, api, body, kind)

    def _mount_query(self, name: str, query: str) -> str:
        """The upload query to forward: the mount asked for, or none (a plain upload session, 202).

        https://docs.aws.amazon.com/AmazonECR/latest/userguide/blob-mounting.html: mounting works only with the
        registry setting on, within one registry; observed: even then only a blob that a manifest of the
        ``from`` repository references is mounted, any other answers 202 with an upload session.
        """
        params = dict(parse_qsl(query))
        if "mount" not in params:
            return query
        source, digest = params.get("from", ""), params["mount"]
        if self.blob_mounting and self._repository_exists(source) and digest in self._referenced(source):
            return query
        rest = {key: value for key, value in params.items() if key not in ("mount", "from")}
        return urlencode(rest)

    def _referenced(self, repository: str) -> set[str]:
        """Digests that some manifest stored in ``repository`` references (config, layers, children)."""
        assert self.registry is not None
        root = self.registry.root / "docker" / "registry" / "v2"
        revisions = root / "repositories" / repository / "_manifests" / "revisions" / "sha256"
        found: set[str] = set()
        for revision in revisions.glob("*") if revisions.is_dir() else ():
            data = root / "blobs" / "sha256" / revision.name[:2] / revision.name / "data"
            try:
                manifest = json.loads(data.read_bytes())
            except (OSError, ValueError):
                continue
            for item in [manifest.get("config") or {}, *manifest.get("layers", []), *manifest.get("manifests", [])]:
                if isinstance(item, dict) and isinstance(item.get("digest"), str):
                    found.add(item["digest"])
        return found

    def _may_tag(
        self, handler: BaseHTTPRequestHandler, path: str, api: str | None, name: str, reference: str, body: bytes
    ) -> bool:
        """False (answered) when the push would move a tag of an IMMUTABLE repository.

        https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html: the push of a tag
        that already exists in an immutable repository fails (``ImageTagAlreadyExistsException`` in the API);
        through the registry API the answer is observed as 400 TAG_INVALID with the message below
        (https://github.com/aws/containers-roadmap/issues/862). The same manifest again moves nothing and
        passes.
        """
        if reference.startswith("sha256:") or self._mutability(name) != "IMMUTABLE":
            return True
        assert self.registry is not None
        current = self._session().head(
            f"{self.registry.url}/v2/{name}/manifests/{reference}", headers={"Accept": _ACCEPT_ALL}, timeout=60
        )
        digest = current.headers.get("Docker-Content-Digest")
        if current.status_code != 200 or digest == "sha256:" + hashlib.sha256(body).hexdigest():
            return True
        message = (
            f"The image tag '{reference}' already exists in the '{name}' repository and cannot be overwritten "
            "because the repository is immutable."
        )
        self._answer(handler, path, api, 400, _error("TAG_INVALID", message))
        return False

    def _redirect_blob(
        self, handler: BaseHTTPRequestHandler, path: str, api: str | None, name: str, digest: str
    ) -> None:
        """Blob downloads are redirected to a presigned S3 URL on another host
        (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetDownloadUrlForLayer.html: "the
        pre-signed Amazon S3 download URL"; observed: a 307 from the registry API)."""
        assert self.registry is not None
        found = self._session().head(f"{self.registry.url}/v2/{name}/blobs/{digest}", timeout=60)
        if found.status_code != 200:
            self._answer(handler, path, api, 404, _error("BLOB_UNKNOWN", "blob unknown to registry"))
            return
        expires = str(int(time.time()) + 600)
        target = f"/{name}/{digest}"
        signature = hmac.new(self._secret, f"{target}\n{expires}".encode(), hashlib.sha256).hexdigest()
        query = urlencode(
            {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Expires": expires, "X-Amz-Signature": signature}
        )
        location = f"{self.storage_url}{quote(target)}?{query}"
        self._answer(handler, path, api, 307, b"", {"Location": location})

    def _forward(
        self, handler: BaseHTTPRequestHandler, path: str, query: str, api: str | None, body: bytes, kind: str | None
    ) -> None:
        assert self.registry is not None
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP | {"authorization"}}
        # The registry builds absolute Locations from these: they must name the stand-in, not the storage.
        headers["Host"] = self.host
        headers["X-Forwarded-Proto"] = "https"
        url = f"{self.registry.url}{path}" + (f"?{query}" if query else "")
        with self._session().request(
            handler.command, url, data=body, headers=headers, stream=True, allow_redirects=False, timeout=120
        ) as upstream:
            content = upstream.raw.read(decode_content=False) if handler.command != "HEAD" else b""
            status = upstream.status_code
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
        location = out.get("Location", "")
        if location.startswith(self.registry.url):
            out["Location"] = self.url + location[len(self.registry.url) :]
        if kind == "blobs/uploads" and handler.command == "PATCH" and status == 202:
            status = 201  # observed: ECR answers an upload chunk with 201 Created, the spec says 202
        if kind == "manifests" and handler.command == "GET":
            out.pop("Docker-Content-Digest", None)  # observed: ECR's manifest GET carries no digest header
        self._record(handler, path, api, status)
        handler.send_response(status)
        for key, value in out.items():
            handler.send_header(key, value)
        if handler.command == "HEAD":
            handler.send_header("Content-Length", upstream.headers.get("Content-Length", "0"))
        else:
            handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        if content:
            handler.wfile.write(content)

    # -- the blob storage (S3 presigned URLs) ---------------------------------------------------------------

    def _storage(self, handler: BaseHTTPRequestHandler) -> None:
        _read_body(handler)
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query))
        xml = {"Content-Type": "application/xml"}
        if "Authorization" in handler.headers:
            # S3 refuses a presigned URL that also carries an Authorization header (observed; error codes:
            # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html, InvalidArgument).
            message = (
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified"
            )
            body = f"<Error><Code>InvalidArgument</Code><Message>{message}</Message></Error>".encode()
            _reply(handler, 400, xml, body)
            return
        target = unquote(parts.path)
        expires = params.get("X-Amz-Expires", "0")
        expected = hmac.new(self._secret, f"{target}\n{expires}".encode(), hashlib.sha256).hexdigest()
        if handler.command not in ("GET", "HEAD") or not hmac.compare_digest(
            expected, params.get("X-Amz-Signature", "")
        ):
            _reply(handler, 403, xml, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
            return
        if int(expires) < time.time():
            _reply(handler, 403, xml, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
            return
        assert self.registry is not None
        name, _, digest = target.lstrip("/").rpartition("/")
        headers = {"Range": handler.headers["Range"]} if "Range" in handler.headers else {}
        with self._session().request(
            handler.command, f"{self.registry.url}/v2/{name}/blobs/{digest}", headers=headers, stream=True, timeout=120
        ) as upstream:
            handler.send_response(upstream.status_code)
            for key in ("Content-Length", "Content-Range", "Accept-Ranges", "ETag"):
                if key in upstream.headers:
                    handler.send_header(key, upstream.headers[key])
            handler.send_header("Content-Type", "application/octet-stream")
            handler.end_headers()
            if handler.command == "GET":
                for chunk in upstream.raw.stream(64 * 1024, decode_content=False):
                    handler.wfile.write(chunk)
