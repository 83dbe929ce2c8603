"""Staff search the FAQ by typing when they answer a ticket with an entry (issue 16).

The ticket's own words do not always find the right entry (a member describes a symptom, the
entry names the cause), so next to the suggested entries the staff member can type a few words
and pick from what the matcher ranks for them. Picking goes through the same ticket action as
the suggestion buttons (``a:tk:<id>:fq:<entry>``), so the permission check on the ticket's cell,
the closed-ticket rule and the delivery are the support module's, done again at that moment.
"""

from __future__ import annotations

from typing import TypedDict

from bot import dialogs
from bot.context import Ctx
from bot.dialogs import Answer, Next, Option, Prompt, Retry
from handlers.faq import SERVICE
from handlers.support_core import StaffVerb, TicketPress


class SearchState(TypedDict, total=False):
    ticket_id: int  # the ticket to answer
    found: list[str]  # entry ids the last search ranked, offered as options


search_flow: dialogs.Flow[SearchState] = dialogs.flow("sup_faq")
SHOWN = 6
FLOOR = 0.15
"""Below this score an entry shares only stray letters with what was typed: not shown."""


async def start_search(ctx: Ctx, ticket_id: int) -> None:
    """Open the search in the staff member's private chat (never a dialog in a group)."""
    data: SearchState = {"ticket_id": ticket_id}
    await dialogs.start(ctx, search_flow, "query", data)


@search_flow.ask("query")
async def ask_query(ctx: Ctx, s: SearchState) -> Prompt:
    index = await SERVICE.index(ctx.session, ctx.now)
    known = {e.id for e in index.kb.entries}
    options = [
        Option(
            i, (index.kb.get(i).questions.get(ctx.lang) or index.kb.get(i).questions["vi"])[0][:60]
        )
        for i in s.get("found", [])
        if i in known
    ]
    return Prompt(ctx.t("faqstaff.query", id=s["ticket_id"]), options, free_text=True)


@search_flow.answer("query")
async def on_query(ctx: Ctx, s: SearchState, a: Answer) -> Next:
    if a.value:
        from handlers.support import on_ticket_action  # support builds on the FAQ

        await on_ticket_action(ctx, TicketPress(s["ticket_id"], StaffVerb.faq_send, a.value))
        return None
    index = await SERVICE.index(ctx.session, ctx.now)
    found = [entry_id for entry_id, score in index.rank(a.text or "")[:SHOWN] if score >= FLOOR]
    if not found:
        return Retry("faqstaff.none")
    s["found"] = found
    return "query"
