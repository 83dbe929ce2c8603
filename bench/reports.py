"""Rollout reports at province scale: bot/reports.py's set-based queries against a per-unit loop.

    .venv/bin/python -m bench.reports [--members 370000] [--backend sqlite|postgresql]
        [--runs 5] [--baseline-runs 1] [--timeout 30] [--explain] [--write-docs]

For each backend (both by default; ``--backend`` may be given twice) a fresh database is migrated
with the project's own alembic migrations (``storage.migrate.upgrade``): a temporary SQLite file,
or a uniquely named PostgreSQL database created on 127.0.0.1:5432 and dropped at the end (skipped,
with a message, when no server answers; the ``test`` database is only used to create and drop
it). A synthetic province is bulk-inserted (SQLAlchemy Core ``insert`` of row lists, one
transaction, fixed seed): 1 province / 100 communes / 3,700 cells / 370,000 members at the default
size (``--members`` scales cells and communes down), a mix of smartphone / installed / activated
answers (True, False, unanswered) that varies by commune and cell, verified, pending and
unverified chat accounts (some members with two), meetings before, in and after the 30-day window
(some cancelled, entered in the app True / False / unanswered) and support tickets in every
status. PostgreSQL gets ``ANALYZE`` after the load (autovacuum would do it in production); SQLite
is left as the bot leaves it (it never runs ``ANALYZE``).

Measured in the same run, each in a fresh read session, after one warm-up, ``--runs`` times
(median and max), with the SQL statements counted by a ``before_cursor_execute`` listener on the
engine: ``unit_report`` for the province, its largest commune and one cell, ``cell_rows`` for the
province, and ``render_text`` / ``render_csv`` / ``render_chart`` of the province report
(``laggard_cells`` is called once and checked). On PostgreSQL, see ``Bench``: those runs use
custom plans, and one more call shows what the sixth call on a connection gets. The baseline is a
straightforward per-unit implementation (walk the tree one ``parent_id`` query per unit; for every
unit, separate COUNT / MAX queries for members, registered, smartphone, installed, activated,
meetings, meetings in the app, last meeting and open tickets), for the commune (``--runs``) and
the province (``--baseline-runs``, no warm-up: ~30-45 s a run at the default size); its figures
and cell rows are asserted EQUAL to the set-based ones. The default run takes about 4 minutes on
2 cores.

Prints Markdown tables; ``--explain`` prints the query plans of the province and commune
statements (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL);
``--write-docs`` replaces (or appends) the ``## Rollout reports`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import event, exists, func, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.docs import DOCS, cpu_model, git_state, wrap, write_section
from bench.roster_import import _place  # a Vietnamese place name, unique under its parent
from bot import reports
from bot.reports import OPEN_TICKETS, Figures, Report, Window
from bot.textfold import fold
from storage.db import Database
from storage.migrate import upgrade
from storage.models import (
    ChannelAccount,
    Meeting,
    MeetingKind,
    MeetingStatus,
    Member,
    MemberStatus,
    Ticket,
    TicketStatus,
    Unit,
)
from storage.queries import PATH_SEP

SECTION = "## Rollout reports"
SEED = 23
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # the data is built around it: runs are repeatable
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LANG = "vi"
PROVINCE = "Tỉnh Tuyên Quang"
MEMBERS_PER_CELL = 100
CELLS_PER_COMMUNE = 37
MAX_COMMUNES = 100
CHUNK = 10_000  # rows per executemany
PG_HOST, PG_PORT = "127.0.0.1", 5432
T = TypeVar("T")


# --- the synthetic province -----------------------------------------------------------------------


@dataclass
class Province:
    """What was built: row counts, and the units the benchmark reports on."""

    units: int = 0
    communes: int = 0
    cells: int = 0
    members: int = 0
    active: int = 0
    accounts: int = 0
    meetings: int = 0
    tickets: int = 0
    seconds: float = 0.0
    province_id: int = 1
    commune_id: int = 0  # the commune with the most members
    commune_cells: int = 0
    cell_id: int = 0  # a cell of that commune with the median number of members
    cell_members: int = 0


def sizes(members: int) -> tuple[int, int]:
    """Cells and communes for ``members``: ~100 members a cell, ~37 cells a commune, ≤ 100."""
    cells = max(2, round(members / MEMBERS_PER_CELL))
    communes = max(2, min(MAX_COMMUNES, round(cells / CELLS_PER_COMMUNE)))
    return cells, min(communes, cells)


def _pick(rng: random.Random, yes: float, no: float) -> bool | None:
    """True with probability ``yes``, False with ``no``, else unanswered (None)."""
    r = rng.random()
    return True if r < yes else False if r < yes + no else None


def _clamp(value: float, low: float = 0.02, high: float = 0.98) -> float:
    return min(high, max(low, value))


def _units(rng: random.Random, cells: int, communes: int) -> tuple[list[dict[str, Any]], ...]:
    """Unit rows with explicit ids (province 1, then communes, then cells), and per-cell traits:
    ``progress`` drives installation and registration, ``use`` meetings entered in the app."""
    unit_rows = [_unit(1, None, PROVINCE, PROVINCE, 0)]
    taken: set[str] = set()
    commune_rows: list[dict[str, Any]] = []
    for i in range(communes):
        kind = "Phường" if i % 10 == 0 else "Xã"
        name = f"{kind} {_place(rng, taken)}"
        commune_rows.append(_unit(2 + i, 1, name, PROVINCE + PATH_SEP + name, 1))
    unit_rows += commune_rows
    traits: list[dict[str, Any]] = []
    next_id = 2 + communes
    for i, commune in enumerate(commune_rows):
        count = cells // communes + (1 if i < cells % communes else 0)
        base = rng.uniform(0.30, 0.95)  # how far this commune's rollout has got
        names = ["Chi bộ cơ quan " + commune["name"].split()[0].lower()]
        here: set[str] = set()
        names += [f"Chi bộ thôn {_place(rng, here)}" for _ in range(count - 1)]
        for name in names:
            unit_rows.append(
                _unit(next_id, commune["id"], name, commune["path"] + PATH_SEP + name, 2)
            )
            progress = _clamp(base + rng.gauss(0, 0.12))
            laggard = rng.random() < 0.15  # meetings never entered in the app
            traits.append(
                {
                    "id": next_id,
                    "commune": commune["id"],
                    "weight": 0.0 if rng.random() < 0.01 else rng.uniform(0.4, 1.6),
                    "progress": progress,
                    "use": 0.0 if laggard else _clamp(progress + rng.gauss(0, 0.15), 0.0, 1.0),
                    "meets": rng.random() >= 0.03,  # 3% of cells hold no meeting at all
                }
            )
            next_id += 1
    return unit_rows, traits


def _unit(uid: int, parent: int | None, name: str, path: str, depth: int) -> dict[str, Any]:
    return {
        "id": uid,
        "parent_id": parent,
        "name": name,
        "path": path,
        "depth": depth,
        "folded_name": fold(name),
    }


def _member_rows(
    rng: random.Random, members: int, traits: list[dict[str, Any]]
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """Members, their chat accounts and tickets, ``CHUNK`` members at a time."""
    cumulative, total = [], 0.0
    for trait in traits:
        total += trait["weight"]
        cumulative.append(total)
    owners = rng.choices(traits, cum_weights=cumulative, k=members)
    created = NOW - timedelta(days=120)
    categories = ("install", "login", "otp", "meeting", "other")
    ticket_states = (
        [TicketStatus.open] * 3 + [TicketStatus.claimed] * 2 + [TicketStatus.resolved] * 2
    ) + [TicketStatus.closed] * 3
    for start in range(0, members, CHUNK):
        batch, accounts, tickets = [], [], []
        for mid in range(start + 1, min(members, start + CHUNK) + 1):
            cell = owners[mid - 1]
            p = cell["progress"]
            active = rng.random() >= 0.01
            phone = _pick(rng, 0.80, 0.12)
            if phone is True:
                installed = _pick(rng, p, (1 - p) * 0.7)
            elif phone is False:
                installed = _pick(rng, 0.0, 0.5)
            else:
                installed = _pick(rng, 0.1, 0.0)
            if installed is True:
                activated = _pick(rng, 0.85, 0.10)
            elif installed is False:
                activated = _pick(rng, 0.0, 0.7)
            else:
                activated = None
            batch.append(
                {
                    "id": mid,
                    "member_code": f"TQ{mid:07d}",
                    "cell_id": cell["id"],
                    "status": MemberStatus.active if active else MemberStatus.forgotten,
                    "source": "roster",
                    "has_smartphone": phone,
                    "app_installed": installed,
                    "app_activated": activated,
                    "created_at": created,
                }
            )
            if not active:
                continue
            if rng.random() < 0.25 + 0.6 * p:
                r = rng.random()
                # 89% verified; 1% verified yet pending (the figures must not count them);
                # 5% pending approval; 5% neither
                verified, pending = r < 0.90, 0.89 <= r < 0.95
                accounts.append(_account("tg", mid, verified, pending))
                if rng.random() < 0.03:  # a second, verified account on another channel
                    accounts.append(_account("zl", mid, True, False))
            if rng.random() < 0.02:
                tickets.append(
                    {
                        "member_id": mid,
                        "cell_id": cell["id"],
                        "unit_id": cell["commune"],
                        "category": rng.choice(categories),
                        "status": rng.choice(ticket_states),
                        "created_at": NOW - timedelta(days=rng.uniform(0, 60)),
                        "escalations": 0,
                        "breached": False,
                        "db_correction": False,
                        "member_adds": False,
                    }
                )
        yield batch, accounts, tickets


def _account(channel: str, member_id: int, verified: bool, pending: bool) -> dict[str, Any]:
    ref = f"{member_id + 7_000_000}"
    return {
        "channel": channel,
        "user_ref": ref,
        "chat_ref": ref,
        "member_id": member_id,
        "verified": verified,
        "pending": pending,
        "reachable": True,
        "created_at": NOW - timedelta(days=30),
    }


def _meeting_rows(rng: random.Random, traits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell: a monthly regular meeting (one ahead, about one in the window, three before),
    sometimes a thematic one; 5% cancelled; entered in the app True / False / unanswered. One
    meeting starts exactly at the window's start and one exactly at its end (both count), and
    one cell's latest meeting, entered in the app, was cancelled (it must not count)."""
    rows: list[dict[str, Any]] = []

    def add(
        cell: dict[str, Any],
        kind: MeetingKind,
        starts: datetime,
        entered: Any,
        cancelled: bool | None = None,
    ) -> None:
        if cancelled is None:
            cancelled = rng.random() < 0.05
        rows.append(
            {
                "cell_id": cell["id"],
                "kind": kind,
                "status": MeetingStatus.cancelled if cancelled else MeetingStatus.scheduled,
                "starts_at": starts,
                "duration_min": 90,
                "place": "Nhà văn hóa thôn",
                "agenda": "Sinh hoạt chi bộ định kỳ",
                "version": 1,
                "created_at": starts - timedelta(days=7),
                "updated_at": starts - timedelta(days=7),
                "documents_posted": False,
                "entered_in_app": entered,
            }
        )

    span = reports.window(NOW)
    for n, cell in enumerate(traits):
        if not cell["meets"]:
            continue
        use, day = cell["use"], rng.uniform(0, 30)
        for month in range(-1, 4):
            days_ago = day + 30 * month + rng.gauss(0, 2)
            entered = _pick(rng, use, (1 - use) * 0.6)
            add(cell, MeetingKind.regular, NOW - timedelta(days=days_ago), entered)
        if rng.random() < 0.4:
            entered = _pick(rng, use, (1 - use) * 0.6)
            add(cell, MeetingKind.thematic, NOW - timedelta(days=rng.uniform(0, 60)), entered)
        if n == 0:  # the edges, in the first cell
            add(cell, MeetingKind.thematic, span.start, True, cancelled=False)
            add(cell, MeetingKind.thematic, span.end, False, cancelled=False)
        if n == 1:  # its latest meeting is cancelled: neither counted nor its last meeting
            add(cell, MeetingKind.extraordinary, NOW - timedelta(hours=1), True, cancelled=True)
    return rows


