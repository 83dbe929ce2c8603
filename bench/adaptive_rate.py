"""The adaptive sender against servers slower than the configured ceiling.

    .venv/bin/python -m bench.adaptive_rate [--messages 300] [--server-rates 10,30] [--runs 1]

For each server rate R (the fake Bot API server's overall limit: a bucket of R messages that
refills at R/s, 429 with ``retry_after`` beyond it), the same notice to N distinct private chats
is drained twice in this process, in alternating order over ``--runs``:

1. adaptive: the real ``Dispatcher`` and ``TelegramChannel`` of ``bot.app.App`` with the
   channel-wide rate following what the server accepts (``bot.ratelimit.AdaptiveRate``);
2. fixed (baseline): the same, with ``RateLimiter(adapt=False)``: the configured 30/s, a pause of
   ``retry_after`` on each 429, then the same rate again (the behaviour before).

The bot's ceiling is Telegram's 30/s in both. Steady rate = (delivered − R, the server's
initial bucket) / (last delivery − first delivery); its share of R is the figure to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.broadcast import (
    Result,
    fresh_server,
    pending_rows,
    recipients,
    seed_outbox,
    sending_app,
    tally,
)
from bot.ratelimit import RateLimiter
from storage.migrate import upgrade


@dataclass
class Run:
    mode: str
    server_rate: float
    messages: int
    seconds: float
    steady_rate: float
    too_many: int
    lost: int
    duplicates: int

    @property
    def share(self) -> float:
        return self.steady_rate / self.server_rate


async def drain(server_rate: float, count: int, *, adapt: bool) -> Run:
    ids = recipients(count)
    server = await fresh_server(ids, server_rate)
    folder = Path(tempfile.mkdtemp(prefix="sotay-adaptive-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await asyncio.get_running_loop().run_in_executor(None, upgrade, url)
    app, channel = sending_app(url, server)
    limits = channel.capabilities.limits
    assert limits is not None
    app.dispatcher.add_limiter(channel.name, RateLimiter(limits, adapt=adapt))
    times: list[float] = []
    try:
        await channel.ptb.initialize()
        await seed_outbox(app, ids)
        seen = 0
        app.start_dispatcher()
        deadline = time.perf_counter() + count / server_rate * 4 + 60
        while time.perf_counter() < deadline:
            with contextlib.suppress(AssertionError):  # a pause for retry_after, or the end
                await server.wait_for(lambda seen=seen: len(server.sent) != seen, timeout=2.0)
            now = time.perf_counter()
            times.extend([now] * (len(server.sent) - seen))
            seen = len(server.sent)
            if seen >= count and await pending_rows(app) == 0:
                break
    finally:
        await app.close()
        await channel.ptb.shutdown()
        result = Result("x", count)
        tally(server, ids, result)
        too_many = server.stats[429]
        await server.stop()
    burst = int(server_rate)
    steady = (len(times) - burst) / (times[-1] - times[burst]) if len(times) > burst + 1 else 0.0
    return Run(
        "adaptive" if adapt else "fixed",
        server_rate,
        count,
        times[-1] - times[0] if times else 0.0,
        steady,
        too_many,
        result.lost,
        result.duplicates,
    )


def table(runs: list[Run]) -> str:
    lines = [
        "| server rate | sender | messages | steady rate | share of server | 429s | lost | dup |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[float, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.server_rate, run.mode), []).append(run)
    for (rate, mode), group in sorted(groups.items()):
        steady = statistics.median(r.steady_rate for r in group)
        share = statistics.median(r.share for r in group)
        too_many = statistics.median(r.too_many for r in group)
        lost = sum(r.lost for r in group)
        dup = sum(r.duplicates for r in group)
        lines.append(
            f"| {rate:.0f}/s | {mode} | {group[0].messages} | {steady:.2f}/s | {share:.2f} | "
            f"{too_many:.0f} | {lost} | {dup} |"
        )
    return "\n".join(lines)


async def run_all(messages: int, rates: list[float], runs: int) -> list[Run]:
    results = []
    for index in range(runs):
        for rate in rates:
            order = (True, False) if index % 2 == 0 else (False, True)
            for adapt in order:
                run = await drain(rate, messages, adapt=adapt)
                print(
                    f"server {rate:.0f}/s {run.mode}: {run.steady_rate:.2f}/s "
                    f"({run.share:.2f}), 429s {run.too_many}, lost {run.lost}",
                    flush=True,
                )
                results.append(run)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--server-rates", default="10,30")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("sotay").setLevel(logging.WARNING)
    rates = [float(r) for r in args.server_rates.split(",")]
    runs = asyncio.run(run_all(args.messages, rates, args.runs))
    print(table(runs))


if __name__ == "__main__":
    main()
