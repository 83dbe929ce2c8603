"""Issue 14's done-means test at full size: `sotay run --workers 3` on PostgreSQL behind one
webhook port, driven over real HTTP by the fake Bot API server (tests/fake_telegram.py), which
delivers the webhook on up to 40 connections at once (Telegram's default), one chat in order.

500 roster members register through the real conversation (/start, language, consent, their
own contact, "that is me", three questions) while a cell secretary publishes a meeting notice
through /meeting to a cell of 2,000 registered members (seeded in the database). In the middle
of the notice one worker (not the scheduler's) is SIGKILLed; once the supervisor has restarted
it and its rows are back in play, and the notice is out, the worker holding the scheduler's
advisory lock (found through pg_locks and the socket of its connection) is SIGKILLed too. The
meeting's first reminder is moved (in the database) to fall due 3 s after that kill, inside the
fail-over; the workers run on the real clock, so "on time" is measured against it.

Asserted: nobody's message is lost (every registration completes and links the member, every
cell member gets the notice and the reminder), each member's messages arrive in order (first
copies in the expected sequence), a kill repeats at most the requests the killed worker had
marked "sending" and that is at most 2 (SOTAY_OUTBOX_IN_FLIGHT; repeats counted from the fake
server's record, per kill), and the reminder job runs within twice the election's retry interval
plus a margin (ON_TIME) and reaches its first member within DISPATCH_MARGIN more.

Rates: the point here is crash safety, not pacing, so the fake server allows 1,000 msg/s overall
and 20/s per chat (bursts of 20) and the bot's own pacing is lifted to match; the requests in
flight per worker stay at the default 2, which is what bounds the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, text, update
from sqlmodel import col, select

from bench.registration import make_roster
from bot.election import SCHEDULER_LOCK
from handlers.roster import import_roster_text
from storage import rollup
from storage.db import Database
from storage.models import (
    ChannelAccount,
    DueJob,
    JobStatus,
    Meeting,
    Member,
    OutboxMessage,
    Role,
    RoleGrant,
    Unit,
    utcnow,
)
from storage.worker_models import INCARNATION_LENGTH, Worker
from tests.fake_telegram import FakeTelegram, FakeUser, button_texts, reply_keyboard
from tests.test_telegram_e2e import SECRETARY_ID
from tests.test_workers import _children
from tests.test_workers import pg_url as pg_url  # the fixture: a fresh PostgreSQL database

SOTAY = [sys.executable, "-m", "bot.cli"]
TOKEN = "62:FULLKILL"
WORKERS = 3
# The sizes; smaller ones may be set for a look on a busy machine, never in CI.
REGISTRANTS = int(os.environ.get("SOTAY_TEST_KILL_MEMBERS", "500"))
CELL = int(os.environ.get("SOTAY_TEST_KILL_CELL", "2000"))
CONCURRENCY = 60  # people registering at once
REGISTRANT_IDS = 3_000_000
IN_FLIGHT = 2  # SOTAY_OUTBOX_IN_FLIGHT, the default: what one kill may repeat at most
HEARTBEAT = 2.0  # seconds, the default: the election retries this often
# "On time" after fail-over: the lock is free as soon as PostgreSQL sees the holder's connection
# close (at once on SIGKILL), a standby tries every HEARTBEAT seconds; twice that, plus a margin
# for a loaded CI machine, is when the reminder must have run and reached the first member.
ON_TIME = 2 * HEARTBEAT + 6.0
# Its 2,000 messages are then written in one transaction and dispatched by the workers, with the
# registrations' replies going first: the first member is reached within this much more.
DISPATCH_MARGIN = 50.0
REMINDER_AFTER_KILL = 3.0  # the reminder falls due this long after the holder is killed
REPLY_TIMEOUT = 120.0  # one step of one registration, everything else running meanwhile
NOTICE = "Sinh hoạt định kỳ"
REMINDER = "Nhắc lịch"


async def seed_cell(db: Database, server: FakeTelegram, size: int) -> list[FakeUser]:
    """A cell of ``size`` registered Telegram members and its secretary (SECRETARY_ID), written
    in bulk. The unit rollup's row triggers are off meanwhile (2,000 rows of one cell through
    them take minutes on a busy machine) and the rollup is rebuilt once after, as the migration's
    backfill does."""
    now = utcnow()
    async with db.session() as session:
        await session.exec(text("SET LOCAL session_replication_role = replica"))
        unit = Unit(name="Chi bộ lớn", path="Chi bộ lớn", depth=0, folded_name="chi bo lon")
        session.add(unit)
        await session.flush()
        cell_id = unit.id or 0
        people = [(f"Đảng viên {i}", f"+8491{i:07d}", 10_000 + i) for i in range(size)]
        people.append(("Bí thư", "+84987000001", SECRETARY_ID))
        rows = [
            {"full_name": n, "phone": p, "cell_id": cell_id, "created_at": now}
            for n, p, _ in people
        ]
        await session.exec(insert(Member), params=rows)
        ids = dict(
            (
                await session.exec(select(Member.phone, Member.id).where(Member.cell_id == cell_id))
            ).all()
        )
        accounts = [
            {
                "channel": "telegram",
                "user_ref": str(ref),
                "chat_ref": str(ref),
                "member_id": ids[p],
                "language": "vi",
                "verified": True,
                "created_at": now,
            }
            for _, p, ref in people
        ]
        await session.exec(insert(ChannelAccount), params=accounts)
        session.add(RoleGrant(member_id=ids["+84987000001"], role=Role.secretary, unit_id=cell_id))
        await session.exec(text("SET LOCAL session_replication_role = origin"))
        await rollup.rebuild(session)
    users = []
    for _, _, ref in people[:-1]:
        user = server.user(ref, language_code="vi")
        user.started = True
        users.append(user)
    return users


def body(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


def first_copies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chat's bot messages without repeats (a repeat has the text of an earlier one)."""
    seen: set[str] = set()
    out = []
    for message in messages:
        if body(message) not in seen:
            seen.add(body(message))
            out.append(message)
    return out


