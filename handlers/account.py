"""A registered member's own things: menu, help, language, /me, /status, /privacy, /forget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypedDict

from bot import dialogs
from bot.callbacks import Callback
from bot.context import Actor, Ctx
from bot.core import Choice, Upload, View
from bot.dialogs import Answer, Next, Option, Prompt
from bot.i18n import catalog
from bot.phones import display_phone
from bot.router import ANYONE, REGISTERED, Router
from handlers import privacy
from handlers.membership import CONSENT_VERSION, apply_answers, menu_view
from handlers.registration import StatusState, status_flow, status_steps, tell_unregistered


class LangState(TypedDict, total=False):
    """/lang keeps nothing: the chosen language is saved on the account at once."""


class ForgetState(TypedDict, total=False):
    lang: str


lang_flow: dialogs.Flow[LangState] = dialogs.flow("lang")
forget_flow: dialogs.Flow[ForgetState] = dialogs.flow("forget")


async def cmd_menu(ctx: Ctx, args: str) -> None:
    if not ctx.actor.registered:
        await tell_unregistered(ctx)
        return
    ctx.reply(menu_view(ctx))


async def cmd_help(ctx: Ctx, args: str) -> None:
    """Every command this person may use (their roles' too), from the features' registrations."""
    everyone = set(ctx.services.commands_for(Actor()))
    members = set(ctx.services.commands_for(_plain_member(ctx.actor)))
    mine = ctx.services.commands_for(ctx.actor)
    sections = [ctx.t("help.intro"), _command_lines(ctx, [c for c in mine if c in members])]
    by_role = [c for c in mine if c not in members and c not in everyone]
    if by_role:
        sections.append(ctx.t("help.by_role") + "\n" + _command_lines(ctx, by_role))
    if not ctx.actor.registered:
        sections.append(ctx.t("help.register"))
    ctx.reply("\n\n".join(sections))


def _plain_member(actor: Actor) -> Actor:
    """The same person without any role: what every member may do."""
    return Actor(account=actor.account, member=actor.member)


def _command_lines(ctx: Ctx, names: list[str]) -> str:
    return "\n".join(f"/{name} – {ctx.t(f'cmd.{name}')}" for name in names)


async def cmd_privacy(ctx: Ctx, args: str) -> None:
    days = ctx.settings.outbox_retention.days
    ctx.reply(ctx.t("privacy.text", version=CONSENT_VERSION, retention=days))


async def cmd_me(ctx: Ctx, args: str) -> None:
    """Everything stored about the member, in words; the same as a JSON file where possible."""
    member = ctx.actor.member
    if member is None or not ctx.actor.registered:
        await tell_unregistered(ctx)
        return
    data = await privacy.stored_about(ctx.session, member)
    ctx.reply(View(me_text(ctx, data), me_buttons(ctx)))


def me_text(ctx: Ctx, data: dict[str, Any]) -> str:
    person = data["member"]
    roles = [ctx.t("role." + r["role"]) + " — " + r["unit"] for r in data["roles"]]
    replies = [
        ctx.t(
            "me.reply_line",
            when=_local(ctx, r["meeting"]),
            answer=ctx.t(f"me.answer.{r['answer']}"),
            reason=r["reason"] or "—",
        )
        for r in data["meeting_replies"][-5:]
    ]
    present = sum(1 for a in data["attendance"] if a["present"])
    tickets = [
        ctx.t("me.ticket_line", id=tk["id"], status=ctx.t(f"sup.status.{tk['status']}"))
        for tk in data["tickets"][-5:]
    ]
    consent = data["consent"][-1] if data["consent"] else None
    handbook = person["handbook_system"]
    system = (
        "\n"
        + ctx.t(
            "rd.me.system",
            installed=_yes_no_unknown(ctx, handbook["installed"]),
            activated=_yes_no_unknown(ctx, handbook["activated"]),
        )
        if handbook["installed"] is not None or handbook["activated"] is not None
        else ""
    )
    text = ctx.t(
        "me.text",
        name=person["full_name"] or "—",
        phone=display_phone(person["phone"]) if person["phone"] else "—",
        cell=person["cell"] or "—",
        roles=", ".join(roles) or ctx.t("me.no_role"),
        smartphone=_yes_no_unknown(ctx, person["has_smartphone"]),
        installed=_yes_no_unknown(ctx, person["app_installed"]),
        activated=_yes_no_unknown(ctx, person["app_activated"]),
        channels=", ".join(sorted({channel_name(ctx, a["channel"]) for a in data["accounts"]}))
        or "—",
        language=ctx.t(f"me.language.{ctx.lang}"),
        replies="\n".join(replies) or "—",
        attendance=ctx.t("me.attendance", present=present, total=len(data["attendance"])),
        tickets="\n".join(tickets) or "—",
        questions=len(data["faq_questions"]),
        consent=ctx.t("me.consent", at=_local(ctx, consent["at"]), version=consent["version"])
        if consent
        else "—",
    )
    return text + system


def channel_name(ctx: Ctx, channel: str) -> str:
    """A messenger as a person names it ("Zalo", "máy tính"), not its internal name."""
    key = f"me.channel.{channel}"
    return ctx.t(key) if key in catalog(ctx.lang) else channel.capitalize()


def me_buttons(ctx: Ctx) -> list[list[Choice]]:
    if not ctx.can_upload:
        return []
    return [[ctx.button(ctx.t("me.download"), MyData(DataFormat.json))]]


def _local(ctx: Ctx, iso: str | None) -> str:
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(ctx.settings.tz).strftime("%H:%M %d/%m/%Y")


class DataFormat(StrEnum):
    json = "json"


@dataclass(frozen=True)
class MyData(Callback):
    """ "Download my data" under /me: ``a:me:json``."""

    action: ClassVar[str] = "me"
    format: DataFormat


async def on_me_action(ctx: Ctx, press: MyData) -> None:
    """The /me data as a JSON file (channels that can carry files)."""
    member = ctx.actor.member
    if member is None or not ctx.can_upload:
        ctx.reply(ctx.t("common.stale_button"))
        return
    data = await privacy.stored_about(ctx.session, member)
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    upload = Upload("du-lieu-cua-toi.json", "document", body)
    ctx.reply(View(ctx.t("me.file_caption"), upload=upload))


def _yes_no_unknown(ctx: Ctx, value: bool | None) -> str:
    return (
        ctx.t("common.unknown") if value is None else ctx.t("common.yes" if value else "common.no")
    )


# --- /status --------------------------------------------------------------------------------------


async def cmd_status(ctx: Ctx, args: str) -> None:
    state: StatusState = {"lang": ctx.lang}
    await dialogs.start(ctx, status_flow, "q_smartphone", state)


async def finish_status(ctx: Ctx, s: StatusState, a: Answer) -> Next:
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
    await dialogs.start(ctx, lang_flow, "choose")


@lang_flow.ask("choose")
async def ask_language(ctx: Ctx, s: LangState) -> Prompt:
    return Prompt(ctx.t("lang.ask"), [Option("vi", "Tiếng Việt"), Option("en", "English")])


@lang_flow.answer("choose")
async def on_language(ctx: Ctx, s: LangState, a: Answer) -> Next:
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
    state: ForgetState = {"lang": ctx.lang}
    await dialogs.start(ctx, forget_flow, "confirm", state)


@forget_flow.ask("confirm")
async def ask_forget(ctx: Ctx, s: ForgetState) -> Prompt:
    return Prompt(
        ctx.t("forget.confirm"),
        [Option("yes", ctx.t("forget.yes")), Option("no", ctx.t("forget.no"))],
    )


@forget_flow.answer("confirm")
async def on_forget(ctx: Ctx, s: ForgetState, a: Answer) -> Next:
    if a.value != "yes":
        ctx.reply(ctx.t("forget.kept"))
        return None
    member = ctx.actor.member
    if member is None:
        return None
    receipt = await privacy.forget_member(ctx, member)
    lines = [ctx.t("forget.done")]
    if receipt.tickets_withdrawn:
        lines.append(ctx.t("forget.tickets_withdrawn", n=receipt.tickets_withdrawn))
    if receipt.not_recallable:
        lines.append(ctx.t("forget.not_recallable", n=receipt.not_recallable))
    ctx.reply(View("\n".join(lines), remove_keyboard=True, last_word=True))
    return None


def setup(router: Router) -> None:
    router.command("help", requires=ANYONE)(cmd_help)
    router.command("menu", requires=ANYONE)(cmd_menu)
    router.command("privacy", requires=ANYONE)(cmd_privacy)
    router.command("me", requires=ANYONE)(cmd_me)
    router.command("status", requires=REGISTERED)(cmd_status)
    router.command("lang", requires=ANYONE)(cmd_lang)
    router.command("forget", requires=REGISTERED)(cmd_forget)
    router.callback(MyData, requires=REGISTERED)(on_me_action)
