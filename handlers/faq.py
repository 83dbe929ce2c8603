"""Answers to members' questions about the handbook, typed in their own words.

The knowledge base lives in the ``faq_*`` tables (imported from the shipped YAML on first use);
the index is rebuilt only when the entries change. When the match is uncertain the assistant
offers the closest questions instead of guessing; what it cannot settle is recorded without the
asker's identity (``sotay faq gaps``) and can go on to the support staff.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self, TypedDict

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs, scheduler
from bot.callbacks import Callback, OpenCommand
from bot.context import Ctx
from bot.core import View
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from bot.faq import DEFAULT_KB_PATH, FaqEntry, FaqIndex, FaqTopic, KnowledgeBase, load_kb
from bot.faq.text import detect_language
from bot.i18n import t
from bot.router import ANYONE, Router
from bot.scheduler import JobResult, done
from bot.textfold import fold
from storage.faq_models import FaqEntryRow, FaqQuery, FaqState, FaqTopicRow
from storage.models import DueJob, Member, Role, RoleGrant

_DIGITS = re.compile(r"\d[\d .\-]{5,}\d")
QUERY_TEXT_MAX = 500


# --- the knowledge base in tables -----------------------------------------------------------------


async def load_from_db(session: AsyncSession) -> KnowledgeBase | None:
    topics = (await session.exec(select(FaqTopicRow).order_by(col(FaqTopicRow.position)))).all()
    rows = (await session.exec(select(FaqEntryRow).order_by(col(FaqEntryRow.position)))).all()
    if not rows:
        return None
    return KnowledgeBase(
        topics=[FaqTopic(t.id, dict(t.title)) for t in topics],
        entries=[
            FaqEntry(
                r.id,
                r.topic,
                {k: list(v) for k, v in r.questions.items()},
                dict(r.answer),
                list(r.keywords),
            )
            for r in rows
        ],
        version=1,
    )


@dataclass(frozen=True)
class ImportResult:
    topics: int
    created: int
    updated: int
    unchanged: int
    removed: int


async def import_kb(
    session: AsyncSession, kb: KnowledgeBase, *, now: datetime, replace: bool = False
) -> ImportResult:
    """Upsert topics and entries (idempotent); with ``replace``, drop entries not in ``kb``."""
    existing_topics = {t.id: t for t in (await session.exec(select(FaqTopicRow))).all()}
    for position, topic in enumerate(kb.topics):
        row = existing_topics.get(topic.id) or FaqTopicRow(id=topic.id)
        row.title, row.position = dict(topic.title), position
        session.add(row)
    await session.flush()
    existing = {r.id: r for r in (await session.exec(select(FaqEntryRow))).all()}
    created = updated = unchanged = 0
    for position, entry in enumerate(kb.entries):
        values: dict[str, Any] = {
            "topic": entry.topic,
            "questions": {k: list(v) for k, v in entry.questions.items()},
            "answer": dict(entry.answer),
            "keywords": list(entry.keywords),
            "position": position,
        }
        entry_row = existing.get(entry.id)
        if entry_row is None:
            session.add(FaqEntryRow(id=entry.id, updated_at=now, **values))
            created += 1
        elif any(getattr(entry_row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(entry_row, key, value)
            entry_row.updated_at, entry_row.revision = now, entry_row.revision + 1
            session.add(entry_row)
            updated += 1
        else:
            unchanged += 1
    removed = 0
    if replace:
        keep = {e.id for e in kb.entries}
        for entry_id, stale in existing.items():
            if entry_id not in keep:
                await session.delete(stale)
                removed += 1
    await session.flush()
    await bump_version(session)
    return ImportResult(len(kb.topics), created, updated, unchanged, removed)


async def kb_version(session: AsyncSession) -> int:
    """The knowledge base's version counter (0 before the first import)."""
    version = (await session.exec(select(FaqState.version).where(FaqState.id == 1))).first()
    return int(version or 0)


