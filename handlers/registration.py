"""Registration: /start → language → consent → phone → roster match or application →
three status questions → done.

A member proven by Telegram's contact button and found in the roster is registered at once. A
typed number (channels without a contact button) proves nothing and reveals nothing: the person
types their name, and a matching (phone, name) pair becomes a request to whoever has authority
over everything that member holds (handlers/identity.py); a wrong pair counts towards a lock-out.
Someone not in the roster applies to the cell they pick. Declining consent stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal, TypedDict, TypeVar

from sqlalchemy import update
from sqlmodel import col, select

from bot import dialogs, invite_codes, scheduler
from bot.callbacks import Callback
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.i18n import t
from bot.phones import PhoneError, normalize_phone
from bot.router import ANYONE, Router
from bot.scheduler import JobResult, done, skip
from handlers import identity, install_help, privacy, unitpicker
from handlers.membership import (
    apply_answers,
    approval_request,
    approvers_for,
    link_account,
    menu_view,
    record_consent,
    unit_label,
)
from handlers.unitpicker import PickerState
from storage.ids import id_of
from storage.models import (
    Application,
    ApplicationKind,
    ApplicationStatus,
    DueJob,
    Invite,
    Member,
    MemberStatus,
    Role,
    Unit,
)
from storage.queries import ensure_grant, grants_of, holders, member_by_phone, unit_by_path


class StatusAnswers(TypedDict, total=False):
    smartphone: bool
    installed: bool
    activated: bool


class StatusState(TypedDict, total=False):
    """What the status questions (``status_steps``) keep: the answers, and what help is needed."""

    lang: str
    answers: StatusAnswers
    need: str  # a Need, after a "not yet"


class RegisterState(StatusState, PickerState, total=False):
    invite: str | None  # the invite code the person came with
    consent_at: str  # ISO time of their consent
    phone: str
    verified: bool  # the channel proved the phone (contact button)
    full_name: str
    member_id: int  # the roster member the phone (and name) matched
    cell_id: int  # the cell an applicant picked


register: dialogs.Flow[RegisterState] = dialogs.flow("register")
# /status (the account module adds its last step): the registration's status questions again.
status_flow: dialogs.Flow[StatusState] = dialogs.flow("status")
CELL_ROLES = (Role.member, Role.secretary, Role.deputy)
SECRETARIES = (Role.secretary, Role.deputy)
MAX_NAME = 100


def full_name(text: str | None) -> str | None:
    """A person's name (spaces collapsed, proper case), or None when it cannot be one."""
    name = " ".join((text or "").split())
    letters = [ch for ch in name if not ch.isspace()]
    if not 2 <= len(name) <= MAX_NAME or not all(ch.isalpha() or ch in "'-." for ch in letters):
        return None
    return proper_case(name)


def proper_case(name: str) -> str:
    """ "tran thi lan" or "TRAN THI LAN" stored as "Tran Thi Lan"; a name typed with its own
    capitals ("Nguyễn Văn McAn") is kept as typed."""
    return name.title() if name.islower() or name.isupper() else name


async def tell_unregistered(ctx: Ctx) -> None:
    """/menu or /me before registration is complete: an applicant is told where their
    application stands (which cell decides, since when), never "you are not registered"."""
    application = await pending_application(ctx)
    if application is None:
        pending = ctx.actor.account is not None and ctx.actor.account.pending
        ctx.reply(ctx.t("reg.still_pending" if pending else "common.not_registered"))
        return
    cell = await ctx.session.get(Unit, application.cell_id) if application.cell_id else None
    key = f"reg.where.{application.kind.value}"
    ctx.reply(
        ctx.t(
            key,
            cell=unit_label(cell) if cell else "—",
            since=local_time(ctx, application.created_at) if application.created_at else "—",
        )
    )


def yes_no(ctx: Ctx) -> list[Option]:
    return [Option("yes", ctx.t("common.yes")), Option("no", ctx.t("common.no"))]


