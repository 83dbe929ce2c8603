"""What the dashboard pages read, always inside the viewer's scope.

The rollout figures are the chat report's (``bot.reports``: the same set-based query, the same
worst-first order), so a page and /report never disagree. Every function here takes the unit
or the viewer's scopes as an argument; the routes check the unit against the viewer first.
Phone numbers are never read for a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Actor
from storage.ids import id_of
from storage.models import (
    Attendance,
    Meeting,
    MeetingReply,
    MeetingStatus,
    Member,
    MemberStatus,
    ReplyAnswer,
    RolloutSnapshot,
    Ticket,
    TicketStatus,
    Unit,
)
from storage.queries import in_subtree, within

from .auth import STAFF

SHOWN = 200  # rows of one list on a page; the downloads carry everything
TREND_DAYS = 120
ACTIVE = (TicketStatus.open, TicketStatus.claimed)


def home(actor: Actor) -> Unit | None:
    """The highest unit the viewer serves as staff or admin (the first page)."""
    scopes = sorted(actor.scopes(*STAFF), key=lambda unit: (unit.depth, unit.path))
    return scopes[0] if scopes else None


def may_see(actor: Actor, unit: Unit) -> bool:
    return actor.can_act_on(unit, *STAFF)


def may_name_members(actor: Actor, cell: Unit) -> bool:
    """Names of who lags behind go only to staff of a unit above the cell."""
    return any(
        scope.path != cell.path and within(cell.path, scope.path) for scope in actor.scopes(*STAFF)
    )


async def trail(session: AsyncSession, actor: Actor, unit: Unit) -> list[Unit]:
    """The units from the highest the viewer may see down to ``unit`` (the breadcrumb)."""
    chain = [unit]
    current = unit
    while current.parent_id is not None:
        parent = await session.get(Unit, current.parent_id)
        if parent is None or not may_see(actor, parent):
            break
        chain.append(parent)
        current = parent
    return list(reversed(chain))


async def snapshots(session: AsyncSession, unit_id: int, today: date) -> list[RolloutSnapshot]:
    """The unit's daily/weekly snapshots of the last months, oldest first (the trend)."""
    stmt = (
        select(RolloutSnapshot)
        .where(
            RolloutSnapshot.unit_id == unit_id,
            col(RolloutSnapshot.taken_on) >= today - timedelta(days=TREND_DAYS),
        )
        .order_by(col(RolloutSnapshot.taken_on))
    )
    return list((await session.exec(stmt)).all())


@dataclass(frozen=True)
class MeetingRow:
    meeting: Meeting
    cell: Unit
    members: int
    attend: int
    absent: int
    present: int | None  # None: attendance not taken


async def meetings(
    session: AsyncSession, unit: Unit, *, start: datetime, end: datetime
) -> list[MeetingRow]:
    """Non-cancelled meetings under the unit starting in [start, end], with reply and
    attendance counts (three grouped queries, whatever the number of meetings)."""
    stmt = (
        select(Meeting, Unit)
        .join(Unit, col(Unit.id) == Meeting.cell_id)
        .where(
            in_subtree(Unit.path, unit.path),
            Meeting.status == MeetingStatus.scheduled,
            col(Meeting.starts_at) >= start,
            col(Meeting.starts_at) <= end,
        )
        .order_by(col(Meeting.starts_at))
        .limit(SHOWN)
    )
    rows = list((await session.exec(stmt)).all())
    if not rows:
        return []
    ids = [meeting.id for meeting, _ in rows]
    cells = list({cell.id for _, cell in rows})
    members = dict(
        (
            await session.exec(
                select(Member.cell_id, func.count())
                .where(col(Member.cell_id).in_(cells), Member.status == MemberStatus.active)
                .group_by(col(Member.cell_id))
            )
        ).all()
    )
    replies: dict[tuple[int, str], int] = {}
    for meeting_id, answer, n in (
        await session.exec(
            select(MeetingReply.meeting_id, MeetingReply.answer, func.count())
            .where(col(MeetingReply.meeting_id).in_(ids))
            .group_by(col(MeetingReply.meeting_id), col(MeetingReply.answer))
        )
    ).all():
        replies[(meeting_id, str(answer))] = int(n)
    present = dict(
        (
            await session.exec(
                select(Attendance.meeting_id, func.count())
                .where(col(Attendance.meeting_id).in_(ids), col(Attendance.present))
                .group_by(col(Attendance.meeting_id))
            )
        ).all()
    )
    return [
        MeetingRow(
            meeting,
            cell,
            int(members.get(id_of(cell), 0)),
            replies.get((id_of(meeting), ReplyAnswer.attend.value), 0),
            replies.get((id_of(meeting), ReplyAnswer.absent.value), 0),
            int(present.get(id_of(meeting), 0)) if meeting.attendance_taken_at else None,
        )
        for meeting, cell in rows
    ]


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    cell: Unit
    claimer: str | None


async def queue(session: AsyncSession, actor: Actor) -> list[QueueRow]:
    """Active tickets of cells inside the units the viewer serves, oldest first (as /queue)."""
    scopes = actor.scopes(*STAFF)
    if not scopes:
        return []
    stmt = (
        select(Ticket, Unit, Member.full_name)
        .join(Unit, col(Unit.id) == Ticket.cell_id)
        .outerjoin(Member, col(Member.id) == Ticket.claimed_by)
        .where(
            col(Ticket.status).in_(list(ACTIVE)),
            or_(*[in_subtree(Unit.path, scope.path) for scope in scopes]),
        )
        .order_by(col(Ticket.created_at), col(Ticket.id))
        .limit(SHOWN)
    )
    return [QueueRow(ticket, cell, name) for ticket, cell, name in (await session.exec(stmt)).all()]
