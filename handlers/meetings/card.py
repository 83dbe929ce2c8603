"""The secretary's meeting card: its buttons (change, cancel, status, remind the silent,
attendance) with the actor checked against the meeting's cell on every press.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from handlers.broadcast import send_broadcast
from handlers.meetings.attendance import start_attendance
from handlers.meetings.common import (
    CancelState,
    CardVerb,
    MeetingCard,
    MeetingState,
    cancel_flow,
    card_button,
    cell_members,
    create_flow,
    local,
    meeting_for_secretary,
    notice_text,
    replies_of,
    reply_buttons,
    start_of,
    when_text,
)
from storage.ids import id_of
from storage.models import (
    Meeting,
    MeetingStatus,
    ReplyAnswer,
    Unit,
)

# --- the secretary's meeting card -----------------------------------------------------------------


async def on_card_action(ctx: Ctx, press: MeetingCard) -> None:
    """One press on the card: the meeting is re-read and the actor re-checked as its cell's
    secretary, then the verb's own function runs (a change, a cancellation or attendance is
    refused on a cancelled meeting)."""
    found = await meeting_for_secretary(ctx, press.meeting_id)
    if found is None:
        return
    meeting, cell = found
    if press.verb in NOT_WHEN_CANCELLED and meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return
    await CARD_VERBS[press.verb](ctx, meeting, cell)


async def _show_card(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    show_card(ctx, meeting)


async def _docs_posted(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    meeting.documents_posted = True
    ctx.session.add(meeting)
    ctx.reply(ctx.t("mt.docs.thanks"))


async def _start_change(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    """The create dialog opened at its preview with the meeting's values, in "edit" mode."""
    local_start = local(ctx, start_of(meeting))
    state: MeetingState = {
        "lang": ctx.lang,
        "mode": "edit",
        "meeting_id": id_of(meeting),
        "cell_id": id_of(cell),
        "kind": meeting.kind.value,
        "date": local_start.date().isoformat(),
        "time": local_start.strftime("%H:%M"),
        "place": meeting.place,
        "agenda": meeting.agenda,
        "duration": meeting.duration_min,
    }
    await dialogs.start(ctx, create_flow, "preview", state)


async def _start_cancel(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    state: CancelState = {"lang": ctx.lang, "meeting_id": id_of(meeting)}
    await dialogs.start(ctx, cancel_flow, "confirm", state)


def _entered_in_app(value: bool) -> Callable[[Ctx, Meeting, Unit], Awaitable[None]]:
    async def record(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
        meeting.entered_in_app = value
        ctx.session.add(meeting)
        ctx.reply(ctx.t("mt.app.saved"))

    return record


NOT_WHEN_CANCELLED = frozenset({CardVerb.change, CardVerb.cancel, CardVerb.attendance})


def show_card(ctx: Ctx, meeting: Meeting) -> None:
    started = start_of(meeting) <= ctx.now
    rows = [
        [
            card_button(ctx, ctx.t("mt.card.status"), meeting, CardVerb.status),
            card_button(ctx, ctx.t("mt.card.remind"), meeting, CardVerb.remind),
        ]
    ]
    if started:
        rows.append([card_button(ctx, ctx.t("mt.card.attendance"), meeting, CardVerb.attendance)])
    else:
        rows.append(
            [
                card_button(ctx, ctx.t("mt.card.change"), meeting, CardVerb.change),
                card_button(ctx, ctx.t("mt.card.cancel"), meeting, CardVerb.cancel),
            ]
        )
        rows.append([card_button(ctx, ctx.t("mt.card.docs"), meeting, CardVerb.docs_posted)])
    when = when_text(ctx.lang, local(ctx, start_of(meeting)))
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
        when=when_text(ctx.lang, local(ctx, start_of(meeting))),
        n_attend=len(attend),
        attend=", ".join(attend) or "—",
        n_absent=len(absent),
        absent="; ".join(absent) or "—",
        n_silent=len(silent),
        silent=", ".join(silent) or "—",
    )
    rows = [[card_button(ctx, ctx.t("mt.card.remind"), meeting, CardVerb.remind)]] if silent else []
    ctx.reply(View(text, rows))


async def remind_silent(ctx: Ctx, meeting: Meeting, cell: Unit) -> None:
    if meeting.status != MeetingStatus.scheduled or start_of(meeting) <= ctx.now:
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


CARD_VERBS: dict[CardVerb, Callable[[Ctx, Meeting, Unit], Awaitable[None]]] = {
    CardVerb.card: _show_card,
    CardVerb.status: show_status,
    CardVerb.remind: remind_silent,
    CardVerb.docs_posted: _docs_posted,
    CardVerb.change: _start_change,
    CardVerb.cancel: _start_cancel,
    CardVerb.attendance: start_attendance,
    CardVerb.in_app_yes: _entered_in_app(True),
    CardVerb.in_app_no: _entered_in_app(False),
}
