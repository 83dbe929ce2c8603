"""Telling the admins that a channel is in trouble (its token refused, its plan's quota spent).

The alert goes to every admin's accounts on the *other* channels: the channel in trouble is the
one that cannot carry it (a refused token sends nothing; a spent quota would hold the alert back
until the quota returns). The channel decides when to alert — once per trouble, not per message.
"""

from __future__ import annotations

import logging

from sqlmodel import col, select

from bot.clock import Clock
from bot.core import View
from bot.i18n import pick_language, t
from bot.outbox import Outbox
from storage.db import Database
from storage.models import ChannelAccount, Role, RoleGrant

log = logging.getLogger("sotay.alerts")


async def alert_admins(
    db: Database, clock: Clock, *, channel: str, key: str, default_language: str
) -> int:
    """Queue the text ``key`` (with ``{channel}`` filled in) to every reachable account of every
    admin on a channel other than ``channel``, in its own small transaction; return how many.
    No admin reachable elsewhere is logged: the operator's log is then the only alert."""
    admins = select(RoleGrant.member_id).where(RoleGrant.role == Role.admin)
    outbox = Outbox(clock)
    async with db.session() as session:
        stmt = (
            select(ChannelAccount)
            .where(col(ChannelAccount.member_id).in_(admins))
            .where(ChannelAccount.channel != channel)
            .where(col(ChannelAccount.reachable).is_(True))
            .where(col(ChannelAccount.pending).is_(False))
            .order_by(col(ChannelAccount.id))
        )
        accounts = (await session.exec(stmt)).all()
        for account in accounts:
            lang = pick_language(account.language, None, default_language)
            outbox.add(
                session,
                channel=account.channel,
                chat_ref=account.chat_ref,
                view=View(t(lang, key, channel=channel)),
                member_id=account.member_id,
            )
    if not accounts:
        log.warning("alert.no_admin_elsewhere channel=%s key=%s", channel, key)
    return len(accounts)
