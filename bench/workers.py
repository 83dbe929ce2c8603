"""Worker scaling (issue 14): updates per second handled by `sotay run --workers K` on
PostgreSQL behind one webhook port, K = 1 (the baseline, measured in the same run), 2, 3.

    .venv/bin/python -m bench.workers [--users 150] [--rounds 4] [--workers 1,2,3] [--runs 2]

The fake Bot API (tests/fake_telegram.py, rate limits off) answers the bot's calls; the updates
are POSTed to the workers' port directly, ``--concurrency`` at a time (Telegram keeps up to 40
webhook connections open), because the fake delivers its webhook one update at a time. Each of
``--users`` people sends ``--rounds`` updates (/start, /help, /privacy, … — each one handled in
a transaction and answered); the figure is updates / seconds from the first POST to the last
answer reaching the fake server. Runs are interleaved (1, 2, 3, 1, 2, 3, …) and each database is
fresh; the median per K is reported. Figures only mean something on an otherwise idle machine
with at least K cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import aiohttp

from tests.fake_telegram import FakeTelegram

TOKEN = "71:BENCH"
SECRET = "bench-secret-0123456789"
TEXTS = ["/start", "/help", "/privacy", "/help", "/privacy", "/help"]


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", sql],
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def update(update_id: int, user_id: int, text: str) -> dict[str, object]:
    command = text.split()[0]
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "A"},
            "from": {"id": user_id, "is_bot": False, "first_name": "A", "language_code": "vi"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        },
    }


async def one_run(workers: int, users: int, rounds: int, concurrency: int, tag: str) -> float:
    database = f"sotay_bench_workers_{os.getpid()}_{tag}"
    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(f"CREATE DATABASE {database}")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    server = FakeTelegram(token=TOKEN, global_rate=(10**6, 1.0), per_chat_rate=(10**6, 1.0))
    await server.start()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")},
        "SOTAY_DATABASE_URL": url,
        "SOTAY_TELEGRAM_TOKEN": TOKEN,
        "SOTAY_TELEGRAM_API_URL": server.root,
        "SOTAY_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "SOTAY_WEBHOOK_SECRET": SECRET,
        "SOTAY_WEB_PORT": str(port),
        "SOTAY_SECRET_KEY": "k",
        "SOTAY_TELEGRAM_OVERALL_RATE": "100000",
        "SOTAY_TELEGRAM_CHAT_RATE": "1000",
        "SOTAY_TELEGRAM_CHAT_BURST": "1000",
        "SOTAY_OUTBOX_IN_FLIGHT": "16",
    }
    sotay = [sys.executable, "-m", "bot.cli"]
    upgrade = await asyncio.create_subprocess_exec(
        *sotay, "db", "upgrade", env=env, stdout=subprocess.DEVNULL
    )
    assert await upgrade.wait() == 0
    process = await asyncio.create_subprocess_exec(
        *sotay, "run", "--workers", str(workers), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await server.wait_for(lambda: server.calls["setWebhook"] >= workers, timeout=120)
        people = [server.user(900_000 + i, language_code="vi") for i in range(users)]
        for person in people:
            person.started = True
        expected = users * rounds
        pending = [
            update(1 + r * users + i, person.id, TEXTS[r % len(TEXTS)])
            for r in range(rounds)
            for i, person in enumerate(people)
        ]
        gate = asyncio.Semaphore(concurrency)
        url_hook = f"http://127.0.0.1:{port}/telegram"
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with aiohttp.ClientSession() as http:

            async def post(body: dict[str, object]) -> None:
                async with gate, http.post(url_hook, json=body, headers=headers) as response:
                    assert response.status == 200, response.status

            started = time.perf_counter()
            # one round after the other: a person's next update after their previous one
            for r in range(rounds):
                await asyncio.gather(*(post(b) for b in pending[r * users : (r + 1) * users]))
            await server.wait_for(
                lambda: sum(len(p.messages) for p in people) >= expected, timeout=600
            )
            return expected / (time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await server.stop()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=40)
    args = parser.parse_args()
    counts = [int(k) for k in args.workers.split(",")]
    rates: dict[int, list[float]] = {k: [] for k in counts}
    for run in range(args.runs):
        for k in counts:
            rate = await one_run(k, args.users, args.rounds, args.concurrency, f"{run}_{k}")
            rates[k].append(rate)
            print(f"run {run + 1} workers={k}: {rate:.1f} updates/s", flush=True)
    base = statistics.median(rates[counts[0]])
    print("\n| workers | updates/s (median) | runs | × baseline (1 worker) |")
    print("|---|---|---|---|")
    for k in counts:
        median = statistics.median(rates[k])
        runs = ", ".join(f"{r:.1f}" for r in rates[k])
        print(f"| {k} | {median:.1f} | {runs} | {median / base:.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    asyncio.run(main())
