"""outbox rows marked 'sending' before their request; worker heartbeats (issue 14)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending_at", storage.models.UTCDateTime(), nullable=True))
    op.create_table(
        "worker",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("incarnation", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("beat_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index(op.f("ix_worker_incarnation"), "worker", ["incarnation"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_incarnation"), table_name="worker")
    op.drop_table("worker")
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_column("sending_at")
