"""FAQ tables: the knowledge base as rows (imported from and exported to the shipped YAML), and
the questions it could not answer — kept without any trace of who asked."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import JSON, Column, Field, SQLModel

from storage.models import utc_column


class FaqTopicRow(SQLModel, table=True):
    __tablename__ = "faq_topic"

    id: str = Field(primary_key=True, max_length=32)
    title: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    position: int = 0


class FaqEntryRow(SQLModel, table=True):
    __tablename__ = "faq_entry"

    id: str = Field(primary_key=True, max_length=32)
    topic: str = Field(foreign_key="faq_topic.id", max_length=32, index=True)
    questions: dict[str, list[str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    answer: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    position: int = 0
    revision: int = 1  # bumped on every change, so every process sees that its index is stale
    updated_at: datetime | None = utc_column(nullable=False)


class FaqQuery(SQLModel, table=True):
    """A question the FAQ could not settle: unanswered, none of the suggestions, or not solved.

    Only the question text (with long digit runs such as phone numbers masked) and the outcome;
    no chat or channel. ``asker_id`` is there only so that /forget can erase the member's own
    questions; reports and digests never show it. People who have not consented (not
    registered) are answered, but their questions are not stored at all.
    """

    __tablename__ = "faq_query"

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(max_length=500)
    folded: str = Field(max_length=500, index=True)
    outcome: str = Field(max_length=16)  # none | suggested | no_match | not_solved | solved
    entry_id: str | None = Field(default=None, max_length=32)
    asker_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    at: datetime | None = utc_column(nullable=False, index=True)


class FaqState(SQLModel, table=True):
    """One row: the knowledge base's version, bumped by every import and every edit.

    Every process compares it with the version its index was built from. A stamp derived from
    the entries themselves (count, sum of revisions) misses a replace that removes one entry and
    adds another, and topic changes; a counter that every writer bumps cannot.
    """

    __tablename__ = "faq_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
