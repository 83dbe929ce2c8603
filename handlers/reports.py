"""Rollout reports in the chat: ``/report`` (figures by unit, worst first, with drill-down), a
chart, a CSV export, nudging the secretaries of cells that do not use the handbook in their
meetings, the weekly digest to administrators, and ``sotay report`` for operators.

Staff see the units they serve, admins their subtree, a cell secretary their own cell. Every
button press is checked again here against the unit it names: the signature proves we made the
button, not that the presser may still see that unit (roles change, buttons stay in the chat).
The figures themselves come from ``bot/reports.py``; this module never logs names or numbers of
people, only unit ids and counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import reports, scheduler
from bot.callbacks import Callback
from bot.clock import Clock
from bot.context import Ctx
from bot.core import Choice, Upload, View
from bot.i18n import t
from bot.outbox import Outbox
from bot.report_cli import ReportError, cli_report  # noqa: F401  (the CLI's, re-exported)
from bot.reports import Report, Window
from bot.router import REGISTERED, Router
from bot.scheduler import JobResult, done, skip
from handlers.rollout_data import CellLaggards, LaggardVerb, take_snapshot, trend_text
from storage import queries
from storage.db import Database
from storage.ids import id_of
from storage.models import (
    DueJob,
    Member,
    MemberStatus,
    OutboxMessage,
    Role,
    RoleGrant,
    RolloutSnapshot,
    Unit,
)

log = logging.getLogger("sotay.reports")

STAFF = (Role.staff, Role.admin)
CELL = (Role.secretary, Role.deputy)
VIEWERS = (*STAFF, *CELL)
MAX_DRILL_BUTTONS = 24  # a province of 100 communes: buttons for the worst 24, the text has all
WEEKLY_KIND = "rp_weekly"
WEEKLY_LATE_LIMIT = timedelta(hours=24)  # later than this, the next Monday's digest is better


def home_unit(ctx: Ctx) -> Unit | None:
    """The unit a report starts from: the highest unit served as staff/admin, else one's cell."""
    for roles in (STAFF, CELL):
        scopes = sorted(ctx.actor.scopes(*roles), key=lambda unit: (unit.depth, unit.path))
        if scopes:
            return scopes[0]
    return None


def report_view(ctx: Ctx, lang: str, report: Report, *, wide: bool, up: Unit | None = None) -> View:
    """The report text; for staff and admins, drill-down, chart, export and nudge buttons."""
    text = reports.render_text(lang, report, ctx.settings.tz)
    uid = report.scope.unit_id
    # A cell's report names who lags behind, for its secretaries and the staff above.
    lags = CellLaggards(uid, LaggardVerb.show)
    members = [ctx.button(t(lang, "rd.btn.members"), lags)] if report.is_cell else []
    if not wide:
        return View(text, [members] if members else [])

    def button(label: str, target: int, verb: ReportVerb) -> Choice:
        return ctx.button(label, ReportPress(target, verb))

    drill = [
        button(f"{reports.mark(child)} {child.name}", child.unit_id, ReportVerb.view)
        for child in report.children[:MAX_DRILL_BUTTONS]
    ]
    if len(report.children) > MAX_DRILL_BUTTONS:
        text += "\n" + t(lang, "rp.more_units", shown=MAX_DRILL_BUTTONS, total=len(report.children))
    rows = [drill[i : i + 2] for i in range(0, len(drill), 2)]
    rows.append(
        [
            button(t(lang, "rp.btn.chart"), uid, ReportVerb.chart),
            button(t(lang, "rp.btn.csv"), uid, ReportVerb.csv),
        ]
    )
    rows.append(
        [
            button(t(lang, "rd.btn.xlsx"), uid, ReportVerb.xlsx),
            button(t(lang, "rd.btn.docx"), uid, ReportVerb.docx),
        ]
    )
    rows.append([button(t(lang, "rp.btn.nudge"), uid, ReportVerb.nudge)])
    if members:
        rows.append(members)
    if up is not None:
        rows.append([button(t(lang, "rp.btn.up", name=up.name), id_of(up), ReportVerb.view)])
    return View(text, rows)


