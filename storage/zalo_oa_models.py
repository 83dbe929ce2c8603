"""Tables of the Zalo Official Account channel (issue 11).

``zalo_oa_token`` holds the OA's one token pair, encrypted (``bot/zalo_oa_tokens.py``); its single
row is also the lock that serialises refreshing across processes. ``channel_interaction`` keeps
when each person last wrote on a channel: Zalo lets an OA write freely only within 7 days of that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from storage.models import utc_column

TOKEN_ROW = 1  # one OA per installation: the pair is always row 1


class ZaloOaToken(SQLModel, table=True):
    __tablename__ = "zalo_oa_token"

    id: int = Field(default=TOKEN_ROW, primary_key=True)
    access_token: str = Field(max_length=4096)  # Fernet token of the access token
    refresh_token: str = Field(max_length=4096)  # Fernet token of the (single-use) refresh token
    expires_at: datetime | None = utc_column(nullable=False)
    refresh_at: datetime | None = utc_column(nullable=False)  # ~90% of the token's own life
    refreshed_at: datetime | None = utc_column(nullable=False)
    refreshes: int = 0  # how many pairs this row has seen (a generation number)
    last_error: str | None = Field(default=None, max_length=200)
    failed_at: datetime | None = utc_column()


class ChannelInteraction(SQLModel, table=True):
    __tablename__ = "channel_interaction"

    channel: str = Field(max_length=16, primary_key=True)
    user_ref: str = Field(max_length=64, primary_key=True)
    last_at: datetime | None = utc_column(nullable=False, index=True)


class ZaloOaInbox(SQLModel, table=True):
    """A signed webhook event, kept from the moment it is answered 200 until it is handled: a
    crash in between loses nothing (the next start handles what is left, the router drops what
    was handled already)."""

    __tablename__ = "zalo_oa_inbox"

    id: int | None = Field(default=None, primary_key=True)
    event: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime | None = utc_column(nullable=False)
