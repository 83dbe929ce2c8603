"""Shared steps of becoming a member: linking an account, consent, approvals.

Used by self-registration, by secretaries approving applicants, and by /addmember, so that the
same rules (consent logged with its time, one account per messenger user) hold everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from bot.callbacks import Callback, OpenCommand
from bot.context import Ctx
from bot.core import View
from bot.i18n import t
from bot.phones import display_phone
from handlers.identity import Stake
from storage import queries
from storage.ids import id_of
from storage.models import (
    Application,
    ApplicationKind,
    ChannelAccount,
    ConsentRecord,
    Member,
    Role,
    Unit,
)

CONSENT_VERSION = "2026-11"
APPROVER_ROLES = (Role.secretary, Role.deputy, Role.staff, Role.admin)


class Verdict(StrEnum):
    approve = "y"
    reject = "n"


@dataclass(frozen=True)
class Decision(Callback):
    """An approver's answer to an application: ``a:appr:<application>:y|n`` (handlers/approvals)."""

    action: ClassVar[str] = "appr"
    application_id: int
    verdict: Verdict


def apply_answers(member: Member, answers: Mapping[str, Any], now: datetime) -> None:
    """Copy the smartphone / install / activation answers onto the member.

    "No smartphone" records just that: the member leaves the target (installed / smartphone)
    and the install questions were not asked, so their answers are unknown (None), not "no".
    The handbook system's imported statuses (``hb_*``) are not touched and still count first.
    """
    if "smartphone" not in answers:
        return
    member.has_smartphone = answers["smartphone"]
    member.smartphone_source = "member"
    member.status_updated_at = now
    if not answers["smartphone"]:
        member.app_installed = member.app_activated = None
        return
    member.app_installed = answers.get("installed", False)
    member.app_activated = answers.get("activated", False) if member.app_installed else False


async def link_account(
    ctx: Ctx,
    member: Member,
    *,
    channel: str,
    user_ref: str,
    chat_ref: str,
    language: str,
    verified: bool,
) -> tuple[ChannelAccount, int]:
    """Attach a messenger identity to a member, replacing an older link of that identity.

    Returns the account and how many *other* accounts of the member on the same channel were
    told about it: a member who suddenly has a second Telegram or Zalo account should know,
    in case it is not them.
    """
    account = await queries.account_for(ctx.session, channel=channel, user_ref=user_ref)
    if account is None:
        account = ChannelAccount(
            channel=channel,
            user_ref=user_ref,
            chat_ref=chat_ref,
            member_id=member.id or 0,
            created_at=ctx.now,
        )
    account.member_id = member.id or 0
    account.chat_ref = chat_ref
    account.language = language
    account.verified = verified
    account.pending = False
    account.reachable = True
    member.language = language
    ctx.session.add(account)
    ctx.session.add(member)
    told = 0
    for other in await queries.accounts_of(ctx.session, member_id=member.id or 0):
        if other.channel == channel and other.user_ref != user_ref:
            lang = other.language or language
            ctx.send_to_chat(other.channel, other.chat_ref, View(t(lang, "identity.relinked")))
            told += 1
    return account, told


def record_consent(
    ctx: Ctx, member: Member, *, action: str, at: datetime, channel: str | None
) -> None:
    ctx.session.add(
        ConsentRecord(
            member_id=member.id, action=action, text_version=CONSENT_VERSION, channel=channel, at=at
        )
    )


async def approvers_for(ctx: Ctx, cell: Unit) -> list[Member]:
    """Who decides on a registration in ``cell``: its secretaries, else the nearest staff above."""
    found = list(
        await queries.holders(
            ctx.session, unit_id=cell.id or 0, roles=(Role.secretary, Role.deputy)
        )
    )
    if found:
        return found
    for roles in ((Role.staff,), (Role.admin,)):
        for unit in await queries.ancestors(ctx.session, unit=cell):
            found = list(await queries.holders(ctx.session, unit_id=unit.id or 0, roles=roles))
            if found:
                return found
    return []


def menu_view(ctx: Ctx, lang: str | None = None, *, intro: str | None = None) -> View:
    """The main menu: what the member can do next, as buttons."""
    lang = lang or ctx.lang
    items = [
        ("support", "menu.support"),
        ("status", "menu.status"),
        ("me", "menu.me"),
        ("lang", "menu.lang"),
        ("privacy", "menu.privacy"),
        ("help", "menu.help"),
    ]
    if ctx.actor.holds(Role.secretary, Role.deputy):
        items[1:1] = [("addmember", "menu.addmember")]
    if ctx.actor.holds(Role.secretary, Role.deputy, Role.admin):
        items.insert(-1, ("invite", "menu.invite"))
    if ctx.actor.holds(Role.secretary, Role.deputy):
        items.insert(0, ("meeting", "menu.meeting"))
        items.insert(-1, ("needhelp", "menu.needhelp"))
    if ctx.actor.member is not None and ctx.actor.member.cell_id is not None:
        items.insert(0, ("meetings", "menu.meetings"))
    if ctx.actor.holds(Role.secretary, Role.deputy, Role.staff, Role.admin):
        items.insert(-1, ("notice", "menu.notice"))
        items.insert(-1, ("report", "menu.report"))
        items.insert(-1, ("queue", "menu.queue"))
        items.insert(-1, ("approvals", "menu.approvals"))
    if ctx.actor.holds(Role.staff, Role.admin):
        items.insert(-1, ("venues", "menu.venues"))
    items[-1:-1] = [("training", "menu.training"), ("feedback", "menu.feedback")]
    buttons = [ctx.button(t(lang, key), OpenCommand(name)) for name, key in items]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return View(text=intro or t(lang, "menu.title"), choices=rows)


def unit_label(unit: Unit) -> str:
    """A unit's name with its parent's, so two cells both called "Chi bộ cơ quan xã" differ."""
    parts = unit.path.split(queries.PATH_SEP)
    return f"{unit.name} — {parts[-2]}" if len(parts) > 1 else unit.name


def stakes_text(lang: str, stakes: Sequence[Stake]) -> str:
    roles = [
        f"{t(lang, f'role.{s.role.value}')} — {s.unit_path.split(queries.PATH_SEP)[-1]}"
        for s in stakes
        if s.role != Role.member
    ]
    return ", ".join(roles) or t(lang, "appr.plain_member")


def approval_request(
    ctx: Ctx, lang: str, application: Application, unit: Unit, stakes: Sequence[Stake]
) -> View:
    """What an approver sees: who, which number, and every role that approving would hand over."""
    key = "appr.request.join" if application.kind == ApplicationKind.join else "appr.request.verify"
    text = t(
        lang,
        key,
        name=application.full_name or "?",
        cell=unit_label(unit),
        phone=display_phone(application.phone) if application.phone else "—",
        roles=stakes_text(lang, stakes),
    )
    buttons = [
        ctx.button(t(lang, "appr.approve"), Decision(id_of(application), Verdict.approve)),
        ctx.button(t(lang, "appr.reject"), Decision(id_of(application), Verdict.reject)),
    ]
    return View(text, [buttons])
