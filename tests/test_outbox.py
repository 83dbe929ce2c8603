"""The dispatcher's outcomes: 429 waits as told, 5xx retries with backoff up to a cap,
403 marks the chat blocked, 400 fails once; order within a chat is kept throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from sqlmodel import select

from bot.channels.base import Blocked, Rejected, RetryLater, Transient
from bot.clock import FakeClock
from bot.core import View
from bot.outbox import Dispatcher, Outbox
from storage.db import Database
from storage.models import OutboxMessage


class Scripted:
    """A channel that fails according to a script of exceptions, then succeeds."""

    name = "s"
    text_limit = 4096

    def __init__(self) -> None:
        self.script: list[Exception] = []
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_ref: str, view: View) -> str:
        if self.script:
            raise self.script.pop(0)
        self.sent.append((chat_ref, view.text))
        return str(len(self.sent))


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def queue(db: Database, clock: FakeClock, *items: tuple[str, str]) -> None:
    async with db.session() as session:
        for chat, text in items:
            Outbox(clock).add(session, channel="s", chat_ref=chat, view=View(text))


async def statuses(db: Database) -> list[tuple[str, str, int]]:
    async with db.reader() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [(r.payload["text"], r.status.value, r.attempts) for r in rows]


async def test_429_waits_retry_after_and_keeps_order(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    await queue(db, clock, ("a", "1"), ("a", "2"), ("b", "x"))
    channel.script = [RetryLater(5)]
    await dispatcher.run_once()
    assert ("b", "x") in channel.sent and ("a", "1") not in channel.sent  # other chats go on
    clock.advance(timedelta(seconds=4))
    await dispatcher.run_once()
    assert ("a", "1") not in channel.sent
    clock.advance(timedelta(seconds=2))
    await dispatcher.run_once()
    assert [t for c, t in channel.sent if c == "a"] == ["1", "2"]


async def test_channel_wide_429_pauses_the_channel(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    await queue(db, clock, ("a", "1"))
    channel.script = [RetryLater(3, scope="channel")]
    await dispatcher.run_once()
    await queue(db, clock, ("b", "2"))
    await dispatcher.run_once()
    assert channel.sent == []
    clock.advance(timedelta(seconds=3))
    await dispatcher.run_once()
    assert sorted(channel.sent) == [("a", "1"), ("b", "2")]


async def test_transient_errors_back_off_then_give_up(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock, max_attempts=3)
    await queue(db, clock, ("a", "1"))
    channel.script = [Transient("502"), Transient("502"), Transient("502")]
    for _ in range(3):
        await dispatcher.run_once()
        clock.advance(timedelta(minutes=5))
    assert await statuses(db) == [("1", "failed", 3)]
    assert channel.sent == []


async def test_transient_error_then_success_sends_once(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    await queue(db, clock, ("a", "1"))
    channel.script = [Transient("timeout")]
    await dispatcher.run_once()
    assert channel.sent == []
    clock.advance(timedelta(seconds=2))
    await dispatcher.run_once()
    assert channel.sent == [("a", "1")]
    assert await statuses(db) == [("1", "sent", 2)]


async def test_blocked_stops_the_chat_and_rejected_fails_alone(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    await queue(db, clock, ("a", "1"), ("a", "2"))
    channel.script = [Blocked("403")]
    await dispatcher.run_once()
    await queue(db, clock, ("c", "bad"), ("c", "good"))
    channel.script = [Rejected("400")]
    await dispatcher.run_once()
    assert await statuses(db) == [
        ("1", "blocked", 0),
        ("2", "blocked", 0),
        ("bad", "failed", 1),
        ("good", "sent", 1),
    ]


class Broken(Scripted):
    """A channel whose send fails for a reason that is not the channel's (a malformed chat id
    from a broken update makes ``int(chat_ref)`` raise ValueError)."""

    async def send(self, chat_ref: str, view: View) -> str:
        return str(int(chat_ref))


async def test_a_send_that_fails_for_any_other_reason_is_given_up_after_its_attempts(
    db: Database,
) -> None:
    clock, channel = FakeClock(), Broken()
    dispatcher = Dispatcher(db, {"s": channel}, clock, max_attempts=3)
    await queue(db, clock, ("not-a-number", "1"), ("42", "ok"))
    for _ in range(5):
        await dispatcher.run_once()
        clock.advance(timedelta(minutes=5))
    assert await statuses(db) == [("1", "failed", 3), ("ok", "sent", 1)]


async def test_last_word_rows_leave_no_trace_once_delivered(db: Database) -> None:
    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    async with db.session() as session:
        Outbox(clock).add(session, channel="s", chat_ref="x", view=View("bye", last_word=True))
    await dispatcher.run_once()
    assert channel.sent == [("x", "bye")] and await statuses(db) == []


async def test_a_reply_goes_ahead_of_a_queued_notice(db: Database) -> None:
    """A notice of 60 is queued first; a reply queued after it leaves in the first batch."""
    from storage.models import Broadcast

    clock, channel = FakeClock(), Scripted()
    dispatcher = Dispatcher(db, {"s": channel}, clock, batch=10, concurrency=1)
    async with db.session() as session:
        broadcast = Broadcast(kind="notice", total=60, created_at=clock.now())
        session.add(broadcast)
        await session.flush()
        for i in range(60):
            row = Outbox(clock).add(session, channel="s", chat_ref=f"m{i}", view=View("notice"))
            row.broadcast_id = broadcast.id
    await queue(db, clock, ("asker", "answer"))
    claimed = [r.chat_ref for r in await dispatcher._claim(None, None)]
    assert "asker" in claimed  # in the first batch of 10, though queued 61st
    assert [c for c in claimed if c != "asker"] == [f"m{i}" for i in range(9)]  # notice in order
