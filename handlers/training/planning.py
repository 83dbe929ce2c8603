"""Scheduling a training: the /training dialog (unit, day, time, place, topic, capacity,
preview) and sending the invitations once the trainer confirms.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, cast

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from handlers import when
from handlers.broadcast import send_broadcast
from handlers.training.card import card_buttons
from handlers.training.common import (
    CAPACITY_RANGE,
    DURATION_MIN,
    PLACE_MAX,
    TOPIC_MAX,
    TRAINERS,
    NewTraining,
    TrainingState,
    answer_buttons,
    create_flow,
    invite_text,
    invitees,
    log,
    secretaries_under,
    starts_of,
    trainer_scopes,
)
from handlers.training.jobs import plan_jobs
from storage import queries
from storage.ids import id_of
from storage.models import Unit
from storage.training_models import TrainingSeat, TrainingSession

TOPICS = ("install", "use")
QUICK_TIMES = ("08:00", "14:00", "19:30")


async def on_new(ctx: Ctx, press: NewTraining) -> None:
    if not trainer_scopes(ctx):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await dialogs.start(ctx, create_flow, "unit", TrainingState(lang=ctx.lang))


async def unit_choices(ctx: Ctx) -> list[Unit]:
    """The units a trainer serves and the units directly below them (a commune's cells)."""
    units: list[Unit] = []
    for scope in trainer_scopes(ctx):
        units.append(scope)
        units += list(await queries.child_units(ctx.session, parent_id=scope.id))
    return list({id_of(u): u for u in units}.values())[:12]  # each once, in first-seen order


def _when_state(s: TrainingState) -> dict[str, Any]:
    """The same state, as ``handlers.when`` (shared with meetings) takes it: a plain dict whose
    ``date``, ``time`` and ``time_guess`` keys it reads and writes."""
    return cast(dict[str, Any], s)


@create_flow.ask("unit")
async def ask_unit(ctx: Ctx, s: TrainingState) -> Prompt:
    options = [Option(str(u.id), u.name) for u in await unit_choices(ctx)]
    return Prompt(ctx.t("tr.ask.unit"), options)


@create_flow.answer("unit")
async def on_unit(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    unit = await ctx.session.get(Unit, int(a.value)) if a.value and a.value.isdigit() else None
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        return Retry("common.not_allowed")
    s["unit_id"] = id_of(unit)
    return "date"


@create_flow.ask("date")
async def ask_date(ctx: Ctx, s: TrainingState) -> Prompt:
    return Prompt(ctx.t("tr.ask.date"), free_text=True)


@create_flow.answer("date")
async def on_date(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    return when.read_day(ctx, _when_state(s), a.text or a.value or "", "time")


@create_flow.ask("date_confirm")
async def ask_date_confirm(ctx: Ctx, s: TrainingState) -> Prompt:
    return when.date_confirm_prompt(ctx, _when_state(s))


@create_flow.answer("date_confirm")
async def on_date_confirm(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    return when.confirmed_day(_when_state(s), a, "time")


@create_flow.ask("time")
async def ask_time(ctx: Ctx, s: TrainingState) -> Prompt:
    options = [Option(v, v) for v in QUICK_TIMES]
    return Prompt(ctx.t("tr.ask.time"), options, free_text=True, columns=3)


@create_flow.answer("time")
async def on_time(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    return when.read_time(ctx, _when_state(s), a, "place")


@create_flow.ask("time_confirm")
async def ask_time_confirm(ctx: Ctx, s: TrainingState) -> Prompt:
    return when.time_confirm_prompt(ctx, _when_state(s))


@create_flow.answer("time_confirm")
async def on_time_confirm(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    return when.confirmed_time(ctx, _when_state(s), a, "place")


@create_flow.ask("place")
async def ask_place(ctx: Ctx, s: TrainingState) -> Prompt:
    return Prompt(ctx.t("tr.ask.place"), free_text=True)


@create_flow.answer("place")
async def on_place(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    place = " ".join((a.text or "").split())
    if not place or len(place) > PLACE_MAX:
        return Retry("tr.place.invalid", {"max": PLACE_MAX})
    s["place"] = place
    return "topic"


@create_flow.ask("topic")
async def ask_topic(ctx: Ctx, s: TrainingState) -> Prompt:
    return Prompt(
        ctx.t("tr.ask.topic"),
        [Option(k, ctx.t(f"tr.topic.{k}")) for k in TOPICS],
        free_text=True,
    )


@create_flow.answer("topic")
async def on_topic(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    topic = ctx.t(f"tr.topic.{a.value}") if a.value in TOPICS else (a.text or "").strip()
    if not topic:
        return Retry("tr.topic.empty")
    if len(topic) > TOPIC_MAX:
        return Retry("tr.topic.too_long", {"max": TOPIC_MAX, "length": len(topic)})
    s["topic"] = topic
    return "capacity"


@create_flow.ask("capacity")
async def ask_capacity(ctx: Ctx, s: TrainingState) -> Prompt:
    # No quick buttons: a typed "2" would be read as the second button, not as 2 places.
    return Prompt(ctx.t("tr.ask.capacity"), free_text=True)


@create_flow.answer("capacity")
async def on_capacity(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    raw = (a.value or a.text or "").strip().split(" ")[0]
    low, high = CAPACITY_RANGE
    if not raw.isdigit() or not low <= int(raw) <= high:
        return Retry("tr.capacity.invalid", {"low": low, "high": high})
    s["capacity"] = int(raw)
    return "preview"


def draft(ctx: Ctx, s: TrainingState) -> TrainingSession:
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
async def ask_preview(ctx: Ctx, s: TrainingState) -> Prompt:
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
async def on_preview(ctx: Ctx, s: TrainingState, a: Answer) -> Next:
    if a.value != "send":
        ctx.reply(ctx.t("tr.dropped"))
        return None
    unit = await ctx.session.get(Unit, s["unit_id"])
    if unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    if starts_of(draft(ctx, s)) <= ctx.now:
        ctx.reply(ctx.t("mt.time.past"))
        return "date"
    await create_session(ctx, s, unit)
    return None


async def create_session(ctx: Ctx, s: TrainingState, unit: Unit) -> TrainingSession:
    """Store the session, one seat per invitee (with their handbook status now), and invite."""
    row = draft(ctx, s)
    row.created_by = ctx.actor.member.id if ctx.actor.member else None
    ctx.session.add(row)
    await ctx.session.flush()
    who = await invitees(ctx.session, unit)
    for member in who.members:
        ctx.session.add(
            TrainingSeat(
                session_id=id_of(row),
                member_id=id_of(member),
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
            answer_buttons(ctx, lang, id_of(row), secretary=m.id in secretaries),
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
