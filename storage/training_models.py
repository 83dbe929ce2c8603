"""Tables of the rollout beyond installing (issue 15): training sessions and who takes part.

Kept apart from ``storage/models.py`` so the feature brings its own schema. A seat keeps
``member_id`` after /forget (the emptied member row identifies nobody), so the figures of a
training stay; who signed someone up is erased.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models import enum_type, utc_column


class TrainingStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class TrainingSession(SQLModel, table=True):
    """A training for the members of a unit's subtree, given by staff or the vendor's trainers."""

    __tablename__ = "training_session"

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    starts_at: datetime | None = utc_column(nullable=False, index=True)
    duration_min: int = 120
    place: str = Field(max_length=200)
    topic: str = Field(max_length=1000)
    capacity: int = 30
    status: TrainingStatus = Field(
        default=TrainingStatus.scheduled, sa_type=enum_type(TrainingStatus)
    )
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime | None = utc_column(nullable=False)
    attendance_taken_at: datetime | None = utc_column()


class TrainingSeat(SQLModel, table=True):
    """One person invited to (or signed up for) a training: the answer, the presence, and the
    handbook status before the training and as answered a day after it."""

    __tablename__ = "training_seat"
    __table_args__ = (sa.UniqueConstraint("session_id", "member_id", name="uq_training_seat"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="training_session.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    invited: bool = True
    answer: str | None = Field(default=None, max_length=8)  # yes | no
    answered_at: datetime | None = utc_column()
    signed_up_by: int | None = Field(default=None, foreign_key="member.id")
    present: bool | None = None
    installed_before: bool | None = None
    activated_before: bool | None = None
    followup_installed: bool | None = None
    followup_activated: bool | None = None
    followup_at: datetime | None = utc_column()


class VenueSurvey(SQLModel, table=True):
    """The internet at a cell's usual meeting place, as its secretary answered: whether the
    handbook can be opened there. The committee plans internet for cultural houses from these."""

    __tablename__ = "venue_survey"
    __table_args__ = (sa.UniqueConstraint("cell_id", "place", name="uq_venue_survey"),)

    id: int | None = Field(default=None, primary_key=True)
    cell_id: int = Field(foreign_key="unit.id", index=True)
    place: str = Field(max_length=200)
    answer: str | None = Field(default=None, max_length=8)  # wifi | good | weak | none
    asked_at: datetime | None = utc_column()
    answered_at: datetime | None = utc_column()
    answered_by: int | None = Field(default=None, foreign_key="member.id")


class SoftwareFeedback(SQLModel, table=True):
    """Feedback for the software vendor: a member's report of a problem or a suggestion, a
    support ticket or an FAQ gap that staff marked as such.

    ``text`` is stored with phone numbers and the author's name masked, and the export masks
    every roster name again. ``member_id`` is there only so that /forget can erase the member's
    words; the export never shows it. ``key`` (the folded text) groups the same thing.
    """

    __tablename__ = "software_feedback"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)  # member | ticket | faq_gap
    category: str = Field(max_length=16)  # bug | suggestion | hard
    text: str = Field(max_length=1000)
    key: str = Field(max_length=200, index=True)
    app_version: str | None = Field(default=None, max_length=32)
    phone_type: str | None = Field(default=None, max_length=64)
    hits: int = 1  # for an FAQ gap: how many times the question was asked
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    marked_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime | None = utc_column(nullable=False, index=True)
