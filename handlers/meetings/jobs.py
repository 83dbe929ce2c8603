"""Timed work of a meeting (reminder, documents, follow-up) as due-work rows, held back in quiet
hours, so a restart loses none and a cancelled meeting sends none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot import scheduler
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.scheduler import JobResult, done, skip
from handlers.broadcast import send_broadcast
from handlers.meetings.common import (
    SECRETARIES,
    CardVerb,
    card_button,
    cell_members,
    local,
    log,
    replies_of,
    start_of,
    when_text,
)
from storage import queries
from storage.models import (
    DueJob,
    Meeting,
    MeetingStatus,
    Member,
    ReplyAnswer,
    Unit,
)

# --- timed work -----------------------------------------------------------------------------------


@scheduler.job("mt_reminder")
async def reminder_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        return skip("cancelled")
    if start_of(meeting) <= ctx.now:
        log.info("reminder.skipped_past meeting=%s", meeting.id)
        return skip("meeting already started")
    cell = await ctx.session.get(Unit, meeting.cell_id)
    replies = await replies_of(ctx, meeting.id or 0)
    members = [
        m
        for m in await cell_members(ctx, meeting.cell_id)
        if not (m.id in replies and replies[m.id].answer == ReplyAnswer.absent)
    ]
    late = ctx.now - work.due_at > timedelta(minutes=10)  # type: ignore[operator]
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="meeting_reminder",
        members=members,
        meeting_id=meeting.id,
        unit_id=meeting.cell_id,
        render=lambda lang, _m: View(
            t(
                lang,
                "mt.reminder_late" if late else "mt.reminder",
                when=when_text(lang, local(tz, start_of(meeting))),
                place=meeting.place,
                cell=cell.name if cell else "",
            )
        ),
    )
    return done("late" if late else None)


async def secretaries_of(ctx: Ctx, cell_id: int) -> list[Member]:
    return list(await queries.holders(ctx.session, unit_id=cell_id, roles=SECRETARIES))


@scheduler.job("mt_docs")
async def docs_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled or start_of(meeting) <= ctx.now:
        return skip("cancelled or past")
    if meeting.documents_posted:
        return skip("documents already posted")
    if defer_for_quiet_hours(ctx, work):
        return done("deferred: quiet hours")
    tz = ctx.settings.tz
    for person in await secretaries_of(ctx, meeting.cell_id):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "mt.docs.nudge", when=when_text(lang, local(tz, start_of(meeting)))),
                [[card_button(ctx, t(lang, "mt.card.docs"), meeting, CardVerb.docs_posted)]],
            ),
        )
    return done()


@scheduler.job("mt_followup")
async def followup_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        return skip("cancelled")
    for person in await secretaries_of(ctx, meeting.cell_id):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "mt.followup"),
                [
                    [card_button(ctx, t(lang, "mt.card.attendance"), meeting, CardVerb.attendance)],
                    [
                        card_button(ctx, t(lang, "mt.app.yes"), meeting, CardVerb.in_app_yes),
                        card_button(ctx, t(lang, "mt.app.no"), meeting, CardVerb.in_app_no),
                    ],
                ],
            ),
        )
    return done()


def in_quiet_hours(ctx: Ctx, moment: datetime) -> datetime | None:
    """When ``moment`` falls in the quiet hours, the local time they end; else None."""
    window = ctx.settings.quiet_hours
    if window is None:
        return None
    start, end = window
    here = local(ctx, moment)
    now_t = here.time()
    quiet = (start <= now_t or now_t < end) if start > end else (start <= now_t < end)
    if not quiet:
        return None
    end_day = here.date() + timedelta(days=1) if start > end and now_t >= start else here.date()
    return datetime.combine(end_day, end, tzinfo=ctx.settings.tz)


def defer_for_quiet_hours(ctx: Ctx, work: DueJob) -> bool:
    resume = in_quiet_hours(ctx, ctx.now)
    if resume is None:
        return False
    scheduler.schedule(
        ctx.session,
        kind=work.kind,
        due_at=resume.astimezone(UTC),
        now=ctx.now,
        ref_id=work.ref_id,
        member_id=work.member_id,
        payload=work.payload,
        dedupe_key=f"{work.dedupe_key or work.id}:q",
    )
    return True
