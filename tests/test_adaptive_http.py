"""Issue 14's adaptive-sender test over real HTTP: python-telegram-bot, through the real
``Dispatcher`` and ``TelegramChannel``, against ``tests/fake_telegram.py`` limiting its rate.

A server at 10 msg/s and one at 30 msg/s, the bot at Telegram's 30/s ceiling: the issue's goal
is 0.95 of the server's rate with few 429s. A server answering 200 ms late (a distant data
centre) at 30 msg/s: the window of requests in flight opens to what rate × round trip needs (2
in flight would cap the rate at 10 msg/s, a third of the server's). On a near server the window
stays at its minimum, so a kill still repeats at most 2.

What CI asserts: nothing lost or repeated, few 429s, the window's size, and a floor on the rate
(FLOOR) with room for the machine's other work — in CI this test shares two cores with three
other test workers, where it measured 0.917–0.950 of the server's rate (docs/benchmarks.md). The
0.95 goal itself is measured by ``python -m bench.adaptive_rate`` on a quiet machine.

The rate is the server's: from the times it accepted each sendMessage, (accepted − R) / (last −
first), R being the server's initial bucket a sender gets for free at the start (see
``bench/adaptive_rate.py``, which runs the same drain with baselines). Each case sends 30
seconds' worth, so a stall of a loaded machine weighs little. The three cases are three tests,
which the test workers run side by side. The 429 counts are in the assertion messages and the
test's properties (``--junitxml``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.adaptive_rate import drain

pytestmark = pytest.mark.engine_neutral

SECONDS = 30  # of the server's rate: the messages sent per case
FLOOR = 0.85  # of the server's rate, in CI (the goal, 0.95, is the benchmark's)
# (server rate, latency in seconds, the most requests the window may open to, the least)
CASES = {
    "10/s": (10.0, 0.0, 2, 2),  # a near server: the window stays at its minimum
    "30/s": (30.0, 0.0, 2, 2),
    "30/s, 200 ms away": (30.0, 0.200, 16, 6),  # 30/s × 0.2 s = 6 needed; the maximum is 16
}


@pytest.mark.slow(seconds=33, timed=True)
@pytest.mark.parametrize("name", list(CASES))
async def test_the_sender_keeps_up_with_the_server_with_few_429s(
    name: str, record_property: Callable[[str, object], None]
) -> None:
    """One server per test, so test workers run the three in parallel, each drain in a process
    of its own. (Run together in one event loop with their servers, they shared one core's
    share of a loaded machine: on a slow day the near 30/s case fell to 0.833 in CI while it
    measured 0.961 alone.)"""
    rate, latency, widest, narrowest = CASES[name]
    run = await drain(rate, int(rate * SECONDS), latency=latency)
    figures = (
        f"{name}: {run.steady_rate:.2f}/s = {run.share:.3f} of {rate}, "
        f"{run.too_many} × 429, in flight ≤ {run.widest}"
    )
    record_property("share", round(run.share, 3))
    record_property("too_many", run.too_many)
    print(figures)
    assert (run.lost, run.duplicates) == (0, 0), f"{figures}: lost or repeated"
    assert run.share >= FLOOR, f"{figures}: under {FLOOR} of the server's rate"
    assert run.too_many <= run.messages // 20, f"{figures}: too many 429s"  # under 1 in 20
    assert narrowest <= run.widest <= widest, f"{figures}: window outside {narrowest}..{widest}"
