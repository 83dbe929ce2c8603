"""Training sessions: from installing the handbook to using it (issue 15).

Staff, admins and the vendor's trainers (role ``trainer`` on a unit) schedule a training for a
unit; the assistant invites the members of that unit's cells who have not installed or activated
the handbook, and every cell secretary. Members
answer yes / no with the same buttons (numbered lines on channels without buttons) as meeting
notices; secretaries sign members up on their behalf. Reminders and the trainer's follow-up are
due jobs. After the session the trainer records who came; a day later those who came are asked
whether they installed and logged in, and those answers update the member's handbook status, so
the training report shows the change among the people trained.

Every button names a session by id only: who may act on it is checked here on each press
(staff or admin of the session's unit; a member of a cell inside it; a secretary of such a cell).
Logs carry ids and counts, never names.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs, scheduler
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from bot.router import REGISTERED, Router
from bot.scheduler import JobResult, done, skip
from handlers import privacy, when
from handlers.broadcast import send_broadcast
from storage import queries
from storage.models import DueJob, Member, MemberStatus, Role, RoleGrant, Unit
from storage.queries import PATH_SEP, in_subtree
from storage.training_models import TrainingSeat, TrainingSession, TrainingStatus

log = logging.getLogger("sotay.training")

TRAINERS = (Role.staff, Role.admin, Role.trainer)
SECRETARIES = (Role.secretary, Role.deputy)
PLACE_MAX = 200
TOPIC_MAX = 1000
CAPACITY_RANGE = (1, 500)
DURATION_MIN = 120
FOLLOWUP_AFTER = timedelta(days=1)
JOBS = ("tr_reminder", "tr_after", "tr_check")

create_flow = dialogs.flow("training")
signup_flow = dialogs.flow("training_signup")
attendance_flow = dialogs.flow("training_attendance")


# --- formatting -----------------------------------------------------------------------------------


def when_text(lang: str, moment: datetime, tz: Any) -> str:
    """The start time in the deployment's zone, as meetings show it (19:30 Thứ Hai 20/12/2026)."""
    here = moment.astimezone(tz)
    return f"{here:%H:%M} {t(lang, f'wd.{here.weekday()}')} {here:%d/%m/%Y}"


def invite_text(lang: str, session: TrainingSession, unit: Unit, tz: Any, free: int) -> str:
    return t(
        lang,
        "tr.invite",
        unit=unit.name,
        when=when_text(lang, session.starts_at, tz),  # type: ignore[arg-type]
        place=session.place,
        topic=session.topic,
        n=max(free, 0),
    )


def answer_buttons(
    ctx: Ctx, lang: str, session_id: int, *, secretary: bool = False
) -> list[list[Any]]:
    rows = [
        [
            ctx.button(t(lang, "tr.yes"), f"a:tr:{session_id}:y"),
            ctx.button(t(lang, "tr.no"), f"a:tr:{session_id}:n"),
        ]
    ]
    if secretary:
        rows.append([ctx.button(t(lang, "tr.signup_others"), f"a:trs:{session_id}")])
    return rows


# --- queries --------------------------------------------------------------------------------------


async def seats_of(session: AsyncSession, session_id: int) -> dict[int, TrainingSeat]:
    stmt = select(TrainingSeat).where(TrainingSeat.session_id == session_id)
    return {s.member_id: s for s in (await session.exec(stmt)).all()}


async def taken(session: AsyncSession, session_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(TrainingSeat)
        .where(TrainingSeat.session_id == session_id, TrainingSeat.answer == "yes")
    )
    return int((await session.exec(stmt)).one())


async def members_under(session: AsyncSession, unit: Unit) -> list[Member]:
    """Active members of every cell in ``unit``'s subtree."""
    stmt = (
        select(Member)
        .join(Unit, col(Unit.id) == Member.cell_id)
        .where(Member.status == MemberStatus.active, in_subtree(Unit.path, unit.path))
        .order_by(col(Member.id))
    )
    return list((await session.exec(stmt)).all())


async def secretaries_under(session: AsyncSession, unit: Unit) -> set[int]:
    stmt = (
        select(RoleGrant.member_id)
        .join(Unit, col(Unit.id) == RoleGrant.unit_id)
        .where(col(RoleGrant.role).in_(list(SECRETARIES)), in_subtree(Unit.path, unit.path))
    )
    return set((await session.exec(stmt)).all())


@dataclass(frozen=True)
class Invitees:
    """Who a training invites, those who need it most first."""

    members: list[Member]
    lagging: int  # not installed, or installed but not logged in
    secretaries: int


def needs_training(member: Member) -> bool:
    return not (member.app_installed and member.app_activated)