async def bump_version(session: AsyncSession) -> None:
    """Mark the knowledge base changed, so every process rebuilds its index on the next question.

    Called by every writer (import, /faqedit, gap review) in the same transaction as the change.
    An atomic ``version + 1`` keeps two concurrent writers from losing a bump.
    """
    result = await session.exec(
        update(FaqState).where(col(FaqState.id) == 1).values(version=col(FaqState.version) + 1)
    )
    if result.rowcount == 0:
        session.add(FaqState(id=1, version=1))
    await session.flush()


class FaqService:
    """The index over the current entries, rebuilt when the knowledge base's version changes."""

    def __init__(self) -> None:
        self._version: int | None = None
        self._index: FaqIndex | None = None

    async def index(self, session: AsyncSession, now: datetime) -> FaqIndex:
        version = await kb_version(session)
        if version == 0:  # first use: the shipped knowledge base
            count = (await session.exec(select(func.count()).select_from(FaqEntryRow))).one()
            if not count:
                await import_kb(session, load_kb(DEFAULT_KB_PATH), now=now)
            else:  # entries from before the counter existed
                await bump_version(session)
            return await self.index(session, now)
        if self._index is None or version != self._version:
            kb = await load_from_db(session)
            if kb is None:  # every entry deleted: fall back to the shipped base
                kb = load_kb(DEFAULT_KB_PATH)
            self._index, self._version = FaqIndex.build(kb), version
        return self._index


SERVICE = FaqService()


def masked(text: str) -> str:
    """The question as recorded: no phone numbers or other long digit runs."""
    return _DIGITS.sub("…", text)[:QUERY_TEXT_MAX]


def record_query(ctx: Ctx, text: str, outcome: str, entry_id: str | None = None) -> FaqQuery | None:
    """Keep the question for the gaps digest, only for people who consented (registered)."""
    if not ctx.actor.registered or ctx.actor.member is None:
        return None
    cleaned = masked(text)
    row = FaqQuery(
        text=cleaned,
        folded=fold(cleaned)[:QUERY_TEXT_MAX],
        outcome=outcome,
        entry_id=entry_id,
        asker_id=ctx.actor.member.id,
        at=ctx.now,
    )
    ctx.session.add(row)
    return row


# --- answering ------------------------------------------------------------------------------------


def answer_language(ctx: Ctx, text: str) -> str:
    return "en" if text and detect_language(text) == "en" else ctx.lang


# --- buttons --------------------------------------------------------------------------------------


class FaqVerb(StrEnum):
    """What a button under an answer or a suggestion does (``a:faq:<verb>:…``)."""

    show = "show"  # show the entry ``ref``
    solved = "ok"  # the answer ``ref`` helped
    not_solved = "no"  # it did not: offer people
    no_match = "nm"  # none of the suggestions fits
    to_staff = "sup"  # hand the question on to support
    topic = "t"  # the entries of the topic ``ref`` (/faq)


ABOUT_QUERY_ONLY = (FaqVerb.no_match, FaqVerb.to_staff)


@dataclass(frozen=True)
class FaqPress(Callback):
    """``a:faq:<verb>:<entry or topic>[:<query>]``; ``nm`` and ``sup`` carry only ``:<query>``.

    ``query_id`` is the asker's recorded question (``FaqQuery``; 0 when none was recorded)."""

    action: ClassVar[str] = "faq"
    verb: FaqVerb
    ref: str | None = None
    query_id: int | None = None

    def encode(self) -> str:
        if self.verb in ABOUT_QUERY_ONLY:
            return _FaqQueryPress(self.verb, self.query_id).encode()
        return super().encode()

    @classmethod
    def decode(cls, args: list[str]) -> Self:
        if args and args[0] in ABOUT_QUERY_ONLY:
            press = _FaqQueryPress.decode(args)
            return cls(press.verb, None, press.query_id)
        return super().decode(args)


