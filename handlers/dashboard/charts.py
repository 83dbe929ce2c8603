"""Charts as inline SVG drawn on the server: no script, no library in the browser, a few hundred
bytes each, sharp at any zoom (older staff zoom in). Colours are attributes, never ``style``,
so the page's Content-Security-Policy (no inline styles) holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

from markupsafe import Markup, escape

from bot.reports import TARGET

BAR_COLOUR = "#1f5fa8"
LOW_COLOUR = "#b3261e"
USING_COLOUR = "#1b7a3a"


def bar(share: float | None, label: str) -> Markup:
    """One horizontal bar (0–100%) with the goal marked by a dark tick at 80%."""
    value = max(0.0, min(1.0, share or 0.0))
    colour = BAR_COLOUR if share is not None and share >= TARGET else LOW_COLOUR
    goal = TARGET * 100
    return Markup(
        '<svg class="bar" viewBox="0 0 100 14" preserveAspectRatio="none" role="img" '
        'aria-label="{label}"><rect x="0" y="2" width="100" height="10" fill="#e6e6e6"/>'
        '<rect x="0" y="2" width="{w:.1f}" height="10" fill="{c}"/>'
        '<line x1="{g}" y1="0" x2="{g}" y2="14" stroke="#111" stroke-width="1.2"/></svg>'
    ).format(label=label, w=value * 100, c=colour, g=goal)


def trend(
    points: Sequence[tuple[date, float | None, float | None]], labels: tuple[str, str, str]
) -> Markup:
    """Installed share and the share of cells meeting in the app over the snapshots, with the
    goal line; ``labels``: (installed, cells using, goal). Empty markup for fewer than 2 days."""
    if len(points) < 2:
        return Markup("")
    width, height, left, top, bottom = 480, 240, 50, 14, 34
    span = (points[-1][0] - points[0][0]).days or 1

    def x(day: date) -> float:
        return left + (width - left - 10) * (day - points[0][0]).days / span

    def y(share: float) -> float:
        return top + (height - top - bottom) * (1 - share)

    def line(index: Literal[1, 2], colour: str) -> str:
        coords = " ".join(
            f"{x(p[0]):.1f},{y(p[index] or 0.0):.1f}" for p in points if p[index] is not None
        )
        return f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="3"/>'

    grid = "".join(
        f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - 10}" y2="{y(v):.1f}" stroke="#ccc"/>'
        f'<text x="{left - 6}" y="{y(v) + 5:.1f}" text-anchor="end" font-size="17">'
        f"{round(v * 100)}%</text>"
        for v in (0.0, 0.5, 1.0)
    )
    goal = (
        f'<line x1="{left}" y1="{y(TARGET):.1f}" x2="{width - 10}" y2="{y(TARGET):.1f}" '
        f'stroke="#111" stroke-dasharray="6 4" stroke-width="1.5"/>'
        f'<text x="{width - 12}" y="{y(TARGET) - 5:.1f}" text-anchor="end" font-size="17">'
        f"{escape(labels[2])}</text>"
    )
    days = (
        f'<text x="{left}" y="{height - 8}" font-size="17">{points[0][0]:%d/%m}</text>'
        f'<text x="{width - 10}" y="{height - 8}" font-size="17" text-anchor="end">'
        f"{points[-1][0]:%d/%m}</text>"
    )
    title = escape(f"{labels[0]} / {labels[1]}")
    return Markup(
        f'<svg class="trend" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
        f"{grid}{goal}{line(1, BAR_COLOUR)}{line(2, USING_COLOUR)}{days}</svg>"
    )
