"""install_help: who asked their cell secretary for help with the handbook (issue 17)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "install_help",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("cell_id", sa.Integer(), nullable=False),
        sa.Column("need", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("asked_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["cell_id"], ["unit.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )
    op.create_index("ix_install_help_cell_id", "install_help", ["cell_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_install_help_cell_id", table_name="install_help")
    op.drop_table("install_help")
