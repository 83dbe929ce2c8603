"""Who asked their cell secretary for help with the handbook (issue 17), for the secretary's list.

Kept apart from ``storage/models.py`` so the feature brings its own schema. One row per member:
the latest request (install or log in). /forget deletes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.models import utc_column


class InstallHelp(SQLModel, table=True):
    """A member asked (with that consent) their cell's secretaries for help installing or
    logging in; shown on the secretaries' /needhelp list until the member has logged in."""

    __tablename__ = "install_help"

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    cell_id: int = Field(foreign_key="unit.id", index=True)
    need: str = Field(max_length=8)  # install | login
    asked_at: datetime | None = utc_column(nullable=False)
