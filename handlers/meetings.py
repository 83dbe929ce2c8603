"""Cell meetings: the secretary announces, members answer, reminders go out on time, and
attendance is recorded afterwards.

Every button names a meeting by id only; who may act on it (its cell's secretary, a member of
its cell) is checked here on each press. Reminders and nudges are due-work rows, so a restart
loses none and a cancelled meeting sends none.
"""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update
from sqlmodel import col, func, select

from bot import dialogs, scheduler
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from bot.router import REGISTERED, Router
from bot.scheduler import JobResult, done, skip
from handlers import when
from handlers.broadcast import send_broadcast
from storage import queries
from storage.models import (
    Attendance,
    Broadcast,
    DueJob,
    Meeting,
    MeetingKind,
    MeetingReply,
    MeetingStatus,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxStatus,
    ReplyAnswer,
    Role,
    RoleGrant,
    Unit,
)

log = logging.getLogger("sotay.meetings")
SECRETARIES = (Role.secretary, Role.deputy)
AGENDA_MAX = 1500
PLACE_MAX = 200
REASON_MAX = 300
create_flow = dialogs.flow("meeting")
absence_flow = dialogs.flow("absence")
attendance_flow = dialogs.flow("attendance")
cancel_flow = dialogs.flow("meeting_cancel")


# --- formatting -----------------------------------------------------------------------------------


def local(ctx_or_tz: Any, moment: datetime) -> datetime:
    tz = ctx_or_tz.settings.tz if hasattr(ctx_or_tz, "settings") else ctx_or_tz
    return moment.astimezone(tz)


def when_text(lang: str, moment_local: datetime) -> str:
    weekday = t(lang, f"wd.{moment_local.weekday()}")
    return f"{moment_local:%H:%M} {weekday} {moment_local:%d/%m/%Y}"


def notice_text(lang: str, meeting: Meeting, cell: Unit, tz: Any, *, key: str = "mt.notice") -> str:
    return t(
        lang,
        key,
        kind=t(lang, f"mt.kind.{meeting.kind.value}"),
        cell=cell.name,
        when=when_text(lang, local(tz, meeting.starts_at)),  # type: ignore[arg-type]
        place=meeting.place,
        agenda=meeting.agenda,
        duration=meeting.duration_min,
    )


def reply_buttons(ctx: Ctx, lang: str, meeting: Meeting) -> list[list[Any]]:
    return [
        [
            ctx.button(t(lang, "mt.attend"), f"a:mt:{meeting.id}:y"),
            ctx.button(t(lang, "mt.absent"), f"a:mt:{meeting.id}:n"),
        ]
    ]


# --- queries --------------------------------------------------------------------------------------


async def cell_members(ctx: Ctx, cell_id: int) -> list[Member]:
    stmt = select(Member).where(Member.cell_id == cell_id, Member.status == MemberStatus.active)
    return list((await ctx.session.exec(stmt.order_by(Member.full_name))).all())


async def upcoming(ctx: Ctx, cell_id: int) -> list[Meeting]:
    stmt = select(Meeting).where(
        Meeting.cell_id == cell_id,
        Meeting.status == MeetingStatus.scheduled,
        col(Meeting.starts_at) > ctx.now - timedelta(hours=12),
    )
    return list((await ctx.session.exec(stmt.order_by(col(Meeting.starts_at)))).all())


def secretary_cells(ctx: Ctx) -> list[Unit]:
    return ctx.actor.scopes(*SECRETARIES)


async def meeting_for_secretary(ctx: Ctx, raw_id: str) -> tuple[Meeting, Unit] | None:
    """The meeting if the actor is a secretary of its cell; otherwise tell them and return None."""
    meeting = await ctx.session.get(Meeting, int(raw_id)) if raw_id.isdigit() else None
    cell = await ctx.session.get(Unit, meeting.cell_id) if meeting else None
    if meeting is None or cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    return meeting, cell


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


# --- the secretary's meeting card -----------------------------------------------------------------


