"""The per-host stream bound grows while throughput grows with it, steps back when it did not help, and
halves on trouble."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

from bot.registry.streams import StreamLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_window(limit: StreamLimit, clock: Clock, rate_per_stream: float, cap: float | None = None) -> None:
    """One window with every slot busy and one more transfer waiting, moving ``rate_per_stream`` per stream
    (at most ``cap`` in all)."""
    with ExitStack() as stack:
        for _ in range(limit.limit):
            stack.enter_context(limit.slot())
        waiter = threading.Thread(target=lambda: limit.slot().__enter__())
        waiter.start()
        while limit._waiting == 0:
            time.sleep(0.001)
        clock.now += limit.window
        total = rate_per_stream * limit.limit
        limit.moved(int(min(total, cap or total) * limit.window))
    waiter.join()
    limit.active = 0  # the waiter's slot is never given back: start the next window afresh


def test_a_long_lossy_link_grows_the_bound_to_the_ceiling() -> None:
    clock = Clock()
    limit = StreamLimit(8, 64, window=3.0, clock=clock)
    for _ in range(10):
        run_window(limit, clock, rate_per_stream=125_000)  # every stream adds its ~1 Mbit/s
    assert limit.limit == 64


def test_a_saturated_host_stops_growing() -> None:
    clock = Clock()
    limit = StreamLimit(8, 64, window=3.0, clock=clock)
    for _ in range(10):
        run_window(limit, clock, rate_per_stream=50_000_000, cap=200_000_000)  # loopback: CPU-bound already
    assert limit.limit <= 12  # one step was tried, it brought nothing, no more


def test_a_step_that_made_things_worse_is_taken_back() -> None:
    clock = Clock()
    limit = StreamLimit(8, 64, window=3.0, clock=clock)
    run_window(limit, clock, rate_per_stream=1_000_000)  # 8 MB/s at 8 streams: try 12
    assert limit.limit == 12
    run_window(limit, clock, rate_per_stream=400_000)  # 4.8 MB/s at 12: worse
    assert limit.limit == 8


def test_trouble_halves_the_bound() -> None:
    limit = StreamLimit(32, 64)
    limit.trouble()
    assert limit.limit == 16
    for _ in range(10):
        limit.trouble()
    assert limit.limit == 1


def test_an_idle_host_does_not_grow() -> None:
    clock = Clock()
    limit = StreamLimit(8, 64, window=3.0, clock=clock)
    for _ in range(5):
        with limit.slot():  # one transfer at a time: the bound is not what holds the host back
            clock.now += 3.0
            limit.moved(3_000_000)
    assert limit.limit == 8


def test_spare_slots_go_to_parts_only_when_nobody_waits() -> None:
    clock = Clock()
    limit = StreamLimit(2, 8, window=3.0, clock=clock)
    with limit.slot():
        assert limit.spare() == 1
        assert limit.try_acquire()
        assert limit.spare() == 0 and limit.active == 2
        assert not limit.try_acquire()  # none to spare: counted as demand for more streams
        assert limit._wanted
        limit.release()
        assert limit.spare() == 1
        # A transfer waiting for a slot comes before a part.
        limit._waiting = 1
        assert limit.spare() == 0 and not limit.try_acquire()
        limit._waiting = 0
    assert limit.active == 0 and limit.spare() == 2
