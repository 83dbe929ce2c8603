"""``sotay report``: the rollout report for operators, as text, JSON, CSV, PNG, XLSX or DOCX.

Kept apart from the chat handlers so that the command loads only what it needs: the figures
(SQLAlchemy Core over light table views, storage/report_tables.py), the catalogs, the engine.
It imports no handler, no SQLModel table, no pydantic-settings (bot/quick_settings.py reads the
three settings it needs) and no Alembic: those were most of a province report's wall time
(docs/benchmarks.md). The figures are computed in a read-only session, never inside a write
transaction.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import reports
from bot.i18n import t
from storage import report_tables
from storage.db import make_engine
from storage.paths import PATH_SEP, UnitNotFound, normalized_path, the_one

if TYPE_CHECKING:
    from bot.quick_settings import ReportSettings


class ReportError(Exception):
    """A mistake in ``sotay report``'s arguments, worded for the operator."""


async def cli_report(
    settings: ReportSettings,
    *,
    unit_path: str | None = None,
    csv_path: Path | None = None,
    chart_path: Path | None = None,
    xlsx_path: Path | None = None,
    docx_path: Path | None = None,
    as_json: bool = False,
    now: datetime | None = None,
) -> str:
    """``sotay report``: the same text as /report (default: the root unit), or ``--json``, and
    the files. Computed in a read-only session: a report never holds the writers' lock."""
    lang, tz = settings.default_language, settings.tz
    span = reports.window(now or datetime.now(UTC))
    engine = make_engine(settings.database_url, readonly=True)
    try:
        async with AsyncSession(engine) as session:
            unit = await _cli_unit(session, unit_path, lang)
            cells: list[reports.Figures] = []
            if csv_path is None and xlsx_path is None:  # totals by child only: a few rows
                report = await reports.unit_report(session, unit=unit, span=span)
            else:  # every unit, for the files' cell rows; the report adds them up
                rows = await reports.scope_rows(session, unit=unit, span=span)
                report = reports.report_from_rows(unit, rows, span)
                cells = [row for row in rows if row.cells]
            difficulties = await reports.open_difficulties(session, unit=unit) if docx_path else {}
    finally:
        await engine.dispose()
    notes = []
    if csv_path is not None:
        await asyncio.to_thread(csv_path.write_bytes, reports.render_csv(lang, cells, tz))
        notes.append(t(lang, "rp.cli.csv", path=csv_path, n=len(cells)))
    if chart_path is not None:
        png = await asyncio.to_thread(reports.render_chart, lang, report, tz)
        await asyncio.to_thread(chart_path.write_bytes, png)
        notes.append(t(lang, "rp.cli.chart", path=chart_path))
    if xlsx_path is not None or docx_path is not None:
        from bot import report_files

        if xlsx_path is not None:
            data = await asyncio.to_thread(report_files.render_xlsx, lang, report, cells, tz)
            await asyncio.to_thread(xlsx_path.write_bytes, data)
            notes.append(t(lang, "rd.cli.xlsx", path=xlsx_path))
        if docx_path is not None:
            data = await asyncio.to_thread(report_files.render_docx, lang, report, difficulties, tz)
            await asyncio.to_thread(docx_path.write_bytes, data)
            notes.append(t(lang, "rd.cli.docx", path=docx_path))
    if as_json:  # only the object on stdout, so it pipes into jq; notes go nowhere
        return json.dumps(reports.report_json(report), ensure_ascii=False, indent=2)
    return "\n".join([reports.render_text(lang, report, tz), *notes])


@dataclass
class UnitRef:
    """A unit as the report needs it (``reports.Unit``), looked up without the ORM."""

    id: int | None
    name: str
    path: str


async def _units(session: AsyncSession, *where: object) -> list[UnitRef]:
    unit = report_tables.unit
    stmt = select(unit.c.id, unit.c.name, unit.c.path).where(*where).order_by(unit.c.path)  # type: ignore[arg-type]
    rows = (await (await session.connection()).execute(stmt)).all()
    return [UnitRef(row.id, row.name, row.path) for row in rows]


async def _cli_unit(session: AsyncSession, unit_path: str | None, lang: str) -> UnitRef:
    """The unit ``--unit`` names — its full path or the unique end of one, as
    ``storage.queries.operator_unit`` reads it — else the one top unit."""
    unit = report_tables.unit
    if unit_path:
        wanted = normalized_path(unit_path)
        found = await _units(session, unit.c.path == wanted) if wanted else []
        if not found and wanted:
            found = await _units(session, unit.c.path.endswith(PATH_SEP + wanted, autoescape=True))
        try:
            return the_one(unit_path, found)
        except UnitNotFound as exc:
            raise ReportError(t(lang, exc.key, **exc.values)) from None
    roots = await _units(session, unit.c.parent_id.is_(None))
    if not roots:
        raise ReportError(t(lang, "op.report.no_units"))
    if len(roots) > 1:
        names = ", ".join(f"'{root.path}'" for root in roots)
        raise ReportError(t(lang, "op.report.several_roots", names=names))
    return roots[0]