async def _insert(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[start : start + CHUNK])


async def build(
    db: Database,
    members: int,
    *,
    cells: int | None = None,
    communes: int | None = None,
    seed: int = SEED,
) -> Province:
    """Bulk-insert the province (one transaction) and return what was built."""
    started = time.perf_counter()
    rng = random.Random(seed)
    default_cells, default_communes = sizes(members)
    cells = cells or default_cells
    communes = min(cells, communes or default_communes)
    unit_rows, traits = _units(rng, cells, communes)
    built = Province(units=len(unit_rows), communes=communes, cells=cells, members=members)
    per_commune: dict[int, int] = {}
    async with db.engine.begin() as conn:
        await _insert(conn, Unit, unit_rows)
        for batch, accounts, tickets in _member_rows(rng, members, traits):
            await _insert(conn, Member, batch)
            await _insert(conn, ChannelAccount, accounts)
            await _insert(conn, Ticket, tickets)
            built.accounts += len(accounts)
            built.tickets += len(tickets)
            for row in batch:
                if row["status"] == MemberStatus.active:
                    built.active += 1
        meeting_rows = _meeting_rows(rng, traits)
        await _insert(conn, Meeting, meeting_rows)
        built.meetings = len(meeting_rows)
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("unit", "member"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                await conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))
    if db.engine.dialect.name == "postgresql":
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    async with db.reader() as session:
        stmt = (
            select(Member.cell_id, func.count())
            .where(Member.status == MemberStatus.active)
            .group_by(col(Member.cell_id))
        )
        by_cell = dict((await session.exec(stmt)).all())  # type: ignore[arg-type]
    commune_of = {trait["id"]: trait["commune"] for trait in traits}
    for cell_id, count in by_cell.items():
        per_commune[commune_of[cell_id]] = per_commune.get(commune_of[cell_id], 0) + count
    largest = max(per_commune, key=lambda cid: (per_commune[cid], -cid))
    built.commune_id = largest
    built.commune_cells = sum(1 for trait in traits if trait["commune"] == largest)
    sizes_here = sorted(
        (by_cell.get(trait["id"], 0), trait["id"])
        for trait in traits
        if trait["commune"] == largest
    )
    built.cell_members, built.cell_id = sizes_here[len(sizes_here) // 2]
    built.seconds = time.perf_counter() - started
    return built


# --- the baseline: one query per figure per unit --------------------------------------------------


COUNTS = [f.name for f in fields(Figures) if f.type == "int" and f.name != "unit_id"]


async def _one(session: AsyncSession, stmt: Any) -> Any:
    return (await session.exec(stmt)).one()


async def own_figures(session: AsyncSession, unit: Unit, span: Window, is_cell: bool) -> Figures:
    """The unit's own members, meetings and tickets (not those of units below it), one
    statement per figure."""

    def members(*extra: Any) -> Any:
        return (
            select(func.count())
            .select_from(Member)
            .where(Member.cell_id == unit.id, Member.status == MemberStatus.active, *extra)
        )

    registered = exists().where(
        ChannelAccount.member_id == Member.id,
        col(ChannelAccount.verified).is_(True),
        col(ChannelAccount.pending).is_(False),
    )
    held = (Meeting.cell_id == unit.id, Meeting.status != MeetingStatus.cancelled)
    in_window = (col(Meeting.starts_at) >= span.start, col(Meeting.starts_at) <= span.end)

    def meetings(*extra: Any) -> Any:
        return select(func.count()).select_from(Meeting).where(*held, *in_window, *extra)

    in_app = await _one(session, meetings(col(Meeting.entered_in_app).is_(True)))
    last = select(func.max(Meeting.starts_at)).where(*held, col(Meeting.starts_at) <= span.end)
    tickets = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.cell_id == unit.id, col(Ticket.status).in_(list(OPEN_TICKETS)))
    )
    return Figures(
        unit.id or 0,
        unit.name,
        unit.path,
        members=await _one(session, members()),
        registered=await _one(session, members(registered)),
        smartphone=await _one(session, members(col(Member.has_smartphone).is_(True))),
        installed=await _one(session, members(col(Member.app_installed).is_(True))),
        activated=await _one(session, members(col(Member.app_activated).is_(True))),
        cells=int(is_cell),
        cells_using=int(is_cell and in_app > 0),
        meetings=await _one(session, meetings()),
        meetings_in_app=in_app,
        open_tickets=await _one(session, tickets),
        last_meeting=await _one(session, last),
    )