@dataclass(frozen=True)
class _FaqQueryPress(Callback):
    """The wire shape of ``FaqPress`` for the verbs about the question only."""

    action: ClassVar[str] = "faq"
    verb: FaqVerb
    query_id: int | None = None


def answer_view(ctx: Ctx, entry: FaqEntry, lang: str, query_id: int | None) -> View:
    q = query_id or 0
    buttons = [
        [
            ctx.button(t(lang, "faq.solved"), FaqPress(FaqVerb.solved, entry.id, q)),
            ctx.button(t(lang, "faq.not_solved"), FaqPress(FaqVerb.not_solved, entry.id, q)),
        ]
    ]
    return View(entry.answer.get(lang) or entry.answer["vi"], buttons)


async def on_question(ctx: Ctx, text: str) -> None:
    """Free text outside a dialog: answer, suggest, or admit not knowing."""
    index = await SERVICE.index(ctx.session, ctx.now)
    lang = answer_language(ctx, text)
    decision = index.ask(text, lang=lang)
    if decision.decision == "answer":
        entry = index.kb.get(decision.candidates[0].entry_id)
        query = record_query(ctx, text, "answered", entry.id)
        await ctx.session.flush()
        ctx.reply(answer_view(ctx, entry, lang, query.id if query else None))
        return
    if decision.decision == "suggest":
        query = record_query(ctx, text, "suggested")
        await ctx.session.flush()
        q = query.id if query and query.id else 0
        rows = [
            [ctx.button(c.question[:60], FaqPress(FaqVerb.show, c.entry_id, q))]
            for c in decision.candidates
        ]
        rows.append([ctx.button(t(lang, "faq.none_of_these"), FaqPress(FaqVerb.no_match, None, q))])
        ctx.reply(View(t(lang, "faq.suggest"), rows))
        return
    if not any(ch.isalpha() for ch in text):
        ctx.reply(t(lang, "faq.unreadable"))
        return
    query = record_query(ctx, text, "none")
    await ctx.session.flush()
    offer_support(ctx, lang, query.id if query else None, key="faq.no_answer")


def offer_support(ctx: Ctx, lang: str, query_id: int | None, *, key: str) -> None:
    """Hand the question on to people: a support ticket where support is available."""
    rows = [[ctx.button(t(lang, "faq.to_staff"), FaqPress(FaqVerb.to_staff, None, query_id or 0))]]
    if ctx.actor.registered:
        rows.append([ctx.button(t(lang, "menu.title_short"), OpenCommand("menu"))])
    ctx.reply(View(t(lang, key), rows))


async def _query(ctx: Ctx, query_id: int | None) -> FaqQuery | None:
    """The asker's own recorded question named by a button (anyone else's is ignored)."""
    if not query_id or ctx.actor.member is None:
        return None
    query = await ctx.session.get(FaqQuery, query_id)
    return query if query is not None and query.asker_id == ctx.actor.member.id else None


async def on_faq_action(ctx: Ctx, press: FaqPress) -> None:
    """Buttons under answers and suggestions: show, solved, not solved, none of these, to staff."""
    await FAQ_VERBS[press.verb](ctx, press)


async def _entry(ctx: Ctx, press: FaqPress) -> tuple[FaqEntry, FaqQuery | None] | None:
    """The entry a button names and the asker's question it answered; None, and the button
    answered as stale, when the entry is gone."""
    index = await SERVICE.index(ctx.session, ctx.now)
    try:
        entry = index.kb.get(press.ref) if press.ref else None
    except KeyError:
        entry = None
    if entry is None:
        ctx.reply(ctx.t("common.stale_button"))
        return None
    return entry, await _query(ctx, press.query_id)


async def _on_show(ctx: Ctx, press: FaqPress) -> None:
    if (found := await _entry(ctx, press)) is None:
        return
    entry, query = found
    if query is not None:
        query.entry_id, query.outcome = entry.id, "chosen"
        ctx.session.add(query)
    ctx.reply(answer_view(ctx, entry, ctx.lang, query.id if query else None))


