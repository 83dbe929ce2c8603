"""Serving processes and their heartbeats (issue 14).

A row per worker name (``SOTAY_WORKER_NAME``, one per systemd instance or compose replica):
the incarnation of the process now using that name and when it last said it was alive. Outbox
leases carry the incarnation, so a lease whose owner was replaced (the worker restarted) or went
quiet is free at once instead of after ``SOTAY_OUTBOX_LEASE``.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.models import utc_column

INCARNATION_LENGTH = 16  # hex characters at the start of ``OutboxMessage.lease_owner``


class Worker(SQLModel, table=True):
    __tablename__ = "worker"

    name: str = Field(primary_key=True, max_length=64)
    incarnation: str = Field(max_length=INCARNATION_LENGTH, index=True)
    started_at: datetime | None = utc_column(nullable=False)
    beat_at: datetime | None = utc_column(nullable=False)
