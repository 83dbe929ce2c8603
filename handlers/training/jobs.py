"""Timed work of a training, as due-job rows: reminders before it to those who said yes, the
trainer's call to take attendance at its end, and the follow-up question a day after attendance.
A cancelled session sends nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from bot import scheduler
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.scheduler import JobResult, done, skip
from handlers.broadcast import send_broadcast
from handlers.training.common import (
    FOLLOWUP_AFTER,
    TRAINERS,
    CardVerb,
    active_members,
    card_button,
    seats_of,
    starts_of,
    when_text,
)
from handlers.training.followup import followup_view
from storage import queries
from storage.ids import id_of
from storage.models import DueJob, Member, MemberStatus, Unit
from storage.training_models import TrainingSeat, TrainingSession, TrainingStatus


def plan_jobs(ctx: Ctx, row: TrainingSession) -> None:
    """Reminders before the session to those who said yes; the trainer's follow-up at its end."""
    starts = starts_of(row)
    for offset in ctx.settings.reminder_offsets:
        due = starts - offset
        if due > ctx.now:
            seconds = int(offset.total_seconds())
            scheduler.schedule(
                ctx.session,
                kind="tr_reminder",
                due_at=due,
                now=ctx.now,
                ref_id=row.id,
                dedupe_key=f"trr:{row.id}:{seconds}",
            )
    scheduler.schedule(
        ctx.session,
        kind="tr_after",
        due_at=starts + timedelta(minutes=row.duration_min),
        now=ctx.now,
        ref_id=row.id,
        dedupe_key=f"tra:{row.id}",
    )


def plan_check(ctx: Ctx, row: TrainingSession) -> None:
    """The follow-up question to those who came, a day after attendance is first taken."""
    scheduler.schedule(
        ctx.session,
        kind="tr_check",
        due_at=ctx.now + FOLLOWUP_AFTER,
        now=ctx.now,
        ref_id=row.id,
        dedupe_key=f"trk:{row.id}",
    )


async def _live(ctx: Ctx, work: DueJob) -> tuple[TrainingSession, Unit] | None:
    row = await ctx.session.get(TrainingSession, work.ref_id)
    if row is None or row.status != TrainingStatus.scheduled:
        return None
    unit = await ctx.session.get(Unit, row.unit_id)
    return (row, unit) if unit is not None else None


@scheduler.job("tr_reminder")
async def reminder_job(ctx: Ctx, work: DueJob) -> JobResult:
    found = await _live(ctx, work)
    if found is None:
        return skip("cancelled")
    row, unit = found
    if starts_of(row) <= ctx.now:
        return skip("already started")
    seats = await seats_of(ctx.session, id_of(row))
    coming = [mid for mid, seat in seats.items() if seat.answer == "yes"]
    members = await active_members(ctx, coming)
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="training_reminder",
        members=members,
        unit_id=unit.id,
        render=lambda lang, _m: View(
            t(lang, "tr.reminder", when=when_text(lang, starts_of(row), tz), place=row.place)
        ),
    )
    return done(f"reminded {len(members)}")


async def trainers_of(ctx: Ctx, row: TrainingSession, unit: Unit) -> list[Member]:
    """Who runs the session: its creator while they still may, else the nearest staff,
    trainers or admins at or above its unit (a training for a cell has none on the cell)."""
    creator = await ctx.session.get(Member, row.created_by) if row.created_by else None
    if creator is not None and creator.status == MemberStatus.active:
        grants = await queries.grants_of(ctx.session, member_id=id_of(creator))
        if any(g.role in TRAINERS and queries.within(unit.path, u.path) for g, u in grants):
            return [creator]
    for candidate in [unit, *await queries.ancestors(ctx.session, unit=unit)]:
        found = await queries.holders(ctx.session, unit_id=id_of(candidate), roles=TRAINERS)
        if found:
            return list(found)
    return []


@scheduler.job("tr_after")
async def after_job(ctx: Ctx, work: DueJob) -> JobResult:
    found = await _live(ctx, work)
    if found is None:
        return skip("cancelled")
    row, unit = found
    if row.attendance_taken_at is not None:
        return skip("attendance already taken")
    for person in await trainers_of(ctx, row, unit):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "tr.after", unit=unit.name),
                [[card_button(ctx, t(lang, "tr.card.attendance"), row, CardVerb.attendance)]],
            ),
        )
    return done()


@scheduler.job("tr_check")
async def check_job(ctx: Ctx, work: DueJob) -> JobResult:
    row = await ctx.session.get(TrainingSession, work.ref_id)
    if row is None:
        return skip("gone")
    stmt = (
        select(Member)
        .join(TrainingSeat, col(TrainingSeat.member_id) == Member.id)
        .where(
            TrainingSeat.session_id == row.id,
            col(TrainingSeat.present).is_(True),
            Member.status == MemberStatus.active,
        )
    )
    members = list((await ctx.session.exec(stmt)).all())
    await send_broadcast(
        ctx,
        kind="training_followup",
        members=members,
        unit_id=row.unit_id,
        render=lambda lang, _m: followup_view(ctx, lang, row),
    )
    return done(f"asked {len(members)}")
