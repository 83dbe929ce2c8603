"""The adaptive sender over HTTP: servers slower than the ceiling, and a distant one.

    .venv/bin/python -m bench.adaptive_rate [--cases 10:0,30:0,30:200] [--seconds 30] [--runs 1]

Each case ``R:L`` is a fake Bot API server (``tests.fake_telegram``) that accepts R messages/s
overall (a bucket of R that refills at R/s, 429 with ``retry_after`` beyond it) and answers
every call L ms late (half on the way there, half back, like a network round trip). The same
notice to R × ``--seconds`` distinct private chats is drained by the real ``Dispatcher`` and
``TelegramChannel`` of ``bot.app.App`` on a fresh SQLite file, the bot at Telegram's 30/s
ceiling, once per sender, in rotating order over ``--runs``:

1. adaptive: the channel-wide rate follows what the server accepts (``AdaptiveRate``) and the
   requests in flight follow the target rate × the measured answer time (``InFlightWindow``,
   2 to 16): this branch's defaults;
2. fixed window (baseline): the same rate, at most 2 requests in flight (main before it);
3. fixed (baseline): 30/s, a pause of ``retry_after`` on each 429 then 30/s again, 2 in flight
   (the sender before issue 14).

Measured on the server, from the times it accepted each sendMessage (HTTP 200): steady rate =
(accepted − R) / (last accepted − first accepted). The R subtracted is the server's initial
bucket, which a sender gets for free at the start; its share of R is the figure to read. 429s:
sendMessage answers with 429. Window: the most requests the sender allowed in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.broadcast import Result, fresh_server, recipients, seed_outbox, sending_app, tally
from bot.ratelimit import RateLimiter
from storage.migrate import upgrade
from tests.fake_telegram import FakeTelegram

SENDERS = ("adaptive", "fixed window", "fixed")
# Alembic keeps the migration it runs in module globals: drains started together (the CI test
# runs its cases at once) migrate their databases one after the other.
_MIGRATING = threading.Lock()


@dataclass
class Run:
    sender: str
    server_rate: float
    latency: float  # seconds
    messages: int
    seconds: float
    steady_rate: float
    too_many: int
    lost: int
    duplicates: int
    widest: int  # the most requests in flight the sender allowed

    @property
    def share(self) -> float:
        return self.steady_rate / self.server_rate


def steady_rate(server: FakeTelegram, burst: float) -> tuple[float, float]:
    """(steady rate, seconds) from the server's accepted sendMessage times (see the docstring)."""
    accepted = [
        call.at for call in server.requests if call.method == "sendMessage" and call.status == 200
    ]
    if len(accepted) <= burst + 1:
        return 0.0, 0.0
    span = accepted[-1] - accepted[0]
    return (len(accepted) - burst) / span, span


async def drain(
    server_rate: float, count: int, *, sender: str = "adaptive", latency: float = 0.0
) -> Run:
    """One notice to ``count`` chats through a server at ``server_rate`` answering ``latency``
    seconds late; returns once every recipient has it (or after a generous deadline)."""
    ids = recipients(count)
    server = await fresh_server(ids, server_rate)
    server.latency = latency
    folder = Path(tempfile.mkdtemp(prefix="sotay-adaptive-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await asyncio.get_running_loop().run_in_executor(None, _migrate, url)
    app, channel = sending_app(url, server, outbox_in_flight_max=16 if sender == "adaptive" else 2)
    limits = channel.capabilities.limits
    assert limits is not None
    app.dispatcher.add_limiter(channel.name, RateLimiter(limits, adapt=sender != "fixed"))
    result = Result(sender, count)
    try:
        await channel.ptb.initialize()
        await seed_outbox(app, ids)
        app.start_dispatcher()
        everyone = set(ids)
        await server.wait_for(
            lambda: (
                len(server.sent) >= count and everyone.issubset(m["chat_id"] for m in server.sent)
            ),
            timeout=count / server_rate * 4 + 60,
        )
    finally:
        await app.close()
        await channel.ptb.shutdown()
        tally(server, ids, result)
        await server.stop()
    rate, span = steady_rate(server, server_rate)
    return Run(
        sender,
        server_rate,
        latency,
        count,
        span,
        rate,
        result.status[429],
        result.lost,
        result.duplicates,
        app.dispatcher.window.widest,
    )


def _migrate(url: str) -> None:
    with _MIGRATING:
        upgrade(url)


def table(runs: list[Run]) -> str:
    lines = [
        "| server rate | latency | sender | messages | steady rate | share of server | 429s "
        "| in flight ≤ | lost | dup |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[float, float, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.server_rate, run.latency, run.sender), []).append(run)
    order = {name: index for index, name in enumerate(SENDERS)}
    for (rate, latency, sender), group in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], order[item[0][2]])
    ):
        steady = statistics.median(r.steady_rate for r in group)
        share = statistics.median(r.share for r in group)
        too_many = statistics.median(r.too_many for r in group)
        widest = max(r.widest for r in group)
        lost = sum(r.lost for r in group)
        dup = sum(r.duplicates for r in group)
        lines.append(
            f"| {rate:.0f}/s | {latency * 1000:.0f} ms | {sender} | {group[0].messages} "
            f"| {steady:.2f}/s | {share:.2f} | {too_many:.0f} | {widest} | {lost} | {dup} |"
        )
    return "\n".join(lines)


async def run_all(cases: list[tuple[float, float]], seconds: float, runs: int) -> list[Run]:
    results = []
    rotation = itertools.cycle(range(len(SENDERS)))
    for _index in range(runs):
        for rate, latency in cases:
            start = next(rotation)
            for sender in SENDERS[start:] + SENDERS[:start]:
                begun = time.perf_counter()
                run = await drain(rate, int(rate * seconds), sender=sender, latency=latency)
                print(
                    f"server {rate:.0f}/s {latency * 1000:.0f} ms {run.sender}: "
                    f"{run.steady_rate:.2f}/s ({run.share:.2f}), 429s {run.too_many}, "
                    f"in flight ≤ {run.widest}, lost {run.lost}, dup {run.duplicates} "
                    f"[{time.perf_counter() - begun:.0f} s]",
                    flush=True,
                )
                results.append(run)
    return results


def parse_cases(text: str) -> list[tuple[float, float]]:
    """``10:0,30:200`` → [(10.0, 0.0), (30.0, 0.2)] (server rate, latency in seconds)."""
    cases = []
    for case in text.split(","):
        rate, _, latency_ms = case.partition(":")
        cases.append((float(rate), float(latency_ms or 0) / 1000))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="10:0,30:0,30:200")
    parser.add_argument("--seconds", type=float, default=30.0, help="messages = rate × this")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("sotay").setLevel(logging.WARNING)
    runs = asyncio.run(run_all(parse_cases(args.cases), args.seconds, args.runs))
    print(table(runs))


if __name__ == "__main__":
    main()