def summed(unit: Unit, parts: list[Figures]) -> Figures:
    lasts = [part.last_meeting for part in parts if part.last_meeting is not None]
    counts = {name: sum(getattr(part, name) for part in parts) for name in COUNTS}
    return Figures(
        unit.id or 0, unit.name, unit.path, **counts, last_meeting=max(lasts, default=None)
    )


async def _walk(session: AsyncSession, unit: Unit, span: Window, cells: list[Figures]) -> Figures:
    """The unit's figures: its children listed with one query, each summed recursively."""
    stmt = select(Unit).where(Unit.parent_id == unit.id).order_by(col(Unit.id))
    kids = list((await session.exec(stmt)).all())
    own = await own_figures(session, unit, span, is_cell=not kids)
    if not kids:
        cells.append(own)
    return summed(unit, [own] + [await _walk(session, kid, span, cells) for kid in kids])


async def per_unit_report(
    session: AsyncSession, *, unit: Unit, span: Window
) -> tuple[Report, list[Figures]]:
    """The same report and cell rows as ``unit_report`` and ``cell_rows``, unit by unit."""
    cells: list[Figures] = []
    stmt = select(Unit).where(Unit.parent_id == unit.id).order_by(col(Unit.id))
    kids = list((await session.exec(stmt)).all())
    own = await own_figures(session, unit, span, is_cell=not kids)
    if not kids:
        cells.append(own)
    children = [await _walk(session, kid, span, cells) for kid in kids]
    scope = summed(unit, [own, *children])
    children.sort(key=reports.worst_first)
    cells.sort(key=lambda cell: cell.path)
    return Report(scope, children, span, is_cell=not children), cells


