"""Attendance after the meeting: who was absent, excused or not, and whether the meeting was
entered in the handbook app; repeated absences are told to the secretaries.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, func, select

from bot import dialogs
from bot.context import Ctx
from bot.dialogs import Answer, Next, Option, Prompt
from handlers.checklist import flipped, roll_call
from handlers.meetings.common import (
    AttendanceState,
    attendance_flow,
    cell_members,
    meeting_for_secretary,
    replies_of,
)
from storage.ids import id_of
from storage.models import (
    Attendance,
    Meeting,
    Member,
    ReplyAnswer,
    Unit,
)

# --- attendance after the meeting -----------------------------------------------------------------


async def start_attendance(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    replies = await replies_of(ctx, meeting.id or 0)
    absent = [mid for mid, r in replies.items() if r.answer == ReplyAnswer.absent]
    state: AttendanceState = {
        "lang": ctx.lang,
        "meeting_id": id_of(meeting),
        "cell_id": id_of(cell),
        "absent": absent,
        "excused": {},
    }
    await dialogs.start(ctx, attendance_flow, "absent", state)


@attendance_flow.ask("absent")
async def ask_absent(ctx: Ctx, s: AttendanceState) -> Prompt:
    members = await cell_members(ctx, s["cell_id"])
    options = roll_call(members, s["absent"], ("✗", "✓"), ctx.t("mt.att.done"))
    return Prompt(ctx.t("mt.att.ask"), options, columns=2)


@attendance_flow.answer("absent")
async def on_absent(ctx: Ctx, s: AttendanceState, a: Answer) -> Next:
    if a.value != "done":
        s["absent"] = flipped(s["absent"], int(a.value or 0))
        return "absent"
    return "excuse" if s["absent"] else "app"


def _next_unasked(s: AttendanceState) -> int | None:
    return next((m for m in s["absent"] if str(m) not in s["excused"]), None)


@attendance_flow.ask("excuse")
async def ask_excuse(ctx: Ctx, s: AttendanceState) -> Prompt:
    member = await ctx.session.get(Member, _next_unasked(s))
    return Prompt(
        ctx.t("mt.att.excused", name=member.full_name if member else "?"),
        [Option("yes", ctx.t("mt.att.with_reason")), Option("no", ctx.t("mt.att.without_reason"))],
    )


@attendance_flow.answer("excuse")
async def on_excuse(ctx: Ctx, s: AttendanceState, a: Answer) -> Next:
    s["excused"][str(_next_unasked(s))] = a.value == "yes"
    return "excuse" if _next_unasked(s) is not None else "app"


@attendance_flow.ask("app")
async def ask_app(ctx: Ctx, s: AttendanceState) -> Prompt:
    return Prompt(
        ctx.t("mt.app.ask"),
        [Option("yes", ctx.t("common.yes")), Option("no", ctx.t("common.no"))],
        columns=2,
    )


@attendance_flow.answer("app")
async def on_app(ctx: Ctx, s: AttendanceState, a: Answer) -> Next:
    found = await meeting_for_secretary(ctx, int(s["meeting_id"]))
    if found is None:
        return None
    meeting, cell = found
    replies = await replies_of(ctx, meeting.id or 0)
    existing = {
        r.member_id: r
        for r in (
            await ctx.session.exec(select(Attendance).where(Attendance.meeting_id == meeting.id))
        ).all()
    }
    for member in await cell_members(ctx, cell.id or 0):
        row = existing.get(member.id or 0) or Attendance(
            meeting_id=meeting.id or 0, member_id=member.id or 0
        )
        row.present = member.id not in s["absent"]
        row.excused = bool(s["excused"].get(str(member.id))) if not row.present else False
        reply = replies.get(member.id or 0)
        row.reason = reply.reason if reply and not row.present else None
        ctx.session.add(row)
    meeting.attendance_taken_at, meeting.entered_in_app = ctx.now, a.value == "yes"
    ctx.session.add(meeting)
    await ctx.session.flush()
    ctx.reply(ctx.t("mt.att.saved", absent=len(s["absent"])))
    await warn_repeated_absences(ctx, [m for m in s["absent"] if not s["excused"].get(str(m))])
    return None


async def warn_repeated_absences(ctx: Ctx, member_ids: list[int]) -> None:
    """Three absences without reason in 12 months: the secretary (not the member) is warned."""
    since = ctx.now - timedelta(days=365)
    for member_id in member_ids:
        stmt = (
            select(func.count())
            .select_from(Attendance)
            .join(Meeting, col(Meeting.id) == Attendance.meeting_id)
            .where(
                Attendance.member_id == member_id,
                ~col(Attendance.present),
                ~col(Attendance.excused),
                col(Meeting.starts_at) >= since,
            )
        )
        count = (await ctx.session.exec(stmt)).one()
        if count >= 3:
            member = await ctx.session.get(Member, member_id)
            ctx.reply(ctx.t("mt.att.warning", name=member.full_name if member else "?", n=count))
