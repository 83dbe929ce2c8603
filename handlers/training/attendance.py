"""Attendance after a training: the trainer ticks who came (those who said yes ticked to start
with); the first time it is saved, the follow-up question is planned for a day later.
"""

from __future__ import annotations

from bot import dialogs
from bot.context import Ctx
from bot.dialogs import Answer, Next, Prompt
from handlers.checklist import flipped, roll_call
from handlers.training.common import (
    AttendanceState,
    active_members,
    attendance_flow,
    log,
    seats_of,
    session_for_trainer,
    starts_of,
)
from handlers.training.jobs import plan_check
from storage.ids import id_of
from storage.training_models import TrainingSession


async def start_attendance(ctx: Ctx, row: TrainingSession) -> None:
    if starts_of(row) > ctx.now:
        ctx.reply(ctx.t("tr.attendance.too_early"))
        return
    seats = await seats_of(ctx.session, id_of(row))
    present = [
        mid
        for mid, seat in seats.items()
        if (seat.present if seat.present is not None else seat.answer == "yes")
    ]
    await dialogs.start(
        ctx,
        attendance_flow,
        "who",
        AttendanceState(lang=ctx.lang, session_id=id_of(row), present=present),
    )


@attendance_flow.ask("who")
async def ask_who(ctx: Ctx, s: AttendanceState) -> Prompt:
    seats = await seats_of(ctx.session, s["session_id"])
    members = sorted(
        await active_members(ctx, list(seats)),
        key=lambda m: (seats[id_of(m)].answer != "yes", m.full_name or ""),
    )
    options = roll_call(members, s["present"], ("✓", "✗"), ctx.t("tr.attendance.done"))
    return Prompt(ctx.t("tr.attendance.ask"), options, columns=2)


@attendance_flow.answer("who")
async def on_who(ctx: Ctx, s: AttendanceState, a: Answer) -> Next:
    if a.value != "done":
        s["present"] = flipped(s["present"], int(a.value or 0))
        return "who"
    found = await session_for_trainer(ctx, s["session_id"])
    if found is None:
        return None
    row, _unit = found
    seats = await seats_of(ctx.session, id_of(row))
    ticked = set(s["present"])
    for member_id, seat in seats.items():
        seat.present = member_id in ticked
        ctx.session.add(seat)
    first_time = row.attendance_taken_at is None
    row.attendance_taken_at = ctx.now
    ctx.session.add(row)
    if first_time:
        plan_check(ctx, row)
    came = len(ticked & set(seats))
    log.info("training.attendance session=%s present=%s", row.id, came)
    ctx.reply(ctx.t("tr.attendance.saved", n=came))
    return None
