"""The handbook system's own rollout figures: ``sotay status import FILE`` (.csv or .xlsx).

A committee judges the assistant by whether its figures match the handbook system's, so the
statuses exported from that system are stored next to (never over) what members answered in the
chat, and the reports prefer them (``bot/reports.py``). The file is read the way Excel writes it:
CSV in UTF-8 with or without a byte-order mark, CRLF or LF, comma or semicolon; XLSX with real
cell types (dates as date cells, 1/0 as numbers, codes as text). Like the roster import, a bad row
is reported by line and reason while the good ones import, and importing the same file again
changes nothing (not even the time of the last update).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Table, bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tqdm import tqdm

from bot import scheduler
from bot.callbacks import Callback
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.phones import PhoneError, normalize_phone
from bot.reports import Figures, number, pct_text
from bot.router import Router
from bot.scheduler import JobResult, done
from handlers.roster import (
    Reason,
    RosterFileError,
    RowError,
    _clean,
    _records,
    read_roster,
    reason,
    render_errors,
)
from storage.db import Database
from storage.ids import id_of
from storage.models import (
    ChannelAccount,
    DueJob,
    Member,
    MemberStatus,
    OutboxMessage,
    Role,
    RolloutSnapshot,
    Unit,
    utcnow,
)

log = logging.getLogger("sotay.rollout")
IDS = ("member_code", "phone")
FLAGS = ("installed", "activated")
_YES = frozenset({"có", "co", "yes", "y", "1", "true", "x"})
_NO = frozenset({"không", "khong", "no", "n", "0", "false"})
_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
BATCH = 1000
_MEMBERS: Table = Member.__table__  # type: ignore[attr-defined]
_STATUS = ("hb_installed", "hb_activated", "hb_installed_on", "hb_activated_on")
_UPDATE = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in (*_STATUS, "hb_updated_at")})
)


class StatusFileError(RosterFileError):
    """The file as a whole cannot be imported; nothing was written. One sentence for the CLI."""


@dataclass
class StatusReport:
    rows: int
    updated: int
    unchanged: int
    errors: list[RowError] = field(default_factory=list)

    def render(self, lang: str = "en") -> str:
        """One summary line, then the bad rows (at most 50: a terminal stays readable)."""
        summary = t(
            lang,
            "op.status.imported",
            n=self.rows,
            updated=self.updated,
            unchanged=self.unchanged,
            errors=len(self.errors),
        )
        return "\n".join([summary, *render_errors(lang, self.errors)])


Flag = tuple[bool | None, date | None]  # (yes/no/unknown, since when)


def parse_flag(value: Any) -> Flag | Reason:
    """có/không, yes/no, 1/0, or a date (dd/mm/yyyy, or an Excel date cell) meaning "yes since
    that day"; a blank is "not known". A Reason says why the value is refused."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return value, None
    if isinstance(value, datetime):
        return True, value.date()
    if isinstance(value, date):
        return True, value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value), None
        return reason("op.status.row.flag", value=value)
    text = _clean(str(value))
    if not text:
        return None, None
    folded = text.lower()
    if folded in _YES:
        return True, None
    if folded in _NO:
        return False, None
    match = _DATE.match(text)
    if match:
        day, month, year = (int(part) for part in match.groups())
        try:
            return True, date(year, month, day)
        except ValueError:
            return reason("op.status.row.no_date", value=text)
    return reason("op.status.row.flag", value=text)


def _text(value: Any) -> str:
    """A code or phone cell as text: Excel may hold 912000001 as a number or 1.0 as a float."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _clean(str(value))


# --- reading the file -----------------------------------------------------------------------------


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    text = read_roster(path).removeprefix("\ufeff")
    if not text.strip():
        raise StatusFileError("op.import.file.empty")
    yield from _records(text)


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """The first sheet's rows with their row numbers, values as Excel typed them."""
    from openpyxl import load_workbook  # type: ignore[import-untyped]  # no stubs installed

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, XML or format errors: one sentence
        raise StatusFileError("op.status.file.xlsx", name=path.name, error=exc) from None
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), 1):
            yield number, list(row)
    finally:
        book.close()


