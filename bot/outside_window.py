"""What happens to a message a channel may not deliver because the member is outside its
interaction window (Zalo OA: no free-form message more than 7 days after the member last wrote).

In this order: another channel the member uses gets it; else a ZNS template to the member's phone
(SOTAY_ZNS_REMINDER_TEMPLATE) when configured; else the secretaries of the member's cell hear
"could not reach (Zalo 7-day rule)", so someone tells the member in person. The dispatcher calls
``reach_otherwise`` at the one place it meets ``OutsideWindow``; the note returned is kept as the
row's outcome. Also here: the admins' alert, used when the OA's token cannot be refreshed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.core import View
from bot.i18n import pick_language, t
from bot.settings import Settings
from storage import queries
from storage.db import Database
from storage.models import ChannelAccount, Member, OutboxMessage, Role, RoleGrant

log = logging.getLogger("sotay.outside_window")
SECRETARIES = (Role.secretary, Role.deputy)
ZNS_TEXT_LIMIT = 400  # characters of the message put into the template's ``content`` parameter


class TemplateSender(Protocol):
    async def send_template(self, phone: str, template_id: str, data: dict[str, str]) -> str: ...


async def reach_otherwise(
    db: Database,
    channels: Mapping[str, Any],
    settings: Settings,
    clock: Clock,
    row: OutboxMessage,
) -> str:
    """Deliver ``row`` another way (see the module doc); return what was done, for the row."""
    if row.member_id is None:
        return "outside window: nobody to tell"
    if await _by_other_channel(db, clock, row):
        return "outside window: sent by another channel"
    async with db.reader() as session:
        member = await session.get(Member, row.member_id)
    if member is None:
        return "outside window: member gone"
    sender = channels.get(row.channel)
    template = settings.zns_reminder_template
    if template and member.phone and sender is not None and hasattr(sender, "send_template"):
        text = str(row.payload.get("text") or "")
        data = {"name": member.full_name or "", "content": text[:ZNS_TEXT_LIMIT]}
        try:
            await sender.send_template(member.phone, template, data)
        except Exception as exc:  # noqa: BLE001 - any failure: the secretary must hear of it
            log.warning("outside_window.zns_failed error=%s", type(exc).__name__)
        else:
            return "outside window: sent by ZNS"
    told = await _tell_secretaries(db, settings, clock, row, member)
    return f"outside window: secretaries told ({told})"


async def _by_other_channel(db: Database, clock: Clock, row: OutboxMessage) -> bool:
    """Another reachable account of the member gets the same message (a broadcast that already
    queued one for that account is enough)."""
    async with db.session() as session:
        stmt = select(ChannelAccount).where(
            ChannelAccount.member_id == row.member_id,
            col(ChannelAccount.channel) != row.channel,
            ChannelAccount.reachable,
            ~col(ChannelAccount.pending),
        )
        others = (await session.exec(stmt)).all()
        for account in others:
            if row.broadcast_id is not None and await _already_queued(session, row, account):
                return True
        for account in others:
            session.add(
                OutboxMessage(
                    channel=account.channel,
                    chat_ref=account.chat_ref,
                    member_id=row.member_id,
                    payload=row.payload,
                    dedupe_key=f"ow:{row.id}:{account.id}",
                    next_attempt_at=clock.now(),
                    created_at=clock.now(),
                )
            )
        return bool(others)


async def _already_queued(
    session: AsyncSession, row: OutboxMessage, account: ChannelAccount
) -> bool:
    stmt = select(OutboxMessage.id).where(
        OutboxMessage.broadcast_id == row.broadcast_id,
        OutboxMessage.channel == account.channel,
        OutboxMessage.chat_ref == account.chat_ref,
    )
    return (await session.exec(stmt)).first() is not None


async def _tell_secretaries(
    db: Database, settings: Settings, clock: Clock, row: OutboxMessage, member: Member
) -> int:
    """One message per secretary account: "could not reach NAME (Zalo 7-day rule)"; at most once
    per broadcast (or message) and member."""
    if member.cell_id is None:
        return 0
    told = 0
    async with db.session() as session:
        for secretary in await queries.holders(session, unit_id=member.cell_id, roles=SECRETARIES):
            for account in await queries.accounts_of(session, member_id=secretary.id or 0):
                if account.channel == row.channel and account.member_id == member.id:
                    continue
                lang = pick_language(
                    account.language or secretary.language, None, settings.default_language
                )
                key = f"owr:{row.broadcast_id or 'm' + str(row.id)}:{member.id}:{account.id}"
                if await _exists(session, key):
                    continue
                session.add(
                    OutboxMessage(
                        channel=account.channel,
                        chat_ref=account.chat_ref,
                        member_id=secretary.id,
                        payload=View(
                            t(lang, "zoa.unreached", name=member.full_name or "?")
                        ).to_payload(),
                        dedupe_key=key,
                        next_attempt_at=clock.now(),
                        created_at=clock.now(),
                    )
                )
                told += 1
    return told


async def _exists(session: AsyncSession, dedupe_key: str) -> bool:
    stmt = select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    return (await session.exec(stmt)).first() is not None


async def alert_admins(
    db: Database, settings: Settings, clock: Clock, key: str, **values: str
) -> int:
    """Tell every administrator (on all their channels) once per local day; returns how many
    messages were queued. Used for what only an operator can fix (the OA's tokens)."""
    day = clock.now().astimezone(settings.tz).date().isoformat()
    queued = 0
    async with db.session() as session:
        stmt = select(Member).join(RoleGrant, col(RoleGrant.member_id) == Member.id)
        admins = (await session.exec(stmt.where(RoleGrant.role == Role.admin))).unique().all()
        for admin in admins:
            for account in await queries.accounts_of(session, member_id=admin.id or 0):
                dedupe = f"alert:{key}:{day}:{account.id}"
                if await _exists(session, dedupe):
                    continue
                lang = pick_language(
                    account.language or admin.language, None, settings.default_language
                )
                session.add(
                    OutboxMessage(
                        channel=account.channel,
                        chat_ref=account.chat_ref,
                        member_id=admin.id,
                        payload=View(t(lang, key, **values)).to_payload(),
                        dedupe_key=dedupe,
                        next_attempt_at=clock.now(),
                        created_at=clock.now(),
                    )
                )
                queued += 1
    return queued
