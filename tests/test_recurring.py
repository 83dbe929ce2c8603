"""Recurring jobs: when each fires (APScheduler's CronTrigger), and one pending run per kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlmodel import select

from bot import scheduler
from bot.scheduler import next_fire
from handlers.faq import digest_trigger
from handlers.meetings import nudge_trigger
from handlers.privacy import purge_trigger
from handlers.reports import weekly_trigger
from storage.models import DueJob, JobStatus

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SETTINGS = SimpleNamespace(tz=VN, nudge_day=20)


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN)


@pytest.mark.parametrize(
    ("trigger", "after", "fires"),
    [
        (weekly_trigger, vn(2026, 12, 1, 10), vn(2026, 12, 7, 8)),  # Tuesday -> next Monday
        (weekly_trigger, vn(2026, 12, 7, 8), vn(2026, 12, 14, 8)),  # at the minute: next week
        (weekly_trigger, vn(2026, 12, 7, 7, 59), vn(2026, 12, 7, 8)),
        (weekly_trigger, vn(2026, 12, 28, 9), vn(2027, 1, 4, 8)),  # across the year
        (nudge_trigger, vn(2026, 12, 2, 9), vn(2026, 12, 20, 9)),
        (nudge_trigger, vn(2026, 12, 20, 9), vn(2027, 1, 20, 9)),  # strictly after
        (nudge_trigger, vn(2027, 1, 25), vn(2027, 2, 20, 9)),
        (purge_trigger, vn(2026, 12, 2, 3), vn(2026, 12, 2, 3, 30)),
        (digest_trigger, vn(2026, 12, 2), vn(2027, 1, 1, 8)),
        (purge_trigger, vn(2026, 12, 2, 3, 30), vn(2026, 12, 3, 3, 30)),
    ],
)
def test_next_fire_is_strictly_after_and_in_utc(trigger, after, fires) -> None:  # type: ignore[no-untyped-def]
    due = next_fire(trigger(SETTINGS), after.astimezone(UTC))
    assert due == fires and due.tzinfo == UTC


def test_the_nudge_day_setting_moves_the_nudge() -> None:
    settings = SimpleNamespace(tz=VN, nudge_day=5)
    assert next_fire(nudge_trigger(settings), vn(2026, 12, 2)) == vn(2026, 12, 5, 9)


def test_every_recurring_kind_is_registered_with_its_handler() -> None:
    assert {"monthly_nudge", "rp_weekly", "outbox_purge", "faq_digest"} <= set(scheduler.RECURRING)
    assert set(scheduler.RECURRING) <= set(scheduler.HANDLERS)


async def test_a_failing_run_does_not_end_the_series(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async def broken(ctx, work):  # type: ignore[no-untyped-def]
        raise RuntimeError("the job has a bug")

    hourly = lambda settings: CronTrigger(minute=0, timezone=settings.tz)  # noqa: E731
    monkeypatch.setitem(scheduler.RECURRING, "test_hourly", hourly)
    monkeypatch.setitem(scheduler.HANDLERS, "test_hourly", broken)
    async with world.app.db.session() as session:
        assert await scheduler.ensure_recurring(session, world.app.settings, world.clock.now()) >= 1
    async with world.app.db.session() as session:  # a second start-up arms nothing more
        assert await scheduler.ensure_recurring(session, world.app.settings, world.clock.now()) == 0
    world.clock.advance(timedelta(hours=1))
    await world.app.scheduler.tick()
    async with world.app.db.reader() as session:
        rows = (
            await session.exec(
                select(DueJob).where(DueJob.kind == "test_hourly").order_by(DueJob.due_at)
            )
        ).all()
    assert [r.status for r in rows] == [JobStatus.skipped, JobStatus.pending]
    assert rows[0].note == "failed" and rows[1].due_at > world.clock.now()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # several workers
async def test_workers_starting_together_arm_the_recurring_jobs_once_and_both_start(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    """Found by bench/workers: two workers starting at once both armed the recurring jobs and
    the loser's duplicate key stopped it. The other start's rows, inserted but not yet
    committed, make this worker's insert wait and then meet the duplicate key."""
    import asyncio

    from bot.app import App
    from bot.clock import FakeClock

    clock = FakeClock()
    first, second = App(settings, clock=clock), App(settings, clock=clock)
    try:
        async with first.db.session() as session:
            assert await scheduler.ensure_recurring(session, settings, clock.now()) > 0
            await session.flush()  # the rows exist, uncommitted: the other start races them
            racing = asyncio.create_task(second.start_background())
            async with asyncio.timeout(10):  # until its insert waits on our uncommitted rows
                while not await lock_waits(first):  # noqa: ASYNC110 - only polled in PostgreSQL
                    await asyncio.sleep(0.01)
        await racing  # raised IntegrityError before the fix: the worker did not start
        await second.stop_background()
        async with second.db.reader() as session:
            kinds = [row.kind for row in (await session.exec(select(DueJob))).all()]
    finally:
        await first.close()
        await second.close()
    assert sorted(kinds) == sorted(scheduler.RECURRING)


async def lock_waits(app) -> int:  # type: ignore[no-untyped-def]
    """Sessions of this database waiting for a lock (PostgreSQL's own view)."""
    from sqlalchemy import text

    async with app.db.engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(result.scalar_one())
