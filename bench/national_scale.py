"""The national roster on PostgreSQL: the report through ``unit_rollup`` against a plain GROUP BY
over the members and a naive per-unit loop, in the same run; and what keeping the rollup costs
a status import.

    .venv/bin/python -m bench.national_scale [--members 5600000] [--runs 3]
        [--naive-timeout 120] [--keep] [--write-docs]

A fresh PostgreSQL database on 127.0.0.1:5432 (created from the ``test`` database, dropped at
the end unless ``--keep``) is migrated with the project's own migrations. The country (fixed
seed): one root, 60 provinces, 10 districts each, about 17 communes a district and 28 members a
cell, scaled by ``--members`` (5.6 million: 200,000 cells); smartphone / installed / activated
answers and imported statuses that vary by province and cell, a verified chat account for one
member in ten, a meeting in the last 30 days for most cells. Units, members, accounts and
meetings are loaded with COPY (asyncpg ``copy_records_to_table``) with triggers off (session
``replica``), then ``storage.rollup.rebuild`` fills ``unit_rollup`` once, as the migration does.

Measured, each the median of ``--runs`` interleaved runs in fresh read sessions:
- the national report (``reports.unit_report`` on the root: rollup + meetings + tickets),
- a plain GROUP BY of the members per cell over the whole country (``rollup.group_by_members``:
  the honest floor of any report that reads the members), and the report's figures asserted
  equal to it,
- the same three for the largest province,
- the naive per-unit loop (walk the tree one query per unit, count each cell's members apart):
  the province every run; the country once, stopped after ``--naive-timeout`` seconds (then the
  table says how far it got).
Then the rollup's cost: the province's members' imported status changed by one UPDATE, with
the triggers on and with them off (and restored), and the rollup checked against the GROUP BY.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.docs import write_section

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
ROOT = "Việt Nam"
CHUNK = 200_000
MEMBER_COLUMNS = (
    "id",
    "member_code",
    "full_name",
    "phone",
    "cell_id",
    "status",
    "source",
    "has_smartphone",
    "app_installed",
    "app_activated",
    "hb_installed",
    "hb_activated",
    "smartphone_source",
)


@dataclass(frozen=True)
class Shape:
    provinces: int
    districts: int  # per province
    communes: int  # per district
    cells: int  # per commune
    per_cell: int

    @classmethod
    def of(cls, members: int) -> Shape:
        per_cell = 28
        cells_total = max(1, members // per_cell)
        provinces = max(1, min(60, cells_total // 3_000))
        districts = 10 if cells_total >= provinces * 200 else 1
        communes = max(1, min(17, cells_total // (provinces * districts * 5)))
        cells = max(1, cells_total // (provinces * districts * communes))
        return cls(provinces, districts, communes, cells, per_cell)


def units(shape: Shape) -> tuple[list[tuple[Any, ...]], list[int], dict[int, list[int]]]:
    """Unit rows (id, parent_id, name, path, depth, folded_name), the cells, cells by province."""
    rows: list[tuple[Any, ...]] = [(1, None, ROOT, ROOT, 0, "viet nam")]
    cells: list[int] = []
    by_province: dict[int, list[int]] = {}
    next_id = 2

    def add(parent: int, name: str, parent_path: str, depth: int) -> tuple[int, str]:
        nonlocal next_id
        path = f"{parent_path} / {name}"
        rows.append((next_id, parent, name, path, depth, name.lower()))
        next_id += 1
        return next_id - 1, path

    for p in range(shape.provinces):
        province, ppath = add(1, f"Tỉnh {p + 1:02d}", ROOT, 1)
        by_province[province] = []
        for d in range(shape.districts):
            district, dpath = add(province, f"Huyện {p + 1}.{d + 1}", ppath, 2)
            for c in range(shape.communes):
                commune, cpath = add(district, f"Xã {p + 1}.{d + 1}.{c + 1}", dpath, 3)
                for k in range(shape.cells):
                    cell, _ = add(commune, f"Chi bộ {k + 1}", cpath, 4)
                    cells.append(cell)
                    by_province[province].append(cell)
    return rows, cells, by_province


def members(cells: list[int], total: int, seed: int = 11) -> Iterator[list[tuple[Any, ...]]]:
    """Member rows in chunks: rates that vary by cell, some statuses imported, some answered."""
    rng = random.Random(seed)
    chunk: list[tuple[Any, ...]] = []
    for i in range(total):
        cell = cells[i % len(cells)]
        phone_rate = 0.70 + (cell % 23) / 100
        smartphone = rng.random() < phone_rate
        installed = rng.random() < (0.9 if smartphone else 0.15)
        activated = installed and rng.random() < 0.8
        imported = rng.random() < 0.85
        chunk.append(
            (
                i + 1,
                f"DV{i:08d}",
                f"Đảng viên {i}",
                f"09{i:08d}",
                cell,
                "active" if rng.random() > 0.01 else "forgotten",
                "roster",
                smartphone,
                None if imported else installed,
                None if imported else activated,
                installed if imported else None,
                activated if imported else None,
                "roster",
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def load(dsn: str, shape: Shape, total: int) -> tuple[dict[int, list[int]], float]:
    """COPY everything with triggers off, then one rebuild of the rollup. Returns the cells by
    province and the seconds the load took."""
    import asyncpg

    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # no triggers, no FK checks
        unit_rows, cells, by_province = units(shape)
        await conn.copy_records_to_table(
            "unit",
            records=unit_rows,
            columns=["id", "parent_id", "name", "path", "depth", "folded_name"],
        )
        loaded = 0
        for chunk in members(cells, total):
            await conn.copy_records_to_table("member", records=chunk, columns=MEMBER_COLUMNS)
            loaded += len(chunk)
            progress(f"members {loaded:,}/{total:,} ({time.perf_counter() - started:.0f} s)")
        accounts = [
            (f"u{m}", "telegram", f"u{m}", "vi", m, True, False, True)
            for m in range(1, total + 1, 10)
        ]
        account_columns = ["user_ref", "channel", "chat_ref", "language", "member_id"]
        await conn.copy_records_to_table(
            "channelaccount",
            records=accounts,
            columns=[*account_columns, "verified", "pending", "reachable"],
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        meetings = [
            (
                cell,
                "regular",
                "scheduled",
                now - timedelta(days=1 + cell % 40),
                90,
                "Hội trường",
                "Sinh hoạt",
                1,
                now,
                now,
                False,
                cell % 3 != 0,
            )
            for cell in cells
        ]
        await conn.copy_records_to_table(
            "meeting",
            records=meetings,
            columns=[
                "cell_id",
                "kind",
                "status",
                "starts_at",
                "duration_min",
                "place",
                "agenda",
                "version",
                "created_at",
                "updated_at",
                "documents_posted",
                "entered_in_app",
            ],
        )
        for table, column in (("unit", "id"), ("member", "id")):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT max({column}) FROM {table}))"
            )
        await conn.execute("SET session_replication_role = origin")
        progress(f"loaded in {time.perf_counter() - started:.0f} s; rebuilding the rollup")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return by_province, time.perf_counter() - started


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Naive:
    """The naive shape: walk the tree one query per unit, count each cell's members apart."""

    cells_done: int = 0
    installed: int = 0

    async def walk(self, session: Any, root_id: int) -> int:
        todo = [root_id]
        while todo:
            unit_id = todo.pop()
            kids = (
                await session.execute(
                    text("SELECT id FROM unit WHERE parent_id = :u"), {"u": unit_id}
                )
            ).all()
            todo += [kid[0] for kid in kids]
            if kids:
                continue
            for column in ("true", "m.has_smartphone", "coalesce(m.hb_installed, m.app_installed)"):
                count = (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM member m WHERE m.cell_id = :u"
                            f" AND m.status = 'active' AND {column}"
                        ),
                        {"u": unit_id},
                    )
                ).scalar_one()
                if column.startswith("coalesce"):
                    self.installed += count
            self.cells_done += 1
        return self.installed


