"""One request policy per registry host, shared by every thread of a run: how requests are paced and retried.

- **Retries.** A 429, a 5xx, a reset, a timeout or a broken body is tried again after exponential backoff with
  full jitter; ``Retry-After`` is honoured up to ``max_backoff``. A 429 has its own, longer budget
  (``throttle_attempts``): a quota says "later", not "broken". :class:`Tries` counts the tries of one request
  (or of one operation a caller repeats, such as a blob transfer) against these budgets.
- **Pacing.** Each operation of a host (a manifest read, an upload start, ...: :func:`operation`) has its own
  rate, as registries such as ECR have a quota per API. It is unlimited, or capped at a configured ceiling,
  until the registry answers 429 without ``Retry-After``; then an AIMD controller cuts it to 70 % (of the
  limit, or of the fastest recent pace when there was none yet), at most once per round trip (a 429 to a
  request sent before the last cut says nothing new), and while requests succeed adds back 10 % a second (at
  least one request per second each second).
  A sustained quota slows the run to about the quota instead of failing images.
- **Streams.** :meth:`HostPolicy.slot` bounds the transfers in flight to a host (``streams``, or unbounded),
  halving the bound on a 429 or 5xx and adding one back after as many successes as the bound.

Usage, for any code that talks to a host (the transport does it for every request)::

    host = policy.host("registry.example")
    tries = host.tries()
    while True:
        host.pace(op)                      # waits for the operation's rate, if one applies
        status = send()                    # None when no answer came
        host.record(op, status)
        delay = tries.retry(throttled=status == 429, retry_after=...) if failed else None
        ...

Thread-safe; the clock and sleep are injectable for tests.
"""

from __future__ import annotations

import datetime
import email.utils
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from bot.config import REQUEST_OPERATIONS
from bot.registry.auth import normalize_host

# Operations a registry request is one of (bot.config.REQUEST_OPERATIONS); ECR counts each against its own
# API quota: https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html
#   manifest-read    GET/HEAD manifests        BatchGetImage
#   manifest-write   PUT manifests             PutImage
#   blob-check       HEAD blobs                BatchCheckLayerAvailability
#   blob-read        GET blobs                 GetDownloadUrlForLayer
#   upload-start     POST blobs/uploads/       InitiateLayerUpload (mounts too)
#   upload-part      PATCH an upload           UploadLayerPart
#   upload-complete  PUT an upload             CompleteLayerUpload
#   tag-list         GET tags/list             ListImages
#   other            /v2/, deletes, the rest
OPERATIONS = REQUEST_OPERATIONS

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_THROTTLE_ATTEMPTS = 12
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0
# The lowest pace the controller falls to: one request every two seconds per operation.
MIN_RATE = 0.5
# On 429 the rate falls to this share of what was sent (multiplicative decrease, as TCP CUBIC's beta).
_DECREASE = 0.7
# How many recent sends measure a burst, and the highest rate a burst is taken for.
_BURST_SENDS = 4
_FASTEST = 1000.0


def operation(method: str, path: str) -> str:
    """The operation of a request to ``path`` (``/v2/...`` or an absolute URL the registry gave)."""
    path = urlsplit(path).path if "://" in path else path.partition("?")[0]
    if "/blobs/uploads/" in path:
        last = path.rsplit("/blobs/uploads/", 1)[1]
        if method == "POST" and not last:
            return "upload-start"
        return {"PATCH": "upload-part", "PUT": "upload-complete"}.get(method, "other")
    if "/manifests/" in path:
        if method in ("GET", "HEAD"):
            return "manifest-read"
        return "manifest-write" if method == "PUT" else "other"
    if "/blobs/" in path:
        return {"HEAD": "blob-check", "GET": "blob-read"}.get(method, "other")
    if path.endswith("/tags/list") and method == "GET":
        return "tag-list"
    return "other"


class _Backoff(Protocol):
    @property
    def backoff(self) -> float: ...

    @property
    def max_backoff(self) -> float: ...


