"""Timed work: reminders, nudges and escalations.

The work itself lives in the ``duejob`` table; APScheduler only keeps one timer armed at the
earliest pending ``due_at``. A restart therefore rebuilds the whole schedule with one query, and
100,000 pending reminders cost one timer, not 100,000. Work found overdue (the bot was down) is
still handed to its handler, which decides on purpose: send late with a note, or skip with a log
line. The timer never relies on APScheduler's one-second misfire grace: it runs however late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Actor, Ctx, Services
from bot.core import Inbound
from bot.settings import Settings
from storage.db import Database, is_postgres
from storage.models import DueJob, JobStatus, ProcessedEvent

log = logging.getLogger("sotay.scheduler")


@dataclass(frozen=True)
class JobResult:
    """What one run of due work came to: done, or skipped on purpose; the note goes on the row."""

    note: str | None = None
    skipped: bool = False


def done(note: str | None = None) -> JobResult:
    return JobResult(note)


def skip(reason: str) -> JobResult:
    """The work is no longer wanted (cancelled meeting, ticket closed meanwhile, too late)."""
    return JobResult(reason, skipped=True)


JobFn = Callable[[Ctx, DueJob], Awaitable[JobResult]]
TriggerFor = Callable[[Settings], BaseTrigger]  # settings -> when a recurring job fires
HANDLERS: dict[str, JobFn] = {}
RECURRING: dict[str, TriggerFor] = {}
TIMER_ID = "sotay-due-work"
PROCESSED_EVENTS_KEPT = timedelta(days=7)
LOOK_EVERY_SECONDS = 30.0
"""How often the timer is re-armed from the table even when nothing here changed it: work
scheduled by another process (``sotay revoke``, a second worker) is noticed within this time."""


def job(kind: str) -> Callable[[JobFn], JobFn]:
    """Register the handler for one kind of due work."""

    def register(fn: JobFn) -> JobFn:
        HANDLERS[kind] = fn
        return fn

    return register


def recurring(kind: str, trigger: TriggerFor) -> Callable[[JobFn], JobFn]:
    """Register a job that runs on a calendar (an APScheduler trigger built from the settings,
    e.g. ``CronTrigger(day_of_week="mon", hour=8)``). One pending row per kind is kept: armed at
    start-up and again after every tick, so a run that fails or is skipped never ends the series.
    The job itself never schedules its successor."""

    def register(fn: JobFn) -> JobFn:
        HANDLERS[kind] = fn
        RECURRING[kind] = trigger
        return fn

    return register


def next_fire(trigger: BaseTrigger, after: datetime) -> datetime:
    """The trigger's first fire time strictly after ``after``, in UTC."""
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:
        raise ValueError("the trigger never fires again")
    return fire.astimezone(UTC)


