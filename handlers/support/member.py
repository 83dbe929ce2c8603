"""The ticket's own member: the buttons under staff answers, rating, and /tickets.

Buttons are ``MemberPress`` (``a:sup:<ticket>:<verb>[:<number>]``); only the ticket's member may
press them, checked on every press.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypedDict

from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.core import Attachment, Choice, View
from bot.dialogs import Answer, Next, Option, Prompt
from bot.i18n import t
from handlers import faq
from handlers import support_core as core
from handlers.support.report import SupportState, me, over_limit, support_flow
from handlers.support_core import MemberPress, MemberVerb
from storage.ids import id_of
from storage.models import Ticket, TicketMessage, TicketStatus

log = logging.getLogger("sotay.support")

SCORES = range(1, 6)


class CommentState(TypedDict, total=False):
    lang: str
    ticket_id: int  # the ticket just rated


comment_flow: dialogs.Flow[CommentState] = dialogs.flow("sup_comment")


async def on_member_action(ctx: Ctx, press: MemberPress) -> None:
    """A press of the ticket's member; anyone else is refused."""
    ticket = await ctx.session.get(Ticket, press.ticket_id)
    member = ctx.actor.member
    if ticket is None or member is None or ticket.member_id != member.id:
        log.warning("ticket.member_denied id=%s", press.ticket_id)
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await MEMBER_VERBS[press.verb](ctx, ticket, press)


async def _take_draft(ctx: Ctx, press: MemberPress) -> tuple[str, Attachment | None] | None:
    """The text typed while tickets were open, taken out of its waiting draft; None, and the
    button answered as stale, when the draft is gone (or another's)."""
    draft = await ctx.session.get(TicketMessage, press.number) if press.number else None
    if draft is None or draft.role != "draft" or draft.author_id != me(ctx).id:
        ctx.reply(ctx.t("common.stale_button"))
        return None
    text = draft.text
    attachment = (
        Attachment(draft.attachment_kind, draft.attachment_ref, name=draft.attachment_name)
        if draft.attachment_kind and draft.attachment_ref
        else None
    )
    await ctx.session.delete(draft)
    await ctx.session.flush()
    return text, attachment


