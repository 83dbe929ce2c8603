"""What the operator watches: readiness and metrics of one app (the HTTP side is tested with
`sotay run` in tests/test_cli.py)."""

from __future__ import annotations

from datetime import timedelta

from bot.core import View
from storage.models import OutboxMessage
from tests.conftest import World


async def test_ready_only_with_database_scheduler_and_a_moving_outbox(world: World) -> None:
    ok, checks = await world.app.readiness()
    assert not ok and checks["database"] is True and checks["scheduler"] is False
    await world.app.scheduler.start()
    ok, checks = await world.app.readiness()
    assert ok and checks["outbox_oldest_age_seconds"] == 0.0
    async with world.app.db.session() as session:  # a message due 11 minutes ago, still queued
        world.app.services.outbox.add(session, channel="rec", chat_ref="x", view=View("hi"))
    world.clock.advance(timedelta(minutes=11))
    ok, checks = await world.app.readiness()
    assert not ok and checks["outbox_oldest_age_seconds"] >= 660
    await world.app.dispatcher.run_once()
    ok, _ = await world.app.readiness()
    assert ok


async def test_metrics_count_updates_and_sends_and_read_the_shared_figures(world: World) -> None:
    await world.chat("bithu").say("/help")
    await world.chat("bithu").say("/help")
    async with world.app.db.session() as session:
        row = world.app.services.outbox.add(session, channel="rec", chat_ref="y", view=View("x"))
        row.next_attempt_at = world.clock.now() - timedelta(seconds=30)
    text = (await world.app.metrics.render(world.app.db, world.clock.now())).decode()
    assert 'sotay_updates_total{channel="rec",outcome="ok"} 2.0' in text
    assert 'sotay_sends_total{channel="rec",outcome="sent"} 2.0' in text
    assert 'sotay_outbox_backlog{channel="rec"} 1.0' in text
    assert 'sotay_outbox_oldest_age_seconds{channel="rec"} 30.0' in text
    assert "Vũ Thị Hoa" not in text and "bithu" not in text
    async with world.app.db.reader() as session:
        assert await session.get(OutboxMessage, row.id) is not None
