"""Feedback for the software vendor (issue 15): so the handbook gets simpler.

Members say what kind of thing they have: "I need help" goes to support (a person helps them),
"the software has a problem / a suggestion / is hard to use" becomes software feedback, with the
phone type and app version when they know it. Staff mark a support ticket or a question the FAQ
could not answer as software feedback. ``sotay feedback export [--since DATE] -o FILE.csv|.xlsx``
gives the vendor what it needs without names or phone numbers: category, the members' words
(personal data masked), app versions and phone types, how many members hit the same thing, and
the date range.

Masking happens twice: when stored (phone-like digit runs, e-mail addresses, the author's name)
and when exported (every name in the roster). Logs carry ids and counts only.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from typing import Any, ClassVar, Self, TypedDict
from xml.sax.saxutils import escape

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs
from bot.callbacks import SEP, BadCallback, Callback, OpenCommand
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.router import REGISTERED, Router
from bot.textfold import fold
from handlers import privacy
from handlers.faq import UNSETTLED
from storage.faq_models import FaqQuery
from storage.ids import id_of
from storage.models import Member, Role, Ticket, TicketMessage, Unit
from storage.queries import in_subtree
from storage.training_models import SoftwareFeedback

log = logging.getLogger("sotay.feedback")

STAFF = (Role.staff, Role.admin)
TEXT_MIN, TEXT_MAX = 10, 1000
DEVICE_MAX = 100
MASK = "[…]"
_DIGITS = re.compile(r"\+?\d[\d .\-]{5,}\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_VERSION = re.compile(r"\b\d+(?:\.\d+){1,3}\b")


class Category(StrEnum):
    """What kind of software feedback, stored as its value."""

    bug = "bug"
    suggestion = "suggestion"
    hard = "hard"  # hard to use


class FeedbackState(TypedDict, total=False):
    """A member's feedback: its category, then the words (the last step reads the phone and app
    version and stores the row)."""

    lang: str
    category: str  # a Category value
    text: str


class MarkState(TypedDict, total=False):
    """Staff marking a ticket or an FAQ gap as feedback: the ticket, or the gap picked from the
    offered ones (folded texts), then the category."""

    lang: str
    ticket_id: int
    gaps: list[str]
    gap: str


member_flow: dialogs.Flow[FeedbackState] = dialogs.flow("feedback")
mark_flow: dialogs.Flow[MarkState] = dialogs.flow("feedback_mark")


# --- buttons --------------------------------------------------------------------------------------


class FeedbackVerb(StrEnum):
    new = "new"  # a member's feedback of a category
    ticket = "tk"  # staff mark a support ticket
    gap = "gap"  # staff mark a question the FAQ could not answer


@dataclass(frozen=True)
class FeedbackButton(Callback):
    """``a:fb:new:<category>`` (a member) or ``a:fb:tk`` / ``a:fb:gap`` (staff).

    The one action whose buttons differ in length: the category goes with ``new`` only, so
    ``encode`` and ``decode`` are written out here, keeping the wire strings already sent."""

    action: ClassVar[str] = "fb"
    verb: FeedbackVerb
    category: Category | None = None

    def __post_init__(self) -> None:
        if (self.verb == FeedbackVerb.new) != (self.category is not None):
            raise ValueError("a category goes with 'new' and with nothing else")

    def encode(self) -> str:
        tail = [self.category.value] if self.category is not None else []
        return SEP.join(["a", self.key(), self.verb.value, *tail])

    @classmethod
    def decode(cls, args: list[str]) -> Self:
        try:
            verb = FeedbackVerb(args[0]) if args else None
            category = Category(args[1]) if len(args) == 2 else None
            if verb is None or len(args) > 2:
                raise ValueError(args)
            return cls(verb, category)
        except ValueError as exc:
            raise BadCallback(f"{cls.key()}: {args!r}") from exc


# --- masking --------------------------------------------------------------------------------------


_WORDS = re.compile(r"[^\W_]+")
NAME_WORDS = range(2, 6)  # Vietnamese full names have two to five words


def name_set(names: Iterable[str | None]) -> set[str]:
    """Names folded (case and diacritics ignored), for ``mask``."""
    return {fold(n) for n in names if n and len(n.split()) in NAME_WORDS}


def mask(text: str, names: set[str] | Iterable[str | None] = ()) -> str:
    """The text without phone-like numbers, e-mail addresses or any of ``names`` — matched
    word by word, ignoring case and diacritics, so a set of a whole province's names costs a
    few lookups per word rather than one search per name."""
    folded_names = names if isinstance(names, set) else name_set(names)
    masked = _EMAIL.sub(MASK, _DIGITS.sub(MASK, text))
    if not folded_names:
        return masked
    words = list(_WORDS.finditer(masked))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        for n in sorted(NAME_WORDS, reverse=True):  # the longest name first
            chunk = words[i : i + n]
            if len(chunk) == n and fold(" ".join(w.group(0) for w in chunk)) in folded_names:
                spans.append((chunk[0].start(), chunk[-1].end()))
                i += n
                break
        else:
            i += 1
    for start, end in reversed(spans):
        masked = masked[:start] + MASK + masked[end:]
    return masked


def split_device(text: str) -> tuple[str | None, str | None]:
    """ "Samsung A10, Sổ tay 2.1.0" → (app version "2.1.0", phone type "Samsung A10, Sổ tay")."""
    found = _VERSION.search(text)
    version = found.group(0) if found else None
    rest = _VERSION.sub("", text) if found else text
    phone = " ".join(rest.replace(" ,", ",").split()).strip(" ,;-") or None
    return version, mask(phone)[:64] if phone else None


def group_key(text: str) -> str:
    return fold(text)[:200]


async def nearby_names(session: AsyncSession, member: Member) -> set[str]:
    """The author's name and the names of the members of their commune (the parent of their
    cell): whom a member is likely to name. The export masks the whole roster again."""
    names = name_set([member.full_name])
    cell = await session.get(Unit, member.cell_id) if member.cell_id else None
    scope = await session.get(Unit, cell.parent_id) if cell and cell.parent_id else cell
    if scope is not None:
        stmt = (
            select(Member.full_name)
            .join(Unit, col(Unit.id) == Member.cell_id)
            .where(in_subtree(Unit.path, scope.path))
        )
        names |= name_set((await session.exec(stmt)).all())
    return names


# --- /feedback ------------------------------------------------------------------------------------


async def cmd_feedback(ctx: Ctx, args: str) -> None:
    """First the kind: help from a person, or feedback for the software."""
    rows = [[ctx.button(ctx.t("fb.kind.help"), OpenCommand("support"))]]
    rows += [
        [ctx.button(ctx.t(f"fb.kind.{c}"), FeedbackButton(FeedbackVerb.new, c))] for c in Category
    ]
    if ctx.actor.holds(*STAFF):
        rows.append([ctx.button(ctx.t("fb.mark.ticket"), FeedbackButton(FeedbackVerb.ticket))])
        rows.append([ctx.button(ctx.t("fb.mark.gap"), FeedbackButton(FeedbackVerb.gap))])
    ctx.reply(View(ctx.t("fb.kind.ask"), rows))


async def on_action(ctx: Ctx, press: FeedbackButton) -> None:
    """A member's kind of feedback, or staff marking a ticket or an FAQ gap."""
    await FEEDBACK_VERBS[press.verb](ctx, press)


