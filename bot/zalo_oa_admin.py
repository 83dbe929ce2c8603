"""The operator's side of the Zalo OA channel: ``sotay zalo-oa connect`` and ``status``.

Kept out of ``bot/cli.py`` so the command file only parses options and prints; every failure here
is a ``TokenError`` worded for the operator (one sentence, no token in it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy import func
from sqlmodel import select

from bot.clock import Clock
from bot.i18n import t
from bot.settings import Settings
from bot.zalo_oa_tokens import OAuthRefused, TokenError, TokenKeeper
from storage.db import Database
from storage.zalo_oa_models import ChannelInteraction

CHANNEL = "zalo_oa"


def require_oa_settings(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("SOTAY_ZALO_OA_APP_ID", settings.zalo_oa_app_id),
            ("SOTAY_ZALO_OA_APP_SECRET", settings.zalo_oa_app_secret),
            ("SOTAY_SECRET_KEY", settings.secret_key),
        )
        if not value
    ]
    if missing:
        raise TokenError("op.oa.need_settings", names=", ".join(missing))


async def connect(
    settings: Settings,
    *,
    refresh_token: str | None,
    code: str | None,
    code_verifier: str | None,
) -> datetime:
    """Exchange the consent's refresh token (or code + verifier) and store the pair; returns
    when the new access token expires."""
    require_oa_settings(settings)
    db = Database(settings.database_url)
    clock = Clock()
    try:
        keeper = TokenKeeper(db, settings, clock)
        try:
            grant = await keeper.connect(
                refresh_token=refresh_token, code=code, code_verifier=code_verifier
            )
        except OAuthRefused as exc:
            raise TokenError("op.oa.refused_code", error=str(exc)) from None
        except (ClientError, TimeoutError) as exc:
            raise TokenError(
                "op.oa.oauth_unreachable", url=settings.zalo_oa_oauth_url, error=type(exc).__name__
            ) from None
        status = await keeper.status()
        assert status.expires_at is not None
        del grant
        return status.expires_at
    finally:
        await db.dispose()


async def status_lines(settings: Settings) -> list[str]:
    """What ``sotay zalo-oa status`` prints: the OA, token expiry, last refresh, webhook health,
    in SOTAY_DEFAULT_LANGUAGE."""
    require_oa_settings(settings)
    lang = settings.default_language
    db = Database(settings.database_url)
    try:
        keeper = TokenKeeper(db, settings, Clock())
        state = await keeper.status()
        if not state.connected:
            return [t(lang, "op.oa.status.not_connected")]
        tz = settings.tz
        lines = [
            t(lang, "op.oa.status.oa", name=await _oa_name(settings, keeper)),
            t(lang, "op.oa.status.expires", at=_local(state.expires_at, tz)),
            t(lang, "op.oa.status.next", at=_local(state.refresh_at, tz)),
            t(lang, "op.oa.status.last", at=_local(state.refreshed_at, tz)),
        ]
        if state.last_error:
            lines.append(t(lang, "op.oa.status.failed", error=state.last_error))
        async with db.reader() as session:
            stmt = select(func.max(ChannelInteraction.last_at)).where(
                ChannelInteraction.channel == CHANNEL
            )
            last_event = (await session.exec(stmt)).first()
        lines.append(
            t(lang, "op.oa.status.webhook", at=_local(last_event, tz))
            if last_event
            else t(lang, "op.oa.status.no_webhook")
        )
        return lines
    finally:
        await db.dispose()


async def _oa_name(settings: Settings, keeper: TokenKeeper) -> str:
    """The OA's name from ``GET /v2.0/oa/getoa``, or why it could not be read."""
    lang = settings.default_language
    try:
        token = await keeper.access_token()
        url = settings.zalo_oa_api_url.rstrip("/") + "/v2.0/oa/getoa"
        async with (
            ClientSession() as http,
            http.get(url, headers={"access_token": token}, timeout=ClientTimeout(total=10)) as r,
        ):
            body: Any = await r.json(content_type=None)
    except (ClientError, TimeoutError, ValueError) as exc:
        return t(lang, "op.oa.status.unknown", error=type(exc).__name__)
    if isinstance(body, dict) and body.get("error") == 0 and isinstance(body.get("data"), dict):
        data = body["data"]
        return f"{data.get('name', '?')} (id {data.get('oa_id', '?')})"
    code = body.get("error") if isinstance(body, dict) else "?"
    return t(lang, "op.oa.status.zalo_error", code=code)


def _local(at: datetime | None, tz: Any) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if at else "-"
