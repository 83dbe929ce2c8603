"""The Zalo OA token pair: stored encrypted, refreshed before it expires, one refresh at a time.

Zalo's OAuth v4 (``POST {oauth}/v4/oa/access_token``, header ``secret_key``, form ``app_id``,
``grant_type=refresh_token|authorization_code``) answers a new access token, a new refresh token
and ``expires_in`` (seconds). The refresh token is single-use: a second refresh with the same
token fails, and the pair it would have bought is lost. So refreshing is single-flight across
tasks, processes and restarts: the one ``zalo_oa_token`` row is locked (SELECT … FOR UPDATE on
PostgreSQL, the write transaction on SQLite), re-read, and only refreshed if it is still due —
whoever waited finds the new pair and uses it. A refresh Zalo rejects is never sent again (the row
remembers the rejection until an operator connects again); the old pair stays usable until it
expires, and the admins are told. The refresh point is 90% of the token's own ``expires_in``, so a
short-lived token works the same way as Zalo's usual 25 hours.

Both the bot and ``sotay zalo-oa connect/status`` go through ``TokenKeeper``; tokens never reach
a log line (they are registered as secrets once read).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import select

from bot.clock import Clock
from bot.i18n import t
from bot.secrecy import remember
from bot.settings import Settings
from storage.db import Database, is_postgres
from storage.zalo_oa_models import TOKEN_ROW, ZaloOaToken

log = logging.getLogger("sotay.zalo_oa.tokens")
REFRESH_AT = 0.9  # share of the token's life after which it is refreshed
OAUTH_TIMEOUT = 8.0  # seconds; the row lock (SQLite: the write lock) is held during the call
REJECTED = "rejected"  # last_error prefix: Zalo refused this refresh token, never send it again
RETRY_AFTER_FAILURE = timedelta(minutes=1)  # a network failure is retried, but not in a loop

Alert = Callable[[str], Awaitable[None]]


class TokenError(Exception):
    """No usable token: not connected, the secret key changed, or Zalo refused the refresh.

    ``key``/``values`` word it for the operator (SOTAY_DEFAULT_LANGUAGE); ``str()`` is English,
    for logs."""

    def __init__(self, key: str, /, **values: object) -> None:
        self.key, self.values = key, values
        super().__init__(t("en", key, **values))

    def text(self, lang: str) -> str:
        return t(lang, self.key, **self.values)


def fernet(secret_key: str | None) -> Fernet:
    """Fernet with a key derived from SOTAY_SECRET_KEY (HKDF-SHA256, its own purpose label), so
    the tokens are unreadable without the key and no other use of the secret shares this key."""
    if not secret_key:
        raise TokenError("op.oa.no_secret_key")
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sotay zalo-oa tokens")
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret_key.encode())))


@dataclass(frozen=True)
class Grant:
    """What OAuth answered: a new pair and its life in seconds."""

    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenStatus:
    connected: bool
    expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    refresh_at: datetime | None = None
    last_error: str | None = None


class OAuthRefused(Exception):
    """OAuth answered with an error: the token or code is not accepted (definitive)."""


async def request_grant(http: ClientSession, settings: Settings, form: dict[str, str]) -> Grant:
    """One call to ``/v4/oa/access_token``. OAuthRefused when Zalo says no; network errors
    (ClientError, TimeoutError) propagate: the token may or may not have been spent."""
    url = settings.zalo_oa_oauth_url.rstrip("/") + "/v4/oa/access_token"
    data = {"app_id": settings.zalo_oa_app_id or "", **form}
    async with http.post(
        url,
        data=data,
        headers={"secret_key": settings.zalo_oa_app_secret or ""},
        timeout=ClientTimeout(total=OAUTH_TIMEOUT),
    ) as response:
        try:
            body: Any = await response.json(content_type=None)
        except ValueError:
            body = None
    if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
        code = body.get("error") if isinstance(body, dict) else response.status
        raise OAuthRefused(f"{code}")
    try:
        expires_in = int(body.get("expires_in") or 0)
    except (TypeError, ValueError):
        expires_in = 0
    if expires_in <= 0:
        raise OAuthRefused("no expires_in")
    return Grant(str(body["access_token"]), str(body["refresh_token"]), expires_in)


class TokenKeeper:
    """Gives the current access token, refreshing it (once, for everyone) when it is due."""

    def __init__(
        self, db: Database, settings: Settings, clock: Clock, *, on_alert: Alert | None = None
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._fernet = fernet(settings.secret_key)
        self._local = asyncio.Lock()  # tasks of this process queue here before the row lock
        self.on_alert = on_alert
        self.refresh_calls = 0  # OAuth calls made by this keeper (observability, tests)

    # --- reading -----------------------------------------------------------------------------

    def _open(self, sealed: str) -> str:
        try:
            value = self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise TokenError("op.oa.undecryptable") from None
        remember(value)
        return value

    def _seal(self, value: str) -> str:
        remember(value)
        return self._fernet.encrypt(value.encode()).decode()

    async def status(self) -> TokenStatus:
        async with self._db.reader() as session:
            row = await session.get(ZaloOaToken, TOKEN_ROW)
        if row is None:
            return TokenStatus(connected=False)
        return TokenStatus(True, row.expires_at, row.refreshed_at, row.refresh_at, row.last_error)

    async def access_token(self) -> str:
        """The access token to call the API with; refreshed first when its time has come."""
        async with self._db.reader() as session:
            row = await session.get(ZaloOaToken, TOKEN_ROW)
        if row is None:
            raise TokenError("op.oa.not_connected")
        if self._clock.now() >= row.refresh_at and not self._should_wait(row):  # type: ignore[operator]
            try:
                return await self.refresh()
            except TokenError:
                if self._clock.now() >= row.expires_at:  # type: ignore[operator]
                    raise
        return self._open(row.access_token)  # fresh, or the old one while it lasts

    def _should_wait(self, row: ZaloOaToken) -> bool:
        """After a failed refresh: keep using the old token while it lasts, and do not call
        OAuth again at once (a rejected token never again)."""
        if row.last_error is None or row.failed_at is None:
            return False
        still_valid = self._clock.now() < row.expires_at  # type: ignore[operator]
        if row.last_error.startswith(REJECTED):
            return still_valid
        return still_valid and self._clock.now() < row.failed_at + RETRY_AFTER_FAILURE

    # --- refreshing --------------------------------------------------------------------------

    async def refresh(self, *, failed_token: str | None = None) -> str:
        """Refresh if still due once we hold the row (``failed_token``: the API just refused
        this token, so refresh unless someone already replaced it). Returns the token to use."""
        async with self._local, self._db.session() as session:
            row = await self._locked_row(session)
            current = self._open(row.access_token)
            now = self._clock.now()
            if failed_token is not None and current != failed_token:
                return current  # another task or process refreshed meanwhile
            if failed_token is None and now < row.refresh_at:  # type: ignore[operator]
                return current
            if row.last_error is not None and row.last_error.startswith(REJECTED):
                raise TokenError("op.oa.rejected")
            spent = self._open(row.refresh_token)
            self.refresh_calls += 1
            try:
                async with ClientSession() as http:
                    grant = await request_grant(
                        http,
                        self._settings,
                        {"grant_type": "refresh_token", "refresh_token": spent},
                    )
            except OAuthRefused as exc:
                self._failed(row, f"{REJECTED}: {exc}"[:200], now)
                session.add(row)
                failure: str | None = f"Zalo refused the refresh ({exc})"
                error = TokenError("op.oa.refresh_refused", error=str(exc))
            except (ClientError, TimeoutError) as exc:
                self._failed(row, f"network: {type(exc).__name__}", now)
                session.add(row)
                failure = f"OAuth unreachable ({type(exc).__name__})"
                error = TokenError("op.oa.refresh_unreachable", error=type(exc).__name__)
            else:
                self._store(row, grant, now)
                session.add(row)
                log.info("zalo_oa.token_refreshed expires_in=%s", grant.expires_in)
                return grant.access_token
        log.warning("zalo_oa.refresh_failed reason=%s", failure)
        if self.on_alert is not None:
            await self.on_alert(failure or "")
        raise error

    async def connect(
        self,
        *,
        refresh_token: str | None = None,
        code: str | None = None,
        code_verifier: str | None = None,
    ) -> Grant:
        """Exchange what the operator got from the OA's consent for a pair, and store it. Under
        the same lock as a refresh, so a connect never races the running bot's refresh."""
        if refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        elif code and code_verifier:
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
            }
        else:
            raise TokenError("op.oa.connect_usage")
        async with self._local, self._db.session() as session:
            row = await self._locked_row(session, create=True)
            self.refresh_calls += 1
            async with ClientSession() as http:
                grant = await request_grant(http, self._settings, form)
            self._store(row, grant, self._clock.now())
            session.add(row)
        return grant

    async def _locked_row(self, session: Any, *, create: bool = False) -> ZaloOaToken:
        """The token row, locked until the transaction ends (SQLite: the session already holds
        the database's write lock, taken by BEGIN IMMEDIATE), read fresh from the database."""
        stmt = select(ZaloOaToken).where(ZaloOaToken.id == TOKEN_ROW)
        if is_postgres(self._db.engine):
            stmt = stmt.with_for_update()
        result = await session.exec(stmt.execution_options(populate_existing=True))
        row: ZaloOaToken | None = result.first()
        if row is None:
            if not create:
                raise TokenError("op.oa.not_connected")
            now = self._clock.now()
            row = ZaloOaToken(
                access_token="", refresh_token="", expires_at=now, refresh_at=now, refreshed_at=now
            )
        return row

    def _store(self, row: ZaloOaToken, grant: Grant, now: datetime) -> None:
        row.access_token = self._seal(grant.access_token)
        row.refresh_token = self._seal(grant.refresh_token)
        row.expires_at = now + timedelta(seconds=grant.expires_in)
        row.refresh_at = now + timedelta(seconds=grant.expires_in * REFRESH_AT)
        row.refreshed_at = now
        row.refreshes += 1
        row.last_error = None
        row.failed_at = None

    @staticmethod
    def _failed(row: ZaloOaToken, error: str, now: datetime) -> None:
        row.last_error = error
        row.failed_at = now
