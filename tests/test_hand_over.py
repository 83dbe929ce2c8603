"""The hand-over of interactive replies (issue 14's core throughput): the replies a handler
writes are leased to this worker and marked "sending" in the handler's own commit, then leave
right after it, without a claim or a commit of their own. What must still hold: a chat's
messages leave in the order they were written, nothing is lost when the process dies between
the commit and the send, and the drain loop takes whatever was not handed over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

import bot.outbox as outbox_module
from bot.clock import FakeClock
from bot.core import Choice, View
from bot.outbox import Dispatcher, Handover, Outbox
from storage.db import Database, Prepared
from storage.models import OutboxMessage, OutboxStatus, PendingChoices


class Gated:
    """A channel that records what it sends; a chat can be held until the test lets it go."""

    name = "s"
    text_limit = 4096

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.arrived = asyncio.Condition()
        self.gates: dict[str, asyncio.Event] = {}

    async def send(self, chat_ref: str, view: View) -> str:
        gate = self.gates.get(view.text)
        if gate is not None:
            await gate.wait()
        async with self.arrived:
            self.sent.append((chat_ref, view.text))
            self.arrived.notify_all()
        return str(len(self.sent))

    async def until_sent(self, count: int) -> None:
        async with asyncio.timeout(10), self.arrived:
            await self.arrived.wait_for(lambda: len(self.sent) >= count)


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest_asyncio.fixture
async def serving(db: Database) -> AsyncIterator[tuple[Dispatcher, Gated, FakeClock]]:
    """A dispatcher serving as in ``sotay run``: registered, its drain loop running."""
    clock, channel = FakeClock(), Gated()
    dispatcher = Dispatcher(db, {"s": channel}, clock)
    claims: list[int] = []
    claim = dispatcher._claim

    first_turn = asyncio.Event()

    async def counted(channel_name: str | None, chat_ref: str | None) -> list[OutboxMessage]:
        rows = list(await claim(channel_name, chat_ref))
        claims.append(len(rows))
        first_turn.set()  # the drain loop's first turn registered the worker
        return rows

    dispatcher._claim = counted  # type: ignore[method-assign]
    dispatcher.claims = claims  # type: ignore[attr-defined]
    loop = asyncio.create_task(dispatcher.run_forever(idle=3600))
    async with asyncio.timeout(10):
        await first_turn.wait()
    yield dispatcher, channel, clock
    for gate in channel.gates.values():  # a failed test must not leave a send hanging
        gate.set()
    dispatcher.stop_taking()
    async with asyncio.timeout(10):  # a stalled dispatcher fails the test, it does not hang it
        await loop
    await dispatcher.retire(grace=1)


async def reply(db: Database, dispatcher: Dispatcher, clock: FakeClock, *texts: str) -> Handover:
    """What the router does for one update: write, take before the commit, send after it."""
    async with db.session() as session:
        for text in texts:
            Outbox(clock).add(session, channel="s", chat_ref="a", view=View(text))
        handover = await dispatcher.take(session)
    dispatcher.send_taken(handover)
    return handover


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.reader() as session:
        return list((await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_a_reply_leaves_right_after_its_commit_without_a_claim(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    dispatcher, channel, clock = serving
    claims_before = len(dispatcher.claims)  # type: ignore[attr-defined]
    handover = await reply(db, dispatcher, clock, "1", "2")
    assert [row.payload["text"] for row in handover.rows] == ["1", "2"] and handover.complete
    await channel.until_sent(2)
    assert channel.sent == [("a", "1"), ("a", "2")]
    assert len(dispatcher.claims) == claims_before  # type: ignore[attr-defined]
    await dispatcher._journal.drain()
    stored = await rows(db)
    assert [r.status for r in stored] == [OutboxStatus.sent, OutboxStatus.sent]
    assert all((r.lease_owner or "").startswith(dispatcher.identity.incarnation) for r in stored)
    assert all(r.sending_at is None and r.attempts == 1 for r in stored)


async def test_a_reply_waits_behind_an_older_message_to_its_chat(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    dispatcher, channel, clock = serving
    async with db.session() as session:  # an older message, due in a minute (a chat's pace)
        older = Outbox(clock).add(session, channel="s", chat_ref="a", view=View("older"))
        older.next_attempt_at = clock.now() + timedelta(minutes=1)
    handover = await reply(db, dispatcher, clock, "newer")
    assert handover.rows == [] and not handover.complete
    clock.advance(timedelta(minutes=1))
    dispatcher.wake()
    await channel.until_sent(2)
    assert channel.sent == [("a", "older"), ("a", "newer")]


async def test_while_replies_are_leaving_the_next_ones_go_by_the_drain_loop_in_order(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """A busy dispatcher batches: the drain loop's claims cost less than a lane per chat."""
    dispatcher, channel, clock = serving
    channel.gates["first"] = gate = asyncio.Event()
    first = await reply(db, dispatcher, clock, "first")
    second = await reply(db, dispatcher, clock, "second")  # "first" has not left yet
    assert len(first.rows) == 1 and second.rows == [] and not second.complete
    dispatcher.wake()  # as the router does when not everything was handed over
    gate.set()  # had the drain loop overtaken the chat's lane, "second" would be first
    await channel.until_sent(2)
    assert channel.sent == [("a", "first"), ("a", "second")]


