"""Small talk: thanks, greetings, "ok", "alo", "quay lại" typed outside any guided step.

Older members write to the assistant as to a person. Such a message is not a question: sent to
the FAQ it earned a wrong answer or an offer to bother support staff with "alo". It gets a short,
kind reply in the member's language and goes nowhere else. Only a whole short message counts
("cảm ơn, cho hỏi cách cài" is a question and goes on to the FAQ).
"""

from __future__ import annotations

import re

from bot.context import Ctx
from bot.core import Choice, View
from bot.router import Router, TextStage
from bot.textfold import fold
from storage.models import PendingChoices

# Folded (no diacritics, lower case) whole messages, polite words around them ignored.
PHRASES: dict[str, frozenset[str]] = {
    "thanks": frozenset(
        ["cam on", "cam on nhieu", "cam on ban", "xin cam on", "thank you", "thanks", "tks"]
        + ["thank", "cam on nhe", "cam on dong chi", "cam on bot", "rat cam on"]
    ),
    "greeting": frozenset(
        ["xin chao", "chao", "chao ban", "chao dong chi", "alo", "a lo", "hello", "hi"]
        + ["chao buoi sang", "chao buoi chieu", "chao buoi toi", "allo", "alo alo"]
    ),
    "ok": frozenset(
        ["ok", "oke", "okay", "okie", "vang", "u", "uh", "um", "duoc", "da", "da hieu"]
        + ["hieu roi", "toi hieu roi", "duoc roi", "ok roi", "tot", "tot qua", "yes"]
    ),
    "back": frozenset(["quay lai", "tro lai", "quay ve", "back", "thoat", "ve"]),
}
_POLITE = frozenset(["a", "nhe", "nha", "ha", "em", "anh", "chi", "ban", "dong chi", "nhieu"])
_PUNCT = re.compile(r"[^\w\s]")
MAX_WORDS = 6


def kind_of(text: str) -> str | None:
    """Which small talk ``text`` is, or None when it is something to answer (a question)."""
    words = _PUNCT.sub(" ", fold(text)).split()
    if not words or len(words) > MAX_WORDS:
        return None
    for trimmed in (words, _strip_polite(words)):
        phrase = " ".join(trimmed)
        for kind, phrases in PHRASES.items():
            if phrase in phrases:
                return kind
    return None


def _strip_polite(words: list[str]) -> list[str]:
    """The words without polite address or particles at either end ("alo em", "cam on a")."""
    trimmed = list(words)
    while len(trimmed) > 1 and trimmed[-1] in _POLITE:
        trimmed.pop()
    while len(trimmed) > 1 and trimmed[0] in _POLITE:
        trimmed.pop(0)
    if len(trimmed) > 2 and " ".join(trimmed[-2:]) == "dong chi":
        trimmed = trimmed[:-2]
    return trimmed


def stray_number(text: str) -> int | None:
    """A bare number ("7", "[7]", "7.") typed outside any step: a choice that is not on offer."""
    stripped = text.strip().strip("[]").rstrip(".)").strip()
    return int(stripped) if stripped.isdigit() and len(stripped) <= 3 else None


async def answer_stray_number(ctx: Ctx, number: int) -> None:
    """A number that names no current choice (it meant an older message's, which a newer one
    replaced): say so kindly and offer the chat's current choices again, never "not understood".
    Choices of a finished guided step are not offered again (they would be refused as stale)."""
    row = await ctx.session.get(PendingChoices, (ctx.event.channel, ctx.event.chat_ref))
    current = [
        Choice(label, data)
        for label, data in (row.choices if row is not None else [])
        if (verified := ctx.services.signer.verify(data)) is not None
        and not verified.startswith("d:")
    ]
    if not current:
        suffix = "registered" if ctx.actor.registered else "guest"
        ctx.reply(ctx.t(f"talk.number_none.{suffix}", n=number))
        return
    ctx.reply(View(ctx.t("talk.number_again", n=number), [[choice] for choice in current]))


async def on_small_talk(ctx: Ctx, text: str) -> bool:
    """Answer small talk (and a stray number) briefly; leave anything else to the next stage."""
    number = stray_number(text) if ctx.event.attachment is None else None
    if number is not None:
        await answer_stray_number(ctx, number)
        return True
    kind = kind_of(text) if ctx.event.attachment is None else None
    if kind is None:
        return False
    suffix = "registered" if ctx.actor.registered else "guest"
    ctx.reply(ctx.t(f"talk.{kind}.{suffix}"))
    return True


def setup(router: Router) -> None:
    router.free_text(TextStage.SMALL_TALK)(on_small_talk)
