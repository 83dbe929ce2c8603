"""A member's rights over their data: see all of it (/me, as text and as a JSON file), erase it
(/forget), and the retention that keeps the outbox from becoming an archive of messages.

Erasing means every table: after ``forget_member`` no column anywhere holds the member's name,
phone, member code, messenger ids or the texts they wrote. Rows that count something for the
reports stay, pointing at the emptied member row (an internal number that identifies nobody).
Messages already delivered to other people's chats cannot be recalled from their phones: they
are counted and the member is told so. See docs/privacy.md for the full inventory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import scheduler
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.phones import display_phone
from bot.scheduler import JobResult, done
from handlers.membership import CONSENT_VERSION
from handlers.support_core import (
    ACTIVE,
    close,
    forget_tickets,
    release_claims,
    tell_staff,
)
from handlers.support_core.notify import Chat
from storage.faq_models import FaqQuery
from storage.ids import id_of
from storage.models import (
    Application,
    Attendance,
    Broadcast,
    ChannelAccount,
    ConsentRecord,
    Dialog,
    DueJob,
    IdentityAttempt,
    Invite,
    Meeting,
    MeetingReply,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxStatus,
    PendingChoices,
    RoleGrant,
    StaffGroup,
    Ticket,
    TicketMessage,
    TicketPost,
    TicketStatus,
    Unit,
)

log = logging.getLogger("sotay.privacy")
REDACTED = "[…]"
MIN_REDACTED_TEXT = 4  # shorter texts ("ốm") identify nobody and would mangle other messages
PURGE_KIND = "outbox_purge"


ForgetHook = Callable[[AsyncSession, int], Awaitable[None]]
AboutHook = Callable[[AsyncSession, int], Awaitable[dict[str, Any]]]
FORGET_HOOKS: list[ForgetHook] = []
ABOUT_HOOKS: list[AboutHook] = []


def forgets(fn: ForgetHook) -> ForgetHook:
    """A feature module's own erasure: called by ``forget_member`` with the member's id, so a
    feature with its own tables erases them without this module naming them."""
    FORGET_HOOKS.append(fn)
    return fn


def tells_about(fn: AboutHook) -> AboutHook:
    """A feature module's part of /me: its keys are added to ``stored_about``."""
    ABOUT_HOOKS.append(fn)
    return fn


@dataclass
class Forgotten:
    """What /forget did, for the member's receipt."""

    redacted_elsewhere: int = 0  # queued or kept messages to others that named the member
    not_recallable: int = 0  # of those, already delivered to someone's phone
    tickets_withdrawn: int = 0


# --- what identifies the member -------------------------------------------------------------------


def phone_forms(phone: str | None) -> list[str]:
    """+84912000001, 0912000001 and 0912 000 001: the ways a number appears in texts."""
    if not phone:
        return []
    forms = [phone, display_phone(phone)]
    if phone.startswith("+84"):
        forms.append("0" + phone[3:])
    return forms


async def written_texts(session: AsyncSession, member_id: int) -> list[str]:
    """Free texts the member wrote: ticket messages, absence reasons, FAQ questions, ratings."""
    texts: list[str] = []
    mine = select(Ticket.id).where(Ticket.member_id == member_id)
    stmt = select(TicketMessage.text).where(
        col(TicketMessage.ticket_id).in_(mine), TicketMessage.role == "member"
    )
    texts += list((await session.exec(stmt)).all())
    texts += [
        r
        for r in (
            await session.exec(select(Ticket.rating_comment).where(Ticket.member_id == member_id))
        ).all()
        if r
    ]
    for model in (MeetingReply, Attendance):
        reasons = select(col(model.reason)).where(col(model.member_id) == member_id)
        texts += [r for r in (await session.exec(reasons)).all() if r]
    stmt = select(FaqQuery.text).where(FaqQuery.asker_id == member_id)
    texts += list((await session.exec(stmt)).all())
    return [text for text in texts if len(text.strip()) >= MIN_REDACTED_TEXT]


def _needles(values: Iterable[str | None]) -> list[str]:
    """The values as they appear inside a JSON document (escaped), longest first."""
    found = {json.dumps(v, ensure_ascii=False)[1:-1] for v in values if v and v.strip()}
    return sorted(found, key=len, reverse=True)


