"""``--debug``: the traceback of a failure and a log of every request on stderr, with secrets removed.

Off by default: a failure is then one sentence. On (``--debug``, ``MIRROR_DEBUG=1``, or ``RUNNER_DEBUG=1``,
which GitHub sets when a run is re-run with debug logging), the ``bot`` and ``urllib3`` loggers write to
stderr through :class:`RedactingFormatter`, which removes credentials from every line whatever logged it:
``Authorization`` values, ``Basic``/``Bearer`` credentials, tokens in JSON, user info and query values in URLs
(signed storage URLs carry their signature there).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import TextIO

from bot.redact import redact as redact_credentials
from bot.settings import Settings

# Query parameters whose values are safe to show (as in error messages); every other value is redacted.
_SAFE_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service", "scope"})

_QUERY_VALUE = re.compile(r"([?&])([^=&\s\"']+)=([^&\s\"']*)")


def redact(text: str) -> str:
    """``text`` without credentials (:func:`bot.redact.redact`) and with URL query values redacted."""
    text = redact_credentials(text)
    return _QUERY_VALUE.sub(
        lambda m: m.group(0) if m.group(2) in _SAFE_QUERY_KEYS else f"{m.group(1)}{m.group(2)}=REDACTED", text
    )


class RedactingFormatter(logging.Formatter):
    """A formatter whose every line, the traceback included, has passed :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def wanted(flag: bool, settings: Settings) -> bool:
    """Debug output is on: the ``--debug`` flag, ``MIRROR_DEBUG`` or GitHub's ``RUNNER_DEBUG``."""
    return flag or settings.debug


def enable(stream: TextIO | None = None) -> logging.Handler:
    """Send the ``bot`` and ``urllib3`` loggers' debug lines, redacted, to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter("debug: %(name)s: %(message)s"))
    for name in ("bot", "urllib3"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    return handler


def disable(handler: logging.Handler) -> None:
    for name in ("bot", "urllib3"):
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def traceback_of(exc: BaseException) -> str:
    """The traceback of ``exc``, redacted like the log."""
    return redact("".join(traceback.format_exception(exc)))