def retry_delay(attempt: int, settings: _Backoff, retry_after: str | None, rng: random.Random) -> float:
    """Seconds to wait before try ``attempt + 1``: ``Retry-After`` when given, else capped full jitter."""
    if retry_after:
        seconds: float | None = None
        if retry_after.strip().isdigit():
            seconds = float(retry_after.strip())
        else:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None  # not a date either: the usual backoff applies
            if when is not None:
                if when.tzinfo is None:  # "-0000" means UTC, not local time
                    when = when.replace(tzinfo=datetime.UTC)
                seconds = when.timestamp() - time.time()
        if seconds is not None:
            return min(max(seconds, 0.0), settings.max_backoff)
    ceiling = min(settings.max_backoff, settings.backoff * (2 ** (attempt - 1)))
    return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class HostSettings:
    """How requests to one registry host are paced and retried.

    - ``max_attempts``: tries of a request on a 5xx, a reset, a timeout or a broken body.
    - ``throttle_attempts``: tries of a request on 429 (the registry's quota), counted apart.
    - ``backoff``, ``max_backoff``: the first backoff ceiling and the cap, in seconds.
    - ``rates``: requests per second at most, per operation (:data:`OPERATIONS`); none by default.
    - ``adaptive``: slow an operation down on 429 and speed it up again while requests succeed.
    - ``streams``: transfers in flight to the host at most (:meth:`HostPolicy.slot`); None: unbounded.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    throttle_attempts: int = DEFAULT_THROTTLE_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    rates: Mapping[str, float] = field(default_factory=dict)
    adaptive: bool = True
    streams: int | None = None


class Tries:
    """The tries of one request, or of one operation a caller repeats, against a host's budgets."""

    def __init__(self, settings: HostSettings, rng: random.Random) -> None:
        self.settings = settings
        self._rng = rng
        self.failures = 0  # failed tries other than throttling
        self.throttles = 0  # tries answered 429

    @property
    def count(self) -> int:
        """Tries that failed so far."""
        return self.failures + self.throttles

    def retry(self, *, throttled: bool = False, retry_after: str | None = None) -> float | None:
        """Count a failed try; the seconds to wait before the next, or None when the budget is used up."""
        if throttled:
            self.throttles += 1
            if self.throttles >= self.settings.throttle_attempts:
                return None
            return retry_delay(self.throttles, self.settings, retry_after, self._rng)
        self.failures += 1
        if self.failures >= self.settings.max_attempts:
            return None
        return retry_delay(self.failures, self.settings, retry_after, self._rng)

    def delay(self) -> float:
        """The backoff after the failures so far, without counting one (a caller's pause between its tries)."""
        return retry_delay(max(1, self.count), self.settings, None, self._rng)


class _Pacer:
    """The adaptive rate of one operation of one host (requests spaced evenly, no bursts once limited)."""

    def __init__(self, ceiling: float | None, adaptive: bool, clock: Callable[[], float]) -> None:
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.rate = ceiling  # None: unlimited
        self._clock = clock
        self._next = 0.0
        self._sent: deque[float] = deque()
        self._decreased = float("-inf")

    def reserve(self) -> float:
        """Book the next send; seconds to wait until it may go."""
        now = self._clock()
        self._sent.append(now)
        while self._sent and self._sent[0] < now - 1.0:
            self._sent.popleft()
        if self.rate is None:
            return 0.0
        start = max(now, self._next)
        self._next = start + 1.0 / self.rate
        return start - now

    def throttled(self, sent_at: float | None) -> None:
        """A 429 to a request sent at ``sent_at``: one sent before the last decrease went out at the old rate
        and says nothing new (one decrease per round trip, as TCP does per window)."""
        if not self.adaptive or (sent_at if sent_at is not None else self._clock()) < self._decreased:
            return
        self._decreased = self._clock()
        # Limited: from the limit (the demand may be below it). Unlimited: from the fastest recent pace, as a
        # quota without bursts refuses two requests too close together even when the second's average is low.
        current = self._burst_rate() if self.rate is None else self.rate
        self.rate = max(MIN_RATE, current * _DECREASE)

    def _burst_rate(self) -> float:
        """The fastest pace among the last few sends (requests per second)."""
        recent = list(self._sent)[-_BURST_SENDS:]
        gaps = [later - earlier for earlier, later in itertools.pairwise(recent)]
        if not gaps:
            return float(len(recent))
        shortest = min(gaps)
        return min(_FASTEST, 1.0 / shortest) if shortest > 0 else _FASTEST

    def succeeded(self) -> None:
        if self.rate is None or not self.adaptive:
            return
        # +10 % a second (at least +1/s each second): this many successes come in about a second.
        self.rate += max(1.0, 0.1 * self.rate) / self.rate
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)