async def _start_member(ctx: Ctx, press: FeedbackButton) -> None:
    assert press.category is not None  # FeedbackButton refuses "new" without one
    start = FeedbackState(lang=ctx.lang, category=press.category.value)
    await dialogs.start(ctx, member_flow, "text", start)


async def _start_ticket(ctx: Ctx, press: FeedbackButton) -> None:
    if not ctx.actor.holds(*STAFF):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    await dialogs.start(ctx, mark_flow, "ticket", MarkState(lang=ctx.lang))


async def _start_gap(ctx: Ctx, press: FeedbackButton) -> None:
    if not ctx.actor.holds(*STAFF):
        ctx.reply(ctx.t("common.not_allowed"))
        return
    if not await gap_rows(ctx.session):
        ctx.reply(ctx.t("fb.gap.none"))
        return
    await dialogs.start(ctx, mark_flow, "gap", MarkState(lang=ctx.lang))


FEEDBACK_VERBS: dict[FeedbackVerb, Callable[[Ctx, FeedbackButton], Awaitable[None]]] = {
    FeedbackVerb.new: _start_member,
    FeedbackVerb.ticket: _start_ticket,
    FeedbackVerb.gap: _start_gap,
}


@member_flow.ask("text")
async def ask_text(ctx: Ctx, s: FeedbackState) -> Prompt:
    return Prompt(ctx.t(f"fb.ask.text.{s['category']}"), free_text=True)


