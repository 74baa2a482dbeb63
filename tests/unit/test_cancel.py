"""bot.cancel: the signal handlers a copying run installs, and the exit status they lead to."""

from __future__ import annotations

import os
import signal

import pytest

from bot.cancel import cancellation, forget_signal
from bot.errors import Cancelled


def test_the_first_signal_asks_the_run_to_stop_and_the_handlers_are_restored() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with cancellation() as cancel:
            assert cancel.status(1) == 1
            cancel.check("an image")  # nothing yet
            os.kill(os.getpid(), signal.SIGTERM)  # handled in this (the main) thread before kill() returns
            assert cancel.event.is_set()
            assert cancel.status(0) == 143 and cancel.name == "SIGTERM"
            with pytest.raises(Cancelled, match=r"^an image: not done, the run was cancelled \(SIGTERM\)$"):
                cancel.check("an image")
        assert {signum: signal.getsignal(signum) for signum in before} == before
    finally:
        forget_signal()  # this process must not exit at its next in-process run


def test_a_requested_stop_without_a_signal() -> None:
    with cancellation() as cancel:
        cancel.request(signal.SIGINT)
        assert cancel.status(0) == 130 and not cancel.signalled
