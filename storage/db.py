"""Async engine and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on, so readers never block the one writer and a
dangling reference is an error, as on PostgreSQL. Nothing here waits on the event loop: a
writer's statements run on it (``storage.sqlite_inline``: they take microseconds, and waiting
for another process's write lock is an asyncio sleep), readers go through aiosqlite's thread,
and PostgreSQL through asyncpg.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import TextClause, UpdateBase, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from storage.sqlite_inline import inline_url

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

POOL_SIZE = 20  # PostgreSQL connections per process; 3 workers stay well under max_connections
SQLITE_WAIT = 30.0  # seconds a statement may wait for another process's write lock

_holding_write_lock: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_lock", default=False
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)


def _sqlite_begin_immediate(conn: Any) -> None:
    """Writers take the write lock up front. A deferred transaction that reads, then writes,
    fails at once with "database is locked" when another writer got in between; an immediate
    one waits its turn (busy_timeout) instead."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement built once (its cache key is then memoized on it: building a statement
    costs several times running it) and the parameters of one run of it. The statement is a
    Core one (on tables, not mapped classes): with parameters, an ORM insert would be taken for
    a bulk insert of mapped objects. Run it on the session's connection (``run``)."""

    statement: UpdateBase | TextClause  # a write: insert, update or delete
    params: dict[str, Any]

    async def run(self, session: AsyncSession) -> None:
        """In ``session``'s transaction, without the ORM: a Core write flushes nothing."""
        connection = await session.connection()
        await connection.execute(self.statement, self.params)


def make_engine(url: str, *, readonly: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Writers run their statements on the loop (storage.sqlite_inline says why it is
        # safe); readers, which serve the long reads of reports and the dashboard, keep
        # aiosqlite's thread so that such a read never holds up the loop.
        engine = create_async_engine(
            url if readonly else inline_url(url), connect_args={"timeout": SQLITE_WAIT}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_manual_transactions)
        begin = _sqlite_begin_deferred if readonly else _sqlite_begin_immediate
        event.listen(engine.sync_engine, "begin", begin)
        return engine
    # The same 20 connections at most as before (10 + 10 overflow), all kept: an overflow
    # connection is closed when it comes back, so under load (more than 10 sessions at once)
    # the pool opened and closed a connection every few updates, each a PostgreSQL backend
    # started and a cold prepared-statement cache (bench.core_throughput, 1,600 updates,
    # 50 members at once: 287-437 connections opened; now 20).
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
    _ping_when_idle(engine)
    return engine


IDLE_BEFORE_PING = 5.0  # seconds a pooled connection may rest before it is pinged at checkout


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection that rested a while: a busy
    bot checks a connection out several times per update, and a ping each time is a round trip
    to the server each time. One that fails its ping is replaced (the pool's documented
    "disconnect handling, custom" recipe); one dropped while in use fails that transaction and
    the pool is invalidated, as with ``pool_pre_ping``."""
    dialect = engine.sync_engine.dialect

    def checkin(_dbapi: Any, record: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    def checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("rested_since")
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return
        try:
            dialect.do_ping(dbapi)
        except Exception as exc:  # noqa: BLE001 - whatever broke it, the pool reconnects
            raise DisconnectionError from exc

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


class Database:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, url: str) -> None:
        # Imported here: ``make_engine`` alone (the quick schema check) needs no SQLModel.
        from sqlmodel.ext.asyncio.session import AsyncSession

        self.url = url
        self.engine = make_engine(url)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        # On SQLite, reads get their own engine with plain BEGIN so they never queue behind writers.
        self._read_engine = (
            make_engine(url, readonly=True) if url.startswith("sqlite") else self.engine
        )
        self._read_sessions = async_sessionmaker(
            self._read_engine, class_=AsyncSession, expire_on_commit=False
        )
        self._write_lock = asyncio.Lock() if url.startswith("sqlite") else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        SQLite has one writer at a time; writers of this process take turns on an asyncio lock
        instead of spinning in SQLite's busy handler (which, under load, ends in "database is
        locked"). The lock is re-entrant per task so a nested write session cannot deadlock.
        """
        async with self._write_turn(), self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection in a transaction, committed on success: for a few statements
        without the ORM (cheaper than a session), taking the same turns as ``session``."""
        async with self._write_turn(), self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each commit on their own, for writes that need not
        commit together: on PostgreSQL that spares a transaction's BEGIN and COMMIT round trips
        (an executemany is still atomic: asyncpg runs it as one). On SQLite a transaction as in
        ``connection`` (statements there cost microseconds, commits a sync of the WAL)."""
        if self._write_lock is not None:
            async with self.connection() as connection:
                yield connection
            return
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    @asynccontextmanager
    async def autocommit_session(self) -> AsyncIterator[AsyncSession]:
        """A session on ``autocommit``'s connection: for one write statement whose result the
        ORM should load (the dispatcher's claim), without BEGIN and COMMIT on PostgreSQL."""
        if self._write_lock is not None:
            async with self.session() as session:
                yield session
            return
        async with self.autocommit() as connection, self._sessions(bind=connection) as session:
            yield session

    @asynccontextmanager
    async def locked_session(self, lock: int | None) -> AsyncIterator[AsyncSession]:
        """``session``, whose transaction first takes the advisory lock ``lock`` (an integer,
        ``storage.locks.lock_key``) until it ends: several workers handle one user's messages
        one after the other.

        On PostgreSQL the transaction is begun here, with the lock, in one round trip (a simple
        query of two statements on an autocommit connection; SQLAlchemy's own BEGIN is a round
        trip of its own, and a lock taken inside the first statement of the transaction comes
        after that statement's snapshot, so the statement cannot also read). Everything the
        session runs afterwards sees what the lock's previous holder committed. COMMIT, or
        ROLLBACK on any error, is ours too; a connection whose ROLLBACK fails is discarded, never
        pooled mid-transaction. On SQLite (one process, in-process locks) and without a lock,
        ``session``."""
        if self._write_lock is not None or lock is None:
            async with self.session() as session:
                yield session
            return
        async with self.autocommit() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection has its asyncpg connection
            await driver.execute(
                f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({int(lock)})"
            )
            try:
                async with self._sessions(bind=connection) as session, session.begin():
                    yield session  # the session's commit flushes; the database's is below
            except BaseException:
                try:
                    await driver.execute("ROLLBACK")
                except BaseException:
                    await connection.invalidate()
                    raise
                raise
            await driver.execute("COMMIT")

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        if self._write_lock is None or _holding_write_lock.get():
            yield
            return
        async with self._write_lock:
            token = _holding_write_lock.set(True)
            try:
                yield
            finally:
                _holding_write_lock.reset(token)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (it may see a snapshot slightly behind the writers)."""
        async with self._read_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()
