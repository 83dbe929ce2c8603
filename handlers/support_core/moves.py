"""Every move of a ticket: open, claim, answer, resolve, reopen, close, escalate or move, release
claims, forget. Each is a conditional UPDATE from the state it starts in, so racing moves end
with exactly one winner.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Actor, Ctx
from bot.core import Attachment, View
from bot.i18n import t
from bot.scheduler import cancel, schedule
from handlers.support_core.buttons import MemberPress, MemberVerb, StaffVerb, TicketPress
from handlers.support_core.notify import (
    Chat,
    announce,
    member_buttons,
    refresh_cards,
    staff_chats,
    tell_member,
    tell_staff,
)
from handlers.support_core.policy import (
    ACTIVE,
    AUTOCLOSE_AFTER,
    CATEGORIES,
    DELIVERY_CHECK_AFTER,
    STAFF_ROLES,
    log,
    sla_deadline,
)
from handlers.support_core.queries import add_message, first_unit, reload
from storage import queries
from storage.ids import id_of
from storage.models import (
    Member,
    OutboxMessage,
    Ticket,
    TicketMessage,
    TicketStatus,
    Unit,
)

# --- the moves of a ticket ------------------------------------------------------------------------


async def _schedule_sla(ctx: Ctx, ticket: Ticket) -> None:
    await cancel(ctx.session, ref_id=ticket.id or 0, kinds=("ticket_sla",))
    if ticket.status != TicketStatus.open or ticket.sla_due_at is None:
        return
    schedule(
        ctx.session,
        kind="ticket_sla",
        due_at=ticket.sla_due_at,
        now=ctx.now,
        ref_id=ticket.id,
        payload={"unit_id": ticket.unit_id},
    )


async def open_ticket(
    ctx: Ctx, member: Member, *, category: str, text: str, attachment: Attachment | None
) -> Ticket:
    cell = await ctx.session.get(Unit, member.cell_id)
    assert cell is not None
    unit = await first_unit(ctx.session, cell)
    ticket = Ticket(
        member_id=member.id or 0,
        cell_id=cell.id or 0,
        unit_id=unit.id or 0,
        category=category if category in CATEGORIES else "other",
        created_at=ctx.now,
        sla_due_at=sla_deadline(ctx.settings, ctx.now),
    )
    ctx.session.add(ticket)
    await ctx.session.flush()
    add_message(ctx, ticket, role="member", text=text, author_id=member.id, attachment=attachment)
    await ctx.session.flush()
    await _schedule_sla(ctx, ticket)
    await announce(ctx, ticket)
    if attachment is not None and attachment.kind == "photo":  # the card is text: the screenshot
        await tell_staff(
            ctx, ticket, lambda chat: photo_view(chat.lang, ticket, attachment.file_ref)
        )
    log.info("ticket.created id=%s unit=%s category=%s", ticket.id, unit.id, ticket.category)
    return ticket


def photo_view(lang: str, ticket: Ticket, file_ref: str) -> View:
    """A member's screenshot as a photo of its own, captioned with the ticket it belongs to."""
    return View(t(lang, "sup.staff.photo_of", id=ticket.id), photo_ref=file_ref)


async def ticket_photos(session: AsyncSession, ticket: Ticket) -> list[str]:
    """Every photo the member sent with the ticket, oldest first (``Xem đủ`` shows them all)."""
    stmt = (
        select(TicketMessage.attachment_ref)
        .where(
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.attachment_kind == "photo",
            col(TicketMessage.attachment_ref).is_not(None),
        )
        .order_by(col(TicketMessage.id))
    )
    return [ref for ref in (await session.exec(stmt)).all() if ref]


async def claim(ctx: Ctx, ticket: Ticket) -> str:
    """'ok', or why not: 'mine' (already yours), 'taken' (someone else), 'closed'."""
    me = ctx.actor.member.id if ctx.actor.member else None
    result = await ctx.session.exec(
        update(Ticket)
        .where(col(Ticket.id) == ticket.id, col(Ticket.status) == TicketStatus.open)
        .values(status=TicketStatus.claimed, claimed_by=me, claimed_at=ctx.now)
    )
    await reload(ctx.session, ticket)
    if result.rowcount != 1:
        if ticket.status == TicketStatus.claimed:
            return "mine" if ticket.claimed_by == me else "taken"
        return "closed"
    await cancel(ctx.session, ref_id=ticket.id or 0, kinds=("ticket_sla",))
    add_message(
        ctx, ticket, role="system", text=t(ctx.settings.default_language, "sup.sys.claimed")
    )
    unit = await ctx.session.get(Unit, ticket.unit_id)
    unit_name = unit.name if unit else "—"
    await tell_member(
        ctx, ticket, lambda lang: View(t(lang, "sup.member.claimed", id=ticket.id, unit=unit_name))
    )
    await refresh_cards(ctx, ticket)
    log.info("ticket.claimed id=%s by=%s", ticket.id, me)
    return "ok"