def check_equal(
    report: Report, cells: list[Figures], baseline: Report, baseline_cells: list[Figures]
) -> None:
    """The comparison is only honest if both compute the same figures."""
    assert report.scope == baseline.scope, (report.scope, baseline.scope)
    assert report.children == baseline.children, "children differ"
    assert report.is_cell == baseline.is_cell
    mine = sorted(cells, key=lambda cell: cell.path)
    assert mine == baseline_cells, "cell rows differ"


# --- measuring ------------------------------------------------------------------------------------


class StatementCounter:
    """Counts the statements an engine sends (``before_cursor_execute``), transaction control
    (BEGIN/COMMIT/ROLLBACK) excepted; optionally keeps them for EXPLAIN."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.kept: list[tuple[str, Any]] | None = None
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            return
        self.count += 1
        if self.kept is not None:
            self.kept.append((statement, params))


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    statements: int = 0
    # PostgreSQL only: one more call once the connection has planned the statement 5+ times,
    # in the server's default plan_cache_mode (auto), as a long-running bot calls it.
    later: float | None = None
    later_timed_out: bool = False
    later_generic: bool | None = None  # did that call run a generic plan (pg_prepared_statements)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)


class Bench:
    """Times calls, each in a fresh read session (as the CLI and the handlers read).

    On PostgreSQL every session gets ``statement_timeout`` (so a runaway plan is cut off by the
    server, not left running) and, for the median/max figures, ``plan_cache_mode =
    force_custom_plan``: SQLAlchemy's asyncpg driver keeps each statement prepared per
    connection, and PostgreSQL plans the first five executions with the actual parameter values
    (custom plans); from the sixth on it may switch to a generic plan. ``later`` measures that
    sixth-and-after call separately, in the server's default mode."""

    def __init__(self, db: Database, counter: StatementCounter, timeout: float) -> None:
        self.db, self.counter, self.timeout = db, counter, timeout
        self.postgres = db.engine.dialect.name == "postgresql"

    async def _setup(self, session: AsyncSession, *, custom: bool) -> None:
        if not self.postgres:
            return
        conn = await session.connection()
        if custom:
            await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        await conn.execute(text(f"SET LOCAL statement_timeout = {round(self.timeout * 1000)}"))

    async def query(
        self,
        name: str,
        call: Callable[[AsyncSession], Awaitable[T]],
        runs: int,
        *,
        warm_up: bool = True,
        custom: bool = True,
        later: bool = False,
    ) -> tuple[Timing, T]:
        timing = Timing(name)
        if warm_up:
            async with self.db.reader() as session:
                await self._setup(session, custom=custom)
                await call(session)
        for _ in range(runs):
            async with self.db.reader() as session:
                await self._setup(session, custom=custom)
                before = self.counter.count
                started = time.perf_counter()
                result = await call(session)
                timing.seconds.append(time.perf_counter() - started)
                timing.statements = self.counter.count - before
        if later and self.postgres:
            await self._later(timing, call)
        return timing, result

    async def _generic_plans(self, session: AsyncSession) -> tuple[int, int]:
        stmt = text(
            "SELECT pg_backend_pid(), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
            " WHERE statement NOT LIKE '%pg_prepared_statements%'"
            " AND statement ILIKE '%GROUP BY%'"  # the report's statements, not lookups or SETs
        )
        pid, plans = (await (await session.connection()).execute(stmt)).one()
        return int(pid), int(plans)

    async def _later(self, timing: Timing, call: Callable[[AsyncSession], Awaitable[Any]]) -> None:
        async with self.db.reader() as session:
            await self._setup(session, custom=False)
            pid, generic = await self._generic_plans(session)
            started = time.perf_counter()
            try:
                await call(session)
            except DBAPIError as error:
                if "statement timeout" not in str(error):
                    raise
                timing.later_timed_out = True
            timing.later = time.perf_counter() - started
            await session.rollback()
            pid_after, generic_after = await self._generic_plans(session)
        timing.later_generic = generic_after > generic if pid_after == pid else None


