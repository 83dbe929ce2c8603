"""The secretary's /meeting: the create / change dialog, the notice and the reminders it plans,
changes that supersede notices not yet sent, and cancellation.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from bot import dialogs, scheduler
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from handlers import when
from handlers.broadcast import send_broadcast
from handlers.meetings.card import show_status
from handlers.meetings.common import (
    AGENDA_MAX,
    PLACE_MAX,
    SECRETARIES,
    cancel_flow,
    cell_members,
    create_flow,
    local,
    meeting_for_secretary,
    notice_text,
    reply_buttons,
    secretary_cells,
    upcoming,
    when_text,
)
from storage import queries
from storage.models import (
    Broadcast,
    Meeting,
    MeetingKind,
    MeetingStatus,
    OutboxMessage,
    OutboxStatus,
    Role,
    Unit,
)

# --- /meeting: the secretary's entry --------------------------------------------------------------


async def cmd_meeting(ctx: Ctx, args: str) -> None:
    cells = secretary_cells(ctx)
    cell = cells[0]
    meetings = await upcoming(ctx, cell.id or 0)
    if args.strip().lower() in ("status", "tinh hinh", "tình hình") and meetings:
        await show_status(ctx, meetings[0], cell)
        return
    if not meetings:
        await start_new(ctx, cell)
        return
    rows = [[ctx.button(ctx.t("mt.new"), f"a:mtnew:{cell.id}")]]
    for meeting in meetings[:8]:
        label = when_text(ctx.lang, local(ctx, meeting.starts_at))  # type: ignore[arg-type]
        rows.append([ctx.button(f"📋 {label}", f"a:mtc:{meeting.id}:card")])
    ctx.reply(View(ctx.t("mt.menu", cell=cell.name), rows))


async def on_new(ctx: Ctx, args: list[str]) -> None:
    cell = await ctx.session.get(Unit, int(args[0])) if args and args[0].isdigit() else None
    if cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await start_new(ctx, cell)


async def start_new(ctx: Ctx, cell: Unit) -> None:
    await dialogs.start(
        ctx, "meeting", "kind", {"lang": ctx.lang, "mode": "new", "cell_id": cell.id}
    )


# --- the create / change dialog -------------------------------------------------------------------


@create_flow.ask("kind")
async def ask_kind(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("mt.ask.kind"), [Option(k.value, ctx.t(f"mt.kind.{k.value}")) for k in MeetingKind]
    )


@create_flow.answer("kind")
async def on_kind(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    s["kind"] = a.value
    s["duration"] = 120 if a.value == MeetingKind.combined else 90
    return "date"


@create_flow.ask("date")
async def ask_date(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    if not ctx.caps.buttons:  # a month of numbered days is no way to pick a date
        return Prompt(ctx.t("mt.ask.date_typed"), free_text=True)
    today = when.today(ctx)
    year, month = map(int, s.get("cal", f"{today.year}-{today.month}").split("-"))
    days = calendar.monthrange(year, month)[1]
    options = [
        Option(f"d{year}-{month:02d}-{d:02d}", str(d))
        for d in range(1, days + 1)
        if date(year, month, d) >= today
    ]
    nxt = date(year, month, days) + timedelta(days=1)
    nav = [Option(f"m{nxt.year}-{nxt.month}", ctx.t("mt.cal.next"))]
    if (year, month) != (today.year, today.month):
        prev = date(year, month, 1) - timedelta(days=1)
        nav.insert(0, Option(f"m{prev.year}-{prev.month}", ctx.t("mt.cal.prev")))
    return Prompt(
        ctx.t("mt.ask.date", month=f"{month:02d}/{year}"), options + nav, free_text=True, columns=7
    )


@create_flow.answer("date")
async def on_date(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value and a.value.startswith("m"):
        s["cal"] = a.value[1:]
        return "date"
    if a.value:  # a day pressed in the calendar
        pressed = date.fromisoformat(a.value[1:])
        return when.set_day(ctx, s, pressed, _after_edit(s, "time"), rolled=False)
    return when.read_day(ctx, s, a.text or "", _after_edit(s, "time"))


@create_flow.ask("date_confirm")
async def ask_date_confirm(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return when.date_confirm_prompt(ctx, s)


@create_flow.answer("date_confirm")
async def on_date_confirm(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.confirmed_day(s, a, _after_edit(s, "time"))


def _after_edit(s: dict[str, Any], next_step: str) -> str:
    """In a change, each field goes back to the preview; a new meeting walks every step."""
    return "preview" if s.get("mode") == "edit" and next_step != "time" else next_step


@create_flow.ask("time")
async def ask_time(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    quick = ["19:30", "14:00", "08:00"]
    return Prompt(ctx.t("mt.ask.time"), [Option(v, v) for v in quick], free_text=True, columns=3)


@create_flow.answer("time")
async def on_time(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.read_time(ctx, s, a, _time_next(s))


def _time_next(s: dict[str, Any]) -> str:
    return "preview" if s.get("mode") == "edit" else "place"


@create_flow.ask("time_confirm")
async def ask_time_confirm(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return when.time_confirm_prompt(ctx, s)


@create_flow.answer("time_confirm")
async def on_time_confirm(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    return when.confirmed_time(ctx, s, a, _time_next(s))


@create_flow.ask("place")
async def ask_place(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    stmt = (
        select(Meeting.place)
        .where(Meeting.cell_id == s["cell_id"])
        .order_by(col(Meeting.id).desc())
    )
    last = (await ctx.session.exec(stmt)).first()
    options = [Option("last", last[:60])] if last else []
    return Prompt(ctx.t("mt.ask.place"), options, free_text=True)


@create_flow.answer("place")
async def on_place(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value == "last":
        stmt = (
            select(Meeting.place)
            .where(Meeting.cell_id == s["cell_id"])
            .order_by(col(Meeting.id).desc())
        )
        s["place"] = (await ctx.session.exec(stmt)).first() or ""
    else:
        place = " ".join((a.text or "").split())
        if not place or len(place) > PLACE_MAX:
            return Retry("mt.place.invalid", {"max": PLACE_MAX})
        s["place"] = place
    return _after_edit(s, "agenda")


@create_flow.ask("agenda")
async def ask_agenda(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("mt.ask.agenda"), free_text=True)


@create_flow.answer("agenda")
async def on_agenda(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    agenda = (a.text or "").strip()
    if not agenda:
        return Retry("mt.agenda.empty")
    if len(agenda) > AGENDA_MAX:
        return Retry("mt.agenda.too_long", {"max": AGENDA_MAX, "length": len(agenda)})
    s["agenda"] = agenda
    return _after_edit(s, "duration")


@create_flow.ask("duration")
async def ask_duration(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("mt.ask.duration", default=s["duration"]),
        [Option("90", ctx.t("mt.minutes", n=90)), Option("120", ctx.t("mt.minutes", n=120))],
        free_text=True,
        columns=2,
    )


@create_flow.answer("duration")
async def on_duration(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    raw = (a.value or a.text or "").strip().lower().removesuffix("phút").removesuffix("p").strip()
    if not raw.isdigit() or not 30 <= int(raw) <= 480:
        return Retry("mt.duration.invalid")
    s["duration"] = int(raw)
    return "preview"


def _draft(ctx: Ctx, s: dict[str, Any]) -> Meeting:
    starts = datetime.combine(
        date.fromisoformat(s["date"]), time.fromisoformat(s["time"]), tzinfo=ctx.settings.tz
    ).astimezone(UTC)
    return Meeting(
        cell_id=s["cell_id"],
        kind=MeetingKind(s["kind"]),
        starts_at=starts,
        duration_min=s["duration"],
        place=s["place"],
        agenda=s["agenda"],
        created_at=ctx.now,
        updated_at=ctx.now,
    )


@create_flow.ask("preview")
async def ask_preview(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    cell = await ctx.session.get(Unit, s["cell_id"])
    count = len(await cell_members(ctx, s["cell_id"]))
    text = notice_text(ctx.lang, _draft(ctx, s), cell, ctx.settings.tz)  # type: ignore[arg-type]
    confirm = "mt.confirm.send" if s.get("mode") == "new" else "mt.confirm.change"
    options = [Option("send", ctx.t(confirm, n=count))]
    if s.get("mode") == "edit":
        options += [
            Option("time", ctx.t("mt.change.time")),
            Option("place", ctx.t("mt.change.place")),
            Option("agenda", ctx.t("mt.change.agenda")),
        ]
    options.append(Option("drop", ctx.t("mt.confirm.drop")))
    return Prompt(ctx.t("mt.preview") + "\n\n" + text, options)


@create_flow.answer("preview")
async def on_preview(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value == "drop":
        ctx.reply(ctx.t("mt.dropped"))
        return None
    if a.value in ("time", "place", "agenda"):
        return "date" if a.value == "time" else a.value
    cell = await ctx.session.get(Unit, s["cell_id"])
    if cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    if s.get("mode") == "edit":
        await apply_change(ctx, s, cell)
    else:
        await create_meeting(ctx, s, cell)
    return None


async def create_meeting(ctx: Ctx, s: dict[str, Any], cell: Unit) -> None:
    meeting = _draft(ctx, s)
    meeting.created_by = ctx.actor.member.id if ctx.actor.member else None
    ctx.session.add(meeting)
    await ctx.session.flush()
    members = await cell_members(ctx, cell.id or 0)
    tz = ctx.settings.tz
    queued = await send_broadcast(
        ctx,
        kind="meeting_notice",
        members=members,
        meeting_id=meeting.id,
        unit_id=cell.id,
        report=True,
        render=lambda lang, _m: View(
            notice_text(lang, meeting, cell, tz), reply_buttons(ctx, lang, meeting)
        ),
    )
    await copy_to_staff(ctx, meeting, cell)
    plan_jobs(ctx, meeting)
    ctx.reply(ctx.t("mt.created", n=queued.members_reached, unreachable=queued.unreachable))


async def copy_to_staff(ctx: Ctx, meeting: Meeting, cell: Unit, key: str = "mt.notice") -> None:
    """The overseeing committee's staff get a copy when the deployment asks for it."""
    if not ctx.settings.meeting_copy_to_staff:
        return
    for unit in await queries.ancestors(ctx.session, unit=cell):
        staff = await queries.holders(ctx.session, unit_id=unit.id or 0, roles=(Role.staff,))
        if staff:
            for person in staff:
                await ctx.notify_member(
                    person,
                    lambda lang: View(notice_text(lang, meeting, cell, ctx.settings.tz, key=key)),
                )
            return


