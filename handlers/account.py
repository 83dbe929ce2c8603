"""A registered member's own things: menu, help, language, /me, /status, /privacy, /forget."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt
from bot.phones import display_phone
from bot.router import ANYONE, REGISTERED, Router
from handlers.membership import CONSENT_VERSION, apply_answers, menu_view
from handlers.registration import status_steps
from handlers.support_core import forget_tickets, release_claims
from storage import queries
from storage.models import (
    Application,
    ChannelAccount,
    ConsentRecord,
    Dialog,
    Member,
    MemberStatus,
    OutboxMessage,
    PendingChoices,
    Role,
    RoleGrant,
    Unit,
)

status_flow = dialogs.flow("status")
lang_flow = dialogs.flow("lang")
forget_flow = dialogs.flow("forget")


async def cmd_menu(ctx: Ctx, args: str) -> None:
    if not ctx.actor.registered:
        ctx.reply(ctx.t("common.not_registered"))
        return
    ctx.reply(menu_view(ctx))


async def cmd_help(ctx: Ctx, args: str) -> None:
    lines = [ctx.t("help.intro"), ctx.t("help.member")]
    if ctx.actor.holds(Role.secretary, Role.deputy):
        lines.append(ctx.t("help.secretary"))
    if ctx.actor.holds(Role.staff, Role.admin):
        lines.append(ctx.t("help.staff"))
    ctx.reply("\n\n".join(lines))


async def cmd_privacy(ctx: Ctx, args: str) -> None:
    ctx.reply(ctx.t("privacy.text", version=CONSENT_VERSION))


async def cmd_me(ctx: Ctx, args: str) -> None:
    member = ctx.actor.member
    assert member is not None
    cell = await ctx.session.get(Unit, member.cell_id) if member.cell_id else None
    roles = [f"{ctx.t(f'role.{g.role.value}')} — {u.name}" for g, u in ctx.actor.grants]
    accounts = await queries.accounts_of(ctx.session, member_id=member.id or 0)
    ctx.reply(
        ctx.t(
            "me.text",
            name=member.full_name or "—",
            phone=display_phone(member.phone) if member.phone else "—",
            cell=cell.path if cell else "—",
            roles=", ".join(roles) or "—",
            smartphone=_yes_no_unknown(ctx, member.has_smartphone),
            installed=_yes_no_unknown(ctx, member.app_installed),
            activated=_yes_no_unknown(ctx, member.app_activated),
            channels=", ".join(sorted({a.channel for a in accounts})) or "—",
            language=ctx.lang,
        )
    )


def _yes_no_unknown(ctx: Ctx, value: bool | None) -> str:
    return (
        ctx.t("common.unknown") if value is None else ctx.t("common.yes" if value else "common.no")
    )


# --- /status --------------------------------------------------------------------------------------


async def cmd_status(ctx: Ctx, args: str) -> None:
    await dialogs.start(ctx, "status", "q_smartphone", {"lang": ctx.lang})


async def finish_status(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    member = ctx.actor.member
    if member is None:
        return None
    apply_answers(member, s.get("answers", {}), ctx.now)
    ctx.session.add(member)
    ctx.reply(
        ctx.t(
            "status.saved",
            smartphone=_yes_no_unknown(ctx, member.has_smartphone),
            installed=_yes_no_unknown(ctx, member.app_installed),
            activated=_yes_no_unknown(ctx, member.app_activated),
        )
    )
    return None


status_steps(status_flow, finish_status)


# --- /lang ----------------------------------------------------------------------------------------


async def cmd_lang(ctx: Ctx, args: str) -> None:
    await dialogs.start(ctx, "lang", "choose")


@lang_flow.ask("choose")
async def ask_language(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(ctx.t("lang.ask"), [Option("vi", "Tiếng Việt"), Option("en", "English")])


@lang_flow.answer("choose")
async def on_language(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    ctx.lang = a.value or ctx.lang
    if ctx.actor.account is not None:
        ctx.actor.account.language = ctx.lang
        ctx.session.add(ctx.actor.account)
    if ctx.actor.member is not None:
        ctx.actor.member.language = ctx.lang
        ctx.session.add(ctx.actor.member)
    ctx.reply(ctx.t("lang.saved"))
    return None


# --- /forget --------------------------------------------------------------------------------------


async def cmd_forget(ctx: Ctx, args: str) -> None:
    await dialogs.start(ctx, "forget", "confirm", {"lang": ctx.lang})


@forget_flow.ask("confirm")
async def ask_forget(ctx: Ctx, s: dict[str, Any]) -> Prompt:
    return Prompt(
        ctx.t("forget.confirm"),
        [Option("yes", ctx.t("forget.yes")), Option("no", ctx.t("forget.no"))],
    )


@forget_flow.answer("confirm")
async def on_forget(ctx: Ctx, s: dict[str, Any], a: Answer) -> Next:
    if a.value != "yes":
        ctx.reply(ctx.t("forget.kept"))
        return None
    member = ctx.actor.member
    if member is not None:
        await forget_member(ctx, member)
    ctx.reply(View(ctx.t("forget.done"), remove_keyboard=True))
    return None


async def forget_member(ctx: Ctx, member: Member) -> None:
    """Erase what identifies the member; keep only the anonymous status counts."""
    stmt = select(ChannelAccount).where(ChannelAccount.member_id == member.id)
    accounts = list((await ctx.session.exec(stmt)).all())
    for account in accounts:
        await ctx.session.exec(
            delete(OutboxMessage).where(
                OutboxMessage.channel == account.channel, OutboxMessage.chat_ref == account.chat_ref
            )
        )
        await ctx.session.exec(
            delete(Dialog).where(
                Dialog.channel == account.channel, Dialog.user_ref == account.user_ref
            )
        )
        await ctx.session.exec(
            delete(Application).where(
                Application.channel == account.channel, Application.user_ref == account.user_ref
            )
        )
        await ctx.session.exec(
            delete(PendingChoices).where(
                PendingChoices.channel == account.channel,
                PendingChoices.chat_ref == account.chat_ref,
            )
        )
    await ctx.session.exec(delete(OutboxMessage).where(col(OutboxMessage.member_id) == member.id))
    await ctx.session.exec(delete(ChannelAccount).where(col(ChannelAccount.member_id) == member.id))
    await ctx.session.exec(delete(RoleGrant).where(col(RoleGrant.member_id) == member.id))
    await release_claims(ctx, member.id or 0)  # staff who leave: their tickets go back to the queue
    await forget_tickets(ctx.session, member.id or 0)  # what they wrote in tickets
    await ctx.session.exec(delete(ConsentRecord).where(col(ConsentRecord.member_id) == member.id))
    ctx.session.add(
        ConsentRecord(
            member_id=None,
            action="withdrawn",
            text_version=CONSENT_VERSION,
            channel=ctx.event.channel,
            at=ctx.now,
        )
    )
    member.full_name = member.phone = member.member_code = member.language = None
    member.status = MemberStatus.forgotten
    ctx.session.add(member)
    ctx.actor.account = ctx.actor.member = None
    ctx.actor.grants = []


def setup(router: Router) -> None:
    router.command("help", requires=ANYONE)(cmd_help)
    router.command("menu", requires=REGISTERED)(cmd_menu)
    router.command("privacy", requires=ANYONE)(cmd_privacy)
    router.command("me", requires=REGISTERED)(cmd_me)
    router.command("status", requires=REGISTERED)(cmd_status)
    router.command("lang", requires=ANYONE)(cmd_lang)
    router.command("forget", requires=REGISTERED)(cmd_forget)
