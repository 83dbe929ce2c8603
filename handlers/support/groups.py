"""Staff groups and the queue: /queue, /bindgroup and /unbindgroup, and answers written in a
group (in a ticket's forum topic, or as a reply to a ticket's message)."""

from __future__ import annotations

import logging
from typing import TypeGuard

from sqlalchemy import or_
from sqlmodel import col, select

from bot.channels.base import GroupDirectory, GroupPeople
from bot.context import Ctx
from bot.core import View
from bot.textfold import fold
from handlers import support_core as core
from handlers.support.report import me
from handlers.support.staff import say
from handlers.support_core import (
    ACTIVE,
    QUEUE_ROLES,
    STAFF_ROLES,
    Chat,
    GroupPress,
    GroupVerb,
    StaffVerb,
    TicketPress,
)
from storage import queries
from storage.ids import id_of
from storage.models import Member, StaffGroup, Ticket, TicketStatus, Unit

log = logging.getLogger("sotay.support")

QUEUE_SHOWN = 20


async def cmd_queue(ctx: Ctx, args: str) -> None:
    """Open tickets of the units the actor serves (a secretary: their cell), oldest first."""
    scopes = ctx.actor.scopes(*QUEUE_ROLES)
    thread = ctx.event.thread_ref
    if not scopes:
        ctx.reply(View(ctx.t("common.not_allowed"), thread_ref=thread))
        return
    inside = [queries.in_subtree(col(Unit.path), s.path) for s in scopes]
    stmt = (
        select(Ticket, Unit)
        .join(Unit, col(Unit.id) == col(Ticket.cell_id))
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
    buttons = [
        ctx.button(f"#{tk.id}", TicketPress(id_of(tk), StaffVerb.view))
        for tk, _ in rows[:QUEUE_SHOWN]
    ]
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
        ctx.button(ctx.t("sup.group.bind_yes"), GroupPress(GroupVerb.bind, id_of(unit))),
        ctx.button(ctx.t("sup.group.bind_no"), GroupPress(GroupVerb.cancel)),
    ]
    ctx.reply(View(ctx.t("sup.group.confirm", unit=unit.name, people=who), [buttons]))


async def group_people(ctx: Ctx) -> GroupPeople | None:
    """Who is in this group, where the channel can tell (the binder must know who will read)."""
    channel = ctx.services.channels.get(ctx.event.channel)
    if not _is_directory(channel):
        return None
    return await channel.group_people(ctx.event.chat_ref)


def _is_directory(channel: object) -> TypeGuard[GroupDirectory]:
    return hasattr(channel, "group_people")


async def on_group_action(ctx: Ctx, press: GroupPress) -> None:
    """``a:grp:bind:<unit>`` confirms a binding; checked again here, in this very group."""
    if press.verb == GroupVerb.cancel:
        ctx.reply(ctx.t("sup.group.bind_cancelled"))
        return
    unit = await ctx.session.get(Unit, press.unit_id) if press.unit_id is not None else None
    in_group = (
        ctx.event.in_group or ctx.event.chat_ref != ctx.event.user_ref
    )  # presses carry no flag
    if not in_group or unit is None or not ctx.actor.can_act_on(unit, *STAFF_ROLES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    event = ctx.event
    for stale in (
        await core.group_for_chat(ctx.session, event.channel, event.chat_ref),
        await core.group_for_unit(ctx.session, id_of(unit)),
    ):
        if stale is not None:
            await ctx.session.delete(stale)
    await ctx.session.flush()
    ctx.session.add(
        StaffGroup(
            unit_id=id_of(unit),
            channel=event.channel,
            chat_ref=event.chat_ref,
            bound_by=me(ctx).id,
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
        say(ctx, where, ctx.t("sup.group.not_relayed", id=ticket.id))
        return True
    key, values = core.attachment_problem(ctx.settings, event.attachment)
    if key:
        say(ctx, where, ctx.t(key, **values))
        return True
    await core.staff_answer(
        ctx, ticket, text=event.text or "", attachment=event.attachment, where=where
    )
    return True
