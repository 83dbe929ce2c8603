"""Support tickets from the command line: ``sotay tickets report`` and ``sotay revoke``.

The report is for the organising commission: tickets by category and unit, median times to the
first response and to resolution, SLA breaches and satisfaction. The member-database correction
list goes to a CSV for the database team with only what they need to find the record: ticket id,
member code, cell path, category, date. Never any message text.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.buttons import ButtonSigner
from bot.clock import Clock
from bot.context import Actor, Ctx, Services
from bot.core import Inbound
from bot.i18n import t
from bot.outbox import Outbox
from bot.phones import PhoneError, normalize_phone
from bot.settings import Settings
from handlers.cli_admin import AdminError
from handlers.support_core import CATEGORIES, release_claims
from storage import queries
from storage.db import Database
from storage.models import Member, Role, RoleGrant, Ticket, TicketStatus, Unit

CSV_COLUMNS = ("ticket_id", "member_code", "cell_path", "category", "created")


def system_ctx(session: AsyncSession, settings: Settings, clock: Clock) -> Ctx:
    """A context for work done outside any chat (the CLI): it writes rows, nobody is replying."""
    services = Services(
        settings=settings,
        clock=clock,
        outbox=Outbox(clock),
        signer=ButtonSigner(settings.signing_key),
        bot_username=settings.telegram_bot_username,
    )
    event = Inbound(channel="system", user_ref="cli", chat_ref="cli", key="cli")
    return Ctx(session, services, event, Actor(), settings.default_language)


async def revoke_role(
    settings: Settings, *, role: str, unit_path: str, phone: str, clock: Clock | None = None
) -> str:
    """Take ``role`` on ``unit_path`` from the person with ``phone``; release their claims."""
    try:
        normalized = normalize_phone(phone)
    except PhoneError:
        raise AdminError(f"'{phone}' is not a Vietnamese phone number") from None
    clock = clock or Clock()
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            try:
                unit = await queries.operator_unit(session, unit_path)
            except queries.UnitNotFound as exc:
                raise AdminError(str(exc)) from None
            member = await queries.member_by_phone(session, phone=normalized)
            if member is None:
                raise AdminError("nobody in the roster has this phone number")
            result = await session.exec(
                delete(RoleGrant).where(
                    col(RoleGrant.member_id) == member.id,
                    col(RoleGrant.role) == Role(role),
                    col(RoleGrant.unit_id) == unit.id,
                )
            )
            if result.rowcount == 0:
                raise AdminError(f"member #{member.id} is not {role} of '{unit.path}'")
            await session.flush()
            released = await release_claims(system_ctx(session, settings, clock), member.id or 0)
            return (
                f"{role} of '{unit.path}' taken from member #{member.id}; "
                f"{released} claimed ticket(s) back in the queue"
            )
    finally:
        await db.dispose()


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _median(deltas: list[timedelta]) -> str:
    if not deltas:
        return "—"
    return _hours(timedelta(seconds=statistics.median(d.total_seconds() for d in deltas)))


def _local(settings: Settings, at: datetime | None) -> str:
    return at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if at else ""


async def tickets_report(
    settings: Settings, *, unit_path: str | None = None, csv_path: Path | None = None
) -> str:
    db = Database(settings.database_url)
    try:
        async with db.reader() as session:
            scope = None
            if unit_path:
                scope = await queries.unit_by_path(session, path=unit_path)
                if scope is None:
                    raise AdminError(f"no unit named '{unit_path}'")
            stmt = select(Ticket, Unit).join(Unit, col(Unit.id) == Ticket.cell_id)
            if scope is not None:
                stmt = stmt.where(queries.in_subtree(Unit.path, scope.path))
            rows = list((await session.exec(stmt.order_by(col(Ticket.id)))).all())
            units = {u.id: u for u in (await session.exec(select(Unit))).all()}
            member_ids = [ticket.member_id for ticket, _ in rows if ticket.db_correction]
            codes = {
                m.id: m.member_code
                for m in (
                    await session.exec(select(Member).where(col(Member.id).in_(member_ids)))
                ).all()
            }
    finally:
        await db.dispose()
    return _render(settings, scope, rows, units, codes, csv_path)


def _render(
    settings: Settings,
    scope: Unit | None,
    rows: list[tuple[Ticket, Unit]],
    units: dict[int | None, Unit],
    codes: dict[int | None, str | None],
    csv_path: Path | None,
) -> str:
    tickets = [ticket for ticket, _ in rows]
    title = scope.path if scope else "all units"
    lines = [f"Support tickets — {title}"]
    states = Counter(ticket.status.value for ticket in tickets)
    summary = ", ".join(f"{s.value} {states.get(s.value, 0)}" for s in TicketStatus)
    lines.append(f"Tickets: {len(tickets)} ({summary})")
    if not tickets:
        return "\n".join(lines)
    width = 40
    lines += ["", f"{'By category':<{width}} tickets"]
    by_category = Counter(ticket.category for ticket in tickets)
    for category in CATEGORIES:
        if by_category.get(category):
            label = t("en", f"sup.cat.{category}")
            lines.append(f"  {label:<{width - 2}} {by_category[category]:>7}")
    lines += ["", f"{'By responsible unit':<{width}} tickets    open  breached"]
    by_unit: dict[int, list[Ticket]] = {}
    for ticket in tickets:
        by_unit.setdefault(ticket.unit_id, []).append(ticket)
    for unit_id, group in sorted(by_unit.items(), key=lambda item: -len(item[1])):
        name = units[unit_id].name if unit_id in units else f"#{unit_id}"
        still_open = sum(1 for x in group if x.status in (TicketStatus.open, TicketStatus.claimed))
        breached = sum(1 for x in group if x.breached)
        lines.append(
            f"  {name[: width - 2]:<{width - 2}} {len(group):>7} {still_open:>7} {breached:>9}"
        )
    first = [
        x.first_response_at - x.created_at for x in tickets if x.first_response_at and x.created_at
    ]
    solved = [x.resolved_at - x.created_at for x in tickets if x.resolved_at and x.created_at]
    breached = [x for x in tickets if x.breached]
    ratings = [x.rating for x in tickets if x.rating]
    lines += [
        "",
        f"Median time to first response: {_median(first)} ({len(first)} answered)",
        f"Median time to resolution:     {_median(solved)} ({len(solved)} resolved)",
        f"SLA breaches: {len(breached)} ticket(s) ({100 * len(breached) // len(tickets)}%), "
        f"{sum(x.escalations for x in tickets)} escalation(s)",
    ]
    if ratings:
        spread = ", ".join(f"{n}★ {ratings.count(n)}" for n in range(5, 0, -1))
        average = statistics.mean(ratings)
        lines.append(f"Satisfaction: {average:.1f} / 5 from {len(ratings)} rating(s) ({spread})")
    else:
        lines.append("Satisfaction: no ratings yet")
    corrections = [(ticket, cell) for ticket, cell in rows if ticket.db_correction]
    if csv_path is not None:
        with csv_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for ticket, cell in corrections:
                writer.writerow(
                    [
                        ticket.id,
                        codes.get(ticket.member_id) or "",
                        cell.path,
                        ticket.category,
                        _local(settings, ticket.created_at),
                    ]
                )
        lines.append(f"Member-database corrections: {len(corrections)} → written to {csv_path}")
    else:
        lines.append(
            f"Member-database corrections: {len(corrections)} (export them with --csv FILE)"
        )
    return "\n".join(lines)
