"""Async engine and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on, so readers never block the one writer and a
dangling reference is an error, as on PostgreSQL. No blocking database call may run on the
event loop: everything here is async.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

_holding_write_lock: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_lock", default=False
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
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


def make_engine(url: str, *, readonly: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_manual_transactions)
        begin = _sqlite_begin_deferred if readonly else _sqlite_begin_immediate
        event.listen(engine.sync_engine, "begin", begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


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
        if self._write_lock is None or _holding_write_lock.get():
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            token = _holding_write_lock.set(True)
            try:
                async with self._sessions() as session, session.begin():
                    yield session
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
