"""The SQLite writer runs its statements on the event loop (storage/sqlite_inline.py): waiting
for another process's write lock must leave the loop free, and must end at the timeout."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import storage.db
import storage.sqlite_inline
from storage.db import Database


@pytest.fixture
def db_path(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "inline.db"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture
def other_process_writing(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection of its own (as a `sotay` command would have) holding the write lock."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE scratch (x INTEGER)")
    yield other
    if other.in_transaction:
        other.rollback()
    other.close()


class _Watched:
    """Replaces the pause between tries: says when the writer first waits."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.pauses = 0

    async def __call__(self, seconds: float) -> None:
        self.pauses += 1
        self.waiting.set()
        await asyncio.sleep(seconds)


async def _write(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            text("INSERT INTO processedevent (channel, key, at) VALUES ('t', 'k', '2026-01-01')")
        )


def _keys(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [key for (key,) in conn.execute("SELECT key FROM processedevent")]


async def test_writer_waits_for_another_process_without_holding_the_loop(
    db_path: Path, other_process_writing: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = _Watched()
    monkeypatch.setattr(storage.sqlite_inline, "_pause", watched)
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        assert db.engine.dialect.driver == storage.sqlite_inline.DRIVER
        started = time.monotonic()
        writer = asyncio.create_task(_write(db))
        await asyncio.wait_for(watched.waiting.wait(), timeout=storage.db.SQLITE_WAIT)
        # SQLite's own busy handler would have slept on the loop for the whole timeout first.
        assert time.monotonic() - started < storage.db.SQLITE_WAIT / 3
        assert not writer.done()
        other_process_writing.commit()
        await asyncio.wait_for(writer, timeout=10)
        assert _keys(db_path) == ["k"]
        assert watched.pauses >= 1
    finally:
        await db.dispose()


async def test_writer_gives_up_at_its_timeout_and_writes_nothing(
    db_path: Path, other_process_writing: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "SQLITE_WAIT", 0.3)
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        with pytest.raises(Exception, match="database is locked"):
            await asyncio.wait_for(_write(db), timeout=10)
        other_process_writing.rollback()
        assert _keys(db_path) == []
        await _write(db)  # the pool's connection is usable again once the lock is free
    finally:
        await db.dispose()