def redact_payload(payload: dict[str, Any], needles: list[str]) -> dict[str, Any] | None:
    """The payload with every needle replaced, or None when it held none of them."""
    text = json.dumps(payload, ensure_ascii=False)
    changed = text
    for needle in needles:
        changed = changed.replace(needle, REDACTED)
    return json.loads(changed) if changed != text else None


# --- /forget --------------------------------------------------------------------------------------


async def forget_member(ctx: Ctx, member: Member) -> Forgotten:
    """Erase everything that identifies ``member``; keep only anonymous counts."""
    session, member_id = ctx.session, member.id or 0
    receipt = Forgotten()
    accounts = list(
        await session.exec(select(ChannelAccount).where(ChannelAccount.member_id == member_id))
    )
    chats = {(a.channel, a.chat_ref) for a in accounts}
    users = {(a.channel, a.user_ref) for a in accounts}
    needles = _needles(
        [
            member.full_name,
            member.member_code,
            *phone_forms(member.phone),
            *(await written_texts(session, member_id)),
        ]
    )
    refs = {ref for pair in chats | users for ref in pair[1:]}

    await release_claims(ctx, member_id)  # staff who leave: their tickets go back to the queue
    member.full_name = member.phone = member.member_code = member.language = None
    # Dates of installation could single a person out among a cell's anonymous answers.
    member.hb_installed_on = member.hb_activated_on = member.hb_updated_at = None
    member.status = MemberStatus.forgotten
    session.add(member)
    await session.flush()
    receipt.tickets_withdrawn = await _withdraw_tickets(ctx, member_id)
    await forget_tickets(session, member_id)
    await _erase_rows(session, member_id, chats, users)
    await _redact_outbox(session, member_id, chats, needles, refs, receipt)
    await _redact_offered_choices(session, needles)
    session.add(
        ConsentRecord(
            member_id=None,
            action="withdrawn",
            text_version=CONSENT_VERSION,
            channel=None,
            at=ctx.now,
        )
    )
    ctx.actor.account = ctx.actor.member = None
    ctx.actor.grants = []
    log.info(
        "member.forgotten redacted=%s not_recallable=%s withdrawn=%s",
        receipt.redacted_elsewhere,
        receipt.not_recallable,
        receipt.tickets_withdrawn,
    )
    return receipt


def _withdrawn_notice(ticket_id: int) -> Callable[[Chat], View]:
    def render(chat: Chat) -> View:
        return View(t(chat.lang, "privacy.ticket_withdrawn", id=ticket_id))

    return render


async def _withdraw_tickets(ctx: Ctx, member_id: int) -> int:
    """Open requests end with the member's wish: staff are told, the cards lose the name."""
    # A resolved ticket waits for the member's word, which can no longer come: withdrawn too.
    waiting = (*ACTIVE, TicketStatus.resolved)
    stmt = select(Ticket).where(Ticket.member_id == member_id, col(Ticket.status).in_(waiting))
    withdrawn = 0
    for ticket in list((await ctx.session.exec(stmt)).all()):
        if await close(ctx, ticket, by_member=True):
            withdrawn += 1
            await tell_staff(ctx, ticket, _withdrawn_notice(id_of(ticket)))
    return withdrawn


