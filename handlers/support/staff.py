"""Staff on a ticket: the buttons of the ticket's card (``TicketPress``) and the reply dialog.

Cards come to staff in private chats or in a forum topic of the unit's staff group; a press is
checked against the ticket's cell every time (``support_core.may``), wherever it comes from.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypedDict

from bot import dialogs
from bot.context import Ctx
from bot.core import Choice, View
from bot.dialogs import Answer, Next, Prompt
from bot.faq import FaqEntry, FaqIndex
from bot.i18n import t
from bot.phones import display_phone
from handlers import support_core as core
from handlers.faq import SERVICE
from handlers.faq_staff import start_search
from handlers.support.report import check_answer, me
from handlers.support_core import ACTIVE, Chat, StaffVerb, TicketPress
from storage.ids import id_of
from storage.models import Member, Ticket, TicketStatus, Unit

log = logging.getLogger("sotay.support")

MAX_FAQ_ID = 36  # an FAQ entry id must fit in a button's 64 bytes with the ticket id
FAQ_SHOWN = 4


class ReplyState(TypedDict, total=False):
    lang: str
    ticket_id: int


reply_flow: dialogs.Flow[ReplyState] = dialogs.flow("sup_reply")


async def here(ctx: Ctx, ticket: Ticket) -> Chat:
    """Where the staff action came from: a private chat, or the ticket's topic in a staff group."""
    event = ctx.event
    group = await core.group_for_chat(ctx.session, event.channel, event.chat_ref)
    if group is None:  # a private chat (or a group that is no longer bound: never a dialog there)
        in_group = event.in_group or event.chat_ref != event.user_ref
        return Chat(event.channel, event.chat_ref, None, ctx.lang, in_group)
    thread = event.thread_ref
    if thread is None:
        topic = await core.topic_of(ctx.session, id_of(ticket), group)
        thread = topic.thread_ref if topic else None
    return Chat(event.channel, event.chat_ref, thread, ctx.lang, True)


async def on_ticket_action(ctx: Ctx, press: TicketPress) -> None:
    """A button of a ticket's card; the actor is checked against the ticket's cell here."""
    ticket = await ctx.session.get(Ticket, press.ticket_id)
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if ticket is None or cell is None or not core.may(ctx.actor, press.verb.permission, cell):
        log.warning("ticket.denied id=%s verb=%s", press.ticket_id, press.verb.value)
        ctx.reply(ctx.t("common.not_allowed"))
        return
    where = await here(ctx, ticket)
    await STAFF_VERBS[press.verb](ctx, ticket, where, press)


def say(ctx: Ctx, where: Chat, view: View | str) -> None:
    """Send to where the action came from (a staff group's topic included)."""
    view = View(view) if isinstance(view, str) else view
    view.thread_ref = where.thread_ref
    ctx.services.outbox.add(ctx.session, channel=where.channel, chat_ref=where.chat_ref, view=view)


