"""Who is serving: each worker's name, incarnation and heartbeat (issue 14).

The dispatcher leases outbox rows under its incarnation (the first 16 characters of
``OutboxMessage.lease_owner``). A lease is free when it ran out, or at once when its owner is no
longer alive: its heartbeat went quiet for ``STALE_BEATS`` beats, or a new process registered
under the same worker name (a restart under systemd or compose) and so replaced it.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, update
from sqlmodel import col, select

from storage.db import Database
from storage.models import OutboxMessage
from storage.worker_models import INCARNATION_LENGTH, Worker

log = logging.getLogger("sotay.workers")

STALE_BEATS = 5  # a worker silent this many heartbeats is taken for dead


def _new_incarnation() -> str:
    return uuid.uuid4().hex[:INCARNATION_LENGTH]


@dataclass
class WorkerIdentity:
    """This process as the other workers see it."""

    name: str
    incarnation: str = field(default_factory=_new_incarnation)

    @classmethod
    def named(cls, name: str) -> WorkerIdentity:
        """The configured name, else the host's (one worker per container or host)."""
        return cls(name or socket.gethostname())

    def lease_token(self) -> str:
        """A claim's owner mark: our incarnation, then a part of its own for the claim."""
        return self.incarnation + uuid.uuid4().hex[:INCARNATION_LENGTH]


async def register(db: Database, me: WorkerIdentity, now: datetime) -> None:
    """Take our name; a predecessor under it is thereby dead and its leases free."""
    async with db.session() as session:
        await session.exec(delete(Worker).where(col(Worker.name) == me.name))
        session.add(Worker(name=me.name, incarnation=me.incarnation, started_at=now, beat_at=now))
    log.info("worker.registered incarnation=%s", me.incarnation)


async def beat(db: Database, me: WorkerIdentity, now: Callable[[], datetime]) -> None:
    """Say we are alive. If someone took our name meanwhile (two processes configured with one
    name), we take a name of our own rather than fight over it.

    The time is read once the transaction has its connection: under load a session may wait
    for one, and a beat stamped before that wait would look older than it is."""
    async with db.session() as session:
        await session.connection()  # wait for a connection (and SQLite's write turn) first
        result = await session.exec(
            update(Worker)
            .where(col(Worker.name) == me.name, col(Worker.incarnation) == me.incarnation)
            .values(beat_at=now())
        )
    if result.rowcount == 0:
        log.warning("worker.name_taken incarnation=%s", me.incarnation)
        me.name = f"{me.name}~{me.incarnation}"[:64]
        await register(db, me, now())


async def live_workers(db: Database, now: datetime, heartbeat: timedelta) -> int:
    """How many workers beat recently (at least 1: the one asking)."""
    async with db.reader() as session:
        count = (
            await session.exec(
                select(func.count())
                .select_from(Worker)
                .where(col(Worker.beat_at) >= alive_since(now, heartbeat))
            )
        ).one()
    return max(1, int(count))


async def retire(db: Database, me: WorkerIdentity) -> None:
    """A clean stop: our remaining leases become free for the others at once."""
    async with db.session() as session:
        await session.exec(
            delete(Worker).where(
                col(Worker.name) == me.name, col(Worker.incarnation) == me.incarnation
            )
        )


def owner_alive(beat_since: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """SQL: the outbox row's lease owner is a registered worker that beat since ``beat_since``
    (``alive_since``; a bound parameter where the statement is built once)."""
    owner = func.substr(col(OutboxMessage.lease_owner), 1, INCARNATION_LENGTH)
    return exists(
        select(Worker.name).where(
            col(Worker.incarnation) == owner, col(Worker.beat_at) >= beat_since
        )
    )


def alive_since(now: datetime, heartbeat: timedelta) -> datetime:
    """A worker that beat since then is alive (``STALE_BEATS`` beats of silence: dead)."""
    return now - heartbeat * STALE_BEATS
