"""Timed work of tickets as due-work rows: the SLA escalation, forum-topic creation (after the
job's commit), the check that an answer was delivered, and auto-closing resolved tickets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from bot.channels.base import Blocked, Rejected, RetryLater
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.scheduler import JobResult, done, job, schedule, skip
from handlers.support_core.moves import close, move
from handlers.support_core.notify import Chat, announce, post, tell_member
from handlers.support_core.policy import (
    DELIVERY_CHECK_AFTER,
    DELIVERY_CHECKS,
    TOPIC_TIMEOUT,
    TOPIC_TRIES,
    Note,
    log,
    sla_deadline,
)
from handlers.support_core.queries import (
    add_message,
    group_for_chat,
    lock_ticket,
    staff_of,
    unit_above,
)
from handlers.support_core.render import card_view, category_label
from storage import queries
from storage.db import Database
from storage.models import (
    DueJob,
    JobStatus,
    OutboxMessage,
    OutboxStatus,
    Role,
    StaffGroup,
    Ticket,
    TicketStatus,
    TicketTopic,
    Unit,
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
    view = View(text(lang, work.ref_id or 0), thread_ref=thread_ref)
    if notice is not None and ctx.services.caps(channel).edits:
        view.edit_of = int(notice)
    ctx.services.outbox.add(ctx.session, channel=channel, chat_ref=chat_ref, view=view)


@job("ticket_autoclose")
async def on_autoclose(ctx: Ctx, work: DueJob) -> JobResult:
    ticket = await lock_ticket(ctx.session, work.ref_id or 0)
    if ticket is None or ticket.status != TicketStatus.resolved:
        return skip("not resolved")
    await close(ctx, ticket, by_member=False)
    return done("closed")
