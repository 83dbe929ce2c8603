"""The trainer's session card: its buttons (the card again, who answered what, attendance,
cancel and its confirmation), with the actor checked against the session's unit on every press.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlmodel import col, select

from bot import scheduler
from bot.context import Ctx
from bot.core import Choice, View
from bot.i18n import t
from handlers.broadcast import send_broadcast
from handlers.training.attendance import start_attendance
from handlers.training.common import (
    JOBS,
    CardVerb,
    TrainingCard,
    card_button,
    invite_text,
    log,
    seats_of,
    session_for_trainer,
    starts_of,
    when_text,
)
from storage.ids import id_of
from storage.models import Member, Unit
from storage.training_models import TrainingSession, TrainingStatus

NOT_WHEN_CANCELLED = frozenset({CardVerb.attendance, CardVerb.cancel, CardVerb.cancel_confirmed})


def card_buttons(ctx: Ctx, row: TrainingSession) -> list[list[Choice]]:
    rows = [[card_button(ctx, ctx.t("tr.card.status"), row, CardVerb.status)]]
    if starts_of(row) <= ctx.now:
        rows.append([card_button(ctx, ctx.t("tr.card.attendance"), row, CardVerb.attendance)])
    else:
        rows.append([card_button(ctx, ctx.t("tr.card.cancel"), row, CardVerb.cancel)])
    return rows


async def on_card(ctx: Ctx, press: TrainingCard) -> None:
    """One press on the card: the session is re-read and the actor re-checked as a trainer of
    its unit, then the verb's own function runs (attendance or cancelling is refused on a
    cancelled session)."""
    found = await session_for_trainer(ctx, press.session_id)
    if found is None:
        return
    row, unit = found
    if press.verb in NOT_WHEN_CANCELLED and row.status == TrainingStatus.cancelled:
        ctx.reply(ctx.t("tr.cancelled_already"))
        return
    await CARD_VERBS[press.verb](ctx, row, unit)


async def show_card(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    ctx.reply(View(invite_text(ctx.lang, row, unit, ctx.settings.tz, 0), card_buttons(ctx, row)))


async def show_status(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    seats = await seats_of(ctx.session, id_of(row))
    members = {
        m.id: m
        for m in (
            await ctx.session.exec(select(Member).where(col(Member.id).in_(list(seats))))
        ).all()
    }

    def names(answer: str | None) -> list[str]:
        return [
            members[mid].full_name or "?"
            for mid, seat in seats.items()
            if seat.answer == answer and mid in members
        ]

    yes, no = names("yes"), names("no")
    silent = sum(1 for seat in seats.values() if seat.answer is None)
    ctx.reply(
        ctx.t(
            "tr.status",
            when=when_text(ctx.lang, starts_of(row), ctx.settings.tz),
            n_yes=len(yes),
            capacity=row.capacity,
            yes=", ".join(yes) or "—",
            n_no=len(no),
            no=", ".join(no) or "—",
            silent=silent,
        )
    )


async def _attendance(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    await start_attendance(ctx, row)


async def ask_cancel(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    yes = card_button(ctx, ctx.t("tr.cancel.yes"), row, CardVerb.cancel_confirmed)
    ctx.reply(View(ctx.t("tr.cancel.confirm"), [[yes]]))


async def cancel_session(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    row.status = TrainingStatus.cancelled
    ctx.session.add(row)
    await scheduler.cancel(ctx.session, ref_id=id_of(row), kinds=JOBS)
    seats = await seats_of(ctx.session, id_of(row))
    stmt = select(Member).where(col(Member.id).in_(list(seats)))
    members = list((await ctx.session.exec(stmt)).all())
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="training_cancel",
        members=members,
        unit_id=unit.id,
        render=lambda lang, _m: View(
            t(lang, "tr.cancelled", when=when_text(lang, starts_of(row), tz), unit=unit.name)
        ),
    )
    log.info("training.cancelled session=%s", row.id)
    ctx.reply(ctx.t("tr.cancel.done", n=len(members)))


CARD_VERBS: dict[CardVerb, Callable[[Ctx, TrainingSession, Unit], Awaitable[None]]] = {
    CardVerb.card: show_card,
    CardVerb.status: show_status,
    CardVerb.attendance: _attendance,
    CardVerb.cancel: ask_cancel,
    CardVerb.cancel_confirmed: cancel_session,
}
