"""One way to talk to GitHub's REST API: the PyGithub client, the retry policy every call goes through, and how
an answer is put into words.

PyGithub's own retries are off (``retry=None``); :func:`call` retries instead, around whole operations, so a
paginated listing is read again from its first page and a write whose answer was lost is handled by the caller
(the contents API's blob ``sha`` makes a repeated commit fail as stale instead of committing twice; a comment is
looked up by its marker before one is created; an existing pull request or branch is found and reused).

What is temporary, after GitHub's documentation:

- 5xx answers, connection failures and resets, answers that break off, and requests GitHub leaves unanswered
  for :attr:`RetryPolicy.timeout` seconds (GitHub itself ends a request that takes it over 10 s:
  https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api#timeouts).
- Rate limits, 403 or 429 (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api): wait
  ``retry-after`` seconds when given; else, when ``x-ratelimit-remaining`` is 0, until ``x-ratelimit-reset``;
  else, for a secondary rate limit, at least a minute. A wait past the budget fails at once, naming the time.

Every other error answer is final and goes to the caller as :class:`github.GithubException`; anything else
that goes wrong in a call becomes :class:`~bot.errors.GitHubError`, so no traceback reaches the user.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.errors import BotError, GitHubError

if TYPE_CHECKING:
    from github import Github, GithubException

DEFAULT_API_URL = "https://api.github.com"
STATUS_PAGE = "https://www.githubstatus.com"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long GitHub may be unavailable before an operation gives up."""

    budget: float = 180.0  # seconds from an operation's first try after which no new try starts
    first_wait: float = 1.0  # doubled after every failed try (with jitter), up to max_wait
    max_wait: float = 30.0
    timeout: float = 30.0  # seconds a request may stay unanswered, per try
    secondary_wait: float = 60.0  # a secondary rate limit that names no time: "wait for at least one minute"


POLICY = RetryPolicy()


def connect(api_url: str, token: str) -> Github:
    """A PyGithub client for ``api_url`` (``GITHUB_API_URL`` in Actions; GitHub Enterprise works too)."""
    from github import Auth, Github

    try:
        return Github(
            base_url=api_url.rstrip("/"),
            auth=Auth.Token(token),
            retry=None,  # retried by call(), around whole operations
            timeout=max(1, round(POLICY.timeout)),
            seconds_between_requests=0,
            seconds_between_writes=0,
            per_page=100,
        )
    except (AssertionError, ValueError) as exc:
        raise GitHubError(f"the GitHub API URL {api_url!r} is not usable ({exc}); check GITHUB_API_URL") from exc


def message(exc: BaseException) -> str:
    """GitHub's answer in a few words: status, message and the first validation error, or what went wrong."""
    status = getattr(exc, "status", None)
    data = getattr(exc, "data", None)
    if status is not None:
        text = ""
        if isinstance(data, dict):
            text = str(data.get("message") or "").strip()
            details = [
                str(e.get("message")) for e in data.get("errors") or () if isinstance(e, dict) and e.get("message")
            ]
            if details:
                text = f"{text}: {details[0]}" if text else details[0]
        return f"{status} {text or _REASONS.get(status, 'error')}"
    return _network_message(exc)


_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _network_message(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer within {POLICY.timeout:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer broke off"
    if isinstance(exc, requests.ConnectionError):
        return "the connection failed or was reset"
    if isinstance(exc, json.JSONDecodeError):
        return "the answer was not complete JSON"
    return f"{exc.__class__.__name__}: {exc}"


def call(what: str, operation: Callable[[], T]) -> T:
    """``operation()``, tried again while GitHub answers with a temporary error, within the policy's budget.

    ``what`` completes "cannot ..." in the error. A final error answer is raised as it came
    (:class:`github.GithubException`) for the caller to read; when GitHub stays unavailable, or anything else
    fails, the result is a :class:`~bot.errors.GitHubError`.
    """
    policy = POLICY
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return operation()
        except BotError:
            raise  # already said in words (a nested call that gave up, a file too large)
        except Exception as exc:
            wait = _temporary(exc, policy, tries)
            if wait is None:
                if _is_github_answer(exc):
                    raise
                raise GitHubError(f"cannot {what}: {message(exc)}") from exc
            elapsed = time.monotonic() - started
            if elapsed + wait > policy.budget:
                raise GitHubError(_gave_up(what, exc, wait, elapsed, tries)) from exc
        time.sleep(wait)


def ask(what: str, operation: Callable[[], T], hint: str = "") -> T:
    """:func:`call`, with every final error answer turned into a :class:`~bot.errors.GitHubError` too."""
    from github import GithubException

    try:
        return call(what, operation)
    except GithubException as exc:
        raise GitHubError(f"cannot {what}: {message(exc)}{hint}") from exc


def _is_github_answer(exc: BaseException) -> bool:
    from github import GithubException

    return isinstance(exc, GithubException)


def _temporary(exc: BaseException, policy: RetryPolicy, tries: int) -> float | None:
    """Seconds to wait before trying again, or ``None`` when ``exc`` is final."""
    import requests
    from github import GithubException

    jitter = random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not security
    backoff = min(policy.first_wait * 2.0 ** (tries - 1), policy.max_wait) * jitter
    if isinstance(exc, GithubException):
        status = exc.status
        if status is not None and status >= 500:
            return max(backoff, _retry_after(exc.headers) or 0.0)
        if status in (403, 429):
            return _rate_limit_wait(exc, policy, backoff)
        return None
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        return None if "CERTIFICATE_VERIFY_FAILED" in text or "hostname" in text else backoff
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return None
    if isinstance(exc, requests.RequestException | json.JSONDecodeError | ConnectionError):
        return backoff
    return None


_SECONDARY = re.compile(r"secondary rate limit|abuse|wait a few minutes|retry your request again later", re.I)


def _rate_limit_wait(exc: GithubException, policy: RetryPolicy, backoff: float) -> float | None:
    headers = {key.lower(): value for key, value in (exc.headers or {}).items()}
    after = _retry_after(headers)
    if after is not None:
        return max(after, 0.0)
    if headers.get("x-ratelimit-remaining") == "0" and str(headers.get("x-ratelimit-reset", "")).isdigit():
        return max(int(headers["x-ratelimit-reset"]) - time.time() + 1, 0.0)
    if exc.status == 429 or _SECONDARY.search(message(exc)):
        return max(policy.secondary_wait, backoff)
    return None  # a 403 that is no rate limit: a permission, protection or setting


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(str(value))
            except ValueError:
                return None
    return None


def _gave_up(what: str, exc: BaseException, wait: float, elapsed: float, tries: int) -> str:
    headers = {key.lower(): value for key, value in (getattr(exc, "headers", None) or {}).items()}
    if getattr(exc, "status", None) in (403, 429) and wait > POLICY.max_wait:
        until = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S UTC")
        used = headers.get("x-ratelimit-resource", "core")
        return (
            f"cannot {what}: GitHub's API rate limit ({used}) allows the next request at {until} ({message(exc)}); "
            "run the job again after that"
        )
    return (
        f"cannot {what}: GitHub did not answer successfully in {tries} tries over {elapsed:.0f} s (last: "
        f"{message(exc)}); GitHub may be having an outage ({STATUS_PAGE}); run the job again later"
    )
