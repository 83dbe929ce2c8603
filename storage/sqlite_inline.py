"""SQLite for SQLAlchemy's asyncio extension, with statements run on the event loop.

Why not aiosqlite: it runs each connection's calls on a thread of its own, and SQLAlchemy's
adapter makes four calls per statement (cursor, execute, fetch, close), so each statement costs
four round trips between the loop and that thread (a queue put, a wake-up, a future completed
from the other thread). Measured in ``bench.core_throughput``, those hops were about a third of
the bot's CPU per update on SQLite, while the statements themselves take microseconds.

Why this is safe for the one thing that can wait, the write lock: connections run with
``busy_timeout`` 0, so SQLite never sleeps on the loop. A statement outside a transaction (in
practice ``BEGIN IMMEDIATE`` while another process, such as a ``sotay`` command, writes) that
finds the database busy is retried after an asyncio sleep that lets the loop go on, until the
connection's ``timeout``. Inside a transaction a busy error is raised at once, as SQLite wants
(retrying cannot help there). Writers of this process already take turns on an asyncio lock
(``storage.db.Database``), so they never meet each other in SQLite's lock.

What still runs on the loop is a statement's own work: for a long analytical read that would
hold the loop too long, ``storage.db`` keeps aiosqlite (a thread) for the engine that serves
reports and the dashboard.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.util.concurrency import await_only

DRIVER = "sotay_inline"
"""The driver name in a URL (``sqlite+sotay_inline:///…``); ``storage.db`` sets it itself."""

_BUSY = sqlite3.SQLITE_BUSY
_pause = asyncio.sleep  # the wait between tries (a test watches it)
_FIRST_PAUSE = 0.002  # seconds before the first retry; doubled each time up to _LONGEST_PAUSE
_LONGEST_PAUSE = 0.1


async def _passed() -> None:
    """Awaited once per statement: SQLAlchemy's ``AsyncConnection`` refuses a call in which
    the driver awaited nothing (its check for a sync driver by mistake). It costs two greenlet
    switches and never yields to the loop."""


class InlineCursor(sqlite3.Cursor):
    """A sqlite3 cursor whose statements, outside a transaction, wait for a busy database
    without blocking the event loop."""

    connection: InlineConnection

    def execute(self, sql: str, parameters: Any = (), /) -> InlineCursor:
        self._run(lambda: super(InlineCursor, self).execute(sql, parameters))
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> InlineCursor:
        rows = list(seq_of_parameters)  # an iterator cannot be replayed on retry
        self._run(lambda: super(InlineCursor, self).executemany(sql, rows))
        return self

    def _run(self, statement: Callable[[], object]) -> None:
        await_only(_passed())
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if not self._may_retry(error):
                raise
        self._retry(statement)

    async def _async_soft_close(self) -> None:
        """SQLAlchemy's async results await this; the rows are already fetched (nothing to do)."""

    def _may_retry(self, error: sqlite3.OperationalError) -> bool:
        busy = getattr(error, "sqlite_errorcode", None) == _BUSY
        return busy and not self.connection.in_transaction

    def _retry(self, statement: Callable[[], object]) -> None:
        deadline = time.monotonic() + self.connection.wait_for_lock
        pause = _FIRST_PAUSE
        while True:
            await_only(_pause(pause))
            try:
                statement()
                return
            except sqlite3.OperationalError as error:
                if not self._may_retry(error) or time.monotonic() + pause > deadline:
                    raise
            pause = min(pause * 2, _LONGEST_PAUSE)


class InlineConnection(sqlite3.Connection):
    """A sqlite3 connection that makes ``InlineCursor`` cursors and remembers how long a
    statement may wait for a busy database (the URL's or connect_args' ``timeout``)."""

    wait_for_lock: float = 5.0

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, declared async so that ``create_async_engine`` accepts it: SQLAlchemy runs
    the sync driver inside its greenlet, so a statement is a plain function call."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    has_terminate = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        kwargs["factory"] = InlineConnection
        # SQLAlchemy may close a connection outside the thread that opened it (a garbage-collected
        # checkout); statements themselves all run on the event loop's thread.
        kwargs["check_same_thread"] = False
        return args, kwargs

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        # Here, not in create_connect_args: the engine's connect_args are merged after that.
        wait = float(kwargs.pop("timeout", InlineConnection.wait_for_lock))
        connection = super().connect(*args, timeout=0, **kwargs)  # no busy handler: see above
        connection.wait_for_lock = wait
        return connection

    def do_terminate(self, dbapi_connection: Any) -> None:
        dbapi_connection.close()

    def get_driver_connection(self, connection: Any) -> Any:
        return connection


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")


def inline_url(url: str | URL) -> URL:
    """The same SQLite database, reached through this driver."""
    return make_url(url).set(drivername=f"sqlite+{DRIVER}")