def group_by(scoped: bool) -> Any:
    """The members grouped per cell (storage.rollup's own truth), the whole country or a scope."""
    from storage import rollup

    sql = rollup.group_by_members()
    if scoped:
        sql = sql.replace(
            "WHERE m.status",
            "WHERE m.cell_id IN (SELECT id FROM unit WHERE path = :p OR path LIKE :like)"
            " AND m.status",
        )
    return text(sql)


Times = dict[str, list[float]]


async def timed(times: Times, name: str, call: Any) -> Any:
    started = time.perf_counter()
    result = await call
    times.setdefault(name, []).append(time.perf_counter() - started)
    return result


async def measure(url: str, province_path: str, args: argparse.Namespace) -> tuple[Times, str]:
    from bot import reports
    from storage import queries, rollup
    from storage.db import Database

    db = Database(url)
    times: Times = {}
    try:
        async with db.session() as session:
            await timed(times, "rollup rebuild (once, after the load)", rollup.rebuild(session))
        async with db.reader() as session:
            root = await queries.unit_by_path(session, path=ROOT)
            province = await queries.unit_by_path(session, path=province_path)
        assert root is not None and province is not None
        scope = {"p": province_path, "like": province_path + " / %"}
        for run in range(args.runs):
            span = reports.window(datetime.now(UTC))
            for unit, label, params in ((root, "national", {}), (province, "province", scope)):
                async with db.reader() as session:
                    report = await timed(
                        times,
                        f"{label}: report (rollup)",
                        reports.unit_report(session, unit=unit, span=span),
                    )
                async with db.reader() as session:
                    connection = await session.connection()
                    rows = await timed(
                        times,
                        f"{label}: plain GROUP BY of the members",
                        _all(connection.execute(group_by(bool(params)), params)),
                    )
                for name in ("members", "registered", "smartphone", "installed", "activated"):
                    assert getattr(report.scope, name) == sum(getattr(r, name) for r in rows), name
            async with db.reader() as session:
                naive = Naive()
                await timed(
                    times, "province: naive per-unit loop", naive.walk(session, province.id or 0)
                )
            assert naive.installed == report.scope.installed
            progress(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()))
        naive_line = await national_naive(db, root.id or 0, args.naive_timeout)
        await maintenance(db, province_path, times, args.runs)
        async with db.reader() as session:
            connection = await session.connection()
            kept = {
                row[0]: tuple(row[1:])
                for row in await connection.execute(
                    text(f"SELECT unit_id, {', '.join(rollup.COUNTS)} FROM unit_rollup")
                )
                if any(row[1:])
            }
            fresh = {row[0]: tuple(row[1:]) for row in await connection.execute(group_by(False))}
        assert kept == fresh, "unit_rollup differs from the GROUP BY"
    finally:
        await db.dispose()
    return times, naive_line


