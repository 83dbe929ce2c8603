"""Group commit for the dispatcher's per-row writes (issue 14's crash safety).

Before a request starts, its row is marked ``sending_at`` and that mark is committed; when the
answer comes, the outcome is recorded and the mark cleared. Every lane's marks and outcomes
that arrive while one commit is running go into the next one, so a commit never waits behind a
queue of single-row transactions: the window between an answer and its record stays one commit
long. A SIGKILL therefore repeats only the rows still marked — requests whose answer was lost.

At most as many rows are marked at once as the window of requests in flight allows
(``bot/inflight.py``): 2 on a near Bot API, more where the answer time needs more for the
target rate (Little's law), never more than ``SOTAY_OUTBOX_IN_FLIGHT_MAX``. That is the bound
on what a kill repeats, whatever the load.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import TextClause, Update, UpdateBase, bindparam, delete, update
from sqlmodel import col

from bot.inflight import InFlightWindow
from storage.db import Database, Prepared
from storage.models import OutboxMessage


@dataclass(frozen=True)
class _Write:
    row_id: int
    values: dict[str, Any] | None  # None: delete the row
    before: Prepared | None = None  # written first, in the same commit
    attempted: bool = False  # one more attempt: ``attempts`` goes up by one


class SendJournal:
    """Queues small outbox writes and commits all that are waiting in one transaction."""

    def __init__(self, db: Database, window: InFlightWindow | None = None) -> None:
        self._db = db
        self.window = window or InFlightWindow()
        self._queue: list[tuple[_Write, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def sending(self, row_id: int, at: datetime, before: Prepared | None = None) -> None:
        """Returns once it is durable that this row's request is about to start; ``before``
        (e.g. the chat's offered choices) is committed with the mark, ahead of it. The caller
        holds the row's place in the window of requests in flight; it is freed with the
        outcome (``record``, ``forget``) or by ``answered``."""
        try:
            await self._submit(_Write(row_id, {"sending_at": at}, before))
        except BaseException:
            self.answered(row_id)
            raise

    async def record(self, row_id: int, values: dict[str, Any], *, attempted: bool = False) -> None:
        """Returns once the row's outcome is durable; the sending mark goes with it.
        ``attempted``: the row's attempts go up by one (in SQL, not from a value read earlier)."""
        try:
            await self._submit(_Write(row_id, {**values, "sending_at": None}, attempted=attempted))
        finally:
            self.answered(row_id)

    async def forget(self, row_id: int) -> None:
        """Returns once the row is gone (messages to someone we keep nothing of)."""
        try:
            await self._submit(_Write(row_id, None))
        finally:
            self.answered(row_id)

    def answered(self, row_id: int) -> None:
        """The row's request is over (its outcome written elsewhere, or it never started): its
        place in the window is free. Calling it again, or for a row never marked, does nothing."""
        self.window.release(row_id)

    async def drain(self) -> None:
        """Wait for the commit in progress (at shutdown, before the database goes)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _submit(self, write: _Write) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((write, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="outbox-journal")
        await asyncio.shield(done)  # a cancelled lane does not cancel the others' commit

    async def _flush_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self._commit([write for write, _done in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting lane gets the error
                for _write, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _write, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _commit(self, writes: list[_Write]) -> None:
        """One statement per shape of write, run for all its rows at once (an executemany: on
        PostgreSQL asyncpg sends the rows in one round trip), the ``before`` statements first.
        A batch holds at most one write per row (a row's outcome waits for its mark), so the
        order among rows does not matter; a chat's two choice upserts keep theirs."""
        runs: dict[UpdateBase | TextClause, list[dict[str, Any]]] = {}
        for write in writes:
            if write.before is not None:
                runs.setdefault(write.before.statement, []).append(write.before.params)
        for write in writes:
            if write.values is None:
                runs.setdefault(_DELETE, []).append({"row_id": write.row_id})
                continue
            params = {f"v_{name}": value for name, value in write.values.items()}
            params["row_id"] = write.row_id
            statement = _update(frozenset(write.values), write.attempted)
            runs.setdefault(statement, []).append(params)
        # No ORM, and no transaction on PostgreSQL: each run is atomic on its own, and every
        # write stands alone (a mark or an outcome of its own row), the ``before`` statements
        # committed ahead of the marks they go with.
        async with self._db.autocommit() as connection:
            for shape, rows in runs.items():
                await connection.execute(shape, rows)


# Built once each (a few shapes: the mark, sent, failed...), as every sent message writes twice
# and building a statement and its cache key costs several times what running it does (issue 14).
_DELETE = delete(OutboxMessage).where(col(OutboxMessage.id) == bindparam("row_id"))


@cache
def _update(names: frozenset[str], attempted: bool) -> Update:
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in sorted(names)}
    if attempted:
        values["attempts"] = OutboxMessage.attempts + 1
    return update(OutboxMessage).where(col(OutboxMessage.id) == bindparam("row_id")).values(values)