async def _erase_rows(
    session: AsyncSession,
    member_id: int,
    chats: set[tuple[str, str]],
    users: set[tuple[str, str]],
) -> None:
    """Delete or empty every row that is the member's or names them."""
    for channel, user_ref in users:
        for by_user in (Dialog, Application, IdentityAttempt):
            await session.exec(
                delete(by_user).where(
                    col(by_user.channel) == channel, col(by_user.user_ref) == user_ref
                )
            )
    for channel, chat_ref in chats:
        for by_chat in (PendingChoices, TicketPost, OutboxMessage):
            await session.exec(
                delete(by_chat).where(
                    col(by_chat.channel) == channel, col(by_chat.chat_ref) == chat_ref
                )
            )
        await session.exec(
            update(Broadcast)
            .where(col(Broadcast.report_channel) == channel, col(Broadcast.report_chat) == chat_ref)
            .values(report_channel=None, report_chat=None)
        )
    erase_where = [
        delete(ChannelAccount).where(col(ChannelAccount.member_id) == member_id),
        delete(RoleGrant).where(col(RoleGrant.member_id) == member_id),
        delete(ConsentRecord).where(col(ConsentRecord.member_id) == member_id),
        delete(Application).where(col(Application.member_id) == member_id),
        delete(MeetingReply).where(col(MeetingReply.member_id) == member_id),
        delete(FaqQuery).where(col(FaqQuery.asker_id) == member_id),
        delete(OutboxMessage).where(col(OutboxMessage.member_id) == member_id),
        delete(DueJob).where(col(DueJob.member_id) == member_id),
        update(Attendance).where(col(Attendance.member_id) == member_id).values(reason=None),
        update(TicketMessage)
        .where(col(TicketMessage.author_id) == member_id)
        .values(author_id=None),
        update(Ticket)
        .where(col(Ticket.member_id) == member_id)
        .values(member_id=None, rating_comment=None),
        update(Ticket).where(col(Ticket.claimed_by) == member_id).values(claimed_by=None),
        update(RoleGrant).where(col(RoleGrant.granted_by) == member_id).values(granted_by=None),
        update(Invite).where(col(Invite.created_by) == member_id).values(created_by=None),
        update(Invite).where(col(Invite.used_by) == member_id).values(used_by=None),
        update(Application).where(col(Application.decided_by) == member_id).values(decided_by=None),
        update(Meeting).where(col(Meeting.created_by) == member_id).values(created_by=None),
        update(Broadcast).where(col(Broadcast.created_by) == member_id).values(created_by=None),
        update(StaffGroup).where(col(StaffGroup.bound_by) == member_id).values(bound_by=None),
    ]
    for statement in erase_where:
        await session.exec(statement)
    for hook in FORGET_HOOKS:
        await hook(session, member_id)


async def _redact_outbox(
    session: AsyncSession,
    member_id: int,
    chats: set[tuple[str, str]],
    needles: list[str],
    refs: set[str],
    receipt: Forgotten,
) -> None:
    """Messages to other people that name the member: emptied of the name, number and texts.

    The outbox is bounded by SOTAY_OUTBOX_RETENTION, so reading it through is affordable.
    """
    stmt = select(OutboxMessage).where(
        col(OutboxMessage.status).in_(
            [OutboxStatus.pending, OutboxStatus.sent, OutboxStatus.failed, OutboxStatus.superseded]
        )
    )
    for row in (await session.exec(stmt)).all():
        if (row.channel, row.chat_ref) in chats:
            continue
        payload = redact_payload(row.payload, needles)
        if payload is None:
            continue
        row.payload = payload
        session.add(row)
        receipt.redacted_elsewhere += 1
        if row.status == OutboxStatus.sent:
            receipt.not_recallable += 1
    del refs  # messenger ids never appear in payloads; rows to the member's chats are deleted


async def _redact_offered_choices(session: AsyncSession, needles: list[str]) -> None:
    """Choices kept answerable in other people's chats (bot/choices.py) that name the member
    (an attendance list, an approval) are dropped: the message itself is redacted above."""
    for row in (await session.exec(select(PendingChoices))).all():
        if redact_payload({"choices": row.choices}, needles) is not None:
            await session.delete(row)


async def leave_no_trace(ctx: Ctx) -> None:
    """Someone declined consent: drop every row holding their messenger id (the prompts they
    were sent, remembered choices, failed tries). The dialog row ends with the dialog."""
    if ctx.actor.account is not None:
        return  # already a member on this chat: /forget is the way
    event = ctx.event
    for model in (OutboxMessage, PendingChoices):
        await ctx.session.exec(
            delete(model).where(
                col(model.channel) == event.channel, col(model.chat_ref) == event.chat_ref
            )
        )
    await ctx.session.exec(
        delete(IdentityAttempt).where(
            col(IdentityAttempt.channel) == event.channel,
            col(IdentityAttempt.user_ref) == event.user_ref,
        )
    )


# --- /me: everything stored -----------------------------------------------------------------------


