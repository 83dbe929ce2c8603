"""/training: a trainer's menu (a new session, the sessions they run, the results); a member's
list of the trainings open to their cell, with the answer buttons.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from bot.context import Ctx
from bot.core import View
from handlers.training.common import (
    SECRETARIES,
    CardVerb,
    NewTraining,
    TrainingReport,
    answer_buttons,
    card_button,
    cell_of,
    invite_text,
    starts_of,
    taken,
    trainer_scopes,
    when_text,
)
from handlers.training.report import show_report
from storage import queries
from storage.ids import id_of
from storage.models import Unit
from storage.training_models import TrainingSession, TrainingStatus

REPORT_WORDS = ("report", "bao cao", "báo cáo")


async def cmd_training(ctx: Ctx, args: str) -> None:
    """Trainers: the sessions they run, a new one, the results. Members: trainings open to them."""
    scopes = trainer_scopes(ctx)
    if args.strip().lower() in REPORT_WORDS and scopes:
        await show_report(ctx, scopes[0])
        return
    if scopes:
        rows = [[ctx.button(ctx.t("tr.new"), NewTraining())]]
        for found, unit in (await upcoming_for(ctx, scopes))[:8]:
            label = f"📋 {when_text(ctx.lang, starts_of(found), ctx.settings.tz)} · {unit.name}"
            rows.append([card_button(ctx, label[:60], found, CardVerb.card)])
        rows.append([ctx.button(ctx.t("tr.report_button"), TrainingReport(id_of(scopes[0])))])
        ctx.reply(View(ctx.t("tr.menu"), rows))
        return
    await show_open_trainings(ctx)


async def upcoming_for(ctx: Ctx, units: list[Unit]) -> list[tuple[TrainingSession, Unit]]:
    """Scheduled sessions not yet over whose unit lies in (or above, for members) ``units``."""
    stmt = (
        select(TrainingSession, Unit)
        .join(Unit, col(Unit.id) == TrainingSession.unit_id)
        .where(
            TrainingSession.status == TrainingStatus.scheduled,
            col(TrainingSession.starts_at) > ctx.now - timedelta(days=2),
        )
        .order_by(col(TrainingSession.starts_at))
    )
    return [
        (s, u)
        for s, u in (await ctx.session.exec(stmt)).all()
        if any(queries.within(u.path, scope.path) for scope in units)
    ]


async def show_open_trainings(ctx: Ctx) -> None:
    """A member sees the trainings that cover their cell and are still ahead."""
    cell = await cell_of(ctx, ctx.actor.member)
    if cell is None:
        ctx.reply(ctx.t("tr.none"))
        return
    found = [(s, u) for s, u in await upcoming_for_cell(ctx, cell) if starts_of(s) > ctx.now]
    if not found:
        ctx.reply(ctx.t("tr.none"))
        return
    secretary = ctx.actor.can_act_on(cell, *SECRETARIES)
    for session_row, unit in found[:5]:
        free = session_row.capacity - await taken(ctx.session, id_of(session_row))
        ctx.reply(
            View(
                invite_text(ctx.lang, session_row, unit, ctx.settings.tz, free),
                answer_buttons(ctx, ctx.lang, id_of(session_row), secretary=secretary),
            )
        )


async def upcoming_for_cell(ctx: Ctx, cell: Unit) -> list[tuple[TrainingSession, Unit]]:
    stmt = (
        select(TrainingSession, Unit)
        .join(Unit, col(Unit.id) == TrainingSession.unit_id)
        .where(TrainingSession.status == TrainingStatus.scheduled)
        .order_by(col(TrainingSession.starts_at))
    )
    return [
        (s, u) for s, u in (await ctx.session.exec(stmt)).all() if queries.within(cell.path, u.path)
    ]
