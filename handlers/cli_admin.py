"""Administration from the command line: the first admin (``sotay grant``) and invites."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.phones import PhoneError, normalize_phone
from bot.settings import Settings, parse_duration
from handlers.admin import create_invite, deep_link
from storage import queries
from storage.db import Database
from storage.models import Member, Role, Unit


class AdminError(Exception):
    """A mistake in the command's arguments, worded for the operator."""


async def grant_role(
    settings: Settings, *, role: str, unit_path: str, phone: str, name: str | None
) -> str:
    try:
        normalized = normalize_phone(phone)
    except PhoneError:
        raise AdminError(f"'{phone}' is not a Vietnamese phone number") from None
    db = Database(settings.database_url)
    now = Clock().now()
    try:
        async with db.session() as session:
            unit = await _unit(session, unit_path)
            member = await queries.member_by_phone(session, phone=normalized)
            if member is None:
                if not name:
                    raise AdminError(
                        "nobody in the roster has this phone number; add --name to create them"
                    )
                member = Member(full_name=name, phone=normalized, source="grant", created_at=now)
                session.add(member)
                await session.flush()
            await queries.ensure_grant(
                session, member_id=member.id or 0, role=Role(role), unit_id=unit.id or 0, now=now
            )
            return (
                f"{role} of '{unit.path}' granted to member #{member.id}; they register with /start"
            )
    finally:
        await db.dispose()


async def make_invite(settings: Settings, *, role: str, unit_path: str, ttl: str | None) -> str:
    try:
        lifetime = parse_duration(ttl) if ttl else settings.invite_ttl_delta
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    db = Database(settings.database_url)
    now = Clock().now()
    try:
        async with db.session() as session:
            unit = await _unit(session, unit_path)
            if Role(role) in (
                Role.member,
                Role.secretary,
                Role.deputy,
            ) and not await queries.is_leaf(session, unit_id=unit.id or 0):
                raise AdminError(
                    f"a {role} invite needs a cell, and '{unit.path}' has units below it"
                )
            invite = await create_invite(
                session, role=Role(role), unit=unit, created_by=None, ttl=lifetime, now=now
            )
            expires = invite.expires_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")  # type: ignore[union-attr]
            link = deep_link(settings.telegram_bot_username, invite.code) or (
                "https://t.me/<bot username>?start=" + invite.code
            )
            lines = [f"code: {invite.code}", f"link: {link}", f"role: {role} of {unit.path}"]
            return "\n".join([*lines, f"expires: {expires}"])
    finally:
        await db.dispose()


async def _unit(session: AsyncSession, unit_path: str) -> Unit:
    """The unit an operator means by ``--unit`` (a full path or its unique end)."""
    try:
        return await queries.operator_unit(session, unit_path)
    except queries.UnitNotFound as exc:
        raise AdminError(f"{exc} (is the roster imported?)") from None
