"""How a ticket is written: category labels, times, its history, the staff card and its buttons."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.context import Ctx
from bot.core import Choice, View
from bot.i18n import t
from bot.phones import display_phone
from bot.settings import Settings
from handlers.support_core.buttons import StaffVerb, TicketPress
from handlers.support_core.policy import CARD_HISTORY, CATEGORIES, SNIPPET, Note
from handlers.support_core.queries import history
from storage.ids import id_of
from storage.models import (
    Member,
    Ticket,
    TicketMessage,
    TicketStatus,
    Unit,
)

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
    if group and ticket.status != TicketStatus.closed:
        phone = ctx.button(t(lang, "sup.btn.phone"), TicketPress(id_of(ticket), StaffVerb.phone))
        return [*_staff_buttons(ctx, ticket, lang), [phone]]
    return _staff_buttons(ctx, ticket, lang)


def _staff_buttons(ctx: Ctx, ticket: Ticket, lang: str) -> list[list[Choice]]:
    def button(key: str, verb: StaffVerb) -> Choice:
        return ctx.button(t(lang, key), TicketPress(id_of(ticket), verb))

    if ticket.status == TicketStatus.closed:
        return [[button("sup.btn.view", StaffVerb.view)]]
    if ticket.status == TicketStatus.resolved:
        return [[button("sup.btn.reply", StaffVerb.reply), button("sup.btn.view", StaffVerb.view)]]
    first = [button("sup.btn.reply", StaffVerb.reply)]
    if ticket.status == TicketStatus.open:
        first.insert(0, button("sup.btn.claim", StaffVerb.claim))
    return [
        first,
        [button("sup.btn.faq", StaffVerb.faq), button("sup.btn.db", StaffVerb.db)],
        [button("sup.btn.done", StaffVerb.done)],
        [button("sup.btn.up", StaffVerb.up), button("sup.btn.down", StaffVerb.down)],
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
