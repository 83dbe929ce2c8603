"""A member reports a difficulty: the "report" conversation, and free text while a ticket is open.

«Báo khó khăn» in the menu or /support → category → description (a screenshot is welcome) → a
ticket number. Further free text while a ticket is open goes to it (asked once where, when there
are several or the member has not said yet); a messenger reply to a message about a ticket is
relayed without asking, for the member and for staff alike.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, TypedDict

from bot import dialogs
from bot.callbacks import OpenCommand
from bot.context import Ctx
from bot.core import Attachment, Choice, View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from handlers import support_core as core
from handlers.support_core import CATEGORIES, Chat, MemberPress, MemberVerb
from storage.ids import id_of
from storage.models import Member, Ticket, Unit

log = logging.getLogger("sotay.support")


class SupportState(TypedDict, total=False):
    lang: str
    text: str  # what the member wrote (or asked the FAQ)
    category: str  # one of CATEGORIES
    attachment: dict[str, Any] | None  # an ``Attachment`` as a dict (the state is JSON)
    active: list[int]  # the member's open tickets, newest first (step "existing")
    ticket_id: int  # the ticket further text goes to (step "more")


support_flow: dialogs.Flow[SupportState] = dialogs.flow("support")


def me(ctx: Ctx) -> Member:
    """The registered member acting (every support handler requires one)."""
    assert ctx.actor.member is not None
    return ctx.actor.member


def check_answer(ctx: Ctx, a: Answer, *, min_chars: int = 3) -> Retry | None:
    """Why a description (or an answer) cannot be taken as it is, or None."""
    key, values = core.attachment_problem(ctx.settings, a.attachment)
    if key:
        return Retry(key, values)
    text = (a.text or "").strip()
    if not text and a.attachment is None:
        return Retry("sup.describe_empty")
    if a.attachment is None and len(text) < min_chars:
        return Retry("sup.describe_short")
    return None


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
    data: SupportState = {"lang": ctx.lang}
    if text:
        data["text"] = text[: core.MAX_TEXT]
    if category in CATEGORIES:
        data["category"] = category
    active = await core.active_tickets(ctx.session, id_of(member))
    if active:
        data["active"] = [id_of(ticket) for ticket in active[:3]]
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
    if await core.tickets_today(ctx, id_of(me(ctx))) < limit:
        return False
    ctx.reply(ctx.t("sup.limit", n=limit))
    log.info("ticket.limit member=%s", me(ctx).id)
    return True


@support_flow.ask("existing")
async def ask_existing(ctx: Ctx, s: SupportState) -> Prompt:
    ids = s["active"]
    options = [Option(f"add:{i}", ctx.t("sup.add_to", id=i)) for i in ids]
    options.append(Option("new", ctx.t("sup.new_ticket")))
    return Prompt(ctx.t("sup.has_open", ids=", ".join(f"#{i}" for i in ids)), options)


@support_flow.answer("existing")
async def on_existing(ctx: Ctx, s: SupportState, a: Answer) -> Next:
    if a.value and a.value.startswith("add:") and a.value[4:].isdigit():
        s["ticket_id"] = int(a.value[4:])
        if s.get("text"):
            return await _add(ctx, s, s["text"], None)
        return "more"
    if await over_limit(ctx):
        return None
    return await _after_category(ctx, s) if s.get("category") else "category"


@support_flow.ask("category")
async def ask_category(ctx: Ctx, s: SupportState) -> Prompt:
    return Prompt(ctx.t("sup.ask_category"), [Option(c, ctx.t(f"sup.cat.{c}")) for c in CATEGORIES])


@support_flow.answer("category")
async def on_category(ctx: Ctx, s: SupportState, a: Answer) -> Next:
    s["category"] = a.value if a.value in CATEGORIES and a.value else "other"
    return await _after_category(ctx, s)


async def _after_category(ctx: Ctx, s: SupportState) -> Next:
    if s.get("text") or s.get("attachment"):
        return await _create(ctx, s)
    return "describe"


@support_flow.ask("describe")
async def ask_describe(ctx: Ctx, s: SupportState) -> Prompt:
    return Prompt(ctx.t("sup.ask_describe"), free_text=True)


@support_flow.answer("describe")
async def on_describe(ctx: Ctx, s: SupportState, a: Answer) -> Next:
    problem = check_answer(ctx, a)
    if problem:
        return problem
    s["text"] = (a.text or "").strip()
    s["attachment"] = asdict(a.attachment) if a.attachment else None
    return await _create(ctx, s)


async def _create(ctx: Ctx, s: SupportState) -> Next:
    if await over_limit(ctx):
        return None
    attachment = s.get("attachment")
    ticket = await core.open_ticket(
        ctx,
        me(ctx),
        category=s.get("category") or "other",
        text=s.get("text") or "",
        attachment=Attachment(**attachment) if attachment else None,
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
            [[ctx.button(ctx.t("sup.btn.my_tickets"), OpenCommand("tickets"))]],
        )
    )
    return None


@support_flow.ask("more")
async def ask_more(ctx: Ctx, s: SupportState) -> Prompt:
    return Prompt(ctx.t("sup.ask_more", id=s["ticket_id"]), free_text=True)


@support_flow.answer("more")
async def on_more(ctx: Ctx, s: SupportState, a: Answer) -> Next:
    problem = check_answer(ctx, a, min_chars=1)
    if problem:
        return problem
    return await _add(ctx, s, (a.text or "").strip(), a.attachment)


async def _add(ctx: Ctx, s: SupportState, text: str, attachment: Attachment | None) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    if ticket is None or ticket.member_id != me(ctx).id:
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    ticket.member_adds = True
    ctx.session.add(ticket)
    await core.add_member_message(ctx, ticket, text=text, attachment=attachment)
    return None


# --- free text while a ticket is open -------------------------------------------------------------


async def on_free_text(ctx: Ctx, text: str) -> bool:
    """Free text outside a dialog (stage TICKETS): taken when it is about a ticket."""
    member = ctx.actor.member
    if not ctx.actor.registered or member is None:
        return False
    if await _reply_to_ticket(ctx, text):
        return True
    active = await core.active_tickets(ctx.session, id_of(member))
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
    if audience == "member" and ticket.member_id == me(ctx).id:
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
        ctx, newest, role="draft", text=text, author_id=me(ctx).id, attachment=attachment
    )
    await ctx.session.flush()

    def row(label: str, ticket: Ticket, verb: MemberVerb) -> list[Choice]:
        return [ctx.button(label, MemberPress(id_of(ticket), verb, id_of(draft)))]

    rows = [row(ctx.t("sup.add_to", id=tk.id), tk, MemberVerb.add) for tk in active[:3]]
    rows.append(row(ctx.t("sup.new_ticket"), newest, MemberVerb.new))
    rows.append(row(ctx.t("sup.not_ticket"), newest, MemberVerb.not_ticket))
    ids = ", ".join(f"#{tk.id}" for tk in active[:3])
    ctx.reply(View(ctx.t("sup.route_question", ids=ids), rows))