async def ensure_recurring(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Give every recurring kind without a pending row its next run; return how many were armed.

    A pending row of the kind (the next run, or a run held back for quiet hours) is enough."""
    if not RECURRING:
        return 0
    stmt = select(DueJob.kind).where(
        col(DueJob.kind).in_(list(RECURRING)), DueJob.status == JobStatus.pending
    )
    armed = set((await session.exec(stmt)).all())
    added = 0
    for kind, trigger_for in RECURRING.items():
        if kind in armed:
            continue
        due = next_fire(trigger_for(settings), now)
        schedule(session, kind=kind, due_at=due, now=now, dedupe_key=f"{kind}:{due:%Y-%m-%dT%H:%M}")
        added += 1
    return added


def schedule(
    session: AsyncSession,
    *,
    kind: str,
    due_at: datetime,
    now: datetime,
    ref_id: int | None = None,
    member_id: int | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> DueJob:
    """Add due work in the caller's transaction (the timer is re-armed after commit)."""
    row = DueJob(
        kind=kind,
        due_at=due_at,
        ref_id=ref_id,
        member_id=member_id,
        payload=payload or {},
        dedupe_key=dedupe_key,
        created_at=now,
    )
    session.add(row)
    session.info["scheduled"] = True  # tells the router to re-arm the timer after commit
    return row


async def cancel(session: AsyncSession, *, ref_id: int, kinds: tuple[str, ...] = ()) -> None:
    """Cancel pending work about one object (e.g. every reminder of a cancelled meeting)."""
    stmt = update(DueJob).where(
        col(DueJob.ref_id) == ref_id, col(DueJob.status) == JobStatus.pending
    )
    if kinds:
        stmt = stmt.where(col(DueJob.kind).in_(kinds))
    await session.exec(stmt.values(status=JobStatus.cancelled))


def job_context(session: AsyncSession, services: Services, work: DueJob) -> Ctx:
    event = Inbound(channel="system", user_ref="system", chat_ref="system", key=f"job-{work.id}")
    return Ctx(
        session=session,
        services=services,
        event=event,
        actor=Actor(),
        lang=services.settings.default_language,
    )


class Scheduler:
    def __init__(
        self,
        db: Database,
        services: Services,
        *,
        wake: Callable[[], None],
        look_every: float = LOOK_EVERY_SECONDS,
    ) -> None:
        self._db = db
        self._look_every = look_every
        self._services = services
        self._wake_dispatcher = wake
        self._aps = AsyncIOScheduler(timezone="UTC")
        self._armed_for: datetime | None = None
        self._ticking = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()  # keeps running ticks referenced

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self._services.clock

    async def start(self) -> None:
        self._aps.start()
        self._aps.add_job(
            self.purge,
            "interval",
            hours=1,
            id="purge",
            misfire_grace_time=None,
            coalesce=True,
            replace_existing=True,  # started again after a scheduler election (bot/election.py)
        )
        self._aps.add_job(
            self.rearm,
            "interval",
            seconds=self._look_every,
            id="look",
            misfire_grace_time=None,
            coalesce=True,
            replace_existing=True,
        )
        await self.rearm()

    async def stop(self) -> None:
        """Stop the timer and wait for a tick in progress (its job commits or rolls back)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    async def settled(self) -> None:
        """Return once no tick is running: work that has started has committed (or failed)."""
        async with self._ticking:
            return

    async def next_due(self) -> datetime | None:
        async with self._db.reader() as session:
            stmt = select(func.min(DueJob.due_at)).where(DueJob.status == JobStatus.pending)
            return (await session.exec(stmt)).one()

    async def rearm(self) -> None:
        """Arm the single timer for the earliest pending work (called after every commit)."""
        due = await self.next_due()
        if due is None or not self._aps.running:
            self._armed_for = due
            return
        if self._armed_for == due and self._aps.get_job(TIMER_ID) is not None:
            return
        self._armed_for = due
        delay = max(0.0, (due - self.clock.now()).total_seconds())
        run_at = datetime.now(tz=due.tzinfo) + timedelta(seconds=delay)
        self._aps.add_job(
            self._on_timer,
            "date",
            run_date=run_at,
            id=TIMER_ID,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    async def _on_timer(self) -> None:
        """The APScheduler job only starts the work and returns at once. Running ``tick`` inside
        the job would let ``rearm`` replace the job while it still runs, and APScheduler drops a
        one-off job whose previous instance has not finished: the schedule would stall."""
        task = asyncio.get_running_loop().create_task(self._guarded_tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded_tick(self) -> int:
        """A failed tick (the database unavailable) re-arms itself a little later."""
        try:
            return await self.tick()
        except Exception:
            log.exception("scheduler.tick_failed")
            self._armed_for = None
            if self._aps.running:
                retry_at = datetime.now(UTC) + timedelta(seconds=5)
                self._aps.add_job(
                    self._on_timer,
                    "date",
                    run_date=retry_at,
                    id=TIMER_ID,
                    replace_existing=True,
                    misfire_grace_time=None,
                    coalesce=True,
                )
            return 0

    async def tick(self, limit: int = 500) -> int:
        """Run every piece of work that is due now; return how many were handled."""
        async with self._ticking:
            handled = 0
            while batch := await self._claim(limit):
                for work_id in batch:
                    await self._run_one(work_id)
                handled += len(batch)
                self._wake_dispatcher()
            if handled:
                await self.ensure_recurring()
            self._armed_for = None
            await self.rearm()
            return handled

    async def ensure_recurring(self) -> None:
        """Arm the next run of every recurring job that has none (two workers may race: the
        dedupe key lets only one row in)."""
        try:
            async with self._db.session() as session:
                await ensure_recurring(session, self._services.settings, self.clock.now())
        except IntegrityError:
            log.info("scheduler.recurring_already_armed")

    async def _claim(self, limit: int) -> list[int]:
        async with self._db.reader() as session:
            stmt = (
                select(DueJob.id)
                .where(DueJob.status == JobStatus.pending, col(DueJob.due_at) <= self.clock.now())
                .order_by(col(DueJob.due_at), col(DueJob.id))
                .limit(limit)
            )
            return [i for i in (await session.exec(stmt)).all() if i is not None]

    async def _run_one(self, work_id: int) -> None:
        """One job, one transaction: the status flip and everything it sends commit together;
        then what the job left for after the commit (``session.info["after_commit"]``)."""
        try:
            async with self._db.session() as session:
                stmt = select(DueJob).where(
                    col(DueJob.id) == work_id, DueJob.status == JobStatus.pending
                )
                if is_postgres(self._db.engine):
                    stmt = stmt.with_for_update(skip_locked=True)
                work = (await session.exec(stmt)).first()
                if work is None:
                    return
                handler = HANDLERS.get(work.kind)
                result = (
                    await handler(job_context(session, self._services, work), work)
                    if handler
                    else skip("no handler")
                )
                work.status = JobStatus.skipped if result.skipped else JobStatus.done
                work.note, work.done_at = result.note, self.clock.now()
                session.add(work)
        except IntegrityError:
            log.exception("job.conflict id=%s", work_id)
            return
        except Exception:
            log.exception("job.failed id=%s", work_id)
            async with self._db.session() as session:
                await session.exec(
                    update(DueJob)
                    .where(col(DueJob.id) == work_id)
                    .values(status=JobStatus.skipped, note="failed", done_at=self.clock.now())
                )
            return
        await self._after_commit(work_id, session.info.get("after_commit", ()))

    async def _after_commit(self, work_id: int, works: Any) -> None:
        """Work a job left for after its transaction committed (e.g. a network call that must
        not hold the write lock); it records its outcome in transactions of its own."""
        for after in works:
            try:
                await after(self._db)
            except Exception:
                log.exception("job.after_commit_failed id=%s", work_id)

    async def purge(self) -> None:
        """Forget idempotency keys older than a week; Telegram never redelivers that late."""
        async with self._db.session() as session:
            cutoff = self.clock.now() - PROCESSED_EVENTS_KEPT
            await session.exec(delete(ProcessedEvent).where(col(ProcessedEvent.at) < cutoff))
