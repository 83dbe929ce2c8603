"""Who hears about a ticket and how: the member's and staff's chats (private, or a forum topic of
the unit's staff group), announcements, card refreshes. Everything goes through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import col, select

from bot.context import Ctx
from bot.core import Choice, View
from bot.i18n import pick_language, t
from bot.scheduler import schedule
from handlers.support_core.buttons import MemberPress, MemberVerb
from handlers.support_core.policy import Note
from handlers.support_core.queries import group_for_chat, group_for_unit, staff_of, topic_of
from handlers.support_core.render import card_view
from storage import queries
from storage.ids import id_of
from storage.models import (
    Member,
    OutboxMessage,
    StaffGroup,
    Ticket,
    TicketPost,
    TicketTopic,
)

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
    """Queue a message to every reachable account of the ticket's member; [] when none (also
    for a ticket whose member used /forget)."""
    if ticket.member_id is None:
        return []
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
    return [[ctx.button(t(lang, "sup.btn.solved"), MemberPress(id_of(ticket), MemberVerb.solved))]]
