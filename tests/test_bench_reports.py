"""bench/reports.py at a tiny size: its data builder runs, and its per-unit baseline computes
exactly the figures of bot/reports.py (the benchmark asserts the same at full size; this keeps the
baseline honest when either side changes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import reports as bench
from bot import reports
from storage.db import Database
from storage.models import Unit


async def test_baseline_agrees_with_set_based_reports(sqlite_template: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "bench.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        built = await bench.build(db, 600, cells=12, communes=3)
        assert (built.units, built.members) == (16, 600)
        assert built.accounts and built.meetings and built.tickets
        span = reports.window(bench.NOW)
        async with db.reader() as session:
            province = await session.get(Unit, built.province_id)
            commune = await session.get(Unit, built.commune_id)
            cell = await session.get(Unit, built.cell_id)
            assert province is not None and commune is not None and cell is not None
            for unit in (province, commune, cell):
                report = await reports.unit_report(session, unit=unit, span=span)
                cells = await reports.cell_rows(session, unit=unit, span=span)
                baseline, baseline_cells = await bench.per_unit_report(
                    session, unit=unit, span=span
                )
                bench.check_equal(report, cells, baseline, baseline_cells)
            report = await reports.unit_report(session, unit=province, span=span)
    finally:
        await db.dispose()
    # The mix is not degenerate: some of everything, so equal figures mean something.
    scope = report.scope
    assert len(report.children) == 3 and scope.cells == 12
    assert 0 < scope.registered < scope.smartphone < scope.members
    assert 0 < scope.activated < scope.installed < scope.members
    assert 0 < scope.cells_using < scope.cells
    assert 0 < scope.meetings_in_app < scope.meetings and scope.open_tickets > 0
