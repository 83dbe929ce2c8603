"""The identity rule: when a messenger account may become a roster member, and who vouches.

An account is linked to a roster member only on proof:
- the channel proves the phone (Telegram's contact of the sender; a Zalo OA user's shared info),
  or
- someone with authority over *everything the member holds* approves: for a plain member, their
  cell's secretary (or the staff above a cell without one); for anyone holding a secretary,
  deputy, staff or admin role, a staff member or admin of a unit strictly above every such role.
  Never the member themselves, never someone the role would outrank.

A typed phone number proves nothing and reveals nothing: the person must name themselves, a
wrong pair counts as a failed try (counts only, never the numbers), and after a few failures the
account waits, longer each time. See docs/architecture.md ("Identity") for the per-channel table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.textfold import fold
from storage import queries
from storage.models import IdentityAttempt, Member, Role, Unit

CELL_APPROVERS = (Role.secretary, Role.deputy, Role.staff, Role.admin)
ABOVE_APPROVERS = (Role.staff, Role.admin)
FREE_TRIES = 5
FIRST_WAIT = timedelta(minutes=15)
MAX_WAIT = timedelta(days=2)
FORGET_AFTER = timedelta(hours=24)  # a quiet day wipes the slate of an account that is not locked


@dataclass(frozen=True)
class Stake:
    """One thing linking an account to the member would hand over: a role on a unit."""

    role: Role
    unit_path: str


def within(path: str, scope: str) -> bool:
    return queries.within(path, scope)


def strictly_below(path: str, scope: str) -> bool:
    return path != scope and within(path, scope)


def covers(approver: Sequence[tuple[Role, str]], stake: Stake) -> bool:
    """True when someone holding the ``approver`` grants (role, unit path) may vouch for
    ``stake``. Pure: the table-driven test in tests/test_identity.py exercises it."""
    if stake.role == Role.member:
        return any(role in CELL_APPROVERS and within(stake.unit_path, p) for role, p in approver)
    return any(
        role in ABOVE_APPROVERS and strictly_below(stake.unit_path, p) for role, p in approver
    )


def may_approve(approver: Sequence[tuple[Role, str]], stakes: Sequence[Stake]) -> bool:
    """Authority over every stake (and at least one: a member with nothing at stake has a cell)."""
    return bool(stakes) and all(covers(approver, stake) for stake in stakes)


async def stakes_of(session: AsyncSession, member: Member) -> list[Stake]:
    """What linking an account to ``member`` hands over: their cell membership and roles."""
    stakes: list[Stake] = []
    if member.cell_id is not None:
        cell = await session.get(Unit, member.cell_id)
        if cell is not None:
            stakes.append(Stake(Role.member, cell.path))
    for grant, unit in await queries.grants_of(session, member_id=member.id or 0):
        if grant.role != Role.member:
            stakes.append(Stake(grant.role, unit.path))
    return stakes


def grants_as_pairs(grants: Sequence[tuple[object, Unit]]) -> list[tuple[Role, str]]:
    return [(grant.role, unit.path) for grant, unit in grants]  # type: ignore[attr-defined]


async def approvers_for(session: AsyncSession, member: Member, stakes: list[Stake]) -> list[Member]:
    """Who is asked to vouch: the nearest people with authority over every stake.

    A plain member: their cell's secretaries, else the nearest staff above, else admins. Anyone
    holding a role: staff, then admins, of the nearest unit above the highest role at stake.
    """
    if not stakes:
        return []
    top = min(stakes, key=lambda s: s.unit_path.count(queries.PATH_SEP))
    unit = await queries.unit_by_path(session, path=top.unit_path)
    if unit is None:
        return []
    levels: list[tuple[Unit, tuple[Role, ...]]] = []
    if all(s.role == Role.member for s in stakes):
        levels.append((unit, (Role.secretary, Role.deputy)))
    for above in await queries.ancestors(session, unit=unit):
        levels += [(above, (Role.staff,)), (above, (Role.admin,))]
    for level, roles in levels:
        found = []
        for person in await queries.holders(session, unit_id=level.id or 0, roles=roles):
            if person.id == member.id:
                continue  # never the person whose identity is claimed
            grants = grants_as_pairs(await queries.grants_of(session, member_id=person.id or 0))
            if may_approve(grants, stakes):
                found.append(person)
        if found:
            return found
    return []


def same_person_name(typed: str, on_roster: str | None) -> bool:
    """The typed name is the roster's, up to case, diacritics and spacing."""
    return bool(on_roster) and " ".join(fold(typed).split()) == " ".join(
        fold(on_roster or "").split()
    )


# --- throttling wrong tries ----------------------------------------------------------------------


async def locked_until(
    session: AsyncSession, *, channel: str, user_ref: str, now: datetime
) -> datetime | None:
    row = await session.get(IdentityAttempt, (channel, user_ref))
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


async def record_failure(
    session: AsyncSession, *, channel: str, user_ref: str, now: datetime
) -> datetime | None:
    """Count one wrong (phone, name) pair; the lock it starts, if any. Numbers are not kept."""
    row = await session.get(IdentityAttempt, (channel, user_ref))
    if row is None:
        row = IdentityAttempt(channel=channel, user_ref=user_ref, failures=0, updated_at=now)
    idle = row.updated_at is not None and now - row.updated_at > FORGET_AFTER
    if idle and (row.locked_until is None or row.locked_until <= now):
        row.failures = 0
    row.failures += 1
    row.updated_at = now
    if row.failures >= FREE_TRIES:
        wait = min(MAX_WAIT, FIRST_WAIT * 2 ** (row.failures - FREE_TRIES))
        row.locked_until = now + wait
    session.add(row)
    return row.locked_until if row.failures >= FREE_TRIES else None
