"""Training sessions: from installing the handbook to using it (issue 15).

Staff, admins and the vendor's trainers (role ``trainer`` on a unit) schedule a training for a
unit; the assistant invites the members of that unit's cells who have not installed or activated
the handbook, and every cell secretary. Members answer yes / no with the same buttons (numbered
lines on channels without buttons) as meeting notices; secretaries sign members up on their
behalf. Reminders and the trainer's follow-up are due jobs. After the session the trainer
records who came; a day later those who came are asked whether they installed and logged in,
and those answers update the member's handbook status, so the training report shows the change
among the people trained.

Every button names a session by id only: who may act on it is checked on each press (staff or
admin of the session's unit; a member of a cell inside it; a secretary of such a cell). Logs
carry ids and counts, never names. One module per reason to change: menu (/training), planning
(the scheduling dialog and the invitations), card (the trainer's buttons), signup (members'
answers and secretaries signing up others), attendance, followup (the question a day after),
jobs (timed work), report (results), records (/forget and /me); common holds what they share.
"""

from __future__ import annotations

from bot.router import REGISTERED, Router
from handlers.training import records as records  # registers its privacy hooks
from handlers.training.card import on_card
from handlers.training.common import (
    SECRETARIES,
    TRAINERS,
    FollowUp,
    NewTraining,
    SignUpOthers,
    TrainingAnswer,
    TrainingCard,
    TrainingReport,
    needs_training,
)
from handlers.training.followup import on_followup
from handlers.training.menu import cmd_training
from handlers.training.planning import on_new
from handlers.training.report import child_path, on_report
from handlers.training.signup import on_member_answer, on_signup_others

__all__ = ["child_path", "needs_training", "setup"]


def setup(router: Router) -> None:
    router.command("training", requires=REGISTERED)(cmd_training)
    router.callback(NewTraining, requires=TRAINERS)(on_new)
    router.callback(TrainingCard, requires=TRAINERS)(on_card)
    router.callback(TrainingReport, requires=TRAINERS)(on_report)
    router.callback(TrainingAnswer, requires=REGISTERED)(on_member_answer)
    router.callback(SignUpOthers, requires=SECRETARIES)(on_signup_others)
    router.callback(FollowUp, requires=REGISTERED)(on_followup)
