"""Shared pieces of the training feature: who may do what, the flows and their states, the
buttons (one typed codec per action), how a session is written for a member, and the queries
every part asks (seats, invitees, the actor's session or cell).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import ClassVar, TypedDict

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs
from bot.callbacks import Callback
from bot.context import Ctx
from bot.core import Choice
from bot.i18n import t
from storage.ids import id_of
from storage.models import Member, MemberStatus, Role, RoleGrant, Unit
from storage.queries import in_subtree
from storage.training_models import TrainingSeat, TrainingSession

log = logging.getLogger("sotay.training")

TRAINERS = (Role.staff, Role.admin, Role.trainer)
SECRETARIES = (Role.secretary, Role.deputy)
PLACE_MAX = 200
TOPIC_MAX = 1000
CAPACITY_RANGE = (1, 500)
DURATION_MIN = 120
FOLLOWUP_AFTER = timedelta(days=1)
JOBS = ("tr_reminder", "tr_after", "tr_check")


# --- flows and their states -----------------------------------------------------------------------


class TrainingState(TypedDict, total=False):
    """The scheduling dialog: the unit, then day and time (``handlers.when``), place, topic and
    capacity; ``time_guess`` while the morning-or-evening question is open."""

    lang: str
    unit_id: int
    date: str  # ISO day, local
    time: str  # HH:MM, local
    time_guess: str
    place: str
    topic: str
    capacity: int


class SignupState(TypedDict, total=False):
    """A secretary signing members of their cell up: who was added in this dialog."""

    lang: str
    session_id: int
    cell_id: int
    added: list[int]


class AttendanceState(TypedDict, total=False):
    """The trainer ticking who came: the member ids marked present so far."""

    lang: str
    session_id: int
    present: list[int]


create_flow: dialogs.Flow[TrainingState] = dialogs.flow("training")
signup_flow: dialogs.Flow[SignupState] = dialogs.flow("training_signup")
attendance_flow: dialogs.Flow[AttendanceState] = dialogs.flow("training_attendance")


# --- buttons --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTraining(Callback):
    """ "Schedule a training" on the trainer's menu: ``a:trn``."""

    action: ClassVar[str] = "trn"


class CardVerb(StrEnum):
    """What a button of the trainer's session card does."""

    card = "card"
    status = "st"
    attendance = "at"
    cancel = "cx"  # asks "really cancel?"
    cancel_confirmed = "cy"


@dataclass(frozen=True)
class TrainingCard(Callback):
    """A button of the trainer's card: ``a:trc:<session>:<verb>``."""

    action: ClassVar[str] = "trc"
    session_id: int
    verb: CardVerb


@dataclass(frozen=True)
class TrainingReport(Callback):
    """The results under a unit: ``a:trr:<unit>``."""

    action: ClassVar[str] = "trr"
    unit_id: int


class InviteAnswer(StrEnum):
    yes = "y"
    no = "n"


@dataclass(frozen=True)
class TrainingAnswer(Callback):
    """A member's answer to an invitation: ``a:tr:<session>:y|n``."""

    action: ClassVar[str] = "tr"
    session_id: int
    answer: InviteAnswer


@dataclass(frozen=True)
class SignUpOthers(Callback):
    """A secretary signs members of their cell up: ``a:trs:<session>``."""

    action: ClassVar[str] = "trs"
    session_id: int


class FollowupAnswer(StrEnum):
    """A day after: installed and logged in, installed only, or neither."""

    ok = "ok"
    installed = "inst"
    none = "none"


@dataclass(frozen=True)
class FollowUp(Callback):
    """One who came answers the follow-up: ``a:trf:<session>:ok|inst|none``."""

    action: ClassVar[str] = "trf"
    session_id: int
    answer: FollowupAnswer


def card_button(ctx: Ctx, label: str, row: TrainingSession, verb: CardVerb) -> Choice:
    return ctx.button(label, TrainingCard(id_of(row), verb))


def answer_buttons(
    ctx: Ctx, lang: str, session_id: int, *, secretary: bool = False
) -> list[list[Choice]]:
    rows = [
        [
            ctx.button(t(lang, "tr.yes"), TrainingAnswer(session_id, InviteAnswer.yes)),
            ctx.button(t(lang, "tr.no"), TrainingAnswer(session_id, InviteAnswer.no)),
        ]
    ]
    if secretary:
        rows.append([ctx.button(t(lang, "tr.signup_others"), SignUpOthers(session_id))])
    return rows