def duplicates(users: list[FakeUser]) -> int:
    return sum(len(u.messages) - len(first_copies(u.messages)) for u in users)


def repeated(users: list[FakeUser]) -> dict[str, int]:
    """Which texts came twice (their first 40 characters), and how often: what a failure shows."""
    found: Counter[str] = Counter()
    for user in users:
        seen: set[str] = set()
        for message in user.messages:
            if body(message) in seen:
                found[body(message)[:40]] += 1
            seen.add(body(message))
    return dict(found.most_common(8))


def worker_name(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [name] = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"SOTAY_WORKER_NAME=")]
    return name.decode()


def process_with_local_port(pids: list[int], port: int) -> int:
    """The process among ``pids`` owning the TCP socket whose local port is ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker owns local port {port}")


async def scheduler_holder(db: Database, pids: list[int]) -> int:
    """The worker process whose connection holds the scheduler's advisory lock (pg_locks)."""
    async with db.reader() as session:
        ports = (
            await session.exec(
                text(
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :high"
                    " AND l.objid = :low AND l.database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ).bindparams(high=SCHEDULER_LOCK >> 32, low=SCHEDULER_LOCK & 0xFFFFFFFF)
            )
        ).all()
    assert len(ports) == 1, ports  # one scheduler among the workers
    return process_with_local_port(pids, ports[0][0])


async def incarnation(db: Database, name: str) -> str:
    async with db.reader() as session:
        row = await session.get(Worker, name)
    assert row is not None
    return row.incarnation


def _owned_by(dead: str) -> Any:
    return func.substr(col(OutboxMessage.lease_owner), 1, INCARNATION_LENGTH) == dead


async def marked_sending(db: Database, dead: str) -> list[int]:
    """Rows whose request the dead incarnation had started: what its kill may repeat."""
    async with db.reader() as session:
        stmt = select(OutboxMessage.id).where(
            _owned_by(dead), col(OutboxMessage.sending_at).is_not(None)
        )
        return [row_id for row_id in (await session.exec(stmt)).all() if row_id is not None]


async def settled(db: Database, ids: list[int]) -> bool:
    """None of these rows is waiting any more: their repeats, if any, have been sent."""
    async with db.reader() as session:
        stmt = select(func.count()).where(
            col(OutboxMessage.id).in_(ids), OutboxMessage.status == "pending"
        )
        return int((await session.exec(stmt)).one()) == 0


async def still_held(db: Database, dead: str) -> int:
    async with db.reader() as session:
        stmt = select(func.count()).where(_owned_by(dead), OutboxMessage.status == "pending")
        return int((await session.exec(stmt)).one())


async def eventually(server: FakeTelegram, check: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    """Await ``check()`` (a database query) until true, re-checked at each server-side event."""
    deadline = time.monotonic() + timeout
    while not await check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s: {what}")
        await server.next_change(min(remaining, 1.0))


class Registrations:
    """The 500 simulated members, each going through the whole registration conversation."""

    def __init__(self, server: FakeTelegram, phones: list[str]) -> None:
        self.server = server
        self.phones = phones
        self.users = [
            server.user(REGISTRANT_IDS + i, first_name=f"Member{i}", language_code="vi")
            for i in range(len(phones))
        ]
        self.done = 0

    async def replies(self, user: FakeUser, before: int, count: int = 1) -> list[dict[str, Any]]:
        """The next ``count`` new messages (repeats of earlier ones skipped), in arrival order."""
        await self.server.wait_for(
            lambda: len(first_copies(user.messages)) >= before + count,
            timeout=REPLY_TIMEOUT,
            what=f"reply {before + 1} in chat {user.id}",
        )
        return first_copies(user.messages)[before : before + count]

    async def one(self, user: FakeUser, phone: str) -> None:
        await user.send("/start")
        [msg] = await self.replies(user, 0)
        assert button_texts(msg) == ["Tiếng Việt", "English"], msg
        await user.press(msg, "Tiếng Việt")
        [msg] = await self.replies(user, 1)
        await user.press(msg, "Đồng ý")
        [msg] = await self.replies(user, 2)
        assert reply_keyboard(msg), msg  # the contact button
        await user.share_contact(phone="84" + phone[1:])
        thanks, msg = await self.replies(user, 3, 2)  # two messages of one step, in order
        assert "Cảm ơn đồng chí." in thanks["text"], (thanks, msg)
        assert "Đồng chí có phải là" in msg["text"], (thanks, msg)
        for step, label in enumerate(("Đúng, là tôi", "Có", "Đã cài", "Đã đăng nhập")):
            await user.press(msg, label)
            [msg] = await self.replies(user, 5 + step)
        assert "Đăng ký xong" in msg["text"], msg
        self.done += 1

    async def run(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(user: FakeUser, phone: str) -> None:
            async with gate:
                await self.one(user, phone)

        await asyncio.gather(*(gated(u, p) for u, p in zip(self.users, self.phones, strict=True)))


def kind(message: dict[str, Any]) -> str:
    return "notice" if NOTICE in body(message) else "reminder" if REMINDER in body(message) else "?"


async def publish_meeting(server: FakeTelegram) -> FakeUser:
    """The secretary announces a meeting through the /meeting conversation."""
    secretary = server.user(SECRETARY_ID, language_code="vi")

    async def step(fragment: str) -> dict[str, Any]:
        while True:
            message = await secretary.next_message(timeout=REPLY_TIMEOUT)
            if fragment in (message.get("text") or "") or fragment in button_texts(message):
                return message

    await secretary.send("/meeting")
    await secretary.press(await step(NOTICE), NOTICE)
    calendar = await step("Tháng sau ▸")
    await secretary.press(calendar, "Tháng sau ▸")
    await secretary.press(await step("20"), "20")
    await secretary.press(await step("19:30"), "19:30")
    await step("")
    await secretary.send("Nhà văn hóa thôn")
    await step("")
    await secretary.send("Sinh hoạt tháng")
    await secretary.press(await step("90 phút"), "90 phút")
    preview = await step("Nhà văn hóa thôn")
    await secretary.press(preview, button_texts(preview)[0])
    return secretary


@pytest.mark.slow(seconds=112)
async def test_three_workers_lose_nothing_when_a_worker_and_then_the_scheduler_are_killed(
    pg_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    server = FakeTelegram(
        token=TOKEN,
        global_rate=(1000, 1.0),
        per_chat_rate=(20, 0.05),
        webhook_connections=40,  # Telegram's default max_connections
    )
    await server.start()
    roster, phones = make_roster(REGISTRANTS)
    db = Database(pg_url)
    async with db.session() as session:
        report = await import_roster_text(session, roster, now=utcnow())
    assert report.created == REGISTRANTS and not report.errors
    cell = await seed_cell(db, server, CELL)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")},
        "SOTAY_DATABASE_URL": pg_url,
        "SOTAY_TELEGRAM_TOKEN": TOKEN,
        "SOTAY_TELEGRAM_API_URL": server.root,
        "SOTAY_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "SOTAY_WEBHOOK_SECRET": "killtest-secret-0123456789",
        "SOTAY_WEB_PORT": str(port),
        "SOTAY_SECRET_KEY": "k",
        "SOTAY_WORKER_NAME": "w",
        "SOTAY_LOG_FORMAT": "json",
        "SOTAY_TELEGRAM_OVERALL_RATE": "1000",
        # At 1,000 msg/s the window of requests in flight would open past 2 (rate × round trip,
        # bot/inflight.py); held at 2 here, the bound the issue sets for a kill at 30 msg/s.
        "SOTAY_OUTBOX_IN_FLIGHT_MAX": str(IN_FLIGHT),
        "SOTAY_TELEGRAM_CHAT_RATE": "20",
        "SOTAY_TELEGRAM_CHAT_BURST": "20",
    }
    figures: dict[str, object] = {"setup_s": round(time.monotonic() - started, 1)}
    print("killtest setup", figures, flush=True)  # noqa: T201
    log = (tmp_path / "workers.log").open("wb")
    supervisor = await asyncio.create_subprocess_exec(
        *SOTAY, "run", "--workers", str(WORKERS), env=env, stdout=log, stderr=log, cwd=tmp_path
    )
    registrations = Registrations(server, phones)
    everyone = [*registrations.users, *cell]
    try:
        await server.wait_for(lambda: server.calls["setWebhook"] >= WORKERS, timeout=90)
        traffic = asyncio.create_task(registrations.run())
        secretary = await publish_meeting(server)

        def notices() -> int:
            return sum(1 for u in cell if any(NOTICE in body(m) for m in u.messages))

        # --- kill 1: a worker that does not hold the scheduler, mid-notice -----------------------
        await server.wait_for(lambda: notices() >= CELL // 4, timeout=120)
        holder = await scheduler_holder(db, _children(supervisor.pid))
        victim = next(pid for pid in _children(supervisor.pid) if pid != holder)
        name = worker_name(victim)
        dead = await incarnation(db, name)
        assert duplicates(everyone) == 0, repeated(everyone)  # before any kill: no repeats
        os.kill(victim, signal.SIGKILL)
        figures["kill1_notices_delivered"] = notices()
        figures["kill1_registrations_done"] = registrations.done
        assert notices() < CELL and registrations.done < REGISTRANTS  # really mid-traffic
        repeatable = await marked_sending(db, dead)
        figures["kill1_marked"] = marked = len(repeatable)
        assert marked <= IN_FLIGHT
        await server.wait_for(lambda: server.calls["setWebhook"] >= WORKERS + 1, timeout=90)

        async def released() -> bool:
            return await still_held(db, dead) == 0 and await incarnation(db, name) != dead

        await eventually(server, released, 60, "the restarted worker takes its rows back")
        await eventually(
            server, lambda: settled(db, repeatable), 60, "the killed worker's rows are sent"
        )
        figures["kill1_duplicates"] = first_kill = duplicates(everyone)
        assert first_kill <= marked

        # --- kill 2: the scheduler's holder, the reminder falling due during the fail-over ----
        # Once the notice is out: the reminder's rows would otherwise queue behind it (one
        # broadcast after the other), and "on time" would measure the notice, not the fail-over.
        await server.wait_for(lambda: notices() == CELL, timeout=300)
        holder = await scheduler_holder(db, _children(supervisor.pid))
        dead = await incarnation(db, worker_name(holder))
        due = datetime.now(UTC) + timedelta(seconds=REMINDER_AFTER_KILL)
        async with db.session() as session:
            meeting = (await session.exec(select(Meeting))).one()
            reminders = select(DueJob).where(
                DueJob.kind == "mt_reminder", DueJob.status == JobStatus.pending
            )
            first_reminder = (await session.exec(reminders.order_by(col(DueJob.due_at)))).first()
            assert first_reminder is not None
            await session.exec(
                update(DueJob).where(col(DueJob.id) == first_reminder.id).values(due_at=due)
            )
        reminder_id = first_reminder.id
        os.kill(holder, signal.SIGKILL)
        figures["kill2_notices_delivered"] = notices()
        figures["kill2_registrations_done"] = registrations.done
        figures["kill2_marked"] = marked = len(await marked_sending(db, dead))
        assert marked <= IN_FLIGHT

        def reminded() -> bool:
            return any(REMINDER in body(m) for u in cell for m in u.messages)

        await server.wait_for(reminded, timeout=ON_TIME + REMINDER_AFTER_KILL + 30)
        first_reached = datetime.now(UTC)
        async with db.reader() as session:
            job = await session.get(DueJob, reminder_id)
        assert job is not None and job.status == JobStatus.done and job.done_at is not None
        ran_late = (job.done_at.replace(tzinfo=UTC) - due).total_seconds()
        reached_late = (first_reached - due).total_seconds()
        figures["reminder_job_late_s"] = round(ran_late, 2)
        figures["reminder_first_delivery_late_s"] = round(reached_late, 2)
        assert ran_late <= ON_TIME and reached_late <= ON_TIME + DISPATCH_MARGIN
        assert meeting.starts_at is not None

        # --- everything arrives, once, in order -----------------------------------------------
        await asyncio.wait_for(traffic, timeout=600)
        await server.wait_for(
            lambda: all(
                sum(REMINDER in body(m) for m in first_copies(u.messages)) == 1 for u in cell
            ),
            timeout=300,
        )
        reminder_done = datetime.now(UTC)
        figures["reminder_fanout_s"] = round((reminder_done - due).total_seconds(), 1)
        for user in cell:
            kinds = [kind(m) for m in first_copies(user.messages)]
            assert kinds == ["notice", "reminder"], (user.id, kinds)
        for user in registrations.users:
            assert len(first_copies(user.messages)) == 9, (user.id, len(user.messages))
        async with db.reader() as session:
            linked = await session.exec(
                select(func.count()).where(
                    col(ChannelAccount.user_ref).in_([str(u.id) for u in registrations.users]),
                    col(ChannelAccount.member_id).is_not(None),
                    ChannelAccount.verified == True,  # noqa: E712
                )
            )
            assert linked.one() == REGISTRANTS
        assert any("Báo cáo gửi" in (m["text"] or "") for m in secretary.messages)
        figures["kill2_duplicates"] = second_kill = duplicates(everyone) - first_kill
        assert second_kill <= marked <= IN_FLIGHT
        figures["duplicates_total"] = duplicates(everyone)
        figures["messages_total"] = sum(len(u.messages) for u in everyone)

        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), timeout=20) == 0
        lines = (tmp_path / "workers.log").read_text().splitlines()
        assert not any(TOKEN in line for line in lines)
    finally:
        figures["wall_s"] = round(time.monotonic() - started, 1)
        print("\nkilltest figures:", json.dumps(figures))  # noqa: T201 - the report's figures
        if supervisor.returncode is None:  # a failure: no worker may outlive the test
            for pid in _children(supervisor.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            supervisor.kill()
            await supervisor.wait()
        log.close()
        await db.dispose()
        await server.stop()
