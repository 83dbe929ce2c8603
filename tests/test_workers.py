"""Several workers (issue 14): `sotay run --workers N` on PostgreSQL behind one webhook port,
refused with one sentence where it cannot work (SQLite, polling); per-user advisory locks; JSON
logs with the same masking as text."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, text
from sqlmodel import col, select

from bot.core import Inbound
from bot.election import SCHEDULER_LOCK
from bot.jsonlog import JsonFormatter
from bot.secrecy import RedactingFilter, remember
from storage.db import Database
from storage.locks import lock_key
from storage.models import ProcessedEvent
from tests.conftest import PG_HOST, PG_PORT, World, _psql
from tests.fake_telegram import FakeTelegram
from tests.sotay_cli import run_sotay

SOTAY = [sys.executable, "-m", "bot.cli"]
TOKEN = "61:WORKERS"


def sotay_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``sotay run ARGS`` refused before it starts anything: in this process, as a new one would
    run it (tests/sotay_cli.py); the workers themselves are real processes below."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")}
    return run_sotay(["run", *args], env={**clean, "SOTAY_SECRET_KEY": "k", **env}, timeout=60)


@pytest.mark.engine_neutral
def test_several_workers_on_sqlite_are_refused_with_one_sentence(tmp_path: Path) -> None:
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SOTAY_TELEGRAM_TOKEN": "1:x"}
    result = sotay_run("--workers", "2", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "sotay: --workers above 1 needs PostgreSQL: SQLite serves one process "
        "(set SOTAY_DATABASE_URL to a postgresql+asyncpg:// URL, or run one worker)."
    )
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


@pytest.mark.engine_neutral
def test_several_workers_polling_are_refused_with_one_sentence() -> None:
    env = {
        "SOTAY_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none",
        "SOTAY_TELEGRAM_TOKEN": "1:x",
    }
    result = sotay_run("--workers", "3", env=env)
    assert result.returncode == 1
    assert "needs webhooks: Telegram would be polled by several processes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.engine_neutral
def test_json_log_lines_carry_fields_and_the_same_masking() -> None:
    remember("61:SECRET-TOKEN-VALUE")
    record = logging.LogRecord(
        "sotay.outbox", logging.WARNING, __file__, 1,
        "outbox.send_error id=%s channel=%s error=%s token 61:SECRET-TOKEN-VALUE",
        (7, "telegram", "ValueError"), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "outbox.send_error" and line["level"] == "warning"
    assert (line["id"], line["channel"], line["error"]) == ("7", "telegram", "ValueError")
    assert "SECRET-TOKEN-VALUE" not in json.dumps(line)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"sotay_workers_{os.getpid()}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _psql(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def hold_user_lock(session: Any, key: int) -> None:
    """What another worker's transaction does first for a user's update: take their lock."""
    await session.exec(select(func.pg_advisory_xact_lock(key)))


def try_lock(user_ref: str) -> Any:
    return func.pg_try_advisory_xact_lock(lock_key("telegram", user_ref))


async def test_one_users_messages_wait_for_each_other_across_workers(pg_url: str) -> None:
    """The advisory lock two workers take for one user: the second waits for the first's
    transaction; another user's does not."""
    first, second = Database(pg_url), Database(pg_url)
    try:
        async with first.session() as holding_tx:
            await hold_user_lock(holding_tx, lock_key("telegram", "42"))
            async with second.session() as other:
                assert (await other.exec(select(try_lock("42")))).one() is False
                assert (await other.exec(select(try_lock("43")))).one() is True  # another user
        async with second.session() as after:  # the first transaction ended: free again
            assert (await after.exec(select(try_lock("42")))).one() is True
    finally:
        await first.dispose()
        await second.dispose()


async def lock_waiters(db: Database) -> int:
    """Transactions waiting for an advisory lock, as the server sees them."""
    waiting = text("locktype = 'advisory' AND NOT granted")
    async with db.reader() as session:
        return (
            await session.exec(select(func.count()).select_from(text("pg_locks")).where(waiting))
        ).one()


async def recorded(session: Any, key: str) -> int:
    where = col(ProcessedEvent.key) == key
    return (await session.exec(select(func.count()).select_from(ProcessedEvent).where(where))).one()


async def test_the_second_workers_transaction_sees_what_the_first_committed_under_the_lock(
    pg_url: str,
) -> None:
    """``locked_session`` begins the transaction and takes the user's lock in one round trip;
    its first statement comes after the lock, so it reads what the lock's previous holder
    committed (a lock taken inside the reading statement would come after that statement's
    snapshot: the second worker would act on the user's state as it was before the first's
    update). An error rolls back and frees the lock; the connection goes back clean."""
    first, second, observer = Database(pg_url), Database(pg_url), Database(pg_url)
    key = lock_key("telegram", "42")
    now = datetime.now(UTC)
    try:
        async with first.locked_session(key) as holder:
            holder.add(ProcessedEvent(channel="telegram", key="u-1", at=now))
            await holder.flush()

            async def second_worker() -> int:
                async with second.locked_session(key) as session:
                    return await recorded(session, "u-1")

            reader = asyncio.create_task(second_worker())
            for _ in range(500):  # until the server shows it waiting for the lock
                if await lock_waiters(observer) == 1:
                    break
                await asyncio.sleep(0.01)
            assert await lock_waiters(observer) == 1 and not reader.done()
            async with observer.session() as other:  # another user's lock is free meanwhile
                assert (await other.exec(select(try_lock("43")))).one() is True
        assert await reader == 1  # it read after the first transaction committed

        with pytest.raises(ValueError, match="the handler failed"):
            async with first.locked_session(key) as failing:
                failing.add(ProcessedEvent(channel="telegram", key="u-2", at=now))
                await failing.flush()
                raise ValueError("the handler failed")
        async with first.locked_session(key) as after:  # the lock is free, nothing was kept
            assert await recorded(after, "u-2") == 0
        async with observer.reader() as session:  # no connection left inside a transaction
            stuck = text("datname = current_database() AND state LIKE 'idle in transaction%'")
            query = select(func.count()).select_from(text("pg_stat_activity")).where(stuck)
            assert (await session.exec(query)).one() == 0
    finally:
        for db in (first, second, observer):
            await db.dispose()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(part) for part in text.split()]


