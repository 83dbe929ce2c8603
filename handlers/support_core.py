"""Support tickets: who may do what, where a ticket goes, and every move of a ticket.

A ticket belongs to a member's cell and is the responsibility of one unit at a time
(``Ticket.unit_id``): first the nearest unit above the cell that has support staff; when nobody
claims it within the SLA (working time, see ``bot.workhours``) it escalates to the next staffed
unit up, and so on to the root. Every move is a conditional UPDATE (the row must still be in the
state the move starts from), so two staff claiming at once, or a claim racing an escalation, end
with exactly one winner on SQLite and PostgreSQL alike.

Staff receive tickets in their private chats or, when their unit has a staff group, in one forum
topic per ticket. Everything reaches people through the outbox; the only direct channel call is
creating a forum topic, done by the ``ticket_topic`` job. The SLA, topic creation, the check that
an answer was delivered and closing resolved tickets are durable ``DueJob`` rows, so a restart
loses none of them.

Access: staff and admins act on the tickets of cells inside the units they serve; a cell's
secretary or deputy may view, reply and answer with an FAQ entry. Buttons only name a ticket and
a verb; every handler checks the actor against the ticket's cell on the server. The member's
identity goes only to those who may act on the ticket.

Logs carry ids only: never message text, names or phone numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.base import Blocked, Rejected, RetryLater
from bot.context import Actor, Ctx
from bot.core import Attachment, Choice, View
from bot.i18n import pick_language, t
from bot.phones import display_phone
from bot.scheduler import JobResult, cancel, done, job, schedule, skip
from bot.settings import Settings
from bot.workhours import WorkCalendar
from storage import queries
from storage.db import Database
from storage.models import (
    DueJob,
    JobStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
    Role,
    StaffGroup,
    Ticket,
    TicketMessage,
    TicketPost,
    TicketStatus,
    TicketTopic,
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
    return settings.work_calendar.add(start, settings.ticket_sla_delta)


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
    return int((await ctx.session.exec(stmt)).one())  # type: ignore[call-overload]


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


def attachment_problem(settings: Settings, attachment: Attachment | None) -> tuple[str, dict]:
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


# --- rendering ------------------------------------------------------------------------------------


def category_label(lang: str, category: str) -> str:
    return t(lang, f"sup.cat.{category if category in CATEGORIES else 'other'}")


def when(settings: Settings, at: datetime | None) -> str:
    return at.astimezone(settings.tz).strftime("%H:%M %d/%m") if at else "—"


def duration_text(lang: str, delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes >= 24 * 60:
        return t(lang, "sup.dur.days", n=minutes // (24 * 60))
    if minutes >= 60:
        return t(lang, "sup.dur.hours", h=minutes // 60, m=minutes % 60)
    return t(lang, "sup.dur.minutes", m=minutes)


def _attachment_note(lang: str, message: TicketMessage) -> str:
    if message.attachment_kind == "photo":
        return t(lang, "sup.photo")
    if message.attachment_kind:
        return t(lang, "sup.document", name=message.attachment_name or "—")
    return ""


def history_line(settings: Settings, lang: str, message: TicketMessage, limit: int) -> str:
    who = t(lang, f"sup.who.{message.role}")
    text = message.text if len(message.text) <= limit else message.text[: limit - 1] + "…"
    extra = _attachment_note(lang, message)
    body = " ".join(part for part in (text, extra) if part)
    return f"{when(settings, message.at)} {who}: {body}"


def status_text(lang: str, ticket: Ticket, claimer: Member | None) -> str:
    if ticket.status == TicketStatus.claimed:
        return t(lang, "sup.status.claimed_by", name=claimer.full_name if claimer else "—")
    return t(lang, f"sup.status.{ticket.status.value}")


def staff_buttons(
    ctx: Ctx, ticket: Ticket, lang: str, *, group: bool = False
) -> list[list[Choice]]:
    def button(key: str, verb: str) -> Choice:
        return ctx.button(t(lang, key), f"a:tk:{ticket.id}:{verb}")

    if group and ticket.status != TicketStatus.closed:
        return [*_staff_buttons(ctx, ticket, lang), [button("sup.btn.phone", "phone")]]
    return _staff_buttons(ctx, ticket, lang)


def _staff_buttons(ctx: Ctx, ticket: Ticket, lang: str) -> list[list[Choice]]:
    def button(key: str, verb: str) -> Choice:
        return ctx.button(t(lang, key), f"a:tk:{ticket.id}:{verb}")

    if ticket.status == TicketStatus.closed:
        return [[button("sup.btn.view", "view")]]
    if ticket.status == TicketStatus.resolved:
        return [[button("sup.btn.reply", "reply"), button("sup.btn.view", "view")]]
    first = [button("sup.btn.reply", "reply")]
    if ticket.status == TicketStatus.open:
        first.insert(0, button("sup.btn.claim", "claim"))
    return [
        first,
        [button("sup.btn.faq", "faq"), button("sup.btn.db", "db")],
        [button("sup.btn.done", "done")],
        [button("sup.btn.up", "up"), button("sup.btn.down", "down")],
    ]


async def card_view(
    ctx: Ctx,
    ticket: Ticket,
    lang: str,
    *,
    note: Note = None,
    full: bool = False,
    group: bool = False,
) -> View:
    """What staff see of a ticket: who, where, state, history, and the actions. In a group the
    phone number stays off the card: a staff member gets it privately with one tap."""
    session = ctx.session
    member = await session.get(Member, ticket.member_id) if ticket.member_id else None
    cell = await session.get(Unit, ticket.cell_id)
    unit = await session.get(Unit, ticket.unit_id)
    parent = await session.get(Unit, cell.parent_id) if cell and cell.parent_id else None
    claimer = await session.get(Member, ticket.claimed_by) if ticket.claimed_by else None
    lines = [t(lang, note[0], **note[1])] if note else []
    lines.append(
        t(lang, "sup.card.title", id=ticket.id, category=category_label(lang, ticket.category))
    )
    lines.append(
        t(
            lang,
            "sup.card.member",
            name=(member.full_name if member else None) or "—",
            code=(member.member_code if member else None) or "—",
            phone=t(lang, "sup.card.phone_on_demand")
            if group
            else (display_phone(member.phone) if member and member.phone else "—"),
        )
    )
    lines.append(
        t(
            lang,
            "sup.card.cell",
            cell=cell.name if cell else "—",
            parent=parent.name if parent else "—",
        )
    )
    lines.append(
        t(
            lang,
            "sup.card.unit",
            unit=unit.name if unit else "—",
            created=when(ctx.settings, ticket.created_at),
            due=when(ctx.settings, ticket.sla_due_at)
            if ticket.status == TicketStatus.open
            else "—",
        )
    )
    lines.append(t(lang, "sup.card.status", status=status_text(lang, ticket, claimer)))
    if ticket.db_correction:
        lines.append(t(lang, "sup.card.db"))
    entries = await history(session, ticket.id or 0)
    shown = entries if full else entries[-CARD_HISTORY:]
    lines.append(t(lang, "sup.card.history"))
    if len(shown) < len(entries):
        lines.append(t(lang, "sup.card.earlier", n=len(entries) - len(shown)))
    limit = 1000 if full else SNIPPET
    lines.extend(history_line(ctx.settings, lang, entry, limit) for entry in shown)
    return View("\n".join(lines), staff_buttons(ctx, ticket, lang, group=group))


# --- who hears about a ticket ---------------------------------------------------------------------


@dataclass(frozen=True)
class Chat:
    channel: str
    chat_ref: str
    thread_ref: str | None
    lang: str
    group: bool


def _lang_of(ctx: Ctx, account_lang: str | None, member: Member | None) -> str:
    return pick_language(
        account_lang or (member.language if member else None), None, ctx.settings.default_language
    )


async def private_chats(ctx: Ctx, member: Member) -> list[Chat]:
    accounts = await queries.accounts_of(ctx.session, member_id=member.id or 0)
    return [
        Chat(a.channel, a.chat_ref, None, _lang_of(ctx, a.language, member), False)
        for a in accounts
    ]


async def staff_chats(ctx: Ctx, ticket: Ticket, *, open_topic: Note | bool = False) -> list[Chat]:
    """Where the staff responsible for ``ticket`` read about it now.

    The unit's staff group (the ticket's topic, or the group itself when it is no forum), else the
    private chats of the unit's staff; plus the claimer when they are not staff of that unit.
    A forum topic that does not exist yet is left out: with ``open_topic`` it is requested (the
    ``ticket_topic`` job posts the card, with the whole history, once the topic exists).
    """
    chats: list[Chat] = []
    unit_staff = await staff_of(ctx.session, ticket.unit_id)
    group = await group_for_unit(ctx.session, ticket.unit_id)
    if group is not None and group.forum:
        topic = await topic_of(ctx.session, ticket.id or 0, group)
        if topic is None and open_topic is not False:
            await request_topic(ctx, ticket, group, None if open_topic is True else open_topic)
        elif topic is not None and topic.thread_ref is not None:
            lang = ctx.settings.default_language
            chats.append(Chat(group.channel, group.chat_ref, topic.thread_ref, lang, True))
    elif group is not None:
        lang = ctx.settings.default_language
        chats.append(Chat(group.channel, group.chat_ref, None, lang, True))
    else:
        for person in unit_staff:
            chats.extend(await private_chats(ctx, person))
    if ticket.claimed_by and ticket.claimed_by not in {m.id for m in unit_staff}:
        claimer = await ctx.session.get(Member, ticket.claimed_by)
        if claimer is not None:
            chats.extend(await private_chats(ctx, claimer))
    return chats


async def request_topic(ctx: Ctx, ticket: Ticket, group: StaffGroup, note: Note) -> None:
    topic = TicketTopic(
        ticket_id=ticket.id or 0,
        unit_id=group.unit_id,
        channel=group.channel,
        chat_ref=group.chat_ref,
        created_at=ctx.now,
    )
    ctx.session.add(topic)
    await ctx.session.flush()
    schedule(
        ctx.session,
        kind="ticket_topic",
        due_at=ctx.now,
        now=ctx.now,
        ref_id=ticket.id,
        payload={"topic_id": topic.id, "note": list(note) if note else None, "tries": 0},
    )


async def post(
    ctx: Ctx,
    ticket: Ticket,
    chat: Chat,
    view: View,
    *,
    audience: str,
    kind: str,
    member_id: int | None = None,
) -> OutboxMessage:
    """Queue ``view`` for ``chat`` and remember it belongs to ``ticket`` (for replies and edits)."""
    if chat.thread_ref:
        view.thread_ref = chat.thread_ref
    row = ctx.services.outbox.add(
        ctx.session, channel=chat.channel, chat_ref=chat.chat_ref, view=view, member_id=member_id
    )
    await ctx.session.flush()
    ctx.session.add(
        TicketPost(
            ticket_id=ticket.id or 0,
            outbox_id=row.id or 0,
            channel=chat.channel,
            chat_ref=chat.chat_ref,
            audience=audience,
            kind=kind,
            lang=chat.lang,
        )
    )
    return row


async def announce(ctx: Ctx, ticket: Ticket, note: Note = None) -> int:
    """Send the ticket's card to the staff now responsible; returns how many chats got it."""
    chats = await staff_chats(ctx, ticket, open_topic=note if note else True)
    for chat in chats:
        view = await card_view(ctx, ticket, chat.lang, note=note, group=chat.group)
        await post(ctx, ticket, chat, view, audience="staff", kind="card")
    return len(chats)


