"""HTTP transport to registries: endpoints, the auth challenge, tokens, retries and structured errors.

One :class:`Transport` holds one pooled ``requests.Session`` for every host, so a run reuses connections.
Requests go to ``host`` names as written in references (``docker.io`` is sent to ``registry-1.docker.io``);
``TransportSettings.endpoints`` can point any host at another base URL (a TLS registry on loopback in tests).

Only hosts in ``allowed_hosts`` are contacted directly. Redirects (blob storage) and token realms chosen by an
allowed registry are followed, but never to a loopback, private or link-local address unless the registry
itself lives there, and never with the registry's ``Authorization`` header.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from bot import __version__
from bot.addresses import hostname, internal_kind, public_address, resolved_internal
from bot.errors import AuthError, Cancelled, NotFound, RegistryError
from bot.redact import redact
from bot.reference import DOCKER_HUB
from bot.registry.auth import Credentials, Scope, TokenCache, env_key, normalize_host, scope_strings
from bot.registry.policy import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_THROTTLE_ATTEMPTS,
    HostSettings,
    RequestPolicy,
    operation,
    retry_delay,
)

_log = logging.getLogger(__name__)
DOCKER_HUB_API = "https://registry-1.docker.io"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Query parameters whose values are safe to show in errors; every other value is redacted (signed storage
# URLs carry signatures, upload URLs carry state).
_SAFE_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service"})
_MAX_REDIRECTS = 5


def redact_url(url: str) -> str:
    """``url`` without user info and with every query value except harmless ones replaced by ``REDACTED``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [(k, v if k in _SAFE_QUERY_KEYS else "REDACTED") for k, v in parse_qsl(parts.query, True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe=":/"), ""))


def _redact_text(text: str) -> str:
    return re.sub(r"\?[^\s'\")]*", "?REDACTED", text)


def origin_of(url: str) -> tuple[str, str]:
    """``(scheme, host:port)``: credentials go only where all three stay the same (an HTTPS -> HTTP redirect
    to the same host and port would send them in clear text)."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1].lower()


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (with or without a port)."""
    name = hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """How to reach registries.

    - ``endpoints``: ``host -> base URL`` overrides, e.g. ``{"example.dkr.ecr...": "https://127.0.0.1:5443"}``.
    - ``verify``: TLS verification for every HTTPS request: ``True``, ``False`` or a CA bundle path.
    - ``insecure_registries``: hosts spoken to over plain HTTP (loopback hosts always are).
    - ``allowed_hosts``: the only registry hosts contacted directly; ``None`` allows any.
    - retries and pacing follow one :class:`~bot.registry.policy.RequestPolicy` per run
      (:mod:`bot.registry.policy`): ``hosts`` gives a host its own :class:`HostSettings`; every other host
      gets ``max_attempts`` tries on 5xx, connection errors, timeouts and broken bodies, ``throttle_attempts``
      on 429, exponential backoff from ``backoff`` seconds with full jitter, capped at ``max_backoff``.
      ``Retry-After`` is honoured up to that cap (also before a request that cannot be replayed fails, so the
      caller's next try waits as asked). Invalid requests (bad URL, header or scheme) are never retried. The
      error of a request that used up its tries is no longer ``temporary``, so callers do not multiply the
      retries.
    - ``read_timeout``: seconds a response may stay silent (before its status line, or between two reads of
      its body) before the try counts as failed; a stalled registry costs at most this per try.
    """

    endpoints: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    insecure_registries: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    throttle_attempts: int = DEFAULT_THROTTLE_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    hosts: Mapping[str, HostSettings] = field(default_factory=dict)
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    pool_size: int = 32
    user_agent: str = f"image-mirror-bot/{__version__}"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str  # "bearer" or "basic"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    def scopes(self) -> frozenset[Scope]:
        """The repository scopes a Bearer challenge asks for (``repository:name:pull,push``)."""
        result: set[Scope] = set()
        for item in self.params.get("scope", "").split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name:
                result.update((name, action) for action in actions.split(",") if action)
        return frozenset(result)


