"""Taking part: a member answers an invitation yes or no, and a cell's secretary signs members
up on their behalf. One ``sign_up`` records both, and refuses a yes beyond the capacity.
"""

from __future__ import annotations

from sqlmodel import select

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from handlers.training.common import (
    SECRETARIES,
    InviteAnswer,
    SignUpOthers,
    SignupState,
    TrainingAnswer,
    answer_buttons,
    cell_of,
    invite_text,
    seats_of,
    signup_flow,
    starts_of,
    taken,
)
from storage import queries
from storage.ids import id_of
from storage.models import Member, MemberStatus, Unit
from storage.training_models import TrainingSeat, TrainingSession, TrainingStatus

# --- members answer -------------------------------------------------------------------------------


async def on_member_answer(ctx: Ctx, press: TrainingAnswer) -> None:
    """A member of a cell inside the session's unit answers its invitation."""
    row = await ctx.session.get(TrainingSession, press.session_id)
    unit = await ctx.session.get(Unit, row.unit_id) if row else None
    member = ctx.actor.member
    cell = await cell_of(ctx, member)
    if (
        row is None
        or unit is None
        or member is None
        or cell is None
        or not queries.within(cell.path, unit.path)
    ):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if row.status != TrainingStatus.scheduled:
        ctx.reply(ctx.t("tr.cancelled_already"))
        return
    if starts_of(row) <= ctx.now:
        ctx.reply(ctx.t("tr.closed"))
        return
    outcome = await sign_up(ctx, row, member, yes=press.answer == InviteAnswer.yes, by=None)
    ctx.reply(ctx.t(f"tr.answer.{outcome}"))


async def sign_up(
    ctx: Ctx, row: TrainingSession, member: Member, *, yes: bool, by: int | None
) -> str:
    """Record a yes or no; a yes beyond the capacity is refused. Returns yes | no | full.

    The session row is locked first (FOR UPDATE on PostgreSQL; SQLite writers take turns
    anyway), so two members answering at once cannot both take the last place."""
    lock = select(TrainingSession.id).where(TrainingSession.id == row.id).with_for_update()
    await ctx.session.exec(lock)
    seats = await seats_of(ctx.session, id_of(row))
    seat = seats.get(id_of(member))
    already = seat is not None and seat.answer == "yes"
    if yes and not already and await taken(ctx.session, id_of(row)) >= row.capacity:
        return "full"
    if seat is None:
        seat = TrainingSeat(
            session_id=id_of(row),
            member_id=id_of(member),
            invited=False,
            installed_before=member.app_installed,
            activated_before=member.app_activated,
        )
    seat.answer, seat.answered_at = ("yes" if yes else "no"), ctx.now
    seat.signed_up_by = by
    ctx.session.add(seat)
    await ctx.session.flush()
    return "yes" if yes else "no"


# --- secretaries sign members up ------------------------------------------------------------------


async def on_signup_others(ctx: Ctx, press: SignUpOthers) -> None:
    """A secretary of a cell inside the session's unit opens the sign-up dialog."""
    row = await ctx.session.get(TrainingSession, press.session_id)
    unit = await ctx.session.get(Unit, row.unit_id) if row else None
    cells = [
        c
        for c in ctx.actor.scopes(*SECRETARIES)
        if unit is not None and queries.within(c.path, unit.path)
    ]
    if row is None or not cells:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if row.status != TrainingStatus.scheduled or starts_of(row) <= ctx.now:
        ctx.reply(ctx.t("tr.closed"))
        return
    await dialogs.start(
        ctx,
        signup_flow,
        "pick",
        SignupState(lang=ctx.lang, session_id=id_of(row), cell_id=id_of(cells[0]), added=[]),
    )


async def _cell_members(ctx: Ctx, cell_id: int) -> list[Member]:
    stmt = select(Member).where(Member.cell_id == cell_id, Member.status == MemberStatus.active)
    return list((await ctx.session.exec(stmt.order_by(Member.full_name))).all())


@signup_flow.ask("pick")
async def ask_pick(ctx: Ctx, s: SignupState) -> Prompt:
    seats = await seats_of(ctx.session, s["session_id"])
    options = []
    for m in await _cell_members(ctx, s["cell_id"]):
        seat = seats.get(id_of(m))
        mark = "✓ " if seat is not None and seat.answer == "yes" else "▫ "
        options.append(Option(str(m.id), mark + (m.full_name or "?")))
    options.append(Option("done", ctx.t("tr.signup.done")))
    return Prompt(ctx.t("tr.signup.ask"), options, columns=2)


@signup_flow.answer("pick")
async def on_pick(ctx: Ctx, s: SignupState, a: Answer) -> Next:
    row = await ctx.session.get(TrainingSession, s["session_id"])
    cell = await ctx.session.get(Unit, s["cell_id"])
    if row is None or cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    if a.value == "done":
        await finish_signup(ctx, row, s["added"])
        return None
    member = await ctx.session.get(Member, int(a.value or 0))
    if member is None or member.cell_id != cell.id or member.status != MemberStatus.active:
        return Retry("common.stale_button")
    if row.status != TrainingStatus.scheduled or starts_of(row) <= ctx.now:
        ctx.reply(ctx.t("tr.closed"))
        return None
    seat = (await seats_of(ctx.session, id_of(row))).get(id_of(member))
    signed = seat is not None and seat.answer == "yes"
    by = ctx.actor.member.id if ctx.actor.member else None
    outcome = await sign_up(ctx, row, member, yes=not signed, by=by)
    if outcome == "full":
        return Retry("tr.answer.full")
    added = [m for m in s["added"] if m != member.id]
    s["added"] = added + ([id_of(member)] if outcome == "yes" else [])
    return "pick"


async def finish_signup(ctx: Ctx, row: TrainingSession, added: list[int]) -> None:
    """Tell the members signed up on their behalf (those with a chat), and the secretary."""
    unit = await ctx.session.get(Unit, row.unit_id)
    tz = ctx.settings.tz
    told = 0
    for member_id in added:
        member = await ctx.session.get(Member, member_id)
        if member is None or unit is None:
            continue
        told += bool(
            await ctx.notify_member(
                member,
                lambda lang: View(
                    t(lang, "tr.signed_for_you")
                    + "\n\n"
                    + invite_text(lang, row, unit, tz, row.capacity),
                    answer_buttons(ctx, lang, id_of(row)),
                ),
            )
        )
    ctx.reply(ctx.t("tr.signup.saved", n=len(added), told=told))