class _Streams:
    """An adaptive bound on concurrent transfers: halved on trouble, one more after ``limit`` successes."""

    def __init__(self, limit: int | None) -> None:
        self.ceiling = limit
        self.limit = limit
        self.active = 0
        self._successes = 0
        self._condition = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._condition:
            while self.limit is not None and self.active >= self.limit:
                self._condition.wait()
            self.active += 1
        try:
            yield
        finally:
            with self._condition:
                self.active -= 1
                self._condition.notify()

    def trouble(self) -> None:
        with self._condition:
            if self.limit is not None:
                self.limit = max(1, self.limit // 2)
                self._successes = 0

    def success(self) -> None:
        with self._condition:
            if self.limit is None or self.ceiling is None or self.limit >= self.ceiling:
                return
            self._successes += 1
            if self._successes >= self.limit:
                self._successes = 0
                self.limit += 1
                self._condition.notify()


class HostPolicy:
    """The policy of one host: its settings, the pace of each operation, its transfer slots and counters."""

    def __init__(
        self,
        host: str,
        settings: HostSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._lock = threading.Lock()
        self._pacers: dict[str, _Pacer] = {}
        self._streams = _Streams(settings.streams)
        self.throttled = 0  # 429 answers so far
        self.waited = 0.0  # seconds spent pacing

    def tries(self) -> Tries:
        return Tries(self.settings, self._rng)

    def _pacer(self, op: str) -> _Pacer:
        pacer = self._pacers.get(op)
        if pacer is None:
            pacer = self._pacers[op] = _Pacer(self.settings.rates.get(op), self.settings.adaptive, self._clock)
        return pacer

    def wait_for(self, op: str) -> float:
        """Book a send of ``op``: the seconds to wait first (0 when the operation is not limited)."""
        with self._lock:
            seconds = self._pacer(op).reserve()
            self.waited += seconds
        return seconds

    def pace(self, op: str, sleep: Callable[[float], None] | None = None) -> float:
        """Wait until a request of ``op`` may be sent (with ``sleep``, e.g. one that a cancel interrupts);
        returns the moment it may go, for :meth:`record`."""
        seconds = self.wait_for(op)
        if seconds > 0:
            (sleep or self._sleep)(seconds)
        return self._clock()

    def record(self, op: str, status: int | None, retry_after: str | None = None, sent_at: float | None = None) -> None:
        """The outcome of a request of ``op``: its status, or None when no answer came. A 429 slows the
        operation down unless it says when to come back (``Retry-After``): that wait is the whole answer.
        ``sent_at`` (from :meth:`pace`) tells a 429 to a request sent before the last slow-down apart."""
        with self._lock:
            pacer = self._pacer(op)
            if status == 429:
                self.throttled += 1
                if not retry_after:
                    pacer.throttled(sent_at)
            elif status is not None and status < 500:
                pacer.succeeded()
        if status == 429 or status is None or status >= 500:
            self._streams.trouble()
        else:
            self._streams.success()

    def rate(self, op: str) -> float | None:
        """The current pace of ``op`` in requests per second; None when unlimited."""
        with self._lock:
            return self._pacer(op).rate

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the host's transfer slots, held for a whole transfer (see ``HostSettings.streams``)."""
        with self._streams.slot():
            yield

    @property
    def streams(self) -> int | None:
        """The current bound on transfers in flight; None when unbounded."""
        return self._streams.limit


class RequestPolicy:
    """Every host's :class:`HostPolicy` in one run: ``hosts`` settings by host name, ``default`` for others."""

    def __init__(
        self,
        default: HostSettings | None = None,
        hosts: Mapping[str, HostSettings] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.default = default or HostSettings()
        self._settings = {normalize_host(name): value for name, value in (hosts or {}).items()}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._hosts: dict[str, HostPolicy] = {}

    def settings(self, host: str) -> HostSettings:
        return self._settings.get(normalize_host(host), self.default)

    def host(self, host: str) -> HostPolicy:
        key = normalize_host(host)
        with self._lock:
            policy = self._hosts.get(key)
            if policy is None:
                policy = self._hosts[key] = HostPolicy(key, self.settings(key), clock=self._clock, sleep=self._sleep)
            return policy

    def throttled(self) -> int:
        """429 answers so far, over every host."""
        with self._lock:
            return sum(policy.throttled for policy in self._hosts.values())