def timed_render(name: str, call: Callable[[], Any], runs: int) -> Timing:
    timing = Timing(name)
    call()  # warm-up (render_chart imports matplotlib on its first call)
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timing.seconds.append(time.perf_counter() - started)
    return timing


@dataclass
class Outcome:
    backend: str
    version: str
    province: Province
    timings: list[Timing]
    laggards: int
    laggard_seconds: float
    using: str
    timeout: float
    plans: list[str] = field(default_factory=list)

    def find(self, prefix: str) -> Timing:
        return next(t for t in self.timings if t.name.startswith(prefix))

    @property
    def province_report(self) -> Timing:
        return self.find("`unit_report`, province")

    @property
    def baseline(self) -> Timing:
        return self.find("baseline per unit, province")

    @property
    def ratio(self) -> float:
        return self.baseline.median / self.province_report.median


async def _explain(db: Database, statements: list[tuple[str, Any]]) -> list[str]:
    out: list[str] = []
    postgres = db.engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    async with db.engine.connect() as conn:
        for statement, params in statements:
            result = await conn.exec_driver_sql(prefix + statement, params)
            rows = result.all()
            plan = "\n".join(row[0] if postgres else f"{row[1]:>3} {row[3]}" for row in rows)
            out.append(f"{statement.strip()}\n--\n{plan}")
    return out


