"""The window of requests in flight (bot/inflight.py), on a simulated clock: it follows the
target rate × the round trip (Little's law), between its minimum and maximum."""

from __future__ import annotations

import asyncio

import pytest

from bot.inflight import HEADROOM, MIN_SAMPLES, RECENT, InFlightWindow

pytestmark = pytest.mark.engine_neutral


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def window_after(round_trip: float, rate: float | None = 30.0, trips: int = 10) -> InFlightWindow:
    clock = Clock()
    window = InFlightWindow(2, 16, rate_of=lambda _channel: rate, clock=clock)
    for _ in range(trips):
        with window.round_trip("telegram"):
            clock.now += round_trip
    return window


def test_a_near_api_keeps_the_minimum() -> None:
    assert window_after(0.010).limit == 2  # 30/s × 10 ms × 1.5 = 0.45
    assert window_after(0.040).limit == 2  # 1.8: still within the minimum


def test_a_distant_api_opens_it_to_rate_times_round_trip() -> None:
    window = window_after(0.200)
    assert window.limit == 9  # 30/s × 200 ms × 1.5
    assert window_after(0.200, rate=10.0).limit == 3  # after 429s the target rate is lower


def test_never_above_the_maximum_and_not_before_enough_round_trips() -> None:
    assert window_after(2.0).limit == 16
    assert window_after(0.200, trips=MIN_SAMPLES - 1).limit == 2
    assert window_after(0.200, rate=None).limit == 2  # a channel without a known rate


def test_the_shortest_round_trip_counts_not_the_slow_ones() -> None:
    clock = Clock()
    window = InFlightWindow(2, 16, rate_of=lambda _channel: 30.0, clock=clock)
    for seconds in (0.010, 0.500, 0.400, 0.010, 0.450):  # a busy machine's stalls
        with window.round_trip("telegram"):
            clock.now += seconds
    assert window.limit == 2


def test_a_channel_silent_for_a_while_no_longer_counts() -> None:
    clock = Clock()
    window = InFlightWindow(2, 16, rate_of=lambda _channel: 30.0, clock=clock)
    for _ in range(5):
        with window.round_trip("zalo"):
            clock.now += 0.3
    assert window.limit == 14
    clock.now += RECENT + 1
    assert window.resize() == 2
    assert window.widest == 14


def test_channels_add_up() -> None:
    clock = Clock()
    rates = {"telegram": 30.0, "zalo": 10.0}
    window = InFlightWindow(2, 64, rate_of=rates.get, clock=clock)
    for channel in ("telegram", "zalo") * 5:
        with window.round_trip(channel):
            clock.now += 0.2
    assert window.needed() == pytest.approx(30 * 0.2 + 10 * 0.2)
    assert window.limit == 8 * HEADROOM == 12


async def test_a_full_window_waits_for_a_place_and_a_wider_one_lets_more_go() -> None:
    clock = Clock()
    rate = [30.0]
    window = InFlightWindow(2, 16, rate_of=lambda _channel: rate[0], clock=clock)
    await window.acquire(1)
    await window.acquire(2)
    third = asyncio.create_task(window.acquire(3))
    fourth = asyncio.create_task(window.acquire(4))
    await asyncio.sleep(0)
    assert not third.done() and window.in_flight == 2
    window.release(1)
    await third
    assert not fourth.done()
    window.release(1)  # again: nothing more is freed
    await asyncio.sleep(0)
    assert not fourth.done()
    for _ in range(3):  # the API turns out distant: room for about 9
        with window.round_trip("telegram"):
            clock.now += 0.2
    await fourth
    assert window.in_flight == 3 and window.limit == 9


async def test_a_cancelled_waiter_does_not_keep_a_place() -> None:
    window = InFlightWindow(1)
    await window.acquire(1)
    waiting = asyncio.create_task(window.acquire(2))
    after = asyncio.create_task(window.acquire(3))
    await asyncio.sleep(0)
    window.release(1)  # wakes the first waiter…
    waiting.cancel()  # …which goes away before it runs
    await asyncio.wait_for(after, timeout=5)
    assert window.in_flight == 1
