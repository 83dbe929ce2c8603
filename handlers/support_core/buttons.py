"""The buttons of support, as typed data (``bot.callbacks``): one codec per action.

Version 1 of each keeps the wire strings of the buttons already in members' and staff's chats
(and in staff groups' forum topics): ``a:tk:<ticket>:<verb>[:<faq entry>]`` on staff cards,
``a:sup:<ticket>:<verb>[:<draft or score>]`` for the ticket's member and
``a:grp:bind:<unit>`` / ``a:grp:no`` for binding a staff group. A button only names a ticket and
a verb; whoever presses is checked again on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from bot.callbacks import Callback


class StaffVerb(StrEnum):
    """What a button on a staff card does (``a:tk:<ticket>:<verb>``)."""

    view = "view"
    phone = "phone"
    claim = "claim"
    reply = "reply"
    faq = "faq"
    db = "db"
    done = "done"
    up = "up"
    down = "down"
    faq_send = "fq"  # answer with the FAQ entry named in ``entry_id``
    faq_search = "fs"  # search the FAQ by typing (private chats)

    @property
    def permission(self) -> str:
        """The verb of ``policy.may`` this press is checked as (FAQ answers are "faq")."""
        faq = self in (StaffVerb.faq_send, StaffVerb.faq_search)
        return StaffVerb.faq.value if faq else self.value


@dataclass(frozen=True)
class TicketPress(Callback):
    """A staff card's button: ``a:tk:<ticket>:<verb>``, ``a:tk:<ticket>:fq:<entry>``."""

    action: ClassVar[str] = "tk"
    ticket_id: int
    verb: StaffVerb
    entry_id: str | None = None


class MemberVerb(StrEnum):
    """What a button for the ticket's own member does (``a:sup:<ticket>:<verb>``)."""

    add = "add"  # the draft (``number``) goes to this ticket
    new = "new"  # the draft starts a new ticket
    not_ticket = "faq"  # the draft was a question for the assistant after all
    solved = "solved"
    close = "close"
    unsolved = "unsolved"
    more = "more"
    rate = "rate"  # score ``number``, 1 to 5
    skip = "skip"


@dataclass(frozen=True)
class MemberPress(Callback):
    """``a:sup:<ticket>:<verb>[:<number>]``: a draft message's id, or a score."""

    action: ClassVar[str] = "sup"
    ticket_id: int
    verb: MemberVerb
    number: int | None = None


class GroupVerb(StrEnum):
    bind = "bind"
    cancel = "no"


@dataclass(frozen=True)
class GroupPress(Callback):
    """Confirming /bindgroup in a group: ``a:grp:bind:<unit>``, or ``a:grp:no``."""

    action: ClassVar[str] = "grp"
    verb: GroupVerb
    unit_id: int | None = None
