"""One message to many members, durably: a ``Broadcast`` row and one outbox row per recipient.

Each (broadcast, account) pair has a unique dedupe key, so a double tap or a retried handler
cannot queue anyone twice, and a crash mid-send resumes from the rows still pending. The sender
gets one progress message that is edited as deliveries come back, then a final report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Ctx, Services
from bot.core import View
from bot.i18n import pick_language, t
from bot.outbox import bulk_written
from storage.db import Database
from storage.models import Broadcast, ChannelAccount, Member, OutboxMessage, OutboxStatus

REPORT_EVERY_SECONDS = 3.0
CHUNK = 500


@dataclass(frozen=True)
class Queued:
    broadcast: Broadcast
    accounts: int  # messages queued
    members_reached: int
    unreachable: int  # members with no chat account: tell them in person


async def reachable_accounts(
    ctx: Ctx, member_ids: Sequence[int]
) -> dict[int, list[ChannelAccount]]:
    found: dict[int, list[ChannelAccount]] = {}
    for start in range(0, len(member_ids), 500):
        chunk = list(member_ids[start : start + 500])
        stmt = select(ChannelAccount).where(
            col(ChannelAccount.member_id).in_(chunk),
            ChannelAccount.reachable,
            ~col(ChannelAccount.pending),
        )
        for account in (await ctx.session.exec(stmt)).all():
            found.setdefault(account.member_id, []).append(account)
    return found


async def send_broadcast(
    ctx: Ctx,
    *,
    kind: str,
    members: Sequence[Member],
    render: Callable[[str, Member], View],
    meeting_id: int | None = None,
    unit_id: int | None = None,
    audience: str = "members",
    report: bool = False,
) -> Queued:
    """Queue ``render(lang, member)`` to every reachable account of ``members``."""
    row = Broadcast(
        kind=kind,
        meeting_id=meeting_id,
        unit_id=unit_id,
        audience=audience,
        created_by=ctx.actor.member.id if ctx.actor.member else None,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    await ctx.session.flush()
    accounts = await reachable_accounts(ctx, [m.id for m in members if m.id is not None])
    rows: list[dict[str, object]] = []
    for member in members:
        for account in accounts.get(member.id or 0, []):
            lang = pick_language(
                account.language or member.language, None, ctx.settings.default_language
            )
            rows.append(
                {
                    "channel": account.channel,
                    "chat_ref": account.chat_ref,
                    "member_id": member.id,
                    "payload": render(lang, member).to_payload(),
                    "broadcast_id": row.id,
                    "dedupe_key": f"b{row.id}:a{account.id}",
                    "status": OutboxStatus.pending,
                    "attempts": 0,
                    "next_attempt_at": ctx.now,
                    "created_at": ctx.now,
                }
            )
    # One multi-row INSERT per chunk: a 10,000-recipient notice holds the write lock briefly.
    for start in range(0, len(rows), CHUNK):
        await ctx.session.exec(insert(OutboxMessage).values(rows[start : start + CHUNK]))
    if rows:
        bulk_written(ctx.session)
    queued = len(rows)
    row.total = queued
    row.unreachable = sum(1 for m in members if not accounts.get(m.id or 0))
    if report and queued:
        progress = ctx.services.outbox.add(
            ctx.session,
            channel=ctx.event.channel,
            chat_ref=ctx.event.chat_ref,
            view=View(ctx.t("bc.progress", sent=0, total=queued, failed=0, blocked=0)),
        )
        await ctx.session.flush()
        row.report_channel, row.report_chat = ctx.event.channel, ctx.event.chat_ref
        row.report_outbox_id = progress.id
    ctx.session.add(row)
    return Queued(row, queued, len(members) - row.unreachable, row.unreachable)


async def delivery_counts(session: AsyncSession, broadcast_id: int) -> dict[OutboxStatus, int]:
    stmt = (
        select(col(OutboxMessage.status), func.count())
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .group_by(OutboxMessage.status)
    )
    return {status: count for status, count in (await session.exec(stmt)).all()}


class BroadcastReporter:
    """Keeps each sender's progress message current, at most every few seconds, then reports."""

    def __init__(self, db: Database, services: Services) -> None:
        self._db = db
        self._services = services
        self._last: dict[int, float] = {}

    async def progress(self, broadcast_ids: set[int]) -> None:
        for broadcast_id in broadcast_ids:
            await self._update(broadcast_id)

    async def sweep(self) -> None:
        """Broadcasts still waiting for their final report: a worker killed between sending a
        notice's last messages and writing the report leaves one, which no later send would
        reach (nothing of it is left to send). Every worker looks at each heartbeat."""
        async with self._db.reader() as session:
            open_ids = (
                await session.exec(
                    select(Broadcast.id).where(
                        col(Broadcast.report_done).is_(False),
                        col(Broadcast.report_outbox_id).is_not(None),
                    )
                )
            ).all()
        await self.progress({broadcast_id for broadcast_id in open_ids if broadcast_id})

    async def _update(self, broadcast_id: int) -> None:
        async with self._db.session() as session:
            # Locked (PostgreSQL): two workers finishing one notice write one final report.
            row = await session.get(Broadcast, broadcast_id, with_for_update=True)
            if row is None or row.report_outbox_id is None or row.report_done:
                return
            counts = await delivery_counts(session, broadcast_id)
            done = counts.get(OutboxStatus.pending, 0) == 0
            now = time.monotonic()
            if not done and now - self._last.get(broadcast_id, 0.0) < REPORT_EVERY_SECONDS:
                return
            # Where a message cannot be edited (Zalo) each update would be one more message:
            # the sender gets only the final report there.
            editable = self._services.caps(row.report_channel or "").edits
            if not done and not editable:
                return
            self._last[broadcast_id] = now
            lang = await self._language(session, row)
            values = {
                "sent": counts.get(OutboxStatus.sent, 0),
                "total": row.total,
                "failed": counts.get(OutboxStatus.failed, 0),
                "blocked": counts.get(OutboxStatus.blocked, 0),
                "unreachable": row.unreachable,
            }
            outbox = self._services.outbox
            if editable:
                outbox.add(
                    session,
                    channel=row.report_channel or "",
                    chat_ref=row.report_chat or "",
                    view=View(t(lang, "bc.progress", **values), edit_of=row.report_outbox_id),
                )
            if done:
                outbox.add(
                    session,
                    channel=row.report_channel or "",
                    chat_ref=row.report_chat or "",
                    view=View(t(lang, "bc.final", **values)),
                )
                row.report_done = True
                session.add(row)
                self._last.pop(broadcast_id, None)

    async def _language(self, session: AsyncSession, row: Broadcast) -> str:
        stmt = select(ChannelAccount.language).where(
            ChannelAccount.channel == row.report_channel, ChannelAccount.chat_ref == row.report_chat
        )
        stored = (await session.exec(stmt)).first()
        return pick_language(stored, None, self._services.settings.default_language)
