"""The background loops survive a database that is briefly unavailable."""

from __future__ import annotations

import asyncio
import contextlib

from sqlmodel import select

from bot.app import App
from bot.clock import FakeClock
from bot.core import View
from bot.settings import Settings
from storage.models import OutboxMessage, OutboxStatus
from tests.conftest import Recorder


async def test_dispatcher_survives_a_failing_claim_and_keeps_sending(settings: Settings) -> None:
    app = App(settings, clock=FakeClock())
    recorder = Recorder()
    app.add_channel(recorder)
    real_claim = app.dispatcher._claim
    failures = {"left": 2}

    async def flaky_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("database is locked")
        return await real_claim(*args, **kwargs)

    app.dispatcher._claim = flaky_claim  # type: ignore[method-assign]
    async with app.db.session() as session:
        app.services.outbox.add(session, channel="rec", chat_ref="u", view=View("hello"))
    task = asyncio.create_task(app.dispatcher.run_forever(idle=0.05))
    try:
        await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # let its database call finish before the loop closes
        await app.close()
    assert failures["left"] == 0
    assert [v.text for v in recorder.sent["u"]] == ["hello"]


async def test_dispatcher_marks_sent_rows(settings: Settings) -> None:
    app = App(settings, clock=FakeClock())
    app.add_channel(Recorder())
    async with app.db.session() as session:
        app.services.outbox.add(session, channel="rec", chat_ref="u", view=View("x"))
    assert await app.dispatcher.run_once() == 1
    async with app.db.reader() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    await app.close()
    assert row.status == OutboxStatus.sent
