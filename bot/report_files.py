"""The rollout report in the forms committees file upward: an Excel workbook and a formal Word
report in Vietnamese.

Both are built from the same ``Report`` as the chat text, so every figure matches /report and
``sotay report --json``. Both run in a worker thread (they take a moment for a province) and
never touch the database. Numbers in the Word report are written the Vietnamese way (48.597;
84,4%); the workbook keeps real numbers and lets Excel format them (percentages as percentages).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from bot.i18n import t
from bot.reports import (
    TARGET,
    Figures,
    Report,
    day_text,
    number,
    pct_text,
    render_chart,
    summed,
)
from storage.queries import PATH_SEP

_WIDTHS = {"name": 42, "path": 60, "number": 13}


def _summary_row(figures: Figures, name: str) -> list[object]:
    """Counts as numbers, shares as fractions (Excel shows them as 84.4%)."""
    return [
        name,
        figures.members,
        figures.smartphone,
        figures.installed,
        figures.activated,
        figures.of_members(figures.installed),
        figures.target_share,
        figures.of_members(figures.activated),
        figures.cells,
        figures.cells_using,
        figures.using_share,
    ]


def levels(scope: Figures, cells: Sequence[Figures]) -> list[tuple[int, list[Figures]]]:
    """Every committee level between the scope and its cells (districts, communes, ...), each
    unit with the sums of the cells below it, by path: one summary sheet per level."""
    sums: dict[str, list[Figures]] = {}
    base = scope.path.count(PATH_SEP)
    for cell in cells:
        parts = cell.path.split(PATH_SEP)
        for depth in range(base + 1, len(parts) - 1):
            sums.setdefault(PATH_SEP.join(parts[: depth + 1]), []).append(cell)
    by_depth: dict[int, list[Figures]] = {}
    for path, below in sorted(sums.items()):
        unit = summed(0, path.rpartition(PATH_SEP)[2], path, below)
        by_depth.setdefault(path.count(PATH_SEP) - base, []).append(unit)
    return sorted(by_depth.items())


_HEADER_HEIGHT = 48  # points: three lines of a wrapped header


def _fit_to_width(sheet: Any) -> None:
    sheet.page_setup.orientation = "landscape"
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0


def render_xlsx(lang: str, report: Report, cells: Sequence[Figures], tz: tzinfo) -> bytes:
    """A summary sheet (one row per direct child and the total, frozen header, widths that fit
    Vietnamese names, percentages formatted, the chart) and a sheet with every cell."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.drawing.image import Image  # type: ignore[import-untyped]
    from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]
    from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

    book = Workbook()
    summary = book.active
    summary.title = t(lang, "rd.xlsx.summary")[:31]
    header = t(lang, "rd.xlsx.header").split("|")
    title = t(lang, "rd.xlsx.title", unit=report.scope.name, date=day_text(report.window.end, tz))
    summary.append([title])
    summary["A1"].font = Font(bold=True, size=13)
    summary.append(header)
    for child in sorted(report.children, key=lambda c: c.path):
        summary.append(_summary_row(child, child.name))
    summary.append(_summary_row(report.scope, t(lang, "rd.total")))
    last = summary.max_row
    for cell in summary[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    summary.row_dimensions[2].height = _HEADER_HEIGHT  # wrapped headers never spill upwards
    for cell in summary[last]:
        cell.font = Font(bold=True)
    for row in summary.iter_rows(min_row=3, max_row=last):
        for index in (5, 6, 7, 10):
            row[index].number_format = "0.0%"
        for index in (1, 2, 3, 4, 8, 9):
            row[index].number_format = "#,##0"
    summary.freeze_panes = "B3"
    summary.column_dimensions["A"].width = _WIDTHS["name"]
    for index in range(2, len(header) + 1):
        summary.column_dimensions[get_column_letter(index)].width = _WIDTHS["number"]
    png = render_chart(lang, report, tz)
    image = Image(io.BytesIO(png))
    image.anchor = f"A{last + 3}"
    summary.add_image(image)

    for depth, units in levels(report.scope, cells):
        level = book.create_sheet(t(lang, "rd.xlsx.level", n=depth)[:31])
        level.append([t(lang, "rd.xlsx.path"), *header])
        for unit in units:
            level.append([unit.parent_path, *_summary_row(unit, unit.name)])
        for row in level.iter_rows(min_row=2):
            for index in (6, 7, 8, 11):
                row[index].number_format = "0.0%"
        for cell in level[1]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        level.row_dimensions[1].height = _HEADER_HEIGHT
        level.freeze_panes = "C2"
        level.column_dimensions["A"].width = _WIDTHS["path"]
        level.column_dimensions["B"].width = _WIDTHS["name"]
        for index in range(3, len(header) + 2):
            level.column_dimensions[get_column_letter(index)].width = _WIDTHS["number"]

    sheet = book.create_sheet(t(lang, "rd.xlsx.cells")[:31])
    sheet.append(t(lang, "rd.xlsx.cells_header").split("|"))
    for cell in cells:
        sheet.append(
            [
                cell.parent_path,
                cell.name,
                cell.members,
                cell.smartphone,
                cell.installed,
                cell.activated,
                cell.of_members(cell.installed),
                cell.meetings_in_app,
                cell.last_meeting.astimezone(tz).date() if cell.last_meeting else None,
                cell.hb_known,
            ]
        )
    for row in sheet.iter_rows(min_row=2):
        row[6].number_format = "0.0%"
        row[8].number_format = "DD/MM/YYYY"
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "C2"
    sheet.column_dimensions["A"].width = _WIDTHS["path"]
    sheet.column_dimensions["B"].width = _WIDTHS["name"]
    for index in range(3, 11):
        sheet.column_dimensions[get_column_letter(index)].width = _WIDTHS["number"]
    sheet.auto_filter.ref = sheet.dimensions
    for each in book.worksheets:  # printed, each sheet fits the page's width, landscape
        _fit_to_width(each)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def render_docx(lang: str, report: Report, difficulties: dict[str, int], tz: tzinfo) -> bytes:
    """The formal report: title, date and unit, headline figures as the source article states
    them, a table per child unit, the chart, units below the goal, open difficulties by category
    and a closing section for the staff to write."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm, Pt

    scope = report.scope
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)

    def centered(text: str, *, bold: bool = False, size: int = 13) -> None:
        paragraph = doc.add_paragraph()
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = paragraph.add_run(text)
        run.bold, run.font.size = bold, Pt(size)

    centered(t(lang, "rd.docx.party"), bold=True)
    centered(scope.name.upper(), bold=True)
    end = report.window.end.astimezone(tz)
    centered(t(lang, "rd.docx.date", day=f"{end.day:02d}", month=f"{end.month:02d}", year=end.year))
    centered(t(lang, "rd.docx.title"), bold=True, size=14)
    centered(t(lang, "rd.docx.unit", unit=scope.name))

    doc.add_heading(t(lang, "rd.docx.h_results"), level=2)
    for key, values in (
        (
            "rd.docx.installed",
            {
                "installed": number(lang, scope.installed),
                "members": number(lang, scope.members),
                "share": pct_text(lang, scope.of_members(scope.installed)),
            },
        ),
        (
            "rd.docx.target",
            {
                "smartphone": number(lang, scope.smartphone),
                "share": pct_text(lang, scope.target_share),
            },
        ),
        (
            "rd.docx.activated",
            {
                "activated": number(lang, scope.activated),
                "share": pct_text(lang, scope.of_members(scope.activated)),
            },
        ),
        (
            "rd.docx.cells",
            {
                "using": number(lang, scope.cells_using),
                "cells": number(lang, scope.cells),
                "share": pct_text(lang, scope.using_share),
                "target": round(TARGET * 100),
            },
        ),
    ):
        doc.add_paragraph(t(lang, key, **values), style="List Bullet")

    if report.children:
        doc.add_heading(t(lang, "rd.docx.h_units"), level=2)
        header = t(lang, "rd.docx.table_header").split("|")
        table = doc.add_table(rows=1, cols=len(header))
        table.style = "Table Grid"
        for cell, text in zip(table.rows[0].cells, header, strict=True):
            cell.text = text
            for run in cell.paragraphs[0].runs:
                run.bold = True
        for child in [*sorted(report.children, key=lambda c: c.path), scope]:
            name = child.name if child is not scope else t(lang, "rd.total")
            cells_text = [
                name,
                number(lang, child.members),
                number(lang, child.smartphone),
                number(lang, child.installed),
                pct_text(lang, child.of_members(child.installed)),
                pct_text(lang, child.target_share),
                f"{number(lang, child.cells_using)}/{number(lang, child.cells)}",
            ]
            for cell, text in zip(table.add_row().cells, cells_text, strict=True):
                cell.text = text
        doc.add_paragraph()
        doc.add_picture(io.BytesIO(render_chart(lang, report, tz)), width=Cm(16))

        below = [child for child in report.children if child.below_target]
        doc.add_heading(t(lang, "rd.docx.h_below", target=round(TARGET * 100)), level=2)
        if below:
            for child in below:
                doc.add_paragraph(
                    t(
                        lang,
                        "rd.docx.below",
                        unit=child.name,
                        share=pct_text(lang, child.using_share),
                    ),
                    style="List Bullet",
                )
        else:
            doc.add_paragraph(t(lang, "rd.docx.none_below"))

    doc.add_heading(t(lang, "rd.docx.h_difficulties"), level=2)
    if difficulties:
        for category, count in difficulties.items():
            label = (
                t(lang, f"sup.cat.{category}") if _has(lang, f"sup.cat.{category}") else category
            )
            doc.add_paragraph(
                t(lang, "rd.docx.difficulty", category=label, n=count), style="List Bullet"
            )
    else:
        doc.add_paragraph(t(lang, "rd.docx.no_difficulties"))

    doc.add_heading(t(lang, "rd.docx.h_closing"), level=2)
    doc.add_paragraph(t(lang, "rd.docx.closing"))
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _has(lang: str, key: str) -> bool:
    from bot.i18n import catalog

    return key in catalog(lang)
