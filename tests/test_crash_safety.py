"""Crash safety of the outbox (issue 14): a row is marked "sending" (committed) before its
request starts, and leases belong to a worker's incarnation, so a restarted worker takes over
its predecessor's rows at once and another worker takes a silent one's after five heartbeats —
never a live worker's. The SIGKILL test over HTTP is in tests/test_meetings_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

import bot.outbox
from bot.app import App
from bot.clock import FakeClock
from bot.core import View
from bot.outbox import Dispatcher
from bot.settings import Settings
from bot.workers import WorkerIdentity, beat
from storage.models import OutboxMessage, OutboxStatus
from storage.worker_models import Worker
from tests.conftest import Recorder

LONG_LEASE = timedelta(minutes=30)  # longer than any test: a takeover here is never the lease's
HEARTBEAT = timedelta(seconds=2)
QUICK = timedelta(milliseconds=20)  # a real-time heartbeat for the one test that runs the loop


async def queue(app: App, chats: list[str]) -> None:
    async with app.db.session() as session:
        for chat in chats:
            app.services.outbox.add(session, channel="rec", chat_ref=chat, view=View(chat))


def dispatcher(app: App, recorder: Recorder, clock: FakeClock, name: str) -> Dispatcher:
    return Dispatcher(
        app.db,
        {"rec": recorder},
        clock,
        lease=LONG_LEASE,
        identity=WorkerIdentity(name),
        heartbeat=HEARTBEAT,
    )


async def test_a_row_is_marked_sending_before_its_request_and_cleared_by_its_answer(
    settings: Settings,
) -> None:
    app = App(settings, clock=FakeClock())
    seen_marked: list[bool] = []

    class Inspecting(Recorder):
        async def send(self, chat_ref: str, view: View) -> str:
            async with app.db.reader() as session:  # another connection: only committed data
                row = (await session.exec(select(OutboxMessage))).one()
            seen_marked.append(row.sending_at is not None)
            return await super().send(chat_ref, view)

    app.add_channel(Inspecting())
    await queue(app, ["u"])
    try:
        assert await app.dispatcher.run_once() == 1
        async with app.db.reader() as session:
            row = (await session.exec(select(OutboxMessage))).one()
    finally:
        await app.close()
    assert seen_marked == [True]
    assert row.status == OutboxStatus.sent and row.sending_at is None


async def test_a_restarted_worker_takes_over_its_predecessors_rows_at_once(
    settings: Settings,
) -> None:
    clock = FakeClock()
    app = App(settings, clock=clock)
    recorder = Recorder()
    await queue(app, ["a", "b", "c"])
    try:
        killed = dispatcher(app, recorder, clock, "bot-1")
        assert len(await killed._claim(None, None)) == 3  # leased, then the process dies
        other = dispatcher(app, recorder, clock, "bot-2")
        assert await other.run_once() == 0  # the owner's heartbeat is recent: not taken
        restarted = dispatcher(app, recorder, clock, "bot-1")  # same name, new incarnation
        assert await restarted.run_once() == 3  # at once, 30 minutes before the lease ends
    finally:
        await app.close()
    assert sorted(recorder.sent) == ["a", "b", "c"]


async def test_a_silent_worker_loses_its_rows_after_five_heartbeats_a_beating_one_keeps_them(
    settings: Settings,
) -> None:
    clock = FakeClock()
    app = App(settings, clock=clock)
    recorder = Recorder()
    await queue(app, ["a", "b"])
    try:
        alive = dispatcher(app, recorder, clock, "bot-1")
        assert len(await alive._claim(None, None)) == 2
        other = dispatcher(app, recorder, clock, "bot-2")
        for _ in range(10):  # twenty seconds of beating: the rows stay with their owner
            clock.advance(HEARTBEAT)
            await beat(app.db, alive.identity, clock.now)
            assert await other.run_once() == 0
        clock.advance(HEARTBEAT * 4)
        assert await other.run_once() == 0  # four beats missed: maybe only slow
        clock.advance(HEARTBEAT * 1 + timedelta(seconds=1))
        assert await other.run_once() == 2  # five missed: dead
    finally:
        await app.close()
    assert sorted(recorder.sent) == ["a", "b"]


async def test_a_heartbeat_chore_that_waits_does_not_hold_up_the_beat(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The beat goes on while the heartbeat's chores wait (the broadcast sweep can wait for a
    notice's row lock): a beat held up for five beats lets the other workers lease this worker's
    rows again while it still sends them - messages sent twice without any crash."""
    clock = FakeClock()
    app = App(settings, clock=clock)
    worker = Dispatcher(
        app.db, {"rec": Recorder()}, clock, identity=WorkerIdentity("bot-1"), heartbeat=QUICK
    )
    chore_waiting, release, beaten = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def waiting_chore() -> None:
        chore_waiting.set()
        await release.wait()

    async def watched_beat(*args: Any) -> None:
        await beat(*args)
        beaten.set()

    monkeypatch.setattr(bot.outbox, "beat", watched_beat)
    worker.on_heartbeat = waiting_chore
    running = asyncio.create_task(worker.run_forever(idle=0.05))
    try:
        await asyncio.wait_for(chore_waiting.wait(), timeout=10)
        clock.advance(timedelta(minutes=5))
        for _ in range(2):  # the beat after the clock moved, whichever was under way
            beaten.clear()
            await asyncio.wait_for(beaten.wait(), timeout=10)
        assert await beat_of(app, "bot-1") == clock.now()
        assert not release.is_set()  # the chore is still waiting all along
    finally:
        release.set()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await app.close()


