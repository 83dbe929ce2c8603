"""Who may do what on a ticket, the limits, and the working-time deadline (the SLA)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.context import Actor
from bot.settings import Settings
from bot.workhours import WorkCalendar
from storage.models import (
    Role,
    TicketStatus,
    Unit,
)

log = logging.getLogger("sotay.support")

CATEGORIES = (
    "install",
    "account",
    "password",
    "data",
    "meeting",
    "documents",
    "device",
    "network",
    "other",
)
STAFF_ROLES = (Role.staff, Role.admin)
HELPER_ROLES = (Role.secretary, Role.deputy)
QUEUE_ROLES = STAFF_ROLES + HELPER_ROLES
VERBS = ("view", "phone", "claim", "reply", "faq", "db", "done", "up", "down")
HELPER_VERBS = frozenset({"view", "reply", "faq"})
ACTIVE = (TicketStatus.open, TicketStatus.claimed)
ALLOWED_MIME = frozenset({"image/png", "image/jpeg", "application/pdf"})
ALLOWED_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")
AUTOCLOSE_AFTER = timedelta(days=3)
DELIVERY_CHECK_AFTER = timedelta(seconds=15)  # then 30 s, 1, 2 and 4 minutes
DELIVERY_CHECKS = 5
TOPIC_TRIES = 6
TOPIC_TIMEOUT = 10.0  # seconds a forum-topic call may take (after the job's transaction)
CARD_HISTORY = 6
SNIPPET = 300
MAX_TEXT = 3500

Note = tuple[str, dict[str, Any]] | None  # an i18n key and its values, shown on top of a card


def may(actor: Actor, verb: str, cell: Unit) -> bool:
    """Whether ``actor`` may do ``verb`` on a ticket of ``cell`` (checked on every press)."""
    if actor.member is None or not actor.registered:
        return False
    if actor.can_act_on(cell, *STAFF_ROLES):
        return True
    return verb in HELPER_VERBS and actor.can_act_on(cell, *HELPER_ROLES)


# --- working time ---------------------------------------------------------------------------------


def calendar(settings: Settings) -> WorkCalendar:
    return settings.work_calendar


def sla_deadline(settings: Settings, start: datetime) -> datetime:
    return settings.work_calendar.add(start, settings.ticket_sla)
