"""A ticket's forum topic is created outside the job's write transaction (issue 10): the
network call runs once the job has committed, the topic id is recorded in a short transaction of
its own, and two runs that race record one topic and post one card."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import select

from bot.scheduler import Scheduler
from storage.db import Database
from storage.models import DueJob, JobStatus, TicketTopic
from tests.conftest import World
from tests.test_support import AN, GROUP, TopicRecorder, bind_group, link, report, rows


@dataclass
class WatchingRecorder(TopicRecorder):
    """Notes, at each create_topic call, what another connection sees of the jobs, and whether
    it can write at all (on SQLite a transaction still open would hold the one writer's lock);
    ``during_call`` runs inside the first call, as a second process would meanwhile."""

    db: Database | None = None
    seen: list[list[tuple[str, JobStatus]]] = field(default_factory=list)
    during_call: object = None

    async def create_topic(self, chat_ref: str, name: str) -> str:
        assert self.db is not None
        async with self.db.reader() as session:
            jobs = (await session.exec(select(DueJob).where(DueJob.kind == "ticket_topic"))).all()
        self.seen.append(sorted((str(job.payload.get("tries")), job.status) for job in jobs))
        async with asyncio.timeout(5), self.db.session() as session:  # the write lock is free
            await session.exec(select(DueJob.id).limit(1))
        during, self.during_call = self.during_call, None
        if callable(during):
            await during()
        return await super().create_topic(chat_ref, name)


async def watched_world(world: World) -> tuple[World, WatchingRecorder]:
    recorder = WatchingRecorder(db=world.app.db)
    world.app.add_channel(recorder)
    return World(world.app, recorder, world.clock), recorder


async def test_the_topic_is_created_after_the_job_committed_then_recorded(world: World) -> None:
    world, recorder = await watched_world(world)
    an = await link(world, "an", AN)
    await bind_group(world, world.chat("canbo"))
    await report(an)
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    # At the call the job was already done (committed) and its next try scheduled: a crash
    # during the call loses nothing.
    assert recorder.seen == [[("0", JobStatus.done), ("1", JobStatus.pending)]]
    [topic] = await rows(world, TicketTopic)
    assert topic.thread_ref == "501"
    assert recorder.sent[GROUP][-1].thread_ref == "501"  # the card, in the topic
    statuses = {job.status for job in await rows(world, DueJob, DueJob.kind == "ticket_topic")}
    assert statuses == {JobStatus.done, JobStatus.skipped}  # the unneeded next try is settled


async def test_two_runs_that_race_record_one_topic_and_post_one_card(world: World) -> None:
    world, recorder = await watched_world(world)
    an = await link(world, "an", AN)
    await bind_group(world, world.chat("canbo"))
    other = Scheduler(world.app.db, world.app.services, wake=lambda: None)  # a second process

    async def second_run_meanwhile() -> None:
        world.clock.advance(timedelta(minutes=5))  # the first call is slow: the retry is due
        assert await other.tick() == 1  # it creates its topic and records it first

    recorder.during_call = second_run_meanwhile
    await report(an)
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert len(recorder.topics[GROUP]) == 2  # both runs called Telegram...
    [topic] = await rows(world, TicketTopic)
    assert topic.thread_ref == "501"  # ...the second run's call finished first and won
    cards = [view for view in recorder.sent[GROUP] if "Yêu cầu #1" in view.text]
    assert [card.thread_ref for card in cards] == ["501"]  # one card, in the recorded topic
