"""training sessions and their seats, meeting-venue internet survey,
software feedback for the vendor (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("place", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("scheduled", "cancelled", name="trainingstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("attendance_taken_at", storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["member.id"]),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_training_session_unit_id", "training_session", ["unit_id"])
    op.create_index("ix_training_session_starts_at", "training_session", ["starts_at"])
    op.create_table(
        "training_seat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("invited", sa.Boolean(), nullable=False),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("answered_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("signed_up_by", sa.Integer(), nullable=True),
        sa.Column("present", sa.Boolean(), nullable=True),
        sa.Column("installed_before", sa.Boolean(), nullable=True),
        sa.Column("activated_before", sa.Boolean(), nullable=True),
        sa.Column("followup_installed", sa.Boolean(), nullable=True),
        sa.Column("followup_activated", sa.Boolean(), nullable=True),
        sa.Column("followup_at", storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["training_session.id"]),
        sa.ForeignKeyConstraint(["signed_up_by"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "member_id", name="uq_training_seat"),
    )
    op.create_index("ix_training_seat_session_id", "training_seat", ["session_id"])
    op.create_index("ix_training_seat_member_id", "training_seat", ["member_id"])
    op.create_table(
        "venue_survey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cell_id", sa.Integer(), nullable=False),
        sa.Column("place", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("asked_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("answered_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["answered_by"], ["member.id"]),
        sa.ForeignKeyConstraint(["cell_id"], ["unit.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cell_id", "place", name="uq_venue_survey"),
    )
    op.create_index("ix_venue_survey_cell_id", "venue_survey", ["cell_id"])
    op.create_table(
        "software_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("app_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("phone_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("marked_by", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["marked_by"], ["member.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_software_feedback_key", "software_feedback", ["key"])
    op.create_index("ix_software_feedback_member_id", "software_feedback", ["member_id"])
    op.create_index("ix_software_feedback_created_at", "software_feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_software_feedback_created_at", table_name="software_feedback")
    op.drop_index("ix_software_feedback_member_id", table_name="software_feedback")
    op.drop_index("ix_software_feedback_key", table_name="software_feedback")
    op.drop_table("software_feedback")
    op.drop_index("ix_venue_survey_cell_id", table_name="venue_survey")
    op.drop_table("venue_survey")
    op.drop_index("ix_training_seat_member_id", table_name="training_seat")
    op.drop_index("ix_training_seat_session_id", table_name="training_seat")
    op.drop_table("training_seat")
    op.drop_index("ix_training_session_starts_at", table_name="training_session")
    op.drop_index("ix_training_session_unit_id", table_name="training_session")
    op.drop_table("training_session")
