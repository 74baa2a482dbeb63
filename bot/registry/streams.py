"""How many blob transfers run at once against one source host: as many as still add throughput.

On a long, lossy link each TCP stream is capped far below the link (about MSS / (RTT * sqrt(loss))), so the
link fills only with many streams; on loopback or a short link a few streams already carry all the CPU can
hash, and more only add contention. So the bound adapts per host: it starts at ``start`` and, while transfers wait
for a slot, grows by half each ``window`` seconds (long enough for new streams to leave slow start on a
long link) for as long as the bytes per second carried grow by at least :data:`GAIN` with it, up to
``ceiling``. A step after which less moved is taken back, and growth pauses for a few windows. A failed
transfer (an error, a 429) halves the bound, never below 1, and restarts the probing from there.

A blob that holds a slot and proves slow takes spare slots for ranged parts of its rest without waiting
(:meth:`StreamLimit.try_acquire`, see :mod:`bot.registry.ranges`); a part refused for want of a slot counts as
demand, like a transfer waiting for one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

GAIN = 1.10  # a step up must bring at least 10 % more throughput to be kept
PAUSE_WINDOWS = 5  # windows to wait after a step that brought nothing


class StreamLimit:
    """The adaptive bound on one host's transfers in flight (see the module docstring). Thread-safe."""

    def __init__(
        self, start: int, ceiling: int, *, window: float = 3.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = max(1, start)
        self.ceiling = max(self.limit, ceiling)
        self.window = window
        self.active = 0
        self._clock = clock
        self._cond = threading.Condition()
        self._bytes = 0
        self._since = clock()
        self._wanted = False  # did a transfer wait for a slot during this window?
        self._waiting = 0
        self._best: float | None = None  # bytes/s at the current bound
        self._previous = self.limit  # the bound before the last step up
        self._pause = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            while self.active >= self.limit:
                self._wanted = True
                self._waiting += 1
                self._cond.wait()
                self._waiting -= 1
            self.active += 1
        try:
            yield
        finally:
            self.release()

    def spare(self) -> int:
        """Slots free now with nobody waiting for one (a slow blob may spread its rest over them)."""
        with self._cond:
            return 0 if self._waiting else max(0, self.limit - self.active)

    def try_acquire(self) -> bool:
        """Take a spare slot without waiting (a ranged part of a blob that holds a slot already); pair with
        :meth:`release`. A transfer waiting for a slot comes first."""
        with self._cond:
            if self._waiting or self.active >= self.limit:
                self._wanted = True  # demand for more streams, as a transfer waiting for one is
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify()

    def moved(self, size: int) -> None:
        """``size`` bytes arrived from the host; once a window is full, decide on the bound."""
        with self._cond:
            self._bytes += size
            now = self._clock()
            elapsed = now - self._since
            if elapsed < self.window:
                return
            rate = self._bytes / elapsed
            busy = self._wanted or self._waiting > 0
            self._bytes, self._since, self._wanted = 0, now, False
            self._decide(rate, busy)

    def _decide(self, rate: float, busy: bool) -> None:
        if self._pause:
            self._pause -= 1
            return
        stepped = self.limit > self._previous
        if stepped and self._best is not None and rate < self._best / GAIN:
            # The last step made things worse: take it back and rest a while.
            self.limit, self._pause, self._best = self._previous, PAUSE_WINDOWS, None
            return
        gained = self._best is None or rate >= self._best * GAIN
        self._best = rate if self._best is None else max(rate, self._best)
        self._previous = self.limit
        if busy and gained and self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + max(1, self.limit // 2))
            self._cond.notify_all()

    def trouble(self) -> None:
        """A transfer failed (an error or a 429): halve the bound."""
        with self._cond:
            self.limit = max(1, self.limit // 2)
            self._previous, self._best, self._pause = self.limit, None, 0


class StreamLimits:
    """One :class:`StreamLimit` per host."""

    def __init__(self, start: int, ceiling: int, *, window: float = 3.0) -> None:
        self.start, self.ceiling, self.window = start, ceiling, window
        self._lock = threading.Lock()
        self._hosts: dict[str, StreamLimit] = {}

    def host(self, host: str) -> StreamLimit:
        with self._lock:
            limit = self._hosts.get(host)
            if limit is None:
                limit = self._hosts[host] = StreamLimit(self.start, self.ceiling, window=self.window)
            return limit
