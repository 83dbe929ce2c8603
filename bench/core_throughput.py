"""Core throughput: the bot process's own CPU per update, registration against an echo bot.

    .venv/bin/python -m bench.core_throughput [--members 200] [--concurrency 50] [--rounds 3]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/] [--write-docs]
        [--profile DIR]

``bench.registration`` runs the bots in the process that also serves the fake Bot API and plays
the users, so its CPU column includes their cost. Here each bot runs alone in a child process
(``--child``, started by the parent), and the parent serves ``tests.fake_telegram`` over real
HTTP and plays the users. The child reports its own process CPU time (every thread: the event
loop, aiosqlite's worker thread, asyncpg) from the moment the parent says "go" to "stop", i.e.
exactly while the users are driven. Each round runs the echo bot, sotay on SQLite and sotay on
PostgreSQL, in a rotating order (interleaved, so the machine's load hits all three alike); the
summary is the median of the rounds. Every sotay run gets a fresh, migrated and seeded database.

``--profile DIR`` writes a cProfile of each child's measured phase (main thread) to DIR.
``--write-docs`` replaces the ``## Core throughput`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.docs import DOCS, cores_and_python, git_state, load_average, system, wrap, write_section
from bench.registration import (
    BOT_LIMIT_SETTINGS,
    ECHO_IDS,
    SOTAY_IDS,
    STEPS,
    TOKEN,
    UNLIMITED,
    Result,
    chat_with_echo,
    database,
    drive,
    echo_bot,
    make_roster,
    register,
    seed,
)
from bot.app import App
from bot.channels.telegram import TelegramChannel
from bot.settings import load_settings
from tests.fake_telegram import FakeTelegram, FakeUser

SECTION = "## Core throughput"
BOTS = ("echo", "sqlite", "postgresql")
LABELS = {
    "echo": "echo bot (PTB baseline)",
    "sqlite": "sotay registration, SQLite",
    "postgresql": "sotay registration, PostgreSQL",
}
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/"
ROOT = Path(__file__).resolve().parent.parent
BEFORE = "@before"  # sotay from the --before checkout, e.g. "sqlite@before"
# The child runs this file with the code of its checkout first on sys.path (its working directory)
CHILD = f"import runpy; runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"


# --------------------------------------------------------------------------------------------
# The child: one bot, alone in its process
# --------------------------------------------------------------------------------------------


async def _read_line() -> str:
    """The parent's next command on stdin (a blocked thread costs no CPU)."""
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _measure(statements: Counter[str], profile: str | None) -> None:
    """Wait for "go", measure until "stop", report the CPU and SQL statements as JSON."""
    if await _read_line() != "go":
        raise SystemExit("expected go")
    statements.clear()
    profiler = cProfile.Profile(time.thread_time) if profile else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    _say("going")
    if await _read_line() != "stop":
        raise SystemExit("expected stop")
    if profiler is not None:
        profiler.disable()
    used = time.process_time() - cpu
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    _say(json.dumps({"cpu": used, "statements": dict(statements)}))