async def _all(result: Any) -> list[Any]:
    return list((await result).all())


async def national_naive(db: Any, root_id: int, limit: float) -> str:
    naive = Naive()
    started = time.perf_counter()
    try:
        async with db.reader() as session:
            await asyncio.wait_for(naive.walk(session, root_id), limit)
        return f"{time.perf_counter() - started:.1f} s (one run)"
    except TimeoutError:
        pass
    async with db.reader() as session:
        leaf = (
            "SELECT count(*) FROM unit u"
            " WHERE NOT EXISTS (SELECT 1 FROM unit k WHERE k.parent_id = u.id)"
        )
        cells = (await (await session.connection()).execute(text(leaf))).scalar_one()
    pace = limit / max(1, naive.cells_done)
    return (
        f"stopped after {limit:.0f} s with {naive.cells_done:,} of {cells:,} cells counted"
        f" (at that pace the whole country: ~{pace * cells:,.0f} s, extrapolated)"
    )


async def maintenance(db: Any, province_path: str, times: Times, runs: int) -> None:
    """What the triggers add to a write: a province's imported statuses flipped in one UPDATE
    (a status import's shape, batched or not) and one member's chat answer, each with the
    triggers on and off, rolled back; then once committed with them on (checked after)."""
    scope = {"p": province_path, "like": province_path + " / %"}
    province_update = text(
        "UPDATE member SET hb_installed = NOT coalesce(hb_installed, false)"
        " WHERE cell_id IN (SELECT id FROM unit WHERE path = :p OR path LIKE :like)"
    )
    one_update = text(
        "UPDATE member SET app_installed = NOT coalesce(app_installed, false) WHERE id = 12345"
    )
    for _ in range(runs):
        for triggers in (False, True):
            label = "on" if triggers else "off"
            for name, stmt, params in (
                ("province status import, one UPDATE", province_update, scope),
                ("one member's chat answer", one_update, {}),
            ):
                async with db.engine.connect() as connection:
                    transaction = await connection.begin()
                    if not triggers:
                        await connection.execute(
                            text("SET LOCAL session_replication_role = replica")
                        )
                    result = await timed(
                        times,
                        f"{name}: triggers {label}",
                        connection.execute(stmt, params),
                    )
                    times.setdefault(f"rows: {name}", []).append(float(result.rowcount))
                    await transaction.rollback()
    async with db.session() as session:
        await (await session.connection()).execute(province_update, scope)