@member_flow.answer("text")
async def on_text(ctx: Ctx, s: FeedbackState, a: Answer) -> Next:
    text = " ".join((a.text or "").split())
    if len(text) < TEXT_MIN:
        return Retry("fb.text.short", {"min": TEXT_MIN})
    if len(text) > TEXT_MAX:
        return Retry("fb.text.long", {"max": TEXT_MAX, "length": len(text)})
    s["text"] = text
    return "device"


@member_flow.ask("device")
async def ask_device(ctx: Ctx, s: FeedbackState) -> Prompt:
    return Prompt(ctx.t("fb.ask.device"), [Option("skip", ctx.t("fb.skip"))], free_text=True)


@member_flow.answer("device")
async def on_device(ctx: Ctx, s: FeedbackState, a: Answer) -> Next:
    version = phone = None
    if a.value != "skip":
        typed = " ".join((a.text or "").split())
        if not typed or len(typed) > DEVICE_MAX:
            return Retry("fb.device.invalid", {"max": DEVICE_MAX})
        version, phone = split_device(typed)
    member = ctx.actor.member
    assert member is not None
    names = await nearby_names(ctx.session, member)
    text = mask(s["text"], names)
    phone = mask(phone, names) if phone else None
    ctx.session.add(
        SoftwareFeedback(
            source="member",
            category=s["category"],
            text=text,
            key=group_key(text),
            app_version=version,
            phone_type=phone,
            member_id=member.id,
            created_at=ctx.now,
        )
    )
    log.info("feedback.saved source=member category=%s", s["category"])
    ctx.reply(ctx.t("fb.saved"))
    return None


# --- staff mark a ticket or an FAQ gap ------------------------------------------------------------


@mark_flow.ask("ticket")
async def ask_ticket(ctx: Ctx, s: MarkState) -> Prompt:
    return Prompt(ctx.t("fb.ask.ticket"), free_text=True)


@mark_flow.answer("ticket")
async def on_ticket(ctx: Ctx, s: MarkState, a: Answer) -> Next:
    raw = (a.text or "").strip().lstrip("#")
    ticket = await ctx.session.get(Ticket, int(raw)) if raw.isdigit() else None
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if ticket is None or cell is None or not ctx.actor.can_act_on(cell, *STAFF):
        return Retry("fb.ticket.unknown")
    stmt = select(SoftwareFeedback.id).where(SoftwareFeedback.ticket_id == ticket.id)
    if (await ctx.session.exec(stmt)).first() is not None:
        ctx.reply(ctx.t("fb.ticket.already", id=ticket.id))
        return None
    s["ticket_id"] = id_of(ticket)
    return "category"


async def gap_rows(session: AsyncSession, limit: int = 8) -> list[tuple[str, int, str]]:
    """Questions the FAQ could not settle, grouped by folded text, most frequent first.

    Our own small query over ``faq_query`` (not the FAQ module's digest grouping), so the FAQ
    may regroup its digest without changing what staff pick from here."""
    stmt = (
        select(FaqQuery.folded, func.count(), func.min(FaqQuery.text))
        .where(col(FaqQuery.outcome).in_(UNSETTLED))
        .group_by(FaqQuery.folded)
        .order_by(func.count().desc(), FaqQuery.folded)
        .limit(limit)
    )
    return [(f, int(n), text) for f, n, text in (await session.exec(stmt)).all()]


