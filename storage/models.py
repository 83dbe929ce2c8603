"""SQLModel tables: the whole durable state of the assistant.

Anything that must survive a restart (dialogs, outbox, applications, invites) is a row here;
nothing that matters lives only in memory. Times are naive UTC in the database and aware UTC in
code (see ``UTCDateTime``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from storage.types import UTCDateTime


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def enum_type(enum: type[StrEnum]) -> sa.Enum:
    """Enums as plain strings: adding a value later needs no ALTER TYPE on PostgreSQL."""
    return sa.Enum(
        enum, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class Role(StrEnum):
    member = "member"
    secretary = "secretary"
    deputy = "deputy"
    staff = "staff"
    admin = "admin"
    trainer = "trainer"  # the vendor's trainer: schedules and runs trainings (handlers/training)


class MemberStatus(StrEnum):
    active = "active"
    forgotten = "forgotten"


class ApplicationKind(StrEnum):
    # A member named "join" shadows str.join, which mypy reports; the name is kept (it is in
    # handlers and tests) and str.join is never called on a member.
    join = "join"  # type: ignore[assignment]  # not in the roster: asks to become a cell member
    verify = "verify"  # matched the roster by a typed (unproven) phone number


class ApplicationStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    blocked = "blocked"
    superseded = "superseded"  # replaced before it left (a meeting changed while its notice queued)


class Unit(SQLModel, table=True):
    """A node of the organisation tree: province, district, commune, cell (any depth)."""

    __table_args__ = (sa.UniqueConstraint("parent_id", "name", name="uq_unit_parent_name"),)

    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    name: str = Field(max_length=200)
    path: str = Field(max_length=1000, unique=True)
    depth: int = 0
    folded_name: str = Field(default="", max_length=200, index=True)


class Member(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    member_code: str | None = Field(default=None, max_length=64, unique=True)
    full_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=20, index=True)
    cell_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    status: MemberStatus = Field(default=MemberStatus.active, sa_type=enum_type(MemberStatus))
    source: str = Field(default="roster", max_length=32)
    language: str | None = Field(default=None, max_length=8)
    has_smartphone: bool | None = None
    app_installed: bool | None = None
    app_activated: bool | None = None
    # Who said last whether the member has a smartphone (roster | member | secretary): a roster
    # re-import must not undo what the member or the secretary answered since.
    smartphone_source: str | None = Field(default=None, max_length=16)
    # The handbook system's own figures (``sotay status import``); they take precedence over the
    # member's chat answers above, which are kept. ``*_on``: since when, when the export says.
    hb_installed: bool | None = None
    hb_activated: bool | None = None
    hb_installed_on: date | None = None
    hb_activated_on: date | None = None
    hb_updated_at: datetime | None = utc_column()
    registered_at: datetime | None = utc_column()
    status_updated_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column()


class ChannelAccount(SQLModel, table=True):
    """A messenger identity linked to a member once registration finished."""

    __table_args__ = (sa.UniqueConstraint("channel", "user_ref", name="uq_account_user"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_ref: str = Field(max_length=64)
    chat_ref: str = Field(max_length=64)
    member_id: int = Field(foreign_key="member.id", index=True)
    language: str | None = Field(default=None, max_length=8)
    verified: bool = False  # phone proven by the channel (Telegram contact) or approved
    pending: bool = False  # waiting for a secretary's approval: no cell features yet
    reachable: bool = True
    created_at: datetime | None = utc_column()
    # The chat's own command menu as last published (Telegram's per-chat scope), as a digest of
    # its language and commands; None while the chat shows the default list. It is read with the
    # sender, so a member's chat costs no Bot API call for its menu, even after a restart.
    menu: str | None = Field(default=None, max_length=32)


class RoleGrant(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("member_id", "role", "unit_id", name="uq_role_grant"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    role: Role = Field(sa_type=enum_type(Role))
    unit_id: int = Field(foreign_key="unit.id", index=True)
    granted_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime | None = utc_column()


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    role: Role = Field(sa_type=enum_type(Role))
    unit_id: int = Field(foreign_key="unit.id")
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime | None = utc_column()
    expires_at: datetime | None = utc_column(nullable=False)
    used_at: datetime | None = utc_column()
    used_by: int | None = Field(default=None, foreign_key="member.id")


class Application(SQLModel, table=True):
    """A registration waiting for the cell secretary: a join request or an unproven phone."""

    id: int | None = Field(default=None, primary_key=True)
    kind: ApplicationKind = Field(sa_type=enum_type(ApplicationKind))
    status: ApplicationStatus = Field(
        default=ApplicationStatus.pending, sa_type=enum_type(ApplicationStatus)
    )
    channel: str = Field(max_length=16)
    user_ref: str = Field(max_length=64)
    chat_ref: str = Field(max_length=64)
    language: str = Field(default="vi", max_length=8)
    full_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=20)
    cell_id: int = Field(foreign_key="unit.id", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column()
    decided_at: datetime | None = utc_column()
    decided_by: int | None = Field(default=None, foreign_key="member.id")


class ConsentRecord(SQLModel, table=True):
    """Consent given or withdrawn, with its time; withdrawn rows keep no identity."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    action: str = Field(max_length=32)  # given | given_by_secretary | withdrawn
    text_version: str = Field(max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    at: datetime | None = utc_column(nullable=False)


class Dialog(SQLModel, table=True):
    """The open guided conversation of one messenger user, so a restart resumes it."""

    __table_args__ = (sa.UniqueConstraint("channel", "user_ref", name="uq_dialog_user"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_ref: str = Field(max_length=64)
    chat_ref: str = Field(max_length=64)
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    seq: int = 0
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prompt: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime | None = utc_column(nullable=False, index=True)


class ProcessedEvent(SQLModel, table=True):
    """Inbound events already handled, so a redelivered update is processed once."""

    channel: str = Field(max_length=16, primary_key=True)
    key: str = Field(max_length=128, primary_key=True)
    at: datetime | None = utc_column(nullable=False, index=True)


class PendingChoices(SQLModel, table=True):
    """The numbered choices last shown in a chat of a channel without buttons (Zalo).

    One row per chat, replaced by the next message that offers choices, so a member's "2" means
    the same after a restart. Only the label and the signed data are kept: the data carries its
    own staleness checks, so an outdated number is refused by the router, never acted on.
    """

    __tablename__ = "pending_choice"

    channel: str = Field(max_length=16, primary_key=True)
    chat_ref: str = Field(max_length=64, primary_key=True)
    choices: list[list[str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )  # [[label, signed data], ...] in the order they were numbered
    updated_at: datetime | None = utc_column(nullable=False)


class OutboxMessage(SQLModel, table=True):
    """One message to one chat. Written in the handler's transaction, sent after commit."""

    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    chat_ref: str = Field(max_length=64, index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=128, unique=True)
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id", index=True)
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=enum_type(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime | None = utc_column(nullable=False)
    lease_until: datetime | None = utc_column()
    lease_owner: str | None = Field(default=None, max_length=32)
    created_at: datetime | None = utc_column(nullable=False)
    # set, committed, just before the request starts; a crash leaves it on the one row whose
    # answer was lost (see bot/outbox_journal.py)
    sending_at: datetime | None = utc_column()
    sent_at: datetime | None = utc_column()
    external_id: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=200)


class MeetingKind(StrEnum):
    regular = "regular"
    thematic = "thematic"
    combined = "combined"  # regular + thematic in one sitting (120 minutes)
    extraordinary = "extraordinary"


class MeetingStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class ReplyAnswer(StrEnum):
    attend = "attend"
    absent = "absent"


class JobStatus(StrEnum):
    pending = "pending"
    done = "done"
    skipped = "skipped"
    cancelled = "cancelled"


class Meeting(SQLModel, table=True):
    """A cell meeting. ``version`` grows with every change so late replies can be told apart."""

    id: int | None = Field(default=None, primary_key=True)
    cell_id: int = Field(foreign_key="unit.id", index=True)
    kind: MeetingKind = Field(sa_type=enum_type(MeetingKind))
    status: MeetingStatus = Field(default=MeetingStatus.scheduled, sa_type=enum_type(MeetingStatus))
    starts_at: datetime | None = utc_column(nullable=False, index=True)
    duration_min: int = 90
    place: str = Field(max_length=200)
    agenda: str = Field(max_length=2000)
    version: int = 1
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)
    documents_posted: bool = False  # secretary confirmed the documents are in the handbook app
    entered_in_app: bool | None = None  # meeting also entered in the handbook app
    attendance_taken_at: datetime | None = utc_column()


class MeetingReply(SQLModel, table=True):
    """A member's answer to a meeting notice (changeable until the meeting starts)."""

    __table_args__ = (sa.UniqueConstraint("meeting_id", "member_id", name="uq_reply"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    answer: ReplyAnswer = Field(sa_type=enum_type(ReplyAnswer))
    reason: str | None = Field(default=None, max_length=500)
    at: datetime | None = utc_column(nullable=False)


class Attendance(SQLModel, table=True):
    """Who was really there, recorded by the secretary after the meeting."""

    __table_args__ = (sa.UniqueConstraint("meeting_id", "member_id", name="uq_attendance"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    present: bool = True
    excused: bool = False  # absent with a reason
    reason: str | None = Field(default=None, max_length=500)


class Broadcast(SQLModel, table=True):
    """One message to many: a meeting notice, change, reminder batch or free-form notice."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    created_by: int | None = Field(default=None, foreign_key="member.id")
    audience: str = Field(default="members", max_length=16)
    total: int = 0
    unreachable: int = 0  # members without any chat account: to be told in person
    report_channel: str | None = Field(default=None, max_length=16)
    report_chat: str | None = Field(default=None, max_length=64)
    report_outbox_id: int | None = None  # the progress message that is edited as sending goes on
    report_done: bool = False
    # Delivery counts by outbox status, kept when the sent rows are purged (outbox retention).
    delivery_counts: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime | None = utc_column(nullable=False)


class DueJob(SQLModel, table=True):
    """Timed work (reminders, nudges, escalations). The schedule is rebuilt from these rows."""

    __table_args__ = (sa.Index("ix_duejob_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    ref_id: int | None = Field(default=None, index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    due_at: datetime | None = utc_column(nullable=False)
    status: JobStatus = Field(default=JobStatus.pending, sa_type=enum_type(JobStatus))
    dedupe_key: str | None = Field(default=None, max_length=128, unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column(nullable=False)
    done_at: datetime | None = utc_column()
    note: str | None = Field(default=None, max_length=200)


# --- support tickets (handlers/support*.py) -------------------------------------------------------


class TicketStatus(StrEnum):
    open = "open"  # waiting for someone to claim it (the SLA clock runs)
    claimed = "claimed"  # a staff member took it
    resolved = "resolved"  # staff say it is solved; the member may confirm, reply or rate
    closed = "closed"  # finished: nothing more is relayed


class StaffGroup(SQLModel, table=True):
    """A messenger group where a unit's staff receive tickets (one forum topic per ticket)."""

    __table_args__ = (sa.UniqueConstraint("channel", "chat_ref", name="uq_staffgroup_chat"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", unique=True)
    channel: str = Field(max_length=16)
    chat_ref: str = Field(max_length=64)
    forum: bool = True  # False once the channel refused to create a topic: post in the group
    bound_by: int | None = Field(default=None, foreign_key="member.id")
    bound_at: datetime | None = utc_column(nullable=False)


class Ticket(SQLModel, table=True):
    """A member's difficulty, relayed to the staff of ``unit_id`` (the unit now responsible)."""

    __table_args__ = (sa.Index("ix_ticket_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # None once the member used /forget: the ticket stays as an anonymous count.
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    cell_id: int = Field(foreign_key="unit.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    category: str = Field(max_length=16)
    status: TicketStatus = Field(default=TicketStatus.open, sa_type=enum_type(TicketStatus))
    claimed_by: int | None = Field(default=None, foreign_key="member.id", index=True)
    claimed_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)
    first_response_at: datetime | None = utc_column()
    resolved_at: datetime | None = utc_column()
    closed_at: datetime | None = utc_column()
    sla_due_at: datetime | None = utc_column()
    escalations: int = 0
    breached: bool = False  # an SLA deadline passed with nobody claiming it
    db_correction: bool = False  # the member database needs correcting (exported by the report)
    member_adds: bool = False  # the member chose to add further free text to this ticket
    rating: int | None = None
    rating_comment: str | None = Field(default=None, max_length=500)


class TicketMessage(SQLModel, table=True):
    """One entry of a ticket's history: what the member, a helper or the system said."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    author_id: int | None = Field(default=None, foreign_key="member.id")
    role: str = Field(max_length=16)  # member | staff | system
    text: str = Field(default="", max_length=4096)
    attachment_ref: str | None = Field(default=None, max_length=256)
    attachment_kind: str | None = Field(default=None, max_length=16)
    attachment_name: str | None = Field(default=None, max_length=200)
    at: datetime | None = utc_column(nullable=False)


class TicketPost(SQLModel, table=True):
    """An outbox message about a ticket, so a reply to it (or an edit of it) finds the ticket."""

    __table_args__ = (sa.Index("ix_ticketpost_chat", "channel", "chat_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    outbox_id: int  # no foreign key: outbox rows may be purged
    channel: str = Field(max_length=16)
    chat_ref: str = Field(max_length=64)
    audience: str = Field(max_length=16)  # staff | member
    kind: str = Field(max_length=16)  # card | message
    lang: str = Field(default="vi", max_length=8)  # to re-render a card when it is edited


class TicketTopic(SQLModel, table=True):
    """The forum topic of a ticket in a unit's staff group (``thread_ref`` once created)."""

    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "channel", "chat_ref", name="uq_tickettopic_chat"),
        sa.Index("ix_tickettopic_thread", "channel", "chat_ref", "thread_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id")  # indexed by uq_tickettopic_chat
    unit_id: int = Field(foreign_key="unit.id")
    channel: str = Field(max_length=16)
    chat_ref: str = Field(max_length=64)
    thread_ref: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = utc_column(nullable=False)


class IdentityAttempt(SQLModel, table=True):
    """Failed tries to claim a roster identity by typing a phone number, per messenger user.

    Only counts and times: the numbers tried are never stored. After ``FREE_TRIES`` failures
    each further failure locks the account out for a wait that doubles (see handlers/identity).
    """

    __tablename__ = "identity_attempt"

    channel: str = Field(max_length=16, primary_key=True)
    user_ref: str = Field(max_length=64, primary_key=True)
    failures: int = 0
    locked_until: datetime | None = utc_column()
    updated_at: datetime | None = utc_column(nullable=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = [name for name in dir() if not name.startswith("_")]


class RolloutSnapshot(SQLModel, table=True):
    """A unit's rollout counts on one day (taken by the weekly digest): the trend since last
    week. Counts only, never about a person."""

    __table_args__ = (sa.UniqueConstraint("unit_id", "taken_on", name="uq_rollout_snapshot"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    taken_on: date
    members: int = 0
    smartphone: int = 0
    installed: int = 0
    activated: int = 0
    cells: int = 0
    cells_using: int = 0