async def _on_solved(ctx: Ctx, press: FaqPress) -> None:
    if (found := await _entry(ctx, press)) is None:
        return
    _, query = found
    if query is not None:
        query.outcome = "solved"
        ctx.session.add(query)
    ctx.reply(ctx.t("faq.thanks"))


async def _on_not_solved(ctx: Ctx, press: FaqPress) -> None:
    if (found := await _entry(ctx, press)) is None:
        return
    entry, query = found
    if query is not None:
        query.outcome, query.entry_id = "not_solved", entry.id
        ctx.session.add(query)
    offer_support(ctx, ctx.lang, query.id if query else None, key="faq.sorry")


async def _on_no_match(ctx: Ctx, press: FaqPress) -> None:
    if press.query_id is None:
        ctx.reply(ctx.t("common.stale_button"))
        return
    query = await _query(ctx, press.query_id)
    if query is not None:
        query.outcome = "no_match"
        ctx.session.add(query)
    offer_support(ctx, ctx.lang, query.id if query else None, key="faq.no_answer")


async def _on_to_staff(ctx: Ctx, press: FaqPress) -> None:
    await hand_to_support(ctx, await _query(ctx, press.query_id))


async def _on_topic(ctx: Ctx, press: FaqPress) -> None:
    if not press.ref:
        ctx.reply(ctx.t("common.stale_button"))
        return
    index = await SERVICE.index(ctx.session, ctx.now)
    show_topic(ctx, index.kb, press.ref)


FAQ_VERBS: dict[FaqVerb, Callable[[Ctx, FaqPress], Awaitable[None]]] = {
    FaqVerb.show: _on_show,
    FaqVerb.solved: _on_solved,
    FaqVerb.not_solved: _on_not_solved,
    FaqVerb.no_match: _on_no_match,
    FaqVerb.to_staff: _on_to_staff,
    FaqVerb.topic: _on_topic,
}


async def hand_to_support(ctx: Ctx, query: FaqQuery | None) -> None:
    """Start a support request carrying the question, where the support module is present."""
    if not ctx.actor.registered:
        ctx.reply(ctx.t("faq.register_for_support"))
        return
    from handlers.support import start_report  # support builds on the FAQ, not the reverse

    await start_report(ctx, text=query.text if query else None)


# --- browsing: /faq -------------------------------------------------------------------------------


async def cmd_faq(ctx: Ctx, args: str) -> None:
    if args.strip():
        await on_question(ctx, args.strip())
        return
    index = await SERVICE.index(ctx.session, ctx.now)
    rows = [
        [
            ctx.button(
                topic.title.get(ctx.lang) or topic.title["vi"], FaqPress(FaqVerb.topic, topic.id)
            )
        ]
        for topic in index.kb.topics
    ]
    ctx.reply(View(ctx.t("faq.topics"), rows))


def show_topic(ctx: Ctx, kb: KnowledgeBase, topic_id: str) -> None:
    entries = [e for e in kb.entries if e.topic == topic_id]
    if not entries:
        ctx.reply(ctx.t("common.stale_button"))
        return
    rows = [
        [
            ctx.button(
                (e.questions.get(ctx.lang) or e.questions["vi"])[0][:60],
                FaqPress(FaqVerb.show, e.id),
            )
        ]
        for e in entries[:20]
    ]
    ctx.reply(View(ctx.t("faq.pick_question"), rows))


# --- gaps -----------------------------------------------------------------------------------------

UNSETTLED = ("none", "no_match", "not_solved")
"""Outcomes that leave a question in the gaps; /faqgaps settles them as "added" or "dismissed"."""


# --- administrators edit entries in the chat ------------------------------------------------------

NewText = Literal["new_q_vi", "new_a_vi", "new_q_en", "new_a_en"]