async def test_no_more_replies_are_marked_sending_than_the_window_of_requests_in_flight(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """What a kill may repeat stays bounded: rows beyond the window are leased, not marked."""
    dispatcher, channel, clock = serving
    channel.gates["1"] = gate = asyncio.Event()
    texts = [str(n) for n in range(1, 6)]
    handover = await reply(db, dispatcher, clock, *texts)
    assert len(handover.rows) == 5
    marked = [r.payload["text"] for r in await rows(db) if r.sending_at is not None]
    assert marked == ["1", "2"] and dispatcher.window.in_flight == 2
    gate.set()
    await channel.until_sent(5)
    assert [text for _chat, text in channel.sent] == texts
    await dispatcher._journal.drain()
    assert dispatcher.window.in_flight == 0
    assert all(r.sending_at is None and r.status == OutboxStatus.sent for r in await rows(db))


async def test_a_reply_taken_by_a_worker_that_died_before_sending_it_is_sent_once(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    dispatcher, _channel, clock = serving
    async with db.session() as session:  # committed, then the process died: never sent
        Outbox(clock).add(session, channel="s", chat_ref="a", view=View("lost?"))
        handover = await dispatcher.take(session)
    assert len(handover.rows) == 1
    other = Gated()
    successor = Dispatcher(db, {"s": other}, clock)
    await successor.run_once()
    assert other.sent == []  # leased to a live worker: not taken from it
    clock.advance(timedelta(seconds=61))  # the dead worker's heartbeat and lease ran out
    await successor.run_once()
    await successor.run_once()
    assert other.sent == [("a", "lost?")]


async def test_nothing_is_taken_once_the_dispatcher_stops_or_when_the_channel_is_paused(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    dispatcher, _channel, clock = serving
    dispatcher._paused_until["s"] = clock.now() + timedelta(seconds=5)
    assert (await reply(db, dispatcher, clock, "paused")).rows == []
    dispatcher._paused_until.clear()
    dispatcher.stop_taking()
    assert (await reply(db, dispatcher, clock, "stopping")).rows == []
    stored = await rows(db)
    assert [(r.status, r.lease_owner) for r in stored] == [(OutboxStatus.pending, None)] * 2


async def test_a_reply_with_choices_is_stored_once_with_its_choices(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """A taken reply that offers choices: stored once, its choices remembered for the chat,
    sent once, and a change to the row later in the same transaction still written. On
    PostgreSQL the row and its choices go in one statement, before the commit (the choices'
    upsert rides along the INSERT): one round trip less for nearly every guided step."""
    dispatcher, channel, clock = serving
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(" ".join(sql.split()))

    choices = [[Choice("Có", "a:yes"), Choice("Không", "a:no")]]
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.session() as session:
            row = Outbox(clock).add(
                session, channel="s", chat_ref="a", view=View("Dự họp?", choices)
            )
            handover = await dispatcher.take(session)
            assert handover.rows == [row] and row.sending_at is not None
            row.dedupe_key = "changed-after-take"
        dispatcher.send_taken(handover)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    await channel.until_sent(1)
    await dispatcher._journal.drain()
    [stored] = await rows(db)
    assert (stored.id, stored.status, stored.dedupe_key) == (
        row.id,
        OutboxStatus.sent,
        "changed-after-take",
    )
    assert channel.sent == [("a", "Dự họp?")]
    async with db.reader() as session:
        remembered = await session.get(PendingChoices, ("s", "a"))
    assert remembered is not None and remembered.choices == [["Có", "a:yes"], ["Không", "a:no"]]
    upserts = [sql for sql in statements if "INSERT INTO pending_choice" in sql]
    if db.engine.dialect.name == "postgresql":
        assert len(upserts) == 1 and "INSERT INTO outboxmessage" in upserts[0]
        assert not [sql for sql in statements if sql.startswith("INSERT INTO outboxmessage")]
    else:  # SQLite: no data-modifying CTE; the upsert, then the ORM's insert at the commit
        assert len(upserts) == 1 and "outboxmessage" not in upserts[0]


async def test_a_take_that_fails_gives_its_places_in_flight_back(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that fails while its replies are being taken (here: the statement that
    keeps their choices) sends nothing and keeps no place in flight: the window would
    otherwise shrink for good, and a full one would stop every message."""
    dispatcher, channel, clock = serving

    def broken(*_args: object) -> Prepared:  # choices without a time: NOT NULL fails
        return Prepared(
            outbox_module.choices._upsert(),
            {"p_channel": "s", "p_chat_ref": "a", "p_choices": [["Có", "a:yes"]], "p_at": None},
        )

    monkeypatch.setattr(outbox_module.choices, "remembered", broken)
    with pytest.raises(DBAPIError):
        await reply(db, dispatcher, clock, "with a choice")
    assert dispatcher.window.in_flight == 0
    assert await rows(db) == [] and channel.sent == []
    monkeypatch.undo()
    await reply(db, dispatcher, clock, "next")
    await channel.until_sent(1)
    assert channel.sent == [("a", "next")]


# SQLite: the drain loop cannot claim while a handler's transaction is open (one writer).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_replies_holding_every_place_leave_while_the_drain_loop_fills_its_slots(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """On PostgreSQL the drain loop claims while a handler's transaction is open. A take found
    the dispatcher idle and its replies hold every place in flight; meanwhile the drain loop
    claimed another chat's reply and waits for a place, holding one of its slots for chats at
    once (the app's 16, one here). The taken replies must leave all the same: their lane used to
    wait for a slot too, and then nothing was sent any more (issue 14's stalled bot)."""
    dispatcher, channel, clock = serving
    dispatcher._semaphore = asyncio.Semaphore(1)  # one drain chat fills every slot
    window = dispatcher.window
    full = asyncio.Event()
    acquire = window.acquire

    async def observed(key: int) -> None:
        if key not in window._holding and window.in_flight >= window.limit:
            full.set()  # the drain loop holds its slot and waits for a place
        await acquire(key)

    window.acquire = observed  # type: ignore[method-assign]
    async with db.session() as session:  # another member's reply, not handed over
        Outbox(clock).add(session, channel="s", chat_ref="b", view=View("b1"))
    async with db.session() as session:
        for text_ in ("a1", "a2"):
            Outbox(clock).add(session, channel="s", chat_ref="a", view=View(text_))
        handover = await dispatcher.take(session)
        assert len(handover.rows) == 2 and window.in_flight == window.limit == 2
        dispatcher.wake()  # the other handler's commit wakes the drain loop meanwhile
        async with asyncio.timeout(10):
            await full.wait()
    dispatcher.send_taken(handover)
    await channel.until_sent(3)
    assert [text_ for chat, text_ in channel.sent if chat == "a"] == ["a1", "a2"]
    assert ("b", "b1") in channel.sent


class Paced:
    """A channel-wide pace (``RateLimiter``'s part the dispatcher uses) whose next token is due
    only when the test lets it go."""

    overall_rate = 30.0

    def __init__(self) -> None:
        self.held = True
        self.waiting = asyncio.Event()  # a send waits for the channel's next token

    def chat_wait(self, _chat_ref: str) -> float:
        return 0.0

    def overall_wait(self) -> float:
        if self.held:
            self.waiting.set()
            return 0.01
        return 0.0

    def reserve(self, _chat_ref: str) -> float:
        return 0.0

    def sent(self) -> None:
        pass

    def share(self, _workers: int) -> None:
        pass


async def test_replies_holding_every_place_leave_while_paced_drain_chats_hold_the_slots(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """Both engines: drain chats wait for the channel's pace holding their slots, with nothing
    in flight (e.g. a notice going out at 30/s); a member's two replies are taken and hold every
    place; then the pace lets the drain chat go, and it waits for a place holding its slot. The
    replies' lane must not wait for a slot: it did, and nothing was sent any more."""
    dispatcher, channel, clock = serving
    dispatcher._semaphore = asyncio.Semaphore(1)  # one drain chat fills every slot (app: 16)
    paced = Paced()
    dispatcher.add_limiter("s", paced)  # type: ignore[arg-type]
    async with db.session() as session:  # e.g. a notice's message, paced
        Outbox(clock).add(session, channel="s", chat_ref="b", view=View("b1"))
    dispatcher.wake()
    async with asyncio.timeout(10):
        await paced.waiting.wait()
    handover = await reply(db, dispatcher, clock, "a1", "a2")
    assert len(handover.rows) == 2 and dispatcher.window.in_flight == 2  # every place
    paced.held = False
    await channel.until_sent(3)
    assert [text_ for chat, text_ in channel.sent if chat == "a"] == ["a1", "a2"]
    assert ("b", "b1") in channel.sent


async def test_what_the_senders_read_said_of_their_chat_spares_the_hand_overs_query(
    db: Database, serving: tuple[Dispatcher, Gated, FakeClock]
) -> None:
    """The router reads whether a reply to the sender's chat waits with the sender
    (``queries.who_writes``): the hand-over looks up only the other chats. A reply waiting
    for chat "b" keeps the new one to "b" back; "a" is taken on the sender's word."""
    dispatcher, channel, clock = serving
    async with db.session() as session:  # a message to chat b, due in a minute
        older = Outbox(clock).add(session, channel="s", chat_ref="b", view=View("older"))
        older.next_attempt_at = clock.now() + timedelta(minutes=1)
    lookups: list[list[object]] = []  # each lookup's parameters

    def seen(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if "DISTINCT" in statement:
            values = params.values() if isinstance(params, dict) else params
            lookups.append(list(values))  # type: ignore[call-overload]

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.session() as session:
            for chat in ("a", "b"):
                Outbox(clock).add(session, channel="s", chat_ref=chat, view=View(f"to {chat}"))
            handover = await dispatcher.take(session, {("s", "a"): False})
        dispatcher.send_taken(handover)
        assert [row.chat_ref for row in handover.rows] == ["a"] and len(lookups) == 1
        assert "b" in lookups[0] and "a" not in lookups[0]  # it asked about chat b only
        await channel.until_sent(1)
        async with db.session() as session:  # the sender's read saw a reply waiting to a
            Outbox(clock).add(session, channel="s", chat_ref="a", view=View("later"))
            held = await dispatcher.take(session, {("s", "a"): True})
        assert held.rows == [] and len(lookups) == 1  # no query: the read said it
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
