"""The adaptive channel-wide rate, on a simulated clock against a simulated server.

The server is a token bucket (R messages, refilled at R/s) that answers 429 with a whole-second
``retry_after`` when empty, like the fake Bot API server and Telegram. Messages go to distinct
chats one after another, as the limiter paces them. The same run with ``adapt=False`` is the
fixed sender it replaced. The end-to-end measurement over HTTP is ``bench/adaptive_rate.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from bot.ratelimit import AdaptiveRate, Bucket, Limits, RateLimiter


@dataclass
class Outcome:
    rate: float
    too_many: int
    final_rate: float


def simulate(
    server_rate: float, *, ceiling: float = 30.0, messages: int = 1500, adapt: bool = True
) -> Outcome:
    now = [0.0]
    limiter = RateLimiter(
        Limits(overall_per_second=ceiling, chat_burst=100, chat_per_second=100),
        clock=lambda: now[0],
        adapt=adapt,
    )
    server = Bucket(server_rate, server_rate)
    paused_until, too_many, delivered = 0.0, 0, 0
    while delivered < messages:
        now[0] = max(now[0], paused_until)
        now[0] += limiter.reserve(f"chat{delivered}")
        wait = server.wait_time(now[0])
        if wait > 0:
            too_many += 1
            retry_after = max(1, math.ceil(wait))
            paused_until = now[0] + retry_after
            limiter.channel_limited(retry_after)
        else:
            server.take(now[0])
            delivered += 1
            limiter.sent()
    return Outcome(delivered / now[0], too_many, limiter.overall_rate)


@pytest.mark.parametrize(
    ("server_rate", "share"),
    [(5.0, 0.90), (10.0, 0.95), (20.0, 0.95), (30.0, 0.95)],  # a 1 s pause costs more when slow
)
def test_it_keeps_up_with_the_server_and_draws_far_fewer_429s(
    server_rate: float, share: float
) -> None:
    adaptive = simulate(server_rate)
    fixed = simulate(server_rate, adapt=False)
    assert adaptive.rate >= share * server_rate
    assert adaptive.too_many * 2 < max(fixed.too_many, 2)
    assert adaptive.final_rate <= 30.0


def test_a_server_as_fast_as_the_ceiling_costs_one_429_at_most_a_few() -> None:
    outcome = simulate(30.0)
    assert outcome.too_many <= 3 and outcome.final_rate == pytest.approx(30.0)


def test_429s_for_sends_already_in_flight_slow_down_once() -> None:
    rate = AdaptiveRate(ceiling=30.0)
    for i in range(60):
        rate.succeeded(i / 30)
    first = rate.limited(2.0, pause=1.0)
    assert first == pytest.approx(29.1, rel=0.02)  # 0.97 of the ~30/s the server accepted
    for _ in range(15):  # the other lanes' answers arrive during the same pause
        assert rate.limited(2.1, pause=1.0) == first


def test_the_rate_stays_between_floor_and_ceiling() -> None:
    rate = AdaptiveRate(ceiling=30.0, floor=1.0)
    moment = 0.0
    for _ in range(50):
        moment += 2.0
        rate.limited(moment, pause=1.0)
    assert rate.rate == 1.0
    for step in range(100_000):
        rate.succeeded(moment + step * 0.01)
    assert rate.rate == 30.0


def test_a_fixed_limiter_never_changes_its_rate() -> None:
    limiter = RateLimiter(Limits(overall_per_second=30), clock=lambda: 0.0, adapt=False)
    limiter.channel_limited(5)
    limiter.sent()
    assert limiter.overall_rate == 30.0


def test_workers_share_the_bots_rate_and_the_rest_take_it_back_when_one_goes() -> None:
    """The Bot API counts a bot's messages together, whichever process sends them."""
    now = [0.0]
    limiter = RateLimiter(Limits(overall_per_second=30), clock=lambda: now[0])
    limiter.share(3)
    assert limiter.overall_rate == 10
    for _ in range(200):  # a long run of successes never lifts one worker past its part
        now[0] += 0.1
        limiter.sent()
    assert limiter.overall_rate == 10
    limiter.share(1)  # the other two stopped: the whole rate, reached by additive increase
    for _ in range(400):
        now[0] += 0.1
        limiter.sent()
    assert limiter.overall_rate == 30
    fixed = RateLimiter(Limits(overall_per_second=30), clock=lambda: 0.0, adapt=False)
    fixed.share(2)
    assert fixed.overall_rate == 15
