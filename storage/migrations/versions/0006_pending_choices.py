"""pending numbered choices for channels without buttons (Zalo)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_choice",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("chat_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_ref"),
    )


def downgrade() -> None:
    op.drop_table("pending_choice")