class _Held(Outbox):
    """An outbox that holds back the replies computed in a read-only session (their rows are
    taken out of it), so they can be written afterwards in a short transaction of their own."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.rows: list[OutboxMessage] = []

    def add(self, session: AsyncSession, **message: Any) -> OutboxMessage:
        row = super().add(session, **message)
        session.expunge(row)
        self.rows.append(row)
        return row


def after_commit(ctx: Ctx, work: Callable[[Ctx], Awaitable[None]]) -> None:
    """Run ``work`` once this event's write transaction has committed: it reads in a reader
    session (on SQLite a report that held the one writer's lock made every other member's
    message wait for it), then its replies are queued in a write transaction of a moment."""

    async def run(db: Database) -> None:
        held = _Held(ctx.services.clock)
        async with db.reader() as session:
            services = replace(ctx.services, outbox=held)
            await work(replace(ctx, session=session, services=services))
        async with db.session() as session:
            session.add_all(held.rows)

    ctx.session.info.setdefault("after_commit", []).append(run)


async def show_report(ctx: Ctx, unit: Unit) -> None:
    report = await reports.unit_report(ctx.session, unit=unit, span=reports.window(ctx.now))
    parent = await ctx.session.get(Unit, unit.parent_id) if unit.parent_id else None
    up = parent if parent is not None and ctx.actor.can_act_on(parent, *VIEWERS) else None
    wide = ctx.actor.can_act_on(unit, *STAFF)
    ctx.reply(report_view(ctx, ctx.lang, report, wide=wide, up=up))


async def cmd_report(ctx: Ctx, args: str) -> None:
    unit = home_unit(ctx)
    if unit is None:
        ctx.reply(ctx.t("rp.only_staff"))
        return
    after_commit(ctx, lambda read: show_report(read, unit))


class ReportVerb(StrEnum):
    """What a button under a report does."""

    view = "v"
    chart = "c"
    csv = "x"
    xlsx = "e"
    docx = "w"
    nudge = "n"  # ask before nudging the laggard cells
    nudge_send = "y"
    nudge_drop = "d"


@dataclass(frozen=True)
class ReportPress(Callback):
    """A button under a unit's report: ``a:rp:<unit>:<verb>``."""

    action: ClassVar[str] = "rp"
    unit_id: int
    verb: ReportVerb


STAFF_VERBS = frozenset({ReportVerb.nudge, ReportVerb.nudge_send})  # nudging is staff's


async def on_report_action(ctx: Ctx, press: ReportPress) -> None:
    """The unit is re-read and the presser re-checked; a verb that only reads runs after the
    commit in a reader session (``after_commit``), one that writes runs here."""
    unit = await ctx.session.get(Unit, press.unit_id)
    if unit is None:
        ctx.reply(ctx.t("common.stale_button"))
        return
    needs = STAFF if press.verb in STAFF_VERBS else VIEWERS
    if not ctx.actor.can_act_on(unit, *needs):
        log.warning("report.refused unit=%s verb=%s", unit.id, press.verb.value)
        ctx.reply(ctx.t("rp.outside"))
        return
    reading = READING_VERBS.get(press.verb)
    if reading is not None:
        after_commit(ctx, lambda read: reading(read, unit))
    else:
        await WRITING_VERBS[press.verb](ctx, unit)


# --- files ----------------------------------------------------------------------------------------


async def send_chart(ctx: Ctx, unit: Unit) -> None:
    """The chart is drawn in a worker thread: rendering takes a moment and must not hold up
    other users' messages on the event loop."""
    tz = ctx.settings.tz
    report = await reports.unit_report(ctx.session, unit=unit, span=reports.window(ctx.now))
    caption = ctx.t("rp.chart.caption", unit=unit.name) + "\n" + _window(ctx, report.window)
    if not ctx.can_upload:  # say where to get it rather than draw what cannot be delivered
        ctx.reply(caption + "\n\n" + ctx.t("rp.chart.elsewhere"))
        return
    png = await asyncio.to_thread(reports.render_chart, ctx.lang, report, tz)
    name = reports.file_stem(report.scope, report.window, tz) + ".png"
    ctx.reply(View(caption, upload=Upload(name, "photo", png)))


async def send_csv(ctx: Ctx, unit: Unit) -> None:
    tz = ctx.settings.tz
    span = reports.window(ctx.now)
    cells = await reports.cell_rows(ctx.session, unit=unit, span=span)
    scope = reports.Figures(unit.id or 0, unit.name, unit.path)
    name = reports.file_stem(scope, span, tz) + ".csv"
    data = reports.render_csv(ctx.lang, cells, tz)
    caption = ctx.t("rp.csv.caption", unit=unit.name, n=len(cells)) + "\n" + _window(ctx, span)
    if not ctx.can_upload:
        ctx.reply(caption + "\n\n" + ctx.t("rp.csv.elsewhere"))
        return
    ctx.reply(View(caption, upload=Upload(name, "document", data)))


async def send_xlsx(ctx: Ctx, unit: Unit) -> None:
    await send_office_file(ctx, unit, "xlsx")


