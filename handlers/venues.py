"""Internet at meeting venues (issue 15): where cells meet, can the handbook be opened?

A cell's usual meeting place is the place its meetings name most often. Staff press "ask" and
each cell's secretary gets one short question about that place (Wi-Fi / mobile data good / weak
/ none). Staff then see the cells whose venue has weak or no internet, by commune, with how many
members each serves, and export the list (CSV) — what the committee needs to plan internet for
village cultural houses.

Buttons name a survey or a unit by id; the server checks the presser's role on that unit (the
cell's secretary answers, staff/admins of a unit above see and ask). Logs carry ids and counts.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.callbacks import Callback
from bot.context import Ctx
from bot.core import Upload, View
from bot.i18n import t
from bot.router import Router
from handlers import privacy
from storage import queries
from storage.ids import id_of
from storage.models import Meeting, MeetingStatus, Member, MemberStatus, Role, Unit
from storage.queries import in_subtree
from storage.training_models import VenueSurvey

log = logging.getLogger("sotay.venues")

STAFF = (Role.staff, Role.admin)
SECRETARIES = (Role.secretary, Role.deputy)
ASK_AGAIN_AFTER = timedelta(days=3)  # an unanswered question is repeated at most this often


class Internet(StrEnum):
    """A secretary's answer about the venue, stored as its value."""

    wifi = "wifi"
    good = "good"  # mobile data works well
    weak = "weak"
    none = "none"


POOR = (Internet.weak, Internet.none)


@dataclass(frozen=True)
class VenueAnswer(Callback):
    """The cell's secretary answers about its venue: ``a:vn:<survey>:<answer>``."""

    action: ClassVar[str] = "vn"
    survey_id: int
    answer: Internet


class StaffVerb(StrEnum):
    ask = "ask"  # ask the secretaries of cells not yet answered
    csv = "csv"  # the list as a file


@dataclass(frozen=True)
class VenueStaff(Callback):
    """A button of the staff list: ``a:vnq:<unit>:ask|csv``."""

    action: ClassVar[str] = "vnq"
    unit_id: int
    verb: StaffVerb


@dataclass(frozen=True)
class Venue:
    """A cell, its usual meeting place, the survey row (once asked) and its member count."""

    cell: Unit
    commune: str
    place: str
    members: int
    survey: VenueSurvey | None


async def usual_places(session: AsyncSession, unit: Unit) -> dict[int, str]:
    """Cell id → the place its meetings name most often (the latest such meeting breaks ties)."""
    stmt = (
        select(
            Meeting.cell_id,
            Meeting.place,
            func.count().label("n"),
            func.max(Meeting.starts_at).label("last"),
        )
        .join(Unit, col(Unit.id) == Meeting.cell_id)
        .where(Meeting.status != MeetingStatus.cancelled, in_subtree(Unit.path, unit.path))
        .group_by(col(Meeting.cell_id), col(Meeting.place))
    )
    best: dict[int, tuple[int, Any, str]] = {}
    for cell_id, place, count, last in (await session.exec(stmt)).all():
        if cell_id not in best or (count, last) > best[cell_id][:2]:
            best[cell_id] = (count, last, place)
    return {cell_id: entry[2] for cell_id, entry in best.items()}


async def venues_under(session: AsyncSession, unit: Unit) -> list[Venue]:
    places = await usual_places(session, unit)
    if not places:
        return []
    cells = {
        u.id: u
        for u in (await session.exec(select(Unit).where(col(Unit.id).in_(list(places))))).all()
    }
    parents = {
        u.id: u.name
        for u in (
            await session.exec(
                select(Unit).where(col(Unit.id).in_({c.parent_id for c in cells.values()}))
            )
        ).all()
    }
    counts = dict(
        (
            await session.exec(
                select(Member.cell_id, func.count())
                .where(col(Member.cell_id).in_(list(places)), Member.status == MemberStatus.active)
                .group_by(col(Member.cell_id))
            )
        ).all()
    )
    surveys = {
        (s.cell_id, s.place): s
        for s in (
            await session.exec(
                select(VenueSurvey).where(col(VenueSurvey.cell_id).in_(list(places)))
            )
        ).all()
    }
    found = [
        Venue(
            cell=cells[cell_id],
            commune=parents.get(cells[cell_id].parent_id, ""),
            place=place,
            members=int(counts.get(cell_id, 0)),
            survey=surveys.get((cell_id, place)),
        )
        for cell_id, place in places.items()
        if cell_id in cells
    ]
    return sorted(found, key=lambda v: (v.commune, v.cell.name))


