"""What an operator watches: Prometheus metrics at ``/metrics`` and readiness at ``/readyz``.

Counters are kept in this process (updates handled, handler latency, sends by outcome, 429s);
figures that several workers share (the outbox backlog and its age, due work running late,
tickets past their deadline) are read from the database at each scrape, so any worker reports
the truth. Labels carry channel names and outcomes only, never a chat, a name or a text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, text
from sqlmodel import col, select

from storage.db import Database
from storage.models import DueJob, JobStatus, OutboxMessage, OutboxStatus, Ticket, TicketStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_age: float  # seconds the oldest due message has waited (0 when none)


class Metrics:
    """One registry per app (tests run several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "sotay_updates", "Updates handled", ["channel", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "sotay_handler_seconds",
            "Time to handle one update (routing, handler, commit)",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.sends = Counter(
            "sotay_sends", "Outbox send outcomes", ["channel", "outcome"], registry=self.registry
        )
        self.backlog = Gauge(
            "sotay_outbox_backlog", "Pending outbox rows", ["channel"], registry=self.registry
        )
        self.backlog_age = Gauge(
            "sotay_outbox_oldest_age_seconds",
            "How long the oldest due outbox row has waited",
            ["channel"],
            registry=self.registry,
        )
        self.jobs_late = Gauge(
            "sotay_due_jobs_late",
            "Pending due work more than a minute late",
            registry=self.registry,
        )
        self.tickets_late = Gauge(
            "sotay_tickets_past_sla", "Open tickets past their deadline", registry=self.registry
        )

    def observe_update(self, channel: str, outcome: str, seconds: float) -> None:
        self.updates.labels(channel, outcome).inc()
        self.latency.labels(channel).observe(seconds)

    def observe_send(self, channel: str, outcome: str) -> None:
        self.sends.labels(channel, outcome).inc()

    async def render(self, db: Database, now: datetime) -> bytes:
        """The exposition text, with the shared figures read from the database now."""
        for channel, backlog in (await backlogs(db, now)).items():
            self.backlog.labels(channel).set(backlog.pending)
            self.backlog_age.labels(channel).set(backlog.oldest_age)
        async with db.reader() as session:
            late = select(func.count()).where(
                DueJob.status == JobStatus.pending,
                col(DueJob.due_at) < now - timedelta(minutes=1),
            )
            self.jobs_late.set((await session.exec(late)).one())
            past = select(func.count()).where(
                col(Ticket.status).in_([TicketStatus.open, TicketStatus.claimed]),
                col(Ticket.sla_due_at) < now,
            )
            self.tickets_late.set((await session.exec(past)).one())
        return generate_latest(self.registry)


async def backlogs(db: Database, now: datetime) -> dict[str, Backlog]:
    """Pending rows and the age of the oldest due one, per channel."""
    async with db.reader() as session:
        stmt = (
            select(
                OutboxMessage.channel,
                func.count(),
                func.min(OutboxMessage.next_attempt_at),
            )
            .where(OutboxMessage.status == OutboxStatus.pending)
            .group_by(OutboxMessage.channel)
        )
        rows = (await session.exec(stmt)).all()
    found = {}
    for channel, pending, oldest in rows:
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        found[channel] = Backlog(int(pending), age)
    return found


async def database_answers(db: Database) -> bool:
    try:
        async with db.reader() as session:
            await session.exec(select(text("1")))
    except Exception:  # noqa: BLE001 - any failure means "not ready", said as such
        return False
    return True