@mark_flow.ask("gap")
async def ask_gap(ctx: Ctx, s: MarkState) -> Prompt:
    found = await gap_rows(ctx.session)
    s["gaps"] = [folded for folded, _n, _text in found]
    options = [Option(str(i), f"({n}×) {text[:50]}") for i, (_f, n, text) in enumerate(found)]
    if not options:
        return Prompt(ctx.t("fb.gap.none"))
    return Prompt(ctx.t("fb.ask.gap"), options)


@mark_flow.answer("gap")
async def on_gap(ctx: Ctx, s: MarkState, a: Answer) -> Next:
    index = int(a.value) if a.value and a.value.isdigit() else -1
    if not 0 <= index < len(s.get("gaps", [])):
        return Retry("common.choose_option")
    s["gap"] = s["gaps"][index]
    return "category"


@mark_flow.ask("category")
async def ask_category(ctx: Ctx, s: MarkState) -> Prompt:
    return Prompt(ctx.t("fb.ask.category"), [Option(c, ctx.t(f"fb.kind.{c}")) for c in Category])


@mark_flow.answer("category")
async def on_category(ctx: Ctx, s: MarkState, a: Answer) -> Next:
    if a.value not in list(Category):
        return Retry("common.choose_option")
    marker = ctx.actor.member.id if ctx.actor.member else None
    if "ticket_id" in s:
        row = await feedback_from_ticket(ctx, s["ticket_id"], a.value, marker)
    else:
        row = await feedback_from_gap(ctx, s["gap"], a.value, marker)
    if row is None:
        ctx.reply(ctx.t("common.not_allowed"))
        return None
    log.info("feedback.marked source=%s category=%s", row.source, row.category)
    ctx.reply(ctx.t("fb.marked"))
    return None


