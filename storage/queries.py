"""Keyword-only query helpers shared by handlers, the CLI and the seeders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, insert
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from storage.models import (
    ChannelAccount,
    Dialog,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxStatus,
    ProcessedEvent,
    Role,
    RoleGrant,
    Unit,
)
from storage.paths import PATH_SEP as PATH_SEP
from storage.paths import UnitNotFound as UnitNotFound
from storage.paths import in_subtree as in_subtree
from storage.paths import normalized_path, the_one
from storage.paths import within as within


async def unit_by_path(session: AsyncSession, *, path: str) -> Unit | None:
    normalized = normalized_path(path)
    return (await session.exec(select(Unit).where(Unit.path == normalized))).first()


async def units_named(session: AsyncSession, *, path: str) -> list[Unit]:
    """The unit with this exact path; else every unit whose path ends with it, part by part
    ("Xã Hợp Thành" finds "Tỉnh Tuyên Quang / Xã Hợp Thành"), for operators who type the end."""
    exact = await unit_by_path(session, path=path)
    if exact is not None:
        return [exact]
    normalized = normalized_path(path)
    if not normalized:
        return []
    stmt = (
        select(Unit)
        .where(col(Unit.path).endswith(PATH_SEP + normalized, autoescape=True))
        .order_by(col(Unit.path))
    )
    return list((await session.exec(stmt)).all())


async def operator_unit(session: AsyncSession, path: str) -> Unit:
    """The one unit an operator's ``--unit`` means (a full path or its unique end)."""
    return the_one(path, await units_named(session, path=path))


async def child_units(session: AsyncSession, *, parent_id: int | None) -> Sequence[Unit]:
    stmt = select(Unit).where(Unit.parent_id == parent_id).order_by(Unit.name)
    return (await session.exec(stmt)).all()


async def ancestors(session: AsyncSession, *, unit: Unit) -> list[Unit]:
    """The unit's ancestors, nearest first."""
    chain: list[Unit] = []
    current = unit
    while current.parent_id is not None:
        parent = await session.get(Unit, current.parent_id)
        if parent is None:
            break
        chain.append(parent)
        current = parent
    return chain


async def is_leaf(session: AsyncSession, *, unit_id: int) -> bool:
    return (
        await session.exec(select(Unit.id).where(Unit.parent_id == unit_id).limit(1))
    ).first() is None


async def member_by_phone(session: AsyncSession, *, phone: str) -> Member | None:
    stmt = select(Member).where(Member.phone == phone, Member.status == MemberStatus.active)
    return (await session.exec(stmt.order_by(col(Member.id)))).first()


async def account_for(
    session: AsyncSession, *, channel: str, user_ref: str
) -> ChannelAccount | None:
    stmt = select(ChannelAccount).where(
        ChannelAccount.channel == channel, ChannelAccount.user_ref == user_ref
    )
    return (await session.exec(stmt)).first()


@dataclass
class Sender:
    """Everything the router needs of the sender of an update (``who_writes``)."""

    account: ChannelAccount | None
    member: Member | None  # None for a pending account: it sees and holds nothing yet
    dialog: Dialog | None
    grants: list[tuple[RoleGrant, Unit]]  # the member's roles, each with its unit
    # A direct message (a reply, not a notice's) to the update's chat waits in the outbox: the
    # hand-over then leaves this update's replies to the drain loop, to keep the chat's order.
    # Read here, it costs the hand-over no query of its own (issue 14's core throughput).
    replies_waiting: bool = False


Who = Select[ChannelAccount, Member, Dialog, RoleGrant, Unit, bool]
"""The sender's query: their account, member, dialog, each grant with its unit, a reply waiting."""


def direct_reply_waiting() -> ColumnElement[bool]:
    """An outbox row that is a direct message (a reply, not a notice's) still waiting to leave:
    a newer reply to its chat must queue behind it (the sender's read here, and
    ``Dispatcher.take`` for the other chats a handler wrote to)."""
    return (col(OutboxMessage.status) == OutboxStatus.pending) & col(
        OutboxMessage.broadcast_id
    ).is_(None)


def _who_writes() -> Who:
    sender = core_select(
        bindparam("channel").label("channel"), bindparam("user_ref").label("user_ref")
    ).subquery("sender")
    member_of = (col(Member.id) == ChannelAccount.member_id) & ~col(ChannelAccount.pending)
    waiting = exists().where(
        direct_reply_waiting(),
        col(OutboxMessage.channel) == bindparam("channel"),
        col(OutboxMessage.chat_ref) == bindparam("chat_ref"),
    )
    # (sqlmodel types select() for up to four entities; outer joins: any of them may be None)
    entities = select(ChannelAccount, Member, Dialog, RoleGrant, Unit, waiting.label("waiting"))  # type: ignore[call-overload]
    statement: Who = (
        entities.select_from(sender)
        .outerjoin(
            ChannelAccount,
            (col(ChannelAccount.channel) == sender.c.channel)
            & (col(ChannelAccount.user_ref) == sender.c.user_ref),
        )
        .outerjoin(Member, member_of)
        .outerjoin(
            Dialog,
            (col(Dialog.channel) == sender.c.channel) & (col(Dialog.user_ref) == sender.c.user_ref),
        )
        .outerjoin(RoleGrant, col(RoleGrant.member_id) == Member.id)
        .outerjoin(Unit, col(Unit.id) == RoleGrant.unit_id)
        .order_by(col(RoleGrant.id))
    )
    return statement