def median(values: list[float]) -> float:
    return statistics.median(values)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--members", type=int, default=5_600_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    from storage.migrate import upgrade

    name = f"sotay_national_{os.getpid()}"
    load_avg = os.getloadavg()[0]
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = PG.format(db=name)
    try:
        upgrade(url)
        shape = Shape.of(args.members)
        by_province, load_seconds = asyncio.run(
            load(url.replace("+asyncpg", ""), shape, args.members)
        )
        province_path = f"{ROOT} / Tỉnh 01"
        times, naive_line = asyncio.run(measure(url, province_path, args))
    finally:
        if not args.keep:
            asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    cells = sum(len(c) for c in by_province.values())
    body = report_body(args, shape, cells, load_seconds, times, naive_line, load_avg)
    print(body)
    if args.write_docs:
        write_docs(body)


def report_body(
    args: argparse.Namespace,
    shape: Shape,
    cells: int,
    load_seconds: float,
    times: Times,
    naive_line: str,
    load_avg: float,
) -> str:
    per_province = cells // shape.provinces
    lines = [
        f"Command: `.venv/bin/python -m bench.national_scale --members {args.members}"
        f" --runs {args.runs} --naive-timeout {args.naive_timeout:.0f}`",
        "",
        f"{args.members:,} members, {shape.provinces} provinces, {cells:,} cells"
        f" ({per_province:,} per province, {shape.per_cell} members a cell), a verified account"
        " for one member in ten, a meeting for every cell; PostgreSQL"
        f" {''}on this machine (2 cores shared, 1-minute load {load_avg:.1f} at the start)."
        f" Load with COPY, triggers off: {load_seconds:.0f} s. Median of {args.runs}"
        " interleaved runs unless stated.",
        "",
        "| what | seconds |",
        "|---|---:|",
    ]
    for name, values in times.items():
        if name.startswith("rows: "):
            continue
        rows = times.get(f"rows: {name.split(': triggers')[0]}")
        extra = f" ({rows[0]:,.0f} rows)" if rows and ": triggers" in name else ""
        lines.append(f"| {name}{extra} | {median(values):.3f} |")
    lines.append(f"| national: naive per-unit loop | {naive_line} |")
    return "\n".join(lines)


def write_docs(body: str) -> None:
    write_section("## National scale (PostgreSQL, unit_rollup)", body)


if __name__ == "__main__":
    main()
