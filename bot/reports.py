"""Rollout figures by unit: who registered, installed and activated the handbook, and which
cells use it in their meetings; rendered as a short text, a PNG chart and a CSV export.

Every figure comes from a fixed number of set-based queries (GROUP BY over members, meetings and
tickets, joined to units by path prefix) whatever the size of the tree: a province has thousands
of cells and the weekly digest computes a report for every administrator, so one query per unit
would not scale. The queries are plain SQL that SQLite and PostgreSQL both run.

This module only reads and renders. It never sends anything and never writes a name or a phone
number anywhere: handlers/reports.py does the chat side, through the outbox.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import String, and_, case, func, select, text

from bot.i18n import t
from bot.textfold import fold
from storage import report_tables as tables
from storage.ids import id_of
from storage.paths import PATH_SEP, in_subtree
from storage.rollup import COUNTS as MEMBER_COUNTS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

WINDOW_DAYS = 30
TARGET = 0.80  # the province's goal: more than 80% of cells use the handbook in their meetings
OPEN_TICKETS = ("open", "claimed")  # TicketStatus values: a waiting or claimed request


class Unit(Protocol):
    """The unit a report is about: a ``storage.models.Unit`` row, or any object with its id,
    name and path (``sotay report`` looks the unit up without loading the SQLModel tables)."""

    id: int | None
    name: str
    path: str


@dataclass(frozen=True)
class Window:
    """The reporting period, aware UTC: meetings that started in [start, end] count."""

    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return round((self.end - self.start) / timedelta(days=1))


def window(now: datetime, days: int = WINDOW_DAYS) -> Window:
    """The last ``days`` days up to ``now``: a rolling window, so a report read on any day of
    the month answers "is this cell using the handbook lately", not "this calendar month"."""
    return Window(now - timedelta(days=days), now)


@dataclass(frozen=True)
class Figures:
    """The counts of one unit (a cell, or everything below a committee)."""

    unit_id: int
    name: str
    path: str
    members: int = 0
    registered: int = 0  # a verified chat account with the assistant
    smartphone: int = 0
    installed: int = 0  # the handbook system's status where imported, else the member's answer
    activated: int = 0
    installed_hb: int = 0  # of which from the handbook system's export (sotay status import)
    activated_hb: int = 0
    hb_known: int = 0  # members the handbook system's export has a status for
    cells: int = 0
    cells_using: int = 0  # cells with a meeting in the window entered in the handbook app
    meetings: int = 0  # non-cancelled meetings in the window
    meetings_in_app: int = 0
    open_tickets: int = 0
    last_meeting: datetime | None = None  # latest non-cancelled meeting up to the window's end

    def of_members(self, count: int) -> float | None:
        """A share of the members; None (shown "—") when there are none, never a division error."""
        return count / self.members if self.members else None

    @property
    def target_share(self) -> float | None:
        """Installed against the target (members with a smartphone), as committees count it:
        it may exceed 1, since members outside the target install too."""
        return self.installed / self.smartphone if self.smartphone else None

    @property
    def using_share(self) -> float | None:
        return self.cells_using / self.cells if self.cells else None

    @property
    def below_target(self) -> bool:
        share = self.using_share
        return share is not None and share <= TARGET

    @property
    def parent_path(self) -> str:
        return self.path.rpartition(PATH_SEP)[0]


@dataclass(frozen=True)
class Report:
    scope: Figures  # the whole unit
    children: list[Figures]  # one per direct child unit, worst first
    window: Window
    is_cell: bool  # the unit is a cell (no units below it)


def worst_first(figures: Figures) -> tuple[Any, ...]:
    """Lowest meeting use first, then lowest installation; units with nothing to measure last."""
    using, installed = figures.using_share, figures.of_members(figures.installed)
    return (
        using is None,
        using or 0.0,
        installed is None,
        installed or 0.0,
        figures.name,
    )


# --- queries --------------------------------------------------------------------------------------


def _under(path_column: Any, scope_path: str) -> Any:
    """The unit at ``scope_path`` and everything below it (LIKE escaped: names may hold % or _)."""
    return in_subtree(path_column, scope_path)


def _flag(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _unit_rows(scope_path: str, span: Window) -> Any:
    """One row per unit under the scope with its own members, meetings and open tickets.

    The member counts come from ``unit_rollup`` (one row per unit, kept exact by triggers in
    the write's own transaction: storage/rollup.py), so a national report reads a few hundred
    thousand small rows instead of millions of members. Meetings and tickets are each grouped
    by their unit first, reached through ``cell_id IN (units in scope)``, and only those small
    aggregates meet the unit tree (bench/reports.py measured the shapes)."""
    unit, rollup, meeting, ticket = tables.unit, tables.unit_rollup, tables.meeting, tables.ticket
    scope = select(unit.c.id).where(_under(unit.c.path, scope_path)).scalar_subquery()
    in_window = meeting.c.starts_at >= span.start
    meetings = (
        select(
            meeting.c.cell_id.label("unit_id"),
            _flag(in_window).label("meetings"),
            _flag(and_(in_window, meeting.c.entered_in_app.is_(True))).label("in_app"),
            func.max(meeting.c.starts_at).label("last_meeting"),
        )
        .where(
            meeting.c.status != "cancelled",
            meeting.c.starts_at <= span.end,
            meeting.c.cell_id.in_(scope),
        )
        .group_by(meeting.c.cell_id)
        .subquery()
    )
    tickets = (
        select(ticket.c.cell_id.label("unit_id"), func.count().label("open_tickets"))
        .where(ticket.c.status.in_(OPEN_TICKETS), ticket.c.cell_id.in_(scope))
        .group_by(ticket.c.cell_id)
        .subquery()
    )
    kid = tables.unit.alias("kid")
    parents = select(kid.c.parent_id).where(kid.c.parent_id.is_not(None)).distinct().subquery()
    is_cell = parents.c.parent_id.is_(None)  # no unit names it as parent: a leaf
    in_app = func.coalesce(meetings.c.in_app, 0)
    return (
        select(
            unit.c.id.label("unit_id"),
            unit.c.name.label("name"),
            unit.c.path.label("path"),
            case((is_cell, 1), else_=0).label("is_cell"),
            case((and_(is_cell, in_app > 0), 1), else_=0).label("using"),
            *(func.coalesce(rollup.c[name], 0).label(name) for name in MEMBER_COUNTS),
            func.coalesce(meetings.c.meetings, 0).label("meetings"),
            in_app.label("in_app"),
            meetings.c.last_meeting.label("last_meeting"),
            func.coalesce(tickets.c.open_tickets, 0).label("open_tickets"),
        )
        .outerjoin(rollup, rollup.c.unit_id == unit.c.id)
        .outerjoin(meetings, meetings.c.unit_id == unit.c.id)
        .outerjoin(tickets, tickets.c.unit_id == unit.c.id)
        .outerjoin(parents, parents.c.parent_id == unit.c.id)
        .where(_under(unit.c.path, scope_path))
    )


async def _plan_each_call(session: AsyncSession) -> None:
    """On PostgreSQL, plan these statements for their own parameters and without JIT.

    A prepared statement switches to a generic plan from its sixth call on a connection; for
    these scope parameters that plan nests the member aggregate in a loop over units and the
    province export ran for minutes. JIT compilation cost more than half of a province
    statement. Both measured by bench/reports.py. A national report groups ~200,000 unit rows:
    with the default 4 MB of work memory its sort spilled to disk (bench/national_scale.py).
    SET LOCAL ends with the transaction."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        await connection.execute(text("SET LOCAL jit = off"))
        await connection.execute(text("SET LOCAL work_mem = '64MB'"))


async def _scope_rows(session: AsyncSession, unit: Unit, span: Window) -> list[Figures]:
    """One Figures per unit in the scope (its own members, meetings and tickets), by path."""
    await _plan_each_call(session)
    stmt = _unit_rows(unit.path, span).order_by(tables.unit.c.path)
    connection = await session.connection()
    return [
        _figures(
            row, row.unit_id, row.name, row.path, cells=int(row.is_cell), cells_using=int(row.using)
        )
        for row in (await connection.execute(stmt)).all()
    ]


def _figures(
    row: Any, unit_id: int, name: str, path: str, *, cells: int, cells_using: int
) -> Figures:
    return Figures(
        unit_id,
        name,
        path,
        **{count: int(getattr(row, count)) for count in MEMBER_COUNTS},
        cells=cells,
        cells_using=cells_using,
        meetings=int(row.meetings),
        meetings_in_app=int(row.in_app),
        open_tickets=int(row.open_tickets),
        last_meeting=row.last_meeting,
    )


_COUNTS = (*MEMBER_COUNTS, "cells", "cells_using", "meetings", "meetings_in_app", "open_tickets")


def summed(unit_id: int, name: str, path: str, parts: Sequence[Figures]) -> Figures:
    """The figures of a subtree: the counts of its units added up, the latest meeting."""
    counts = {field: sum(getattr(part, field) for part in parts) for field in _COUNTS}
    meetings = [part.last_meeting for part in parts if part.last_meeting is not None]
    return Figures(unit_id, name, path, **counts, last_meeting=max(meetings, default=None))


def _child_path(scope_path: str, path: str) -> str | None:
    """The path of the scope's direct child that ``path`` lies under (None: the scope itself)."""
    if path == scope_path:
        return None
    rest = path[len(scope_path) + len(PATH_SEP) :]
    return scope_path + PATH_SEP + rest.split(PATH_SEP, 1)[0]


async def scope_rows(session: AsyncSession, *, unit: Unit, span: Window) -> list[Figures]:
    """Every unit of the scope with its own figures: one query serves the report and the
    cell export alike (``sotay report --csv`` used to run it twice)."""
    return await _scope_rows(session, unit, span)


async def unit_report(session: AsyncSession, *, unit: Unit, span: Window) -> Report:
    """The unit's totals and one line per direct child, worst first.

    Added up by child in SQL: the national root has some 200,000 units below it and only ~60
    children, so the statement returns ~60 rows instead of every unit (bench/national_scale.py).
    """
    await _plan_each_call(session)
    connection = await session.connection()
    position = func.strpos if connection.dialect.name == "postgresql" else func.instr
    totals = (await connection.execute(_child_totals(unit.path, span, position))).all()
    kids = tables.unit
    named = select(kids.c.id, kids.c.name, kids.c.path).where(kids.c.parent_id == id_of(unit))
    children_of = {row.path: row for row in (await connection.execute(named)).all()}
    rows = []
    for row in totals:
        child = children_of[unit.path + PATH_SEP + row.child] if row.child else None
        ref = (child.id, child.name, child.path) if child else (id_of(unit), unit.name, unit.path)
        rows.append(_figures(row, *ref, cells=int(row.is_cell), cells_using=int(row.using)))
    children = [row for row in rows if row.unit_id != id_of(unit)]
    children.sort(key=worst_first)
    scope = summed(id_of(unit), unit.name, unit.path, rows)
    return Report(scope, children, span, is_cell=not children)


def _child_totals(scope_path: str, span: Window, position: Any) -> Any:
    """One row per direct child of the scope with its whole subtree's figures, keyed by the
    child's name as its path spells it, and one keyed '' for the scope's own members, meetings
    and tickets.

    The per-unit rows are ``_unit_rows``' (the same plans as the cell export); the child a unit
    lies under is the first name of its path after the scope's (``position`` is the engine's
    strpos / instr), so grouping needs no walk of the tree and only the children's rows leave
    the database."""
    per_unit = _unit_rows(scope_path, span).subquery("per_unit")
    start = len(scope_path) + len(PATH_SEP) + 1
    rest = func.substr(per_unit.c.path, start, type_=String)
    child = func.substr(rest, 1, position(rest.concat(PATH_SEP), PATH_SEP) - 1, type_=String)
    sums = (*MEMBER_COUNTS, "is_cell", "using", "meetings", "in_app", "open_tickets")
    return select(
        child.label("child"),
        *(func.sum(per_unit.c[name]).label(name) for name in sums),
        func.max(per_unit.c.last_meeting).label("last_meeting"),
    ).group_by(child)


def report_from_rows(unit: Unit, rows: list[Figures], span: Window) -> Report:
    """One statement returns a row per unit in the scope (a province: a few thousand); adding
    them up by child here is cheaper than aggregating the members a second time in SQL."""
    by_path = {row.path: row for row in rows}
    groups: dict[str, list[Figures]] = {}
    for row in rows:
        child = _child_path(unit.path, row.path)
        if child is not None:
            groups.setdefault(child, []).append(row)
    children = [
        summed(by_path[path].unit_id, by_path[path].name, path, parts)
        for path, parts in groups.items()
    ]
    children.sort(key=worst_first)
    scope = summed(id_of(unit), unit.name, unit.path, rows)
    return Report(scope, children, span, is_cell=not children)


async def cell_rows(session: AsyncSession, *, unit: Unit, span: Window) -> list[Figures]:
    """Every cell under the unit (the unit itself if it is a cell), by path: the CSV rows.

    Cells are picked here, not in SQL: PostgreSQL misjudges how many rows the leaf test keeps
    and then chooses nested loops (bench/reports.py)."""
    return [row for row in await _scope_rows(session, unit, span) if row.cells]


async def laggard_cells(session: AsyncSession, *, unit: Unit, span: Window) -> list[Figures]:
    """Cells under the unit with no meeting entered in the handbook app in the window."""
    return [cell for cell in await cell_rows(session, unit=unit, span=span) if not cell.cells_using]


async def open_difficulties(session: AsyncSession, *, unit: Unit) -> dict[str, int]:
    """Open support requests under the unit by category (for the written report)."""
    ticket, units = tables.ticket, tables.unit
    stmt = (
        select(ticket.c.category, func.count())
        .join(units, units.c.id == ticket.c.cell_id)
        .where(ticket.c.status.in_(OPEN_TICKETS), _under(units.c.path, unit.path))
        .group_by(ticket.c.category)
        .order_by(func.count().desc())
    )
    rows = (await (await session.connection()).execute(stmt)).all()
    return {str(category): int(n) for category, n in rows}


# --- text -----------------------------------------------------------------------------------------


def percent(share: float | None) -> str:
    return "—" if share is None else f"{round(share * 100)}%"


def day_text(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%d/%m/%Y")


def window_text(lang: str, span: Window, tz: tzinfo) -> str:
    return t(
        lang,
        "rp.window",
        start=day_text(span.start, tz),
        end=day_text(span.end, tz),
        days=span.days,
    )


def mark(figures: Figures) -> str:
    if figures.using_share is None:
        return "▫️"
    return "⚠️" if figures.below_target else "✅"


def unit_lines(lang: str, figures: Figures) -> list[str]:
    """Two short lines: members and their rates, then meeting use (fits a phone screen)."""
    tickets = t(lang, "rp.line.tickets", n=figures.open_tickets) if figures.open_tickets else ""
    return [
        t(
            lang,
            "rp.line.members",
            members=figures.members,
            registered=percent(figures.of_members(figures.registered)),
            installed=percent(figures.of_members(figures.installed)),
            activated=percent(figures.of_members(figures.activated)),
        ),
        t(
            lang,
            "rp.line.meetings",
            using=figures.cells_using,
            cells=figures.cells,
            share=percent(figures.using_share),
        )
        + tickets,
    ]


def cell_text(lang: str, figures: Figures, tz: tzinfo) -> list[str]:
    """A cell's own figures, one fact a line."""

    def rate(key: str, count: int) -> str:
        return t(lang, key, n=count, share=percent(figures.of_members(count)))

    lines = [
        *headline_lines(lang, figures),
        t(lang, "rp.cell.members", n=figures.members),
        rate("rp.cell.registered", figures.registered),
        t(lang, "rp.cell.smartphone", n=figures.smartphone),
        rate("rp.cell.installed", figures.installed),
        rate("rp.cell.activated", figures.activated),
        t(lang, "rp.cell.meetings", n=figures.meetings, in_app=figures.meetings_in_app),
        t(lang, "rp.cell.using_yes" if figures.cells_using else "rp.cell.using_no"),
    ]
    if figures.last_meeting is not None:
        lines.append(t(lang, "rp.cell.last", date=day_text(figures.last_meeting, tz)))
    lines.append(t(lang, "rp.cell.tickets", n=figures.open_tickets))
    return lines


def render_text(lang: str, report: Report, tz: tzinfo) -> str:
    """The report as a message: title, window, one entry per child (worst first), total."""
    lines = [t(lang, "rp.title", unit=report.scope.name), window_text(lang, report.window, tz)]
    if report.is_cell:
        return "\n".join([*lines, "", *cell_text(lang, report.scope, tz)])
    if report.children:
        lines += [t(lang, "rp.worst_first"), ""]
    for number, figures in enumerate(report.children, 1):
        lines.append(t(lang, "rp.line.head", n=number, mark=mark(figures), name=figures.name))
        lines += ["   " + line for line in unit_lines(lang, figures)]
    total = unit_lines(lang, report.scope)
    lines += ["", t(lang, "rp.total", mark=mark(report.scope)), *total]
    lines += headline_lines(lang, report.scope)
    lines += ["", t(lang, "rp.legend", target=round(TARGET * 100))]
    return "\n".join(lines)


def number(lang: str, value: int) -> str:
    """48.597 in Vietnamese, 48,597 in English."""
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "vi" else text


def pct1(share: float | None) -> float | None:
    """A share as a percentage with one decimal, half up (84.37 -> 84.4), as committees round."""
    if share is None:
        return None
    exact = Decimal(str(share)) * 100
    return float(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def pct_text(lang: str, share: float | None) -> str:
    """84,4% in Vietnamese, 84.4% in English; "—" when there is nothing to divide by."""
    value = pct1(share)
    if value is None:
        return "—"
    text = f"{value:.1f}%"
    return text.replace(".", ",") if lang == "vi" else text


def headline_lines(lang: str, figures: Figures) -> list[str]:
    """The figures as the source article states them (installed / members and the share, then
    against the target), and where the install figure came from."""
    lines = [
        t(
            lang,
            "rd.headline",
            installed=number(lang, figures.installed),
            members=number(lang, figures.members),
            share=pct_text(lang, figures.of_members(figures.installed)),
        ),
        t(
            lang,
            "rd.target",
            smartphone=number(lang, figures.smartphone),
            share=pct_text(lang, figures.target_share),
        ),
    ]
    if figures.members:
        lines.append(
            t(
                lang,
                "rd.source",
                known=number(lang, figures.hb_known),
                answers=number(lang, figures.members - figures.hb_known),
            )
        )
    return lines


def figures_json(figures: Figures) -> dict[str, Any]:
    """The keys of ``sotay report --json`` for one unit (issue 12 fixes the names)."""
    return {
        "unit": figures.path,
        "members": figures.members,
        "smartphone": figures.smartphone,
        "installed": figures.installed,
        "activated": figures.activated,
        "installed_pct": pct1(figures.of_members(figures.installed)),
        "target_pct": pct1(figures.target_share),
        "cells": figures.cells,
        "cells_meeting_in_app": figures.cells_using,
        "cells_meeting_in_app_pct": pct1(figures.using_share),
    }


def report_json(report: Report) -> dict[str, Any]:
    """The scope's figures and, under ``children``, each direct child's (by path)."""
    children = sorted(report.children, key=lambda child: child.path)
    return {**figures_json(report.scope), "children": [figures_json(c) for c in children]}


# --- files ----------------------------------------------------------------------------------------


def file_stem(unit: Figures, span: Window, tz: tzinfo) -> str:
    """An ASCII file name ("sotay-xa-hop-thanh-2026-12-01"): safe on every phone and in Excel."""
    slug = "-".join(fold(unit.name).replace("/", " ").split()) or "unit"
    return f"sotay-{slug[:60]}-{span.end.astimezone(tz):%Y-%m-%d}"


def render_csv(lang: str, cells: Sequence[Figures], tz: tzinfo) -> bytes:
    """One row per cell, UTF-8 with a byte-order mark so Excel shows Vietnamese correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(t(lang, "rp.csv.header").split("|"))
    for cell in cells:
        last = cell.last_meeting.astimezone(tz).date().isoformat() if cell.last_meeting else ""
        writer.writerow(
            [
                cell.parent_path,
                cell.name,
                cell.members,
                cell.registered,
                cell.smartphone,
                cell.installed,
                cell.activated,
                cell.meetings,
                cell.meetings_in_app,
                last,
            ]
        )
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def render_chart(lang: str, report: Report, tz: tzinfo, *, limit: int = 40) -> bytes:
    """A horizontal bar chart (PNG) of installation, activation and meeting use per child unit,
    worst at the top, with the target line. Uses matplotlib's object API on the Agg canvas: no
    display, no pyplot global state, safe to call from a worker thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    units = (report.children or [report.scope])[:limit]
    series = [
        (t(lang, "rp.chart.installed"), [u.of_members(u.installed) for u in units], "#4e79a7"),
        (t(lang, "rp.chart.activated"), [u.of_members(u.activated) for u in units], "#59a14f"),
        (t(lang, "rp.chart.using"), [u.using_share for u in units], "#e15759"),
    ]
    height = 0.8 / len(series)
    figure = Figure(figsize=(8, 2 + 0.55 * len(units)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(units)))
    for index, (label, shares, colour) in enumerate(series):
        offsets = [p - 0.4 + height * (index + 0.5) for p in positions]
        values = [100 * (s or 0.0) for s in shares]
        axes.barh(offsets, values, height=height, label=label, color=colour)
    axes.axvline(TARGET * 100, color="#333333", linestyle="--", linewidth=1.2)
    axes.text(
        TARGET * 100 + 1,
        -0.95,
        t(lang, "rp.chart.target", target=round(TARGET * 100)),
        ha="left",
        va="center",
        fontsize=8,
    )
    axes.set_yticks(positions, [u.name for u in units], fontsize=9)
    axes.invert_yaxis()  # worst first, at the top
    axes.set_xlim(0, 105)
    axes.set_ylim(len(units) - 0.5, -1.2)
    axes.set_xlabel(t(lang, "rp.chart.axis"))
    span = t(
        lang,
        "rp.chart.window",
        start=day_text(report.window.start, tz),
        end=day_text(report.window.end, tz),
    )
    axes.set_title(f"{report.scope.name}\n{span}", fontsize=10, loc="left")
    figure.legend(loc="outside lower center", ncol=3, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
