"""The secretary's meeting card: its buttons (change, cancel, status, remind the silent,
attendance) with the actor checked against the meeting's cell on every press.
"""

from __future__ import annotations

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from handlers.broadcast import send_broadcast
from handlers.meetings.attendance import start_attendance
from handlers.meetings.common import (
    cell_members,
    local,
    meeting_for_secretary,
    notice_text,
    replies_of,
    reply_buttons,
    when_text,
)
from storage.models import (
    Meeting,
    MeetingStatus,
    ReplyAnswer,
    Unit,
)

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
