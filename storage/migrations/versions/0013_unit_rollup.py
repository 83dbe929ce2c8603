"""unit_rollup: each unit's member counts kept by triggers, for national-scale reports (issue 12)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage import rollup

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unit_rollup",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        *[
            sa.Column(name, sa.Integer(), server_default="0", nullable=False)
            for name in rollup.COUNTS
        ],
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    dialect = op.get_bind().dialect.name
    for statement in rollup.create_sql(dialect):
        op.execute(statement)
    for statement in rollup.rebuild_sql():
        op.execute(statement)


def downgrade() -> None:
    for statement in rollup.drop_sql(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("unit_rollup")