async def staff_answer(
    ctx: Ctx, ticket: Ticket, *, text: str, attachment: Attachment | None, where: Chat
) -> bool:
    """Relay a helper's answer to the member; tell ``where`` whether it could be delivered."""
    lang = where.lang
    if ticket.status == TicketStatus.closed:
        await say(ctx, ticket, where, t(lang, "sup.staff.closed", id=ticket.id))
        return False
    author = ctx.actor.member.id if ctx.actor.member else None
    add_message(ctx, ticket, role="staff", text=text, author_id=author, attachment=attachment)
    ticket.first_response_at = ticket.first_response_at or ctx.now
    ticket.member_adds = True  # the conversation is on: the member's next words belong here
    ctx.session.add(ticket)
    unit = await ctx.session.get(Unit, ticket.unit_id)
    unit_name = unit.name if unit else "—"
    photo = attachment.file_ref if attachment and attachment.kind == "photo" else None
    document = (attachment.name or "—") if attachment and attachment.kind == "document" else None

    def render(member_lang: str) -> View:
        body = text or t(member_lang, "sup.photo")
        if document:
            body += "\n" + t(member_lang, "sup.document", name=document)
        return View(
            t(member_lang, "sup.member.answer", id=ticket.id, unit=unit_name, text=body),
            member_buttons(ctx, ticket, member_lang),
            photo_ref=photo,
        )

    rows = await tell_member(ctx, ticket, render)
    await refresh_cards(ctx, ticket)
    if not rows:
        cell = await ctx.session.get(Unit, ticket.cell_id)
        cell_name = cell.name if cell else "—"
        await say(
            ctx, ticket, where, t(lang, "sup.staff.undeliverable", id=ticket.id, cell=cell_name)
        )
        log.info("ticket.undeliverable id=%s", ticket.id)
        return False
    notice = await say(ctx, ticket, where, t(lang, "sup.staff.sent", id=ticket.id))
    await ctx.session.flush()  # its id: the truth replaces this "sending" notice once known
    schedule(
        ctx.session,
        kind="ticket_delivery",
        due_at=ctx.now + DELIVERY_CHECK_AFTER,
        now=ctx.now,
        ref_id=ticket.id,
        payload={
            "outbox": [row.id for row in rows],
            "chat": [where.channel, where.chat_ref, where.thread_ref, where.lang],
            "checks": 0,
            "notice": notice.id,
        },
    )
    log.info("ticket.answered id=%s by=%s", ticket.id, author)
    return True


async def say(ctx: Ctx, ticket: Ticket, where: Chat, text: str) -> OutboxMessage:
    """A short notice to the staff chat or topic where an action came from."""
    view = View(text, thread_ref=where.thread_ref)
    return ctx.services.outbox.add(
        ctx.session, channel=where.channel, chat_ref=where.chat_ref, view=view
    )


async def add_member_message(
    ctx: Ctx, ticket: Ticket, *, text: str, attachment: Attachment | None
) -> bool:
    """The member adds to their ticket (reopening it if it was resolved); False when closed."""
    if ticket.status == TicketStatus.closed:
        ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
        return False
    if ticket.status == TicketStatus.resolved:
        await reopen(ctx, ticket)
    member = ctx.actor.member
    add_message(
        ctx,
        ticket,
        role="member",
        text=text,
        author_id=member.id if member else None,
        attachment=attachment,
    )
    photo = attachment.file_ref if attachment and attachment.kind == "photo" else None
    name = member.full_name if member else "—"

    def render(chat: Chat) -> View:
        body = text or ""
        if attachment is not None:
            note = (
                t(chat.lang, "sup.photo")
                if attachment.kind == "photo"
                else t(chat.lang, "sup.document", name=attachment.name or "—")
            )
            body = f"{body}\n{note}".strip()
        view = View(
            t(chat.lang, "sup.staff.member_wrote", id=ticket.id, name=name, text=body),
            photo_ref=photo,
        )
        if not chat.group:
            reply = TicketPress(id_of(ticket), StaffVerb.reply)
            view.choices = [[ctx.button(t(chat.lang, "sup.btn.reply"), reply)]]
        return view

    await tell_staff(ctx, ticket, render)
    ctx.reply(ctx.t("sup.member.added", id=ticket.id))
    log.info("ticket.member_message id=%s", ticket.id)
    return True


