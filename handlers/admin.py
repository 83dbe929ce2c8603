"""Secretaries and admins: invitations (/invite) and registering a member on their behalf
(/addmember), for members without a smartphone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs, invite_codes
from bot.context import Ctx
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.phones import PhoneError, display_phone, normalize_phone
from bot.router import Router
from handlers import unitpicker
from handlers.membership import record_consent
from handlers.registration import MAX_NAME, full_name, yes_no
from handlers.unitpicker import PickerState
from storage import queries
from storage.ids import id_of
from storage.models import Invite, Member, Role, Unit


class InviteState(PickerState, total=False):
    lang: str
    role: str  # a Role's value


class AddMemberState(TypedDict, total=False):
    lang: str
    cell_id: int
    full_name: str
    phone: str | None  # None: the member has no phone
    existing_id: int | None  # the roster member with that phone, in the same cell
    smartphone: bool


invite_flow: dialogs.Flow[InviteState] = dialogs.flow("invite")
add_flow: dialogs.Flow[AddMemberState] = dialogs.flow("addmember")

CELL_ROLES = (Role.member, Role.secretary, Role.deputy)
SECRETARIES = (Role.secretary, Role.deputy)
# Which roles may hand out an invite for each role (over the unit's subtree).
INVITERS: dict[Role, tuple[Role, ...]] = {
    Role.member: (Role.secretary, Role.deputy, Role.admin),
    Role.deputy: (Role.secretary, Role.admin),
    Role.secretary: (Role.admin,),
    Role.staff: (Role.admin,),
    Role.admin: (Role.admin,),
}


async def create_invite(
    session: AsyncSession,
    *,
    role: Role,
    unit: Unit,
    created_by: int | None,
    ttl: timedelta,
    now: datetime,
) -> Invite:
    invite = Invite(
        code=invite_codes.new_code(),
        role=role,
        unit_id=unit.id or 0,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.flush()
    return invite


def deep_link(bot_username: str | None, code: str) -> str | None:
    return f"https://t.me/{bot_username}?start={code}" if bot_username else None


# --- /invite --------------------------------------------------------------------------------------


async def cmd_invite(ctx: Ctx, args: str) -> None:
    state: InviteState = {"lang": ctx.lang}
    await dialogs.start(ctx, invite_flow, "role", state)


def _roles_actor_may_invite(ctx: Ctx) -> list[Role]:
    return [role for role, inviters in INVITERS.items() if ctx.actor.holds(*inviters)]


@invite_flow.ask("role")
async def ask_invite_role(ctx: Ctx, s: InviteState) -> Prompt:
    options = [Option(r.value, ctx.t(f"role.{r.value}")) for r in _roles_actor_may_invite(ctx)]
    return Prompt(ctx.t("invite.ask_role"), options)


@invite_flow.answer("role")
async def on_invite_role(ctx: Ctx, s: InviteState, a: Answer) -> Next:
    role = Role(a.value or "")  # the options are the roles; anything else is refused by Role
    if role not in _roles_actor_may_invite(ctx):
        return Retry("common.not_allowed")
    s["role"] = role.value
    scopes = ctx.actor.scopes(*INVITERS[role])
    unitpicker.reset(s, root_id=scopes[0].id, inner=role not in CELL_ROLES)
    if (
        role in CELL_ROLES
        and len(scopes) == 1
        and await queries.is_leaf(ctx.session, unit_id=scopes[0].id or 0)
    ):
        return await _issue(ctx, s, scopes[0])
    return "unit"


@invite_flow.ask("unit")
async def ask_invite_unit(ctx: Ctx, s: InviteState) -> Prompt:
    return await unitpicker.prompt(ctx, s, question_key="invite.ask_unit")


@invite_flow.answer("unit")
async def on_invite_unit(ctx: Ctx, s: InviteState, a: Answer) -> Next:
    picked = await unitpicker.answer(ctx, s, a)
    if isinstance(picked, unitpicker.Picked):
        return await _issue(ctx, s, picked.unit)
    return picked or "unit"


async def _issue(ctx: Ctx, s: InviteState, unit: Unit) -> Next:
    role = Role(s["role"])
    if not ctx.actor.can_act_on(unit, *INVITERS[role]):
        return Retry("common.not_allowed")
    invite = await create_invite(
        ctx.session,
        role=role,
        unit=unit,
        created_by=ctx.actor.member.id,  # type: ignore[union-attr]
        ttl=ctx.settings.invite_ttl,
        now=ctx.now,
    )
    link = deep_link(ctx.services.bot_username, invite.code)
    expires = invite.expires_at.astimezone(ctx.settings.tz).strftime("%H:%M %d/%m/%Y")  # type: ignore[union-attr]
    ctx.reply(
        ctx.t(
            "invite.created",
            role=ctx.t(f"role.{role.value}"),
            unit=unit.name,
            code=invite_codes.shown(invite.code),
            link=link or "—",
            expires=expires,
        )
    )
    return None


# --- /addmember -----------------------------------------------------------------------------------


async def cmd_addmember(ctx: Ctx, args: str) -> None:
    cells = ctx.actor.scopes(*SECRETARIES)
    data: AddMemberState = {"lang": ctx.lang, "cell_id": id_of(cells[0])}
    await dialogs.start(ctx, add_flow, "cell" if len(cells) > 1 else "name", data)


@add_flow.ask("cell")
async def ask_add_cell(ctx: Ctx, s: AddMemberState) -> Prompt:
    cells = ctx.actor.scopes(*SECRETARIES)
    return Prompt(ctx.t("addm.cell"), [Option(str(c.id), c.name) for c in cells])


@add_flow.answer("cell")
async def on_add_cell(ctx: Ctx, s: AddMemberState, a: Answer) -> Next:
    s["cell_id"] = int(a.value or 0)
    return "name"


@add_flow.ask("name")
async def ask_add_name(ctx: Ctx, s: AddMemberState) -> Prompt:
    return Prompt(ctx.t("addm.name"), free_text=True)


@add_flow.answer("name")
async def on_add_name(ctx: Ctx, s: AddMemberState, a: Answer) -> Next:
    name = full_name(a.text)
    if name is None:
        return Retry("reg.name.invalid", {"max": MAX_NAME})
    s["full_name"] = name
    return "phone"


@add_flow.ask("phone")
async def ask_add_phone(ctx: Ctx, s: AddMemberState) -> Prompt:
    return Prompt(ctx.t("addm.phone"), [Option("none", ctx.t("addm.no_phone"))], free_text=True)


@add_flow.answer("phone")
async def on_add_phone(ctx: Ctx, s: AddMemberState, a: Answer) -> Next:
    if a.value == "none":
        s["phone"] = None
        return "smartphone"
    try:
        phone = normalize_phone(a.text or "")
    except PhoneError as exc:
        return Retry(f"reg.phone.{exc.reason}")
    existing = await queries.member_by_phone(ctx.session, phone=phone)
    if existing is not None and existing.cell_id != s["cell_id"]:
        return Retry("addm.phone_elsewhere")
    s["phone"], s["existing_id"] = phone, existing.id if existing else None
    return "smartphone"


@add_flow.ask("smartphone")
async def ask_add_smartphone(ctx: Ctx, s: AddMemberState) -> Prompt:
    return Prompt(ctx.t("addm.smartphone"), yes_no(ctx), columns=2)


@add_flow.answer("smartphone")
async def on_add_smartphone(ctx: Ctx, s: AddMemberState, a: Answer) -> Next:
    s["smartphone"] = a.value == "yes"
    return "consent"


@add_flow.ask("consent")
async def ask_add_consent(ctx: Ctx, s: AddMemberState) -> Prompt:
    return Prompt(ctx.t("addm.consent", name=s["full_name"]), yes_no(ctx), columns=2)


@add_flow.answer("consent")
async def on_add_consent(ctx: Ctx, s: AddMemberState, a: Answer) -> Next:
    if a.value != "yes":
        ctx.reply(ctx.t("addm.no_consent"))
        return None
    cell = await ctx.session.get(Unit, s["cell_id"])
    if cell is None or not ctx.actor.can_act_on(cell, *SECRETARIES):
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    member = await ctx.session.get(Member, s["existing_id"]) if s.get("existing_id") else None
    if member is None:
        member = Member(source="added_by_secretary", cell_id=cell.id, created_at=ctx.now)
    member.full_name, member.phone = s["full_name"], s["phone"] or member.phone
    member.has_smartphone, member.smartphone_source = s["smartphone"], "secretary"
    if not s["smartphone"]:
        member.app_installed = member.app_activated = False
    member.registered_at, member.status_updated_at = ctx.now, ctx.now
    ctx.session.add(member)
    await ctx.session.flush()
    record_consent(ctx, member, action="given_by_secretary", at=ctx.now, channel=ctx.event.channel)
    ctx.reply(
        ctx.t(
            "addm.done",
            name=member.full_name,
            cell=cell.name,
            phone=display_phone(member.phone) if member.phone else "—",
        )
    )
    return None


def setup(router: Router) -> None:
    router.command("invite", requires=(Role.secretary, Role.deputy, Role.admin))(cmd_invite)
    router.command("addmember", requires=SECRETARIES)(cmd_addmember)