def plan_jobs(ctx: Ctx, meeting: Meeting) -> None:
    """Reminders before the meeting, document nudges 3 days and 1 day before, a follow-up after."""
    starts: datetime = meeting.starts_at  # type: ignore[assignment]
    v = meeting.version
    for offset in ctx.settings.reminder_deltas:
        due = starts - offset
        if due > ctx.now:
            scheduler.schedule(
                ctx.session,
                kind="mt_reminder",
                due_at=due,
                now=ctx.now,
                ref_id=meeting.id,
                payload={"offset_s": int(offset.total_seconds())},
                dedupe_key=f"mtr:{meeting.id}:{v}:{int(offset.total_seconds())}",
            )
    for days in (3, 1):
        due = starts - timedelta(days=days)
        if due > ctx.now:
            scheduler.schedule(
                ctx.session,
                kind="mt_docs",
                due_at=due,
                now=ctx.now,
                ref_id=meeting.id,
                dedupe_key=f"mtd:{meeting.id}:{v}:{days}",
            )
    end = starts + timedelta(minutes=meeting.duration_min)
    scheduler.schedule(
        ctx.session,
        kind="mt_followup",
        due_at=end,
        now=ctx.now,
        ref_id=meeting.id,
        dedupe_key=f"mtf:{meeting.id}:{v}",
    )