async def resolve(ctx: Ctx, ticket: Ticket, *, by_faq: bool = False) -> bool:
    """Staff say it is solved: the member is asked to confirm (close) or say it is not (reopen);
    unanswered, it closes after ``AUTOCLOSE_AFTER``. ``by_faq``: the answer just relayed was an
    FAQ entry, so the member is asked plainly whether it solved the difficulty."""
    ask, yes, no = (
        ("sup.member.faq_solved", "sup.btn.faq_solved", "sup.btn.faq_unsolved")
        if by_faq
        else ("sup.member.resolved", "sup.btn.solved", "sup.btn.unsolved")
    )
    result = await ctx.session.exec(
        update(Ticket)
        .where(col(Ticket.id) == ticket.id, col(Ticket.status).in_(ACTIVE))
        .values(status=TicketStatus.resolved, resolved_at=ctx.now)
    )
    await reload(ctx.session, ticket)
    if result.rowcount != 1:
        return False
    await cancel(ctx.session, ref_id=ticket.id or 0, kinds=("ticket_sla",))
    add_message(
        ctx, ticket, role="system", text=t(ctx.settings.default_language, "sup.sys.resolved")
    )
    schedule(
        ctx.session,
        kind="ticket_autoclose",
        due_at=ctx.now + AUTOCLOSE_AFTER,
        now=ctx.now,
        ref_id=ticket.id,
    )
    await tell_member(
        ctx,
        ticket,
        lambda lang: View(
            t(lang, ask, id=ticket.id),
            [
                [
                    ctx.button(t(lang, yes), MemberPress(id_of(ticket), MemberVerb.solved)),
                    ctx.button(t(lang, no), MemberPress(id_of(ticket), MemberVerb.unsolved)),
                ]
            ],
        ),
    )
    await refresh_cards(ctx, ticket)
    log.info("ticket.resolved id=%s", ticket.id)
    return True


async def reopen(ctx: Ctx, ticket: Ticket) -> bool:
    """A resolved ticket goes back to its claimer, or to the queue (with a new SLA)."""
    status = TicketStatus.claimed if ticket.claimed_by else TicketStatus.open
    due = sla_deadline(ctx.settings, ctx.now)
    result = await ctx.session.exec(
        update(Ticket)
        .where(col(Ticket.id) == ticket.id, col(Ticket.status) == TicketStatus.resolved)
        .values(status=status, resolved_at=None, sla_due_at=due)
    )
    await reload(ctx.session, ticket)
    if result.rowcount != 1:
        return False
    await cancel(ctx.session, ref_id=ticket.id or 0, kinds=("ticket_autoclose",))
    await _schedule_sla(ctx, ticket)
    add_message(
        ctx, ticket, role="system", text=t(ctx.settings.default_language, "sup.sys.reopened")
    )
    await refresh_cards(ctx, ticket)
    log.info("ticket.reopened id=%s", ticket.id)
    return True


async def close(ctx: Ctx, ticket: Ticket, *, by_member: bool) -> bool:
    result = await ctx.session.exec(
        update(Ticket)
        .where(col(Ticket.id) == ticket.id, col(Ticket.status) != TicketStatus.closed)
        .values(status=TicketStatus.closed, closed_at=ctx.now)
    )
    await reload(ctx.session, ticket)
    if result.rowcount != 1:
        return False
    await cancel(ctx.session, ref_id=ticket.id or 0, kinds=("ticket_sla", "ticket_autoclose"))
    key = "sup.sys.closed_by_member" if by_member else "sup.sys.closed"
    add_message(ctx, ticket, role="system", text=t(ctx.settings.default_language, key))
    await refresh_cards(ctx, ticket)
    log.info("ticket.closed id=%s by_member=%s", ticket.id, by_member)
    return True


