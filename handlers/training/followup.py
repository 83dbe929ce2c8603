"""The follow-up a day after a training: those who came say whether they installed and logged
in, and the answer becomes their handbook status, so the reports move.
"""

from __future__ import annotations

from sqlmodel import select

from bot.callbacks import OpenCommand
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from handlers.training.common import FollowUp, FollowupAnswer
from storage.ids import id_of
from storage.training_models import TrainingSeat, TrainingSession

# (installed, logged in) as each answer sets them on the member
FOLLOWUP_STATUS: dict[FollowupAnswer, tuple[bool, bool]] = {
    FollowupAnswer.ok: (True, True),
    FollowupAnswer.installed: (True, False),
    FollowupAnswer.none: (False, False),
}


def followup_view(ctx: Ctx, lang: str, row: TrainingSession) -> View:
    return View(
        t(lang, "tr.followup.ask", topic=row.topic),
        [
            [ctx.button(t(lang, f"tr.followup.{k}"), FollowUp(id_of(row), k))]
            for k in FOLLOWUP_STATUS
        ],
    )


async def on_followup(ctx: Ctx, press: FollowUp) -> None:
    """One who came (marked present) answers; anyone else is refused."""
    member = ctx.actor.member
    stmt = select(TrainingSeat).where(
        TrainingSeat.session_id == press.session_id,
        TrainingSeat.member_id == (member.id if member else -1),
    )
    seat = (await ctx.session.exec(stmt)).first()
    if member is None or seat is None or not seat.present:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    installed, activated = FOLLOWUP_STATUS[press.answer]
    seat.followup_installed, seat.followup_activated, seat.followup_at = (
        installed,
        activated,
        ctx.now,
    )
    member.app_installed, member.app_activated = installed, activated
    member.status_updated_at = ctx.now
    ctx.session.add_all([seat, member])
    if activated:
        ctx.reply(ctx.t("tr.followup.thanks_ok"))
    else:
        ctx.reply(
            View(
                ctx.t("tr.followup.thanks_help"),
                [[ctx.button(ctx.t("tr.followup.help"), OpenCommand("support"))]],
            )
        )
