"""The one error hierarchy of the bot.

Every error carries a message written for the person who has to act on it: what failed, the likely cause,
and how to fix it. ``bot.cli`` is the only place that catches :class:`BotError` and turns it into an exit
status; everything else raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit


class BotError(Exception):
    """Base of every error the bot reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BotError):
    """The configuration file or an environment setting is invalid."""

    exit_code = 2


class UsageError(BotError):
    """A command was called with arguments that do not fit together."""

    exit_code = 2


class InvalidReference(BotError):
    """An image reference does not follow the reference grammar.

    ``column`` is 1-based and points into ``text`` (the reference as written).
    """

    def __init__(self, text: str, column: int, reason: str) -> None:
        self.text = text
        self.column = column
        self.reason = reason
        super().__init__(f"invalid image reference {text!r} at column {column}: {reason}")


class Refusal(Enum):
    """Why the path rules refuse a reference."""

    NOT_ALLOWED = "not allowed"  # no rule covers its registry or its path
    DENIED = "denied"  # on the config's deny list
    NOT_IN_MIRROR = "not in the mirror"  # a mirror path no rule produces (reversing a target)
    TARGET_NAME = "the target cannot hold its name"  # a naming rule of the target registry (ECR's pattern)


class MappingError(BotError):
    """A valid reference that the path rules do not allow to be mirrored (unknown or denied registry).

    ``reference`` is the reference as written, ``reason`` says why without repeating it, and ``refusal`` is the
    kind of refusal; the message is ``"reference: reason"``.
    """

    def __init__(self, reason: str, *, reference: str = "", refusal: Refusal = Refusal.NOT_ALLOWED) -> None:
        self.reference = reference
        self.reason = reason
        self.refusal = refusal
        super().__init__(f"{reference}: {reason}" if reference else reason)


class TargetNameError(MappingError):
    """A reference whose mirror path the target registry cannot hold (ECR's repository name pattern, a length).

    ``rule`` names the target's rule; ``part`` is ``"repository"`` or ``"tag"``, the part of the reference at
    fault, so a list problem can point its column there; ``detail`` says what is wrong and ``fix`` how to fix
    it (``reason`` holds both).
    """

    def __init__(self, detail: str, *, reference: str, rule: str, part: str, fix: str) -> None:
        super().__init__(f"{detail}; {fix}", reference=reference, refusal=Refusal.TARGET_NAME)
        self.detail = detail
        self.rule = rule
        self.part = part
        self.fix = fix


class ListFileError(BotError):
    """A list file could not be read at all (missing, not UTF-8, too large)."""


class RegistryError(BotError):
    """A registry answered with an error, or could not be reached.

    ``url`` is already redacted (no credentials, no token query parameters).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        code: str | None = None,
        temporary: bool = False,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.code = code
        self.temporary = temporary
        super().__init__(message)


class AuthError(RegistryError):
    """Credentials are missing or were refused."""


class NotFound(RegistryError):
    """The manifest, tag, blob or repository does not exist."""


class CopyError(BotError):
    """Copying one image failed; the message says which image and why."""


class Deferred(CopyError):
    """An image left for the next run because this run's cap (``daily.max_bytes_per_run``) is reached."""


class GitHubError(BotError):
    """A GitHub API call failed in a way the user must act on."""


class AwsError(BotError):
    """An AWS call failed; the message names the IAM action when a permission is missing."""


class RewriteError(BotError):
    """A manifest could not be read or rewritten; the message names the file, line and column."""


class WebhookError(BotError):
    """The admission webhook cannot start: certificates, list or config files are missing or invalid."""


class Cancelled(BotError):
    """The run was cancelled (SIGINT or SIGTERM) before this work started or finished; nothing of it is recorded."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one piece of work failed, kept as data so that reports print it and target kinds explain it from
    fields (a refused request's status, method and path), never by reading the message back.

    ``kind`` is one of the ``FAILURE_*`` names below. ``registry`` is the ``host[:port]`` a refused request
    went to and ``reference`` its URL path (no query string), both from the redacted URL.
    """

    kind: str
    message: str
    status: int | None = None
    method: str | None = None
    registry: str | None = None
    reference: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        message = str(exc)
        if isinstance(exc, Cancelled):
            return cls(FAILURE_CANCELLED, message)
        if isinstance(exc, RegistryError):
            parts = urlsplit(exc.url) if exc.url else None
            if isinstance(exc, NotFound):
                kind = FAILURE_NOT_FOUND
            elif exc.status == 401:
                kind = FAILURE_UNAUTHORIZED
            elif exc.status == 403:
                kind = FAILURE_DENIED
            elif exc.status is None:
                kind = FAILURE_CONNECTION
            else:
                kind = FAILURE_REGISTRY
            return cls(
                kind,
                message,
                exc.status,
                exc.method,
                parts.netloc if parts else None,
                parts.path if parts else None,
                exc.code,
            )
        if isinstance(exc, AwsError):
            return cls(FAILURE_AWS, message)
        return cls(FAILURE_COPY, message)


FAILURE_CANCELLED = "cancelled"
FAILURE_NOT_FOUND = "not-found"
FAILURE_UNAUTHORIZED = "unauthorized"  # 401: the credentials or token were refused
FAILURE_DENIED = "denied"  # 403: refused for this identity (or, on ECR, an expired token)
FAILURE_CONNECTION = "connection"
FAILURE_REGISTRY = "registry"  # any other error status
FAILURE_AWS = "aws"  # an AWS API call (the message names the IAM action when a permission is missing)
FAILURE_COPY = "copy"  # the copy itself: a digest mismatch, a missing platform, a refused tag