async def invitees(session: AsyncSession, unit: Unit) -> Invitees:
    """Members who have not installed or activated the handbook (not installed first), then
    every secretary or deputy who is not among them."""
    everyone = await members_under(session, unit)
    secretaries = await secretaries_under(session, unit)
    lagging = sorted(
        (m for m in everyone if needs_training(m)), key=lambda m: bool(m.app_installed)
    )
    lagging_ids = {m.id for m in lagging}
    extra = [m for m in everyone if m.id in secretaries and m.id not in lagging_ids]
    return Invitees(lagging + extra, len(lagging), len(extra))


def trainer_scopes(ctx: Ctx) -> list[Unit]:
    return sorted(ctx.actor.scopes(*TRAINERS), key=lambda u: (u.depth, u.path))


async def session_for_trainer(ctx: Ctx, raw_id: str) -> tuple[TrainingSession, Unit] | None:
    """The session if the actor is staff or admin of its unit; otherwise say so, return None."""
    found = await ctx.session.get(TrainingSession, int(raw_id)) if raw_id.isdigit() else None
    unit = await ctx.session.get(Unit, found.unit_id) if found else None
    if found is None or unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        log.warning("training.refused session=%s", raw_id[:12])
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    return found, unit


async def cell_of(ctx: Ctx, member: Member | None) -> Unit | None:
    if member is None or member.cell_id is None:
        return None
    return await ctx.session.get(Unit, member.cell_id)


# --- /training ------------------------------------------------------------------------------------


async def upcoming_for(ctx: Ctx, units: list[Unit]) -> list[tuple[TrainingSession, Unit]]:
    """Scheduled sessions not yet over whose unit lies in (or above, for members) ``units``."""
    stmt = (
        select(TrainingSession, Unit)
        .join(Unit, col(Unit.id) == TrainingSession.unit_id)
        .where(
            TrainingSession.status == TrainingStatus.scheduled,
            col(TrainingSession.starts_at) > ctx.now - timedelta(days=2),
        )
        .order_by(col(TrainingSession.starts_at))
    )
    return [
        (s, u)
        for s, u in (await ctx.session.exec(stmt)).all()
        if any(queries.within(u.path, scope.path) for scope in units)
    ]


async def cmd_training(ctx: Ctx, args: str) -> None:
    """Trainers: the sessions they run, a new one, the results. Members: trainings open to them."""
    scopes = trainer_scopes(ctx)
    if args.strip().lower() in ("report", "bao cao", "báo cáo") and scopes:
        await show_report(ctx, scopes[0])
        return
    if scopes:
        rows = [[ctx.button(ctx.t("tr.new"), "a:trn")]]
        for found, unit in (await upcoming_for(ctx, scopes))[:8]:
            label = f"📋 {when_text(ctx.lang, found.starts_at, ctx.settings.tz)} · {unit.name}"  # type: ignore[arg-type]
            rows.append([ctx.button(label[:60], f"a:trc:{found.id}:card")])
        rows.append([ctx.button(ctx.t("tr.report_button"), f"a:trr:{scopes[0].id}")])
        ctx.reply(View(ctx.t("tr.menu"), rows))
        return
    await show_open_trainings(ctx)


async def show_open_trainings(ctx: Ctx) -> None:
    """A member sees the trainings that cover their cell and are still ahead."""
    cell = await cell_of(ctx, ctx.actor.member)
    if cell is None:
        ctx.reply(ctx.t("tr.none"))
        return
    found = [
        (s, u)
        for s, u in await upcoming_for_cell(ctx, cell)
        if s.starts_at > ctx.now  # type: ignore[operator]
    ]
    if not found:
        ctx.reply(ctx.t("tr.none"))
        return
    secretary = ctx.actor.can_act_on(cell, *SECRETARIES)
    for session_row, unit in found[:5]:
        free = session_row.capacity - await taken(ctx.session, session_row.id or 0)
        ctx.reply(
            View(
                invite_text(ctx.lang, session_row, unit, ctx.settings.tz, free),
                answer_buttons(ctx, ctx.lang, session_row.id or 0, secretary=secretary),
            )
        )


async def upcoming_for_cell(ctx: Ctx, cell: Unit) -> list[tuple[TrainingSession, Unit]]:
    stmt = (
        select(TrainingSession, Unit)
        .join(Unit, col(Unit.id) == TrainingSession.unit_id)
        .where(TrainingSession.status == TrainingStatus.scheduled)
        .order_by(col(TrainingSession.starts_at))
    )
    return [
        (s, u) for s, u in (await ctx.session.exec(stmt)).all() if queries.within(cell.path, u.path)
    ]


async def on_new(ctx: Ctx, args: list[str]) -> None:
    if not trainer_scopes(ctx):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await dialogs.start(ctx, create_flow, "unit", {"lang": ctx.lang})


# --- scheduling dialog ----------------------------------------------------------------------------