async def stored_about(session: AsyncSession, member: Member) -> dict[str, Any]:
    """Every row about the member, as plain data (the JSON of /me and docs/privacy.md's list)."""
    member_id = member.id or 0
    cell = await session.get(Unit, member.cell_id) if member.cell_id else None

    def when(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    grants = (
        await session.exec(
            select(RoleGrant, Unit)
            .join(Unit, col(Unit.id) == RoleGrant.unit_id)
            .where(RoleGrant.member_id == member_id)
        )
    ).all()
    accounts = (
        await session.exec(select(ChannelAccount).where(ChannelAccount.member_id == member_id))
    ).all()
    replies = (
        await session.exec(
            select(MeetingReply, Meeting)
            .join(Meeting, col(Meeting.id) == MeetingReply.meeting_id)
            .where(MeetingReply.member_id == member_id)
            .order_by(col(Meeting.starts_at))
        )
    ).all()
    attendance = (
        await session.exec(
            select(Attendance, Meeting)
            .join(Meeting, col(Meeting.id) == Attendance.meeting_id)
            .where(Attendance.member_id == member_id)
            .order_by(col(Meeting.starts_at))
        )
    ).all()
    tickets = (
        await session.exec(
            select(Ticket).where(Ticket.member_id == member_id).order_by(col(Ticket.id))
        )
    ).all()
    consents = (
        await session.exec(
            select(ConsentRecord)
            .where(ConsentRecord.member_id == member_id)
            .order_by(col(ConsentRecord.at))
        )
    ).all()
    questions = (await session.exec(select(FaqQuery).where(FaqQuery.asker_id == member_id))).all()
    data = {
        "member": {
            "full_name": member.full_name,
            "phone": member.phone,
            "member_code": member.member_code,
            "cell": cell.path if cell else None,
            "language": member.language,
            "has_smartphone": member.has_smartphone,
            "app_installed": member.app_installed,
            "app_activated": member.app_activated,
            "smartphone_source": member.smartphone_source,
            "handbook_system": {
                "installed": member.hb_installed,
                "activated": member.hb_activated,
                "installed_on": member.hb_installed_on and member.hb_installed_on.isoformat(),
                "activated_on": member.hb_activated_on and member.hb_activated_on.isoformat(),
                "imported_at": when(member.hb_updated_at),
            },
            "registered_at": when(member.registered_at),
            "source": member.source,
        },
        "roles": [{"role": g.role.value, "unit": u.path} for g, u in grants],
        "accounts": [
            {"channel": a.channel, "verified": a.verified, "since": when(a.created_at)}
            for a in accounts
        ],
        "meeting_replies": [
            {"meeting": when(m.starts_at), "answer": r.answer.value, "reason": r.reason}
            for r, m in replies
        ],
        "attendance": [
            {"meeting": when(m.starts_at), "present": a.present, "excused": a.excused}
            for a, m in attendance
        ],
        "tickets": [
            {
                "id": tk.id,
                "category": tk.category,
                "status": tk.status.value,
                "created_at": when(tk.created_at),
                "rating": tk.rating,
            }
            for tk in tickets
        ],
        "faq_questions": [{"text": q.text, "at": when(q.at)} for q in questions],
        "consent": [
            {"action": c.action, "version": c.text_version, "at": when(c.at)} for c in consents
        ],
    }
    for hook in ABOUT_HOOKS:
        data.update(await hook(session, member_id))
    return data


# --- retention ------------------------------------------------------------------------------------


def purge_trigger(settings: Any) -> CronTrigger:
    """03:30 local every day, when nobody is waiting for a message."""
    return CronTrigger(hour=3, minute=30, timezone=settings.tz)


async def purge_outbox(session: AsyncSession, *, before: datetime) -> int:
    """Delete finished messages older than ``before``; their broadcast's counts are kept first."""
    finished = [s for s in OutboxStatus if s != OutboxStatus.pending]
    old = (
        col(OutboxMessage.status).in_(finished),
        col(OutboxMessage.created_at) < before,
    )
    from handlers.broadcast import delivery_counts  # the broadcast module owns the counting

    stmt = select(OutboxMessage.broadcast_id).where(*old).distinct()
    for broadcast_id in (await session.exec(stmt)).all():
        if broadcast_id is None:
            continue
        row = await session.get(Broadcast, broadcast_id)
        if row is not None and row.delivery_counts is None:
            counts = await delivery_counts(session, broadcast_id)
            row.delivery_counts = {status.value: n for status, n in counts.items()}
            session.add(row)
    result = await session.exec(delete(OutboxMessage).where(*old))
    return int(result.rowcount or 0)


@scheduler.recurring(PURGE_KIND, purge_trigger)
async def purge_job(ctx: Ctx, work: DueJob) -> JobResult:
    purged = await purge_outbox(ctx.session, before=ctx.now - ctx.settings.outbox_retention)
    return done(f"purged {purged}")