def _recording(statement: Who) -> Who:
    """``who_writes`` that also records the update as processed (PostgreSQL): the insert rides
    along as a data-modifying CTE, which PostgreSQL runs whether or not the query reads it. One
    round trip instead of two; an update already recorded fails the unique key here, as in the
    router's own insert. (SQLite has no such CTE: the router inserts first there.)"""
    table = ProcessedEvent.__table__  # type: ignore[attr-defined]
    record = insert(table).values(
        channel=bindparam("event_channel", type_=table.c.channel.type),
        key=bindparam("event_key", type_=table.c.key.type),
        at=bindparam("event_at", type_=table.c.at.type),
    )
    return statement.add_cte(record.cte("recorded"))


# Built once: every update runs it, and building a statement and its cache key costs several
# times what running it does (SQLAlchemy memoizes the key on the statement object; issue 14).
_WHO_WRITES = _who_writes()
_WHO_WRITES_RECORDING = _recording(_who_writes())


@dataclass(frozen=True)
class Recording:
    """The update ``who_writes`` records as processed in the same statement (PostgreSQL)."""

    channel: str
    key: str
    at: datetime

    @property
    def params(self) -> dict[str, Any]:
        """The values of ``_recording``'s insert (and of the router's own, on SQLite)."""
        return {"event_channel": self.channel, "event_key": self.key, "event_at": self.at}


async def who_writes(
    session: AsyncSession,
    *,
    channel: str,
    user_ref: str,
    chat_ref: str | None = None,
    recording: Recording | None = None,
) -> Sender:
    """The sender of an update, in one query: their account, its member unless the account is
    pending approval, their open dialog, the member's grants (one row per grant, or one row
    without any), and whether a reply to ``chat_ref`` (the update's chat) waits in the outbox.
    Either of the account and the dialog may exist without the other (a registration's dialog
    comes first), so both hang off a one-row table of the sender. With ``recording`` the same
    statement records the update as processed (``_recording``)."""
    params: dict[str, Any] = {
        "channel": channel,
        "user_ref": user_ref,
        "chat_ref": chat_ref or user_ref,
    }
    statement = _WHO_WRITES
    if recording is not None:
        statement, params = _WHO_WRITES_RECORDING, params | recording.params
    rows = (await session.exec(statement, params=params)).all()
    account, member, dialog, _grant, _unit, waiting = rows[0]
    grants = [(grant, unit) for *_, grant, unit, _waiting in rows if grant is not None]
    return Sender(account, member, dialog, grants, bool(waiting))


async def accounts_of(session: AsyncSession, *, member_id: int) -> Sequence[ChannelAccount]:
    stmt = select(ChannelAccount).where(
        ChannelAccount.member_id == member_id,
        ChannelAccount.reachable,
        ~col(ChannelAccount.pending),
    )
    return (await session.exec(stmt)).all()


async def linked_accounts(session: AsyncSession, *, member_id: int) -> Sequence[ChannelAccount]:
    """The member's approved accounts, reachable or not: who the member is, for a web session
    (an account the bot cannot write to, say after a failed send, is still theirs)."""
    stmt = select(ChannelAccount).where(
        ChannelAccount.member_id == member_id, ~col(ChannelAccount.pending)
    )
    return (await session.exec(stmt.order_by(col(ChannelAccount.id)))).all()


_GRANTS_OF = (
    select(RoleGrant, Unit)
    .join(Unit, col(Unit.id) == RoleGrant.unit_id)
    .where(RoleGrant.member_id == bindparam("member_id"))
)


async def grants_of(session: AsyncSession, *, member_id: int) -> list[tuple[RoleGrant, Unit]]:
    """(Built once, like ``_WHO_WRITES``: the router reads a registered sender's grants at
    every update.)"""
    return list((await session.exec(_GRANTS_OF, params={"member_id": member_id})).all())


async def holders(
    session: AsyncSession, *, unit_id: int, roles: Sequence[Role]
) -> Sequence[Member]:
    """Active members holding one of ``roles`` on exactly this unit."""
    stmt = (
        select(Member)
        .join(RoleGrant, col(RoleGrant.member_id) == Member.id)
        .where(RoleGrant.unit_id == unit_id, col(RoleGrant.role).in_(list(roles)))
        .where(Member.status == MemberStatus.active)
        .order_by(col(Member.id))
    )
    return (await session.exec(stmt)).unique().all()


async def search_units(
    session: AsyncSession, *, folded_query: str, under_path: str | None = None, limit: int = 8
) -> Sequence[Unit]:
    """Units whose folded name contains every word of the folded query."""
    stmt = select(Unit)
    for word in folded_query.split():
        stmt = stmt.where(col(Unit.folded_name).contains(word))
    if under_path:
        stmt = stmt.where(in_subtree(Unit.path, under_path))
    return (await session.exec(stmt.order_by(col(Unit.depth), col(Unit.name)).limit(limit))).all()


async def ensure_grant(
    session: AsyncSession,
    *,
    member_id: int,
    role: Role,
    unit_id: int,
    now: datetime,
    granted_by: int | None = None,
) -> RoleGrant:
    """Give ``role`` on ``unit_id`` to the member unless they hold it already (idempotent)."""
    stmt = select(RoleGrant).where(
        RoleGrant.member_id == member_id, RoleGrant.role == role, RoleGrant.unit_id == unit_id
    )
    grant = (await session.exec(stmt)).first()
    if grant is None:
        grant = RoleGrant(
            member_id=member_id, role=role, unit_id=unit_id, granted_by=granted_by, created_at=now
        )
        session.add(grant)
    return grant