async def on_card_action(ctx: Ctx, args: list[str]) -> None:
    if len(args) < 2:
        ctx.reply(ctx.t("common.stale_button"))
        return
    found = await meeting_for_secretary(ctx, args[0])
    if found is None:
        return
    meeting, cell = found
    verb = args[1]
    if verb == "card":
        show_card(ctx, meeting)
    elif verb == "st":
        await show_status(ctx, meeting, cell)
    elif verb == "rm":
        await remind_silent(ctx, meeting, cell)
    elif verb == "dp":
        meeting.documents_posted = True
        ctx.session.add(meeting)
        ctx.reply(ctx.t("mt.docs.thanks"))
    elif verb in ("ch", "cx", "at") and meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
    elif verb == "ch":
        local_start = local(ctx, meeting.starts_at)  # type: ignore[arg-type]
        await dialogs.start(
            ctx,
            "meeting",
            "preview",
            {
                "lang": ctx.lang,
                "mode": "edit",
                "meeting_id": meeting.id,
                "cell_id": cell.id,
                "kind": meeting.kind.value,
                "date": local_start.date().isoformat(),
                "time": local_start.strftime("%H:%M"),
                "place": meeting.place,
                "agenda": meeting.agenda,
                "duration": meeting.duration_min,
            },
        )
    elif verb == "cx":
        await dialogs.start(
            ctx, "meeting_cancel", "confirm", {"lang": ctx.lang, "meeting_id": meeting.id}
        )
    elif verb == "at":
        await start_attendance(ctx, meeting, cell)
    elif verb in ("apy", "apn"):
        meeting.entered_in_app = verb == "apy"
        ctx.session.add(meeting)
        ctx.reply(ctx.t("mt.app.saved"))
    else:
        ctx.reply(ctx.t("common.stale_button"))


def show_card(ctx: Ctx, meeting: Meeting) -> None:
    mid = meeting.id
    started = meeting.starts_at <= ctx.now  # type: ignore[operator]
    rows = [
        [
            ctx.button(ctx.t("mt.card.status"), f"a:mtc:{mid}:st"),
            ctx.button(ctx.t("mt.card.remind"), f"a:mtc:{mid}:rm"),
        ]
    ]
    if started:
        rows.append([ctx.button(ctx.t("mt.card.attendance"), f"a:mtc:{mid}:at")])
    else:
        rows.append(
            [
                ctx.button(ctx.t("mt.card.change"), f"a:mtc:{mid}:ch"),
                ctx.button(ctx.t("mt.card.cancel"), f"a:mtc:{mid}:cx"),
            ]
        )
        rows.append([ctx.button(ctx.t("mt.card.docs"), f"a:mtc:{mid}:dp")])
    when = when_text(ctx.lang, local(ctx, meeting.starts_at))  # type: ignore[arg-type]
    ctx.reply(
        View(
            ctx.t(
                "mt.card",
                kind=ctx.t(f"mt.kind.{meeting.kind.value}"),
                when=when,
                place=meeting.place,
            ),
            rows,
        )
    )


async def replies_of(ctx: Ctx, meeting_id: int) -> dict[int, MeetingReply]:
    stmt = select(MeetingReply).where(MeetingReply.meeting_id == meeting_id)
    return {r.member_id: r for r in (await ctx.session.exec(stmt)).all()}


