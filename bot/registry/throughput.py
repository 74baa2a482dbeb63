"""The minimum throughput of a blob transfer, so a registry that trickles bytes cannot hold a run forever.

The read timeout (``--timeout``) bounds silence only: a registry that sends one byte every few seconds never
stays silent that long. So a blob download or upload also fails, as a temporary error that is retried, when
it moved less than :data:`MIN_RATE` bytes per second on average over the last ``window`` seconds (the read
timeout). 1 KiB/s is far below any link worth using (a slow link of 100 KiB/s passes a hundred times over),
and at that floor a trickling transfer costs at most about ``window`` plus one read timeout per try.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from bot.errors import RegistryError
from bot.units import binary_size

MIN_RATE = 1024  # bytes per second, averaged over the window


class Throughput:
    """Counts the bytes of one transfer; :meth:`add` raises once the rate over the last ``window`` seconds is
    below ``floor`` bytes per second. The clock starts at :meth:`start` (or the first :meth:`add`), so time
    spent before the transfer begins (an upload session being opened) does not count against it."""

    def __init__(
        self, what: str, window: float, floor: float = MIN_RATE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.window = max(window, 0.001)
        self.floor = floor
        self.total = 0
        self._clock = clock
        # (time, bytes so far), oldest first; sampled about 32 times per window, so memory stays small.
        self._samples: deque[tuple[float, int]] = deque()

    def start(self) -> None:
        if not self._samples:
            self._samples.append((self._clock(), 0))

    def add(self, amount: int) -> None:
        self.start()
        now = self._clock()
        self.total += amount
        if now - self._samples[-1][0] >= self.window / 32:
            self._samples.append((now, self.total))
        # The oldest sample kept is the newest one at least a window old: the rate is measured from there.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        since, then = self._samples[0]
        span = now - since
        if span >= self.window and self.total - then < self.floor * span:
            moved = binary_size(self.total - then)
            raise RegistryError(
                f"{self.what}: only {moved} moved in the last {span:.1f} s (--timeout), below the minimum of "
                f"{self.floor / 1024:g} KiB/s; the registry sends or takes the blob too slowly",
                temporary=True,
            )
