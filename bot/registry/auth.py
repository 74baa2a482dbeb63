"""Credentials for registries and the cache of Bearer tokens minted from them.

Credentials come from three places, later ones winning: a docker ``config.json`` (``auths``), environment
variables ``MIRROR_AUTH_<HOST>_USERNAME`` / ``_PASSWORD`` (``<HOST>`` upper-cased, every character other
than a letter or digit replaced by ``_``: ``MIRROR_AUTH_DOCKER_IO_USERNAME``), and :meth:`Credentials.add`
at run time (the ECR adapter adds ``AWS`` and a fresh token). Secrets never appear in ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import ConfigError, RegistryError
from bot.redact import remember, remember_login
from bot.reference import DOCKER_HUB, fold_host
from bot.settings import REGISTRY_AUTH_PREFIX

ENV_PREFIX = REGISTRY_AUTH_PREFIX
# Docker's own tools store Docker Hub credentials under this key.
_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io")


def normalize_host(host: str) -> str:
    """Lower-case, drop a scheme and path, fold Docker Hub's aliases into ``docker.io``."""
    host = host.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host).split("/", 1)[0]
    return fold_host(host)


def env_key(host: str) -> str:
    """The environment-variable stem for ``host``: ``MIRROR_AUTH_127_0_0_1_5000``."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", normalize_host(host).upper())


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        remember_login(self.username, self.password)  # never shown, masked in Actions

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class Credentials:
    """Thread-safe store of ``host -> username/password``."""

    def __init__(self, logins: Mapping[str, Login] | None = None) -> None:
        self._lock = threading.Lock()
        self._logins: dict[str, Login] = {normalize_host(h): login for h, login in (logins or {}).items()}

    def __repr__(self) -> str:
        return f"Credentials(hosts={sorted(self._logins)})"

    def add(self, host: str, username: str, password: str) -> None:
        """Add or replace the login for ``host`` (``docker.io`` and its aliases are one host)."""
        with self._lock:
            self._logins[normalize_host(host)] = Login(username, password)

    def get(self, host: str) -> Login | None:
        with self._lock:
            return self._logins.get(normalize_host(host))

    def hosts(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._logins)

    def close(self) -> None:
        """Release what minting logins holds (nothing for fixed logins)."""

    def renew(self, host: str, refused: str | None, denied: RegistryError) -> bool:
        """After ``host`` answered 403 (``denied``) to the ``refused`` Authorization header: renew the login if
        the answer says it expired; True when a retry with :meth:`get` may succeed. Fixed logins never expire;
        registries that mint short-lived passwords (ECR) override this."""
        return False

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        *,
        docker_config: Path | None = None,
        hosts: Iterable[str] = (),
    ) -> Credentials:
        """Read ``docker_config`` (default: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json`` when
        it exists), then ``MIRROR_AUTH_<HOST>_USERNAME``/``_PASSWORD`` for every host seen in the
        environment or listed in ``hosts``."""
        store = cls()
        path = docker_config
        if path is None:
            base = environ.get("DOCKER_CONFIG")
            path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
            if not path.is_file():
                path = None
        if path is not None:
            store.load_docker_config(path)
        store.load_environment(environ, hosts)
        return store

    def load_docker_config(self, path: Path) -> None:
        """Add the ``auths`` of a docker ``config.json`` (``auth`` as base64 ``user:pass``, or
        ``username``/``password``; ``identitytoken`` entries are skipped: they need an OAuth flow)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the docker config: {exc}") from exc
        auths = data.get("auths") if isinstance(data, dict) else None
        if auths is None:
            return
        if not isinstance(auths, dict):
            raise ConfigError(f"{path}: 'auths' must be a mapping of registry to credentials")
        for key, entry in auths.items():
            login = _docker_login(entry)
            if login is None:
                continue
            host = DOCKER_HUB if key in _DOCKER_HUB_KEYS else normalize_host(key)
            self.add(host, login.username, login.password)

    def load_environment(self, environ: Mapping[str, str], hosts: Iterable[str] = ()) -> None:
        for host in hosts:
            stem = env_key(host)
            username, password = environ.get(stem + "_USERNAME"), environ.get(stem + "_PASSWORD")
            if username and password:
                self.add(host, username, password)


def _docker_login(entry: object) -> Login | None:
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return Login(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, secret = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if sep and user and secret:
            return Login(user, secret)
    return None


Scope = tuple[str, str]  # (repository, action), e.g. ("library/nginx", "pull")


def scope_strings(scopes: Iterable[Scope]) -> list[str]:
    """``repository:NAME:a,b`` strings for a token request, one per repository, stable order."""
    by_repo: dict[str, set[str]] = {}
    for repository, action in scopes:
        by_repo.setdefault(repository, set()).add(action)
    order = ("pull", "push", "delete", "*")
    return [
        f"repository:{repo}:{','.join(sorted(actions, key=lambda a: order.index(a) if a in order else 9))}"
        for repo, actions in sorted(by_repo.items())
    ]


@dataclass(slots=True)
class _Token:
    scopes: frozenset[Scope]
    value: str = field(repr=False)
    expires: float


class TokenCache:
    """Bearer tokens per ``(realm, service)``; a token covering more scopes than asked for is reused."""

    # Renew this many seconds before expiry so a token never lapses mid-request.
    MARGIN = 10.0

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], list[_Token]] = {}

    def _now(self) -> float:
        clock = self._clock
        assert callable(clock)
        value = clock()
        assert isinstance(value, float | int)
        return float(value)

    def get(self, realm: str, service: str, scopes: frozenset[Scope]) -> str | None:
        now = self._now()
        with self._lock:
            tokens = self._tokens.get((realm, service), [])
            tokens[:] = [t for t in tokens if t.expires > now]
            for token in tokens:
                if scopes <= token.scopes:
                    return token.value
        return None

    def put(self, realm: str, service: str, scopes: frozenset[Scope], value: str, expires_in: float) -> None:
        expires = self._now() + max(expires_in - self.MARGIN, 1.0)
        remember(value)  # a minted token: GitHub knows nothing of it, so the bot hides it
        with self._lock:
            self._tokens.setdefault((realm, service), []).append(_Token(scopes, value, expires))

    def forget(self, realm: str, service: str, value: str) -> None:
        with self._lock:
            tokens = self._tokens.get((realm, service), [])
            tokens[:] = [t for t in tokens if t.value != value]