class EditState(TypedDict, total=False):
    lang: str
    found: list[str]  # entry ids the last search ranked (step "pick")
    entry: str | None  # the entry edited; None for a new one
    field: str  # one of FIELDS but "delete" (step "value")
    topic: str  # a new entry's topic
    new_q_vi: str  # a new entry's texts, asked one after the other
    new_a_vi: str
    new_q_en: str
    new_a_en: str
    gap_ids: list[int]  # a new entry started from /faqgaps: the questions it settles
    gap_text: str


edit_flow: dialogs.Flow[EditState] = dialogs.flow("faqedit")
NEW = "__new__"


def may_edit_base(ctx: Ctx) -> bool:
    """An administrator of the root of the tree: the base is shared by every unit.

    Checked by every step that writes, not only by the command, so a dialog left open by
    someone who has since lost the role changes nothing."""
    return any(unit.depth == 0 for unit in ctx.actor.scopes(Role.admin))


async def cmd_faqedit(ctx: Ctx, args: str) -> None:
    if not may_edit_base(ctx):
        ctx.reply(ctx.t("faqgaps.not_allowed"))
        return
    data: EditState = {"lang": ctx.lang}
    await dialogs.start(ctx, edit_flow, "pick", data)


@edit_flow.ask("pick")
async def ask_pick(ctx: Ctx, s: EditState) -> Prompt:
    found = s.get("found", [])
    index = await SERVICE.index(ctx.session, ctx.now)
    options = [Option(i, (index.kb.get(i).questions.get(ctx.lang) or [i])[0][:60]) for i in found]
    options.append(Option(NEW, ctx.t("faqedit.new")))
    return Prompt(ctx.t("faqedit.pick"), options, free_text=True)


@edit_flow.answer("pick")
async def on_pick(ctx: Ctx, s: EditState, a: Answer) -> Next:
    if a.value == NEW:
        s["entry"] = None
        return "topic"
    index = await SERVICE.index(ctx.session, ctx.now)
    if a.value:
        s["entry"] = a.value
        return "field"
    ranked = [entry_id for entry_id, score in index.rank(a.text or "")[:5] if score > 0]
    if not ranked:
        return Retry("faqedit.none_found")
    s["found"] = ranked
    return "pick"


FIELDS = ("q_vi", "q_en", "a_vi", "a_en", "delete")


@edit_flow.ask("field")
async def ask_field(ctx: Ctx, s: EditState) -> Prompt:
    return Prompt(
        ctx.t("faqedit.field", id=s["entry"]), [Option(f, ctx.t(f"faqedit.f.{f}")) for f in FIELDS]
    )


@edit_flow.answer("field")
async def on_field(ctx: Ctx, s: EditState, a: Answer) -> Next:
    row = await ctx.session.get(FaqEntryRow, s["entry"])
    if row is None or not may_edit_base(ctx):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    if a.value == "delete":
        await ctx.session.delete(row)
        await bump_version(ctx.session)
        ctx.reply(ctx.t("faqedit.deleted", id=row.id))
        return None
    if a.value is None:  # only the options are offered
        return "field"
    s["field"] = a.value
    return "value"


@edit_flow.ask("value")
async def ask_value(ctx: Ctx, s: EditState) -> Prompt:
    return Prompt(ctx.t(f"faqedit.f.{s['field']}") + ":", free_text=True)


@edit_flow.answer("value")
async def on_value(ctx: Ctx, s: EditState, a: Answer) -> Next:
    text = (a.text or "").strip()
    if not 3 <= len(text) <= 1500:
        return Retry("faqedit.length")
    row = await ctx.session.get(FaqEntryRow, s["entry"])
    if row is None or not may_edit_base(ctx):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    kind, lang = s["field"].split("_")
    if kind == "q":
        row.questions = {**row.questions, lang: [*row.questions.get(lang, []), text]}
    else:
        row.answer = {**row.answer, lang: text}
    row.updated_at, row.revision = ctx.now, row.revision + 1
    ctx.session.add(row)
    await bump_version(ctx.session)
    ctx.reply(ctx.t("faqedit.saved", id=row.id))
    return None