def home_unit(ctx: Ctx) -> Unit | None:
    scopes = sorted(ctx.actor.scopes(*STAFF), key=lambda u: (u.depth, u.path))
    return scopes[0] if scopes else None


# --- asking the secretaries -----------------------------------------------------------------------


def question_view(ctx: Ctx, lang: str, survey: VenueSurvey, cell: Unit) -> View:
    return View(
        t(lang, "vn.ask", cell=cell.name, place=survey.place),
        [[ctx.button(t(lang, f"vn.answer.{a}"), VenueAnswer(id_of(survey), a))] for a in Internet],
    )


async def ask_secretaries(ctx: Ctx, unit: Unit) -> tuple[int, int]:
    """Ask every cell whose usual venue has no answer yet; return (asked, without secretary)."""
    asked = orphans = 0
    for venue in await venues_under(ctx.session, unit):
        survey = venue.survey or VenueSurvey(cell_id=venue.cell.id or 0, place=venue.place)
        if survey.answer is not None:
            continue
        if survey.asked_at is not None and ctx.now - survey.asked_at < ASK_AGAIN_AFTER:
            continue
        secretaries = await queries.holders(
            ctx.session, unit_id=venue.cell.id or 0, roles=SECRETARIES
        )
        if not secretaries:
            orphans += 1
            continue
        survey.asked_at = ctx.now
        ctx.session.add(survey)
        await ctx.session.flush()
        for person in secretaries:
            await ctx.notify_member(person, _question(ctx, survey, venue.cell))
        asked += 1
    log.info("venues.asked unit=%s cells=%s orphans=%s", unit.id, asked, orphans)
    return asked, orphans


def _question(ctx: Ctx, survey: VenueSurvey, cell: Unit) -> Callable[[str], View]:
    """The question about this survey's venue, in the language of whoever receives it."""
    return lambda lang: question_view(ctx, lang, survey, cell)


async def on_answer(ctx: Ctx, press: VenueAnswer) -> None:
    """The cell's secretary or deputy answers (again, if they like)."""
    survey = await ctx.session.get(VenueSurvey, press.survey_id)
    cell = await ctx.session.get(Unit, survey.cell_id) if survey else None
    if survey is None or cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        log.warning("venues.refused survey=%s", press.survey_id)
        ctx.reply(ctx.t("common.not_allowed"))
        return
    survey.answer, survey.answered_at = press.answer.value, ctx.now
    survey.answered_by = ctx.actor.member.id if ctx.actor.member else None
    ctx.session.add(survey)
    ctx.reply(ctx.t("vn.thanks_poor" if press.answer in POOR else "vn.thanks"))


# --- the staff list and its export ----------------------------------------------------------------


def answer_of(venue: Venue) -> str | None:
    """The secretary's answer about the venue, if any."""
    return venue.survey.answer if venue.survey is not None else None


def summary_text(lang: str, unit: Unit, venues: list[Venue]) -> str:
    answered = [v for v in venues if answer_of(v)]
    by_answer = {a.value: sum(1 for v in answered if answer_of(v) == a) for a in Internet}
    asked = sum(1 for v in venues if v.survey is not None and v.survey.asked_at)
    lines = [
        t(
            lang,
            "vn.summary",
            unit=unit.name,
            n=len(venues),
            asked=asked,
            answered=len(answered),
            **by_answer,
        )
    ]
    poor = [v for v in answered if answer_of(v) in POOR]
    if not poor:
        lines.append(t(lang, "vn.no_poor"))
        return "\n".join(lines)
    lines.append(t(lang, "vn.poor_title", n=len(poor)))
    by_commune: dict[str, list[Venue]] = defaultdict(list)
    for venue in poor:
        by_commune[venue.commune].append(venue)
    for commune, items in sorted(by_commune.items()):
        lines.append(f"{commune}:")
        for v in items:
            answer = t(lang, f"vn.answer.{answer_of(v)}")
            lines.append(
                t(lang, "vn.poor_line", cell=v.cell.name, place=v.place, answer=answer, n=v.members)
            )
    return "\n".join(lines)


