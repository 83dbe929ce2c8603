"""Tables of the staff web dashboard (handlers/dashboard): one-time sign-in links and sessions.

Only hashes of the secrets are stored (SHA-256 of a 256-bit random token): a copy of the
database lets nobody sign in. A link is single use and short-lived; a session ends when it
expires or when its owner types ``/web off`` (every session of that member is revoked).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.models import utc_column


class WebLink(SQLModel, table=True):
    """A one-time sign-in link sent in the chat by ``/web``."""

    __tablename__ = "web_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    lang: str = Field(default="vi", max_length=8)
    created_at: datetime | None = utc_column(nullable=False)
    expires_at: datetime | None = utc_column(nullable=False)
    used_at: datetime | None = utc_column()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie carries the token, the row its hash."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    created_at: datetime | None = utc_column(nullable=False)
    expires_at: datetime | None = utc_column(nullable=False)
    revoked_at: datetime | None = utc_column()