# --- entry -------------------------------------------------------------------------------------


async def cmd_start(ctx: Ctx, args: str) -> None:
    code = args.strip()[:32] or None
    invite = await valid_invite(ctx, code) if code else None
    if code and invite is None:
        ctx.reply(ctx.t("invite.invalid"))
    member = ctx.actor.member
    if ctx.actor.registered and member is not None:
        if invite is not None:
            await redeem_for_member(ctx, invite, member)
        ctx.reply(menu_view(ctx, intro=ctx.t("reg.welcome_back", name=member.full_name or "")))
        return
    if await pending_application(ctx) is not None or (
        ctx.actor.account and ctx.actor.account.pending
    ):
        ctx.reply(ctx.t("reg.still_pending"))
        return
    state: RegisterState = {"invite": invite.code if invite else None}
    await dialogs.start(ctx, register, "lang", state)


async def pending_application(ctx: Ctx) -> Application | None:
    stmt = select(Application).where(
        Application.channel == ctx.event.channel,
        Application.user_ref == ctx.event.user_ref,
        Application.status == ApplicationStatus.pending,
    )
    return (await ctx.session.exec(stmt)).first()


async def valid_invite(ctx: Ctx, code: str | None) -> Invite | None:
    if not code:
        return None
    stmt = select(Invite).where(col(Invite.code).in_(invite_codes.candidates(code)))
    invite = (await ctx.session.exec(stmt)).first()
    if invite is None or invite.used_at is not None or invite.expires_at <= ctx.now:  # type: ignore[operator]
        return None
    return invite


# --- language and consent ------------------------------------------------------------------------


@register.ask("lang")
async def ask_lang(ctx: Ctx, s: RegisterState) -> Prompt:
    return Prompt(
        t("vi", "reg.lang") + "\n" + t("en", "reg.lang"),
        [Option("vi", "Tiếng Việt"), Option("en", "English")],
    )