async def tell_staff(ctx: Ctx, ticket: Ticket, render: Callable[[Chat], View]) -> None:
    for chat in await staff_chats(ctx, ticket):
        await post(ctx, ticket, chat, render(chat), audience="staff", kind="message")


async def tell_member(
    ctx: Ctx, ticket: Ticket, render: Callable[[str], View]
) -> list[OutboxMessage]:
    """Queue a message to every reachable account of the ticket's member; [] when none."""
    member = await ctx.session.get(Member, ticket.member_id)
    if member is None:
        return []
    rows = []
    for chat in await private_chats(ctx, member):
        rows.append(
            await post(
                ctx,
                ticket,
                chat,
                render(chat.lang),
                audience="member",
                kind="message",
                member_id=member.id,
            )
        )
    return rows


async def refresh_cards(ctx: Ctx, ticket: Ticket) -> None:
    """Edit the newest card in every staff chat so its state and buttons are current."""
    stmt = (
        select(TicketPost)
        .where(TicketPost.ticket_id == ticket.id, TicketPost.kind == "card")
        .order_by(col(TicketPost.id))
    )
    newest: dict[tuple[str, str], TicketPost] = {}
    for card in (await ctx.session.exec(stmt)).all():
        newest[(card.channel, card.chat_ref)] = card
    for card in newest.values():
        in_group = await group_for_chat(ctx.session, card.channel, card.chat_ref) is not None
        view = await card_view(ctx, ticket, card.lang, group=in_group)
        view.edit_of = card.outbox_id
        ctx.services.outbox.add(
            ctx.session, channel=card.channel, chat_ref=card.chat_ref, view=view
        )


