"""Shared pieces of the meeting feature: limits, the dialogs' names, how a meeting is written
for a member, and the queries every part asks (a cell's members, upcoming meetings, replies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypedDict

from sqlmodel import col, select

from bot import dialogs
from bot.callbacks import Callback
from bot.context import Ctx
from bot.i18n import t
from handlers.when import WhenState
from storage.ids import id_of
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


class MeetingState(WhenState, total=False):
    """The create / change dialog: the meeting as entered so far."""

    lang: str
    mode: Literal["new", "edit"]
    meeting_id: int  # the meeting being changed (edit mode)
    cell_id: int
    kind: str  # a MeetingKind's value
    duration: int  # minutes
    cal: str  # the month the date picker shows, "YYYY-M"
    place: str
    agenda: str


class AbsenceState(TypedDict, total=False):
    lang: str
    meeting_id: int


class AttendanceState(TypedDict, total=False):
    lang: str
    meeting_id: int
    cell_id: int
    absent: list[int]  # member ids
    excused: dict[str, bool]  # member id (as JSON keys are) → excused


class CancelState(TypedDict, total=False):
    lang: str
    meeting_id: int


create_flow: dialogs.Flow[MeetingState] = dialogs.flow("meeting")
absence_flow: dialogs.Flow[AbsenceState] = dialogs.flow("absence")
attendance_flow: dialogs.Flow[AttendanceState] = dialogs.flow("attendance")
cancel_flow: dialogs.Flow[CancelState] = dialogs.flow("meeting_cancel")


# --- formatting -----------------------------------------------------------------------------------


def local(ctx_or_tz: Any, moment: datetime) -> datetime:
    tz = ctx_or_tz.settings.tz if hasattr(ctx_or_tz, "settings") else ctx_or_tz
    return moment.astimezone(tz)


def start_of(meeting: Meeting) -> datetime:
    """When the meeting starts (a stored meeting always has it: the column is NOT NULL)."""
    if meeting.starts_at is None:
        raise ValueError("a meeting without a start time")
    return meeting.starts_at


def when_text(lang: str, moment_local: datetime) -> str:
    weekday = t(lang, f"wd.{moment_local.weekday()}")
    return f"{moment_local:%H:%M} {weekday} {moment_local:%d/%m/%Y}"


def notice_text(lang: str, meeting: Meeting, cell: Unit, tz: Any, *, key: str = "mt.notice") -> str:
    return t(
        lang,
        key,
        kind=t(lang, f"mt.kind.{meeting.kind.value}"),
        cell=cell.name,
        when=when_text(lang, local(tz, start_of(meeting))),
        place=meeting.place,
        agenda=meeting.agenda,
        duration=meeting.duration_min,
    )


# --- buttons --------------------------------------------------------------------------------------


class NoticeAnswer(StrEnum):
    attend = "y"
    absent = "n"


@dataclass(frozen=True)
class MeetingAnswer(Callback):
    """A member's answer to a notice: ``a:mt:<meeting>:y|n``."""

    action: ClassVar[str] = "mt"
    meeting_id: int
    answer: NoticeAnswer


class CardVerb(StrEnum):
    """What a button of the secretary's meeting card does."""

    card = "card"
    status = "st"
    remind = "rm"
    docs_posted = "dp"
    change = "ch"
    cancel = "cx"
    attendance = "at"
    in_app_yes = "apy"
    in_app_no = "apn"


@dataclass(frozen=True)
class MeetingCard(Callback):
    """A button of the secretary's card: ``a:mtc:<meeting>:<verb>``."""

    action: ClassVar[str] = "mtc"
    meeting_id: int
    verb: CardVerb


@dataclass(frozen=True)
class NewMeeting(Callback):
    """ "Schedule a meeting" for a cell: ``a:mtnew:<cell>``."""

    action: ClassVar[str] = "mtnew"
    cell_id: int


def card_button(ctx: Ctx, label: str, meeting: Meeting, verb: CardVerb) -> Any:
    return ctx.button(label, MeetingCard(id_of(meeting), verb))


def reply_buttons(ctx: Ctx, lang: str, meeting: Meeting) -> list[list[Any]]:
    return [
        [
            ctx.button(t(lang, "mt.attend"), MeetingAnswer(id_of(meeting), NoticeAnswer.attend)),
            ctx.button(t(lang, "mt.absent"), MeetingAnswer(id_of(meeting), NoticeAnswer.absent)),
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


async def meeting_for_secretary(ctx: Ctx, meeting_id: int) -> tuple[Meeting, Unit] | None:
    """The meeting if the actor is a secretary of its cell; otherwise tell them and return None."""
    meeting = await ctx.session.get(Meeting, meeting_id)
    cell = await ctx.session.get(Unit, meeting.cell_id) if meeting else None
    if meeting is None or cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    return meeting, cell


async def replies_of(ctx: Ctx, meeting_id: int) -> dict[int, MeetingReply]:
    stmt = select(MeetingReply).where(MeetingReply.meeting_id == meeting_id)
    return {r.member_id: r for r in (await ctx.session.exec(stmt)).all()}
