"""The one port for outbound messages, and the dispatcher that drains it.

Handlers never talk to a messenger. They add rows here inside their own transaction; the
dispatcher sends them after commit, so a rolled-back handler never sends anything and a crash
after commit loses nothing. Per chat, messages leave in the order they were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    TextClause,
    Update,
    bindparam,
    delete,
    exists,
    func,
    update,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import choices
from bot.channels.base import (
    Blocked,
    Channel,
    ChannelPaused,
    OutsideWindow,
    Rejected,
    RetryLater,
    SendError,
    Transient,
)
from bot.clock import Clock
from bot.core import View
from bot.inflight import InFlightWindow
from bot.outbox_journal import SendJournal
from bot.ratelimit import RateLimiter
from bot.workers import (
    WorkerIdentity,
    alive_since,
    beat,
    live_workers,
    owner_alive,
    register,
    retire,
)
from storage.db import Database, Prepared, is_postgres
from storage.models import ChannelAccount, OutboxMessage, OutboxStatus
from storage.queries import direct_reply_waiting
from storage.worker_models import INCARNATION_LENGTH

log = logging.getLogger("sotay.outbox")

LEASE = timedelta(seconds=60)
HEARTBEAT = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)


WRITTEN = "outbox.written"
"""``session.info`` key: the rows ``Outbox.add`` wrote in the session's transaction."""
BULK = "outbox.bulk"
"""``session.info`` key, set by ``bulk_written``: rows were written without ``Outbox.add``."""


def bulk_written(session: AsyncSession) -> None:
    """Say that this transaction wrote outbox rows in bulk (one INSERT for a notice's
    recipients): the dispatcher's drain loop, not the hand-over, sends them."""
    session.info[BULK] = True


@dataclass(frozen=True)
class Handover:
    """What ``Dispatcher.take`` leased to this worker inside a handler's transaction."""

    rows: list[OutboxMessage]
    complete: bool  # every row the transaction wrote is among them: no need to wake the drain


@dataclass(frozen=True)
class _ClaimShape:
    """Which filters a claim has. Its statements are built once per shape (with bound
    parameters): a claim runs for nearly every reply, and building a statement and its cache
    key costs several times what running it does (issue 14's core throughput)."""

    postgres: bool  # several workers: rows locked with SKIP LOCKED, chats' order kept in SQL
    channel: bool  # one channel's rows only
    chat: bool  # one chat's rows only
    paused: bool  # channels paused by a 429 are left out
    in_hand: bool  # chats whose taken replies are leaving are left out


@cache  # a few shapes and one batch size: built once each, like the journal's writes
def _claim_statement(shape: _ClaimShape, batch: int) -> Update:
    """The lease of the due rows, returning them: one statement, run on its own (on
    PostgreSQL in autocommit: one round trip for a claim, which took five as a transaction of
    a locking read, an order check and the lease). The parameters are ``Dispatcher._claim``'s,
    none named like a column (an UPDATE sets every column its parameters name)."""
    now: BindParameter[datetime] = bindparam("now")
    free = (
        (col(OutboxMessage.lease_until).is_(None))
        | (col(OutboxMessage.lease_until) < now)
        | ~owner_alive(bindparam("alive_since"))  # its worker died or restarted: free at once
    )
    due: Select[Any] = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.pending)
        .where(col(OutboxMessage.next_attempt_at) <= now)
        .where(free)
        # Replies and progress first, bulk notices after (each in its queued order): a
        # member who asks something during a province-wide notice is not kept waiting.
        .order_by(col(OutboxMessage.broadcast_id).is_not(None), col(OutboxMessage.id))
        .limit(batch)
    )
    if shape.channel:
        due = due.where(col(OutboxMessage.channel) == bindparam("only_channel"))
    if shape.chat:
        due = due.where(col(OutboxMessage.chat_ref) == bindparam("only_chat"))
    if shape.paused:
        due = due.where(col(OutboxMessage.channel).not_in(bindparam("paused", expanding=True)))
    if shape.in_hand:
        due = due.where(col(OutboxMessage.chat_ref).not_in(bindparam("in_hand", expanding=True)))
    # SQLite is one process: nobody else claims, so nothing older is held elsewhere.
    chosen = _in_chat_order(due) if shape.postgres else col(OutboxMessage.id).in_(due)
    return (
        update(OutboxMessage)
        .where(chosen, col(OutboxMessage.status) == OutboxStatus.pending)
        .where(free)
        .values(lease_until=bindparam("lease_to"), lease_owner=bindparam("owner"), sending_at=None)
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False)
    )