async def show_status(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    members = await cell_members(ctx, cell.id or 0)
    replies = await replies_of(ctx, meeting.id or 0)
    attend = [
        m.full_name or "?"
        for m in members
        if m.id in replies and replies[m.id].answer == ReplyAnswer.attend
    ]
    absent = [
        f"{m.full_name} ({replies[m.id].reason or ctx.t('mt.no_reason')})"
        for m in members
        if m.id in replies and replies[m.id].answer == ReplyAnswer.absent
    ]
    silent = [m.full_name or "?" for m in members if m.id not in replies]
    text = ctx.t(
        "mt.status",
        when=when_text(ctx.lang, local(ctx, meeting.starts_at)),  # type: ignore[arg-type]
        n_attend=len(attend),
        attend=", ".join(attend) or "—",
        n_absent=len(absent),
        absent="; ".join(absent) or "—",
        n_silent=len(silent),
        silent=", ".join(silent) or "—",
    )
    rows = [[ctx.button(ctx.t("mt.card.remind"), f"a:mtc:{meeting.id}:rm")]] if silent else []
    ctx.reply(View(text, rows))


async def remind_silent(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    if meeting.status != MeetingStatus.scheduled or meeting.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("mt.reply.closed"))
        return
    replies = await replies_of(ctx, meeting.id or 0)
    silent = [m for m in await cell_members(ctx, cell.id or 0) if m.id not in replies]
    tz = ctx.settings.tz
    queued = await send_broadcast(
        ctx,
        kind="meeting_nudge",
        members=silent,
        meeting_id=meeting.id,
        unit_id=cell.id,
        render=lambda lang, _m: View(
            t(lang, "mt.please_answer") + "\n\n" + notice_text(lang, meeting, cell, tz),
            reply_buttons(ctx, lang, meeting),
        ),
    )
    ctx.reply(ctx.t("mt.reminded", n=queued.members_reached))


# --- members: replies and /meetings ---------------------------------------------------------------


async def on_member_reply(ctx: Ctx, args: list[str]) -> None:
    if len(args) != 2 or not args[0].isdigit() or args[1] not in ("y", "n"):
        ctx.reply(ctx.t("common.stale_button"))
        return
    meeting = await ctx.session.get(Meeting, int(args[0]))
    member = ctx.actor.member
    if meeting is None or member is None or member.cell_id != meeting.cell_id:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return
    if meeting.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("mt.reply.closed"))
        return
    if args[1] == "y":
        await save_reply(ctx, meeting, member, ReplyAnswer.attend, None)
        ctx.reply(ctx.t("mt.reply.attend_saved"))
        return
    await dialogs.start(ctx, "absence", "reason", {"lang": ctx.lang, "meeting_id": meeting.id})


async def save_reply(
    ctx: Ctx, meeting: Meeting, member: Member, answer: ReplyAnswer, reason: str | None
) -> None:
    stmt = select(MeetingReply).where(
        MeetingReply.meeting_id == meeting.id, MeetingReply.member_id == member.id
    )
    reply = (await ctx.session.exec(stmt)).first() or MeetingReply(
        meeting_id=meeting.id or 0, member_id=member.id or 0, answer=answer, at=ctx.now
    )
    reply.answer, reply.reason, reply.at = answer, reason, ctx.now
    ctx.session.add(reply)


