"""Free-form notices (/notice): a secretary to the cell, staff to the units they serve, admins to
their subtree; to all members or to secretaries only. Preview, then a confirmation that shows the
recipient count, then one progress message and a delivery report.
"""

from __future__ import annotations

from sqlmodel import col, select

from bot import dialogs
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from bot.router import Router
from handlers import unitpicker
from handlers.broadcast import send_broadcast
from handlers.unitpicker import PickerState
from storage.ids import id_of
from storage.models import Member, MemberStatus, Role, RoleGrant, Unit
from storage.queries import in_subtree

SECRETARIES = (Role.secretary, Role.deputy)
SENDERS = (Role.secretary, Role.deputy, Role.staff, Role.admin)
WIDE = (Role.staff, Role.admin)
TEXT_MAX = 3500


class NoticeState(PickerState, total=False):
    lang: str
    unit_id: int  # the unit whose members (or secretaries) receive it
    audience: str  # "members" or "secretaries"
    text: str


notice_flow: dialogs.Flow[NoticeState] = dialogs.flow("notice")


async def recipients(ctx: Ctx, unit: Unit, audience: str) -> list[Member]:
    inside = in_subtree(Unit.path, unit.path)
    if audience == "secretaries":
        stmt = (
            select(Member)
            .join(RoleGrant, col(RoleGrant.member_id) == Member.id)
            .join(Unit, col(Unit.id) == RoleGrant.unit_id)
            .where(col(RoleGrant.role).in_(list(SECRETARIES)))
        )
    else:
        stmt = select(Member).join(Unit, col(Unit.id) == Member.cell_id)
    stmt = stmt.where(inside, Member.status == MemberStatus.active).distinct()
    return list((await ctx.session.exec(stmt)).all())


def may_send(ctx: Ctx, unit: Unit, audience: str) -> bool:
    if ctx.actor.can_act_on(unit, *WIDE):
        return True
    return audience == "members" and any(c.id == unit.id for c in ctx.actor.scopes(*SECRETARIES))


async def cmd_notice(ctx: Ctx, args: str) -> None:
    wide = ctx.actor.scopes(*WIDE)
    data: NoticeState = {"lang": ctx.lang}
    if wide:
        unitpicker.reset(data, root_id=wide[0].id, inner=True)
        await dialogs.start(ctx, notice_flow, "unit", data)
        return
    data["unit_id"], data["audience"] = id_of(ctx.actor.scopes(*SECRETARIES)[0]), "members"
    await dialogs.start(ctx, notice_flow, "text", data)


@notice_flow.ask("unit")
async def ask_unit(ctx: Ctx, s: NoticeState) -> Prompt:
    return await unitpicker.prompt(ctx, s, question_key="nt.ask.unit")


@notice_flow.answer("unit")
async def on_unit(ctx: Ctx, s: NoticeState, a: Answer) -> Next:
    picked = await unitpicker.answer(ctx, s, a)
    if isinstance(picked, unitpicker.Picked):
        s["unit_id"] = id_of(picked.unit)
        return "audience"
    return picked or "unit"


@notice_flow.ask("audience")
async def ask_audience(ctx: Ctx, s: NoticeState) -> Prompt:
    return Prompt(
        ctx.t("nt.ask.audience"),
        [
            Option("members", ctx.t("nt.audience.members")),
            Option("secretaries", ctx.t("nt.audience.secretaries")),
        ],
    )


@notice_flow.answer("audience")
async def on_audience(ctx: Ctx, s: NoticeState, a: Answer) -> Next:
    s["audience"] = a.value or ""  # the options name the audiences
    return "text"


@notice_flow.ask("text")
async def ask_text(ctx: Ctx, s: NoticeState) -> Prompt:
    return Prompt(ctx.t("nt.ask.text"), free_text=True)


@notice_flow.answer("text")
async def on_text(ctx: Ctx, s: NoticeState, a: Answer) -> Next:
    text = (a.text or "").strip()
    if not text:
        return Retry("nt.text.empty")
    if len(text) > TEXT_MAX:
        return Retry("nt.text.too_long", {"max": TEXT_MAX, "length": len(text)})
    s["text"] = text
    return "preview"


def render_notice(lang: str, sender: str, unit: Unit, text: str) -> View:
    return View(t(lang, "nt.notice", sender=sender, unit=unit.name, text=text))


@notice_flow.ask("preview")
async def ask_preview(ctx: Ctx, s: NoticeState) -> Prompt:
    unit = await ctx.session.get(Unit, s["unit_id"])
    count = len(await recipients(ctx, unit, s["audience"]))  # type: ignore[arg-type]
    sender = ctx.actor.member.full_name if ctx.actor.member else ""
    body = render_notice(ctx.lang, sender or "", unit, s["text"]).text  # type: ignore[arg-type]
    return Prompt(
        ctx.t("nt.preview", n=count) + "\n\n" + body,
        [Option("send", ctx.t("nt.send", n=count)), Option("drop", ctx.t("mt.confirm.drop"))],
    )


@notice_flow.answer("preview")
async def on_preview(ctx: Ctx, s: NoticeState, a: Answer) -> Next:
    if a.value != "send":
        ctx.reply(ctx.t("mt.dropped"))
        return None
    unit = await ctx.session.get(Unit, s["unit_id"])
    if unit is None or not may_send(ctx, unit, s["audience"]):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    members = await recipients(ctx, unit, s["audience"])
    sender = (ctx.actor.member.full_name if ctx.actor.member else "") or ""
    queued = await send_broadcast(
        ctx,
        kind="notice",
        members=members,
        unit_id=unit.id,
        audience=s["audience"],
        report=True,
        render=lambda lang, _m: render_notice(lang, sender, unit, s["text"]),
    )
    if not queued.accounts:
        ctx.reply(ctx.t("nt.nobody", unreachable=queued.unreachable))
    return None


def setup(router: Router) -> None:
    router.command("notice", requires=SENDERS)(cmd_notice)