_CHALLENGE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``; ``None`` if neither."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "basic"):
        return None
    params = {}
    for match in _CHALLENGE.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = quoted.replace('\\"', '"') if quoted is not None else bare
    return Challenge(scheme, params)


def registry_error(response: requests.Response, method: str, url: str, what: str | None = None) -> RegistryError:
    """Turn an error response into the right :class:`RegistryError` subclass, with the spec's error code."""
    status = response.status_code
    code, detail = None, ""
    if method != "HEAD":
        try:
            data = response.json()
        except (ValueError, requests.RequestException):
            data = None
        errors = data.get("errors") if isinstance(data, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first.get("code") or "") or None
            detail = str(first.get("message") or "")
    safe_url = redact_url(url)
    # A registry or a proxy may echo the Authorization header in its reason phrase or error body.
    code = redact(code) if code else None
    detail = redact(detail)
    reason = code or redact(response.reason or "") or "error"
    message = f"{method} {safe_url}: {status} {reason}" + (f": {detail}" if detail and detail != reason else "")
    if what:
        message = f"{what}: {message}"
    temporary = status in RETRY_STATUSES
    kind: type[RegistryError] = RegistryError
    if status in (401, 403):
        kind = AuthError
        message += "; check the credentials for this registry and that they may access this repository"
    elif status == 404:
        kind = NotFound
    return kind(message, status=status, method=method, url=safe_url, code=code, temporary=temporary)


# Failures below HTTP that another try may cure: the connection could not be made, was reset, timed out, or
# the body broke off mid-stream (urllib3's protocol errors arrive as ConnectionError or ChunkedEncodingError).
_TEMPORARY_FAILURES: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def connection_error(exc: requests.RequestException, method: str, url: str, what: str | None) -> RegistryError:
    """A failure below HTTP: temporary (retried) only for connection trouble, timeouts and a broken body.

    A failed certificate or hostname check and everything that is a property of the request itself (an invalid
    URL or header, a missing or unsupported scheme, too many redirects) fail at once: no retry fixes them.
    Any other TLS error (an EOF or reset mid-handshake or mid-upload) is connection trouble like a reset.
    """
    prefix = f"{what}: " if what else ""
    safe_url = redact_url(url)
    detail = redact(_redact_text(str(exc).replace(url, safe_url)))[:300]
    if isinstance(exc, requests.exceptions.SSLError) and _is_verification_failure(exc):
        return RegistryError(
            f"{prefix}{method} {safe_url}: TLS verification failed ({detail}); if the "
            "registry uses a private CA, pass its certificate with --ca-bundle",
            method=method,
            url=safe_url,
        )
    if isinstance(exc, _TEMPORARY_FAILURES):
        return RegistryError(
            f"{prefix}{method} {safe_url}: cannot reach the registry: {type(exc).__name__}: {detail}",
            method=method,
            url=safe_url,
            temporary=True,
        )
    return RegistryError(
        f"{prefix}{method} {safe_url}: the request is invalid ({type(exc).__name__}: {detail}); not retried, "
        "check the registry address and endpoint settings",
        method=method,
        url=safe_url,
    )