async def _view(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    say(ctx, where, await core.card_view(ctx, ticket, ctx.lang, full=True, group=where.group))
    for file_ref in await core.ticket_photos(ctx.session, ticket):  # staff see every photo
        say(ctx, where, core.photo_view(ctx.lang, ticket, file_ref))


async def _phone(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    """The member's phone, on demand, only to the staff member who asked, in private."""
    member = await ctx.session.get(Member, ticket.member_id) if ticket.member_id else None
    phone = display_phone(member.phone) if member and member.phone else "—"
    text = ctx.t("sup.staff.phone", id=ticket.id, phone=phone)
    if not where.group:
        say(ctx, where, text)
        return
    if await ctx.notify_member(
        me(ctx), lambda lang: View(t(lang, "sup.staff.phone", id=ticket.id, phone=phone))
    ):
        say(ctx, where, ctx.t("sup.staff.phone_sent"))
    else:
        say(ctx, where, ctx.t("sup.staff.phone_no_chat"))


async def _claim(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    outcome = await core.claim(ctx, ticket)
    if outcome == "taken":
        claimer = await ctx.session.get(Member, ticket.claimed_by)
        name = (claimer.full_name if claimer else None) or "—"
        say(ctx, where, ctx.t("sup.staff.taken", id=ticket.id, name=name))
    elif outcome == "closed":
        say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))
    else:
        say(ctx, where, ctx.t(f"sup.staff.claimed_{outcome}", id=ticket.id))


async def _reply(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    if ticket.status == TicketStatus.closed:
        say(ctx, where, ctx.t("sup.staff.closed", id=ticket.id))
    elif where.group:
        key = "sup.staff.reply_in_topic" if where.thread_ref else "sup.staff.reply_to_message"
        say(ctx, where, ctx.t(key, id=ticket.id))
    else:
        data: ReplyState = {"lang": ctx.lang, "ticket_id": id_of(ticket)}
        await dialogs.start(ctx, reply_flow, "text", data)


async def _faq_index(ctx: Ctx) -> FaqIndex | None:
    """The FAQ matcher over the entries in the database (including those edited with /faqedit);
    None when the FAQ cannot be loaded (the button says so)."""
    try:
        return await SERVICE.index(ctx.session, ctx.now)
    except Exception:  # noqa: BLE001 - the FAQ is optional for support
        log.warning("support.faq_unavailable", exc_info=True)
        return None


def _question(entry: FaqEntry, lang: str) -> str:
    question = (entry.questions.get(lang) or entry.questions["vi"])[0]
    return question if len(question) <= 60 else question[:59] + "…"


async def _faq(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    """The FAQ entries closest to what the member wrote, as buttons that send one."""
    if ticket.status == TicketStatus.closed:
        say(ctx, where, ctx.t("sup.staff.closed", id=ticket.id))
        return
    index = await _faq_index(ctx)
    asked = " ".join(
        m.text for m in await core.history(ctx.session, id_of(ticket)) if m.role == "member"
    )
    ranked = index.rank(asked)[:8] if index is not None and asked.strip() else []
    buttons: list[list[Choice]] = []
    for entry_id, score in ranked:
        assert index is not None  # ranked is empty without an index
        if score < index.suggest_threshold or len(entry_id) > MAX_FAQ_ID:
            continue
        if len(buttons) == FAQ_SHOWN:
            break
        send = TicketPress(id_of(ticket), StaffVerb.faq_send, entry_id)
        buttons.append([ctx.button(_question(index.kb.get(entry_id), ctx.lang), send)])
    search_press = TicketPress(id_of(ticket), StaffVerb.faq_search)
    search = [] if where.group else [[ctx.button(ctx.t("faqstaff.search"), search_press)]]
    if not buttons:
        say(ctx, where, View(ctx.t("sup.staff.faq_none", id=ticket.id), search))
        return
    say(ctx, where, View(ctx.t("sup.staff.faq_pick", id=ticket.id), buttons + search))


async def _faq_search(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    """Search the FAQ by typing (handlers/faq_staff.py); private chats only."""
    if where.group or ticket.status == TicketStatus.closed:
        say(ctx, where, ctx.t("common.stale_button"))
        return
    await start_search(ctx, id_of(ticket))


async def _faq_send(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    index = await _faq_index(ctx)
    try:
        entry = index.kb.get(press.entry_id) if index is not None and press.entry_id else None
    except KeyError:
        entry = None
    if entry is None:
        say(ctx, where, ctx.t("common.stale_button"))
        return
    member = await ctx.session.get(Member, ticket.member_id)
    lang = member.language if member and member.language in entry.answer else "vi"
    text = f"{entry.questions[lang][0]}\n{entry.answer[lang]}"
    if await core.staff_answer(ctx, ticket, text=text, attachment=None, where=where):
        # An FAQ answer is a complete one: ask the member instead of leaving the ticket in the
        # queue to escalate; "not yet" reopens it for staff with a new deadline.
        await core.resolve(ctx, ticket, by_faq=True)


async def _db(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    key = "sup.staff.db_marked" if await core.mark_db(ctx, ticket) else "sup.staff.db_already"
    say(ctx, where, ctx.t(key, id=ticket.id))


async def _done(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    key = "sup.staff.resolved" if await core.resolve(ctx, ticket) else "sup.staff.not_open"
    say(ctx, where, ctx.t(key, id=ticket.id))


async def _hand(ctx: Ctx, ticket: Ticket, where: Chat, press: TicketPress) -> None:
    """Hand the ticket to the staffed unit above (``up``) or back below (``down``)."""
    up = press.verb == StaffVerb.up
    if ticket.status not in ACTIVE:
        say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))
        return
    if up:
        unit = await ctx.session.get(Unit, ticket.unit_id)
        target = await core.unit_above(ctx.session, unit) if unit else None
    else:
        target = await core.unit_below(ctx.session, ticket)
    if target is None:
        say(ctx, where, ctx.t("sup.staff.no_above" if up else "sup.staff.no_below", id=ticket.id))
        return
    reason = "up" if up else "down"
    if await core.move(ctx, ticket, target, reason=reason, quiet=(where.channel, where.chat_ref)):
        say(ctx, where, ctx.t(f"sup.staff.moved_{reason}", id=ticket.id, unit=target.name))
    else:
        say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))


STAFF_VERBS: dict[StaffVerb, Callable[[Ctx, Ticket, Chat, TicketPress], Awaitable[None]]] = {
    StaffVerb.view: _view,
    StaffVerb.phone: _phone,
    StaffVerb.claim: _claim,
    StaffVerb.reply: _reply,
    StaffVerb.faq: _faq,
    StaffVerb.faq_send: _faq_send,
    StaffVerb.faq_search: _faq_search,
    StaffVerb.db: _db,
    StaffVerb.done: _done,
    StaffVerb.up: _hand,
    StaffVerb.down: _hand,
}


@reply_flow.ask("text")
async def ask_reply(ctx: Ctx, s: ReplyState) -> Prompt:
    return Prompt(ctx.t("sup.staff.reply_prompt", id=s["ticket_id"]), free_text=True)


@reply_flow.answer("text")
async def on_reply(ctx: Ctx, s: ReplyState, a: Answer) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if ticket is None or cell is None or not core.may(ctx.actor, "reply", cell):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    problem = check_answer(ctx, a, min_chars=1)
    if problem:
        return problem
    where = Chat(ctx.event.channel, ctx.event.chat_ref, None, ctx.lang, False)
    await core.staff_answer(
        ctx, ticket, text=(a.text or "").strip(), attachment=a.attachment, where=where
    )
    return None
