"""Zalo Official Account: the encrypted token pair, last interaction per channel (issue 11)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 03:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "zalo_oa_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_token", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.Column("refresh_token", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("refresh_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("refreshes", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("failed_at", storage.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "channel_interaction",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("user_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "user_ref"),
    )
    op.create_index("ix_channel_interaction_last_at", "channel_interaction", ["last_at"])
    op.create_table(
        "zalo_oa_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("received_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("zalo_oa_inbox")
    op.drop_index("ix_channel_interaction_last_at", table_name="channel_interaction")
    op.drop_table("channel_interaction")
    op.drop_table("zalo_oa_token")