async def mark_db(ctx: Ctx, ticket: Ticket) -> bool:
    if ticket.db_correction:
        return False
    ticket.db_correction = True
    ctx.session.add(ticket)
    add_message(ctx, ticket, role="system", text=t(ctx.settings.default_language, "sup.sys.db"))
    await tell_member(ctx, ticket, lambda lang: View(t(lang, "sup.member.db", id=ticket.id)))
    await refresh_cards(ctx, ticket)
    log.info("ticket.db_correction id=%s", ticket.id)
    return True


async def move(
    ctx: Ctx, ticket: Ticket, to: Unit, *, reason: str, quiet: tuple[str, str] | None = None
) -> bool:
    """Make ``to`` responsible (escalated | up | down | released): back to the queue, new SLA.

    Everyone involved is told: the staff who had it, the staff who get it, and the member.
    """
    before = await ctx.session.get(Unit, ticket.unit_id)
    old_chats = await staff_chats(ctx, ticket)
    old_unit, old_status = ticket.unit_id, ticket.status
    due = sla_deadline(ctx.settings, ctx.now)
    values: dict[str, Any] = {
        "unit_id": to.id,
        "status": TicketStatus.open,
        "claimed_by": None,
        "claimed_at": None,
        "sla_due_at": due,
    }
    if reason == "escalated":
        values["escalations"] = Ticket.escalations + 1
        values["breached"] = True
    result = await ctx.session.exec(
        update(Ticket)
        .where(
            col(Ticket.id) == ticket.id,
            col(Ticket.unit_id) == old_unit,
            col(Ticket.status) == old_status,
            col(Ticket.status).in_(ACTIVE),
        )
        .values(**values)
    )
    await reload(ctx.session, ticket)
    if result.rowcount != 1:
        return False
    default = ctx.settings.default_language
    source = before.name if before else "—"
    add_message(ctx, ticket, role="system", text=t(default, f"sup.sys.{reason}", unit=to.name))
    await _schedule_sla(ctx, ticket)
    for chat in old_chats:
        if to.id != old_unit and (chat.channel, chat.chat_ref) != quiet:
            text = t(chat.lang, f"sup.staff.moved_{reason}", id=ticket.id, unit=to.name)
            view = View(text, thread_ref=chat.thread_ref)
            ctx.services.outbox.add(
                ctx.session, channel=chat.channel, chat_ref=chat.chat_ref, view=view
            )
    await refresh_cards(ctx, ticket)
    await announce(ctx, ticket, (f"sup.note.{reason}", {"unit": source}))
    if reason != "released":
        await tell_member(
            ctx,
            ticket,
            lambda lang: View(t(lang, f"sup.member.{reason}", id=ticket.id, unit=to.name)),
        )
    log.info("ticket.moved id=%s from=%s to=%s reason=%s", ticket.id, old_unit, to.id, reason)
    return True


async def release_claims(ctx: Ctx, member_id: int) -> int:
    """Claimed tickets this person may no longer act on go back to their unit's queue."""
    grants = await queries.grants_of(ctx.session, member_id=member_id)
    actor = Actor(grants=grants)
    stmt = select(Ticket).where(
        Ticket.claimed_by == member_id, Ticket.status == TicketStatus.claimed
    )
    released = 0
    for ticket in list((await ctx.session.exec(stmt)).all()):
        cell = await ctx.session.get(Unit, ticket.cell_id)
        if cell is not None and actor.can_act_on(cell, *STAFF_ROLES):
            continue
        unit = await ctx.session.get(Unit, ticket.unit_id)
        if unit is not None and await move(ctx, ticket, unit, reason="released"):
            released += 1
    return released


async def forget_tickets(session: AsyncSession, member_id: int) -> None:
    """Erase what a member wrote in their tickets (for /forget); keep the anonymous counts."""
    tickets = select(Ticket.id).where(Ticket.member_id == member_id)
    await session.exec(
        update(TicketMessage)
        .where(col(TicketMessage.ticket_id).in_(tickets))
        .values(text="", attachment_ref=None, attachment_name=None)
    )
    await session.exec(
        update(Ticket).where(col(Ticket.member_id) == member_id).values(rating_comment=None)
    )
