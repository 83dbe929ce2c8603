"""The monthly nudge: cells with no meeting entered last month are reminded to schedule one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import col, select

from bot import scheduler
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.scheduler import JobResult, done
from handlers.meetings.common import SECRETARIES, NewMeeting, local, start_of
from handlers.meetings.jobs import defer_for_quiet_hours, secretaries_of
from storage.ids import id_of
from storage.models import (
    DueJob,
    Meeting,
    MeetingKind,
    MeetingStatus,
    RoleGrant,
    Unit,
)

# --- the monthly nudge ----------------------------------------------------------------------------


def nudge_trigger(settings: Any) -> CronTrigger:
    """09:00 local on the configured day of every month (SOTAY_NUDGE_DAY)."""
    return CronTrigger(day=settings.nudge_day, hour=9, minute=0, timezone=settings.tz)


def _month_after(day: date) -> tuple[date, date]:
    first = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last


def _nudge_view(ctx: Ctx, key: str, cell: Unit, first: date) -> Callable[[str], View]:
    """The nudge to one cell's secretaries, in each one's language."""

    def render(lang: str) -> View:
        return View(
            t(lang, key, month=f"{first:%m/%Y}", cell=cell.name),
            [[ctx.button(t(lang, "mt.schedule_now"), NewMeeting(id_of(cell)))]],
        )

    return render


@scheduler.recurring("monthly_nudge", nudge_trigger)
async def monthly_nudge_job(ctx: Ctx, work: DueJob) -> JobResult:
    if defer_for_quiet_hours(ctx, work):
        return done("deferred: quiet hours")
    today = local(ctx, ctx.now).date()
    first, last = _month_after(today)
    quarter_end = today.month % 3 == 0
    q_start = date(today.year, today.month - 2, 1) if quarter_end else None
    stmt = (
        select(Unit)
        .join(RoleGrant, col(RoleGrant.unit_id) == Unit.id)
        .where(col(RoleGrant.role).in_(list(SECRETARIES)))
        .distinct()
    )
    nudged = 0
    for cell in (await ctx.session.exec(stmt)).all():
        meetings = (
            await ctx.session.exec(
                select(Meeting).where(
                    Meeting.cell_id == cell.id, Meeting.status == MeetingStatus.scheduled
                )
            )
        ).all()
        days = [(local(ctx, start_of(m)).date(), m.kind) for m in meetings]
        has_regular = any(
            first <= d <= last and k in (MeetingKind.regular, MeetingKind.combined) for d, k in days
        )
        has_thematic = q_start is None or any(
            q_start <= d <= last and k in (MeetingKind.thematic, MeetingKind.combined)
            for d, k in days
        )
        if has_regular and has_thematic:
            continue
        key = "mt.nudge.regular" if not has_regular else "mt.nudge.thematic"
        for person in await secretaries_of(ctx, cell.id or 0):
            await ctx.notify_member(person, _nudge_view(ctx, key, cell, first))
            nudged += 1
    return done(f"nudged {nudged}")
