"""What a confirmed meeting dialog does: the meeting saved, its notice sent to the cell and
copied to staff, its reminders planned as due work; a change supersedes notices not yet sent and
tells who already had the old one; cancellation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from bot import scheduler
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt
from bot.i18n import t
from handlers.broadcast import send_broadcast
from handlers.meetings.common import (
    CancelState,
    MeetingState,
    cancel_flow,
    cell_members,
    local,
    meeting_for_secretary,
    notice_text,
    reply_buttons,
    start_of,
    when_text,
)
from storage import queries
from storage.models import (
    Broadcast,
    Meeting,
    MeetingKind,
    MeetingStatus,
    OutboxMessage,
    OutboxStatus,
    Role,
    Unit,
)


# --- the meeting as saved ----------------------------------------------------------------------
def draft_meeting(ctx: Ctx, s: MeetingState) -> Meeting:
    starts = datetime.combine(
        date.fromisoformat(s["date"]), time.fromisoformat(s["time"]), tzinfo=ctx.settings.tz
    ).astimezone(UTC)
    return Meeting(
        cell_id=s["cell_id"],
        kind=MeetingKind(s["kind"]),
        starts_at=starts,
        duration_min=s["duration"],
        place=s["place"],
        agenda=s["agenda"],
        created_at=ctx.now,
        updated_at=ctx.now,
    )


async def create_meeting(ctx: Ctx, s: MeetingState, cell: Unit) -> None:
    meeting = draft_meeting(ctx, s)
    meeting.created_by = ctx.actor.member.id if ctx.actor.member else None
    ctx.session.add(meeting)
    await ctx.session.flush()
    members = await cell_members(ctx, cell.id or 0)
    tz = ctx.settings.tz
    queued = await send_broadcast(
        ctx,
        kind="meeting_notice",
        members=members,
        meeting_id=meeting.id,
        unit_id=cell.id,
        report=True,
        render=lambda lang, _m: View(
            notice_text(lang, meeting, cell, tz), reply_buttons(ctx, lang, meeting)
        ),
    )
    await copy_to_staff(ctx, meeting, cell)
    plan_jobs(ctx, meeting)
    ctx.reply(ctx.t("mt.created", n=queued.members_reached, unreachable=queued.unreachable))


async def copy_to_staff(ctx: Ctx, meeting: Meeting, cell: Unit, key: str = "mt.notice") -> None:
    """The overseeing committee's staff get a copy when the deployment asks for it."""
    if not ctx.settings.meeting_copy_to_staff:
        return
    for unit in await queries.ancestors(ctx.session, unit=cell):
        staff = await queries.holders(ctx.session, unit_id=unit.id or 0, roles=(Role.staff,))
        if staff:
            for person in staff:
                await ctx.notify_member(
                    person,
                    lambda lang: View(notice_text(lang, meeting, cell, ctx.settings.tz, key=key)),
                )
            return


def plan_jobs(ctx: Ctx, meeting: Meeting) -> None:
    """Reminders before the meeting, document nudges 3 days and 1 day before, a follow-up after."""
    starts = start_of(meeting)
    v = meeting.version
    for offset in ctx.settings.reminder_offsets:
        due = starts - offset
        if due > ctx.now:
            scheduler.schedule(
                ctx.session,
                kind="mt_reminder",
                due_at=due,
                now=ctx.now,
                ref_id=meeting.id,
                payload={"offset_s": int(offset.total_seconds())},
                dedupe_key=f"mtr:{meeting.id}:{v}:{int(offset.total_seconds())}",
            )
    for days in (3, 1):
        due = starts - timedelta(days=days)
        if due > ctx.now:
            scheduler.schedule(
                ctx.session,
                kind="mt_docs",
                due_at=due,
                now=ctx.now,
                ref_id=meeting.id,
                dedupe_key=f"mtd:{meeting.id}:{v}:{days}",
            )
    end = starts + timedelta(minutes=meeting.duration_min)
    scheduler.schedule(
        ctx.session,
        kind="mt_followup",
        due_at=end,
        now=ctx.now,
        ref_id=meeting.id,
        dedupe_key=f"mtf:{meeting.id}:{v}",
    )


# --- changes and cancellation ---------------------------------------------------------------------