# --- changes and cancellation ---------------------------------------------------------------------


async def supersede_pending_notices(ctx: Ctx, meeting_id: int) -> set[int]:
    """Withdraw notices still waiting in the outbox; return the members who already got one."""
    broadcasts = select(Broadcast.id).where(Broadcast.meeting_id == meeting_id)
    free = (col(OutboxMessage.lease_until).is_(None)) | (col(OutboxMessage.lease_until) < ctx.now)
    await ctx.session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.broadcast_id).in_(broadcasts),
            OutboxMessage.status == OutboxStatus.pending,
        )
        .where(free)
        .values(status=OutboxStatus.superseded)
    )
    stmt = select(OutboxMessage.member_id).where(
        col(OutboxMessage.broadcast_id).in_(broadcasts),
        col(OutboxMessage.status).in_([OutboxStatus.sent, OutboxStatus.pending]),
    )
    return {m for m in (await ctx.session.exec(stmt)).all() if m is not None}


async def apply_change(ctx: Ctx, s: dict[str, Any], cell: Unit) -> None:
    meeting = await ctx.session.get(Meeting, s["meeting_id"])
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return
    draft = _draft(ctx, s)
    changed = [
        name
        for name in ("starts_at", "place", "agenda", "duration_min", "kind")
        if getattr(draft, name) != getattr(meeting, name)
    ]
    if not changed:
        ctx.reply(ctx.t("mt.unchanged"))
        return
    for name in changed:
        setattr(meeting, name, getattr(draft, name))
    meeting.version += 1
    meeting.updated_at = ctx.now
    ctx.session.add(meeting)
    informed = await supersede_pending_notices(ctx, meeting.id or 0)
    members = await cell_members(ctx, cell.id or 0)
    tz = ctx.settings.tz
    what = ", ".join(t(ctx.lang, f"mt.field.{name}") for name in changed)
    await send_broadcast(
        ctx,
        kind="meeting_change",
        members=[m for m in members if m.id in informed],
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            t(lang, "mt.changed", what=", ".join(t(lang, f"mt.field.{n}") for n in changed))
            + "\n\n"
            + notice_text(lang, meeting, cell, tz),
            reply_buttons(ctx, lang, meeting),
        ),
    )
    await send_broadcast(
        ctx,
        kind="meeting_notice",
        members=[m for m in members if m.id not in informed],
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            notice_text(lang, meeting, cell, tz), reply_buttons(ctx, lang, meeting)
        ),
    )
    await scheduler.cancel(ctx.session, ref_id=meeting.id or 0, kinds=MEETING_JOBS)
    plan_jobs(ctx, meeting)
    ctx.reply(ctx.t("mt.change_sent", what=what))