async def child_sotay(api_root: str, url: str, profile: str | None) -> None:
    settings = load_settings(
        database_url=url,
        telegram_token=TOKEN,
        telegram_api_url=api_root,
        secret_key="bench-secret",
        _env_file=None,
        **dict.fromkeys(BOT_LIMIT_SETTINGS, UNLIMITED),  # the bot is measured, not its pacing
    )
    app = App(settings)
    channel = TelegramChannel(settings, app.router.handle)
    app.add_channel(channel)
    statements: Counter[str] = Counter()

    def count_sql(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements[statement.split(None, 1)[0].upper()] += 1

    event.listen(app.db.engine.sync_engine, "before_cursor_execute", count_sql)
    try:
        await channel.start()
        app.services.bot_username = channel.username
        await app.start_background()
        _say("ready")
        await _measure(statements, profile)
    finally:
        await channel.stop()
        await app.close()


async def child_echo(api_root: str, profile: str | None) -> None:
    ptb = echo_bot(api_root)
    await ptb.initialize()
    try:
        assert ptb.updater is not None
        await ptb.updater.start_polling()
        await ptb.start()
        _say("ready")
        await _measure(Counter(), profile)
    finally:
        if ptb.updater is not None and ptb.updater.running:
            await ptb.updater.stop()
        if ptb.running:
            await ptb.stop()
        await ptb.shutdown()


# --------------------------------------------------------------------------------------------
# The parent: the fake server and the users, one child per run
# --------------------------------------------------------------------------------------------


@dataclass
class Measured:
    bot: str
    result: Result
    statements: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def sql_per_update(self) -> float:
        sql = sum(n for verb, n in self.statements.items() if verb not in ("BEGIN", "COMMIT"))
        return self.result.per_update(sql)

    @property
    def calls_per_update(self) -> float:
        return self.result.per_update(sum(self.result.calls.values()))


async def _expect_line(stream: asyncio.StreamReader, what: str) -> str:
    async with asyncio.timeout(120):
        line = (await stream.readline()).decode().strip()
    if not line.startswith(what):
        raise RuntimeError(f"the bot process said {line!r}, expected {what!r}")
    return line


def label(bot: str, before: str | None) -> str:
    kind, _, tree = bot.partition("@")
    return LABELS[kind] + (f", before ({before})" if tree else "")


async def one_run(
    bot: str,
    url: str | None,
    phones: list[str],
    concurrency: int,
    profile: str | None,
    before: str | None,
) -> Measured:
    server = FakeTelegram(token=TOKEN, rate_limits=False)
    await server.start()
    kind = bot.partition("@")[0]
    command = [sys.executable, "-c", CHILD, "--child", kind, server.root]
    if url is not None:
        command += ["--child-database-url", url]
    if profile:
        command += ["--child-profile", profile]
    child = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=before if bot.endswith(BEFORE) and before else ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    measured = Measured(bot, Result(label(bot, before)))
    try:
        await _expect_line(child.stdout, "ready")
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        await _expect_line(child.stdout, "going")

        async def script(user: FakeUser, i: int) -> None:
            if kind == "echo":
                await chat_with_echo(user, measured.result)
            else:
                await register(user, phones[i], measured.result)

        first_id = ECHO_IDS if kind == "echo" else SOTAY_IDS
        await drive(server, measured.result, len(phones), concurrency, first_id, script)
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        report = json.loads(await _expect_line(child.stdout, "{"))
        measured.result.cpu = report["cpu"]  # the bot's own process, not this one
        measured.statements = report["statements"]
        child.stdin.close()
        if await asyncio.wait_for(child.wait(), 60):
            measured.problems.append(f"the bot process exited with {child.returncode}")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await server.stop()
    result = measured.result
    failed = Counter(
        f"{c.method} {c.status}"
        for c in server.requests
        if c.status != 200 and c.method.lower() != "getupdates"
    )
    measured.problems += [f"{result.name}: {line}" for line in result.failures[:3]]
    if failed:
        measured.problems.append(f"{result.name}: Bot API errors {dict(failed)}")
    if server.internal_errors:
        measured.problems.append(f"fake server internal errors: {len(server.internal_errors)}")
    return measured


@contextmanager
def fresh_database(kind: str, postgres: str, n: int) -> Iterator[str | None]:
    if kind == "echo":
        yield None
    elif kind == "sqlite":
        with database(None) as (url, _label):
            yield url
    else:
        with database(f"{postgres.rstrip('/')}/sotay_core_{os.getpid()}_{n}") as (url, _label):
            yield url


def measure(
    bot: str,
    postgres: str,
    n: int,
    members: int,
    concurrency: int,
    profile: str | None,
    before: str | None,
) -> Measured:
    """One run of ``bot`` on a fresh database (migrated outside the event loop, then seeded)."""
    text, phones = make_roster(members)

    async def seeded_run(url: str | None) -> Measured:
        if url is not None:
            await seed(url, text, members)
        return await one_run(bot, url, phones, concurrency, profile, before)

    with fresh_database(bot.partition("@")[0], postgres, n) as url:
        return asyncio.run(seeded_run(url))


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summary_table(runs: dict[str, list[Measured]], before: str | None) -> str:
    echo_cpu = median([m.result.cpu_ms for m in runs["echo"]])
    echo_rate = median([m.result.rate for m in runs["echo"]])
    lines = [
        "| bot | runs | CPU ms/update (each run) | median | × echo | updates/s (median) "
        "| × echo | Bot API calls/update | SQL/update |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for bot, measured in runs.items():
        cpu = median([m.result.cpu_ms for m in measured])
        rate = median([m.result.rate for m in measured])
        each = ", ".join(f"{m.result.cpu_ms:.1f}" for m in measured)
        calls = median([m.calls_per_update for m in measured])
        sql = "–" if bot == "echo" else f"{median([m.sql_per_update for m in measured]):.1f}"
        lines.append(
            f"| {label(bot, before)} | {len(measured)} | {each} | {cpu:.1f} | {cpu / echo_cpu:.2f} "
            f"| {rate:.1f} | {rate / echo_rate:.2f} | {calls:.2f} | {sql} |"
        )
    return "\n".join(lines)


def calls_line(measured: list[Measured]) -> str:
    total: Counter[str] = Counter()
    updates = 0
    for m in measured:
        total.update(m.result.calls)
        updates += m.result.updates
    return ", ".join(f"{n / updates:.2f} {method}" for method, n in total.most_common(4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bots", default=",".join(BOTS), help="which of echo,sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="server to create DBs on")
    parser.add_argument("--profile", help="directory for one cProfile per child run")
    parser.add_argument(
        "--before",
        help="another checkout (e.g. `git archive main`): its sotay runs too, interleaved",
    )
    parser.add_argument("--before-label", help="what --before is, for the table (e.g. main)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, metavar=("BOT", "API_ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-database-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.child:
        bot, root = args.child
        if bot == "echo":
            asyncio.run(child_echo(root, args.child_profile))
        else:
            asyncio.run(child_sotay(root, args.child_database_url, args.child_profile))
        return

    bots = [b for b in args.bots.split(",") if b]
    if "echo" not in bots or set(bots) - set(BOTS):
        raise SystemExit(f"--bots: some of {','.join(BOTS)}, echo always included")
    if args.before:
        args.before = str(Path(args.before).resolve())
        bots += [bot + BEFORE for bot in bots if bot != "echo"]
    load = load_average()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: dict[str, list[Measured]] = {bot: [] for bot in bots}
    problems: list[str] = []
    for n in range(args.rounds):
        order = bots[n % len(bots) :] + bots[: n % len(bots)]  # rotate: interleaved runs
        for bot in order:
            profile = str(Path(args.profile) / f"{bot}-{n}.prof") if args.profile else None
            done = measure(
                bot, args.postgres_url, n, args.members, args.concurrency, profile, args.before
            )
            runs[bot].append(done)
            problems += done.problems
            r = done.result
            print(
                f"round {n + 1} {bot}: {r.updates} updates, {r.wall:.1f} s, {r.rate:.1f}/s, "
                f"bot CPU {r.cpu_ms:.1f} ms/update, {done.sql_per_update:.1f} SQL/update",
                flush=True,
            )

    table = summary_table(runs, args.before_label or args.before)
    print("\n" + table)
    for bot in bots:
        print(f"per update, {bot}: {calls_line(runs[bot])}")
    print("\nproblems:" if problems else "\nproblems: none")
    for line in problems:
        print(line)

    command = ".venv/bin/python -m bench.core_throughput"
    command += f" --members {args.members} --concurrency {args.concurrency}"
    command += f" --rounds {args.rounds}"
    if args.bots != ",".join(BOTS):
        command += f" --bots {args.bots}"
    if args.before:
        command += f" --before {args.before}"
    if args.before_label:
        command += f" --before-label {args.before_label}"
    if args.write_docs:
        command += " --write-docs"
    per_bot = "; ".join(f"{bot}: {calls_line(runs[bot])}" for bot in bots)
    body = "\n\n".join(
        [
            f"Command (from the repository root):\n`{command}`",
            wrap(
                f"Machine: {cores_and_python()}, {system()}; shared, 1-minute load average "
                f"{load:.2f} when the run started; {started}, {git_state()}."
            ),
            wrap(
                f"{args.members} roster members register, at most {args.concurrency} at a time "
                f"({STEPS} updates each, as in the registration benchmark), and as many echo "
                "users send 8 texts each. Unlike there, each bot runs alone in a child process; "
                "the fake Bot API server (`tests.fake_telegram`, rate limits off, real HTTP) and "
                "the simulated users run in the parent. CPU: the bot process's own CPU time "
                "(all its threads) while the users were driven, per update. Each round runs "
                "the bots one after the other, in a rotating order; a fresh migrated "
                "database per sotay run; the bot's own pacing to Telegram's limits is lifted. "
                f"Medians of {args.rounds} rounds."
            ),
            table,
            wrap(f"- Bot API calls per update (all runs): {per_bot}.", bullet=True)
            + "\n"
            + wrap(
                "- updates/s is wall-clock and moves with the load of this shared machine; the "
                "CPU column is the bot's own cost and moves much less.",
                bullet=True,
            )
            + "\n"
            + wrap(
                "- No errors, lost replies or failed Bot API calls during the runs."
                if not problems
                else f"- The runs reported {len(problems)} problem line(s); see the output.",
                bullet=True,
            ),
        ]
    )
    if args.write_docs:
        write_section(SECTION, body)
        print(f"\nwrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()
