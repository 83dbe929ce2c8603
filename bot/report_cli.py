"""``sotay report``: the rollout report for operators, as text, JSON, CSV, PNG, XLSX or DOCX.

Kept apart from the chat handlers so that the command loads only what it needs (the figures, the
catalogs, the database): importing the router and every handler cost more than the province's
query. The figures are computed in a read-only session, never inside a write transaction.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import reports
from bot.i18n import t
from bot.settings import Settings
from storage import queries
from storage.db import Database
from storage.models import Unit


class ReportError(Exception):
    """A mistake in ``sotay report``'s arguments, worded for the operator."""


async def cli_report(
    settings: Settings,
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
    db = Database(settings.database_url)
    try:
        async with db.reader() as session:
            unit = await _cli_unit(session, unit_path)
            cells: list[reports.Figures] = []
            if csv_path is None and xlsx_path is None:  # totals by child only: a few rows
                report = await reports.unit_report(session, unit=unit, span=span)
            else:  # every unit, for the files' cell rows; the report adds them up
                rows = await reports.scope_rows(session, unit=unit, span=span)
                report = reports.report_from_rows(unit, rows, span)
                cells = [row for row in rows if row.cells]
            difficulties = await reports.open_difficulties(session, unit=unit) if docx_path else {}
    finally:
        await db.dispose()
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


async def _cli_unit(session: AsyncSession, unit_path: str | None) -> Unit:
    if unit_path:
        try:
            return await queries.operator_unit(session, unit_path)
        except queries.UnitNotFound as exc:
            raise ReportError(str(exc)) from None
    roots = list(await queries.child_units(session, parent_id=None))
    if not roots:
        raise ReportError("there are no units yet; import a roster first (sotay roster import)")
    if len(roots) > 1:
        names = ", ".join(f"'{root.path}'" for root in roots)
        raise ReportError(f"there are several top units ({names}); choose one with --unit")
    return roots[0]