MEETING_JOBS = ("mt_reminder", "mt_docs", "mt_followup")


@cancel_flow.ask("confirm")
async def ask_cancel(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("mt.cancel.confirm"),
        [Option("yes", ctx.t("mt.cancel.yes")), Option("no", ctx.t("mt.cancel.no"))],
    )


@cancel_flow.answer("confirm")
async def on_cancel(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value != "yes":
        ctx.reply(ctx.t("mt.cancel.kept"))
        return None
    found = await meeting_for_secretary(ctx, str(s["meeting_id"]))
    if found is None:
        return None
    meeting, cell = found
    if meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return None
    meeting.status, meeting.updated_at = MeetingStatus.cancelled, ctx.now
    ctx.session.add(meeting)
    informed = await supersede_pending_notices(ctx, meeting.id or 0)
    await scheduler.cancel(ctx.session, ref_id=meeting.id or 0, kinds=MEETING_JOBS)
    members = [m for m in await cell_members(ctx, cell.id or 0) if m.id in informed]
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="meeting_cancel",
        members=members,
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            t(
                lang,
                "mt.cancelled",
                when=when_text(lang, local(tz, meeting.starts_at)),
                cell=cell.name,
            )
        ),
    )  # type: ignore[arg-type]
    await copy_to_staff(ctx, meeting, cell, key="mt.notice")
    ctx.reply(ctx.t("mt.cancel.done", n=len(members)))
    return None