@register.answer("lang")
async def on_lang(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    s["lang"] = ctx.lang = a.value or ctx.lang
    return "consent"


@register.ask("consent")
async def ask_consent(ctx: Ctx, s: RegisterState) -> Prompt:
    return Prompt(
        ctx.t("reg.consent"),
        [
            Option("agree", ctx.t("reg.consent.agree")),
            Option("decline", ctx.t("reg.consent.decline")),
        ],
    )


@register.answer("consent")
async def on_consent(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    if a.value == "decline":
        await privacy.leave_no_trace(ctx)
        ctx.reply(View(ctx.t("reg.declined"), remove_keyboard=True, last_word=True))
        return None
    s["consent_at"] = ctx.now.isoformat()
    return "phone"


# --- phone and roster match ----------------------------------------------------------------------


@register.ask("phone")
async def ask_phone(ctx: Ctx, s: RegisterState) -> Prompt:
    if ctx.has_contact_button:
        return Prompt(
            ctx.t("reg.phone.button"), request_contact=ctx.t("reg.phone.share"), free_text=True
        )
    return Prompt(ctx.t("reg.phone.type"), free_text=True)


@register.answer("phone")
async def on_phone(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    if a.contact is not None:
        if not a.contact.is_own:
            return Retry("reg.phone.not_own")
        raw, verified = a.contact.phone, True
    elif ctx.has_contact_button:
        return Retry("reg.phone.use_button")
    else:
        raw, verified = a.text or "", False
        locked = await identity.locked_until(
            ctx.session, channel=ctx.event.channel, user_ref=ctx.event.user_ref, now=ctx.now
        )
        if locked is not None:
            return Retry("reg.phone.locked", {"until": local_time(ctx, locked)})
    try:
        phone = normalize_phone(raw)
    except PhoneError as exc:
        return Retry(f"reg.phone.{exc.reason}")
    s["phone"], s["verified"] = phone, verified
    s.pop("member_id", None)
    if not verified:
        # A typed number proves nothing and reveals nothing: the person names themselves first.
        return "claim_name"
    ctx.reply(View(ctx.t("reg.phone.thanks"), remove_keyboard=True))
    member = await member_by_phone(ctx.session, phone=phone)
    if member is None:
        return "not_found"
    s["member_id"] = id_of(member)
    return "confirm"


def local_time(ctx: Ctx, at: datetime) -> str:
    return at.astimezone(ctx.settings.tz).strftime("%H:%M %d/%m")


@register.ask("claim_name")
async def ask_claim_name(ctx: Ctx, s: RegisterState) -> Prompt:
    return Prompt(ctx.t("reg.claim_name"), free_text=True)


@register.answer("claim_name")
async def on_claim_name(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    """Match (typed phone, typed name) against the roster without showing what is there."""
    name = full_name(a.text)
    if name is None:
        return Retry("reg.name.invalid", {"max": MAX_NAME})
    s["full_name"] = name
    member = await member_by_phone(ctx.session, phone=s["phone"])
    if member is not None and identity.same_person_name(name, member.full_name):
        s["member_id"] = id_of(member)
        return "q_smartphone"
    locked = await identity.record_failure(
        ctx.session, channel=ctx.event.channel, user_ref=ctx.event.user_ref, now=ctx.now
    )
    if locked is not None:
        ctx.reply(ctx.t("reg.phone.locked", until=local_time(ctx, locked)))
    return "not_found"


@register.ask("confirm")
async def ask_confirm(ctx: Ctx, s: RegisterState) -> Prompt:
    member = await ctx.session.get(Member, s["member_id"])
    cell = await ctx.session.get(Unit, member.cell_id) if member and member.cell_id else None
    where = cell.name if cell else ctx.t("reg.no_cell")
    return Prompt(
        ctx.t("reg.confirm", name=member.full_name if member else "?", cell=where),
        fitting(ctx, "confirm"),
    )


@register.answer("confirm")
async def on_confirm(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    if a.value == "yes":
        return "q_smartphone"
    s.pop("member_id", None)
    return "not_found"


@register.ask("not_found")
async def ask_not_found(ctx: Ctx, s: RegisterState) -> Prompt:
    return Prompt(
        ctx.t("reg.not_found"),
        [Option("apply", ctx.t("reg.apply")), Option("retry", ctx.t("reg.other_number"))],
    )


@register.answer("not_found")
async def on_not_found(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    if a.value == "retry":
        s.pop("full_name", None)
        return "phone"
    return await after_name(ctx, s) if s.get("full_name") else "name"


# --- applicants: name and cell -------------------------------------------------------------------


@register.ask("name")
async def ask_name(ctx: Ctx, s: RegisterState) -> Prompt:
    return Prompt(ctx.t("reg.name"), free_text=True)


@register.answer("name")
async def on_name(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    name = full_name(a.text)
    if name is None:
        return Retry("reg.name.invalid", {"max": MAX_NAME})
    s["full_name"] = name
    return await after_name(ctx, s)


async def after_name(ctx: Ctx, s: RegisterState) -> Next:
    """Someone not in the roster: an invite places them, otherwise they pick their cell."""
    if await valid_invite(ctx, s.get("invite")) is not None:
        return "q_smartphone"
    unitpicker.reset(s)
    return "cell"


@register.ask("cell")
async def ask_cell(ctx: Ctx, s: RegisterState) -> Prompt:
    return await unitpicker.prompt(ctx, s, question_key="reg.cell")


@register.answer("cell")
async def on_cell(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    picked = await unitpicker.answer(ctx, s, a)
    if isinstance(picked, unitpicker.Picked):
        s["cell_id"] = id_of(picked.unit)
        return "q_smartphone"
    return picked or "cell"


# --- the three status questions ------------------------------------------------------------------


S = TypeVar("S", bound=StatusState)


def record_answer(
    s: StatusState, question: Literal["smartphone", "installed", "activated"], yes: bool
) -> None:
    s.setdefault("answers", {})[question] = yes


def status_steps(flow: dialogs.Flow[S], finish: dialogs.AnswerFn[S]) -> None:
    """The smartphone / installed / activated questions; shared by registration and /status."""

    @flow.ask("q_smartphone")
    async def ask_smartphone(ctx: Ctx, s: S) -> Prompt:
        return Prompt(ctx.t("reg.q.smartphone"), yes_no(ctx), columns=2)

    @flow.answer("q_smartphone")
    async def on_smartphone(ctx: Ctx, s: S, a: Answer) -> Next:
        record_answer(s, "smartphone", a.value == "yes")
        return "q_installed" if a.value == "yes" else await finish(ctx, s, a)

    @flow.ask("q_installed")
    async def ask_installed(ctx: Ctx, s: S) -> Prompt:
        return Prompt(ctx.t("reg.q.installed"), fitting(ctx, "installed"), columns=2)

    @flow.answer("q_installed")
    async def on_installed(ctx: Ctx, s: S, a: Answer) -> Next:
        record_answer(s, "installed", a.value == "yes")
        if a.value == "yes":
            return "q_activated"
        return await then_help(ctx, s, await finish(ctx, s, a), Need.install)

    @flow.ask("q_activated")
    async def ask_activated(ctx: Ctx, s: S) -> Prompt:
        return Prompt(ctx.t("reg.q.activated"), fitting(ctx, "activated"), columns=2)

    @flow.answer("q_activated")
    async def on_activated(ctx: Ctx, s: S, a: Answer) -> Next:
        record_answer(s, "activated", a.value == "yes")
        done = await finish(ctx, s, a)
        return done if a.value == "yes" else await then_help(ctx, s, done, Need.login)

    @flow.ask("not_yet")
    async def ask_not_yet(ctx: Ctx, s: S) -> Prompt:
        return await not_yet_prompt(ctx, s)

    @flow.answer("not_yet")
    async def on_not_yet(ctx: Ctx, s: S, a: Answer) -> Next:
        return await not_yet_answer(ctx, s, a)


# --- help at the moment of "not yet" -------------------------------------------------------------


class Need(StrEnum):
    """What a member answering "not yet" still has to do."""

    install = "install"
    login = "login"


class YesNo(StrEnum):
    yes = "yes"
    no = "no"


@dataclass(frozen=True)
class CheckBack(Callback):
    """The answer to a check-back a few days after "not yet": ``a:chk:<install|login>:<yes|no>``."""

    action: ClassVar[str] = "chk"
    need: Need
    answer: YesNo


HELP_ENTRIES = {"android": "install_android", "iphone": "install_iphone", "login": "first_login"}
CHECK_BACK = timedelta(days=3)


def fitting(ctx: Ctx, question: str) -> list[Option]:
    """Answers worded like the question ("Đã cài" / "Chưa cài"): an older member answers the
    question asked, and "chưa" or "rồi" typed to them is understood (bot.choices)."""
    return [
        Option("yes", ctx.t(f"ask.{question}.yes")),
        Option("no", ctx.t(f"ask.{question}.no")),
    ]


async def then_help(ctx: Ctx, s: StatusState, done: Next, need: Need) -> Next:
    """After the last status answer was "not yet", stay one more step to offer help, instead of
    leaving the member at the moment the rollout needs them most."""
    if done is not None:
        return done
    s["need"] = need
    return "not_yet"


async def not_yet_prompt(ctx: Ctx, s: StatusState) -> Prompt:
    need = s.get("need", Need.install)
    if need == Need.install:
        options = [
            Option("android", ctx.t("notyet.android")),
            Option("iphone", ctx.t("notyet.iphone")),
        ]
    else:
        options = [Option("login", ctx.t("notyet.login_steps"))]
    if await _cell_secretaries(ctx):
        options.append(Option("secretary", ctx.t("notyet.secretary")))
    options.append(Option("later", ctx.t("notyet.later")))
    return Prompt(ctx.t(f"notyet.ask.{need}"), options)


async def not_yet_answer(ctx: Ctx, s: StatusState, a: Answer) -> Next:
    """Steps for their phone (from the FAQ), or their secretary told (choosing that option is
    the member's consent), and in every case a check-back in a few days."""
    need = s.get("need", Need.install)
    if a.value in HELP_ENTRIES:
        ctx.reply(await faq_steps(ctx, HELP_ENTRIES[a.value]))
    elif a.value == "secretary":
        told = await tell_secretaries(ctx, need)
        ctx.reply(ctx.t("notyet.secretary_told" if told else "notyet.no_secretary"))
    member = ctx.actor.member if ctx.actor.registered else None
    if member is not None:
        await schedule_check_back(ctx, member)
        ctx.reply(ctx.t("notyet.check_back", n=CHECK_BACK.days))
    return None


async def faq_steps(ctx: Ctx, entry_id: str) -> str:
    """The FAQ's own answer (one source for the install steps, edited with /faqedit)."""
    from handlers.faq import SERVICE

    index = await SERVICE.index(ctx.session, ctx.now)
    try:
        entry = index.kb.get(entry_id)
    except KeyError:
        return ctx.t("notyet.steps_missing")
    return entry.answer.get(ctx.lang) or entry.answer["vi"]


async def _cell_secretaries(ctx: Ctx) -> list[Member]:
    member = ctx.actor.member if ctx.actor.registered else None
    if member is None or member.cell_id is None:
        return []
    found = await holders(ctx.session, unit_id=member.cell_id, roles=SECRETARIES)
    return [m for m in found if m.id != member.id]


async def tell_secretaries(ctx: Ctx, need: str) -> int:
    """Tell the member's cell secretaries who needs help, and with what."""
    member = ctx.actor.member
    secretaries = await _cell_secretaries(ctx)
    if member is None or not secretaries:
        return 0
    cell = await ctx.session.get(Unit, member.cell_id)
    await install_help.record(ctx, member, need)  # for their /needhelp list, days later
    for secretary in secretaries:
        await ctx.notify_member(
            secretary,
            lambda lang: View(
                t(
                    lang,
                    f"notyet.to_secretary.{need}",
                    name=member.full_name or "",
                    cell=cell.name if cell else "",
                )
            ),
        )
    return len(secretaries)


async def schedule_check_back(ctx: Ctx, member: Member) -> None:
    """One pending check-back per member: a newer "not yet" moves it."""
    await scheduler.cancel(ctx.session, ref_id=member.id or 0, kinds=(CHECK_BACK_JOB,))
    scheduler.schedule(
        ctx.session,
        kind=CHECK_BACK_JOB,
        due_at=ctx.now + CHECK_BACK,
        now=ctx.now,
        ref_id=member.id,
        member_id=member.id,
    )


CHECK_BACK_JOB = "reg_checkback"


@scheduler.job(CHECK_BACK_JOB)
async def check_back_job(ctx: Ctx, work: DueJob) -> JobResult:
    """Ask again whether they installed / logged in; their answer updates their status."""
    member = await ctx.session.get(Member, work.member_id) if work.member_id else None
    if member is None or member.status != MemberStatus.active:
        return skip("member gone")
    if member.app_activated:
        return skip("already logged in")
    need = Need.login if member.app_installed else Need.install
    question = "activated" if need == Need.login else "installed"
    sent = await ctx.notify_member(
        member,
        lambda lang: View(
            t(lang, f"notyet.again.{need}"),
            [
                [
                    ctx.button(t(lang, f"ask.{question}.yes"), CheckBack(need, YesNo.yes)),
                    ctx.button(t(lang, f"ask.{question}.no"), CheckBack(need, YesNo.no)),
                ]
            ],
        ),
    )
    return done() if sent else skip("no account")


async def on_check_back(ctx: Ctx, press: CheckBack) -> None:
    """The member's answer to a check-back: saved at once; "not yet" offers help again."""
    member = ctx.actor.member
    if member is None:
        ctx.reply(ctx.t("common.stale_button"))
        return
    need, answer = press.need, press.answer
    data: StatusState = {"lang": ctx.lang, "answers": {"smartphone": True}}
    if need == Need.install and answer == YesNo.yes:
        data["answers"]["installed"] = True
        await dialogs.start(ctx, status_flow, "q_activated", data)
        return
    if answer == YesNo.yes:
        member.app_installed = member.app_activated = True
        member.has_smartphone = True
        member.status_updated_at = ctx.now
        ctx.session.add(member)
        ctx.reply(ctx.t("notyet.glad"))
        return
    data["answers"]["installed"] = need == Need.login
    data["answers"]["activated"] = False
    apply_answers(member, data["answers"], ctx.now)
    ctx.session.add(member)
    data["need"] = need
    await dialogs.start(ctx, status_flow, "not_yet", data)


# --- finishing -----------------------------------------------------------------------------------


async def finish_registration(ctx: Ctx, s: RegisterState, a: Answer) -> Next:
    invite = await valid_invite(ctx, s.get("invite"))
    if s.get("invite") and invite is None:
        ctx.reply(ctx.t("invite.invalid"))
    member = await ctx.session.get(Member, s["member_id"]) if s.get("member_id") else None
    if member is not None and s.get("verified"):
        await _complete(ctx, s, member, invite)
    elif member is not None:
        # A typed number matched: someone with authority over all this member holds must vouch.
        # An invite proves the invited role only; it is redeemed on approval.
        await _apply_verify(ctx, s, member, invite)
    elif invite is not None:
        phone: str | None = s["phone"]
        if not s.get("verified") and await member_by_phone(ctx.session, phone=s["phone"]):
            phone = None  # an unproven number that is someone else's: never copied, never shown
        cell_id = invite.unit_id if invite.role in CELL_ROLES else None
        member = Member(
            full_name=s["full_name"],
            phone=phone,
            cell_id=cell_id,
            source="invite",
            created_at=ctx.now,
        )
        ctx.session.add(member)
        await ctx.session.flush()
        await _complete(ctx, s, member, invite)
    else:
        await _apply_join(ctx, s, s["cell_id"])
    return None


async def _complete(ctx: Ctx, s: RegisterState, member: Member, invite: Invite | None) -> None:
    """Link the account now: the channel proved the phone, or an invite vouches for a newcomer."""
    account, _ = await link_account(
        ctx,
        member,
        channel=ctx.event.channel,
        user_ref=ctx.event.user_ref,
        chat_ref=ctx.event.chat_ref,
        language=ctx.lang,
        verified=bool(s.get("verified")),
    )
    apply_answers(member, s.get("answers", {}), ctx.now)
    member.registered_at = member.registered_at or ctx.now
    record_consent(
        ctx,
        member,
        action="given",
        at=datetime.fromisoformat(s["consent_at"]),
        channel=ctx.event.channel,
    )
    await ctx.session.flush()
    if invite is not None:
        await redeem_for_member(ctx, invite, member)
    ctx.actor.account, ctx.actor.member = account, member
    ctx.actor.grants = await grants_of(ctx.session, member_id=member.id or 0)
    ctx.reply(menu_view(ctx, intro=ctx.t("reg.done", name=member.full_name or "")))


async def redeem_for_member(
    ctx: Ctx, invite: Invite, member: Member, *, chat: tuple[str, str, str] | None = None
) -> bool:
    """Use the invite once (a concurrent second use loses) and grant its role. The outcome is
    told in ``chat`` (channel, chat, language) when given, else in the current chat."""

    def tell(key: str, **values: str) -> None:
        if chat is None:
            ctx.reply(ctx.t(key, **values))
        else:
            ctx.send_to_chat(chat[0], chat[1], View(t(chat[2], key, **values)))

    result = await ctx.session.exec(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.used_at).is_(None))
        .values(used_at=ctx.now, used_by=member.id)
    )
    if result.rowcount != 1:
        tell("invite.invalid")
        return False
    unit = await ctx.session.get(Unit, invite.unit_id)
    if invite.role == Role.member:
        member.cell_id = member.cell_id or invite.unit_id
        ctx.session.add(member)
    else:
        await ensure_grant(
            ctx.session,
            member_id=member.id or 0,
            role=invite.role,
            unit_id=invite.unit_id,
            now=ctx.now,
            granted_by=invite.created_by,
        )
    lang = chat[2] if chat else ctx.lang
    tell(
        "invite.granted", role=t(lang, f"role.{invite.role.value}"), unit=unit.name if unit else ""
    )
    return True


def _application(
    ctx: Ctx, s: RegisterState, kind: ApplicationKind, unit_id: int, member: Member | None
) -> Application:
    answers = dict(s.get("answers", {}))
    answers["consent_at"] = s["consent_at"]
    if s.get("invite"):
        answers["invite"] = s["invite"]
    application = Application(
        kind=kind,
        channel=ctx.event.channel,
        user_ref=ctx.event.user_ref,
        chat_ref=ctx.event.chat_ref,
        language=ctx.lang,
        full_name=member.full_name if member else s.get("full_name"),
        phone=s.get("phone"),
        cell_id=unit_id,
        member_id=member.id if member else None,
        answers=answers,
        created_at=ctx.now,
    )
    ctx.session.add(application)
    return application


async def _apply_verify(ctx: Ctx, s: RegisterState, member: Member, invite: Invite | None) -> None:
    """Ask whoever has authority over every role this member holds; tell the applicant only
    that a request went out (no name, no cell, no roles: the number proved nothing yet)."""
    stakes = await identity.stakes_of(ctx.session, member)
    approvers = await identity.approvers_for(ctx.session, member, stakes)
    top = min(stakes, key=lambda st: st.unit_path.count(" / ")) if stakes else None
    unit = await unit_by_path(ctx.session, path=top.unit_path) if top else None
    if not approvers or unit is None:
        ctx.reply(View(ctx.t("reg.no_approver"), remove_keyboard=True))
        return
    application = _application(ctx, s, ApplicationKind.verify, id_of(unit), member)
    await ctx.session.flush()

    def request(lang: str) -> View:
        return approval_request(ctx, lang, application, unit, stakes)

    for approver in approvers:
        await ctx.notify_member(approver, request)
    ctx.reply(View(ctx.t("reg.sent_for_verification"), remove_keyboard=True))


async def _apply_join(ctx: Ctx, s: RegisterState, cell_id: int | None) -> None:
    """Someone not in the roster asks to join the cell they picked: its secretary decides."""
    cell = await ctx.session.get(Unit, cell_id) if cell_id else None
    if cell is None:
        ctx.reply(ctx.t("reg.no_cell_to_approve"))
        return
    application = _application(ctx, s, ApplicationKind.join, id_of(cell), None)
    await ctx.session.flush()

    def request(lang: str) -> View:
        return approval_request(ctx, lang, application, cell, [])

    for approver in await approvers_for(ctx, cell):
        await ctx.notify_member(approver, request)
    ctx.reply(View(ctx.t("reg.sent_for_approval", cell=unit_label(cell)), remove_keyboard=True))


status_steps(register, finish_registration)


def setup(router: Router) -> None:
    router.command("start", requires=ANYONE)(cmd_start)
    router.callback(CheckBack)(on_check_back)
