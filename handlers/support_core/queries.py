"""The reads a ticket needs (its lock, the member's open tickets, staff groups and topics, the
units above and below, its history) and the one way a message is added to it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Ctx
from bot.core import Attachment
from bot.settings import Settings
from handlers.support_core.policy import (
    ACTIVE,
    ALLOWED_MIME,
    ALLOWED_SUFFIXES,
    MAX_TEXT,
    STAFF_ROLES,
    log,
)
from storage import queries
from storage.models import (
    Member,
    OutboxMessage,
    StaffGroup,
    Ticket,
    TicketMessage,
    TicketPost,
    TicketTopic,
    Unit,
)

# --- queries --------------------------------------------------------------------------------------


async def lock_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket, locked for this transaction on PostgreSQL (SQLite serialises writers)."""
    stmt = select(Ticket).where(col(Ticket.id) == ticket_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def reload(session: AsyncSession, ticket: Ticket) -> Ticket:
    await session.refresh(ticket)
    return ticket


async def active_tickets(session: AsyncSession, member_id: int) -> list[Ticket]:
    stmt = (
        select(Ticket)
        .where(Ticket.member_id == member_id, col(Ticket.status).in_(ACTIVE))
        .order_by(col(Ticket.id).desc())
    )
    return list((await session.exec(stmt)).all())


async def tickets_today(ctx: Ctx, member_id: int) -> int:
    local = ctx.now.astimezone(ctx.settings.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    stmt = select(func.count()).where(
        Ticket.member_id == member_id, col(Ticket.created_at) >= midnight
    )
    return int((await ctx.session.exec(stmt)).one())


async def group_for_unit(session: AsyncSession, unit_id: int) -> StaffGroup | None:
    stmt = select(StaffGroup).where(StaffGroup.unit_id == unit_id)
    return (await session.exec(stmt)).first()


async def group_for_chat(session: AsyncSession, channel: str, chat_ref: str) -> StaffGroup | None:
    stmt = select(StaffGroup).where(StaffGroup.channel == channel, StaffGroup.chat_ref == chat_ref)
    return (await session.exec(stmt)).first()


async def staff_of(session: AsyncSession, unit_id: int) -> list[Member]:
    return list(await queries.holders(session, unit_id=unit_id, roles=STAFF_ROLES))


async def unit_above(session: AsyncSession, unit: Unit) -> Unit | None:
    """The nearest unit above ``unit`` that has support staff."""
    for ancestor in await queries.ancestors(session, unit=unit):
        if await staff_of(session, ancestor.id or 0):
            return ancestor
    return None


async def unit_below(session: AsyncSession, ticket: Ticket) -> Unit | None:
    """One level down: the nearest staffed unit below the current one on the way to the cell."""
    cell = await session.get(Unit, ticket.cell_id)
    if cell is None:
        return None
    chain = await queries.ancestors(session, unit=cell)  # nearest to the cell first
    ids = [unit.id for unit in chain]
    if ticket.unit_id not in ids:
        return None
    between = chain[: ids.index(ticket.unit_id)]  # strictly between the cell and the unit
    for unit in reversed(between):  # nearest to the current unit first
        if await staff_of(session, unit.id or 0):
            return unit
    return None


async def first_unit(session: AsyncSession, cell: Unit) -> Unit:
    """Where a new ticket of ``cell`` goes: the nearest staffed unit above, else the root."""
    found = await unit_above(session, cell)
    if found is not None:
        return found
    chain = await queries.ancestors(session, unit=cell)
    log.warning("ticket.no_staff cell=%s", cell.id)
    return chain[-1] if chain else cell


async def ticket_of_post(
    session: AsyncSession, channel: str, chat_ref: str, external_id: str
) -> tuple[Ticket, str] | None:
    """The ticket a message in this chat is about, from the id of the message replied to."""
    stmt = (
        select(TicketPost.ticket_id, TicketPost.audience)
        .join(OutboxMessage, col(OutboxMessage.id) == TicketPost.outbox_id)
        .where(TicketPost.channel == channel, TicketPost.chat_ref == chat_ref)
        .where(OutboxMessage.external_id == external_id)
        .order_by(col(TicketPost.id).desc())
    )
    row = (await session.exec(stmt)).first()
    if row is None:
        return None
    ticket = await session.get(Ticket, row[0])
    return (ticket, row[1]) if ticket is not None else None


async def ticket_of_topic(
    session: AsyncSession, channel: str, chat_ref: str, thread_ref: str
) -> Ticket | None:
    stmt = select(TicketTopic.ticket_id).where(
        TicketTopic.channel == channel,
        TicketTopic.chat_ref == chat_ref,
        TicketTopic.thread_ref == thread_ref,
    )
    ticket_id = (await session.exec(stmt)).first()
    return await session.get(Ticket, ticket_id) if ticket_id is not None else None


async def topic_of(session: AsyncSession, ticket_id: int, group: StaffGroup) -> TicketTopic | None:
    stmt = select(TicketTopic).where(
        TicketTopic.ticket_id == ticket_id,
        TicketTopic.channel == group.channel,
        TicketTopic.chat_ref == group.chat_ref,
    )
    return (await session.exec(stmt)).first()


async def history(session: AsyncSession, ticket_id: int) -> list[TicketMessage]:
    stmt = (
        select(TicketMessage)
        .where(TicketMessage.ticket_id == ticket_id, TicketMessage.role != "draft")
        .order_by(col(TicketMessage.id))
    )
    return list((await session.exec(stmt)).all())


def attachment_problem(
    settings: Settings, attachment: Attachment | None
) -> tuple[str, dict[str, Any]]:
    """("", {}) when the attachment is fine (or absent), else the i18n key and values to say."""
    if attachment is None:
        return "", {}
    name = (attachment.name or "").lower()
    if attachment.kind == "document" and not (
        (attachment.mime or "").lower() in ALLOWED_MIME or name.endswith(ALLOWED_SUFFIXES)
    ):
        return "sup.attachment_type", {}
    if attachment.kind not in ("photo", "document"):
        return "sup.attachment_type", {}
    limit = settings.max_attachment_mb * 1024 * 1024
    if attachment.size is not None and attachment.size > limit:
        return "sup.attachment_too_big", {"max": settings.max_attachment_mb}
    return "", {}


def add_message(
    ctx: Ctx,
    ticket: Ticket,
    *,
    role: str,
    text: str,
    author_id: int | None = None,
    attachment: Attachment | None = None,
) -> TicketMessage:
    message = TicketMessage(
        ticket_id=ticket.id or 0,
        author_id=author_id,
        role=role,
        text=text[:MAX_TEXT],
        attachment_ref=attachment.file_ref if attachment else None,
        attachment_kind=attachment.kind if attachment else None,
        attachment_name=attachment.name[:200] if attachment and attachment.name else None,
        at=ctx.now,
    )
    ctx.session.add(message)
    return message
