"""The day and time-of-day steps that a meeting and a training session share: one reading of a
typed day ("mai", "5/12"), the next-year question when a day/month has passed this year (asked,
never guessed), one reading of "7h", "19:30" or "tối 7h", the morning-or-evening question when the
hour could be either, and the refusal of a moment already past. Each flow keeps its own step names
("date_confirm", "time_confirm") and says where to go next.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, TypedDict

from bot.context import Ctx
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.timeparse import DateError, parse_time, read_date


class WhenState(TypedDict, total=False):
    """The keys these steps read and write in a flow's state (a flow's TypedDict extends it)."""

    date: str  # the chosen local day, ISO
    time: str  # the chosen local time, HH:MM
    time_guess: str  # a typed hour that could be morning or evening, HH:MM


# A flow whose state is not typed yet passes its plain dict.
WhenData = WhenState | dict[str, Any]


def today(ctx: Ctx) -> date:
    """Today in the organisation's time zone (a date typed by a member means a local day)."""
    return ctx.now.astimezone(ctx.settings.tz).date()


def read_day(ctx: Ctx, s: WhenData, text: str, next_step: str) -> Next:
    """The typed day: set it, ask whether next year was meant ("date_confirm"), or retry.

    "01/12" typed on 2 December is read as next year's, but only after the member confirms it:
    a meeting silently announced for a year later is worse than one more question."""
    try:
        typed = read_date(text, today(ctx))
    except DateError as exc:
        return Retry(f"mt.date.{exc.reason}")
    return set_day(ctx, s, typed.value, next_step, rolled=typed.rolled)


def set_day(ctx: Ctx, s: WhenData, chosen: date, next_step: str, *, rolled: bool) -> Next:
    """Keep a day that has not passed; a day moved to next year is confirmed first."""
    if chosen < today(ctx):
        return Retry("mt.date.past")
    s["date"] = chosen.isoformat()
    return "date_confirm" if rolled else next_step


def date_confirm_prompt(ctx: Ctx, s: WhenData) -> Prompt:
    chosen = date.fromisoformat(s["date"])
    return Prompt(
        ctx.t("mtdate.rolled", day=f"{chosen:%d/%m}", year=chosen.year),
        [
            Option("yes", ctx.t("mtdate.rolled.yes", year=chosen.year)),
            Option("no", ctx.t("mtdate.rolled.no")),
        ],
    )


def confirmed_day(s: WhenData, a: Answer, next_step: str) -> Next:
    """Next year's day was meant: go on; otherwise the day is asked again."""
    if a.value != "yes":
        s.pop("date", None)
        return "date"
    return next_step


def read_time(ctx: Ctx, s: WhenData, a: Answer, next_step: str) -> Next:
    """The typed or pressed time: set it, ask morning or evening ("time_confirm"), or retry."""
    parsed = parse_time(a.value or a.text or "")
    if parsed is None:
        return Retry("mt.time.format")
    if parsed.ambiguous:
        s["time_guess"] = parsed.value.strftime("%H:%M")
        return "time_confirm"
    return set_time(ctx, s, parsed.value, next_step)


def set_time(ctx: Ctx, s: WhenData, value: time, next_step: str) -> Next:
    """Keep the time on the chosen day unless that moment has passed."""
    starts = datetime.combine(date.fromisoformat(s["date"]), value, tzinfo=ctx.settings.tz)
    if starts <= ctx.now:
        return Retry("mt.time.past")
    s["time"] = value.strftime("%H:%M")
    return next_step


def time_confirm_prompt(ctx: Ctx, s: WhenData) -> Prompt:
    morning = time.fromisoformat(s["time_guess"])
    evening = time(morning.hour + 12, morning.minute)
    return Prompt(
        ctx.t("mt.ask.time_confirm", typed=s["time_guess"]),
        [
            Option(f"{morning:%H:%M}", ctx.t("mt.morning", time=f"{morning:%H:%M}")),
            Option(f"{evening:%H:%M}", ctx.t("mt.evening", time=f"{evening:%H:%M}")),
        ],
    )


def confirmed_time(ctx: Ctx, s: WhenData, a: Answer, next_step: str) -> Next:
    """The chosen morning or evening time; if it has already passed, the time is asked again."""
    result = set_time(ctx, s, time.fromisoformat(a.value or "00:00"), next_step)
    if isinstance(result, Retry):
        ctx.reply(ctx.t(result.key))
        return "time"
    return result