@pytest.mark.slow(seconds=20)
async def test_three_workers_behind_one_webhook_lose_nothing_when_one_is_killed(
    pg_url: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = FakeTelegram(token=TOKEN, per_chat_rate=(20, 0.05))
    await server.start()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")}
    env = {
        **clean,
        "SOTAY_DATABASE_URL": pg_url,
        "SOTAY_TELEGRAM_TOKEN": TOKEN,
        "SOTAY_TELEGRAM_API_URL": server.root,
        "SOTAY_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "SOTAY_WEBHOOK_SECRET": "workers-secret-0123456789",
        "SOTAY_WEB_PORT": str(port),
        "SOTAY_SECRET_KEY": "k",
        "SOTAY_WORKER_NAME": "w",
        "SOTAY_LOG_FORMAT": "json",
    }
    log = (tmp_path / "workers.log").open("wb")
    supervisor = await asyncio.create_subprocess_exec(
        *SOTAY, "run", "--workers", "3", env=env, stdout=log, stderr=log, cwd=tmp_path
    )
    try:
        await server.wait_for(lambda: server.calls["setWebhook"] >= 3, timeout=60)
        users = [server.user(7000 + i, language_code="vi") for i in range(60)]
        for user in users[:30]:
            await user.send("/start")
        await server.wait_for(lambda: all(len(u.messages) == 1 for u in users[:10]), timeout=60)
        victim = _children(supervisor.pid)[0]
        os.kill(victim, signal.SIGKILL)  # mid-traffic: some of the 30 may be in its hands
        for user in users[30:]:
            await user.send("/start")
        await server.wait_for(lambda: all(len(u.messages) >= 1 for u in users), timeout=90)
        await server.wait_for(lambda: server.calls["setWebhook"] >= 4, timeout=60)  # restarted
        assert victim not in _children(supervisor.pid) and len(_children(supervisor.pid)) == 3
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), timeout=15) == 0
        counts = [len(u.messages) for u in users]
        assert min(counts) == 1
        assert sum(c - 1 for c in counts) <= 2  # a kill repeats at most the requests in flight
        lines = [json.loads(line) for line in (tmp_path / "workers.log").read_text().splitlines()]
        assert any(line["event"] == "telegram.started" for line in lines)
        assert not any(TOKEN in json.dumps(line) for line in lines)
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
        log.close()
        await server.stop()


async def until(election: Any, condition: Any, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Wait for ``condition()``, re-checked whenever the election changes something."""
    async with asyncio.timeout(timeout):
        while not condition():
            await election.changed.wait()
            election.changed.clear()


async def test_one_worker_runs_the_scheduler_and_another_takes_over_when_it_dies(
    pg_url: str,
) -> None:
    from bot.app import App
    from bot.settings import load_settings

    settings = load_settings(database_url=pg_url, secret_key="k", heartbeat="1s", _env_file=None)
    first, second = App(settings), App(settings)
    try:
        await first.start_background()
        await until(first.election, lambda: first.scheduler.running)
        await second.start_background()
        await until(second.election, lambda: second.election.alive)
        assert not second.scheduler.running  # a standby: one scheduler among the workers
        assert (await second.readiness())[0]  # and ready all the same
        async with second.db.session() as session:  # the holder's connection dies
            killed = await session.exec(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND classid = :high AND objid = :low"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ).bindparams(high=SCHEDULER_LOCK >> 32, low=SCHEDULER_LOCK & 0xFFFFFFFF)
            )
            assert killed.all() == [(True,)]
        await until(second.election, lambda: second.scheduler.running)
        await until(first.election, lambda: not first.scheduler.running)  # it stepped down
    finally:
        await second.close()
        await first.close()


async def _someone_waits_for_an_advisory_lock(db: Database) -> None:
    waiting = (
        select(func.count())
        .select_from(text("pg_locks"))
        .where(
            text(
                "locktype = 'advisory' AND NOT granted AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    )
    async with asyncio.timeout(20):
        while True:
            async with db.reader() as session:
                if (await session.exec(waiting)).one():
                    return
            await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # several workers
async def test_an_update_waits_while_another_worker_handles_the_same_user(
    world: World, database_url: str
) -> None:
    """The router takes the user's advisory lock with its first statement (the processed-event
    record): while another worker's transaction holds it, the update waits; then it goes on."""
    other_worker = Database(database_url)
    event = Inbound(channel="rec", user_ref="u-lock", chat_ref="u-lock", key="lk-1", text="/start")
    try:
        async with other_worker.session() as busy:
            await hold_user_lock(busy, lock_key("rec", "u-lock"))
            handled = asyncio.create_task(world.app.router.handle(event))
            await _someone_waits_for_an_advisory_lock(other_worker)
            assert not handled.done()
        assert await asyncio.wait_for(handled, 30) is True
        await world.app.dispatcher.run_once()
        assert world.recorder.sent.get("u-lock"), "the update was answered once the lock was free"
    finally:
        await other_worker.dispose()
