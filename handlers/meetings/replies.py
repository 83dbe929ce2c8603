"""Members' side: answering a notice (attend / absent with a reason) and /meetings."""

from __future__ import annotations

from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from handlers.meetings.common import (
    REASON_MAX,
    AbsenceState,
    MeetingAnswer,
    NoticeAnswer,
    absence_flow,
    notice_text,
    reply_buttons,
    start_of,
    upcoming,
)
from storage.ids import id_of
from storage.models import (
    Meeting,
    MeetingReply,
    MeetingStatus,
    Member,
    ReplyAnswer,
    Unit,
)

# --- members: replies and /meetings ---------------------------------------------------------------


async def on_member_reply(ctx: Ctx, press: MeetingAnswer) -> None:
    meeting = await ctx.session.get(Meeting, press.meeting_id)
    member = ctx.actor.member
    if meeting is None or member is None or member.cell_id != meeting.cell_id:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if meeting.status == MeetingStatus.cancelled:
        ctx.reply(ctx.t("mt.reply.cancelled"))
        return
    if start_of(meeting) <= ctx.now:
        ctx.reply(ctx.t("mt.reply.closed"))
        return
    if press.answer == NoticeAnswer.attend:
        await save_reply(ctx, meeting, member, ReplyAnswer.attend, None)
        ctx.reply(ctx.t("mt.reply.attend_saved"))
        return
    state: AbsenceState = {"lang": ctx.lang, "meeting_id": id_of(meeting)}
    await dialogs.start(ctx, absence_flow, "reason", state)


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
async def ask_reason(ctx: Ctx, s: AbsenceState) -> Prompt:
    options = [Option(k, ctx.t(f"mt.reason.{k}")) for k in ("sick", "work", "away")]
    return Prompt(ctx.t("mt.ask.reason"), options, free_text=True)


@absence_flow.answer("reason")
async def on_reason(ctx: Ctx, s: AbsenceState, a: Answer) -> Next:
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
    if start_of(meeting) <= ctx.now:
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
    meetings = [m for m in await upcoming(ctx, member.cell_id) if start_of(m) > ctx.now]
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