async def run(db: Database, args: argparse.Namespace, backend: str, version: str) -> Outcome:
    say = progress
    province = await build(db, args.members)
    say(
        f"{backend}: built {province.units:,} units, {province.members:,} members, "
        f"{province.accounts:,} accounts, {province.meetings:,} meetings, {province.tickets:,} "
        f"tickets in {province.seconds:.1f} s"
    )
    async with db.reader() as session:
        counter = StatementCounter(session.bind)  # type: ignore[arg-type]
        top = await session.get(Unit, province.province_id)
        commune = await session.get(Unit, province.commune_id)
        cell = await session.get(Unit, province.cell_id)
    assert top is not None and commune is not None and cell is not None
    bench = Bench(db, counter, args.timeout)
    span = reports.window(NOW)
    runs = args.runs
    timings: list[Timing] = []

    def report_of(unit: Unit) -> Callable[[AsyncSession], Awaitable[Report]]:
        async def call(session: AsyncSession) -> Report:
            return await reports.unit_report(session, unit=unit, span=span)

        return call

    def baseline_of(unit: Unit) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def call(session: AsyncSession) -> tuple[Report, list[Figures]]:
            return await per_unit_report(session, unit=unit, span=span)

        return call

    async def cells_of(session: AsyncSession) -> list[Figures]:
        return await reports.cell_rows(session, unit=top, span=span)

    async def laggards_of(session: AsyncSession) -> list[Figures]:
        return await reports.laggard_cells(session, unit=top, span=span)

    # The set-based queries (a) to (c), and (d) rendering.
    label = f"`unit_report`, province ({province.communes} communes)"
    timing, report = await bench.query(label, report_of(top), runs, later=True)
    timings.append(timing)
    say(f"{backend}: {label}: median {timing.median * 1000:,.0f} ms")
    label = f"`unit_report`, its largest commune ({province.commune_cells} cells)"
    timing, commune_report = await bench.query(label, report_of(commune), runs, later=True)
    timings.append(timing)
    label = f"`unit_report`, one cell ({province.cell_members} members)"
    timing, _ = await bench.query(label, report_of(cell), runs, later=True)
    timings.append(timing)
    label = f"`cell_rows`, province ({province.cells:,} rows)"
    timing, cells = await bench.query(label, cells_of, runs, later=True)
    timings.append(timing)
    say(f"{backend}: {label}: median {timing.median * 1000:,.0f} ms")
    lag_timing, laggards = await bench.query("laggard_cells", laggards_of, 1, warm_up=False)
    assert [c.unit_id for c in laggards] == [c.unit_id for c in cells if not c.cells_using]
    timings.append(
        timed_render("`render_text`, province", lambda: reports.render_text(LANG, report, TZ), runs)
    )
    timings.append(
        timed_render(
            f"`render_csv`, province ({len(cells):,} rows)",
            lambda: reports.render_csv(LANG, cells, TZ),
            runs,
        )
    )
    timings.append(
        timed_render(
            "`render_chart`, province (PNG, worst 40 communes)",
            lambda: reports.render_chart(LANG, report, TZ),
            runs,
        )
    )

    # The baseline, which must compute exactly the same figures.
    label = f"baseline per unit, the same commune ({province.commune_cells + 1} units)"
    timing, (base_commune, _) = await bench.query(label, baseline_of(commune), runs, custom=False)
    timings.append(timing)
    assert commune_report.scope == base_commune.scope, "commune figures differ"
    assert commune_report.children == base_commune.children, "commune's cell figures differ"
    label = f"baseline per unit, province ({province.units:,} units)"
    say(f"{backend}: baseline for the province, {args.baseline_runs} run(s)...")
    timing, (base_report, base_cells) = await bench.query(
        label, baseline_of(top), args.baseline_runs, warm_up=False, custom=False
    )
    timings.append(timing)
    check_equal(report, cells, base_report, base_cells)
    say(f"{backend}: baseline median {timing.median:,.1f} s; its figures equal the set-based ones")

    plans: list[str] = []
    if args.explain:
        counter.kept = []
        async with db.reader() as session:
            await reports.unit_report(session, unit=top, span=span)
            await reports.cell_rows(session, unit=top, span=span)
            await reports.unit_report(session, unit=commune, span=span)
        kept, counter.kept = counter.kept, None
        plans = await _explain(db, kept)
    return Outcome(
        backend=backend,
        version=version,
        province=province,
        timings=timings,
        laggards=len(laggards),
        laggard_seconds=lag_timing.median,
        using=reports.percent(report.scope.using_share),
        timeout=args.timeout,
        plans=plans,
    )


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- the backends ---------------------------------------------------------------------------------


def run_sqlite(args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="sotay-bench-reports-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/sotay.db"
        upgrade(url)  # the project's migrations; alembic runs its own loop: before asyncio.run
        version = f"SQLite {sqlite3.sqlite_version} (file, WAL)"
        return asyncio.run(_with_db(url, args, "SQLite", version))


async def _with_db(url: str, args: argparse.Namespace, backend: str, version: str) -> Outcome:
    db = Database(url)
    try:
        return await run(db, args, backend, version)
    finally:
        await db.dispose()


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


async def _pg_admin(sql: str) -> str:
    """One statement on the server's ``test`` database (only to create and drop our own)."""
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="test")
    try:
        if sql.startswith("SELECT"):
            return str(await conn.fetchval(sql))
        await conn.execute(sql)
        return ""
    finally:
        await conn.close()


def run_postgresql(args: argparse.Namespace) -> Outcome | None:
    if not postgres_available():
        progress(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}: PostgreSQL skipped")
        return None
    name = f"sotay_bench_reports_{os.getpid()}"  # our own database; `test` itself is not touched
    asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
    try:
        url = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
        upgrade(url)
        version = asyncio.run(
            _pg_admin(
                "SELECT 'PostgreSQL ' || current_setting('server_version') || "
                "' (default settings: jit ' || current_setting('jit') || ', shared_buffers ' || "
                "current_setting('shared_buffers') || ', work_mem ' || current_setting('work_mem') "
                "|| ')'"
            )
        )
        return asyncio.run(_with_db(url, args, "PostgreSQL", version))
    finally:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# --- report ---------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}" if seconds < 10 else f"{seconds * 1000:,.0f}"


def _later(timing: Timing, timeout: float) -> str:
    if timing.later is None:
        return ""
    value = f"> {timeout * 1000:,.0f} (cancelled)" if timing.later_timed_out else _ms(timing.later)
    plan = {True: "generic plan", False: "custom plan", None: "plan unknown"}[timing.later_generic]
    return f"{value}, {plan}"


def table(outcome: Outcome) -> str:
    pg = any(timing.later is not None for timing in outcome.timings)
    head = "| what | SQL statements | median ms | max ms |"
    rule = "|---|---:|---:|---:|"
    if pg:
        head += " 6th+ call on a connection, ms |"
        rule += "---:|"
    lines = [f"{outcome.backend} ({outcome.version}):", "", head, rule]
    for timing in outcome.timings:
        statements = f"{timing.statements:,}" if timing.statements else "—"
        row = f"| {timing.name} | {statements} | {_ms(timing.median)} | {_ms(timing.worst)} |"
        if pg:
            row += f" {_later(timing, outcome.timeout) or '—'} |"
        lines.append(row)
    return "\n".join(lines)


