"""The rate limiter's arithmetic and the scheduler's real timer (regressions found by the
benchmarks: an overall bucket that refilled itself when in debt; a timer that stalled)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot import scheduler as sched
from bot.app import App
from bot.clock import Clock
from bot.ratelimit import Limits, RateLimiter
from bot.settings import Settings
from storage.models import DueJob, JobStatus


class Manual:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_overall_rate_is_enforced_across_many_chats() -> None:
    clock = Manual()
    limiter = RateLimiter(Limits(overall_per_second=30), clock=clock)
    waits = [limiter.reserve(str(chat)) for chat in range(100)]
    assert waits[:30] == [0.0] * 30  # the burst
    assert waits[-1] == pytest.approx(70 / 30, rel=0.01)  # then 30 per second, in order


def test_chat_rate_allows_a_short_burst_then_one_per_second() -> None:
    clock = Manual()
    limiter = RateLimiter(Limits(chat_burst=3, chat_per_second=1), clock=clock)
    for _ in range(3):
        assert limiter.chat_wait("7") == 0
        limiter.reserve("7")
    assert limiter.chat_wait("7") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.chat_wait("7") == 0
    assert limiter.chat_wait("-100") == 0  # groups have their own bucket


def test_groups_are_paced_per_minute_where_the_channel_says_what_a_group_is() -> None:
    from bot.channels.telegram import telegram_limits
    from bot.settings import load_settings

    clock = Manual()
    limits = telegram_limits(load_settings(telegram_group_per_minute=20, _env_file=None))
    limiter = RateLimiter(limits, clock=clock)
    for _ in range(20):
        assert limiter.chat_wait("-1001") == 0
        limiter.reserve("-1001")
    assert limiter.chat_wait("-1001") == pytest.approx(3.0)  # then one every 3 s
    assert limiter.chat_wait("1001") == 0  # a private chat is not a group
    plain = RateLimiter(Limits(chat_burst=3, chat_per_second=1), clock=clock)
    for _ in range(3):
        plain.reserve("-5")
    assert plain.chat_wait("-5") == pytest.approx(1.0)  # no groups on this channel


def test_a_429_right_after_another_message_is_the_chats_own_limit() -> None:
    clock = Manual()
    limiter = RateLimiter(clock=clock)
    limiter.reserve("1")
    assert not limiter.recently_sent("1")  # a first message: a 429 now means the whole channel
    clock.now += 0.2
    limiter.reserve("1")
    assert limiter.recently_sent("1")


RAN: list[int] = []
ALL_RAN: dict[str, asyncio.Event] = {}  # a fresh event per test: each test has its own loop


@sched.job("test_tick")
async def _record(ctx, work: DueJob) -> sched.JobResult:  # type: ignore[no-untyped-def]
    RAN.append(work.id or 0)
    if len(RAN) == 30:
        ALL_RAN["event"].set()
    return sched.done()


async def test_real_timer_runs_jobs_that_fall_due_one_after_another(settings: Settings) -> None:
    """Jobs due back to back, each found due while the previous tick is finishing, all run."""
    app = App(settings, clock=Clock())
    RAN.clear()
    ALL_RAN["event"] = asyncio.Event()
    try:
        now = app.clock.now()
        async with app.db.session() as session:
            for i in range(30):
                sched.schedule(
                    session, kind="test_tick", due_at=now + timedelta(milliseconds=20 * i), now=now
                )
        await app.scheduler.start()
        await asyncio.wait_for(ALL_RAN["event"].wait(), timeout=10)
        await app.scheduler.settled()  # the last job has run; its row commits with its tick
        async with app.db.reader() as session:
            from sqlmodel import select

            pending = (
                await session.exec(
                    select(DueJob).where(
                        DueJob.status == JobStatus.pending, DueJob.kind == "test_tick"
                    )
                )
            ).all()
        assert len(RAN) == 30 and pending == []
    finally:
        await app.close()


@sched.job("test_outside")
async def _outside(ctx, work: DueJob) -> sched.JobResult:  # type: ignore[no-untyped-def]
    OUTSIDE["event"].set()
    return sched.done()


OUTSIDE: dict[str, asyncio.Event] = {}


async def test_work_scheduled_by_another_process_is_noticed(settings: Settings) -> None:
    """A row written without this process's ``rearm`` (the CLI, another worker) still runs."""
    app = App(settings, clock=Clock())
    OUTSIDE["event"] = asyncio.Event()
    app.scheduler = sched.Scheduler(app.db, app.services, wake=app.dispatcher.wake, look_every=0.05)
    try:
        await app.scheduler.start()  # nothing is due: no timer armed
        other = App(settings, clock=Clock())  # "another process": its own engine and scheduler
        try:
            async with other.db.session() as session:
                now = other.clock.now()
                sched.schedule(session, kind="test_outside", due_at=now, now=now)
        finally:
            await other.close()
        await asyncio.wait_for(OUTSIDE["event"].wait(), timeout=10)
    finally:
        await app.close()
