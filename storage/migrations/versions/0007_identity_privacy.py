"""identity and privacy: identity attempts, askers of FAQ questions, anonymous tickets,
delivery counts kept past outbox retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_attempt",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("user_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", storage.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "user_ref"),
    )
    with op.batch_alter_table("faq_query") as batch:
        batch.add_column(sa.Column("asker_id", sa.Integer(), nullable=True))
        batch.create_index("ix_faq_query_asker_id", ["asker_id"])
        batch.create_foreign_key("fk_faq_query_asker", "member", ["asker_id"], ["id"])
    with op.batch_alter_table("ticket") as batch:
        batch.alter_column("member_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("broadcast") as batch:
        batch.add_column(sa.Column("delivery_counts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcast") as batch:
        batch.drop_column("delivery_counts")
    with op.batch_alter_table("ticket") as batch:
        batch.alter_column("member_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("faq_query") as batch:
        batch.drop_constraint("fk_faq_query_asker", type_="foreignkey")
        batch.drop_index("ix_faq_query_asker_id")
        batch.drop_column("asker_id")
    op.drop_table("identity_attempt")