def summary(outcome: Outcome) -> str:
    base, mine = outcome.baseline, outcome.province_report
    runs = len(base.seconds)
    return (
        f"{outcome.backend}: province report, per-unit baseline / set-based = "
        f"{base.median:,.1f} s / {mine.median:,.2f} s = **{outcome.ratio:,.0f}×** "
        f"({base.statements:,} statements against {mine.statements}; baseline "
        f"{'median of ' + str(runs) + ' runs' if runs > 1 else 'one run'})."
    )


def _machine(versions: list[str], load: float, started: datetime) -> str:
    model = cpu_model()
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"{'; '.join(versions)}; {platform.system()} {platform.release()}; shared, 1-minute "
        f"load average {load:.1f} at the start; {started:%Y-%m-%d %H:%M} UTC, {git_state()}"
    )


def docs_body(command: str, machine: str, outcomes: list[Outcome]) -> str:
    p, first = outcomes[0].province, outcomes[0]
    runs = len(first.province_report.seconds)
    baseline_runs = len(first.baseline.seconds)
    setup = (
        f"A synthetic province bulk-inserted into a database migrated by "
        f"`storage.migrate.upgrade` (fixed seed): 1 province / {p.communes} communes / "
        f"{p.cells:,} cells, {p.members:,} members ({p.active:,} active), {p.accounts:,} chat "
        "accounts (verified, pending, unverified; some members with two), "
        f"{p.meetings:,} meetings before, in and after the 30-day window (5% cancelled; entered in "
        f"the app yes / no / unanswered), {p.tickets:,} tickets in every status; "
        f"{first.laggards:,} laggard cells, {first.using} of cells using the handbook. PostgreSQL "
        "was `ANALYZE`d after the load; SQLite was not (the bot never runs it). Every call ran in "
        f"a fresh read session, once to warm up and then {runs} times (median, max); statements "
        "counted with a `before_cursor_execute` listener on the engine (BEGIN not counted). On "
        "PostgreSQL those runs are forced to custom plans (what the first five calls of a "
        "statement on a connection get) and the last column is one more call in the default "
        "`plan_cache_mode`, as a long-running bot makes it, with `statement_timeout` "
        f"{first.timeout:g} s. The baseline walks the tree with one `parent_id` query per unit "
        "and runs one COUNT/MAX per figure per unit (10 statements a unit); its figures (the "
        "province's, every commune's, every cell row's) were asserted equal to the set-based "
        "ones. The province baseline ran "
        + (f"{baseline_runs} times" if baseline_runs > 1 else "once, without a warm-up,")
        + " to keep the run under 5 minutes."
    )
    parts = [
        f"Command (from the repository root):\n`{command}`",
        wrap(f"Machine: {machine}."),
        wrap(setup),
        *(table(outcome) for outcome in outcomes),
        "\n".join(wrap(f"- {summary(outcome)}") for outcome in outcomes),
        "What it shows:\n\n" + "\n".join(wrap(line) for line in interpretation(outcomes)),
        PLAN_NOTES.strip(),
    ]
    return "\n\n".join(parts) + "\n"


def _s(seconds: float) -> str:
    return f"{seconds:,.1f} s" if seconds >= 1 else f"{seconds * 1000:,.0f} ms"