def member_buttons(ctx: Ctx, ticket: Ticket, lang: str) -> list[list[Choice]]:
    return [[ctx.button(t(lang, "sup.btn.solved"), f"a:sup:{ticket.id}:solved")]]


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
        .where(col(Ticket.id) == ticket.id, Ticket.status == TicketStatus.open)
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
    await tell_member(
        ctx, ticket, lambda lang: View(t(lang, "sup.member.claimed", id=ticket.id, unit=unit.name))
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
    photo = attachment.file_ref if attachment and attachment.kind == "photo" else None
    document = (attachment.name or "—") if attachment and attachment.kind == "document" else None

    def render(member_lang: str) -> View:
        body = text or t(member_lang, "sup.photo")
        if document:
            body += "\n" + t(member_lang, "sup.document", name=document)
        return View(
            t(member_lang, "sup.member.answer", id=ticket.id, unit=unit.name, text=body),
            member_buttons(ctx, ticket, member_lang),
            photo_ref=photo,
        )

    rows = await tell_member(ctx, ticket, render)
    await refresh_cards(ctx, ticket)
    if not rows:
        cell = await ctx.session.get(Unit, ticket.cell_id)
        await say(
            ctx, ticket, where, t(lang, "sup.staff.undeliverable", id=ticket.id, cell=cell.name)
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
            view.choices = [[ctx.button(t(chat.lang, "sup.btn.reply"), f"a:tk:{ticket.id}:reply")]]
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
                    ctx.button(t(lang, yes), f"a:sup:{ticket.id}:solved"),
                    ctx.button(t(lang, no), f"a:sup:{ticket.id}:unsolved"),
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
        .where(col(Ticket.id) == ticket.id, Ticket.status == TicketStatus.resolved)
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
        .where(col(Ticket.id) == ticket.id, Ticket.status != TicketStatus.closed)
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
            Ticket.unit_id == old_unit,
            Ticket.status == old_status,
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
        update(Ticket).where(Ticket.member_id == member_id).values(rating_comment=None)
    )


# --- timed work -----------------------------------------------------------------------------------


@job("ticket_sla")
async def on_sla(ctx: Ctx, work: DueJob) -> JobResult:
    """Nobody claimed the ticket in time: escalate one staffed unit up, or at the root remind."""
    ticket = await lock_ticket(ctx.session, work.ref_id or 0)
    if ticket is None or ticket.status != TicketStatus.open:
        return skip("no longer open")
    if ticket.unit_id != work.payload.get("unit_id"):
        return skip("moved meanwhile")
    unit = await ctx.session.get(Unit, ticket.unit_id)
    upper = await unit_above(ctx.session, unit) if unit else None
    if upper is not None:
        await move(ctx, ticket, upper, reason="escalated")
        return done(f"escalated to unit {upper.id}")
    rounds = int(work.payload.get("round", 0))
    if rounds == 0:
        ticket.breached = True
        ctx.session.add(ticket)
        add_message(
            ctx, ticket, role="system", text=t(ctx.settings.default_language, "sup.sys.overdue")
        )
        await announce(ctx, ticket, ("sup.note.overdue", {}))
        await tell_member(
            ctx, ticket, lambda lang: View(t(lang, "sup.member.overdue", id=ticket.id))
        )
    else:  # the member was told once; the staff are told again every SLA period
        await announce(ctx, ticket, ("sup.note.still_overdue", {"n": rounds + 1}))
    admins_at = work.payload.get("admins_at")
    if admins_at is None or ctx.now - datetime.fromisoformat(admins_at) >= ADMINS_EVERY:
        await tell_admins_overdue(ctx, ticket)
        admins_at = ctx.now.isoformat()
    schedule(  # until someone claims it (a claim cancels pending ticket_sla work)
        ctx.session,
        kind="ticket_sla",
        due_at=sla_deadline(ctx.settings, ctx.now),
        now=ctx.now,
        ref_id=ticket.id,
        payload={"unit_id": ticket.unit_id, "round": rounds + 1, "admins_at": admins_at},
    )
    log.info("ticket.breached id=%s unit=%s round=%s", ticket.id, ticket.unit_id, rounds + 1)
    return done(f"overdue at the root, round {rounds + 1}")


ADMINS_EVERY = timedelta(days=1)


async def tell_admins_overdue(ctx: Ctx, ticket: Ticket) -> int:
    """Administrators over the ticket's cell who are not its unit's staff (those get the card)
    hear once a day that it waits unclaimed at the top."""
    cell = await ctx.session.get(Unit, ticket.cell_id)
    if cell is None:
        return 0
    staff = {m.id for m in await staff_of(ctx.session, ticket.unit_id)}
    unit = await ctx.session.get(Unit, ticket.unit_id)
    told: set[int | None] = set()
    for place in [cell, *await queries.ancestors(ctx.session, unit=cell)]:
        for admin in await queries.holders(ctx.session, unit_id=place.id or 0, roles=[Role.admin]):
            if admin.id in staff or admin.id in told:
                continue
            told.add(admin.id)
            await ctx.notify_member(
                admin,
                lambda lang: View(
                    t(lang, "sup.admin.overdue", id=ticket.id, unit=unit.name if unit else "")
                ),
            )
    return len(told)


@job("ticket_topic")
async def on_topic(ctx: Ctx, work: DueJob) -> JobResult:
    """Create the ticket's forum topic in the staff group, then post the card into it.

    The network call never runs inside this job's write transaction (on SQLite that held every
    writer's lock for a round trip): this transaction only schedules the next try — the safety
    net should this process die or the call fail — and the call runs once it has committed
    (``create_topic_after_commit``), which records the topic in a short transaction of its own."""
    topic = await ctx.session.get(TicketTopic, work.payload.get("topic_id") or 0)
    ticket = await ctx.session.get(Ticket, work.ref_id or 0)
    if topic is None or ticket is None or topic.thread_ref is not None:
        return skip("nothing to create")
    group = await group_for_chat(ctx.session, topic.channel, topic.chat_ref)
    raw_note = work.payload.get("note")
    note: Note = (raw_note[0], raw_note[1]) if raw_note else None
    if group is None or group.unit_id != ticket.unit_id:
        await ctx.session.delete(topic)
        await announce(ctx, ticket, note)  # the group was unbound meanwhile: private chats
        return skip("group gone")
    tries = int(work.payload.get("tries", 0))
    if tries >= TOPIC_TRIES:
        await post_in_group_instead(ctx, ticket, group, topic, note)
        return done("gave up on the topic: posted in the group")
    channel = ctx.services.channels.get(topic.channel)
    create = getattr(channel, "create_topic", None)
    wait = 60 if create is None else 2 ** (tries + 1) * 5 + 2 * TOPIC_TIMEOUT  # after any call
    retry = schedule(
        ctx.session,
        kind="ticket_topic",
        due_at=ctx.now + timedelta(seconds=wait),
        now=ctx.now,
        ref_id=ticket.id,
        payload={**work.payload, "tries": tries + 1},
    )
    if create is None:  # this process has no such channel (yet): the next try may
        return done("retry: no channel")
    await ctx.session.flush()
    lang = ctx.settings.default_language
    title = t(
        lang,
        "sup.topic_title",
        id=ticket.id,
        category=category_label(lang, ticket.category),
        cell=(await ctx.session.get(Unit, ticket.cell_id)).name,  # type: ignore[union-attr]
    )
    call = create_topic_after_commit(ctx, create, topic.id or 0, retry.id or 0, title, note)
    ctx.session.info.setdefault("after_commit", []).append(call)
    return done("creating the topic")


async def post_in_group_instead(
    ctx: Ctx, ticket: Ticket, group: StaffGroup, topic: TicketTopic, note: Note
) -> None:
    """No topic after all tries: the group is used as a plain group from now on."""
    group.forum = False
    ctx.session.add(group)
    await ctx.session.delete(topic)
    await ctx.session.flush()
    await announce(ctx, ticket, note)


def create_topic_after_commit(
    ctx: Ctx,
    create: Callable[[str, str], Awaitable[str]],
    topic_id: int,
    retry_id: int,
    title: str,
    note: Note,
) -> Callable[[Database], Awaitable[None]]:
    """The forum-topic call, run after the job's transaction, and its outcome recorded in a
    short transaction of its own. Two runs may race (a retry while a slow call is still out):
    the first to record wins — the thread is stored only where none is yet (a conditional
    UPDATE) and the card is posted once; the loser's topic is left unused and logged."""

    async def run(db: Database) -> None:
        async with db.reader() as session:
            topic = await session.get(TicketTopic, topic_id)
        if topic is None or topic.thread_ref is not None:
            return
        try:
            thread: str | Exception = str(
                await asyncio.wait_for(create(topic.chat_ref, title), timeout=TOPIC_TIMEOUT)
            )
        except (Rejected, Blocked) as exc:
            thread = exc
        except Exception as exc:  # noqa: BLE001 - rate limits, network: the retry job stands
            log.info("ticket.topic_retry topic=%s error=%s", topic_id, type(exc).__name__)
            if isinstance(exc, RetryLater):
                async with db.session() as session:
                    later = ctx.now + timedelta(seconds=exc.seconds)
                    await session.exec(
                        update(DueJob)
                        .where(col(DueJob.id) == retry_id, col(DueJob.due_at) < later)
                        .values(due_at=later)
                    )
            return
        async with db.session() as session:
            await record_topic(replace(ctx, session=session), topic_id, retry_id, thread, note)

    return run


async def record_topic(
    ctx: Ctx, topic_id: int, retry_id: int, thread: str | Exception, note: Note
) -> None:
    """Store the created thread (or what refusing it means) unless another run did already."""
    topic = await ctx.session.get(TicketTopic, topic_id)
    ticket = await ctx.session.get(Ticket, topic.ticket_id) if topic is not None else None
    group = (
        await group_for_chat(ctx.session, topic.channel, topic.chat_ref)
        if topic is not None
        else None
    )
    if topic is None or ticket is None or group is None or topic.thread_ref is not None:
        log.info("ticket.topic_unused topic=%s", topic_id)  # another run recorded one first
        return
    await ctx.session.exec(
        update(DueJob)
        .where(col(DueJob.id) == retry_id, col(DueJob.status) == JobStatus.pending)
        .values(status=JobStatus.skipped, note="not needed: topic settled", done_at=ctx.now)
    )
    lang = ctx.settings.default_language
    if isinstance(thread, Rejected):  # not a forum (or no right to manage topics)
        ctx.services.outbox.add(
            ctx.session,
            channel=group.channel,
            chat_ref=group.chat_ref,
            view=View(t(lang, "sup.group.not_forum")),
        )
        await post_in_group_instead(ctx, ticket, group, topic, note)
        log.info("ticket.topic_refused id=%s group=%s", ticket.id, group.id)
        return
    if isinstance(thread, Exception):  # Blocked: the bot is no longer in the group
        log.warning("ticket.group_lost group=%s", group.id)
        await ctx.session.delete(topic)
        await ctx.session.delete(group)
        await ctx.session.flush()
        await announce(ctx, ticket, note)
        return
    recorded = await ctx.session.exec(
        update(TicketTopic)
        .where(col(TicketTopic.id) == topic_id, col(TicketTopic.thread_ref).is_(None))
        .values(thread_ref=thread)
    )
    if recorded.rowcount != 1:
        log.info("ticket.topic_unused topic=%s", topic_id)
        return
    chat = Chat(group.channel, group.chat_ref, thread, lang, True)
    view = await card_view(ctx, ticket, lang, note=note, group=True)
    await post(ctx, ticket, chat, view, audience="staff", kind="card")
    log.info("ticket.topic id=%s group=%s", ticket.id, group.id)


@job("ticket_delivery")
async def on_delivery(ctx: Ctx, work: DueJob) -> JobResult:
    """A while after an answer was relayed: if it never reached the member, tell the helper."""
    ids = [int(i) for i in work.payload.get("outbox", [])]
    stmt = select(OutboxMessage.status).where(col(OutboxMessage.id).in_(ids))
    statuses = list((await ctx.session.exec(stmt)).all())
    if OutboxStatus.sent in statuses:
        tell_delivery(
            ctx, work, lambda lang, ticket_id: t(lang, "sup.staff.delivered", id=ticket_id)
        )
        return done("delivered")
    checks = int(work.payload.get("checks", 0)) + 1
    if OutboxStatus.pending in statuses and checks < DELIVERY_CHECKS:
        schedule(
            ctx.session,
            kind="ticket_delivery",
            due_at=ctx.now + DELIVERY_CHECK_AFTER * 2**checks,
            now=ctx.now,
            ref_id=work.ref_id,
            payload={**work.payload, "checks": checks},
        )
        return skip("still sending")
    ticket = await ctx.session.get(Ticket, work.ref_id or 0)
    if ticket is None:
        return skip("no ticket")
    cell = await ctx.session.get(Unit, ticket.cell_id)
    name = cell.name if cell else "—"
    tell_delivery(
        ctx,
        work,
        lambda lang, ticket_id: t(lang, "sup.staff.undeliverable", id=ticket_id, cell=name),
    )
    log.info("ticket.undelivered id=%s", ticket.id)
    return done("not delivered: helper told")


def tell_delivery(ctx: Ctx, work: DueJob, text: Callable[[str, int], str]) -> None:
    """The truth about an answer's delivery, in place of the "sending" notice where the channel
    can edit (else as a message of its own)."""
    channel, chat_ref, thread_ref, lang = work.payload["chat"]
    notice = work.payload.get("notice")
    editable = notice is not None and ctx.services.caps(channel).edits
    view = View(text(lang, work.ref_id or 0), thread_ref=thread_ref)
    if editable:
        view.edit_of = int(notice)
    ctx.services.outbox.add(ctx.session, channel=channel, chat_ref=chat_ref, view=view)


@job("ticket_autoclose")
async def on_autoclose(ctx: Ctx, work: DueJob) -> JobResult:
    ticket = await lock_ticket(ctx.session, work.ref_id or 0)
    if ticket is None or ticket.status != TicketStatus.resolved:
        return skip("not resolved")
    await close(ctx, ticket, by_member=False)
    return done("closed")