async def feedback_from_ticket(
    ctx: Ctx, ticket_id: int, category: str, marker: int | None
) -> SoftwareFeedback | None:
    """The member's own words on the ticket (first message), masked; checked again here."""
    ticket = await ctx.session.get(Ticket, ticket_id)
    cell = await ctx.session.get(Unit, ticket.cell_id) if ticket else None
    if ticket is None or cell is None or not ctx.actor.can_act_on(cell, *STAFF):
        return None
    stmt = (
        select(TicketMessage.text)
        .where(TicketMessage.ticket_id == ticket.id, TicketMessage.role == "member")
        .order_by(col(TicketMessage.id))
    )
    first = (await ctx.session.exec(stmt)).first() or ""
    author = await ctx.session.get(Member, ticket.member_id) if ticket.member_id else None
    text = mask(first, await nearby_names(ctx.session, author) if author else set())
    row = SoftwareFeedback(
        source="ticket",
        category=category,
        text=text or MASK,
        key=group_key(text),
        ticket_id=ticket.id,
        member_id=ticket.member_id,
        marked_by=marker,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    return row


async def feedback_from_gap(
    ctx: Ctx, folded: str, category: str, marker: int | None
) -> SoftwareFeedback:
    """An FAQ gap: the question (digits already masked when recorded) and how often it came."""
    stmt = select(FaqQuery).where(FaqQuery.folded == folded, col(FaqQuery.outcome).in_(UNSETTLED))
    asked = list((await ctx.session.exec(stmt)).all())
    text = mask(min((q.text for q in asked), default=folded))
    existing = (
        await ctx.session.exec(
            select(SoftwareFeedback).where(
                SoftwareFeedback.source == "faq_gap", SoftwareFeedback.key == group_key(text)
            )
        )
    ).first()
    row = existing or SoftwareFeedback(
        source="faq_gap", category=category, text=text, key=group_key(text), created_at=ctx.now
    )
    row.category, row.hits, row.marked_by = category, max(len(asked), 1), marker
    ctx.session.add(row)
    return row


# --- the export for the vendor --------------------------------------------------------------------


@dataclass
class Group:
    """One thing, however many members said it."""

    category: str
    text: str
    members: set[int] = field(default_factory=set)
    anonymous: int = 0  # FAQ gaps' askers and forgotten authors: counted, not identified
    versions: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    @property
    def count(self) -> int:
        return len(self.members) + self.anonymous


async def export_groups(session: AsyncSession, since: datetime | None = None) -> list[Group]:
    """Feedback grouped by category and folded text, most members first; every roster name
    masked again (someone may have named a neighbour)."""
    stmt = select(SoftwareFeedback).order_by(col(SoftwareFeedback.created_at))
    if since is not None:
        stmt = stmt.where(col(SoftwareFeedback.created_at) >= since)
    names = name_set((await session.exec(select(Member.full_name))).all())
    groups: dict[tuple[str, str], Group] = {}
    for row in (await session.exec(stmt)).all():
        text = mask(row.text, names)
        key = (row.category, group_key(text))  # after masking: names differ, the thing is one
        group = groups.setdefault(key, Group(row.category, text))
        if row.member_id is not None:
            group.members.add(row.member_id)
        else:
            group.anonymous += row.hits
        group.versions.update([row.app_version] if row.app_version else [])
        group.phones.update([mask(row.phone_type, names)] if row.phone_type else [])
        group.sources.add(row.source)
        group.first = group.first or row.created_at
        group.last = row.created_at
    return sorted(groups.values(), key=lambda g: (-g.count, g.category, g.text))


HEADER = ("category", "text", "members", "app_versions", "phone_types", "sources", "first", "last")


def table(groups: Sequence[Group], tz: tzinfo) -> list[list[str]]:
    def day(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d") if moment else ""

    return [list(HEADER)] + [
        [
            g.category,
            g.text,
            str(g.count),
            ", ".join(sorted(g.versions)),
            ", ".join(sorted(g.phones)),
            ", ".join(sorted(g.sources)),
            day(g.first),
            day(g.last),
        ]
        for g in groups
    ]


def render_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def render_xlsx(rows: list[list[str]]) -> bytes:
    """A one-sheet workbook with inline strings: enough for Excel and LibreOffice, and no
    dependency for one table."""

    def cell(ref: str, value: str) -> str:
        return (
            f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'
        )

    def column(index: int) -> str:
        return chr(ord("A") + index)

    sheet_rows = "".join(
        f'<row r="{r + 1}">'
        + "".join(cell(f"{column(c)}{r + 1}", v) for c, v in enumerate(values))
        + "</row>"
        for r, values in enumerate(rows)
    )
    office = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{office}.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{office}.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="feedback" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}">'
            f"<sheetData>{sheet_rows}</sheetData></worksheet>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


class ExportError(Exception):
    """A sentence for the operator."""


def parse_since(text: str | None, tz: tzinfo) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ExportError(f"--since must be a date like 2026-12-01, not '{text}'") from None
    return datetime.combine(day, time(0, 0), tzinfo=tz)


async def cli_export(
    session: AsyncSession, *, since: datetime | None, xlsx: bool, tz: tzinfo
) -> tuple[bytes, int]:
    """The file's bytes and how many groups it holds."""
    groups = await export_groups(session, since)
    rows = table(groups, tz)
    return (render_xlsx(rows) if xlsx else render_csv(rows)), len(groups)


# --- privacy --------------------------------------------------------------------------------------


@privacy.forgets
async def forget_feedback(session: AsyncSession, member_id: int) -> None:
    """The member's words go (the vendor's copy included); who marked something goes too."""
    await session.exec(delete(SoftwareFeedback).where(col(SoftwareFeedback.member_id) == member_id))
    stmt = select(SoftwareFeedback).where(SoftwareFeedback.marked_by == member_id)
    for row in (await session.exec(stmt)).all():
        row.marked_by = None
        session.add(row)


@privacy.tells_about
async def feedback_about(session: AsyncSession, member_id: int) -> dict[str, Any]:
    stmt = select(SoftwareFeedback).where(SoftwareFeedback.member_id == member_id)
    return {
        "software_feedback": [
            {
                "category": row.category,
                "text": row.text,
                "app_version": row.app_version,
                "phone_type": row.phone_type,
                "at": row.created_at.isoformat() if row.created_at else None,
            }
            for row in (await session.exec(stmt)).all()
        ]
    }


def setup(router: Router) -> None:
    router.command("feedback", requires=REGISTERED)(cmd_feedback)
    router.callback(FeedbackButton, requires=REGISTERED)(on_action)