def _in_chat_order(due: Select[Any]) -> ColumnElement[bool]:
    """Several workers: the due rows this claim locks (others' claims skip them, and it skips
    theirs), less those that would overtake a row of their chat: an older row in the same lane
    (replies, or a bulk notice) that another worker holds, or is claiming right now (SKIP
    LOCKED hid it from this claim), or that is not due yet. A member's messages then leave in
    the order they were written. Rows this worker holds hold nothing back."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    picked = (
        due.with_only_columns(
            col(OutboxMessage.id),
            col(OutboxMessage.channel),
            col(OutboxMessage.chat_ref),
            col(OutboxMessage.broadcast_id).is_(None).label("direct"),
        )
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    older = table.alias("older")
    now: BindParameter[datetime] = bindparam("now")
    ours = (
        func.substr(func.coalesce(older.c.lease_owner, ""), 1, INCARNATION_LENGTH)
        == bindparam("mine")
    ) & (func.coalesce(older.c.lease_until, now) > now)
    overtakes = exists().where(
        older.c.status == OutboxStatus.pending,
        older.c.channel == picked.c.channel,
        older.c.chat_ref == picked.c.chat_ref,
        older.c.broadcast_id.is_(None) == picked.c.direct,
        older.c.id < picked.c.id,
        older.c.id.not_in(select(picked.c.id)),
        ~ours,
    )
    return (col(OutboxMessage.id) == picked.c.id) & ~overtakes


# The chats among ``chats`` with a reply waiting that is not ``ours`` (``Dispatcher.take``).
_REPLIES_WAITING = (
    select(OutboxMessage.channel, OutboxMessage.chat_ref)
    .where(
        direct_reply_waiting(),
        col(OutboxMessage.chat_ref).in_(bindparam("chats", expanding=True)),
        col(OutboxMessage.id).not_in(bindparam("ours", expanding=True)),
    )
    .distinct()
)


def _provisional(row: OutboxMessage) -> int:
    """The key of a place in flight held for a row before it has an id (negative: no id's)."""
    return -id(row)


def _the_one_new_row(session: AsyncSession) -> OutboxMessage | None:
    """The transaction's only outbox row not yet in the table, if it has just one such."""
    new = [obj for obj in session.new if isinstance(obj, OutboxMessage)]
    return new[0] if len(new) == 1 else None


@cache
def _insert_riding_choices() -> TextClause:
    """The INSERT of an outbox row (all its columns but the id, returned) with its choices'
    upsert riding along (``choices.riding_with``), built once."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    columns = [column for column in table.columns if not column.primary_key]
    names = ", ".join(column.name for column in columns)
    values = ", ".join(f":o_{column.key}" for column in columns)
    insert = f"INSERT INTO {table.name} ({names}) VALUES ({values}) RETURNING id"
    typed = [bindparam(f"o_{column.key}", type_=column.type) for column in columns]
    return choices.riding_with(insert, *typed)


async def _insert_with_its_choices(
    session: AsyncSession, row: OutboxMessage, offered: Prepared
) -> None:
    """PostgreSQL: a handler's one new reply, offering choices, goes into the table with its
    choices' upsert in one statement (the ORM would insert it at the commit, and the upsert is
    a round trip of its own: issue 14's core throughput). The row then stands in the session
    as if loaded, with its id: the commit does not insert it again, and what changes on it
    later in the transaction is written as an UPDATE."""
    columns = OutboxMessage.__table__.columns  # type: ignore[attr-defined]
    values = {f"o_{c.key}": getattr(row, c.key) for c in columns if not c.primary_key}
    connection = await session.connection()
    result = await connection.execute(_insert_riding_choices(), {**offered.params, **values})
    row_id = result.scalar_one()
    session.expunge(row)
    row.id = row_id
    make_transient_to_detached(row)
    session.add(row)


@dataclass
class _Lane:
    """A chat's rows handed over by ``take``, leaving one after the other."""

    rows: deque[OutboxMessage] = field(default_factory=deque)
    ids: set[int] = field(default_factory=set)  # every row it took (not in the drain's way)
    closed: bool = False  # a row had to wait: what comes now goes back to the drain loop
    current: OutboxMessage | None = None  # the row leaving now

    def waits_for_a_place(self) -> bool:
        """Whether a row of it may still wait for a place in flight: a row marked now, which
        holds a place, must not queue behind it (all places could end up held by rows waiting
        behind rows that wait for a place)."""
        ahead = [*self.rows, *([self.current] if self.current is not None else [])]
        return self.closed or any(row.sending_at is None for row in ahead)

    def add(self, row: OutboxMessage) -> None:
        self.rows.append(row)
        self.ids.add(row.id or 0)


class _NotStarted(Exception):
    """The row's channel is paused (a 429 for the whole channel): its request never started."""


class Outbox:
    """Writes outbound messages as rows of the caller's transaction."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def add(
        self,
        session: AsyncSession,
        *,
        channel: str,
        chat_ref: str,
        view: View,
        member_id: int | None = None,
        dedupe_key: str | None = None,
    ) -> OutboxMessage:
        now = self._clock.now()
        row = OutboxMessage(
            channel=channel,
            chat_ref=chat_ref,
            member_id=member_id,
            payload=view.to_payload(),
            dedupe_key=dedupe_key,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        session.info.setdefault(WRITTEN, []).append(row)
        return row


class Dispatcher:
    """Sends due outbox rows through their channels, recording every outcome."""

    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        clock: Clock,
        *,
        max_attempts: int = 8,
        concurrency: int = 16,
        batch: int = 200,
        limiters: dict[str, RateLimiter] | None = None,
        lease: timedelta = LEASE,
        identity: WorkerIdentity | None = None,
        heartbeat: timedelta = HEARTBEAT,
        in_flight: int = 2,
        in_flight_max: int | None = None,
    ) -> None:
        self._db = db
        self._postgres = is_postgres(db.engine)
        self._lease = lease
        # Crash safety (issue 14): leases carry our incarnation, kept alive by a heartbeat;
        # every row is marked "sending" (committed) before its request starts.
        self.identity = identity or WorkerIdentity(f"dispatcher-{uuid.uuid4().hex[:8]}")
        self._heartbeat = heartbeat
        self._registered = False
        # Requests in flight: from ``in_flight`` up to ``in_flight_max`` as each channel's target
        # rate × answer time needs (None: fixed at ``in_flight``).
        self.window = InFlightWindow(in_flight, in_flight_max, rate_of=self._target_rate)
        self._journal = SendJournal(db, self.window)
        self._stopping = False
        # (channel, outcome) of every send attempt, for the operator's metrics
        self.on_outcome: Callable[[str, str], None] | None = None
        self._limiters = limiters or {}
        self.on_progress: Callable[[set[int]], Awaitable[None]] | None = None
        # Called at each heartbeat (work that must not wait for the next send, e.g. a notice's
        # final report when the worker that sent its last messages died before writing it).
        self.on_heartbeat: Callable[[], Awaitable[None]] | None = None
        self._channels = channels
        self._clock = clock
        self._max_attempts = max_attempts
        self._semaphore = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._wake = asyncio.Event()
        self._paused_until: dict[str, datetime] = {}
        # Another way to reach a member outside a channel's window; returns what was done.
        self.on_outside_window: Callable[[OutboxMessage], Awaitable[str]] | None = None
        self._running = False
        self._in_hand: dict[tuple[str, str], _Lane] = {}  # chats whose taken replies leave
        self._held_back: set[tuple[str, str]] = set()  # ... and that the drain loop skipped
        self._handing: set[asyncio.Task[None]] = set()

    def add_limiter(self, channel: str, limiter: RateLimiter) -> None:
        self._limiters[channel] = limiter

    def _target_rate(self, channel: str) -> float | None:
        limiter = self._limiters.get(channel)
        return None if limiter is None else limiter.overall_rate

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, idle: float = 5.0) -> None:
        """Drain the outbox until cancelled. A database hiccup (e.g. a lock held too long) is
        logged and retried: this loop is the only way replies leave, it must never die."""
        heart = asyncio.create_task(self._beat_forever(), name="heartbeat")
        self._running = True
        try:
            await self._drain_forever(idle)
        finally:
            self._running = False
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart

    async def _beat_forever(self) -> None:
        """Beat every ``heartbeat``, whatever else is slow. The other workers take a worker
        silent for a few beats for dead and lease its rows again, including rows whose request
        it may be sending: a beat that waits behind other work (the heartbeat's own chores, such
        as the broadcast sweep, which waits for a notice's row lock) can get messages sent twice. So
        the chores run in a task of their own, one at a time, and never hold up the next beat."""
        chores: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(self._heartbeat.total_seconds())
                try:
                    if self._registered:
                        await beat(self._db, self.identity, self._clock.now)
                        # The Bot API's limits are per bot, not per process: share them.
                        workers = await live_workers(self._db, self._clock.now(), self._heartbeat)
                        for limiter in self._limiters.values():
                            limiter.share(workers)
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                    log.warning("worker.beat_failed")
                if self.on_heartbeat is not None and (chores is None or chores.done()):
                    chores = asyncio.create_task(self._heartbeat_chores(), name="heartbeat-chores")
        finally:
            if chores is not None:
                chores.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chores

    async def _heartbeat_chores(self) -> None:
        try:
            if self.on_heartbeat is not None:
                await self.on_heartbeat()
        except Exception:  # noqa: BLE001 - tried again at a later beat
            log.warning("worker.heartbeat_chores_failed")

    async def _ensure_registered(self) -> None:
        if not self._registered:
            await register(self._db, self.identity, self._clock.now())
            self._registered = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_taking(self) -> None:
        """Graceful stop, first step: claim and start nothing more; requests already started
        finish and are recorded, and ``run_forever`` returns once they are."""
        self._stopping = True
        self._wake.set()

    @property
    def lanes(self) -> set[asyncio.Task[None]]:
        """The hand-over's lanes still sending (a stop waits for them as for the drain loop)."""
        return set(self._handing)

    async def retire(self, grace: float = 5.0) -> None:
        """A clean stop: record the answers in flight, then hand our leases back at once. A
        hand-over lane still sending after ``grace`` seconds is cancelled (its rows' leases
        go back with ours)."""
        if self._handing:
            _done, late = await asyncio.wait(set(self._handing), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._journal.drain()
        if self._registered:
            await retire(self._db, self.identity)
            self._registered = False

    async def take(
        self, session: AsyncSession, known: Mapping[tuple[str, str], bool] | None = None
    ) -> Handover:
        """Called by the router inside a handler's transaction, just before it commits: the
        replies it wrote that can leave at once are leased to this worker, those with a place
        in flight free also marked "sending" (with the choices they offer), in that same
        commit; they leave right after it through ``send_taken``, behind the chat's replies
        still leaving. An interactive reply thus costs no claim and no commit of its own before
        its request (issue 14's core throughput). A reply stays for the drain loop when an
        older message to its chat waits in the table (a member's messages leave in the order
        they were written), when it is due later, when this dispatcher is not serving, or
        when it is busy (requests in flight): then the drain loop's batched claims and group
        commits cost less per message than a lane per chat (measured: bench/core_throughput).

        ``known``: chats whose waiting replies the transaction read already (the router reads
        the sender's with the sender, ``queries.who_writes``): only the other chats are looked
        up, so a reply to the sender costs no query here. That read came at the transaction's
        start; a reply another transaction commits to the chat meanwhile is as concurrent as
        one committed just after this check, and either may leave first."""
        written: list[OutboxMessage] = session.info.pop(WRITTEN, [])
        if not (self._running and self._registered and written) or self._stopping:
            return Handover([], complete=False)
        if self.window.in_flight > 0 or self._in_hand:  # busy: see the docstring
            return Handover([], complete=False)
        now = self._clock.now()
        ready = [
            row
            for row in written
            if row.broadcast_id is None
            and (row.next_attempt_at or now) <= now
            and row.channel in self._channels
            and not self._paused(row.channel)
            and row not in session.deleted
        ]
        chats = {(row.channel, row.chat_ref) for row in ready}
        known = known or {}
        chats -= {chat for chat in chats if known.get(chat)}
        unknown = {chat for chat in chats if chat not in known}
        if unknown:
            ours = [r.id for r in written if r.id]  # (no lane is in hand: see above)
            params = {"chats": sorted({chat for _channel, chat in unknown}), "ours": ours}
            with session.no_autoflush:  # the rows written here are not in the table yet
                older = await session.exec(_REPLIES_WAITING, params=params)
                chats -= set(older.all())
        ready = [row for row in ready if (row.channel, row.chat_ref) in chats]
        token = self.identity.lease_token()
        handover = Handover(ready, complete=False)
        try:
            await self._mark_taken(session, ready, token, now)
        except BaseException:  # e.g. cancelled: the places held so far must not leak
            self.abandon(handover)
            raise
        complete = len(ready) == len(written) and not session.info.get(BULK)
        return Handover(ready, complete)

    async def _mark_taken(
        self, session: AsyncSession, ready: list[OutboxMessage], token: str, now: datetime
    ) -> None:
        unmarked = {chat for chat, lane in self._in_hand.items() if lane.waits_for_a_place()}
        offers: list[tuple[OutboxMessage, Prepared]] = []
        for row in ready:
            row.lease_owner, row.lease_until = token, now + self._lease
            # Marked "sending" here only with a place in flight held for it (a kill repeats at
            # most the window), and only at the head of its chat's lane, so a row holding a
            # place never waits behind one waiting for a place; the others are marked by the
            # journal when their turn comes.
            chat = (row.channel, row.chat_ref)
            if chat in unmarked or not self.window.try_hold(_provisional(row)):
                unmarked.add(chat)
            else:
                row.sending_at = now
                view = View.from_payload(row.payload)
                offered = choices.remembered(row.channel, row.chat_ref, view, now)
                if offered is not None:  # the last row's choices are the chat's (an upsert)
                    offers.append((row, offered))
        if self._postgres and len(offers) == 1 and _the_one_new_row(session) is offers[0][0]:
            await _insert_with_its_choices(session, *offers[0])
            return
        for _row, offered in offers:
            await offered.run(session)

    def abandon(self, handover: Handover) -> None:
        """The transaction did not commit: free the places ``take`` held."""
        for row in handover.rows:
            self.window.release(_provisional(row))

    def send_taken(self, handover: Handover) -> None:
        """After the commit: send what ``take`` leased, each chat's rows behind those of its
        lane still leaving (one lane per chat, beside the drain loop)."""
        for row in handover.rows:
            chat = (row.channel, row.chat_ref)
            lane = self._in_hand.get(chat)
            if lane is not None and row.sending_at is not None and lane.waits_for_a_place():
                # Another transaction's row to this chat came first and waits for a place: this
                # one gives its place back and waits its turn (its mark is re-committed then).
                self.window.release(_provisional(row))
                row.sending_at = None
            self.window.rekey(_provisional(row), row.id or 0)
            if lane is None:
                lane = self._in_hand[chat] = _Lane()
                task = asyncio.create_task(self._run_lane(chat, lane), name="outbox-lane")
                self._handing.add(task)
                task.add_done_callback(self._handing.discard)
            lane.add(row)

    async def _run_lane(self, chat: tuple[str, str], lane: _Lane) -> None:
        """Send a chat's taken rows as they come; at the first that must wait (a chat's pace,
        a paused channel, a stop), hand the rest back to the drain loop and end."""
        try:
            while lane.rows and not lane.closed:
                lane.current = lane.rows.popleft()
                not_started, finished = await self._send_chat([lane.current], slot=False)
                lane.current = None
                if not finished:
                    lane.closed = True
                    lane.rows.extendleft(not_started)
        except Exception:  # the drain loop's way: logged, and the rows go back at once
            log.exception("outbox.lane_failed")
            lane.closed = True
            if lane.current is not None:  # if it was sent already, it is not pending
                lane.rows.appendleft(lane.current)
        finally:
            while lane.rows:  # rows that came meanwhile go back too, before the lane ends
                back = list(lane.rows)
                lane.rows.clear()
                with contextlib.suppress(Exception):
                    await self._release(back)
            del self._in_hand[chat]
            for row_id in lane.ids:  # places held for rows handed back (a no-op for the rest)
                self.window.release(row_id)
            if lane.closed or chat in self._held_back:  # the drain loop skipped this chat
                self._held_back.discard(chat)
                self.wake()

    async def _drain_forever(self, idle: float) -> None:
        while not self._stopping:
            try:
                # Cleared before claiming: a commit from now on wakes the next turn at once.
                self._wake.clear()
                await self.run_once(until_drained=True)
                if self._wake.is_set():
                    continue
                if self.stopping:
                    return
                timeout = await self._idle_wait(idle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox.dispatch_failed")
                timeout = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _idle_wait(self, idle: float) -> float:
        async with self._db.reader() as session:
            stmt = select(OutboxMessage.next_attempt_at).where(
                OutboxMessage.status == OutboxStatus.pending
            )
            due = (
                await session.exec(stmt.order_by(col(OutboxMessage.next_attempt_at)).limit(1))
            ).first()
        if due is None:
            return idle
        now = self._clock.now()
        pauses = [until for until in self._paused_until.values() if until > now]
        if pauses:
            due = max(due, min(pauses))
        return min(idle, max(0.05, (due - now).total_seconds()))

    async def run_once(
        self,
        channel: str | None = None,
        chat_ref: str | None = None,
        *,
        until_drained: bool = False,
    ) -> int:
        """Send everything due now (optionally for one chat); return how many rows were handled.
        ``until_drained``: stop after a claim that found fewer rows than a batch and queued no
        progress edits, instead of claiming once more to find nothing (rows written meanwhile
        wake the dispatcher; rows due later are what ``_idle_wait`` waits for)."""
        handled = 0
        while not self._stopping and (rows := await self._claim(channel, chat_ref)):
            by_chat: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                by_chat[(row.channel, row.chat_ref)].append(row)
            lanes = [self._send_chat(chat_rows) for chat_rows in by_chat.values()]
            # Rows a channel-wide 429 kept from starting go back unchanged in one write (not one
            # postponing write each: a paused channel is not claimed until its pause ends).
            sent = await asyncio.gather(*lanes)
            await self._release([row for not_started, _finished in sent for row in not_started])
            handled += len(rows)
            broadcasts = {row.broadcast_id for row in rows if row.broadcast_id is not None}
            if broadcasts and self.on_progress is not None:
                await self.on_progress(broadcasts)
            elif until_drained and len(rows) < self._batch:
                break
        return handled

    async def _claim(self, channel: str | None, chat_ref: str | None) -> Sequence[OutboxMessage]:
        """Lease due rows to this dispatcher. The conditional UPDATE makes the lease atomic on
        SQLite too (where SELECT ... FOR UPDATE does not exist): only rows we flipped are ours."""
        now = self._clock.now()
        paused = [name for name, until in self._paused_until.items() if until > now]
        await self._ensure_registered()
        shape = _ClaimShape(
            postgres=self._postgres,
            channel=bool(channel),
            chat=bool(chat_ref),
            paused=bool(paused),
            in_hand=bool(self._in_hand),
        )
        lease = _claim_statement(shape, self._batch)
        params: dict[str, Any] = {
            "now": now,
            "alive_since": alive_since(now, self._heartbeat),
            "only_channel": channel,
            "only_chat": chat_ref,
            "paused": paused,
            "in_hand": sorted(self._in_hand_chats()),
            "lease_to": now + self._lease,
            "owner": self.identity.lease_token(),
            "mine": self.identity.incarnation,
        }
        if self._in_hand:  # chats whose replies are being sent right now (``take``)
            self._held_back |= set(self._in_hand)
        async with self._db.autocommit_session() as session:
            leased = await session.exec(lease, params=params)
            return sorted(leased.scalars().all(), key=lambda row: row.id or 0)

    def _in_hand_chats(self) -> set[str]:
        return {chat_ref for _channel, chat_ref in self._in_hand}

    def _paused(self, channel: str) -> bool:
        paused = self._paused_until.get(channel)
        return paused is not None and paused > self._clock.now()

    async def _send_chat(
        self, rows: list[OutboxMessage], *, slot: bool = True
    ) -> tuple[list[OutboxMessage], bool]:
        """Send one chat's rows in order; stop at the first that must wait. Returns the rows
        not started because their channel is paused, for the caller to hand back at once, and
        whether every row went on (False: one waits, the rows after it were handed back).

        ``slot``: take one of the drain loop's slots for chats at once (``concurrency``). A
        hand-over lane takes none: its rows may hold places in flight since ``take``, and a
        drain chat holds its slot while it waits for a place; a lane waiting for a slot could
        then wait for ever, and every send with it (issue 14's stalled bot). Lanes are few: a
        take happens only when the dispatcher is idle."""
        async with self._semaphore if slot else contextlib.nullcontext():
            for row in rows:
                if self._stopping:  # a graceful stop: what has not started is handed back
                    await self._release(rows[rows.index(row) :])
                    return [], False
                try:
                    went_on = await self._send_row(row)
                except _NotStarted:
                    return rows[rows.index(row) :], False
                finally:  # outcome written (or never started): its place in flight is free
                    self._journal.answered(row.id or 0)
                if not went_on:
                    await self._release(rows[rows.index(row) + 1 :])
                    return [], False
        return [], True

    async def _send_row(self, row: OutboxMessage) -> bool:
        channel = self._channels.get(row.channel)
        if channel is None:
            await self._finish(row, OutboxStatus.failed, error="no such channel")
            return True
        if self._paused(row.channel):  # a channel-wide 429 is in force
            raise _NotStarted
        limiter = self._limiters.get(row.channel)
        if limiter is not None:
            chat_wait = limiter.chat_wait(row.chat_ref)
            if chat_wait > 0:  # this chat is busy: let the others go first
                await self._postpone_chat(row, timedelta(seconds=chat_wait), counts=False)
                return False
            # Wait for a channel-wide token before taking it: tokens reserved ahead would all
            # fall due together after a stall of a busy machine, a burst the server refuses.
            while (overall_wait := limiter.overall_wait()) > 0:
                await asyncio.sleep(overall_wait)
                if self._paused(row.channel):  # a 429 came meanwhile
                    raise _NotStarted
            limiter.reserve(row.chat_ref)
        await self.window.acquire(row.id or 0)  # a place in flight (freed by _send_chat)
        if self._paused(row.channel):  # a 429 came while it waited for the place
            raise _NotStarted
        view = View.from_payload(row.payload)
        if view.edit_of is not None:
            target = await self._edit_target(view.edit_of)
            if target is None:  # the original is not sent yet: edit after it
                await self._postpone_chat(row, timedelta(seconds=1), counts=False)
                return False
            view.edit_ref = target
        now = self._clock.now()
        if row.sending_at is None:  # else marked already, in the commit that wrote it (take)
            offered = choices.remembered(row.channel, row.chat_ref, view, now)
            await self._journal.sending(row.id or 0, now, offered)
        try:
            with self.window.round_trip(row.channel):  # sizes the window of requests in flight
                external_id = await channel.send(row.chat_ref, view)
        except RetryLater as exc:
            self._count(row, "rate_limited")
            await self._postpone_chat(row, timedelta(seconds=exc.seconds), counts=False)
            chat_only = exc.scope == "chat" and (
                limiter is None or limiter.recently_sent(row.chat_ref)
            )
            if not chat_only:  # not the chat's own pace: the whole channel is over its limit
                self._paused_until[row.channel] = self._clock.now() + timedelta(seconds=exc.seconds)
                if limiter is not None:
                    limiter.channel_limited(exc.seconds)
            log.info(
                "outbox.rate_limited channel=%s wait=%s scope=%s",
                row.channel,
                exc.seconds,
                "chat" if chat_only else "channel",
            )
            return False
        except ChannelPaused as exc:
            self._count(row, "paused")
            self._paused_until[row.channel] = self._clock.now() + timedelta(seconds=exc.seconds)
            await self._postpone_chat(row, timedelta(seconds=exc.seconds), counts=False)
            log.info(
                "outbox.channel_paused channel=%s wait=%s reason=%s",
                row.channel,
                exc.seconds,
                exc.reason,
            )
            return False
        except Blocked:
            self._count(row, "blocked")
            await self._mark_blocked(row, started=now)
            return False
        except Rejected as exc:
            self._count(row, "rejected")
            log.warning("outbox.rejected id=%s channel=%s error=%s", row.id, row.channel, exc)
            await self._finish(row, OutboxStatus.failed, error=str(exc)[:200])
            return True
        except OutsideWindow as exc:
            self._count(row, "outside_window")
            note = await self.on_outside_window(row) if self.on_outside_window else str(exc)
            await self._finish(row, OutboxStatus.failed, error=note[:200])
            return True
        except (Transient, SendError, OSError) as exc:
            self._count(row, "transient")
            return await self._transient(row, exc)
        except Exception as exc:  # noqa: BLE001 - not the channel's doing (e.g. a malformed chat id)
            log.warning(
                "outbox.send_error id=%s channel=%s error=%s",
                row.id,
                row.channel,
                type(exc).__name__,
            )
            self._count(row, "error")
            return await self._transient(
                row, exc
            )  # counted: failed after its attempts, not forever
        if limiter is not None:
            limiter.sent()
        self._count(row, "sent")
        await self._finish(row, OutboxStatus.sent, external_id=external_id)
        return True

    def _count(self, row: OutboxMessage, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(row.channel, outcome)

    async def _edit_target(self, outbox_id: int) -> str | None:
        async with self._db.reader() as session:
            original = await session.get(OutboxMessage, outbox_id)
        if original is None or original.status != OutboxStatus.sent:
            return None if original is not None and original.status == OutboxStatus.pending else ""
        return original.external_id or ""

    async def _transient(self, row: OutboxMessage, exc: Exception) -> bool:
        attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            log.warning(
                "outbox.gave_up id=%s channel=%s attempts=%s", row.id, row.channel, attempts
            )
            await self._finish(row, OutboxStatus.failed, error=type(exc).__name__)
            return True
        backoff = min(MAX_BACKOFF, timedelta(seconds=2**attempts))
        await self._postpone_chat(row, backoff, counts=True)
        return False

    async def _finish(
        self,
        row: OutboxMessage,
        status: OutboxStatus,
        *,
        external_id: str | None = None,
        error: str | None = None,
    ) -> None:
        if row.payload.get("last_word"):  # to someone we keep nothing of: gone once done
            await self._journal.forget(row.id or 0)
            return
        await self._journal.record(
            row.id or 0,
            {
                "status": status,
                "sent_at": self._clock.now() if status == OutboxStatus.sent else None,
                "external_id": external_id,
                "last_error": error,
                "lease_until": None,
            },
            attempted=True,
        )

    async def _postpone_chat(self, row: OutboxMessage, delay: timedelta, *, counts: bool) -> None:
        """Push this row and everything queued after it for the chat, keeping their order."""
        when = self._clock.now() + delay
        async with self._db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.channel) == row.channel)
                .where(col(OutboxMessage.chat_ref) == row.chat_ref)
                .where(col(OutboxMessage.status) == OutboxStatus.pending)
                .where(col(OutboxMessage.id) >= row.id)
                .values(next_attempt_at=when, lease_until=None, sending_at=None)
            )
            if counts:
                await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == row.id)
                    .values(attempts=OutboxMessage.attempts + 1, last_error="transient")
                )

    async def _release(self, rows: list[OutboxMessage]) -> None:
        if not rows:
            return
        async with self._db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_([r.id for r in rows]))
                .values(lease_until=None, sending_at=None)
            )

    async def _mark_blocked(self, row: OutboxMessage, *, started: datetime) -> None:
        """The user blocked us (or never started the bot): stop the chat's queued messages and
        remember it. Only what was queued by the time the failed request ``started``: a
        message written since may be the answer to the user writing to us meanwhile (starting
        the bot, say, to open the dashboard), which the router took as proof they can be
        reached; that one goes, and the account stays reachable."""
        log.info("outbox.blocked channel=%s member=%s", row.channel, row.member_id)
        chat = (col(OutboxMessage.channel) == row.channel) & (
            col(OutboxMessage.chat_ref) == row.chat_ref
        )
        async with self._db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(chat, col(OutboxMessage.status) == OutboxStatus.pending)
                .where(col(OutboxMessage.created_at) <= started)
                .values(
                    status=OutboxStatus.blocked,
                    lease_until=None,
                    last_error="blocked",
                    sending_at=None,
                )
            )
            if row.payload.get("last_word"):
                await session.exec(delete(OutboxMessage).where(col(OutboxMessage.id) == row.id))
            written_since = exists(
                select(OutboxMessage.id).where(chat, col(OutboxMessage.created_at) > started)
            )
            await session.exec(
                update(ChannelAccount)
                .where(col(ChannelAccount.channel) == row.channel)
                .where(col(ChannelAccount.chat_ref) == row.chat_ref)
                .where(~written_since)
                .values(reachable=False)
            )

    async def reschedule_chat(self, channel: str, chat_ref: str) -> None:
        """Make a chat's waiting messages due now (the terminal uses it when a user returns)."""
        async with self._db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.channel) == channel)
                .where(col(OutboxMessage.chat_ref) == chat_ref)
                .where(col(OutboxMessage.status) == OutboxStatus.pending)
                .values(next_attempt_at=self._clock.now(), lease_until=None)
            )