async def _draft_to_ticket(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if (draft := await _take_draft(ctx, press)) is None:
        return
    if ticket.status == TicketStatus.closed:
        ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
        return
    ticket.member_adds = True
    ctx.session.add(ticket)
    text, attachment = draft
    await core.add_member_message(ctx, ticket, text=text, attachment=attachment)


async def _draft_to_new_ticket(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if (draft := await _take_draft(ctx, press)) is None or await over_limit(ctx):
        return
    text, attachment = draft
    data: SupportState = {
        "lang": ctx.lang,
        "text": text,
        "attachment": asdict(attachment) if attachment else None,
    }
    await dialogs.start(ctx, support_flow, "category", data)


async def _draft_to_faq(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    """The member said the text was not about a ticket: a question for the assistant."""
    if (draft := await _take_draft(ctx, press)) is not None:
        await faq.on_question(ctx, draft[0])


async def _close(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if await core.close(ctx, ticket, by_member=True):
        await core.tell_staff(
            ctx, ticket, lambda c: View(t(c.lang, "sup.staff.member_closed", id=ticket.id))
        )
        ctx.reply(_rating_view(ctx, ticket))
    else:
        ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))


async def _unsolved(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if ticket.status != TicketStatus.resolved or not await core.reopen(ctx, ticket):
        ctx.reply(ctx.t("sup.member.not_resolved", id=ticket.id))
        return
    await core.tell_staff(
        ctx, ticket, lambda c: View(t(c.lang, "sup.staff.member_unsolved", id=ticket.id))
    )
    await _add_more(ctx, ticket)


async def _more(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if ticket.status == TicketStatus.closed:
        ctx.reply(ctx.t("sup.member.ticket_closed", id=ticket.id))
        return
    await _add_more(ctx, ticket)


async def _add_more(ctx: Ctx, ticket: Ticket) -> None:
    data: SupportState = {"lang": ctx.lang, "ticket_id": id_of(ticket)}
    await dialogs.start(ctx, support_flow, "more", data)


async def _rate(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    if press.number not in SCORES:
        ctx.reply(ctx.t("common.stale_button"))
        return
    if ticket.status != TicketStatus.closed or ticket.rating is not None:
        ctx.reply(ctx.t("sup.rate_done_before"))
        return
    ticket.rating = press.number
    ctx.session.add(ticket)
    log.info("ticket.rated id=%s rating=%s", ticket.id, ticket.rating)
    data: CommentState = {"lang": ctx.lang, "ticket_id": id_of(ticket)}
    await dialogs.start(ctx, comment_flow, "comment", data)


async def _skip(ctx: Ctx, ticket: Ticket, press: MemberPress) -> None:
    ctx.reply(ctx.t("sup.thanks"))


MEMBER_VERBS: dict[MemberVerb, Callable[[Ctx, Ticket, MemberPress], Awaitable[None]]] = {
    MemberVerb.add: _draft_to_ticket,
    MemberVerb.new: _draft_to_new_ticket,
    MemberVerb.not_ticket: _draft_to_faq,
    MemberVerb.solved: _close,
    MemberVerb.close: _close,
    MemberVerb.unsolved: _unsolved,
    MemberVerb.more: _more,
    MemberVerb.rate: _rate,
    MemberVerb.skip: _skip,
}


def _rating_view(ctx: Ctx, ticket: Ticket) -> View:
    """Scores in words as well as numbers ("Rất tốt (5)"), in the numbers' order, so a member
    may type "5", "rat tot" or "kem" as well as press."""
    ticket_id = id_of(ticket)
    stars = [
        [ctx.button(ctx.t(f"sup.rate.{n}"), MemberPress(ticket_id, MemberVerb.rate, n))]
        for n in SCORES
    ]
    skip = [ctx.button(ctx.t("sup.btn.skip"), MemberPress(ticket_id, MemberVerb.skip))]
    return View(ctx.t("sup.rate_ask", id=ticket.id), [*stars, skip])


@comment_flow.ask("comment")
async def ask_comment(ctx: Ctx, s: CommentState) -> Prompt:
    return Prompt(ctx.t("sup.ask_comment"), [Option("skip", ctx.t("sup.btn.skip"))], free_text=True)


@comment_flow.answer("comment")
async def on_comment(ctx: Ctx, s: CommentState, a: Answer) -> Next:
    ticket = await ctx.session.get(Ticket, s["ticket_id"])
    if a.value != "skip" and a.text and ticket is not None and ticket.member_id == me(ctx).id:
        ticket.rating_comment = a.text.strip()[:500]
        ctx.session.add(ticket)
    ctx.reply(ctx.t("sup.thanks"))
    return None


async def cmd_tickets(ctx: Ctx, args: str) -> None:
    """The member's last ten tickets; the open ones with "add more" and "close"."""
    stmt = (
        select(Ticket)
        .where(col(Ticket.member_id) == me(ctx).id)
        .order_by(col(Ticket.id).desc())
        .limit(10)
    )
    tickets = list((await ctx.session.exec(stmt)).all())
    if not tickets:
        ctx.reply(ctx.t("sup.tickets_none"))
        return
    lines = [ctx.t("sup.tickets_title")]
    rows: list[list[Choice]] = []
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
                    ctx.button(
                        ctx.t("sup.btn.more", id=ticket.id),
                        MemberPress(id_of(ticket), MemberVerb.more),
                    ),
                    ctx.button(
                        ctx.t("sup.btn.close", id=ticket.id),
                        MemberPress(id_of(ticket), MemberVerb.close),
                    ),
                ]
            )
    ctx.reply(View("\n".join(lines), rows))
