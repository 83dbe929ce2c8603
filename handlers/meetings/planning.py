"""The secretary's /meeting: the entry and the create / change dialog (kind, day, time, place,
agenda, duration, preview). What a confirmed dialog does is in ``publish``.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from handlers import when
from handlers.meetings.card import show_status
from handlers.meetings.common import (
    AGENDA_MAX,
    PLACE_MAX,
    SECRETARIES,
    CardVerb,
    MeetingState,
    NewMeeting,
    card_button,
    cell_members,
    create_flow,
    local,
    notice_text,
    secretary_cells,
    start_of,
    upcoming,
    when_text,
)
from handlers.meetings.publish import apply_change, create_meeting, draft_meeting
from storage.ids import id_of
from storage.models import (
    Meeting,
    MeetingKind,
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
    rows = [[ctx.button(ctx.t("mt.new"), NewMeeting(id_of(cell)))]]
    for meeting in meetings[:8]:
        label = when_text(ctx.lang, local(ctx, start_of(meeting)))
        rows.append([card_button(ctx, f"📋 {label}", meeting, CardVerb.card)])
    ctx.reply(View(ctx.t("mt.menu", cell=cell.name), rows))


async def on_new(ctx: Ctx, press: NewMeeting) -> None:
    cell = await ctx.session.get(Unit, press.cell_id)
    if cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await start_new(ctx, cell)


async def start_new(ctx: Ctx, cell: Unit) -> None:
    state: MeetingState = {"lang": ctx.lang, "mode": "new", "cell_id": id_of(cell)}
    await dialogs.start(ctx, create_flow, "kind", state)


# --- the create / change dialog -------------------------------------------------------------------


@create_flow.ask("kind")
async def ask_kind(ctx: Ctx, s: MeetingState) -> Prompt:
    return Prompt(
        ctx.t("mt.ask.kind"), [Option(k.value, ctx.t(f"mt.kind.{k.value}")) for k in MeetingKind]
    )


@create_flow.answer("kind")
async def on_kind(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    s["kind"] = a.value or ""  # the options are the kinds
    s["duration"] = 120 if a.value == MeetingKind.combined else 90
    return "date"


@create_flow.ask("date")
async def ask_date(ctx: Ctx, s: MeetingState) -> Prompt:
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
async def on_date(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    if a.value and a.value.startswith("m"):
        s["cal"] = a.value[1:]
        return "date"
    if a.value:  # a day pressed in the calendar
        pressed = date.fromisoformat(a.value[1:])
        return when.set_day(ctx, s, pressed, _after_edit(s, "time"), rolled=False)
    return when.read_day(ctx, s, a.text or "", _after_edit(s, "time"))


@create_flow.ask("date_confirm")
async def ask_date_confirm(ctx: Ctx, s: MeetingState) -> Prompt:
    return when.date_confirm_prompt(ctx, s)


@create_flow.answer("date_confirm")
async def on_date_confirm(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    return when.confirmed_day(s, a, _after_edit(s, "time"))


def _after_edit(s: MeetingState, next_step: str) -> str:
    """In a change, each field goes back to the preview; a new meeting walks every step."""
    return "preview" if s.get("mode") == "edit" and next_step != "time" else next_step


@create_flow.ask("time")
async def ask_time(ctx: Ctx, s: MeetingState) -> Prompt:
    quick = ["19:30", "14:00", "08:00"]
    return Prompt(ctx.t("mt.ask.time"), [Option(v, v) for v in quick], free_text=True, columns=3)


@create_flow.answer("time")
async def on_time(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    return when.read_time(ctx, s, a, _time_next(s))


def _time_next(s: MeetingState) -> str:
    return "preview" if s.get("mode") == "edit" else "place"


@create_flow.ask("time_confirm")
async def ask_time_confirm(ctx: Ctx, s: MeetingState) -> Prompt:
    return when.time_confirm_prompt(ctx, s)


@create_flow.answer("time_confirm")
async def on_time_confirm(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    return when.confirmed_time(ctx, s, a, _time_next(s))


@create_flow.ask("place")
async def ask_place(ctx: Ctx, s: MeetingState) -> Prompt:
    stmt = (
        select(Meeting.place)
        .where(Meeting.cell_id == s["cell_id"])
        .order_by(col(Meeting.id).desc())
    )
    last = (await ctx.session.exec(stmt)).first()
    options = [Option("last", last[:60])] if last else []
    return Prompt(ctx.t("mt.ask.place"), options, free_text=True)


@create_flow.answer("place")
async def on_place(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
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
async def ask_agenda(ctx: Ctx, s: MeetingState) -> Prompt:
    return Prompt(ctx.t("mt.ask.agenda"), free_text=True)


@create_flow.answer("agenda")
async def on_agenda(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    agenda = (a.text or "").strip()
    if not agenda:
        return Retry("mt.agenda.empty")
    if len(agenda) > AGENDA_MAX:
        return Retry("mt.agenda.too_long", {"max": AGENDA_MAX, "length": len(agenda)})
    s["agenda"] = agenda
    return _after_edit(s, "duration")


@create_flow.ask("duration")
async def ask_duration(ctx: Ctx, s: MeetingState) -> Prompt:
    return Prompt(
        ctx.t("mt.ask.duration", default=s["duration"]),
        [Option("90", ctx.t("mt.minutes", n=90)), Option("120", ctx.t("mt.minutes", n=120))],
        free_text=True,
        columns=2,
    )


@create_flow.answer("duration")
async def on_duration(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
    raw = (a.value or a.text or "").strip().lower().removesuffix("phút").removesuffix("p").strip()
    if not raw.isdigit() or not 30 <= int(raw) <= 480:
        return Retry("mt.duration.invalid")
    s["duration"] = int(raw)
    return "preview"


@create_flow.ask("preview")
async def ask_preview(ctx: Ctx, s: MeetingState) -> Prompt:
    cell = await ctx.session.get(Unit, s["cell_id"])
    count = len(await cell_members(ctx, s["cell_id"]))
    text = notice_text(ctx.lang, draft_meeting(ctx, s), cell, ctx.settings.tz)  # type: ignore[arg-type]
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
async def on_preview(ctx: Ctx, s: MeetingState, a: Answer) -> Next:
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
