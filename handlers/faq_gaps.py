"""From gaps to entries: administrators turn clusters of unanswered questions into new entries or
new phrasings of an existing one, in the chat (/faqgaps), and the change is used at once.

The knowledge base is shared by the whole deployment, so only an administrator of the tree's
root may change it; every step that writes checks that again on the server, so a dialog left
open by someone who has since lost the role changes nothing. Clusters are recomputed at each
step from the rows that are still unsettled: a cluster another administrator has just handled
is refused as a stale choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import dialogs
from bot.context import Ctx
from bot.dialogs import Answer, Next, Option, Prompt, Retry, Switch
from bot.faq.gaps import Cluster, cluster_questions
from bot.faq.text import detect_language
from bot.router import Router
from handlers.faq import SERVICE, UNSETTLED, EditState, bump_version, edit_flow, may_edit_base
from storage.faq_models import FaqEntryRow, FaqQuery
from storage.models import Role

GAP_SCAN = 2000
"""Only the latest unsettled questions are clustered: bounds the work of one /faqgaps."""
SHOWN = 8
MAX_IDS = 500
"""Row ids carried in the dialog's state for one cluster (a cluster can be settled in parts)."""


async def gap_clusters(session: AsyncSession, *, since: datetime | None = None) -> list[Cluster]:
    """Clusters of the questions the FAQ could not settle, most asked first."""
    stmt = (
        select(FaqQuery.id, FaqQuery.text)
        .where(col(FaqQuery.outcome).in_(UNSETTLED))
        .order_by(col(FaqQuery.at).desc(), col(FaqQuery.id).desc())
        .limit(GAP_SCAN)
    )
    if since is not None:
        stmt = stmt.where(col(FaqQuery.at) >= since)
    rows = (await session.exec(stmt)).all()
    return cluster_questions([(int(row_id or 0), text) for row_id, text in rows])


async def settle(
    session: AsyncSession, ids: Sequence[int], *, outcome: str, entry_id: str | None
) -> int:
    """Mark still-unsettled questions as handled, so they leave the gaps; how many were."""
    result = await session.exec(
        update(FaqQuery)
        .where(col(FaqQuery.id).in_(list(ids)), col(FaqQuery.outcome).in_(UNSETTLED))
        .values(outcome=outcome, entry_id=entry_id)
    )
    return int(result.rowcount or 0)


async def add_phrasing(session: AsyncSession, entry_id: str, text: str, now: datetime) -> bool:
    """Add ``text`` as one more way of asking for the entry (in the language it is written in)."""
    row = await session.get(FaqEntryRow, entry_id)
    if row is None:
        return False
    lang = detect_language(text)
    existing = row.questions.get(lang, [])
    if text not in existing:
        row.questions = {**row.questions, lang: [*existing, text]}
        row.updated_at, row.revision = now, row.revision + 1
        session.add(row)
        await bump_version(session)
    return True


async def _still_open(ctx: Ctx, ids: Sequence[int]) -> bool:
    stmt = select(FaqQuery.id).where(
        col(FaqQuery.id).in_(list(ids)), col(FaqQuery.outcome).in_(UNSETTLED)
    )
    return (await ctx.session.exec(stmt)).first() is not None


# --- the dialog -----------------------------------------------------------------------------------


class GapsState(TypedDict, total=False):
    ids: list[int]  # the chosen cluster's questions (at most MAX_IDS)
    text: str  # the cluster's most frequent wording
    closest: str  # the entry the matcher ranks first for it
    found: list[str]  # entry ids the last search ranked (step "search")


gaps_flow: dialogs.Flow[GapsState] = dialogs.flow("faqgaps")


async def cmd_faqgaps(ctx: Ctx, args: str) -> None:
    if not may_edit_base(ctx):
        ctx.reply(ctx.t("faqgaps.not_allowed"))
        return
    if not await gap_clusters(ctx.session):
        ctx.reply(ctx.t("faqgaps.none"))
        return
    await dialogs.start(ctx, gaps_flow, "pick", GapsState())


@gaps_flow.ask("pick")
async def ask_pick(ctx: Ctx, s: GapsState) -> Prompt:
    clusters = (await gap_clusters(ctx.session))[:SHOWN]
    options = [
        Option(str(c.id), ctx.t("faqgaps.cluster", n=c.count, text=c.text[:50])) for c in clusters
    ]
    return Prompt(ctx.t("faqgaps.pick"), options)


