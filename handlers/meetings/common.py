"""Shared pieces of the meeting feature: limits, the dialogs' names, how a meeting is written
for a member, and the queries every part asks (a cell's members, upcoming meetings, replies).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.i18n import t
from storage.models import (
    Meeting,
    MeetingReply,
    MeetingStatus,
    Member,
    MemberStatus,
    Role,
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


async def replies_of(ctx: Ctx, meeting_id: int) -> dict[int, MeetingReply]:
    stmt = select(MeetingReply).where(MeetingReply.meeting_id == meeting_id)
    return {r.member_id: r for r in (await ctx.session.exec(stmt)).all()}
