"""Graceful cancellation of a copying run: the first SIGINT or SIGTERM stops new work, the second exits at once.

GitHub Actions cancels a job (or ends it at ``timeout-minutes``) with SIGINT, then SIGTERM 7.5 s later, then
SIGKILL. On the first signal a run stops starting images and blobs, abandons the transfers in flight (a
partly uploaded blob is simply never committed), and still records what it verified, so the work done before
the signal is kept. It then exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second
signal exits at once with that status, recording nothing more.

Usage::

    with cancellation() as cancel:       # installs the handlers (main thread only), restores them after
        sync(..., cancel=cancel.event)
        ...record...
        return cancel.status(status)     # 130/143 after a signal, else ``status``
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType

from bot.errors import Cancelled
from bot.github import actions

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a cancelled run waits for transfers in flight to notice and stop before it records without them.
GRACE_SECONDS = 2.0


class Cancellation:
    """Whether (and by which signal) the run was asked to stop; ``event`` is what the workers watch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.signalled = False  # by a signal, not by request()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "cancel"

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask the run to stop, as the first ``signum`` does."""
        if not self.event.is_set():
            self.signum = signum
            self.event.set()

    def check(self, what: str) -> None:
        """Raise :class:`Cancelled` for ``what`` once the run was asked to stop."""
        if self.event.is_set():
            raise Cancelled(f"{what}: not done, the run was cancelled ({self.name})")

    def status(self, status: int) -> int:
        """The exit status of the run: ``128 + signal`` when it was cancelled, else ``status``."""
        return 128 + self.signum if self.signum is not None else status

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.event.is_set():
            _say(f"{name} again: exiting at once; nothing more is recorded")
            os._exit(128 + signum)
        self.signalled = True
        self.request(signum)
        _say(
            f"{name} received: no new images or blobs start, transfers in flight are abandoned, and what was "
            "verified is still recorded; send it again to exit at once"
        )


class _Signalled:
    """Set when a run ended after a signal: the process must then leave without joining stuck workers."""

    value = False


@contextmanager
def cancellation() -> Iterator[Cancellation]:
    """Handle SIGINT and SIGTERM as described in the module docstring while the block runs.

    Outside the main thread (where Python cannot install handlers) the block runs without them.
    """
    cancel = Cancellation()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    previous = {signum: signal.signal(signum, cancel._handle) for signum in SIGNALS}
    try:
        yield cancel
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if cancel.signalled:
            _Signalled.value = True


def forget_signal() -> None:
    """Start a run with no signal on record (one an earlier run in this process handled is not this run's)."""
    _Signalled.value = False


def exit_if_signalled(status: int) -> None:
    """After a run a signal cancelled: exit now with ``status``, without waiting for worker threads still
    blocked in a transfer (they hold nothing worth keeping; what was verified is already recorded)."""
    if not _Signalled.value:
        return
    _Signalled.value = False
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _say(message: str) -> None:
    # A signal handler may interrupt a print of the main thread; write straight to the descriptor.
    with suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), (message + "\n").encode("utf-8", "replace"))


def report_not_done(cancel: Cancellation, images: Sequence[str]) -> None:
    """After a cancelled run: say which images were not done (nothing of them was recorded)."""
    if not cancel.requested:
        return
    count = f"{len(images)} image{'' if len(images) == 1 else 's'}"
    print(
        actions.safe_line(
            f"cancelled ({cancel.name}): {count} not done and not recorded; the next run copies them"
            + (": " + ", ".join(images) if images else "")
        ),
        file=sys.stderr,
    )
