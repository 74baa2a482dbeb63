"""Progress of a copy run: a live bar on a terminal, periodic plain lines in CI logs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from bot.units import binary_size


class Progress:
    """Counts bytes moved against a total that grows as manifests are read. Thread-safe.

    The base class is silent; :meth:`for_stream` picks a live bar for a terminal or log lines otherwise.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.started = clock()
        self.total = 0
        self.done = 0
        self.images_total = 0
        self.images_done = 0

    @staticmethod
    def for_stream(stream: TextIO | None = None, interval: float | None = None) -> Progress:
        stream = stream or sys.stderr
        if stream.isatty():
            return BarProgress(stream, interval or 0.2)
        return LogProgress(stream, interval or 10.0)

    def add_images(self, count: int) -> None:
        with self._lock:
            self.images_total += count
        self._tick(force=False)

    def image_done(self) -> None:
        with self._lock:
            self.images_done += 1
        self._tick(force=False)

    def add_total(self, count: int) -> None:
        with self._lock:
            self.total += count
        self._tick(force=False)

    def advance(self, count: int) -> None:
        with self._lock:
            self.done += count
        self._tick(force=False)

    def finish(self) -> None:
        """The final line; none when no byte moved (nothing to copy, or everything already at the target)."""
        with self._lock:
            idle = not self.done
        if idle:
            self._stop()
            return
        self._tick(force=True)

    def in_flight(self) -> bool:
        """Images or bytes announced and not yet done."""
        with self._lock:
            return self.images_done < self.images_total or self.done < self.total

    def _stop(self) -> None:
        """End any background work (called by :meth:`finish`)."""

    def _tick(self, force: bool) -> None:
        """Called after every update; subclasses render."""

    def line(self) -> str:
        """``3/10 images, 120.0 MiB / 800.0 MiB, 45.2 MiB/s, ETA 15s``."""
        with self._lock:
            done, total, images, images_total = self.done, self.total, self.images_done, self.images_total
        elapsed = max(self._clock() - self.started, 1e-6)
        rate = done / elapsed
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 and total > done else "-"
        counted = f"{images}/{images_total} images, " if images_total else ""
        return f"{counted}{binary_size(done)} / {binary_size(total)}, {binary_size(rate)}/s, ETA {eta}"


class LogProgress(Progress):
    """One plain line every ``interval`` seconds while work is in flight (CI logs).

    Lines are driven by time, not by bytes: a ticker thread runs while images or bytes are outstanding, so a
    stalled transfer still shows up in the log (with its falling rate). It ends by itself when nothing is in
    flight and stops in :meth:`finish`; the next update starts it again.
    """

    def __init__(self, stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._stream = stream
        self._interval = interval
        self._last = self.started
        self._write_lock = threading.Lock()
        self._ticker_lock = threading.Lock()
        self._ticker: tuple[threading.Thread, threading.Event] | None = None

    def _tick(self, force: bool) -> None:
        if force:
            self._stop()
        self._write(force)
        if not force:
            self._start_ticker()

    def _write(self, force: bool) -> None:
        with self._write_lock:
            now = self._clock()
            if not force and now - self._last < self._interval:
                return
            self._last = now
            self._stream.write(f"progress: {self.line()}\n")
            self._stream.flush()

    def _start_ticker(self) -> None:
        with self._ticker_lock:
            if self._ticker is not None or not self.in_flight():
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(stop,), name="progress-ticker", daemon=True)
            self._ticker = (thread, stop)
            thread.start()

    def _run(self, stop: threading.Event) -> None:
        delay = self._interval
        while not stop.wait(delay):
            with self._ticker_lock:
                # Decided under the lock that starts tickers, so an update racing with this exit starts a new one.
                if not self.in_flight():
                    if self._ticker is not None and self._ticker[1] is stop:
                        self._ticker = None
                    return
            self._write(force=False)
            with self._write_lock:  # wake when the next line is due, counted from the last one written
                delay = max(self._interval - (self._clock() - self._last), self._interval / 10)

    def _stop(self) -> None:
        with self._ticker_lock:
            ticker, self._ticker = self._ticker, None
        if ticker is not None:
            thread, stop = ticker
            stop.set()
            if thread is not threading.current_thread():
                thread.join()


class BarProgress(Progress):
    """A bar redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._stream = stream
        self._interval = interval
        self._last = 0.0

    def _tick(self, force: bool) -> None:
        now = self._clock()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        fraction = self.done / self.total if self.total else 0.0
        filled = int(self.WIDTH * min(fraction, 1.0))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        end = "\n" if force else ""
        self._stream.write(f"\r[{bar}] {fraction * 100:5.1f}% {self.line()}\x1b[K{end}")
        self._stream.flush()
