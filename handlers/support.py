"""Support: a member reports a difficulty as a ticket; staff answer; the answer comes back.

Members: «Báo khó khăn» in the menu or /support → category → description (a screenshot is
welcome) → a ticket number; further free text while a ticket is open goes to it (asked once);
staff answers arrive in their chat; they can reply, close and rate; /tickets lists their tickets.
Staff: cards with buttons ``a:tk:<id>:<verb>`` in private chats or in a forum topic of the unit's
staff group (bound with /bindgroup in the group); /queue lists open tickets, oldest first.

This module takes the TICKETS stage of the router's free-text and group pipelines: text about a
ticket is taken here, before the FAQ (TextStage.QUESTIONS) sees anything. The FAQ hands an
unsolved question over by calling ``start_report``. The rules and the moves of a ticket live in
``handlers.support_core``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select

from bot import dialogs
from bot.channels.base import GroupDirectory, GroupPeople
from bot.context import Ctx
from bot.core import Attachment, View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from bot.phones import display_phone
from bot.router import REGISTERED, Router, TextStage
from bot.textfold import fold
from handlers import faq
from handlers import support_core as core
from handlers.support_core import (
    ACTIVE,
    CATEGORIES,
    QUEUE_ROLES,
    STAFF_ROLES,
    VERBS,
    Chat,
)
from storage import queries
from storage.models import Member, StaffGroup, Ticket, TicketMessage, TicketStatus, Unit

log = logging.getLogger("sotay.support")

support_flow = dialogs.flow("support")
reply_flow = dialogs.flow("sup_reply")
comment_flow = dialogs.flow("sup_comment")

MAX_FAQ_ID = 36  # an FAQ entry id must fit in a button's 64 bytes with the ticket id
QUEUE_SHOWN = 20


def _attachment(data: dict[str, Any] | None) -> Attachment | None:
    return Attachment(**data) if data else None


def _me(ctx: Ctx) -> Member:
    assert ctx.actor.member is not None
    return ctx.actor.member


# --- member: reporting ----------------------------------------------------------------------------


async def cmd_support(ctx: Ctx, args: str) -> None:
    await start_report(ctx, text=args or None)


async def start_report(ctx: Ctx, *, text: str | None = None, category: str | None = None) -> None:
    """Open the "report a difficulty" conversation (also for the FAQ: "this did not help").

    ``text`` (the member's question) and ``category`` skip the steps that would ask for them.
    """
    member = ctx.actor.member
    if member is None or not ctx.actor.registered:
        ctx.reply(ctx.t("common.not_registered"))
        return
    if member.cell_id is None:
        ctx.reply(ctx.t("sup.no_cell"))
        return
    data: dict[str, Any] = {"lang": ctx.lang}
    if text:
        data["text"] = text[: core.MAX_TEXT]
    if category in CATEGORIES:
        data["category"] = category
    active = await core.active_tickets(ctx.session, member.id or 0)
    if active:
        data["active"] = [ticket.id for ticket in active[:3]]
        await dialogs.start(ctx, support_flow, "existing", data)
        return
    if await over_limit(ctx):
        return
    if "category" in data and "text" in data:  # nothing left to ask
        await _create(ctx, data)
        return
    await dialogs.start(ctx, support_flow, "describe" if "category" in data else "category", data)


async def over_limit(ctx: Ctx) -> bool:
    """True (and the member told so) when today's tickets reached SOTAY_TICKETS_PER_DAY."""
    limit = ctx.settings.tickets_per_day
    if await core.tickets_today(ctx, _me(ctx).id or 0) < limit:
        return False
    ctx.reply(ctx.t("sup.limit", n=limit))
    log.info("ticket.limit member=%s", _me(ctx).id)
    return True


@support_flow.ask("existing")
async def ask_existing(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    ids = s["active"]
    options = [Option(f"add:{i}", ctx.t("sup.add_to", id=i)) for i in ids]
    options.append(Option("new", ctx.t("sup.new_ticket")))
    return Prompt(ctx.t("sup.has_open", ids=", ".join(f"#{i}" for i in ids)), options)


@support_flow.answer("existing")
async def on_existing(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value and a.value.startswith("add:") and a.value[4:].isdigit():
        s["ticket_id"] = int(a.value[4:])
        if s.get("text"):
            return await _add(ctx, s, s["text"], None)
        return "more"
    if await over_limit(ctx):
        return None
    return await _after_category(ctx, s) if s.get("category") else "category"


@support_flow.ask("category")
async def ask_category(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("sup.ask_category"), [Option(c, ctx.t(f"sup.cat.{c}")) for c in CATEGORIES])


@support_flow.answer("category")
async def on_category(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    s["category"] = a.value if a.value in CATEGORIES else "other"
    return await _after_category(ctx, s)


async def _after_category(ctx: Ctx, s: dict[str, Any]) -> Next:
    if s.get("text") or s.get("attachment"):
        return await _create(ctx, s)
    return "describe"


@support_flow.ask("describe")
async def ask_describe(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("sup.ask_describe"), free_text=True)


def _check(ctx: Ctx, a: Answer, *, min_chars: int = 3) -> Retry | None:
    key, values = core.attachment_problem(ctx.settings, a.attachment)
    if key:
        return Retry(key, values)
    text = (a.text or "").strip()
    if not text and a.attachment is None:
        return Retry("sup.describe_empty")
    if a.attachment is None and len(text) < min_chars:
        return Retry("sup.describe_short")
    return None


@support_flow.answer("describe")
async def on_describe(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    problem = _check(ctx, a)
    if problem:
        return problem
    s["text"] = (a.text or "").strip()
    s["attachment"] = asdict(a.attachment) if a.attachment else None
    return await _create(ctx, s)


async def _create(ctx: Ctx, s: dict[str, Any]) -> Next:
    if await over_limit(ctx):
        return None
    ticket = await core.open_ticket(
        ctx,
        _me(ctx),
        category=s.get("category") or "other",
        text=s.get("text") or "",
        attachment=_attachment(s.get("attachment")),
    )
    unit = await ctx.session.get(Unit, ticket.unit_id)
    ctx.reply(
        View(
            ctx.t(
                "sup.created",
                id=ticket.id,
                unit=unit.name if unit else "—",
                due=core.when(ctx.settings, ticket.sla_due_at),
            ),
            [[ctx.button(ctx.t("sup.btn.my_tickets"), "a:cmd:tickets")]],
        )
    )
    return None


@support_flow.ask("more")
async def ask_more(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("sup.ask_more", id=s["ticket_id"]), free_text=True)


@support_flow.answer("more")
async def on_more(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    problem = _check(ctx, a, min_chars=1)
    if problem:
        return problem
    return await _add(ctx, s, (a.text or "").strip(), a.attachment)


async def _add(ctx: Ctx, s: dict[str, Any], text: str, attachment: Attachment | None) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    if ticket is None or ticket.member_id != _me(ctx).id:
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    ticket.member_adds = True
    ctx.session.add(ticket)
    await core.add_member_message(ctx, ticket, text=text, attachment=attachment)
    return None


# --- member: free text while a ticket is open -----------------------------------------------------


async def on_free_text(ctx: Ctx, text: str) -> bool:
    """Free text outside a dialog (stage TICKETS): taken when it is about a ticket."""
    member = ctx.actor.member
    if not ctx.actor.registered or member is None:
        return False
    if await _reply_to_ticket(ctx, text):
        return True
    active = await core.active_tickets(ctx.session, member.id or 0)
    if active:
        await _to_open_ticket(ctx, active, text)
        return True
    return False


async def _reply_to_ticket(ctx: Ctx, text: str) -> bool:
    """A messenger reply to a message about a ticket: relay it without asking."""
    event = ctx.event
    if not event.reply_to_ref:
        return False
    found = await core.ticket_of_post(
        ctx.session, event.channel, event.chat_ref, event.reply_to_ref
    )
    if found is None:
        return False
    ticket, audience = found
    key, values = core.attachment_problem(ctx.settings, event.attachment)
    if key:
        ctx.reply(ctx.t(key, **values))
        return True
    if audience == "member" and ticket.member_id == _me(ctx).id:
        await core.add_member_message(ctx, ticket, text=text, attachment=event.attachment)
        return True
    cell = await ctx.session.get(Unit, ticket.cell_id)
    if audience == "staff" and cell is not None and core.may(ctx.actor, "reply", cell):
        where = Chat(event.channel, event.chat_ref, None, ctx.lang, False)
        await core.staff_answer(ctx, ticket, text=text, attachment=event.attachment, where=where)
        return True
    return False


async def _to_open_ticket(ctx: Ctx, active: list[Ticket], text: str) -> None:
    attachment = ctx.event.attachment
    key, values = core.attachment_problem(ctx.settings, attachment)
    if key:
        ctx.reply(ctx.t(key, **values))
        return
    newest = active[0]
    if len(active) == 1 and newest.member_adds:
        await core.add_member_message(ctx, newest, text=text, attachment=attachment)
        return
    # Ask once where this goes; the text waits as a draft so nothing is lost meanwhile.
    draft = core.add_message(
        ctx, newest, role="draft", text=text, author_id=_me(ctx).id, attachment=attachment
    )
    await ctx.session.flush()
    rows = [
        [ctx.button(ctx.t("sup.add_to", id=tk.id), f"a:sup:{tk.id}:add:{draft.id}")]
        for tk in active[:3]
    ]
    rows.append([ctx.button(ctx.t("sup.new_ticket"), f"a:sup:{newest.id}:new:{draft.id}")])
    rows.append([ctx.button(ctx.t("sup.not_ticket"), f"a:sup:{newest.id}:faq:{draft.id}")])
    ids = ", ".join(f"#{tk.id}" for tk in active[:3])
    ctx.reply(View(ctx.t("sup.route_question", ids=ids), rows))


# --- member: buttons ------------------------------------------------------------------------------


async def on_member_action(ctx: Ctx, args: list[str]) -> None:
    """``a:sup:<ticket>:<verb>[:<arg>]``: only the ticket's own member may press these."""
    if len(args) < 2 or not args[0].isdigit():
        ctx.reply(ctx.t("common.stale_button"))
        return
    ticket = await ctx.session.get(Ticket, int(args[0]))
    member = ctx.actor.member
    if ticket is None or member is None or ticket.member_id != member.id:
        log.warning("ticket.member_denied id=%s", args[0])
        ctx.reply(ctx.t("common.not_allowed"))
        return
    verb, rest = args[1], args[2:]
    if verb in ("add", "new", "faq"):
        await _draft_choice(ctx, ticket, verb, rest)
    elif verb in ("solved", "close"):
        if await core.close(ctx, ticket, by_member=True):
            await core.tell_staff(
                ctx, ticket, lambda c: View(t(c.lang, "sup.staff.member_closed", id=ticket.id))
            )
            ctx.reply(_rating_view(ctx, ticket))
        else:
            ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
    elif verb == "unsolved":
        if ticket.status != TicketStatus.resolved or not await core.reopen(ctx, ticket):
            ctx.reply(ctx.t("sup.member.not_resolved", id=ticket.id))
            return
        await core.tell_staff(
            ctx, ticket, lambda c: View(t(c.lang, "sup.staff.member_unsolved", id=ticket.id))
        )
        await dialogs.start(ctx, support_flow, "more", {"lang": ctx.lang, "ticket_id": ticket.id})
    elif verb == "more":
        if ticket.status == TicketStatus.closed:
            ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
            return
        await dialogs.start(ctx, support_flow, "more", {"lang": ctx.lang, "ticket_id": ticket.id})
    elif verb == "rate" and rest and rest[0] in ("1", "2", "3", "4", "5"):
        if ticket.status != TicketStatus.closed or ticket.rating is not None:
            ctx.reply(ctx.t("sup.rate_done_before"))
            return
        ticket.rating = int(rest[0])
        ctx.session.add(ticket)
        log.info("ticket.rated id=%s rating=%s", ticket.id, ticket.rating)
        await dialogs.start(
            ctx, comment_flow, "comment", {"lang": ctx.lang, "ticket_id": ticket.id}
        )
    elif verb == "skip":
        ctx.reply(ctx.t("sup.thanks"))
    else:
        ctx.reply(ctx.t("common.stale_button"))


async def _draft_choice(ctx: Ctx, ticket: Ticket, verb: str, rest: list[str]) -> None:
    draft = (
        await ctx.session.get(TicketMessage, int(rest[0])) if rest and rest[0].isdigit() else None
    )
    if draft is None or draft.role != "draft" or draft.author_id != _me(ctx).id:
        ctx.reply(ctx.t("common.stale_button"))
        return
    text = draft.text
    attachment = (
        Attachment(draft.attachment_kind, draft.attachment_ref, name=draft.attachment_name)
        if draft.attachment_kind and draft.attachment_ref
        else None
    )
    await ctx.session.delete(draft)
    await ctx.session.flush()
    if verb == "add":
        if ticket.status == TicketStatus.closed:
            ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
            return
        ticket.member_adds = True
        ctx.session.add(ticket)
        await core.add_member_message(ctx, ticket, text=text, attachment=attachment)
    elif verb == "new":
        if await over_limit(ctx):
            return
        data = {
            "lang": ctx.lang,
            "text": text,
            "attachment": asdict(attachment) if attachment else None,
        }
        await dialogs.start(ctx, support_flow, "category", data)
    else:  # "not about a ticket": a question for the assistant after all
        await faq.on_question(ctx, text)


def _rating_view(ctx: Ctx, ticket: Ticket) -> View:
    """Scores in words as well as numbers ("Rất tốt (5)"), in the numbers' order, so a member
    may type "5", "rat tot" or "kem" as well as press."""
    stars = [
        [ctx.button(ctx.t(f"sup.rate.{n}"), f"a:sup:{ticket.id}:rate:{n}")] for n in range(1, 6)
    ]
    skip = [ctx.button(ctx.t("sup.btn.skip"), f"a:sup:{ticket.id}:skip")]
    return View(ctx.t("sup.rate_ask", id=ticket.id), [*stars, skip])


@comment_flow.ask("comment")
async def ask_comment(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("sup.ask_comment"), [Option("skip", ctx.t("sup.btn.skip"))], free_text=True)


@comment_flow.answer("comment")
async def on_comment(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    if a.value != "skip" and a.text and ticket is not None and ticket.member_id == _me(ctx).id:
        ticket.rating_comment = a.text.strip()[:500]
        ctx.session.add(ticket)
    ctx.reply(ctx.t("sup.thanks"))
    return None


async def cmd_tickets(ctx: Ctx, args: str) -> None:
    stmt = (
        select(Ticket)
        .where(Ticket.member_id == _me(ctx).id)
        .order_by(col(Ticket.id).desc())
        .limit(10)
    )
    tickets = list((await ctx.session.exec(stmt)).all())
    if not tickets:
        ctx.reply(ctx.t("sup.tickets_none"))
        return
    lines = [ctx.t("sup.tickets_title")]
    rows = []
    for ticket in tickets:
        lines.append(
            ctx.t(
                "sup.tickets_line",
                id=ticket.id,
                category=core.category_label(ctx.lang, ticket.category),
                status=ctx.t(f"sup.mystatus.{ticket.status.value}"),
                created=core.when(ctx.settings, ticket.created_at),
            )
        )
        if ticket.status != TicketStatus.closed and len(rows) < 5:
            rows.append(
                [
                    ctx.button(ctx.t("sup.btn.more", id=ticket.id), f"a:sup:{ticket.id}:more"),
                    ctx.button(ctx.t("sup.btn.close", id=ticket.id), f"a:sup:{ticket.id}:close"),
                ]
            )
    ctx.reply(View("\n".join(lines), rows))


# --- staff: buttons on a ticket -------------------------------------------------------------------


async def here(ctx: Ctx, ticket: Ticket) -> Chat:
    """Where the staff action came from: a private chat, or the ticket's topic in a staff group."""
    event = ctx.event
    group = await core.group_for_chat(ctx.session, event.channel, event.chat_ref)
    if group is None:  # a private chat (or a group that is no longer bound: never a dialog there)
        in_group = event.in_group or event.chat_ref != event.user_ref
        return Chat(event.channel, event.chat_ref, None, ctx.lang, in_group)
    thread = event.thread_ref
    if thread is None:
        topic = await core.topic_of(ctx.session, ticket.id or 0, group)
        thread = topic.thread_ref if topic else None
    return Chat(event.channel, event.chat_ref, thread, ctx.lang, True)


async def on_ticket_action(ctx: Ctx, args: list[str]) -> None:
    """``a:tk:<ticket>:<verb>[:<arg>]``; the actor is checked against the ticket's cell here."""
    if len(args) < 2 or not args[0].isdigit() or args[1] not in (*VERBS, "fq", "fs"):
        ctx.reply(ctx.t("common.stale_button"))
        return
    verb = args[1]
    ticket = await ctx.session.get(Ticket, int(args[0]))
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if (
        ticket is None
        or cell is None
        or not core.may(ctx.actor, "faq" if verb in ("fq", "fs") else verb, cell)
    ):
        log.warning("ticket.denied id=%s verb=%s", args[0], verb)
        ctx.reply(ctx.t("common.not_allowed"))
        return
    where = await here(ctx, ticket)
    await STAFF_VERBS[verb](ctx, ticket, where, args[2:])


def _say(ctx: Ctx, where: Chat, view: View | str) -> None:
    view = View(view) if isinstance(view, str) else view
    view.thread_ref = where.thread_ref
    ctx.services.outbox.add(ctx.session, channel=where.channel, chat_ref=where.chat_ref, view=view)


async def _view(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    _say(ctx, where, await core.card_view(ctx, ticket, ctx.lang, full=True, group=where.group))
    for file_ref in await core.ticket_photos(ctx.session, ticket):  # staff see every photo
        _say(ctx, where, core.photo_view(ctx.lang, ticket, file_ref))


async def _phone(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    """The member's phone, on demand, only to the staff member who asked, in private."""
    member = await ctx.session.get(Member, ticket.member_id) if ticket.member_id else None
    phone = display_phone(member.phone) if member and member.phone else "—"
    text = ctx.t("sup.staff.phone", id=ticket.id, phone=phone)
    if not where.group:
        _say(ctx, where, text)
        return
    if await ctx.notify_member(
        _me(ctx), lambda lang: View(t(lang, "sup.staff.phone", id=ticket.id, phone=phone))
    ):
        _say(ctx, where, ctx.t("sup.staff.phone_sent"))
    else:
        _say(ctx, where, ctx.t("sup.staff.phone_no_chat"))


async def _claim(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    outcome = await core.claim(ctx, ticket)
    if outcome == "taken":
        claimer = await ctx.session.get(Member, ticket.claimed_by)
        name = (claimer.full_name if claimer else None) or "—"
        _say(ctx, where, ctx.t("sup.staff.taken", id=ticket.id, name=name))
    elif outcome == "closed":
        _say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))
    else:
        _say(ctx, where, ctx.t(f"sup.staff.claimed_{outcome}", id=ticket.id))


async def _reply(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    if ticket.status == TicketStatus.closed:
        _say(ctx, where, ctx.t("sup.staff.closed", id=ticket.id))
    elif where.group:
        key = "sup.staff.reply_in_topic" if where.thread_ref else "sup.staff.reply_to_message"
        _say(ctx, where, ctx.t(key, id=ticket.id))
    else:
        await dialogs.start(ctx, reply_flow, "text", {"lang": ctx.lang, "ticket_id": ticket.id})


async def _faq_index(ctx: Ctx) -> Any:
    """The FAQ matcher over the entries in the database (including those edited with /faqedit);
    None when the FAQ cannot be loaded (the button says so)."""
    try:
        from handlers.faq import SERVICE

        return await SERVICE.index(ctx.session, ctx.now)
    except Exception:  # noqa: BLE001 - the FAQ is optional for support
        log.warning("support.faq_unavailable", exc_info=True)
        return None


async def _faq(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    if ticket.status == TicketStatus.closed:
        _say(ctx, where, ctx.t("sup.staff.closed", id=ticket.id))
        return
    index = await _faq_index(ctx)
    asked = " ".join(
        m.text for m in await core.history(ctx.session, ticket.id or 0) if m.role == "member"
    )
    ranked = index.rank(asked)[:8] if index is not None and asked.strip() else []
    threshold = getattr(index, "suggest_threshold", 0.3)
    buttons = []
    for entry_id, score in ranked:
        if score < threshold or len(entry_id) > MAX_FAQ_ID or len(buttons) == 4:
            continue
        question = (
            index.kb.get(entry_id).questions.get(ctx.lang) or index.kb.get(entry_id).questions["vi"]
        )
        label = question[0] if len(question[0]) <= 60 else question[0][:59] + "…"
        buttons.append([ctx.button(label, f"a:tk:{ticket.id}:fq:{entry_id}")])
    search = [] if where.group else [[ctx.button(ctx.t("faqstaff.search"), f"a:tk:{ticket.id}:fs")]]
    if not buttons:
        _say(ctx, where, View(ctx.t("sup.staff.faq_none", id=ticket.id), search))
        return
    _say(ctx, where, View(ctx.t("sup.staff.faq_pick", id=ticket.id), buttons + search))


async def _faq_search(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    """Search the FAQ by typing (handlers/faq_staff.py); private chats only."""
    if where.group or ticket.status == TicketStatus.closed:
        _say(ctx, where, ctx.t("common.stale_button"))
        return
    from handlers.faq_staff import start_search

    await start_search(ctx, ticket.id or 0)


async def _faq_send(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    index = await _faq_index(ctx)
    try:
        entry = index.kb.get(rest[0]) if index is not None and rest else None
    except KeyError:
        entry = None
    if entry is None:
        _say(ctx, where, ctx.t("common.stale_button"))
        return
    member = await ctx.session.get(Member, ticket.member_id)
    lang = member.language if member and member.language in entry.answer else "vi"
    text = f"{entry.questions[lang][0]}\n{entry.answer[lang]}"
    if await core.staff_answer(ctx, ticket, text=text, attachment=None, where=where):
        # An FAQ answer is a complete one: ask the member instead of leaving the ticket in the
        # queue to escalate; "not yet" reopens it for staff with a new deadline.
        await core.resolve(ctx, ticket, by_faq=True)


async def _db(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    key = "sup.staff.db_marked" if await core.mark_db(ctx, ticket) else "sup.staff.db_already"
    _say(ctx, where, ctx.t(key, id=ticket.id))


async def _done(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    key = "sup.staff.resolved" if await core.resolve(ctx, ticket) else "sup.staff.not_open"
    _say(ctx, where, ctx.t(key, id=ticket.id))


async def _hand(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str], *, up: bool) -> None:
    if ticket.status not in ACTIVE:
        _say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))
        return
    if up:
        unit = await ctx.session.get(Unit, ticket.unit_id)
        target = await core.unit_above(ctx.session, unit) if unit else None
    else:
        target = await core.unit_below(ctx.session, ticket)
    if target is None:
        _say(ctx, where, ctx.t("sup.staff.no_above" if up else "sup.staff.no_below", id=ticket.id))
        return
    reason = "up" if up else "down"
    if await core.move(ctx, ticket, target, reason=reason, quiet=(where.channel, where.chat_ref)):
        _say(ctx, where, ctx.t(f"sup.staff.moved_{reason}", id=ticket.id, unit=target.name))
    else:
        _say(ctx, where, ctx.t("sup.staff.not_open", id=ticket.id))


async def _up(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    await _hand(ctx, ticket, where, rest, up=True)


async def _down(ctx: Ctx, ticket: Ticket, where: Chat, rest: list[str]) -> None:
    await _hand(ctx, ticket, where, rest, up=False)


STAFF_VERBS: dict[str, Callable[[Ctx, Ticket, Chat, list[str]], Awaitable[None]]] = {
    "view": _view,
    "phone": _phone,
    "claim": _claim,
    "reply": _reply,
    "faq": _faq,
    "fq": _faq_send,
    "fs": _faq_search,
    "db": _db,
    "done": _done,
    "up": _up,
    "down": _down,
}


@reply_flow.ask("text")
async def ask_reply(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("sup.staff.reply_prompt", id=s["ticket_id"]), free_text=True)


@reply_flow.answer("text")
async def on_reply(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if ticket is None or cell is None or not core.may(ctx.actor, "reply", cell):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    problem = _check(ctx, a, min_chars=1)
    if problem:
        return problem
    where = Chat(ctx.event.channel, ctx.event.chat_ref, None, ctx.lang, False)
    await core.staff_answer(
        ctx, ticket, text=(a.text or "").strip(), attachment=a.attachment, where=where
    )
    return None


# --- staff: queue and groups ----------------------------------------------------------------------


async def cmd_queue(ctx: Ctx, args: str) -> None:
    """Open tickets of the units the actor serves (a secretary: their cell), oldest first."""
    scopes = ctx.actor.scopes(*QUEUE_ROLES)
    thread = ctx.event.thread_ref
    if not scopes:
        ctx.reply(View(ctx.t("common.not_allowed"), thread_ref=thread))
        return
    inside = [queries.in_subtree(Unit.path, s.path) for s in scopes]
    stmt = (
        select(Ticket, Unit)
        .join(Unit, col(Unit.id) == Ticket.cell_id)
        .where(col(Ticket.status).in_(ACTIVE), or_(*inside))
        .order_by(col(Ticket.created_at), col(Ticket.id))
    )
    rows = list((await ctx.session.exec(stmt)).all())
    if not rows:
        ctx.reply(View(ctx.t("sup.queue.empty"), thread_ref=thread))
        return
    lines = [ctx.t("sup.queue.title", n=len(rows))]
    for ticket, cell in rows[:QUEUE_SHOWN]:
        if ticket.status == TicketStatus.claimed:
            claimer = await ctx.session.get(Member, ticket.claimed_by)
            state = ctx.t("sup.queue.claimed", name=(claimer.full_name if claimer else None) or "—")
        elif ticket.sla_due_at is not None and ticket.sla_due_at <= ctx.now:
            state = ctx.t("sup.queue.overdue")
        else:
            state = ctx.t("sup.queue.due", due=core.when(ctx.settings, ticket.sla_due_at))
        lines.append(
            ctx.t(
                "sup.queue.line",
                id=ticket.id,
                age=core.duration_text(ctx.lang, ctx.now - (ticket.created_at or ctx.now)),
                category=core.category_label(ctx.lang, ticket.category),
                cell=cell.name,
                state=state,
            )
        )
    if len(rows) > QUEUE_SHOWN:
        lines.append(ctx.t("sup.queue.more", n=len(rows) - QUEUE_SHOWN))
    buttons = [ctx.button(f"#{tk.id}", f"a:tk:{tk.id}:view") for tk, _ in rows[:QUEUE_SHOWN]]
    choices = [buttons[i : i + 4] for i in range(0, len(buttons), 4)]
    ctx.reply(View("\n".join(lines), choices, thread_ref=thread))


async def cmd_bindgroup(ctx: Ctx, args: str) -> None:
    """In a group: make it the staff group of a unit the actor serves (``/bindgroup [name]``)."""
    scopes = ctx.actor.scopes(*STAFF_ROLES)
    if args.strip():
        found = await queries.search_units(ctx.session, folded_query=fold(args), limit=20)
        candidates = [u for u in found if ctx.actor.can_act_on(u, *STAFF_ROLES)]
    else:
        candidates = scopes
    if len(candidates) != 1:
        names = ", ".join(u.name for u in candidates[:8]) or "—"
        key = "sup.group.which" if candidates else "sup.group.no_unit"
        ctx.reply(ctx.t(key, units=names))
        return
    unit = candidates[0]
    people = await group_people(ctx)
    if people is None or people.count is None:
        who = ctx.t("sup.group.people_unknown")
    else:
        names = ", ".join(people.named[:10]) or "—"
        who = ctx.t("sup.group.people", n=people.count, admins=names)
    buttons = [
        ctx.button(ctx.t("sup.group.bind_yes"), f"a:grp:bind:{unit.id}"),
        ctx.button(ctx.t("sup.group.bind_no"), "a:grp:no"),
    ]
    ctx.reply(View(ctx.t("sup.group.confirm", unit=unit.name, people=who), [buttons]))


async def group_people(ctx: Ctx) -> GroupPeople | None:
    """Who is in this group, where the channel can tell (the binder must know who will read)."""
    channel = ctx.services.channels.get(ctx.event.channel)
    if channel is None or not hasattr(channel, "group_people"):
        return None
    directory: GroupDirectory = channel
    return await directory.group_people(ctx.event.chat_ref)


async def on_group_action(ctx: Ctx, args: list[str]) -> None:
    """``a:grp:bind:<unit>`` confirms a binding; checked again here, in this very group."""
    if args == ["no"]:
        ctx.reply(ctx.t("sup.group.bind_cancelled"))
        return
    unit = None
    if len(args) == 2 and args[0] == "bind" and args[1].isdigit():
        unit = await ctx.session.get(Unit, int(args[1]))
    in_group = (
        ctx.event.in_group or ctx.event.chat_ref != ctx.event.user_ref
    )  # presses carry no flag
    if not in_group or unit is None or not ctx.actor.can_act_on(unit, *STAFF_ROLES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    event = ctx.event
    for stale in (
        await core.group_for_chat(ctx.session, event.channel, event.chat_ref),
        await core.group_for_unit(ctx.session, unit.id or 0),
    ):
        if stale is not None:
            await ctx.session.delete(stale)
    await ctx.session.flush()
    ctx.session.add(
        StaffGroup(
            unit_id=unit.id or 0,
            channel=event.channel,
            chat_ref=event.chat_ref,
            bound_by=_me(ctx).id,
            bound_at=ctx.now,
        )
    )
    log.info("staffgroup.bound unit=%s", unit.id)
    ctx.reply(ctx.t("sup.group.bound", unit=unit.name))


async def cmd_unbindgroup(ctx: Ctx, args: str) -> None:
    group = await core.group_for_chat(ctx.session, ctx.event.channel, ctx.event.chat_ref)
    unit = await ctx.session.get(Unit, group.unit_id) if group else None
    if group is None or unit is None:
        ctx.reply(ctx.t("sup.group.not_bound"))
        return
    if not ctx.actor.can_act_on(unit, *STAFF_ROLES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await ctx.session.delete(group)
    log.info("staffgroup.unbound unit=%s", unit.id)
    ctx.reply(ctx.t("sup.group.unbound", unit=unit.name))


async def on_group_message(ctx: Ctx) -> bool:
    """A message in a staff group: written in a ticket's topic, or a reply to a ticket message,
    it is the answer to relay. Anything else is chatter, not ours (False)."""
    event = ctx.event
    group = await core.group_for_chat(ctx.session, event.channel, event.chat_ref)
    ticket = None
    if group is not None and event.thread_ref:
        ticket = await core.ticket_of_topic(
            ctx.session, event.channel, event.chat_ref, event.thread_ref
        )
    if group is not None and ticket is None and event.reply_to_ref:
        found = await core.ticket_of_post(
            ctx.session, event.channel, event.chat_ref, event.reply_to_ref
        )
        ticket = found[0] if found and found[1] == "staff" else None
    if ticket is None:
        return False
    where = Chat(event.channel, event.chat_ref, event.thread_ref, ctx.lang, True)
    cell = await ctx.session.get(Unit, ticket.cell_id)
    if cell is None or not core.may(ctx.actor, "reply", cell):
        log.info("ticket.group_not_relayed id=%s", ticket.id)
        _say(ctx, where, ctx.t("sup.group.not_relayed", id=ticket.id))
        return True
    key, values = core.attachment_problem(ctx.settings, event.attachment)
    if key:
        _say(ctx, where, ctx.t(key, **values))
        return True
    await core.staff_answer(
        ctx, ticket, text=event.text or "", attachment=event.attachment, where=where
    )
    return True


def setup(router: Router) -> None:
    router.free_text(TextStage.TICKETS)(on_free_text)
    router.group_text(TextStage.TICKETS)(on_group_message)
    router.command("support", requires=REGISTERED)(cmd_support)
    router.command("tickets", requires=REGISTERED)(cmd_tickets)
    router.command("queue", requires=QUEUE_ROLES)(cmd_queue)
    router.action("tk", requires=REGISTERED)(on_ticket_action)
    router.action("sup", requires=REGISTERED)(on_member_action)
    router.group_command("bindgroup", requires=STAFF_ROLES)(cmd_bindgroup)
    router.group_command("unbindgroup", requires=STAFF_ROLES)(cmd_unbindgroup)
    router.action("grp", requires=STAFF_ROLES)(on_group_action)
    router.group_command("queue", requires=QUEUE_ROLES)(cmd_queue)
