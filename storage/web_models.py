"""Tables of the staff web dashboard (handlers/dashboard): one-time sign-in links and sessions.

Only hashes of the secrets are stored (SHA-256 of a 256-bit random token): a copy of the
database lets nobody sign in. A link is single use and short-lived; a session ends when it
expires or when its owner types ``/web off`` (every session of that member is revoked).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from storage.models import ChannelAccount, Member, utc_column

# Covering indexes for the rollout figures (bot/reports.py), which every dashboard page view
# computes for the viewer's unit: SQLite answers the province's member aggregate from the index
# alone (bench/dashboard.py times the province query with and without them in one run).
# Declared here, with the dashboard that made them worth their writes, not in storage/models.py.
MEMBER_ROLLOUT = sa.Index(
    "ix_member_rollout",
    col(Member.cell_id),
    col(Member.status),
    col(Member.has_smartphone),
    col(Member.app_installed),
    col(Member.app_activated),
    col(Member.hb_installed),
    col(Member.hb_activated),
)
ACCOUNT_REGISTERED = sa.Index(
    "ix_account_registered",
    col(ChannelAccount.member_id),
    col(ChannelAccount.verified),
    col(ChannelAccount.pending),
)


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