def render_csv(lang: str, venues: list[Venue], tz: tzinfo) -> bytes:
    """Every cell with a known venue: commune, cell, place, answer, members, answer date.
    UTF-8 with BOM so Excel opens Vietnamese correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(t(lang, "vn.csv.header").split("|"))
    for v in venues:
        answer = answer_of(v)
        answered: datetime | None = v.survey.answered_at if v.survey else None
        writer.writerow(
            [
                v.commune,
                v.cell.name,
                v.place,
                t(lang, f"vn.answer.{answer}") if answer else t(lang, "vn.unanswered"),
                v.members,
                answered.astimezone(tz).strftime("%d/%m/%Y") if answered else "",
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def list_view(ctx: Ctx, unit: Unit, venues: list[Venue]) -> View:
    rows = [
        [ctx.button(ctx.t(f"vn.btn.{verb}"), VenueStaff(id_of(unit), verb))] for verb in StaffVerb
    ]
    return View(summary_text(ctx.lang, unit, venues), rows)


async def cmd_venues(ctx: Ctx, args: str) -> None:
    unit = home_unit(ctx)
    if unit is None:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    ctx.reply(list_view(ctx, unit, await venues_under(ctx.session, unit)))


async def on_staff_action(ctx: Ctx, press: VenueStaff) -> None:
    """Staff or admins of that unit (or above): the verb's own function runs."""
    unit = await ctx.session.get(Unit, press.unit_id)
    if unit is None or not ctx.actor.can_act_on(unit, *STAFF):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await STAFF_VERBS[press.verb](ctx, unit)


async def _ask(ctx: Ctx, unit: Unit) -> None:
    asked, orphans = await ask_secretaries(ctx, unit)
    ctx.reply(ctx.t("vn.asked", n=asked, orphans=orphans))


async def _export(ctx: Ctx, unit: Unit) -> None:
    venues = await venues_under(ctx.session, unit)
    caption = ctx.t("vn.csv.caption", unit=unit.name, n=len(venues))
    if not ctx.can_upload:
        ctx.reply(caption + "\n\n" + ctx.t("vn.csv.elsewhere"))
        return
    stamp = ctx.now.astimezone(ctx.settings.tz).strftime("%Y%m%d")
    data = render_csv(ctx.lang, venues, ctx.settings.tz)
    ctx.reply(View(caption, upload=Upload(f"internet-noi-sinh-hoat-{stamp}.csv", "document", data)))


STAFF_VERBS: dict[StaffVerb, Callable[[Ctx, Unit], Awaitable[None]]] = {
    StaffVerb.ask: _ask,
    StaffVerb.csv: _export,
}


# --- privacy --------------------------------------------------------------------------------------


@privacy.forgets
async def forget_answers(session: AsyncSession, member_id: int) -> None:
    """The answer is about a place, not a person: it stays; who gave it goes."""
    stmt = select(VenueSurvey).where(VenueSurvey.answered_by == member_id)
    for row in (await session.exec(stmt)).all():
        row.answered_by = None
        session.add(row)


@privacy.tells_about
async def venue_answers_about(session: AsyncSession, member_id: int) -> dict[str, Any]:
    stmt = (
        select(VenueSurvey, Unit)
        .join(Unit, col(Unit.id) == VenueSurvey.cell_id)
        .where(VenueSurvey.answered_by == member_id)
    )
    return {
        "venue_answers": [
            {"cell": u.path, "place": s.place, "answer": s.answer}
            for s, u in (await session.exec(stmt)).all()
        ]
    }


def setup(router: Router) -> None:
    router.command("venues", requires=STAFF)(cmd_venues)
    router.callback(VenueStaff, requires=STAFF)(on_staff_action)
    router.callback(VenueAnswer, requires=SECRETARIES)(on_answer)
