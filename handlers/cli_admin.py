"""Administration from the command line: the first admin (``sotay grant``) and invites."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.i18n import t
from bot.invite_codes import shown as shown_code
from bot.phones import PhoneError, normalize_phone
from bot.settings import Settings, parse_duration
from handlers.admin import create_invite, deep_link
from storage import queries
from storage.db import Database
from storage.models import Member, Role, Unit


class AdminError(Exception):
    """A mistake in the command's arguments, worded for the operator (in their language)."""


def phone_of(settings: Settings, phone: str) -> str:
    """The operator's ``--phone``, normalised, or an error in the operator's language."""
    try:
        return normalize_phone(phone)
    except PhoneError:
        raise AdminError(t(settings.default_language, "op.phone.bad", phone=phone)) from None


def role_name(settings: Settings, role: str) -> str:
    """A role as the operator's language names it ("bí thư chi bộ")."""
    return t(settings.default_language, f"role.{role}")


async def grant_role(
    settings: Settings, *, role: str, unit_path: str, phone: str, name: str | None
) -> str:
    lang = settings.default_language
    normalized = phone_of(settings, phone)
    db = Database(settings.database_url)
    now = Clock().now()
    try:
        async with db.session() as session:
            unit = await operator_unit(session, unit_path, lang)
            member = await queries.member_by_phone(session, phone=normalized)
            if member is None:
                if not name:
                    raise AdminError(t(lang, "op.grant.nobody"))
                member = Member(full_name=name, phone=normalized, source="grant", created_at=now)
                session.add(member)
                await session.flush()
            await queries.ensure_grant(
                session, member_id=member.id or 0, role=Role(role), unit_id=unit.id or 0, now=now
            )
            return t(
                lang, "op.grant.done", role=role_name(settings, role), unit=unit.path, id=member.id
            )
    finally:
        await db.dispose()


async def make_invite(settings: Settings, *, role: str, unit_path: str, ttl: str | None) -> str:
    lang = settings.default_language
    try:
        lifetime = parse_duration(ttl) if ttl else settings.invite_ttl
    except ValueError:
        raise AdminError(t(lang, "op.invite.bad_ttl", ttl=ttl)) from None
    db = Database(settings.database_url)
    now = Clock().now()
    try:
        async with db.session() as session:
            unit = await operator_unit(session, unit_path, lang)
            if Role(role) in (
                Role.member,
                Role.secretary,
                Role.deputy,
            ) and not await queries.is_leaf(session, unit_id=unit.id or 0):
                raise AdminError(
                    t(lang, "op.invite.needs_cell", role=role_name(settings, role), unit=unit.path)
                )
            invite = await create_invite(
                session, role=Role(role), unit=unit, created_by=None, ttl=lifetime, now=now
            )
            expires = invite.expires_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")  # type: ignore[union-attr]
            link = deep_link(settings.telegram_bot_username, invite.code) or (
                "https://t.me/<bot username>?start=" + invite.code
            )
            return t(
                lang,
                "op.invite.done",
                code=shown_code(invite.code),
                link=link,
                role=role_name(settings, role),
                unit=unit.path,
                expires=expires,
            )
    finally:
        await db.dispose()


async def operator_unit(session: AsyncSession, unit_path: str, lang: str) -> Unit:
    """The unit an operator means by ``--unit`` (a full path or its unique end)."""
    try:
        return await queries.operator_unit(session, unit_path)
    except queries.UnitNotFound as exc:
        hint = t(lang, "op.unit.roster_hint")
        raise AdminError(f"{t(lang, exc.key, **exc.values)} {hint}") from None
