"""Approving registrations: a join request (someone not in the roster) or a typed phone number
that matched a roster member.

The button only names the application; who may decide is checked here, at the moment of the
decision, against the identity rule (handlers/identity.py): a join, by those serving the cell;
a typed number, by someone with authority over every role the matched member holds *now* —
never the member themselves. A forged or forwarded button achieves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from bot.callbacks import OpenCommand
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.router import Router
from handlers import identity
from handlers.identity import Stake
from handlers.membership import (
    APPROVER_ROLES,
    Decision,
    Verdict,
    apply_answers,
    approval_request,
    link_account,
    record_consent,
)
from handlers.registration import redeem_for_member, valid_invite
from storage.models import (
    Application,
    ApplicationKind,
    ApplicationStatus,
    Member,
    Unit,
)


async def on_approval(ctx: Ctx, press: Decision) -> None:
    application = await ctx.session.get(Application, press.application_id)
    if application is None or await stakes_if_allowed(ctx, application) is None:
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if not await _decide(ctx, application, approved=press.verdict == Verdict.approve):
        ctx.reply(ctx.t("appr.already_decided"))
        return
    await VERDICTS[press.verdict](ctx, application)


async def stakes_if_allowed(ctx: Ctx, application: Application) -> list[Stake] | None:
    """What deciding would hand over, or None when this actor may not decide."""
    unit = await ctx.session.get(Unit, application.cell_id)
    if unit is None or ctx.actor.member is None:
        return None
    if application.kind == ApplicationKind.join:
        return [] if ctx.actor.can_act_on(unit, *APPROVER_ROLES) else None
    member = await ctx.session.get(Member, application.member_id)
    if member is None or member.id == ctx.actor.member.id:
        return None
    stakes = await identity.stakes_of(ctx.session, member)
    mine = identity.grants_as_pairs(ctx.actor.grants)
    return stakes if identity.may_approve(mine, stakes) else None


async def _decide(ctx: Ctx, application: Application, *, approved: bool) -> bool:
    """Flip pending → decided once; a second tap (or a second secretary) finds it decided."""
    status = ApplicationStatus.approved if approved else ApplicationStatus.rejected
    result = await ctx.session.exec(
        update(Application)
        .where(
            col(Application.id) == application.id,
            col(Application.status) == ApplicationStatus.pending,
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
        found = await ctx.session.get(Member, application.member_id)
        if found is None:
            ctx.reply(ctx.t("appr.already_decided"))
            return
        member = found
    _, told = await link_account(
        ctx,
        member,
        channel=application.channel,
        user_ref=application.user_ref,
        chat_ref=application.chat_ref,
        language=application.language,
        verified=True,  # vouched for by someone with authority over all the member holds
    )
    member.registered_at = member.registered_at or ctx.now
    apply_answers(member, application.answers, ctx.now)
    consent_at = application.answers.get("consent_at")
    record_consent(
        ctx,
        member,
        action="given",
        at=datetime.fromisoformat(consent_at) if consent_at else ctx.now,
        channel=application.channel,
    )
    ctx.session.add(member)
    await ctx.session.flush()
    lang = application.language
    ctx.send_to_chat(
        application.channel,
        application.chat_ref,
        View(
            t(lang, "appr.you_are_approved", name=member.full_name or ""),
            [[ctx.button(t(lang, "menu.title_short"), OpenCommand("menu"))]],
        ),
    )
    invite = await valid_invite(ctx, application.answers.get("invite"))
    if invite is not None:  # the invite's role, now that the person is who they said
        chat = (application.channel, application.chat_ref, application.language)
        await redeem_for_member(ctx, invite, member, chat=chat)
    ctx.reply(ctx.t("appr.done_approved", name=member.full_name or ""))
    if told:
        ctx.reply(ctx.t("appr.older_account_told", n=told))


async def _refuse(ctx: Ctx, application: Application) -> None:
    name = application.full_name or ""
    application.full_name, application.phone, application.answers = None, None, {}
    ctx.session.add(application)
    ctx.send_to_chat(
        application.channel,
        application.chat_ref,
        View(t(application.language, "appr.you_are_rejected")),
    )
    ctx.reply(ctx.t("appr.done_rejected", name=name))


VERDICTS: dict[Verdict, Callable[[Ctx, Application], Awaitable[None]]] = {
    Verdict.approve: _admit,
    Verdict.reject: _refuse,
}


async def pending_for(ctx: Ctx) -> list[tuple[Application, Unit, list[Stake]]]:
    """Pending applications this actor may decide on now, with what each would hand over."""
    if not ctx.actor.scopes(*APPROVER_ROLES):
        return []
    stmt = (
        select(Application, Unit)
        .join(Unit, col(Unit.id) == Application.cell_id)
        .where(Application.status == ApplicationStatus.pending)
        .order_by(col(Application.id))
        .limit(500)
    )
    found = []
    for application, unit in (await ctx.session.exec(stmt)).all():
        stakes = await stakes_if_allowed(ctx, application)
        if stakes is not None:
            found.append((application, unit, stakes))
    return found


async def cmd_approvals(ctx: Ctx, args: str) -> None:
    applications = await pending_for(ctx)
    if not applications:
        ctx.reply(ctx.t("appr.none_pending"))
        return
    for application, unit, stakes in applications[:20]:
        ctx.reply(approval_request(ctx, ctx.lang, application, unit, stakes))


def setup(router: Router) -> None:
    router.callback(Decision, requires=APPROVER_ROLES)(on_approval)
    router.command("approvals", requires=APPROVER_ROLES)(cmd_approvals)