async def beat_of(app: App, name: str) -> datetime:
    async with app.db.reader() as session:
        found = (await session.exec(select(Worker.beat_at).where(Worker.name == name))).one()
    assert found is not None
    return found


async def test_a_clean_stop_hands_its_leases_back_at_once(settings: Settings) -> None:
    clock = FakeClock()
    app = App(settings, clock=clock)
    recorder = Recorder()
    await queue(app, ["a"])
    try:
        stopping = dispatcher(app, recorder, clock, "bot-1")
        assert len(await stopping._claim(None, None)) == 1
        await stopping.retire()
        other = dispatcher(app, recorder, clock, "bot-2")
        assert await other.run_once() == 1
        async with app.db.reader() as session:
            marked = (
                await session.exec(
                    select(OutboxMessage.id).where(col(OutboxMessage.sending_at).is_not(None))
                )
            ).all()
    finally:
        await app.close()
    assert recorder.sent["a"][0].text == "a" and marked == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SKIP LOCKED
async def test_a_claim_keeps_a_chats_order_behind_rows_being_claimed_but_not_its_own(
    settings: Settings,
) -> None:
    """The claim is one statement (issue 14's core throughput): a chat's older row that
    another worker is claiming right now (locked: this claim skips it) holds the newer ones
    back, other chats go; a row this worker holds itself holds nothing back."""
    clock = FakeClock()
    app = App(settings, clock=clock)
    recorder = Recorder()
    await queue(app, ["member", "member", "member", "other"])
    try:
        async with app.db.connection() as claiming:  # another worker's claim, in progress
            first = select(OutboxMessage.id).order_by(col(OutboxMessage.id)).limit(1)
            await claiming.execute(first.with_for_update())
            b = dispatcher(app, recorder, clock, "bot-2")
            assert await b.run_once() == 1
            assert list(recorder.sent) == ["other"]
            await claiming.rollback()  # that claim found nothing after all
        a = dispatcher(app, recorder, clock, "bot-1")
        held = await a._claim("rec", "member")
        assert [row.id for row in held] == sorted(row.id for row in held) and len(held) == 3
        for row in held[1:]:  # handed back, as a stop does: the first stays A's
            await a._release([row])
        again = await a._claim("rec", "member")  # its own first message holds nothing back
        assert [row.id for row in again] == [row.id for row in held[1:]]
        assert await dispatcher(app, recorder, clock, "bot-3").run_once() == 0
    finally:
        await app.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # several workers
async def test_a_chats_newer_message_waits_while_another_worker_holds_its_older_one(
    settings: Settings,
) -> None:
    """Found by the 3-worker kill test: worker B must not send a member's second message while
    worker A holds the first (nor while A is claiming it: SKIP LOCKED hides it from B). Other
    chats are not held back."""
    clock = FakeClock()
    app = App(settings, clock=clock)
    recorder = Recorder()

    async def say(chat: str, text: str) -> None:
        async with app.db.session() as session:
            app.services.outbox.add(session, channel="rec", chat_ref=chat, view=View(text))

    await say("member", "first")
    await say("other", "to someone else")
    try:
        a = dispatcher(app, recorder, clock, "bot-1")
        held = await a._claim("rec", "member")  # A holds the first message, its request slow
        assert [row.payload["text"] for row in held] == ["first"]
        await say("member", "second")  # written meanwhile
        b = dispatcher(app, recorder, clock, "bot-2")
        assert await b.run_once() == 1  # the other chat only: "second" would overtake "first"
        assert [v.text for v in recorder.sent["other"]] == ["to someone else"]
        assert "member" not in recorder.sent
        await a._send_chat(list(held))  # A's request is answered
        assert await b.run_once() == 1  # now the second may go, by whichever worker
    finally:
        await app.close()
    assert [v.text for v in recorder.sent["member"]] == ["first", "second"]