@gaps_flow.answer("pick")
async def on_pick(ctx: Ctx, s: GapsState, a: Answer) -> Next:
    chosen = next((c for c in await gap_clusters(ctx.session) if str(c.id) == a.value), None)
    if chosen is None or not may_edit_base(ctx):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    index = await SERVICE.index(ctx.session, ctx.now)
    s["ids"], s["text"] = chosen.ids[:MAX_IDS], chosen.text
    s["closest"] = index.rank(chosen.text)[0][0]
    return "act"


@gaps_flow.ask("act")
async def ask_act(ctx: Ctx, s: GapsState) -> Prompt:
    index = await SERVICE.index(ctx.session, ctx.now)
    options = []
    if s["closest"] in {e.id for e in index.kb.entries}:
        entry = index.kb.get(s["closest"])
        question = (entry.questions.get(ctx.lang) or entry.questions["vi"])[0]
        options.append(Option("add", ctx.t("faqgaps.add_to", question=question[:50])))
    options += [
        Option("other", ctx.t("faqgaps.other")),
        Option("new", ctx.t("faqgaps.new")),
        Option("dismiss", ctx.t("faqgaps.dismiss")),
    ]
    return Prompt(ctx.t("faqgaps.act", n=len(s["ids"]), text=s["text"]), options)


@gaps_flow.answer("act")
async def on_act(ctx: Ctx, s: GapsState, a: Answer) -> Next:
    if not may_edit_base(ctx) or not await _still_open(ctx, s["ids"]):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    if a.value == "add":
        return await _add(ctx, s, s["closest"])
    if a.value == "other":
        return "search"
    if a.value == "new":
        data: EditState = {
            "lang": ctx.lang,
            "entry": None,
            "gap_ids": s["ids"],
            "gap_text": s["text"],
        }
        return Switch(edit_flow, "topic", data)
    await settle(ctx.session, s["ids"], outcome="dismissed", entry_id=None)
    ctx.reply(ctx.t("faqgaps.dismissed"))
    return None


@gaps_flow.ask("search")
async def ask_search(ctx: Ctx, s: GapsState) -> Prompt:
    index = await SERVICE.index(ctx.session, ctx.now)
    known = {e.id for e in index.kb.entries}
    options = [
        Option(i, (index.kb.get(i).questions.get(ctx.lang) or [i])[0][:60])
        for i in s.get("found", [])
        if i in known
    ]
    return Prompt(ctx.t("faqgaps.search"), options, free_text=True)


@gaps_flow.answer("search")
async def on_search(ctx: Ctx, s: GapsState, a: Answer) -> Next:
    if a.value:
        if not may_edit_base(ctx) or not await _still_open(ctx, s["ids"]):
            ctx.reply(ctx.t("common.stale_button"))
            return None
        return await _add(ctx, s, a.value)
    index = await SERVICE.index(ctx.session, ctx.now)
    found = [entry_id for entry_id, score in index.rank(a.text or "")[:5] if score > 0]
    if not found:
        return Retry("faqedit.none_found")
    s["found"] = found
    return "search"


async def _add(ctx: Ctx, s: GapsState, entry_id: str) -> Next:
    if not await add_phrasing(ctx.session, entry_id, s["text"], ctx.now):
        ctx.reply(ctx.t("common.stale_button"))
        return None
    settled = await settle(ctx.session, s["ids"], outcome="added", entry_id=entry_id)
    ctx.reply(ctx.t("faqgaps.added", n=settled, id=entry_id))
    return None


async def settle_into_new_entry(ctx: Ctx, s: EditState, entry_id: str) -> None:
    """Called by /faqedit when a new entry was started from a cluster: the cluster's question
    becomes one of its phrasings and the cluster leaves the gaps."""
    if s.get("gap_ids"):
        await add_phrasing(ctx.session, entry_id, s["gap_text"], ctx.now)
        await settle(ctx.session, s["gap_ids"], outcome="added", entry_id=entry_id)


def setup(router: Router) -> None:
    router.command("faqgaps", requires=(Role.admin,))(cmd_faqgaps)