async def supersede_pending_notices(ctx: Ctx, meeting_id: int) -> set[int]:
    """Withdraw notices still waiting in the outbox; return the members who already got one."""
    broadcasts = select(Broadcast.id).where(Broadcast.meeting_id == meeting_id)
    free = (col(OutboxMessage.lease_until).is_(None)) | (col(OutboxMessage.lease_until) < ctx.now)
    await ctx.session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.broadcast_id).in_(broadcasts),
            col(OutboxMessage.status) == OutboxStatus.pending,
        )
        .where(free)
        .values(status=OutboxStatus.superseded)
    )
    stmt = select(OutboxMessage.member_id).where(
        col(OutboxMessage.broadcast_id).in_(broadcasts),
        col(OutboxMessage.status).in_([OutboxStatus.sent, OutboxStatus.pending]),
    )
    return {m for m in (await ctx.session.exec(stmt)).all() if m is not None}


async def apply_change(ctx: Ctx, s: MeetingState, cell: Unit) -> None:
    meeting = await ctx.session.get(Meeting, s["meeting_id"])
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return
    draft = draft_meeting(ctx, s)
    changed = [
        name
        for name in ("starts_at", "place", "agenda", "duration_min", "kind")
        if getattr(draft, name) != getattr(meeting, name)
    ]
    if not changed:
        ctx.reply(ctx.t("mt.unchanged"))
        return
    for name in changed:
        setattr(meeting, name, getattr(draft, name))
    meeting.version += 1
    meeting.updated_at = ctx.now
    ctx.session.add(meeting)
    informed = await supersede_pending_notices(ctx, meeting.id or 0)
    members = await cell_members(ctx, cell.id or 0)
    tz = ctx.settings.tz
    what = ", ".join(t(ctx.lang, f"mt.field.{name}") for name in changed)
    await send_broadcast(
        ctx,
        kind="meeting_change",
        members=[m for m in members if m.id in informed],
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            t(lang, "mt.changed", what=", ".join(t(lang, f"mt.field.{n}") for n in changed))
            + "\n\n"
            + notice_text(lang, meeting, cell, tz),
            reply_buttons(ctx, lang, meeting),
        ),
    )
    await send_broadcast(
        ctx,
        kind="meeting_notice",
        members=[m for m in members if m.id not in informed],
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            notice_text(lang, meeting, cell, tz), reply_buttons(ctx, lang, meeting)
        ),
    )
    await scheduler.cancel(ctx.session, ref_id=meeting.id or 0, kinds=MEETING_JOBS)
    plan_jobs(ctx, meeting)
    ctx.reply(ctx.t("mt.change_sent", what=what))


MEETING_JOBS = ("mt_reminder", "mt_docs", "mt_followup")


@cancel_flow.ask("confirm")
async def ask_cancel(ctx: Ctx, s: CancelState) -> Prompt:
    return Prompt(
        ctx.t("mt.cancel.confirm"),
        [Option("yes", ctx.t("mt.cancel.yes")), Option("no", ctx.t("mt.cancel.no"))],
    )


@cancel_flow.answer("confirm")
async def on_cancel(ctx: Ctx, s: CancelState, a: Answer) -> Next:
    if a.value != "yes":
        ctx.reply(ctx.t("mt.cancel.kept"))
        return None
    found = await meeting_for_secretary(ctx, int(s["meeting_id"]))
    if found is None:
        return None
    meeting, cell = found
    if meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return None
    meeting.status, meeting.updated_at = MeetingStatus.cancelled, ctx.now
    ctx.session.add(meeting)
    informed = await supersede_pending_notices(ctx, meeting.id or 0)
    await scheduler.cancel(ctx.session, ref_id=meeting.id or 0, kinds=MEETING_JOBS)
    members = [m for m in await cell_members(ctx, cell.id or 0) if m.id in informed]
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="meeting_cancel",
        members=members,
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            t(
                lang,
                "mt.cancelled",
                when=when_text(lang, local(tz, start_of(meeting))),
                cell=cell.name,
            )
        ),
    )
    await copy_to_staff(ctx, meeting, cell, key="mt.notice")
    ctx.reply(ctx.t("mt.cancel.done", n=len(members)))
    return None