async def unit_choices(ctx: Ctx) -> list[Unit]:
    """The units a trainer serves and the units directly below them (a commune's cells)."""
    units: list[Unit] = []
    for scope in trainer_scopes(ctx):
        units.append(scope)
        units += list(await queries.child_units(ctx.session, parent_id=scope.id))
    seen: set[int] = set()
    return [u for u in units if not (u.id in seen or seen.add(u.id or 0))][:12]  # type: ignore[func-returns-value]


@create_flow.ask("unit")
async def ask_unit(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    options = [Option(str(u.id), u.name) for u in await unit_choices(ctx)]
    return Prompt(ctx.t("tr.ask.unit"), options)


@create_flow.answer("unit")
async def on_unit(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    unit = await ctx.session.get(Unit, int(a.value)) if a.value and a.value.isdigit() else None
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        return Retry("common.not_allowed")
    s["unit_id"] = unit.id
    return "date"


@create_flow.ask("date")
async def ask_date(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("tr.ask.date"), free_text=True)


@create_flow.answer("date")
async def on_date(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.read_day(ctx, s, a.text or a.value or "", "time")


@create_flow.ask("date_confirm")
async def ask_date_confirm(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return when.date_confirm_prompt(ctx, s)


@create_flow.answer("date_confirm")
async def on_date_confirm(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.confirmed_day(s, a, "time")


@create_flow.ask("time")
async def ask_time(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    quick = ["08:00", "14:00", "19:30"]
    return Prompt(ctx.t("tr.ask.time"), [Option(v, v) for v in quick], free_text=True, columns=3)


@create_flow.answer("time")
async def on_time(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.read_time(ctx, s, a, "place")


@create_flow.ask("time_confirm")
async def ask_time_confirm(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return when.time_confirm_prompt(ctx, s)


@create_flow.answer("time_confirm")
async def on_time_confirm(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.confirmed_time(ctx, s, a, "place")


@create_flow.ask("place")
async def ask_place(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("tr.ask.place"), free_text=True)


@create_flow.answer("place")
async def on_place(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    place = " ".join((a.text or "").split())
    if not place or len(place) > PLACE_MAX:
        return Retry("tr.place.invalid", {"max": PLACE_MAX})
    s["place"] = place
    return "topic"


TOPICS = ("install", "use")


@create_flow.ask("topic")
async def ask_topic(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("tr.ask.topic"),
        [Option(k, ctx.t(f"tr.topic.{k}")) for k in TOPICS],
        free_text=True,
    )


@create_flow.answer("topic")
async def on_topic(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    topic = ctx.t(f"tr.topic.{a.value}") if a.value in TOPICS else (a.text or "").strip()
    if not topic:
        return Retry("tr.topic.empty")
    if len(topic) > TOPIC_MAX:
        return Retry("tr.topic.too_long", {"max": TOPIC_MAX, "length": len(topic)})
    s["topic"] = topic
    return "capacity"


@create_flow.ask("capacity")
async def ask_capacity(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    # No quick buttons: a typed "2" would be read as the second button, not as 2 places.
    return Prompt(ctx.t("tr.ask.capacity"), free_text=True)


@create_flow.answer("capacity")
async def on_capacity(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    raw = (a.value or a.text or "").strip().split(" ")[0]
    low, high = CAPACITY_RANGE
    if not raw.isdigit() or not low <= int(raw) <= high:
        return Retry("tr.capacity.invalid", {"low": low, "high": high})
    s["capacity"] = int(raw)
    return "preview"


def draft(ctx: Ctx, s: dict[str, Any]) -> TrainingSession:
    starts = datetime.combine(
        date.fromisoformat(s["date"]), time.fromisoformat(s["time"]), tzinfo=ctx.settings.tz
    ).astimezone(UTC)
    return TrainingSession(
        unit_id=s["unit_id"],
        starts_at=starts,
        duration_min=DURATION_MIN,
        place=s["place"],
        topic=s["topic"],
        capacity=s["capacity"],
        created_at=ctx.now,
    )


@create_flow.ask("preview")
async def ask_preview(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    unit = await ctx.session.get(Unit, s["unit_id"])
    assert unit is not None
    who = await invitees(ctx.session, unit)
    text = invite_text(ctx.lang, draft(ctx, s), unit, ctx.settings.tz, s["capacity"])
    summary = ctx.t(
        "tr.preview", n=len(who.members), lagging=who.lagging, secretaries=who.secretaries
    )
    return Prompt(
        summary + "\n\n" + text,
        [
            Option("send", ctx.t("tr.confirm.send", n=len(who.members))),
            Option("drop", ctx.t("tr.confirm.drop")),
        ],
    )


@create_flow.answer("preview")
async def on_preview(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value != "send":
        ctx.reply(ctx.t("tr.dropped"))
        return None
    unit = await ctx.session.get(Unit, s["unit_id"])
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    if draft(ctx, s).starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("mt.time.past"))
        return "date"
    await create_session(ctx, s, unit)
    return None


async def create_session(ctx: Ctx, s: dict[str, Any], unit: Unit) -> TrainingSession:
    """Store the session, one seat per invitee (with their handbook status now), and invite."""
    row = draft(ctx, s)
    row.created_by = ctx.actor.member.id if ctx.actor.member else None
    ctx.session.add(row)
    await ctx.session.flush()
    who = await invitees(ctx.session, unit)
    for member in who.members:
        ctx.session.add(
            TrainingSeat(
                session_id=row.id or 0,
                member_id=member.id or 0,
                installed_before=member.app_installed,
                activated_before=member.app_activated,
            )
        )
    secretaries = await secretaries_under(ctx.session, unit)
    tz, capacity = ctx.settings.tz, row.capacity
    queued = await send_broadcast(
        ctx,
        kind="training_invite",
        members=who.members,
        unit_id=unit.id,
        render=lambda lang, m: View(
            invite_text(lang, row, unit, tz, capacity),
            answer_buttons(ctx, lang, row.id or 0, secretary=m.id in secretaries),
        ),
    )
    plan_jobs(ctx, row)
    log.info("training.created session=%s unit=%s invited=%s", row.id, unit.id, len(who.members))
    ctx.reply(
        View(
            ctx.t("tr.created", n=queued.members_reached, unreachable=queued.unreachable),
            card_buttons(ctx, row),
        )
    )
    return row


def plan_jobs(ctx: Ctx, row: TrainingSession) -> None:
    """Reminders before the session to those who said yes; the trainer's follow-up at its end."""
    starts: datetime = row.starts_at  # type: ignore[assignment]
    for offset in ctx.settings.reminder_offsets:
        due = starts - offset
        if due > ctx.now:
            seconds = int(offset.total_seconds())
            scheduler.schedule(
                ctx.session,
                kind="tr_reminder",
                due_at=due,
                now=ctx.now,
                ref_id=row.id,
                dedupe_key=f"trr:{row.id}:{seconds}",
            )
    scheduler.schedule(
        ctx.session,
        kind="tr_after",
        due_at=starts + timedelta(minutes=row.duration_min),
        now=ctx.now,
        ref_id=row.id,
        dedupe_key=f"tra:{row.id}",
    )


# --- members answer -------------------------------------------------------------------------------


async def on_member_answer(ctx: Ctx, args: list[str]) -> None:
    """``a:tr:<session>:y|n``: a member of a cell inside the session's unit answers."""
    if len(args) != 2 or not args[0].isdigit() or args[1] not in ("y", "n"):
        ctx.reply(ctx.t("common.stale_button"))
        return
    row = await ctx.session.get(TrainingSession, int(args[0]))
    unit = await ctx.session.get(Unit, row.unit_id) if row else None
    member = ctx.actor.member
    cell = await cell_of(ctx, member)
    if row is None or unit is None or cell is None or not queries.within(cell.path, unit.path):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if row.status != TrainingStatus.scheduled:
        ctx.reply(ctx.t("tr.cancelled_already"))
        return
    if row.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("tr.closed"))
        return
    assert member is not None
    outcome = await sign_up(ctx, row, member, yes=args[1] == "y", by=None)
    ctx.reply(ctx.t(f"tr.answer.{outcome}"))


async def sign_up(
    ctx: Ctx, row: TrainingSession, member: Member, *, yes: bool, by: int | None
) -> str:
    """Record a yes or no; a yes beyond the capacity is refused. Returns yes | no | full.

    The session row is locked first (FOR UPDATE on PostgreSQL; SQLite writers take turns
    anyway), so two members answering at once cannot both take the last place."""
    lock = select(TrainingSession.id).where(TrainingSession.id == row.id).with_for_update()
    await ctx.session.exec(lock)
    seats = await seats_of(ctx.session, row.id or 0)
    seat = seats.get(member.id or 0)
    already = seat is not None and seat.answer == "yes"
    if yes and not already and await taken(ctx.session, row.id or 0) >= row.capacity:
        return "full"
    if seat is None:
        seat = TrainingSeat(
            session_id=row.id or 0,
            member_id=member.id or 0,
            invited=False,
            installed_before=member.app_installed,
            activated_before=member.app_activated,
        )
    seat.answer, seat.answered_at = ("yes" if yes else "no"), ctx.now
    seat.signed_up_by = by
    ctx.session.add(seat)
    await ctx.session.flush()
    return "yes" if yes else "no"


# --- secretaries sign members up ------------------------------------------------------------------


async def on_signup_others(ctx: Ctx, args: list[str]) -> None:
    """``a:trs:<session>``: a secretary of a cell inside the session's unit signs members up."""
    row = (
        await ctx.session.get(TrainingSession, int(args[0])) if args and args[0].isdigit() else None
    )
    unit = await ctx.session.get(Unit, row.unit_id) if row else None
    cells = [
        c
        for c in ctx.actor.scopes(*SECRETARIES)
        if unit is not None and queries.within(c.path, unit.path)
    ]
    if row is None or not cells:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if row.status != TrainingStatus.scheduled or row.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("tr.closed"))
        return
    await dialogs.start(
        ctx,
        signup_flow,
        "pick",
        {"lang": ctx.lang, "session_id": row.id, "cell_id": cells[0].id, "added": []},
    )


async def _cell_members(ctx: Ctx, cell_id: int) -> list[Member]:
    stmt = select(Member).where(Member.cell_id == cell_id, Member.status == MemberStatus.active)
    return list((await ctx.session.exec(stmt.order_by(Member.full_name))).all())


@signup_flow.ask("pick")
async def ask_pick(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    seats = await seats_of(ctx.session, s["session_id"])
    options = []
    for m in await _cell_members(ctx, s["cell_id"]):
        seat = seats.get(m.id or 0)
        mark = "✓ " if seat is not None and seat.answer == "yes" else "▫ "
        options.append(Option(str(m.id), mark + (m.full_name or "?")))
    options.append(Option("done", ctx.t("tr.signup.done")))
    return Prompt(ctx.t("tr.signup.ask"), options, columns=2)


@signup_flow.answer("pick")
async def on_pick(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    row = await ctx.session.get(TrainingSession, s["session_id"])
    cell = await ctx.session.get(Unit, s["cell_id"])
    if row is None or cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    if a.value == "done":
        await finish_signup(ctx, row, s["added"])
        return None
    member = await ctx.session.get(Member, int(a.value or 0))
    if member is None or member.cell_id != cell.id or member.status != MemberStatus.active:
        return Retry("common.stale_button")
    if row.status != TrainingStatus.scheduled or row.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("tr.closed"))
        return None
    seat = (await seats_of(ctx.session, row.id or 0)).get(member.id or 0)
    signed = seat is not None and seat.answer == "yes"
    by = ctx.actor.member.id if ctx.actor.member else None
    outcome = await sign_up(ctx, row, member, yes=not signed, by=by)
    if outcome == "full":
        return Retry("tr.answer.full")
    added = [m for m in s["added"] if m != member.id]
    s["added"] = added + ([member.id] if outcome == "yes" else [])
    return "pick"


async def finish_signup(ctx: Ctx, row: TrainingSession, added: list[int]) -> None:
    """Tell the members signed up on their behalf (those with a chat), and the secretary."""
    unit = await ctx.session.get(Unit, row.unit_id)
    tz = ctx.settings.tz
    told = 0
    for member_id in added:
        member = await ctx.session.get(Member, member_id)
        if member is None or unit is None:
            continue
        told += bool(
            await ctx.notify_member(
                member,
                lambda lang: View(
                    t(lang, "tr.signed_for_you")
                    + "\n\n"
                    + invite_text(lang, row, unit, tz, row.capacity),
                    answer_buttons(ctx, lang, row.id or 0),
                ),
            )
        )
    ctx.reply(ctx.t("tr.signup.saved", n=len(added), told=told))


# --- the trainer's card ---------------------------------------------------------------------------


def card_buttons(ctx: Ctx, row: TrainingSession) -> list[list[Any]]:
    sid = row.id
    rows = [[ctx.button(ctx.t("tr.card.status"), f"a:trc:{sid}:st")]]
    if row.starts_at <= ctx.now:  # type: ignore[operator]
        rows.append([ctx.button(ctx.t("tr.card.attendance"), f"a:trc:{sid}:at")])
    else:
        rows.append([ctx.button(ctx.t("tr.card.cancel"), f"a:trc:{sid}:cx")])
    return rows


async def on_card(ctx: Ctx, args: list[str]) -> None:
    """``a:trc:<session>:<verb>``: card, st status, at attendance, cx cancel?, cy cancel!"""
    if len(args) != 2:
        ctx.reply(ctx.t("common.stale_button"))
        return
    found = await session_for_trainer(ctx, args[0])
    if found is None:
        return
    row, unit = found
    verb = args[1]
    if verb in ("at", "cx", "cy") and row.status == TrainingStatus.cancelled:
        ctx.reply(ctx.t("tr.cancelled_already"))
    elif verb == "card":
        ctx.reply(
            View(invite_text(ctx.lang, row, unit, ctx.settings.tz, 0), card_buttons(ctx, row))
        )
    elif verb == "st":
        await show_status(ctx, row)
    elif verb == "at":
        await start_attendance(ctx, row)
    elif verb == "cx":
        ctx.reply(
            View(
                ctx.t("tr.cancel.confirm"),
                [[ctx.button(ctx.t("tr.cancel.yes"), f"a:trc:{row.id}:cy")]],
            )
        )
    elif verb == "cy":
        await cancel_session(ctx, row, unit)
    else:
        ctx.reply(ctx.t("common.stale_button"))


async def show_status(ctx: Ctx, row: TrainingSession) -> None:
    seats = await seats_of(ctx.session, row.id or 0)
    members = {
        m.id: m
        for m in (
            await ctx.session.exec(select(Member).where(col(Member.id).in_(list(seats))))
        ).all()
    }

    def names(answer: str | None) -> list[str]:
        return [
            members[mid].full_name or "?"
            for mid, seat in seats.items()
            if seat.answer == answer and mid in members
        ]

    yes, no = names("yes"), names("no")
    silent = sum(1 for seat in seats.values() if seat.answer is None)
    ctx.reply(
        ctx.t(
            "tr.status",
            when=when_text(ctx.lang, row.starts_at, ctx.settings.tz),  # type: ignore[arg-type]
            n_yes=len(yes),
            capacity=row.capacity,
            yes=", ".join(yes) or "—",
            n_no=len(no),
            no=", ".join(no) or "—",
            silent=silent,
        )
    )


async def cancel_session(ctx: Ctx, row: TrainingSession, unit: Unit) -> None:
    row.status = TrainingStatus.cancelled
    ctx.session.add(row)
    await scheduler.cancel(ctx.session, ref_id=row.id or 0, kinds=JOBS)
    seats = await seats_of(ctx.session, row.id or 0)
    stmt = select(Member).where(col(Member.id).in_(list(seats)))
    members = list((await ctx.session.exec(stmt)).all())
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="training_cancel",
        members=members,
        unit_id=unit.id,
        render=lambda lang, _m: View(
            t(lang, "tr.cancelled", when=when_text(lang, row.starts_at, tz), unit=unit.name)  # type: ignore[arg-type]
        ),
    )
    log.info("training.cancelled session=%s", row.id)
    ctx.reply(ctx.t("tr.cancel.done", n=len(members)))


# --- attendance and the follow-up question ------------------------------------------------------


async def start_attendance(ctx: Ctx, row: TrainingSession) -> None:
    if row.starts_at > ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("tr.attendance.too_early"))
        return
    seats = await seats_of(ctx.session, row.id or 0)
    present = [
        mid
        for mid, seat in seats.items()
        if (seat.present if seat.present is not None else seat.answer == "yes")
    ]
    await dialogs.start(
        ctx,
        attendance_flow,
        "who",
        {"lang": ctx.lang, "session_id": row.id, "present": present},
    )


@attendance_flow.ask("who")
async def ask_who(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    seats = await seats_of(ctx.session, s["session_id"])
    stmt = select(Member).where(
        col(Member.id).in_(list(seats)), Member.status == MemberStatus.active
    )
    members = sorted(
        (await ctx.session.exec(stmt)).all(),
        key=lambda m: (seats[m.id or 0].answer != "yes", m.full_name or ""),
    )
    present = set(s["present"])
    options = [
        Option(str(m.id), ("✓ " if m.id in present else "✗ ") + (m.full_name or "?"))
        for m in members
    ]
    options.append(Option("done", ctx.t("tr.attendance.done")))
    return Prompt(ctx.t("tr.attendance.ask"), options, columns=2)


@attendance_flow.answer("who")
async def on_who(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value != "done":
        member_id = int(a.value or 0)
        present = s["present"]
        s["present"] = (
            [m for m in present if m != member_id]
            if member_id in present
            else [*present, member_id]
        )
        return "who"
    found = await session_for_trainer(ctx, str(s["session_id"]))
    if found is None:
        return None
    row, _unit = found
    seats = await seats_of(ctx.session, row.id or 0)
    present = set(s["present"])
    for member_id, seat in seats.items():
        seat.present = member_id in present
        ctx.session.add(seat)
    first_time = row.attendance_taken_at is None
    row.attendance_taken_at = ctx.now
    ctx.session.add(row)
    if first_time:
        scheduler.schedule(
            ctx.session,
            kind="tr_check",
            due_at=ctx.now + FOLLOWUP_AFTER,
            now=ctx.now,
            ref_id=row.id,
            dedupe_key=f"trk:{row.id}",
        )
    log.info("training.attendance session=%s present=%s", row.id, len(present & set(seats)))
    ctx.reply(ctx.t("tr.attendance.saved", n=len(present & set(seats))))
    return None


FOLLOWUP_ANSWERS = {"ok": (True, True), "inst": (True, False), "none": (False, False)}


def followup_view(ctx: Ctx, lang: str, row: TrainingSession) -> View:
    return View(
        t(lang, "tr.followup.ask", topic=row.topic),
        [
            [ctx.button(t(lang, f"tr.followup.{k}"), f"a:trf:{row.id}:{k}")]
            for k in FOLLOWUP_ANSWERS
        ],
    )


async def on_followup(ctx: Ctx, args: list[str]) -> None:
    """``a:trf:<session>:<ok|inst|none>``: one who came says whether they installed and logged
    in; the answer becomes their handbook status, so the reports move."""
    if len(args) != 2 or not args[0].isdigit() or args[1] not in FOLLOWUP_ANSWERS:
        ctx.reply(ctx.t("common.stale_button"))
        return
    member = ctx.actor.member
    stmt = select(TrainingSeat).where(
        TrainingSeat.session_id == int(args[0]),
        TrainingSeat.member_id == (member.id if member else -1),
    )
    seat = (await ctx.session.exec(stmt)).first()
    if member is None or seat is None or not seat.present:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    installed, activated = FOLLOWUP_ANSWERS[args[1]]
    seat.followup_installed, seat.followup_activated, seat.followup_at = (
        installed,
        activated,
        ctx.now,
    )
    member.app_installed, member.app_activated = installed, activated
    member.status_updated_at = ctx.now
    ctx.session.add_all([seat, member])
    if activated:
        ctx.reply(ctx.t("tr.followup.thanks_ok"))
    else:
        ctx.reply(
            View(
                ctx.t("tr.followup.thanks_help"),
                [[ctx.button(ctx.t("tr.followup.help"), "a:cmd:support")]],
            )
        )


# --- timed work -----------------------------------------------------------------------------------


async def _live(ctx: Ctx, work: DueJob) -> tuple[TrainingSession, Unit] | None:
    row = await ctx.session.get(TrainingSession, work.ref_id)
    if row is None or row.status != TrainingStatus.scheduled:
        return None
    unit = await ctx.session.get(Unit, row.unit_id)
    return (row, unit) if unit is not None else None


@scheduler.job("tr_reminder")
async def reminder_job(ctx: Ctx, work: DueJob) -> JobResult:
    found = await _live(ctx, work)
    if found is None:
        return skip("cancelled")
    row, unit = found
    if row.starts_at <= ctx.now:  # type: ignore[operator]
        return skip("already started")
    seats = await seats_of(ctx.session, row.id or 0)
    coming = [mid for mid, seat in seats.items() if seat.answer == "yes"]
    stmt = select(Member).where(col(Member.id).in_(coming), Member.status == MemberStatus.active)
    members = list((await ctx.session.exec(stmt)).all())
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="training_reminder",
        members=members,
        unit_id=unit.id,
        render=lambda lang, _m: View(
            t(
                lang,
                "tr.reminder",
                when=when_text(lang, row.starts_at, tz),  # type: ignore[arg-type]
                place=row.place,
            )
        ),
    )
    return done(f"reminded {len(members)}")


async def trainers_of(ctx: Ctx, row: TrainingSession, unit: Unit) -> list[Member]:
    """Who runs the session: its creator while they still may, else the nearest staff,
    trainers or admins at or above its unit (a training for a cell has none on the cell)."""
    creator = await ctx.session.get(Member, row.created_by) if row.created_by else None
    if creator is not None and creator.status == MemberStatus.active:
        grants = await queries.grants_of(ctx.session, member_id=creator.id or 0)
        if any(g.role in TRAINERS and queries.within(unit.path, u.path) for g, u in grants):
            return [creator]
    for candidate in [unit, *await queries.ancestors(ctx.session, unit=unit)]:
        found = await queries.holders(ctx.session, unit_id=candidate.id or 0, roles=TRAINERS)
        if found:
            return list(found)
    return []


@scheduler.job("tr_after")
async def after_job(ctx: Ctx, work: DueJob) -> JobResult:
    found = await _live(ctx, work)
    if found is None:
        return skip("cancelled")
    row, unit = found
    if row.attendance_taken_at is not None:
        return skip("attendance already taken")
    for person in await trainers_of(ctx, row, unit):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "tr.after", unit=unit.name),
                [[ctx.button(t(lang, "tr.card.attendance"), f"a:trc:{row.id}:at")]],
            ),
        )
    return done()


@scheduler.job("tr_check")
async def check_job(ctx: Ctx, work: DueJob) -> JobResult:
    row = await ctx.session.get(TrainingSession, work.ref_id)
    if row is None:
        return skip("gone")
    stmt = (
        select(Member)
        .join(TrainingSeat, col(TrainingSeat.member_id) == Member.id)
        .where(
            TrainingSeat.session_id == row.id,
            col(TrainingSeat.present).is_(True),
            Member.status == MemberStatus.active,
        )
    )
    members = list((await ctx.session.exec(stmt)).all())
    await send_broadcast(
        ctx,
        kind="training_followup",
        members=members,
        unit_id=row.unit_id,
        render=lambda lang, _m: followup_view(ctx, lang, row),
    )
    return done(f"asked {len(members)}")


# --- results --------------------------------------------------------------------------------------


@dataclass
class Results:
    """Trainings held and people trained under one unit, with their handbook status before the
    training and now (the follow-up answers update the member's status)."""

    name: str
    sessions: set[int]
    trained: int = 0
    installed_before: int = 0
    installed_now: int = 0
    activated_before: int = 0
    activated_now: int = 0
    answered: int = 0


def child_path(scope_path: str, path: str) -> str:
    """The path of the direct child of ``scope_path`` that ``path`` lies in (or the scope)."""
    if path == scope_path or not path.startswith(scope_path + PATH_SEP):
        return scope_path
    rest = path[len(scope_path) + len(PATH_SEP) :]
    return scope_path + PATH_SEP + rest.split(PATH_SEP)[0]


async def results(session: AsyncSession, unit: Unit) -> tuple[Results, list[Results]]:
    """The unit's total and one entry per direct child unit, people counted by their cell."""
    stmt = (
        select(TrainingSeat, Member, Unit)
        .join(Member, col(Member.id) == TrainingSeat.member_id)
        .join(Unit, col(Unit.id) == Member.cell_id)
        .join(TrainingSession, col(TrainingSession.id) == TrainingSeat.session_id)
        .where(
            col(TrainingSeat.present).is_(True),
            col(TrainingSession.attendance_taken_at).is_not(None),
            in_subtree(Unit.path, unit.path),
        )
    )
    names = {u.path: u.name for u in await queries.child_units(session, parent_id=unit.id)}
    total = Results(unit.name, set())
    parts: dict[str, Results] = defaultdict(lambda: Results("", set()))
    for seat, member, cell in (await session.exec(stmt)).all():
        key = child_path(unit.path, cell.path)
        part = parts[key]
        part.name = names.get(key, unit.name)
        for entry in (total, part):
            entry.sessions.add(seat.session_id)
            entry.trained += 1
            entry.installed_before += bool(seat.installed_before)
            entry.installed_now += bool(member.app_installed)
            entry.activated_before += bool(seat.activated_before)
            entry.activated_now += bool(member.app_activated)
            entry.answered += seat.followup_at is not None
    return total, sorted(parts.values(), key=lambda r: r.name)


def results_line(lang: str, entry: Results) -> str:
    return t(
        lang,
        "tr.report.line",
        name=entry.name,
        sessions=len(entry.sessions),
        n=entry.trained,
        ib=entry.installed_before,
        ia=entry.installed_now,
        ab=entry.activated_before,
        aa=entry.activated_now,
        answered=entry.answered,
    )


async def show_report(ctx: Ctx, unit: Unit) -> None:
    total, parts = await results(ctx.session, unit)
    if total.trained == 0:
        ctx.reply(ctx.t("tr.report.empty", unit=unit.name))
        return
    lines = [ctx.t("tr.report.title", unit=unit.name)]
    lines += ["• " + results_line(ctx.lang, part) for part in parts]
    lines.append(ctx.t("tr.report.total") + " " + results_line(ctx.lang, total))
    ctx.reply("\n".join(lines))


async def on_report(ctx: Ctx, args: list[str]) -> None:
    unit = await ctx.session.get(Unit, int(args[0])) if args and args[0].isdigit() else None
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await show_report(ctx, unit)


# --- privacy --------------------------------------------------------------------------------------


@privacy.forgets
async def forget_seats(session: AsyncSession, member_id: int) -> None:
    """Seats stay as anonymous counts (the member row is emptied); authorship goes."""
    for model, column in (
        (TrainingSeat, TrainingSeat.signed_up_by),
        (TrainingSession, TrainingSession.created_by),
    ):
        rows = (await session.exec(select(model).where(column == member_id))).all()
        for row in rows:
            setattr(row, column.key, None)  # type: ignore[attr-defined]
            session.add(row)


@privacy.tells_about
async def trainings_about(session: AsyncSession, member_id: int) -> dict[str, Any]:
    stmt = (
        select(TrainingSeat, TrainingSession)
        .join(TrainingSession, col(TrainingSession.id) == TrainingSeat.session_id)
        .where(TrainingSeat.member_id == member_id)
        .order_by(col(TrainingSession.starts_at))
    )
    return {
        "trainings": [
            {
                "training": s.starts_at.isoformat() if s.starts_at else None,
                "answer": seat.answer,
                "signed_up_by_secretary": seat.signed_up_by is not None,
                "present": seat.present,
                "followup_installed": seat.followup_installed,
                "followup_activated": seat.followup_activated,
            }
            for seat, s in (await session.exec(stmt)).all()
        ]
    }


def setup(router: Router) -> None:
    router.command("training", requires=REGISTERED)(cmd_training)
    router.action("trn", requires=TRAINERS)(on_new)
    router.action("trc", requires=TRAINERS)(on_card)
    router.action("trr", requires=TRAINERS)(on_report)
    router.action("tr", requires=REGISTERED)(on_member_answer)
    router.action("trs", requires=SECRETARIES)(on_signup_others)
    router.action("trf", requires=REGISTERED)(on_followup)
