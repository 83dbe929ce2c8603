"""web dashboard: one-time sign-in links and sessions; covering indexes for the rollout
figures every page computes (issue 13)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("lang", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("used_at", storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_web_link_member_id", "web_link", ["member_id"])
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_web_session_member_id", "web_session", ["member_id"])
    op.create_index(
        "ix_member_rollout",
        "member",
        [
            "cell_id",
            "status",
            "has_smartphone",
            "app_installed",
            "app_activated",
            "hb_installed",
            "hb_activated",
        ],
    )
    op.create_index("ix_account_registered", "channelaccount", ["member_id", "verified", "pending"])


def downgrade() -> None:
    op.drop_index("ix_account_registered", table_name="channelaccount")
    op.drop_index("ix_member_rollout", table_name="member")
    op.drop_index("ix_web_session_member_id", table_name="web_session")
    op.drop_table("web_session")
    op.drop_index("ix_web_link_member_id", table_name="web_link")
    op.drop_table("web_link")
