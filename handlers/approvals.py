"""Secretaries (or the staff above a cell without one) approve or reject registrations.

The button only names the application; who may decide is checked here against the actor's
roles and the application's cell, so a forged or forwarded button achieves nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.router import Router
from handlers.membership import APPROVER_ROLES, apply_answers, approval_request, record_consent
from storage import queries
from storage.models import (
    Application,
    ApplicationKind,
    ApplicationStatus,
    ChannelAccount,
    Member,
    Unit,
)


async def on_approval(ctx: Ctx, args: list[str]) -> None:
    if len(args) != 2 or not args[0].isdigit() or args[1] not in ("y", "n"):
        ctx.reply(ctx.t("common.stale_button"))
        return
    application = await ctx.session.get(Application, int(args[0]))
    cell = await ctx.session.get(Unit, application.cell_id) if application else None
    if application is None or cell is None or not ctx.actor.can_act_on(cell, *APPROVER_ROLES):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if not await _decide(ctx, application, approved=args[1] == "y"):
        ctx.reply(ctx.t("appr.already_decided"))
        return
    if args[1] == "y":
        await _admit(ctx, application)
    else:
        await _refuse(ctx, application)


async def _decide(ctx: Ctx, application: Application, *, approved: bool) -> bool:
    """Flip pending → decided once; a second tap (or a second secretary) finds it decided."""
    status = ApplicationStatus.approved if approved else ApplicationStatus.rejected
    result = await ctx.session.exec(
        update(Application)
        .where(
            col(Application.id) == application.id, Application.status == ApplicationStatus.pending
        )
        .values(status=status, decided_at=ctx.now, decided_by=ctx.actor.member.id)  # type: ignore[union-attr]
    )
    return result.rowcount == 1


async def _admit(ctx: Ctx, application: Application) -> None:
    if application.kind == ApplicationKind.join:
        member = Member(
            full_name=application.full_name,
            phone=application.phone,
            cell_id=application.cell_id,
            source="application",
            created_at=ctx.now,
        )
        ctx.session.add(member)
        await ctx.session.flush()
    else:
        member = await ctx.session.get(Member, application.member_id)
        if member is None:
            ctx.reply(ctx.t("appr.already_decided"))
            return
    account = await queries.account_for(
        ctx.session, channel=application.channel, user_ref=application.user_ref
    )
    if account is None:
        account = ChannelAccount(
            channel=application.channel,
            user_ref=application.user_ref,
            chat_ref=application.chat_ref,
            member_id=member.id or 0,
            created_at=ctx.now,
        )
    account.member_id, account.pending, account.verified = member.id or 0, False, True
    account.language = application.language
    member.language = application.language
    member.registered_at = ctx.now
    apply_answers(member, application.answers, ctx.now)
    consent_at = application.answers.get("consent_at")
    record_consent(
        ctx,
        member,
        action="given",
        at=datetime.fromisoformat(consent_at) if consent_at else ctx.now,
        channel=application.channel,
    )
    ctx.session.add_all([account, member])
    lang = application.language
    ctx.send_to_chat(
        application.channel,
        application.chat_ref,
        View(
            t(lang, "appr.you_are_approved", name=member.full_name or ""),
            [[ctx.button(t(lang, "menu.title_short"), "a:cmd:menu")]],
        ),
    )
    ctx.reply(ctx.t("appr.done_approved", name=member.full_name or ""))


async def _refuse(ctx: Ctx, application: Application) -> None:
    if application.kind == ApplicationKind.verify:
        account = await queries.account_for(
            ctx.session, channel=application.channel, user_ref=application.user_ref
        )
        if account is not None and account.pending:
            await ctx.session.delete(account)
    name = application.full_name or ""
    application.full_name, application.phone, application.answers = None, None, {}
    ctx.session.add(application)
    ctx.send_to_chat(
        application.channel,
        application.chat_ref,
        View(t(application.language, "appr.you_are_rejected")),
    )
    ctx.reply(ctx.t("appr.done_rejected", name=name))


async def pending_for(ctx: Ctx) -> list[Application]:
    """Pending applications in the cells this actor may decide on."""
    scopes = ctx.actor.scopes(*APPROVER_ROLES)
    if not scopes:
        return []
    stmt = (
        select(Application, Unit)
        .join(Unit, col(Unit.id) == Application.cell_id)
        .where(Application.status == ApplicationStatus.pending)
        .order_by(col(Application.id))
    )
    rows = (await ctx.session.exec(stmt)).all()
    return [a for a, unit in rows if any(queries.within(unit.path, s.path) for s in scopes)]


async def cmd_approvals(ctx: Ctx, args: str) -> None:
    applications = await pending_for(ctx)
    if not applications:
        ctx.reply(ctx.t("appr.none_pending"))
        return
    for application in applications[:20]:
        cell = await ctx.session.get(Unit, application.cell_id)
        if cell is not None:
            ctx.reply(approval_request(ctx, ctx.lang, application, cell))


def setup(router: Router) -> None:
    router.action("appr", requires=APPROVER_ROLES)(on_approval)
    router.command("approvals", requires=APPROVER_ROLES)(cmd_approvals)