def _is_verification_failure(exc: BaseException) -> bool:
    """Is an ``ssl.SSLCertVerificationError`` (a certificate or hostname check) behind ``exc``? requests and
    urllib3 wrap it in their own errors: through ``args``, ``reason``, ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        pending.extend((*item.args, getattr(item, "reason", None), item.__cause__, item.__context__))
    return False


_T = TypeVar("_T")


def _same(response: requests.Response) -> requests.Response:
    return response


def gave_up(error: RegistryError, tries: int) -> RegistryError:
    """``error``, a temporary failure, after the last of ``tries`` tries: say so, and make it final so that
    callers do not retry it again (their tries would multiply these). A request that cannot be replayed (a
    streamed upload) was tried once, and its caller starts it over instead."""
    if error.temporary and tries > 1:
        error.message += f" (gave up after {tries} tries)"
        error.args = (error.message,)
        error.temporary = False
    return error


Resolver = Callable[[str, int], str]


class _CheckedConnection(urllib3.connection.HTTPConnection):
    """Connects to the address :attr:`resolve` returns for the host: for a host a registry sent us to, the one
    public address that was checked (see :func:`bot.addresses.public_address`); TLS still verifies the name."""

    resolve: Resolver

    def _new_conn(self) -> socket.socket:
        address = self.resolve(self._dns_host, self.port)
        try:
            return urllib3_connection.create_connection(
                (address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class _CheckedHTTPSConnection(_CheckedConnection, urllib3.connection.HTTPSConnection):
    pass


class _CheckedAdapter(HTTPAdapter):
    """An adapter whose connections go to the addresses ``resolve`` hands out."""

    def __init__(self, resolve: Resolver, **kwargs: Any) -> None:
        self._resolve = resolve
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        resolve = staticmethod(self._resolve)
        plain = type("Conn", (_CheckedConnection,), {"resolve": resolve})
        tls = type("TLSConn", (_CheckedHTTPSConnection,), {"resolve": resolve})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("Pool", (urllib3.connectionpool.HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("TLSPool", (urllib3.connectionpool.HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }


class Transport:
    """Authenticated, retrying HTTP to registries. Thread-safe: one instance serves a whole run."""

    def __init__(
        self,
        settings: TransportSettings | None = None,
        credentials: Credentials | None = None,
        *,
        tokens: TokenCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_response: Callable[[requests.Response], None] | None = None,
    ) -> None:
        self.settings = settings or TransportSettings()
        self.credentials = credentials or Credentials()
        self.tokens = tokens or TokenCache()
        self.on_response = on_response
        self._sleep = sleep
        self._cancel: threading.Event | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        default = HostSettings(
            max_attempts=self.settings.max_attempts,
            throttle_attempts=self.settings.throttle_attempts,
            backoff=self.settings.backoff,
            max_backoff=self.settings.max_backoff,
        )
        self.policy = RequestPolicy(default, self.settings.hosts)
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._challenges: dict[str, Challenge | None] = {}
        self.counts: Counter[str] = Counter()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = self.settings.user_agent
        self.session.trust_env = False  # no proxies or netrc credentials from the environment by surprise
        self._guarded: set[str] = set()  # hosts reached only because a registry named them
        adapter = _CheckedAdapter(
            self._connect_address,
            pool_connections=16,
            pool_maxsize=max(self.settings.pool_size, 4),
            max_retries=0,
            pool_block=False,
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def close(self) -> None:
        self.session.close()
        self.credentials.close()  # logins minted at run time may hold connections of their own (boto3)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints -----------------------------------------------------------------------------------------

    def base_url(self, host: str) -> str:
        """``scheme://authority`` for a registry host."""
        host = normalize_host(host)
        for key, url in self.settings.endpoints.items():
            if normalize_host(key) == host:
                return url.rstrip("/")
        if host == DOCKER_HUB:
            return DOCKER_HUB_API
        insecure = {normalize_host(h) for h in self.settings.insecure_registries}
        scheme = "http" if host in insecure or is_loopback_host(host) else "https"
        return f"{scheme}://{host}"

    def check_allowed(self, host: str) -> None:
        allowed = self.settings.allowed_hosts
        if allowed is not None and normalize_host(host) not in {normalize_host(h) for h in allowed}:
            raise RegistryError(
                f"registry {host} is not on the allow-list of this run; add a rule for it in mirror/config.yml"
            )

    def _follow_allowed(self, registry_host: str, url: str) -> None:
        """May a redirect or token realm chosen by ``registry_host`` send us to ``url``?"""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{registry_host} sent us to {redact_url(url)}, which is not an HTTP(S) URL")
        target = parts.netloc.rsplit("@", 1)[-1]
        allowed = self.settings.allowed_hosts
        if allowed is not None and normalize_host(target) in {normalize_host(h) for h in allowed}:
            return
        base_host = urlsplit(self.base_url(registry_host)).netloc
        if internal_kind(base_host) is not None:
            return  # a registry that lives inside may send us inside (tests, on-premises mirrors)
        kind = resolved_internal(target)  # early, for a clear error; the connection checks again
        if kind is not None:
            raise RegistryError(
                f"{registry_host} sent us to {redact_url(url)}, {kind}; refused (only registries named by the "
                "mirror rules may live on internal addresses)"
            )
        # A name is judged again when the connection is made, by the address it is made to: a name that
        # answered this check with a public address cannot answer the connection with an internal one.
        with self._lock:
            self._guarded.add(hostname(target))

    def _connect_address(self, name: str, port: int) -> str:
        """Where a connection to ``name`` goes: the name itself, or for a host a registry sent us to, the one
        resolved address that was checked to be public."""
        with self._lock:
            guarded = name.lower().strip("[]") in self._guarded
        if not guarded:
            return name
        address, kind = public_address(name, port)
        if address is None:
            raise RegistryError(
                f"{name} resolves to {kind}; refused (only registries named by the mirror rules may live on "
                "internal addresses)"
            )
        return address

    # -- requests ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        scopes: Iterable[Scope] = (),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        stream: bool = False,
        allow: Collection[int] = (),
        replayable: bool = True,
        what: str | None = None,
    ) -> requests.Response:
        """Send one request to ``host`` (``path`` is ``/v2/...`` or an absolute URL the registry gave us).

        Authenticates as the host's challenge asks, retries temporary failures (only when ``replayable``: a
        streamed body cannot be sent twice), follows redirects without the ``Authorization`` header, and
        raises a :class:`RegistryError` for any status outside 2xx and ``allow``. With ``stream`` the caller
        must close the response.
        """
        self.check_allowed(host)
        needed = frozenset(scopes)
        base = self.base_url(host)
        url = path if path.startswith(("http://", "https://")) else base + path
        if url != base + path:
            self._follow_allowed(host, url)
        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(params, safe=":/")
        # Credentials go only to the registry's own origin, never to a URL on another host it named.
        own_origin = origin_of(url) == origin_of(base)
        challenge = self._challenge(host) if own_origin else None
        policy = self.policy.host(host)
        op = operation(method, path)
        tries = policy.tries()
        refreshed = renewed = False
        while True:
            auth = self._authorization(host, challenge, needed)
            send_headers = dict(headers or {})
            if auth:
                send_headers["Authorization"] = auth
            sent_at = policy.pace(op, self._sleep)
            try:
                response = self._send(host, method, url, send_headers, data, stream=stream)
            except requests.RequestException as exc:
                policy.record(op, None, sent_at=sent_at)
                error = connection_error(exc, method, url, what)
                delay = tries.retry() if replayable and error.temporary else None
                if delay is not None:
                    self._sleep(delay)
                    continue
                raise (gave_up(error, tries.count) if replayable else error) from exc
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            policy.record(op, status, retry_after, sent_at)
            if status == 401 and not refreshed and replayable and own_origin:
                new = parse_challenge(response.headers.get("WWW-Authenticate"))
                if new is not None:
                    response.close()
                    refreshed = True
                    if auth and auth.startswith("Bearer ") and challenge is not None:
                        self.tokens.forget(challenge.realm, challenge.service, auth.removeprefix("Bearer "))
                    challenge = _without_scope(new)
                    with self._lock:
                        self._challenges[normalize_host(host)] = challenge
                    needed = needed | new.scopes()
                    continue
            if status == 403 and not renewed and own_origin and auth is not None and auth.startswith("Basic "):
                # ECR answers an expired token with 403: one fresh login, then the request once more.
                denied = registry_error(response, method, url, what)
                response.close()
                if not self.credentials.renew(host, auth, denied):
                    raise denied
                renewed = True
                if replayable:
                    continue
                denied.temporary = True  # the caller starts the streamed request over, with the new login
                raise denied
            if status in RETRY_STATUSES and replayable:
                delay = tries.retry(throttled=status == 429, retry_after=retry_after)
                if delay is not None:
                    response.close()
                    self._sleep(delay)
                    continue
            if 200 <= status < 300 or status in allow:
                return response
            try:
                error = registry_error(response, method, url, what)
                if not replayable and error.temporary and retry_after:
                    # The caller starts this request over; the wait the registry asked for happens here.
                    self._sleep(retry_delay(1, policy.settings, retry_after, self._rng))
                raise gave_up(error, tries.count) if replayable else error
            finally:
                response.close()

    def cancel_on(self, event: threading.Event) -> None:
        """Once ``event`` is set, every backoff wait (a retry's, :meth:`pause`) ends at once and raises
        :class:`Cancelled` instead of trying again, so a cancelled run is not held up by a retry cycle."""
        if self._cancel is event:
            return
        self._cancel = event
        plain = self._sleep

        def sleep(seconds: float) -> None:
            if plain is time.sleep:
                event.wait(seconds)
            elif not event.is_set():
                plain(seconds)
            if event.is_set():
                raise Cancelled("not retried: the run was cancelled")

        self._sleep = sleep

    def pause(self, attempt: int, host: str | None = None) -> None:
        """Wait before try ``attempt + 1`` of an operation the caller retries itself: the backoff with jitter of
        ``host``'s policy (the default policy without a host)."""
        settings = self.policy.settings(host) if host is not None else self.policy.default
        self._sleep(retry_delay(attempt, settings, None, self._rng))

    def wait(self, seconds: float) -> None:
        """Wait as a retry does: a cancel (:meth:`cancel_on`) ends the wait and raises :class:`Cancelled`."""
        self._sleep(seconds)

    def repeat(self, host: str, action: Callable[[], _T]) -> _T:
        """``action()``, tried again under ``host``'s policy while it raises a temporary :class:`RegistryError`
        (a body that broke off or was damaged on the way); the last error says how many tries were made."""
        tries = self.policy.host(host).tries()
        while True:
            try:
                return action()
            except RegistryError as error:
                delay = tries.retry() if error.temporary else None
                if delay is None:
                    raise gave_up(error, tries.count) from None
            self._sleep(delay)

    def _send(
        self, host: str, method: str, url: str, headers: dict[str, str], data: Any = None, *, stream: bool = False
    ) -> requests.Response:
        """One exchange, following redirects by hand: the allow-list is checked and ``Authorization`` is kept
        only while the redirect stays on the registry's own origin."""
        origin = origin_of(url)
        for _ in range(_MAX_REDIRECTS + 1):
            response = self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                stream=stream,
                allow_redirects=False,
                verify=self.settings.verify,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
            with self._lock:
                self.counts[method] += 1
            if _log.isEnabledFor(logging.DEBUG):
                auth = next((v.split(" ", 1)[0] for k, v in headers.items() if k.lower() == "authorization"), "none")
                _log.debug("%s %s -> %s (auth: %s)", method, redact_url(url), response.status_code, auth)
            if self.on_response is not None:
                self.on_response(response)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            location = urljoin(url, response.headers["Location"])
            response.close()
            self._follow_allowed(host, location)
            if origin_of(location) != origin:  # another scheme (HTTPS -> HTTP), host or port
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status_code == 303:
                method, data = "GET", None
            url = location
        raise RegistryError(f"{method} {redact_url(url)}: more than {_MAX_REDIRECTS} redirects", method=method)

    # -- authentication ------------------------------------------------------------------------------------

    def _challenge(self, host: str) -> Challenge | None:
        """The host's auth challenge, learned once per run from ``GET /v2/``."""
        key = normalize_host(host)
        with self._lock:
            if key in self._challenges:
                return self._challenges[key]
            host_lock = self._host_locks.setdefault(key, threading.Lock())
        with host_lock:
            with self._lock:
                if key in self._challenges:
                    return self._challenges[key]
            challenge = self.ping(host)
            with self._lock:
                self._challenges[key] = challenge
            return challenge

    def ping(self, host: str) -> Challenge | None:
        """``GET /v2/``: ``None`` when the registry needs no auth, else its challenge."""
        self.check_allowed(host)
        url = self.base_url(host) + "/v2/"
        response = self._get_retrying(host, url, {}, url, f"{host} does not answer", read=_same)
        if response.status_code == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            if challenge is None:
                raise AuthError(f"GET {url}: 401 without a usable WWW-Authenticate challenge", status=401, url=url)
            return _without_scope(challenge)
        if 200 <= response.status_code < 300:
            return None
        error = registry_error(response, "GET", url, f"{host} does not answer as a registry")
        raise gave_up(error, self.policy.settings(host).max_attempts)

    def _get_retrying(
        self,
        host: str,
        url: str,
        headers: dict[str, str],
        shown_url: str,
        who: str,
        *,
        read: Callable[[requests.Response], _T],
    ) -> _T:
        """``GET`` with the host's retries for temporary failures; ``read`` of the last answer, whatever
        its status. A temporary :class:`RegistryError` from ``read`` (a damaged body) is a failed try too."""
        policy = self.policy.host(host)
        op = operation("GET", url)
        tries = policy.tries()
        while True:
            sent_at = policy.pace(op, self._sleep)
            try:
                response = self._send(host, "GET", url, headers)
            except requests.RequestException as exc:
                policy.record(op, None, sent_at=sent_at)
                error = connection_error(exc, "GET", shown_url, who)
                delay = tries.retry() if error.temporary else None
                if delay is None:
                    raise gave_up(error, tries.count) from exc
                self._sleep(delay)
                continue
            retry_after = response.headers.get("Retry-After")
            policy.record(op, response.status_code, retry_after, sent_at)
            if response.status_code in RETRY_STATUSES:
                delay = tries.retry(throttled=response.status_code == 429, retry_after=retry_after)
                if delay is not None:
                    response.close()
                    self._sleep(delay)
                    continue
            try:
                return read(response)
            except RegistryError as error:
                delay = tries.retry() if error.temporary else None
                if delay is None:
                    raise gave_up(error, tries.count) from None
            self._sleep(delay)

    def _authorization(self, host: str, challenge: Challenge | None, scopes: frozenset[Scope]) -> str | None:
        if challenge is None:
            return None
        login = self.credentials.get(host)
        if challenge.scheme == "basic":
            if login is None:
                raise AuthError(
                    f"{host} needs a username and password; set {_env_hint(host)} or add it to a docker config.json"
                )
            return login.basic_header()
        token = self.tokens.get(challenge.realm, challenge.service, scopes)
        if token is None:
            # One fetch per scope set: parallel blob workers that need the same token wait for the first.
            with self._lock:
                scope_lock = self._host_locks.setdefault(f"token {challenge.realm} {sorted(scopes)}", threading.Lock())
            with scope_lock:
                token = self.tokens.get(challenge.realm, challenge.service, scopes)
                if token is None:
                    token = self._fetch_token(host, challenge, scopes)
        return f"Bearer {token}"

    def _fetch_token(self, host: str, challenge: Challenge, scopes: frozenset[Scope]) -> str:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"{host} asked for a Bearer token but named no realm to get it from")
        self._follow_allowed(host, realm)
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        query.extend(("scope", scope) for scope in scope_strings(scopes))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query, safe=":/,")
        login = self.credentials.get(host)
        headers = {"Authorization": login.basic_header()} if login else {}

        def read(response: requests.Response) -> tuple[str, float]:
            if response.status_code != 200:
                who = f"the credentials for {host} were refused" if login else f"{host} refused anonymous access"
                raise AuthError(
                    f"token request to {redact_url(realm)} failed with {response.status_code}: {who}; "
                    f"set {_env_hint(host)} or add the registry to a docker config.json",
                    status=response.status_code,
                    method="GET",
                    url=redact_url(realm),
                )
            # A body damaged on the way (not JSON, or the token's key garbled) is worth another read.
            try:
                data = response.json()
            except ValueError:
                raise AuthError(f"the token server of {host} answered without JSON", temporary=True) from None
            token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise AuthError(f"the token server of {host} answered without a token", temporary=True)
            expires_in = data.get("expires_in", 60)
            lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
            return token, lifetime

        token, lifetime = self._get_retrying(host, url, headers, realm, f"the token server of {host}", read=read)
        self.tokens.put(realm, challenge.service, scopes, token, lifetime)
        return token


def _without_scope(challenge: Challenge) -> Challenge:
    """The host-wide part of a challenge (the scope belongs to one request)."""
    return Challenge(challenge.scheme, {k: v for k, v in challenge.params.items() if k != "scope"})


def _env_hint(host: str) -> str:
    stem = env_key(host)
    return f"{stem}_USERNAME and {stem}_PASSWORD"