def file_rows(path: Path) -> list[tuple[int, list[Any]]]:
    """Every record of the file with its line (CSV) or row (XLSX) number, the header first."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        rows = list(_xlsx_rows(path))
    else:
        rows = list(_csv_rows(path))
    if not rows:
        raise StatusFileError("op.import.file.empty")
    return rows


def _columns(header: list[Any]) -> dict[str, int]:
    names = [_text(name).lower() for name in header]
    if not any(name in IDS for name in names):
        raise StatusFileError("op.status.file.no_id")
    if not any(name in FLAGS for name in names):
        raise StatusFileError("op.status.file.no_flag")
    for name in (*IDS, *FLAGS):
        if names.count(name) > 1:
            raise StatusFileError("op.import.file.twice", column=name)
    return {name: names.index(name) for name in (*IDS, *FLAGS) if name in names}


# --- planning and writing -------------------------------------------------------------------------


@dataclass(slots=True)
class _Status:
    installed: bool | None
    activated: bool | None
    installed_on: date | None
    activated_on: date | None

    def values(self) -> tuple[Any, ...]:
        return self.installed, self.activated, self.installed_on, self.activated_on


def _status(value: dict[str, Any]) -> _Status | Reason:
    flags: dict[str, Flag] = {}
    for name in FLAGS:
        parsed = parse_flag(value.get(name))
        if isinstance(parsed, Reason):
            return reason("op.status.row.column", column=name, why=parsed)
        flags[name] = parsed
    (installed, installed_on), (activated, activated_on) = flags["installed"], flags["activated"]
    if activated and installed is False:
        return reason("op.status.row.activated_only")
    if activated and installed is None:
        installed = True  # an activated account implies the app was installed
    return _Status(installed, activated, installed_on, activated_on)


async def _members(session: AsyncSession) -> tuple[dict[str, Any], dict[str, Any]]:
    """Active members by code and by phone, with their current handbook-system status."""
    # sqlmodel's select() is typed for at most four columns; the rows are read by name below.
    stmt = select(  # type: ignore[call-overload,misc]
        Member.id,
        Member.member_code,
        Member.phone,
        Member.hb_installed,
        Member.hb_activated,
        Member.hb_installed_on,
        Member.hb_activated_on,
    ).where(Member.status == MemberStatus.active)
    by_code: dict[str, Any] = {}
    by_phone: dict[str, Any] = {}
    for row in (await session.exec(stmt)).all():
        if row.member_code:
            by_code[row.member_code] = row
        if row.phone:
            by_phone.setdefault(row.phone, row)
    return by_code, by_phone


def _who(value: dict[str, Any], by_code: dict[str, Any], by_phone: dict[str, Any]) -> Any:
    """The member a row names (the row object), or why it names nobody."""
    code = _text(value.get("member_code"))
    if code:
        return by_code.get(code) or reason("op.status.row.no_code", code=code)
    raw = _text(value.get("phone"))
    if not raw:
        return reason("op.status.row.no_id")
    try:
        phone = normalize_phone(raw if not raw.isdigit() or raw[0] == "0" else "0" + raw)
    except PhoneError:
        return reason("op.import.row.phone_bad", phone=raw)
    return by_phone.get(phone) or reason("op.status.row.no_phone", phone=raw)


async def import_status_rows(
    session: AsyncSession,
    records: list[tuple[int, list[Any]]],
    *,
    now: datetime,
    progress: bool = False,
) -> StatusReport:
    """Import inside the caller's transaction: only members whose status changed are written."""
    (_, header), body = records[0], records[1:]
    columns = _columns(header)
    by_code, by_phone = await _members(session)
    seen: dict[int, int] = {}
    errors: list[RowError] = []
    changed: list[dict[str, Any]] = []
    rows = unchanged = 0
    with tqdm(total=len(body), unit="row", disable=not progress, file=sys.stderr) as bar:
        for line, fields in body:
            bar.update()
            if not any(_text(f) for f in fields):
                continue  # blank lines, the ";;;" rows spreadsheets leave at the end
            rows += 1
            value = {name: fields[i] if i < len(fields) else None for name, i in columns.items()}
            member = _who(value, by_code, by_phone)
            status = _status(value)
            if isinstance(member, Reason):
                errors.append(RowError(line, member))
                continue
            if isinstance(status, Reason):
                errors.append(RowError(line, status))
                continue
            if member.id in seen:
                errors.append(
                    RowError(line, reason("op.status.row.same_member", first=seen[member.id]))
                )
                continue
            seen[member.id] = line
            before = (
                member.hb_installed,
                member.hb_activated,
                member.hb_installed_on,
                member.hb_activated_on,
            )
            if status.values() == before:
                unchanged += 1
                continue
            params = {f"b_{name}": v for name, v in zip(_STATUS, status.values(), strict=True)}
            changed.append({"b_id": member.id, "b_hb_updated_at": now, **params})
    for chunk in _chunks(changed):
        await session.exec(_UPDATE, params=chunk)
    return StatusReport(rows, len(changed), unchanged, errors)