# --- formatting -----------------------------------------------------------------------------------


def starts_of(row: TrainingSession) -> datetime:
    """The session's start (a NOT NULL column; ``None`` only on a row never stored)."""
    if row.starts_at is None:
        raise ValueError("training session without a start time")
    return row.starts_at


def when_text(lang: str, moment: datetime, tz: tzinfo) -> str:
    """The start time in the deployment's zone, as meetings show it (19:30 Thứ Hai 20/12/2026)."""
    here = moment.astimezone(tz)
    return f"{here:%H:%M} {t(lang, f'wd.{here.weekday()}')} {here:%d/%m/%Y}"


def invite_text(lang: str, session: TrainingSession, unit: Unit, tz: tzinfo, free: int) -> str:
    return t(
        lang,
        "tr.invite",
        unit=unit.name,
        when=when_text(lang, starts_of(session), tz),
        place=session.place,
        topic=session.topic,
        n=max(free, 0),
    )


# --- queries --------------------------------------------------------------------------------------


async def seats_of(session: AsyncSession, session_id: int) -> dict[int, TrainingSeat]:
    stmt = select(TrainingSeat).where(TrainingSeat.session_id == session_id)
    return {s.member_id: s for s in (await session.exec(stmt)).all()}


async def taken(session: AsyncSession, session_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(TrainingSeat)
        .where(TrainingSeat.session_id == session_id, TrainingSeat.answer == "yes")
    )
    return int((await session.exec(stmt)).one())


async def members_under(session: AsyncSession, unit: Unit) -> list[Member]:
    """Active members of every cell in ``unit``'s subtree."""
    stmt = (
        select(Member)
        .join(Unit, col(Unit.id) == Member.cell_id)
        .where(Member.status == MemberStatus.active, in_subtree(Unit.path, unit.path))
        .order_by(col(Member.id))
    )
    return list((await session.exec(stmt)).all())


async def secretaries_under(session: AsyncSession, unit: Unit) -> set[int]:
    stmt = (
        select(RoleGrant.member_id)
        .join(Unit, col(Unit.id) == RoleGrant.unit_id)
        .where(col(RoleGrant.role).in_(list(SECRETARIES)), in_subtree(Unit.path, unit.path))
    )
    return set((await session.exec(stmt)).all())


@dataclass(frozen=True)
class Invitees:
    """Who a training invites, those who need it most first."""

    members: list[Member]
    lagging: int  # not installed, or installed but not logged in
    secretaries: int


def needs_training(member: Member) -> bool:
    return not (member.app_installed and member.app_activated)


async def invitees(session: AsyncSession, unit: Unit) -> Invitees:
    """Members who have not installed or activated the handbook (not installed first), then
    every secretary or deputy who is not among them."""
    everyone = await members_under(session, unit)
    secretaries = await secretaries_under(session, unit)
    lagging = sorted(
        (m for m in everyone if needs_training(m)), key=lambda m: bool(m.app_installed)
    )
    lagging_ids = {m.id for m in lagging}
    extra = [m for m in everyone if m.id in secretaries and m.id not in lagging_ids]
    return Invitees(lagging + extra, len(lagging), len(extra))


def trainer_scopes(ctx: Ctx) -> list[Unit]:
    return sorted(ctx.actor.scopes(*TRAINERS), key=lambda u: (u.depth, u.path))


async def session_for_trainer(ctx: Ctx, session_id: int) -> tuple[TrainingSession, Unit] | None:
    """The session if the actor is staff or admin of its unit; otherwise say so, return None."""
    found = await ctx.session.get(TrainingSession, session_id)
    unit = await ctx.session.get(Unit, found.unit_id) if found else None
    if found is None or unit is None or not ctx.actor.can_act_on(unit, *TRAINERS):
        log.warning("training.refused session=%s", session_id)
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    return found, unit


async def cell_of(ctx: Ctx, member: Member | None) -> Unit | None:
    if member is None or member.cell_id is None:
        return None
    return await ctx.session.get(Unit, member.cell_id)


async def active_members(ctx: Ctx, member_ids: list[int]) -> list[Member]:
    """The active members among ``member_ids``."""
    stmt = select(Member).where(
        col(Member.id).in_(member_ids), Member.status == MemberStatus.active
    )
    return list((await ctx.session.exec(stmt)).all())
