"""Cell meetings: the secretary announces, members answer, reminders go out on time, and
attendance is recorded afterwards.

Every button names a meeting by id only; who may act on it (its cell's secretary, a member of
its cell) is checked on each press. Reminders and nudges are due-work rows, so a restart loses
none and a cancelled meeting sends none. One module per reason to change: planning (the
/meeting dialog), publish (notice, reminders, changes, cancellation), card (the secretary's
buttons), replies (members), attendance, jobs (timed work and quiet hours), nudge (monthly);
common holds what they share.
"""

from __future__ import annotations

from bot.router import REGISTERED, Router
from handlers.meetings import attendance as attendance  # registers its dialog
from handlers.meetings.card import on_card_action
from handlers.meetings.common import SECRETARIES, MeetingAnswer, MeetingCard, NewMeeting
from handlers.meetings.jobs import defer_for_quiet_hours, in_quiet_hours
from handlers.meetings.nudge import nudge_trigger
from handlers.meetings.planning import cmd_meeting, on_new
from handlers.meetings.replies import cmd_meetings, on_member_reply

__all__ = ["defer_for_quiet_hours", "in_quiet_hours", "nudge_trigger", "setup"]


def setup(router: Router) -> None:
    router.command("meeting", requires=SECRETARIES)(cmd_meeting)
    router.command("meetings", requires=REGISTERED)(cmd_meetings)
    router.callback(MeetingAnswer, requires=REGISTERED)(on_member_reply)
    router.callback(MeetingCard, requires=SECRETARIES)(on_card_action)
    router.callback(NewMeeting, requires=SECRETARIES)(on_new)