def _chunks(items: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    return (items[i : i + BATCH] for i in range(0, len(items), BATCH))


async def import_status_file(
    database_url: str, path: Path, *, progress: bool = False
) -> StatusReport:
    """Read the whole file first (nothing is written if it cannot be read), then one
    transaction for the changed members."""
    records = await asyncio.to_thread(file_rows, path)
    db = Database(database_url)
    try:
        async with db.reader() as session:
            report = await import_status_rows(session, records, now=utcnow(), progress=progress)
            await session.commit()
        return report
    finally:
        await db.dispose()


# --- in the chat: who in a cell has not installed or activated, and nudging them ------------------

NUDGE_KIND = "rd_nudge"
NUDGE_PREFIX = "rdm"  # outbox dedupe keys rdm:<ISO week>:<member>:<account>
VIEWERS = (Role.secretary, Role.deputy, Role.staff, Role.admin)


@dataclass(frozen=True)
class Laggards:
    """Members of one cell who have not installed, or installed but not activated."""

    not_installed: list[Member]
    not_activated: list[Member]

    @property
    def everyone(self) -> list[Member]:
        return [*self.not_installed, *self.not_activated]


def _effective(imported: bool | None, answered: bool | None) -> bool:
    """The handbook system's status where imported, else the member's own answer."""
    return bool(imported if imported is not None else answered)


async def cell_laggards(session: AsyncSession, cell_id: int) -> Laggards:
    stmt = (
        select(Member)
        .where(Member.cell_id == cell_id, Member.status == MemberStatus.active)
        .order_by(col(Member.full_name), col(Member.id))
    )
    not_installed: list[Member] = []
    not_activated: list[Member] = []
    for member in (await session.exec(stmt)).all():
        if not _effective(member.hb_installed, member.app_installed):
            not_installed.append(member)
        elif not _effective(member.hb_activated, member.app_activated):
            not_activated.append(member)
    return Laggards(not_installed, not_activated)


class LaggardVerb(StrEnum):
    show = "l"
    remind = "r"


@dataclass(frozen=True)
class CellLaggards(Callback):
    """Who lags behind in a cell: ``a:rd:<cell>:l`` lists them, ``a:rd:<cell>:r`` reminds them."""

    action: ClassVar[str] = "rd"
    cell_id: int
    verb: LaggardVerb


async def _cell(ctx: Ctx, press: CellLaggards) -> Unit | None:
    """The cell a button names, if it still is one the presser may see (checked again here:
    the signature proves we made the button, not that the presser still holds the role)."""
    cell = await ctx.session.get(Unit, press.cell_id)
    if cell is None:
        ctx.reply(ctx.t("common.stale_button"))
        return None
    if not ctx.actor.can_act_on(cell, *VIEWERS):
        log.warning("rollout.refused unit=%s verb=%s", cell.id, press.verb.value)
        ctx.reply(ctx.t("rp.outside"))
        return None
    return cell


def _names(members: list[Member]) -> str:
    return "\n".join(f"• {m.full_name or '—'}" for m in members) or "—"


async def on_rollout_action(ctx: Ctx, press: CellLaggards) -> None:
    cell = await _cell(ctx, press)
    if cell is not None:
        await LAGGARD_VERBS[press.verb](ctx, cell)


async def show_laggards(ctx: Ctx, cell: Unit) -> None:
    """Names go only to the cell's secretaries and the staff above (checked by ``_cell``)."""
    found = await cell_laggards(ctx.session, cell.id or 0)
    if not found.everyone:
        ctx.reply(ctx.t("rd.members.none", cell=cell.name))
        return
    text = ctx.t(
        "rd.members.list",
        cell=cell.name,
        n_installed=len(found.not_installed),
        not_installed=_names(found.not_installed),
        n_activated=len(found.not_activated),
        not_activated=_names(found.not_activated),
    )
    press = CellLaggards(id_of(cell), LaggardVerb.remind)
    button = ctx.button(ctx.t("rd.btn.remind", n=len(found.everyone)), press)
    ctx.reply(View(text, [[button]]))


def week_key(ctx: Ctx) -> str:
    year, week, _ = ctx.now.astimezone(ctx.settings.tz).isocalendar()
    return f"{NUDGE_PREFIX}:{year}-W{week:02d}:"


async def nudged_this_week(session: AsyncSession, prefix: str) -> set[int]:
    stmt = select(OutboxMessage.dedupe_key).where(col(OutboxMessage.dedupe_key).startswith(prefix))
    return {int(key.split(":")[2]) for key in (await session.exec(stmt)).all() if key}


async def remind_laggards(ctx: Ctx, cell: Unit) -> None:
    """One tap: the members who still lag are reminded, each at most once a week whoever
    presses; in the quiet hours the reminders wait for the morning (a due job)."""
    from handlers.meetings import in_quiet_hours

    found = await cell_laggards(ctx.session, cell.id or 0)
    done = await nudged_this_week(ctx.session, week_key(ctx))
    reachable = await with_account(ctx.session, [m.id or 0 for m in found.everyone])
    away = sum(1 for m in found.everyone if m.id not in reachable)
    due = [m.id for m in found.everyone if m.id in reachable and m.id not in done]
    if not due:
        ctx.reply(ctx.t("rd.remind.already", away=away))
        return
    resume = in_quiet_hours(ctx, ctx.now)
    scheduler.schedule(
        ctx.session,
        kind=NUDGE_KIND,
        due_at=resume.astimezone(UTC) if resume else ctx.now,
        now=ctx.now,
        ref_id=cell.id,
        payload={"members": due},
    )
    key = "rd.remind.later" if resume else "rd.remind.queued"
    at = resume.strftime("%H:%M") if resume else ""
    ctx.reply(ctx.t(key, n=len(due), at=at, skipped=len(reachable) - len(due), away=away))
    log.info("rollout.remind unit=%s members=%s deferred=%s", cell.id, len(due), bool(resume))


async def with_account(session: AsyncSession, member_ids: list[int]) -> set[int]:
    """Which of these members the assistant can reach (a verified chat account)."""
    stmt = select(ChannelAccount.member_id).where(
        col(ChannelAccount.member_id).in_(member_ids),
        col(ChannelAccount.verified).is_(True),
        col(ChannelAccount.pending).is_(False),
    )
    return {int(mid) for mid in (await session.exec(stmt)).all() if mid is not None}


def _text_view(key: str) -> Callable[[str], View]:
    def render(lang: str) -> View:
        return View(t(lang, key))

    return render


@scheduler.job(NUDGE_KIND)
async def nudge_job(ctx: Ctx, work: DueJob) -> JobResult:
    """Send the reminders; members who installed meanwhile, left the cell, or were reminded
    this week by another press are skipped."""
    from handlers.meetings import defer_for_quiet_hours

    if defer_for_quiet_hours(ctx, work):
        return done("deferred: quiet hours")
    found = await cell_laggards(ctx.session, work.ref_id or 0)
    wanted = set((work.payload or {}).get("members", []))
    prefix = week_key(ctx)
    already = await nudged_this_week(ctx.session, prefix)
    sent = unreachable = 0
    for member in found.everyone:
        if member.id not in wanted or member.id in already:
            continue
        key = "rd.nudge.install" if member in found.not_installed else "rd.nudge.activate"
        reached = await ctx.notify_member(
            member, _text_view(key), dedupe_key=f"{prefix}{member.id}"
        )
        if reached:
            sent += 1
        else:
            unreachable += 1
    return done(f"sent {sent}, unreachable {unreachable}")


# --- the weekly trend -----------------------------------------------------------------------------


async def take_snapshot(
    session: AsyncSession, scope: Figures, today: date
) -> RolloutSnapshot | None:
    """Record the unit's counts for today (once a day: a re-run overwrites) and return the
    latest earlier snapshot, the week before in the normal run of things."""
    stmt = (
        select(RolloutSnapshot)
        .where(RolloutSnapshot.unit_id == scope.unit_id, col(RolloutSnapshot.taken_on) <= today)
        .order_by(col(RolloutSnapshot.taken_on).desc())
        .limit(2)
    )
    found = list((await session.exec(stmt)).all())
    current = found[0] if found and found[0].taken_on == today else None
    before = next((snap for snap in found if snap.taken_on < today), None)
    if current is None:
        current = RolloutSnapshot(unit_id=scope.unit_id, taken_on=today)
    for name in ("members", "smartphone", "installed", "activated", "cells", "cells_using"):
        setattr(current, name, getattr(scope, name))
    session.add(current)
    return before


def trend_text(lang: str, scope: Figures, before: RolloutSnapshot | None) -> str:
    """Installed and activated now against the last snapshot ("+1.234 since 30/11")."""
    if before is None:
        return t(lang, "rd.trend.first")

    def delta(now: int, then: int) -> str:
        return ("+" if now >= then else "−") + number(lang, abs(now - then))

    return t(
        lang,
        "rd.trend",
        since=before.taken_on.strftime("%d/%m"),
        installed=delta(scope.installed, before.installed),
        activated=delta(scope.activated, before.activated),
        using=delta(scope.cells_using, before.cells_using),
        share=pct_text(lang, scope.of_members(scope.installed)),
        share_before=pct_text(lang, before.installed / before.members if before.members else None),
    )


LAGGARD_VERBS: dict[LaggardVerb, Callable[[Ctx, Unit], Awaitable[None]]] = {
    LaggardVerb.show: show_laggards,
    LaggardVerb.remind: remind_laggards,
}


def setup(router: Router) -> None:
    router.callback(CellLaggards, requires=VIEWERS)(on_rollout_action)