async def send_docx(ctx: Ctx, unit: Unit) -> None:
    await send_office_file(ctx, unit, "docx")


async def send_office_file(ctx: Ctx, unit: Unit, kind: Literal["xlsx", "docx"]) -> None:
    """The Excel workbook or the Word report committees file upward, drawn in a worker thread
    like the chart; channels that cannot carry files are told where to get it."""
    tz, span = ctx.settings.tz, reports.window(ctx.now)
    rows = await reports.scope_rows(ctx.session, unit=unit, span=span)
    report = reports.report_from_rows(unit, rows, span)
    caption = ctx.t(f"rd.{kind}.caption", unit=unit.name) + "\n" + _window(ctx, span)
    if not ctx.can_upload:
        ctx.reply(caption + "\n\n" + ctx.t("rd.file.elsewhere", kind=kind))
        return
    from bot import report_files

    if kind == "xlsx":
        cells = [row for row in rows if row.cells]
        data = await asyncio.to_thread(report_files.render_xlsx, ctx.lang, report, cells, tz)
    else:
        difficulties = await reports.open_difficulties(ctx.session, unit=unit)
        data = await asyncio.to_thread(report_files.render_docx, ctx.lang, report, difficulties, tz)
    name = f"{reports.file_stem(report.scope, span, tz)}.{kind}"
    ctx.reply(View(caption, upload=Upload(name, "document", data)))


def _window(ctx: Ctx, span: Window) -> str:
    return reports.window_text(ctx.lang, span, ctx.settings.tz)


# --- nudging laggard cells ------------------------------------------------------------------------


async def ask_nudge(ctx: Ctx, unit: Unit) -> None:
    span = reports.window(ctx.now)
    laggards = await reports.laggard_cells(ctx.session, unit=unit, span=span)
    if not laggards:
        ctx.reply(ctx.t("rp.nudge.none", unit=unit.name, days=span.days))
        return
    n = len(laggards)
    buttons = [
        ctx.button(ctx.t("rp.nudge.send", n=n), ReportPress(id_of(unit), ReportVerb.nudge_send)),
        ctx.button(ctx.t("rp.nudge.drop"), ReportPress(id_of(unit), ReportVerb.nudge_drop)),
    ]
    ctx.reply(View(ctx.t("rp.nudge.confirm", n=n, unit=unit.name, days=span.days), [buttons]))


async def cell_secretaries(session: AsyncSession, cell_ids: list[int]) -> dict[int, list[Member]]:
    """Active secretaries of these cells, in one query."""
    stmt = (
        select(RoleGrant.unit_id, Member)
        .join(Member, col(Member.id) == RoleGrant.member_id)
        .where(col(RoleGrant.unit_id).in_(cell_ids), RoleGrant.role == Role.secretary)
        .where(Member.status == MemberStatus.active)
        .order_by(col(Member.id))
    )
    found: dict[int, list[Member]] = defaultdict(list)
    for cell_id, member in (await session.exec(stmt)).all():
        found[cell_id].append(member)
    return found


async def nudged_today(session: AsyncSession, prefix: str) -> set[int]:
    """Cells whose secretaries already have a nudge queued or sent today (from the outbox's
    unique dedupe keys ``rpn:<day>:<cell>:<member>:<account>``)."""
    stmt = select(OutboxMessage.dedupe_key).where(col(OutboxMessage.dedupe_key).startswith(prefix))
    return {int(key.split(":")[2]) for key in (await session.exec(stmt)).all() if key}


def _nudge_message(cell: str, days: int) -> Callable[[str], View]:
    def render(lang: str) -> View:
        return View(t(lang, "rp.nudge.message", cell=cell, days=days))

    return render


