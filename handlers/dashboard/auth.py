"""Signing staff in without passwords: a one-time link from the chat, then a session cookie.

``/web`` in the chat creates a link holding a random 256-bit token; only its SHA-256 is stored.
Opening the link shows a button (link previews that fetch the page do not sign anyone in);
pressing it uses the link up in one conditional UPDATE (a second use, even at the same moment,
finds nothing to update) and starts a session whose token is, again, stored only as a hash.
Every request loads the session, the member and their role grants afresh: a role taken away
or ``/web off`` takes effect on the next click, not at the end of the working day.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Actor
from storage import queries
from storage.models import Member, MemberStatus, Role
from storage.web_models import WebLink, WebSession

LINK_TTL = timedelta(minutes=10)
STAFF = (Role.staff, Role.admin)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(key: bytes, session_token: str) -> str:
    """The form token of a session: derived, so nothing more is stored, and useless elsewhere."""
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def create_link(session: AsyncSession, member_id: int, lang: str, now: datetime) -> str:
    """A new sign-in link's token (the caller puts it in the URL); the row keeps its hash."""
    token = new_token()
    session.add(
        WebLink(
            token_hash=token_hash(token),
            member_id=member_id,
            lang=lang,
            created_at=now,
            expires_at=now + LINK_TTL,
        )
    )
    return token


async def use_link(session: AsyncSession, token: str, now: datetime) -> WebLink | None:
    """The link, used up now; None if unknown, already used or expired."""
    digest = token_hash(token)
    result = await session.exec(
        update(WebLink)
        .where(
            col(WebLink.token_hash) == digest,
            col(WebLink.used_at).is_(None),
            col(WebLink.expires_at) > now,
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        return None
    return (await session.exec(select(WebLink).where(WebLink.token_hash == digest))).first()


async def start_session(
    session: AsyncSession, member_id: int, now: datetime, lasts: timedelta
) -> str:
    token = new_token()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            member_id=member_id,
            created_at=now,
            expires_at=now + lasts,
        )
    )
    return token


async def sign_out_everywhere(session: AsyncSession, member_id: int, now: datetime) -> int:
    """Revoke every live session of the member, and unused links; how many sessions ended."""
    result = await session.exec(
        update(WebSession)
        .where(
            col(WebSession.member_id) == member_id,
            col(WebSession.revoked_at).is_(None),
            col(WebSession.expires_at) > now,
        )
        .values(revoked_at=now)
    )
    await session.exec(
        update(WebLink)
        .where(col(WebLink.member_id) == member_id, col(WebLink.used_at).is_(None))
        .values(used_at=now)
    )
    return int(result.rowcount or 0)


async def revoke(session: AsyncSession, token: str, now: datetime) -> None:
    await session.exec(
        update(WebSession)
        .where(
            col(WebSession.token_hash) == token_hash(token), col(WebSession.revoked_at).is_(None)
        )
        .values(revoked_at=now)
    )


@dataclass
class Viewer:
    """Who is looking at the dashboard: an active member holding staff or admin somewhere."""

    actor: Actor
    token: str
    csrf: str

    @property
    def member(self) -> Member:
        assert self.actor.member is not None
        return self.actor.member


async def viewer_of(
    session: AsyncSession, token: str | None, now: datetime, key: bytes
) -> Viewer | None:
    """The viewer of a session cookie, or None (unknown, expired, revoked, no longer staff)."""
    if not token or len(token) > 100:
        return None
    stmt = select(WebSession).where(
        WebSession.token_hash == token_hash(token),
        col(WebSession.revoked_at).is_(None),
        col(WebSession.expires_at) > now,
    )
    found = (await session.exec(stmt)).first()
    if found is None:
        return None
    member = await session.get(Member, found.member_id)
    if member is None or member.status != MemberStatus.active:
        return None
    accounts = await queries.linked_accounts(session, member_id=found.member_id)
    grants = await queries.grants_of(session, member_id=found.member_id)
    actor = Actor(account=accounts[0] if accounts else None, member=member, grants=grants)
    if not actor.holds(*STAFF):
        return None
    return Viewer(actor, token, csrf_token(key, token))


class Throttle:
    """At most ``limit`` sign-in attempts per client in ``window`` seconds (in memory: a
    restart forgets, which costs an attacker nothing against a 256-bit token anyway; the
    limit keeps a flood of guesses off the database)."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        seen = self._seen.setdefault(client, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        if len(self._seen) > 10_000:  # never grow without bound
            self._seen = {k: v for k, v in self._seen.items() if v}
        return True
