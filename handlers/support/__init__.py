"""Support: a member reports a difficulty as a ticket; staff answer; the answer comes back.

Members: «Báo khó khăn» in the menu or /support → category → description (a screenshot is
welcome) → a ticket number; further free text while a ticket is open goes to it (asked once);
staff answers arrive in their chat; they can reply, close and rate; /tickets lists their tickets.
Staff: cards with buttons ``a:tk:<id>:<verb>`` in private chats or in a forum topic of the unit's
staff group (bound with /bindgroup in the group); /queue lists open tickets, oldest first.

This package takes the TICKETS stage of the router's free-text and group pipelines: text about a
ticket is taken here, before the FAQ (TextStage.QUESTIONS) sees anything. The FAQ hands an
unsolved question over by calling ``start_report``. The rules and the moves of a ticket live in
``handlers.support_core``; here, one module per reason to change: ``report`` (the member's report
conversation and free text about a ticket), ``member`` (the member's buttons, rating, /tickets),
``staff`` (the buttons on a ticket's card, the reply dialog) and ``groups`` (staff groups, /queue).
``setup`` below is the one place the feature is wired into the router.
"""

from __future__ import annotations

from bot.router import REGISTERED, Router, TextStage
from handlers.support.groups import (
    cmd_bindgroup,
    cmd_queue,
    cmd_unbindgroup,
    group_people,
    on_group_action,
    on_group_message,
)
from handlers.support.member import cmd_tickets, comment_flow, on_member_action
from handlers.support.report import (
    cmd_support,
    on_free_text,
    over_limit,
    start_report,
    support_flow,
)
from handlers.support.staff import MAX_FAQ_ID, here, on_ticket_action, reply_flow
from handlers.support_core import QUEUE_ROLES, STAFF_ROLES, GroupPress, MemberPress, TicketPress

__all__ = [
    "MAX_FAQ_ID",
    "cmd_bindgroup",
    "cmd_queue",
    "cmd_support",
    "cmd_tickets",
    "cmd_unbindgroup",
    "comment_flow",
    "group_people",
    "here",
    "on_free_text",
    "on_group_action",
    "on_group_message",
    "on_member_action",
    "on_ticket_action",
    "over_limit",
    "reply_flow",
    "setup",
    "start_report",
    "support_flow",
]


def setup(router: Router) -> None:
    router.free_text(TextStage.TICKETS)(on_free_text)
    router.group_text(TextStage.TICKETS)(on_group_message)
    router.command("support", requires=REGISTERED)(cmd_support)
    router.command("tickets", requires=REGISTERED)(cmd_tickets)
    router.command("queue", requires=QUEUE_ROLES)(cmd_queue)
    router.callback(TicketPress, requires=REGISTERED)(on_ticket_action)
    router.callback(MemberPress, requires=REGISTERED)(on_member_action)
    router.group_command("bindgroup", requires=STAFF_ROLES)(cmd_bindgroup)
    router.group_command("unbindgroup", requires=STAFF_ROLES)(cmd_unbindgroup)
    router.callback(GroupPress, requires=STAFF_ROLES)(on_group_action)
    router.group_command("queue", requires=QUEUE_ROLES)(cmd_queue)
