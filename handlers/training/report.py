"""The results of trainings under a unit: sessions held, people trained, and their handbook
status before the training and now, per direct child unit and in total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Ctx
from bot.i18n import t
from handlers.training.common import TRAINERS, TrainingReport
from storage import queries
from storage.models import Member, Unit
from storage.queries import PATH_SEP, in_subtree
from storage.training_models import TrainingSeat, TrainingSession


@dataclass
class Results:
    """Trainings held and people trained under one unit, with their handbook status before the
    training and now (the follow-up answers update the member's status)."""

    name: str
    sessions: set[int]
    trained: int = 0
    installed_before: int = 0
    installed_now: int = 0
    activated_before: int = 0
    activated_now: int = 0
    answered: int = 0


def child_path(scope_path: str, path: str) -> str:
    """The path of the direct child of ``scope_path`` that ``path`` lies in (or the scope)."""
    if path == scope_path or not path.startswith(scope_path + PATH_SEP):
        return scope_path
    rest = path[len(scope_path) + len(PATH_SEP) :]
    return scope_path + PATH_SEP + rest.split(PATH_SEP)[0]


async def results(session: AsyncSession, unit: Unit) -> tuple[Results, list[Results]]:
    """The unit's total and one entry per direct child unit, people counted by their cell."""
    stmt = (
        select(TrainingSeat, Member, Unit)
        .join(Member, col(Member.id) == TrainingSeat.member_id)
        .join(Unit, col(Unit.id) == Member.cell_id)
        .join(TrainingSession, col(TrainingSession.id) == TrainingSeat.session_id)
        .where(
            col(TrainingSeat.present).is_(True),
            col(TrainingSession.attendance_taken_at).is_not(None),
            in_subtree(Unit.path, unit.path),
        )
    )
    names = {u.path: u.name for u in await queries.child_units(session, parent_id=unit.id)}
    total = Results(unit.name, set())
    parts: dict[str, Results] = defaultdict(lambda: Results("", set()))
    for seat, member, cell in (await session.exec(stmt)).all():
        key = child_path(unit.path, cell.path)
        part = parts[key]
        part.name = names.get(key, unit.name)
        for entry in (total, part):
            entry.sessions.add(seat.session_id)
            entry.trained += 1
            entry.installed_before += bool(seat.installed_before)
            entry.installed_now += bool(member.app_installed)
            entry.activated_before += bool(seat.activated_before)
            entry.activated_now += bool(member.app_activated)
            entry.answered += seat.followup_at is not None
    return total, sorted(parts.values(), key=lambda r: r.name)


def results_line(lang: str, entry: Results) -> str:
    return t(
        lang,
        "tr.report.line",
        name=entry.name,
        sessions=len(entry.sessions),
        n=entry.trained,
        ib=entry.installed_before,
        ia=entry.installed_now,
        ab=entry.activated_before,
        aa=entry.activated_now,
        answered=entry.answered,
    )


async def show_report(ctx: Ctx, unit: Unit) -> None:
    total, parts = await results(ctx.session, unit)
    if total.trained == 0:
        ctx.reply(ctx.t("tr.report.empty", unit=unit.name))
        return
    lines = [ctx.t("tr.report.title", unit=unit.name)]
    lines += ["• " + results_line(ctx.lang, part) for part in parts]
    lines.append(ctx.t("tr.report.total") + " " + results_line(ctx.lang, total))
    ctx.reply("\n".join(lines))


async def on_report(ctx: Ctx, press: TrainingReport) -> None:
    """The report button: staff, admins or trainers of that unit (or above)."""
    unit = await ctx.session.get(Unit, press.unit_id)
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await show_report(ctx, unit)
