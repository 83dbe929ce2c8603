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
from bot.settings import Settings
from handlers.cli_admin import AdminError, operator_unit, phone_of, role_name
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
    lang = settings.default_language
    normalized = phone_of(settings, phone)
    clock = clock or Clock()
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            unit = await operator_unit(session, unit_path, lang)
            member = await queries.member_by_phone(session, phone=normalized)
            if member is None:
                raise AdminError(t(lang, "op.revoke.nobody"))
            result = await session.exec(
                delete(RoleGrant).where(
                    col(RoleGrant.member_id) == member.id,
                    col(RoleGrant.role) == Role(role),
                    col(RoleGrant.unit_id) == unit.id,
                )
            )
            if result.rowcount == 0:
                raise AdminError(
                    t(
                        lang,
                        "op.revoke.not_holder",
                        id=member.id,
                        role=role_name(settings, role),
                        unit=unit.path,
                    )
                )
            await session.flush()
            released = await release_claims(system_ctx(session, settings, clock), member.id or 0)
            return t(
                lang,
                "op.revoke.done",
                role=role_name(settings, role),
                unit=unit.path,
                id=member.id,
                n=released,
            )
    finally:
        await db.dispose()


def _hours(lang: str, delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return t(lang, "op.tickets.hours", h=minutes // 60, m=minutes % 60)


def _median(lang: str, deltas: list[timedelta]) -> str:
    if not deltas:
        return "—"
    return _hours(lang, timedelta(seconds=statistics.median(d.total_seconds() for d in deltas)))


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
                scope = await operator_unit(session, unit_path, settings.default_language)
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
    lang = settings.default_language
    tickets = [ticket for ticket, _ in rows]
    title = scope.path if scope else t(lang, "op.tickets.all_units")
    lines = [t(lang, "op.tickets.title", scope=title)]
    states = Counter(ticket.status.value for ticket in tickets)
    summary = ", ".join(
        f"{t(lang, f'op.tickets.status.{s.value}')} {states.get(s.value, 0)}" for s in TicketStatus
    )
    lines.append(t(lang, "op.tickets.count", n=len(tickets), summary=summary))
    if not tickets:
        return "\n".join(lines)
    width = 40
    heading = t(lang, "op.tickets.by_category")
    lines += ["", f"{heading:<{width}} {t(lang, 'op.tickets.col.tickets')}"]
    by_category = Counter(ticket.category for ticket in tickets)
    for category in CATEGORIES:
        if by_category.get(category):
            label = t(lang, f"sup.cat.{category}")
            lines.append(f"  {label:<{width - 2}} {by_category[category]:>7}")
    columns = " ".join(t(lang, f"op.tickets.col.{c}") for c in ("tickets", "open", "breached"))
    lines += ["", f"{t(lang, 'op.tickets.by_unit'):<{width}} {columns}"]
    by_unit: dict[int, list[Ticket]] = {}
    for ticket in tickets:
        by_unit.setdefault(ticket.unit_id, []).append(ticket)
    for unit_id, group in sorted(by_unit.items(), key=lambda item: -len(item[1])):
        name = units[unit_id].name if unit_id in units else f"#{unit_id}"
        still_open = sum(1 for x in group if x.status in (TicketStatus.open, TicketStatus.claimed))
        late = sum(1 for x in group if x.breached)
        lines.append(
            f"  {name[: width - 2]:<{width - 2}} {len(group):>7} {still_open:>7} {late:>9}"
        )
    first = [
        x.first_response_at - x.created_at for x in tickets if x.first_response_at and x.created_at
    ]
    solved = [x.resolved_at - x.created_at for x in tickets if x.resolved_at and x.created_at]
    breached = [x for x in tickets if x.breached]
    ratings = [x.rating for x in tickets if x.rating]
    lines += [
        "",
        t(lang, "op.tickets.first_response", median=_median(lang, first), n=len(first)),
        t(lang, "op.tickets.resolution", median=_median(lang, solved), n=len(solved)),
        t(
            lang,
            "op.tickets.breaches",
            n=len(breached),
            share=100 * len(breached) // len(tickets),
            escalations=sum(x.escalations for x in tickets),
        ),
    ]
    if ratings:
        spread = ", ".join(f"{n}★ {ratings.count(n)}" for n in range(5, 0, -1))
        average = f"{statistics.mean(ratings):.1f}"
        lines.append(
            t(lang, "op.tickets.satisfaction", average=average, n=len(ratings), spread=spread)
        )
    else:
        lines.append(t(lang, "op.tickets.no_ratings"))
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
        lines.append(t(lang, "op.tickets.corrections_file", n=len(corrections), path=csv_path))
    else:
        lines.append(t(lang, "op.tickets.corrections", n=len(corrections)))
    return "\n".join(lines)