@absence_flow.ask("reason")
async def ask_reason(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    options = [Option(k, ctx.t(f"mt.reason.{k}")) for k in ("sick", "work", "away")]
    return Prompt(ctx.t("mt.ask.reason"), options, free_text=True)


@absence_flow.answer("reason")
async def on_reason(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    reason = ctx.t(f"mt.reason.{a.value}") if a.value else " ".join((a.text or "").split())
    if not reason:
        return Retry("mt.reason.empty")
    if len(reason) > REASON_MAX:
        return Retry("mt.reason.too_long", {"max": REASON_MAX})
    meeting = await ctx.session.get(Meeting, s["meeting_id"])
    member = ctx.actor.member
    if meeting is None or member is None or meeting.status != MeetingStatus.scheduled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return None
    if meeting.starts_at <= ctx.now:  # type: ignore[operator]
        ctx.reply(ctx.t("mt.reply.closed"))
        return None
    await save_reply(ctx, meeting, member, ReplyAnswer.absent, reason)
    ctx.reply(ctx.t("mt.reply.absent_saved"))
    return None


async def cmd_meetings(ctx: Ctx, args: str) -> None:
    member = ctx.actor.member
    if member is None or member.cell_id is None:
        ctx.reply(ctx.t("mt.none"))
        return
    meetings = [m for m in await upcoming(ctx, member.cell_id) if m.starts_at > ctx.now]  # type: ignore[operator]
    if not meetings:
        ctx.reply(ctx.t("mt.none"))
        return
    replies = {
        r.meeting_id: r
        for r in (
            await ctx.session.exec(
                select(MeetingReply).where(
                    MeetingReply.member_id == member.id,
                    col(MeetingReply.meeting_id).in_([m.id for m in meetings]),
                )
            )
        ).all()
    }
    cell = await ctx.session.get(Unit, member.cell_id)
    for meeting in meetings[:5]:
        reply = replies.get(meeting.id or 0)
        answer = (
            ctx.t("mt.my.none")
            if reply is None
            else (
                ctx.t("mt.my.attend")
                if reply.answer == ReplyAnswer.attend
                else ctx.t("mt.my.absent", reason=reply.reason or "")
            )
        )
        text = notice_text(ctx.lang, meeting, cell, ctx.settings.tz) + "\n" + answer  # type: ignore[arg-type]
        ctx.reply(View(text, reply_buttons(ctx, ctx.lang, meeting)))


# --- attendance after the meeting -----------------------------------------------------------------


async def start_attendance(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    replies = await replies_of(ctx, meeting.id or 0)
    absent = [mid for mid, r in replies.items() if r.answer == ReplyAnswer.absent]
    await dialogs.start(
        ctx,
        "attendance",
        "absent",
        {
            "lang": ctx.lang,
            "meeting_id": meeting.id,
            "cell_id": cell.id,
            "absent": absent,
            "excused": {},
        },
    )


@attendance_flow.ask("absent")
async def ask_absent(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    members = await cell_members(ctx, s["cell_id"])
    absent = set(s["absent"])
    options = [
        Option(str(m.id), ("✗ " if m.id in absent else "✓ ") + (m.full_name or "?"))
        for m in members
    ]
    options.append(Option("done", ctx.t("mt.att.done")))
    return Prompt(ctx.t("mt.att.ask"), options, columns=2)


@attendance_flow.answer("absent")
async def on_absent(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value != "done":
        member_id = int(a.value or 0)
        s["absent"] = (
            [m for m in s["absent"] if m != member_id]
            if member_id in s["absent"]
            else [*s["absent"], member_id]
        )
        return "absent"
    return "excuse" if s["absent"] else "app"


def _next_unasked(s: dict[str, Any]) -> int | None:
    return next((m for m in s["absent"] if str(m) not in s["excused"]), None)


@attendance_flow.ask("excuse")
async def ask_excuse(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    member = await ctx.session.get(Member, _next_unasked(s))
    return Prompt(
        ctx.t("mt.att.excused", name=member.full_name if member else "?"),
        [Option("yes", ctx.t("mt.att.with_reason")), Option("no", ctx.t("mt.att.without_reason"))],
    )


@attendance_flow.answer("excuse")
async def on_excuse(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    s["excused"][str(_next_unasked(s))] = a.value == "yes"
    return "excuse" if _next_unasked(s) is not None else "app"


@attendance_flow.ask("app")
async def ask_app(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("mt.app.ask"),
        [Option("yes", ctx.t("common.yes")), Option("no", ctx.t("common.no"))],
        columns=2,
    )


@attendance_flow.answer("app")
async def on_app(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    found = await meeting_for_secretary(ctx, str(s["meeting_id"]))
    if found is None:
        return None
    meeting, cell = found
    replies = await replies_of(ctx, meeting.id or 0)
    existing = {
        r.member_id: r
        for r in (
            await ctx.session.exec(select(Attendance).where(Attendance.meeting_id == meeting.id))
        ).all()
    }
    for member in await cell_members(ctx, cell.id or 0):
        row = existing.get(member.id or 0) or Attendance(
            meeting_id=meeting.id or 0, member_id=member.id or 0
        )
        row.present = member.id not in s["absent"]
        row.excused = bool(s["excused"].get(str(member.id))) if not row.present else False
        reply = replies.get(member.id or 0)
        row.reason = reply.reason if reply and not row.present else None
        ctx.session.add(row)
    meeting.attendance_taken_at, meeting.entered_in_app = ctx.now, a.value == "yes"
    ctx.session.add(meeting)
    await ctx.session.flush()
    ctx.reply(ctx.t("mt.att.saved", absent=len(s["absent"])))
    await warn_repeated_absences(ctx, [m for m in s["absent"] if not s["excused"].get(str(m))])
    return None


async def warn_repeated_absences(ctx: Ctx, member_ids: list[int]) -> None:
    """Three absences without reason in 12 months: the secretary (not the member) is warned."""
    since = ctx.now - timedelta(days=365)
    for member_id in member_ids:
        stmt = (
            select(func.count())
            .select_from(Attendance)
            .join(Meeting, col(Meeting.id) == Attendance.meeting_id)
            .where(
                Attendance.member_id == member_id,
                ~col(Attendance.present),
                ~col(Attendance.excused),
                col(Meeting.starts_at) >= since,
            )
        )
        count = (await ctx.session.exec(stmt)).one()
        if count >= 3:
            member = await ctx.session.get(Member, member_id)
            ctx.reply(ctx.t("mt.att.warning", name=member.full_name if member else "?", n=count))


# --- timed work -----------------------------------------------------------------------------------


@scheduler.job("mt_reminder")
async def reminder_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        return skip("cancelled")
    if meeting.starts_at <= ctx.now:  # type: ignore[operator]
        log.info("reminder.skipped_past meeting=%s", meeting.id)
        return skip("meeting already started")
    cell = await ctx.session.get(Unit, meeting.cell_id)
    replies = await replies_of(ctx, meeting.id or 0)
    members = [
        m
        for m in await cell_members(ctx, meeting.cell_id)
        if not (m.id in replies and replies[m.id].answer == ReplyAnswer.absent)
    ]
    late = ctx.now - work.due_at > timedelta(minutes=10)  # type: ignore[operator]
    tz = ctx.settings.tz
    await send_broadcast(
        ctx,
        kind="meeting_reminder",
        members=members,
        meeting_id=meeting.id,
        unit_id=meeting.cell_id,
        render=lambda lang, _m: View(
            t(
                lang,
                "mt.reminder_late" if late else "mt.reminder",
                when=when_text(lang, local(tz, meeting.starts_at)),
                place=meeting.place,  # type: ignore[arg-type]
                cell=cell.name if cell else "",
            )
        ),
    )
    return done("late" if late else None)


async def secretaries_of(ctx: Ctx, cell_id: int) -> list[Member]:
    return list(await queries.holders(ctx.session, unit_id=cell_id, roles=SECRETARIES))


@scheduler.job("mt_docs")
async def docs_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled or meeting.starts_at <= ctx.now:  # type: ignore[operator]
        return skip("cancelled or past")
    if meeting.documents_posted:
        return skip("documents already posted")
    if defer_for_quiet_hours(ctx, work):
        return done("deferred: quiet hours")
    tz = ctx.settings.tz
    for person in await secretaries_of(ctx, meeting.cell_id):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "mt.docs.nudge", when=when_text(lang, local(tz, meeting.starts_at))),  # type: ignore[arg-type]
                [[ctx.button(t(lang, "mt.card.docs"), f"a:mtc:{meeting.id}:dp")]],
            ),
        )
    return done()


@scheduler.job("mt_followup")
async def followup_job(ctx: Ctx, work: DueJob) -> JobResult:
    meeting = await ctx.session.get(Meeting, work.ref_id)
    if meeting is None or meeting.status != MeetingStatus.scheduled:
        return skip("cancelled")
    for person in await secretaries_of(ctx, meeting.cell_id):
        await ctx.notify_member(
            person,
            lambda lang: View(
                t(lang, "mt.followup"),
                [
                    [ctx.button(t(lang, "mt.card.attendance"), f"a:mtc:{meeting.id}:at")],
                    [
                        ctx.button(t(lang, "mt.app.yes"), f"a:mtc:{meeting.id}:apy"),
                        ctx.button(t(lang, "mt.app.no"), f"a:mtc:{meeting.id}:apn"),
                    ],
                ],
            ),
        )
    return done()


def in_quiet_hours(ctx: Ctx, moment: datetime) -> datetime | None:
    """When ``moment`` falls in the quiet hours, the local time they end; else None."""
    window = ctx.settings.quiet_window
    if window is None:
        return None
    start, end = window
    here = local(ctx, moment)
    now_t = here.time()
    quiet = (start <= now_t or now_t < end) if start > end else (start <= now_t < end)
    if not quiet:
        return None
    end_day = here.date() + timedelta(days=1) if start > end and now_t >= start else here.date()
    return datetime.combine(end_day, end, tzinfo=ctx.settings.tz)


def defer_for_quiet_hours(ctx: Ctx, work: DueJob) -> bool:
    resume = in_quiet_hours(ctx, ctx.now)
    if resume is None:
        return False
    scheduler.schedule(
        ctx.session,
        kind=work.kind,
        due_at=resume.astimezone(UTC),
        now=ctx.now,
        ref_id=work.ref_id,
        member_id=work.member_id,
        payload=work.payload,
        dedupe_key=f"{work.dedupe_key or work.id}:q",
    )
    return True


# --- the monthly nudge ----------------------------------------------------------------------------


def nudge_trigger(settings: Any) -> CronTrigger:
    """09:00 local on the configured day of every month (SOTAY_NUDGE_DAY)."""
    return CronTrigger(day=settings.nudge_day, hour=9, minute=0, timezone=settings.tz)


def _month_after(day: date) -> tuple[date, date]:
    first = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last


@scheduler.recurring("monthly_nudge", nudge_trigger)
async def monthly_nudge_job(ctx: Ctx, work: DueJob) -> JobResult:
    if defer_for_quiet_hours(ctx, work):
        return done("deferred: quiet hours")
    today = local(ctx, ctx.now).date()
    first, last = _month_after(today)
    quarter_end = today.month % 3 == 0
    q_start = date(today.year, today.month - 2, 1) if quarter_end else None
    stmt = (
        select(Unit)
        .join(RoleGrant, col(RoleGrant.unit_id) == Unit.id)
        .where(col(RoleGrant.role).in_(list(SECRETARIES)))
        .distinct()
    )
    nudged = 0
    for cell in (await ctx.session.exec(stmt)).all():
        meetings = (
            await ctx.session.exec(
                select(Meeting).where(
                    Meeting.cell_id == cell.id, Meeting.status == MeetingStatus.scheduled
                )
            )
        ).all()
        days = [(local(ctx, m.starts_at).date(), m.kind) for m in meetings]  # type: ignore[arg-type]
        has_regular = any(
            first <= d <= last and k in (MeetingKind.regular, MeetingKind.combined) for d, k in days
        )
        has_thematic = q_start is None or any(
            q_start <= d <= last and k in (MeetingKind.thematic, MeetingKind.combined)
            for d, k in days
        )
        if has_regular and has_thematic:
            continue
        key = "mt.nudge.regular" if not has_regular else "mt.nudge.thematic"
        for person in await secretaries_of(ctx, cell.id or 0):
            await ctx.notify_member(
                person,
                lambda lang, k=key, c=cell: View(
                    t(lang, k, month=f"{first:%m/%Y}", cell=c.name),
                    [[ctx.button(t(lang, "mt.schedule_now"), f"a:mtnew:{c.id}")]],
                ),
            )
            nudged += 1
    return done(f"nudged {nudged}")


def setup(router: Router) -> None:
    router.command("meeting", requires=SECRETARIES)(cmd_meeting)
    router.command("meetings", requires=REGISTERED)(cmd_meetings)
    router.action("mt", requires=REGISTERED)(on_member_reply)
    router.action("mtc", requires=SECRETARIES)(on_card_action)
    router.action("mtnew", requires=SECRETARIES)(on_new)
