"""account_menu: the per-chat command menu each account was last given (issue 14)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channelaccount") as batch_op:
        batch_op.add_column(
            sa.Column("menu", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("channelaccount") as batch_op:
        batch_op.drop_column("menu")
