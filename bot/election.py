"""One scheduler among several workers on PostgreSQL (issue 14).

Every worker runs the dispatcher; only the holder of a session-level advisory lock, taken on a
connection of its own, runs the scheduler. PostgreSQL releases the lock when that connection
ends, so when the holder dies (SIGKILL, a lost host) another worker's next try wins, within
``interval``. Due work is claimed with SKIP LOCKED besides, so even two schedulers for a moment
would not run a job twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database

log = logging.getLogger("sotay.election")

SCHEDULER_LOCK = 0x736F746179  # "sotay": the advisory lock key of the scheduler's holder


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class SchedulerElection:
    def __init__(self, db: Database, scheduler: Startable, *, interval: float = 2.0) -> None:
        self._db = db
        self._scheduler = scheduler
        self._interval = interval
        self.holder = False
        self.alive = False  # the election loop runs: a standby worker is ready too
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set whenever ``holder`` or ``alive`` changes

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._step_down()

    async def _run(self) -> None:
        self.alive = True
        self.changed.set()
        try:
            while True:
                try:
                    await self._campaign()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the connection died: try again
                    log.warning("election.connection_lost error=%s", type(exc).__name__)
                    await self._step_down()
                await asyncio.sleep(self._interval)
        finally:
            self.alive = False
            self.changed.set()

    async def _campaign(self) -> None:
        """Try for the lock until won, then keep its connection alive (and so the lock)."""
        async with self._db.engine.connect() as conn:
            try:
                await self._hold(conn)
            finally:  # a pooled connection would keep the lock: give it back first
                if self.holder:
                    with contextlib.suppress(Exception):
                        await conn.execute(select(func.pg_advisory_unlock(SCHEDULER_LOCK)))
                        await conn.commit()

    async def _hold(self, conn: AsyncConnection) -> None:
        while True:
            if not self.holder:
                won = await conn.execute(select(func.pg_try_advisory_lock(SCHEDULER_LOCK)))
                if won.scalar():
                    log.info("election.won")
                    self.holder = True
                    await self._scheduler.start()
                    self.changed.set()
            else:
                await conn.execute(select(1))  # a dead connection shows here
            await conn.commit()  # the lock is the session's, not a transaction's
            await asyncio.sleep(self._interval)

    async def _step_down(self) -> None:
        if self.holder:
            self.holder = False
            await self._scheduler.stop()
            self.changed.set()
            log.info("election.stepped_down")