@edit_flow.ask("topic")
async def ask_topic(ctx: Ctx, s: EditState) -> Prompt:
    index = await SERVICE.index(ctx.session, ctx.now)
    return Prompt(
        ctx.t("faqedit.topic"),
        [Option(tp.id, tp.title.get(ctx.lang) or tp.id) for tp in index.kb.topics],
    )


@edit_flow.answer("topic")
async def on_topic(ctx: Ctx, s: EditState, a: Answer) -> Next:
    if a.value is None:  # only the options are offered
        return "topic"
    s["topic"] = a.value
    return "new_q_vi"


def _text_step(name: NewText, key: str, next_step: str | None) -> None:
    @edit_flow.ask(name)
    async def ask(ctx: Ctx, s: EditState) -> Prompt:
        return Prompt(ctx.t(key), free_text=True)

    @edit_flow.answer(name)
    async def answer(ctx: Ctx, s: EditState, a: Answer) -> Next:
        text = (a.text or "").strip()
        if not 3 <= len(text) <= 1500:
            return Retry("faqedit.length")
        s[name] = text
        return next_step or await _create(ctx, s)


async def _create(ctx: Ctx, s: EditState) -> Next:
    if not may_edit_base(ctx):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    base = re.sub(r"[^a-z0-9]+", "_", fold(s["new_q_en"]))[:24].strip("_") or "entry"
    entry_id, n = base, 1
    while await ctx.session.get(FaqEntryRow, entry_id) is not None:
        n += 1
        entry_id = f"{base}_{n}"
    ctx.session.add(
        FaqEntryRow(
            id=entry_id,
            topic=s["topic"],
            questions={"vi": [s["new_q_vi"]], "en": [s["new_q_en"]]},
            answer={"vi": s["new_a_vi"], "en": s["new_a_en"]},
            keywords=[],
            position=10_000,
            updated_at=ctx.now,
        )
    )
    await bump_version(ctx.session)
    from handlers.faq_gaps import settle_into_new_entry  # gaps builds on this module

    await settle_into_new_entry(ctx, s, entry_id)
    ctx.reply(ctx.t("faqedit.saved", id=entry_id))
    return None


_text_step("new_q_vi", "faqedit.q_vi", "new_a_vi")
_text_step("new_a_vi", "faqedit.a_vi", "new_q_en")
_text_step("new_q_en", "faqedit.q_en", "new_a_en")
_text_step("new_a_en", "faqedit.a_en", None)


# --- the monthly digest to administrators ---------------------------------------------------------


def digest_trigger(settings: Any) -> CronTrigger:
    """08:00 local on the 1st of every month."""
    return CronTrigger(day=1, hour=8, minute=0, timezone=settings.tz)


@scheduler.recurring("faq_digest", digest_trigger)
async def digest_job(ctx: Ctx, work: DueJob) -> JobResult:
    from handlers.faq_gaps import gap_clusters  # gaps builds on this module

    since = (work.due_at or ctx.now) - timedelta(days=31)
    rows = (await gap_clusters(ctx.session, since=since))[:10]
    admins = (
        await ctx.session.exec(
            select(Member)
            .join(RoleGrant, col(RoleGrant.member_id) == Member.id)
            .where(RoleGrant.role == Role.admin)
            .distinct()
        )
    ).all()
    lines = "\n".join(f"{c.count} × {c.text}" for c in rows)
    for admin in admins:
        await ctx.notify_member(
            admin,
            lambda lang: View(
                t(lang, "faq.digest", lines=lines) if rows else t(lang, "faq.digest_empty")
            ),
        )
    return done(f"sent to {len(admins)}")


def setup(router: Router) -> None:
    router.command("faq", requires=ANYONE)(cmd_faq)
    router.command("faqedit", requires=(Role.admin,))(cmd_faqedit)
    router.callback(FaqPress, requires=ANYONE)(on_faq_action)
    from handlers import faq_gaps  # the gap review builds on this module

    faq_gaps.setup(router)
