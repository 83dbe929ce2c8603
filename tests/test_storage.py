"""Storage on SQLite and PostgreSQL: migrations match the models, times stay UTC, the outbox
is claimed once even by two dispatchers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlmodel import SQLModel, select

from bot.clock import FakeClock
from bot.core import View
from bot.outbox import Dispatcher, Outbox
from storage import queries
from storage.db import Database
from storage.migrate import head_revision, schema_is_current
from storage.models import (
    ChannelAccount,
    Dialog,
    Member,
    OutboxMessage,
    OutboxStatus,
    Role,
    RoleGrant,
    Unit,
)


async def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
        assert diff == []
        assert await schema_is_current(db.engine)
        assert head_revision() is not None
    finally:
        await db.dispose()


async def test_times_are_stored_utc_and_read_back_aware(database_url: str) -> None:
    db = Database(database_url)
    hanoi = timezone(timedelta(hours=7))
    try:
        async with db.session() as session:
            session.add(
                Dialog(
                    channel="t",
                    user_ref="1",
                    chat_ref="1",
                    flow="f",
                    step="s",
                    updated_at=datetime(2026, 12, 20, 19, 30, tzinfo=hanoi),
                )
            )
        async with db.reader() as session:
            dialog = (await session.exec(select(Dialog))).one()
        assert dialog.updated_at == datetime(2026, 12, 20, 12, 30, tzinfo=UTC)
        assert dialog.updated_at.tzinfo is not None
    finally:
        await db.dispose()


class CountingChannel:
    name = "count"
    text_limit = 4096

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, chat_ref: str, view: View) -> str:
        await asyncio.sleep(0)  # yield, so the two dispatchers really interleave
        self.sent.append(view.text)
        return str(len(self.sent))


async def test_two_dispatchers_send_each_message_once(database_url: str) -> None:
    clock = FakeClock()
    db = Database(database_url)
    channel = CountingChannel()
    try:
        async with db.session() as session:
            outbox = Outbox(clock)
            for i in range(120):
                outbox.add(session, channel="count", chat_ref=str(i % 7), view=View(f"m{i}"))
        first = Dispatcher(db, {"count": channel}, clock, batch=25)
        second = Dispatcher(db, {"count": channel}, clock, batch=25)
        await asyncio.gather(first.run_once(), second.run_once())
        assert sorted(channel.sent) == sorted(f"m{i}" for i in range(120))
        async with db.reader() as session:
            statuses = (await session.exec(select(OutboxMessage.status))).all()
        assert set(statuses) == {OutboxStatus.sent}
    finally:
        await db.dispose()


async def test_messages_to_one_chat_keep_their_order(database_url: str) -> None:
    clock = FakeClock()
    db = Database(database_url)
    channel = CountingChannel()
    try:
        async with db.session() as session:
            for i in range(30):
                Outbox(clock).add(session, channel="count", chat_ref="same", view=View(f"{i:02d}"))
        await Dispatcher(db, {"count": channel}, clock, batch=7).run_once()
        assert channel.sent == [f"{i:02d}" for i in range(30)]
    finally:
        await db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: one writer
async def test_a_busy_process_keeps_its_database_connections(database_url: str) -> None:
    """Under load a process reuses its connections: a second wave of as many sessions at once
    as the first opens none (an overflow connection closed at check-in was reopened every few
    updates, each a new PostgreSQL backend with cold prepared statements)."""
    db = Database(database_url)
    opened: list[object] = []
    event.listen(db.engine.sync_engine, "connect", lambda conn, _record: opened.append(conn))
    everyone_in = asyncio.Barrier(15)

    async def one_session() -> None:
        async with db.session() as session:
            await session.exec(select(Dialog).limit(1))
            await everyone_in.wait()  # 15 sessions open at once

    try:
        for wave in (1, 2):
            everyone_in = asyncio.Barrier(15)
            await asyncio.wait_for(asyncio.gather(*(one_session() for _ in range(15))), 30)
            if wave == 1:
                assert len(opened) == 15
        assert len(opened) == 15, "the second wave opened connections again"
    finally:
        await db.dispose()


async def test_the_sender_of_an_update_is_read_whole_in_one_query(database_url: str) -> None:
    """queries.who_writes: an account without a dialog, a dialog without an account (a
    registration in progress), both, neither; a pending account's member and roles are not
    loaded; a member with two roles is still one sender."""
    db = Database(database_url)
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    try:
        async with db.session() as session:
            member = Member(full_name="Người thử", phone="+84912345678", created_at=now)
            session.add(member)
            await session.flush()
            mid = member.id or 0
            session.add(ChannelAccount(channel="t", user_ref="both", chat_ref="1", member_id=mid))
            session.add(ChannelAccount(channel="t", user_ref="acct", chat_ref="2", member_id=mid))
            session.add(
                ChannelAccount(
                    channel="t", user_ref="pend", chat_ref="3", member_id=mid, pending=True
                )
            )
            for user in ("both", "dlg", "pend"):
                session.add(
                    Dialog(
                        channel="t",
                        user_ref=user,
                        chat_ref="9",
                        flow="f",
                        step=user,
                        updated_at=now,
                    )
                )
            cell = Unit(name="Chi bộ", path="Chi bộ", depth=0)
            commune = Unit(name="Xã", path="Xã", depth=0)
            session.add_all([cell, commune])
            await session.flush()
            session.add(RoleGrant(member_id=mid, role=Role.secretary, unit_id=cell.id or 0))
            session.add(RoleGrant(member_id=mid, role=Role.staff, unit_id=commune.id or 0))
            rows = [("t", "1", OutboxStatus.pending), ("t", "2", OutboxStatus.sent)]
            rows.append(("z", "3", OutboxStatus.pending))  # another channel's
            for channel, chat, status in rows:
                session.add(
                    OutboxMessage(
                        channel=channel,
                        chat_ref=chat,
                        payload={},
                        status=status,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        found = {}
        waiting = {}
        async with db.session() as session:
            for user in ("both", "acct", "dlg", "pend", "nobody"):
                sender = await queries.who_writes(session, channel="t", user_ref=user)
                found[user] = (
                    sender.account.user_ref if sender.account else None,
                    sender.member.id if sender.member else None,
                    sender.dialog.step if sender.dialog else None,
                    [(grant.role, unit.name) for grant, unit in sender.grants],
                )
            for chat in ("1", "2", "3", "4"):  # a reply waits to chat 1 only
                sender = await queries.who_writes(session, channel="t", user_ref="x", chat_ref=chat)
                waiting[chat] = sender.replies_waiting
        assert waiting == {"1": True, "2": False, "3": False, "4": False}
        grants = [(Role.secretary, "Chi bộ"), (Role.staff, "Xã")]
        assert found == {
            "both": ("both", mid, "both", grants),  # one row per grant, read as one sender
            "acct": ("acct", mid, None, grants),
            "dlg": (None, None, "dlg", []),
            "pend": ("pend", None, "pend", []),  # a pending account holds no roles yet
            "nobody": (None, None, None, []),
        }
    finally:
        await db.dispose()
