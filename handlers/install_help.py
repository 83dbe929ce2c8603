"""The secretaries' list of members who asked them for help with the handbook (issue 17).

A member who has not installed (or not logged in) may choose "ask my cell secretary": the
secretaries get a message at once, and the request is kept here so that /needhelp (also in
their /menu) lists who is still waiting, days later. The list is computed on the server for the
cells the person is secretary or deputy of at that moment; a member leaves it once they have
logged in, or moved to another cell, or asked to be forgotten.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import Ctx
from bot.router import Router
from handlers import privacy
from storage import queries
from storage.forgive_models import InstallHelp
from storage.models import Member, MemberStatus, Role, Unit

SECRETARIES = (Role.secretary, Role.deputy)
LISTED = 50  # a cell is small; the list stays readable on a phone


async def record(ctx: Ctx, member: Member, need: str) -> None:
    """Keep the member's latest request (the member chose to ask: that is their consent)."""
    if member.id is None or member.cell_id is None:
        return
    row = await ctx.session.get(InstallHelp, member.id)
    if row is None:
        row = InstallHelp(member_id=member.id, cell_id=member.cell_id, need=need)
    row.cell_id, row.need, row.asked_at = member.cell_id, need, ctx.now
    ctx.session.add(row)


async def waiting(ctx: Ctx) -> list[tuple[InstallHelp, Member, Unit]]:
    """Requests in the actor's cells (their secretary or deputy grants, checked now) from members
    who are still in that cell and have not logged in yet, oldest first."""
    scopes = ctx.actor.scopes(*SECRETARIES)
    if not scopes:
        return []
    stmt = (
        select(InstallHelp, Member, Unit)
        .join(Member, col(Member.id) == InstallHelp.member_id)
        .join(Unit, col(Unit.id) == InstallHelp.cell_id)
        .where(
            or_(*(queries.in_subtree(Unit.path, scope.path) for scope in scopes)),
            col(Member.cell_id) == InstallHelp.cell_id,
            Member.status == MemberStatus.active,
            or_(col(Member.app_activated).is_(None), col(Member.app_activated).is_(False)),
        )
        .order_by(col(InstallHelp.asked_at))
        .limit(LISTED)
    )
    return list((await ctx.session.exec(stmt)).all())


async def cmd_needhelp(ctx: Ctx, args: str) -> None:
    rows = await waiting(ctx)
    if not rows:
        ctx.reply(ctx.t("needhelp.none"))
        return
    lines = [ctx.t("needhelp.title", n=len(rows))]
    for request, member, cell in rows:
        asked = request.asked_at.astimezone(ctx.settings.tz) if request.asked_at else None
        lines.append(
            ctx.t(
                f"needhelp.line.{request.need}",
                name=member.full_name or "—",
                cell=cell.name,
                when=asked.strftime("%H:%M %d/%m") if asked else "—",
            )
        )
    lines.append(ctx.t("needhelp.footer"))
    ctx.reply("\n".join(lines))


@privacy.forgets
async def forget_requests(session: AsyncSession, member_id: int) -> None:
    """/forget: the request names the member; it goes."""
    await session.exec(delete(InstallHelp).where(col(InstallHelp.member_id) == member_id))


@privacy.tells_about
async def requests_about(session: AsyncSession, member_id: int) -> dict[str, Any]:
    """/me's file: the member's request for help, if they made one."""
    row = await session.get(InstallHelp, member_id)
    if row is None:
        return {}
    asked = row.asked_at.isoformat() if row.asked_at else None
    return {"help_asked_of_secretary": {"need": row.need, "asked_at": asked}}


def setup(router: Router) -> None:
    router.command("needhelp", requires=SECRETARIES)(cmd_needhelp)