async def nudge_laggards(ctx: Ctx, unit: Unit) -> None:
    """Nudge each laggard cell's secretary once a day: the laggards are computed again now (the
    confirmation may be old), and a cell nudged today by anyone is not nudged again."""
    span = reports.window(ctx.now)
    laggards = await reports.laggard_cells(ctx.session, unit=unit, span=span)
    prefix = f"rpn:{ctx.now.astimezone(ctx.settings.tz):%Y-%m-%d}:"
    done = await nudged_today(ctx.session, prefix)
    people = await cell_secretaries(ctx.session, [c.unit_id for c in laggards if c.unit_id])
    nudged, already = 0, 0
    no_secretary: list[str] = []
    unreachable: list[str] = []
    for cell in laggards:
        name = cell.path.removeprefix(unit.path + queries.PATH_SEP)  # cell names repeat
        if cell.unit_id in done:
            already += 1
            continue
        secretaries = people.get(cell.unit_id, [])
        if not secretaries:
            no_secretary.append(name)
            continue
        sent = 0
        for person in secretaries:
            sent += await ctx.notify_member(
                person,
                _nudge_message(cell.name, span.days),
                dedupe_key=f"{prefix}{cell.unit_id}:{person.id}",
            )
        if sent:
            nudged += 1
        else:
            unreachable.append(name)
    lines = [ctx.t("rp.nudge.done", n=nudged)]
    if already:
        lines.append(ctx.t("rp.nudge.already", n=already))
    if no_secretary:
        lines.append(
            ctx.t("rp.nudge.no_secretary", n=len(no_secretary), cells=", ".join(no_secretary))
        )
    if unreachable:
        lines.append(
            ctx.t("rp.nudge.unreachable", n=len(unreachable), cells=", ".join(unreachable))
        )
    ctx.reply("\n".join(lines))
    log.info(
        "report.nudged unit=%s laggards=%s nudged=%s already=%s no_secretary=%s unreachable=%s",
        unit.id,
        len(laggards),
        nudged,
        already,
        len(no_secretary),
        len(unreachable),
    )


# --- the weekly digest to administrators ----------------------------------------------------------


def weekly_trigger(settings: Any) -> CronTrigger:
    """08:00 local every Monday."""
    return CronTrigger(day_of_week="mon", hour=8, minute=0, timezone=settings.tz)


async def admin_scopes(session: AsyncSession) -> dict[int, tuple[Member, Unit]]:
    """Each active administrator with the highest unit they administer."""
    stmt = (
        select(Member, Unit)
        .join(RoleGrant, col(RoleGrant.member_id) == Member.id)
        .join(Unit, col(Unit.id) == RoleGrant.unit_id)
        .where(RoleGrant.role == Role.admin, Member.status == MemberStatus.active)
        .order_by(col(Unit.depth), col(Unit.path))
    )
    found: dict[int, tuple[Member, Unit]] = {}
    for member, unit in (await session.exec(stmt)).all():
        found.setdefault(member.id or 0, (member, unit))
    return found


@scheduler.recurring(WEEKLY_KIND, weekly_trigger)
async def weekly_report_job(ctx: Ctx, work: DueJob) -> JobResult:
    """Every Monday 08:00: each admin gets their unit's report, worst units first. Missed by more
    than a day (the bot was down), it is skipped on purpose: next Monday's is fresher."""
    late = ctx.now - work.due_at  # type: ignore[operator]
    if late > WEEKLY_LATE_LIMIT:
        return skip(f"{int(late.total_seconds() // 3600)}h late")
    span = reports.window(ctx.now)
    cache: dict[int, tuple[Report, RolloutSnapshot | None]] = {}
    today = ctx.now.astimezone(ctx.settings.tz).date()
    admins = await admin_scopes(ctx.session)
    for member, unit in admins.values():
        if unit.id not in cache:
            report = await reports.unit_report(ctx.session, unit=unit, span=span)
            before = await take_snapshot(ctx.session, report.scope, today)
            cache[unit.id or 0] = (report, before)
        report, before = cache[unit.id or 0]

        def render(
            lang: str, report: Report = report, before: RolloutSnapshot | None = before
        ) -> View:
            view = report_view(ctx, lang, report, wide=True)
            heading = t(lang, "rp.weekly.title")
            if late > timedelta(hours=1):
                heading += "\n" + t(lang, "rp.weekly.late")
            heading += "\n" + trend_text(lang, report.scope, before)
            return View(f"{heading}\n{view.text}", view.choices)

        await ctx.notify_member(member, render)
    return done(f"sent to {len(admins)}")


async def drop_nudge(ctx: Ctx, unit: Unit) -> None:
    ctx.reply(ctx.t("rp.nudge.dropped"))


UnitAction = Callable[[Ctx, Unit], Awaitable[None]]
READING_VERBS: dict[ReportVerb, UnitAction] = {
    ReportVerb.view: show_report,
    ReportVerb.chart: send_chart,
    ReportVerb.csv: send_csv,
    ReportVerb.xlsx: send_xlsx,
    ReportVerb.docx: send_docx,
}
WRITING_VERBS: dict[ReportVerb, UnitAction] = {
    ReportVerb.nudge: ask_nudge,
    ReportVerb.nudge_send: nudge_laggards,
    ReportVerb.nudge_drop: drop_nudge,
}


def setup(router: Router) -> None:
    # Registered members may type /report: a plain member is told politely who it is for.
    router.command("report", requires=REGISTERED, published=False)(cmd_report)
    router.callback(ReportPress, requires=VIEWERS)(on_report_action)
