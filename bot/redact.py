"""Credentials out of every text the bot shows: the log, annotations, the PR comment, the job summary, outputs.

A registry, or a proxy in between, may echo the request's ``Authorization`` header in a reason phrase or an
error body. GitHub masks a secret it was given, not its base64 form nor a token a token server minted, so the
bot removes them itself: every ``Basic``/``Bearer`` credential, ECR's ``AWS:<token>``, JSON web tokens,
``password=``/``"token":`` values, and every secret it has seen this run (passwords, ``user:password`` in base64,
minted tokens), which are also announced to the :func:`announce_to` listener (``::add-mask::`` in Actions).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable

REDACTED = "REDACTED"
_MIN_SECRET = 4  # shorter strings would blank out ordinary words

# A credential looks like one: a digit, a base64 or token68 sign, or both cases, and is no ``name="`` of a
# challenge (so "Bearer realm=\"...\"" and "basic auth required" stay readable).
_CREDENTIAL_SHAPE = (
    r"(?![A-Za-z]+=\")(?=[A-Za-z]*[0-9+/._~-]|[a-z]*[A-Z]+[a-z]|[A-Z]*[a-z]+[A-Z])[A-Za-z0-9._~+/-]{4,}=*"
    r"(?![A-Za-z0-9._~+/=-])"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # An Authorization header's value: the scheme, then a token68 (RFC 7235).
    (re.compile(r"\b((?i:basic|bearer))(\s+|%20|\+)" + _CREDENTIAL_SHAPE), r"\1\2" + REDACTED),
    (re.compile(r"\b(AWS:)[A-Za-z0-9._~+/=-]{2,}"), r"\1" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"), REDACTED),  # a JWT
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|token|access_token|refresh_token|authorization)\b[\"']?"
            r"\s*[:=]\s*[\"']?)(?!REDACTED|(?i:basic|bearer)\s|AWS:)[^\s\"',&;}]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@"), r"\1"),  # user info in a URL
)


class _Secrets:
    """The secrets of this run (thread-safe), one pattern that finds them, and who hears of new ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        self.listener: Callable[[str], None] | None = None

    def add(self, values: tuple[str, ...], *, announce: bool = True) -> None:
        new = []
        with self.lock:
            for value in values:
                if len(value) >= _MIN_SECRET and value not in self.values:
                    self.values.add(value)
                    new.append(value)
            if new:
                ordered = sorted(self.values, key=len, reverse=True)  # longest first: a secret inside another
                # Whole words only: a password "pass" must not blank out "passed".
                alternatives = "|".join(re.escape(secret) for secret in ordered)
                self.pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
            listener = self.listener if announce else None
        if listener is not None:
            for value in new:
                listener(value)


_SECRETS = _Secrets()


def remember(*values: str, announce: bool = True) -> None:
    """Secrets of this run: never shown again, and announced to the listener once each (``announce=False``:
    the caller has masked them itself)."""
    _SECRETS.add(values, announce=announce)


def remember_login(username: str, password: str) -> None:
    """A password and the form it travels in: ``base64(user:password)`` of a Basic header, with and without
    its padding."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    remember(password, encoded, encoded.rstrip("="))


def announce_to(listener: Callable[[str], None] | None) -> None:
    """Call ``listener`` with every secret known now and remembered from now on (``None``: nobody)."""
    with _SECRETS.lock:
        _SECRETS.listener = listener
        known = sorted(_SECRETS.values)
    if listener is not None:
        for value in known:
            listener(value)


def forget_all() -> None:
    """Drop every remembered secret and the listener (tests run many bots in one process)."""
    with _SECRETS.lock:
        _SECRETS.values.clear()
        _SECRETS.pattern = None
        _SECRETS.listener = None


def redact(text: str) -> str:
    """``text`` without credentials: known secrets and anything shaped like one become ``REDACTED``."""
    if not text:
        return text
    with _SECRETS.lock:
        pattern = _SECRETS.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape, replacement in _PATTERNS:
        text = shape.sub(replacement, text)
    return text