def interpretation(outcomes: list[Outcome]) -> list[str]:
    """What this run shows, in its own figures: one bullet a finding."""
    lines = []
    ratios = ", ".join(
        f"{_s(o.baseline.median)} → {_s(o.province_report.median)} on {o.backend} ({o.ratio:,.0f}×)"
        for o in outcomes
    )
    first = outcomes[0]
    members = first.province.active
    lines.append(
        f"- For the province the set-based report wins: {ratios}, "
        f"{first.province_report.statements} statement(s) against "
        f"{first.baseline.statements:,}. "
        f"`unit_report` reads every unit's own figures in one statement ({members:,} active "
        "members for the province) and adds them up by commune in Python."
    )
    for o in outcomes:
        commune = o.find("`unit_report`, its largest commune")
        cell = o.find("`unit_report`, one cell")
        base = o.find("baseline per unit, the same commune")
        if commune.median <= base.median:
            lines.append(
                f"- Below the province it holds too on {o.backend}: one commune's report takes "
                f"{_s(commune.median)} against {_s(base.median)} for the per-unit loop, one "
                f"cell's {_s(cell.median)} (every secretary's /report)."
            )
        else:
            lines.append(
                f"- Below the province it does not hold on {o.backend}: the statements scan "
                f"every member whatever the scope, so one commune's report takes "
                f"{_s(commune.median)} against {_s(base.median)} for the per-unit loop "
                f"({commune.median / base.median:,.1f}× slower), and one cell's "
                f"{_s(cell.median)}: the cost of every secretary's /report."
            )
        cells = o.find("`cell_rows`, province")
        if cells.later is not None and not cells.later_timed_out and cells.later < 3 * cells.median:
            lines.append(
                f"- On {o.backend}, `cell_rows` for the province (the CSV export, and "
                f"`laggard_cells` behind the nudge) takes {_s(cells.median)} for the first five "
                f"calls on a connection and {_s(cells.later)} from the sixth: report sessions set "
                "`plan_cache_mode = force_custom_plan` (and `jit = off`) for their transaction."
            )
        if cells.later is not None and (cells.later_timed_out or cells.later > 10 * cells.median):
            later = f"> {o.timeout:g} s" if cells.later_timed_out else _s(cells.later)
            lines.append(
                f"- On PostgreSQL, `cell_rows` for the province (the CSV export, and "
                f"`laggard_cells` behind the nudge) takes {_s(cells.median)} for the first five "
                f"calls on a connection and {later} from the sixth"
                f"{' (cancelled by statement_timeout)' if cells.later_timed_out else ''}: "
                "PostgreSQL then switches the prepared statement to a generic plan "
                f"({'counted in' if cells.later_generic else 'not confirmed by'} "
                "`pg_prepared_statements`), which nests the member aggregate inside a loop over "
                "units. In a bot that "
                "keeps its connections, the province's export and nudge stop working after a few "
                "uses."
            )
    renders = [o.find("`render_chart`") for o in outcomes]
    csvs = [o.find("`render_csv`") for o in outcomes]
    lines.append(
        f"- Rendering is not the problem: text ≤ 2 ms, CSV of {first.province.cells:,} rows "
        f"≤ {max(t.median for t in csvs) * 1000:,.0f} ms, the chart "
        f"{min(t.median for t in renders) * 1000:,.0f}–{max(t.median for t in renders) * 1000:,.0f}"
        " ms (drawn in a worker thread). `laggard_cells` is `cell_rows` plus a filter: "
        + ", ".join(f"{_s(o.laggard_seconds)} on {o.backend}" for o in outcomes)
        + " (one call)."
    )
    return lines


# Found with --explain and by timing modified statements by hand on a database built by this
# benchmark (same seed and size), on 2026-11-28 against bot/reports.py of commit c05feda; the
# changes they led to landed after commit 4de0b3d. Not regenerated.
PLAN_NOTES = """
What the first run found, and what changed (`--explain`, and statements timed by hand on a
database built by this benchmark's builder, same seed and size, 2026-11-28, against
`bot/reports.py` of commit c05feda; that run's tables are in commit 4de0b3d):

- The scope was a `LIKE` on the joined unit's path, which no index serves, so SQLite read every
  member whatever the scope: a commune's report took 1,260 ms (the per-unit loop: 260 ms), a
  cell's 577 ms. Now members, meetings and tickets are reached through `cell_id IN (SELECT id
  FROM unit WHERE path = ? OR path LIKE ? …)`, which searches `ix_member_cell_id` unit by unit.
- On PostgreSQL a prepared statement switches to a generic plan from its sixth call on a
  connection; for these scope parameters the generic `cell_rows` plan for the province ran past
  the 30 s statement timeout (an `EXPLAIN ANALYZE` of it was still running after 19 minutes), so
  a long-running bot's export and nudge would have stopped working. Report transactions now set
  `plan_cache_mode = force_custom_plan`, and `jit = off` (JIT compilation was 841 ms of a
  1,604 ms province statement); those two `SET LOCAL` are in PostgreSQL's statement counts.
- `unit_report` aggregated the members twice (totals, then per commune); it now runs one
  statement returning a row per unit in scope and adds them up in Python. `cell_rows` picks the
  cells in Python: PostgreSQL estimated the leaf test at 19 rows of 3,700 and chose nested loops.
- Not done: covering indexes `member (cell_id, status, has_smartphone, app_installed,
  app_activated)` and `channelaccount (member_id, verified, pending)` made SQLite's province-wide
  pass index-only by hand (1.4–1.6 s → 0.5–0.8 s per statement); worth a migration if the
  province report is read often. SQLite's `LIKE` ignores ASCII case and PostgreSQL's does not, so
  unit names differing only in ASCII case would scope differently on the two backends.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=370_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after a warm-up")
    parser.add_argument(
        "--baseline-runs", type=int, default=1, help="runs of the province baseline (no warm-up)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="PostgreSQL statement_timeout, seconds"
    )
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    command = " ".join([".venv/bin/python -m bench.reports", *sys.argv[1:]])
    load, started = os.getloadavg()[0], datetime.now(UTC)
    outcomes: list[Outcome] = []
    for backend in backends:
        outcome = run_sqlite(args) if backend == "sqlite" else run_postgresql(args)
        if outcome is not None:
            outcomes.append(outcome)
    if not outcomes:
        sys.exit("nothing measured")
    machine = _machine([outcome.version for outcome in outcomes], load, started)
    for outcome in outcomes:
        print(table(outcome) + "\n")
        print(summary(outcome) + "\n")
        for plan in outcome.plans:
            print(plan + "\n")
    if args.write_docs:
        write_section(SECTION, docs_body(command.replace(" --write-docs", ""), machine, outcomes))
        print(f"wrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()
