"""rollout data: the handbook system's statuses on members, who said a member has a smartphone,
and daily rollout snapshots per unit for trends

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("member") as batch:
        batch.add_column(
            sa.Column(
                "smartphone_source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
        batch.add_column(sa.Column("hb_installed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("hb_activated", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("hb_installed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("hb_activated_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("hb_updated_at", storage.models.UTCDateTime(), nullable=True))
    op.create_table(
        "rolloutsnapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("smartphone", sa.Integer(), nullable=False),
        sa.Column("installed", sa.Integer(), nullable=False),
        sa.Column("activated", sa.Integer(), nullable=False),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.Column("cells_using", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "taken_on", name="uq_rollout_snapshot"),
    )
    op.create_index("ix_rolloutsnapshot_unit_id", "rolloutsnapshot", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_rolloutsnapshot_unit_id", table_name="rolloutsnapshot")
    op.drop_table("rolloutsnapshot")
    with op.batch_alter_table("member") as batch:
        for name in (
            "hb_updated_at",
            "hb_activated_on",
            "hb_installed_on",
            "hb_activated",
            "hb_installed",
            "smartphone_source",
        ):
            batch.drop_column(name)
