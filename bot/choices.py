"""One rule for choices, whatever the channel: a typed reply that names an offered choice.

Older members type the label instead of pressing ("co", "chưa", "duyet", "xong"), with or
without diacritics, in any case, often a short synonym. Every place that compares a typed reply
with the choices on offer (a guided step, the chat's last message with choices, Zalo's and the
terminal's numbered lines) calls ``pick`` here, so a word means the same everywhere.

Matching goes from the strictest reading to the loosest and stops at the first level that names
exactly one choice: a number; the label (diacritics kept); the label folded; a synonym group
("ừ" is yes, "ko" is no, "lưu" is done); the first words of a label; whole words inside it
(≥ 5 letters: "dinh ky"). Diacritics are compared before folding because folding merges words
that mean opposite things ("vâng" yes, "vắng" absent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, TextClause, bindparam, text
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import View
from bot.textfold import clean, fold
from storage.db import Prepared
from storage.models import PendingChoices

# Words (as typed, diacritics kept) that mean the same answer. Labels are read the same way:
# a label belongs to a group when the label, or its first word, is in that group.
SYNONYMS: dict[str, frozenset[str]] = {
    "yes": frozenset(
        ["có", "ừ", "ừm", "ờ", "uh", "um", "vâng", "dạ", "ok", "oke", "okay", "yes", "y", "đúng"]
        + ["được", "rồi", "có rồi", "đúng rồi", "đồng ý", "đã", "tham dự", "dự", "tôi dự"]
    ),
    "no": frozenset(
        ["không", "ko", "k", "kg", "khong", "hông", "hok", "chưa", "no", "n", "sai"]
        + ["không phải", "chưa có", "không có", "chưa được"]
    ),
    "approve": frozenset(["duyệt", "đồng ý", "phê duyệt", "chấp thuận", "approve"]),
    "reject": frozenset(["từ chối", "không duyệt", "reject"]),
    "done": frozenset(["xong", "lưu", "xong rồi", "hoàn thành", "done", "save"]),
}
# Folded forms, for replies typed without diacritics. "vang" is left out: it is both "vâng" (yes)
# and "vắng" (absent), so only the spelling with marks decides.
AMBIGUOUS_FOLDED = frozenset(["vang"])
_FOLDED: dict[str, frozenset[str]] = {
    group: frozenset(fold(word) for word in words) - AMBIGUOUS_FOLDED
    for group, words in SYNONYMS.items()
}
Table = dict[str, frozenset[str]]
_PARTICLES = frozenset(["ạ", "a", "nhé", "nhe", "nha", "ha", "à", "đó", "do"])
_PUNCT = re.compile(r"[^\w\s]")
MAX_SYNONYM_WORDS = 3  # a longer text is a sentence (a question), not a short answer
MIN_INNER = 5  # shorter words inside a label ("co", "xa") match too much


def _key(text: str, norm: Callable[[str], str]) -> str:
    """A label or reply as compared: normalised, marks and emoji gone, spaces collapsed."""
    return " ".join(_PUNCT.sub(" ", norm(text)).split())


def _label_groups(label: str, norm: Callable[[str], str], table: Table) -> set[str]:
    """The synonym groups of a short label: by the whole label or its first words ("Chưa cài"
    is a no, "Đúng, là tôi" a yes)."""
    words = _key(label, norm).split()
    if not words or len(words) > MAX_SYNONYM_WORDS:
        return set()
    candidates = {" ".join(words), words[0], " ".join(words[:2])}
    return {group for group, members in table.items() if candidates & members}


def _reply_groups(text: str, norm: Callable[[str], str], table: Table) -> set[str]:
    """The synonym groups of a typed reply, taken whole (polite particles aside): "chưa ạ" is a
    no, but "không vào được" is a question, never an answer."""
    words = _key(text, norm).split()
    while len(words) > 1 and words[-1] in _PARTICLES:
        words.pop()
    key = " ".join(words)
    return {group for group, members in table.items() if key in members}


BACK_WORDS = frozenset(["quay lai", "tro lai", "quay ve", "lui lai", "back"])


def means_back(text: str) -> bool:
    """ "quay lại", "trở lại", "back": the person wants the previous question again."""
    return " ".join(_PUNCT.sub(" ", fold(text)).split()) in BACK_WORDS


def _unique(matches: list[str]) -> str | None:
    return matches[0] if len(set(matches)) == 1 else None


def _number(text: str, choices: Sequence[Sequence[str]]) -> str | None:
    stripped = text.strip().strip("[]").rstrip(".)")  # "2", "2.", "[2]" as Zalo prints it
    if stripped.isdigit() and 1 <= int(stripped) <= len(choices):
        return choices[int(stripped) - 1][1]
    return None


def pick(choices: Sequence[Sequence[str]], text: str | None) -> str | None:
    """The data of the one choice (``[label, data]`` pairs, in the order shown) that ``text``
    names; None when it names none or several (then it stays ordinary text)."""
    if not choices or not text or text.strip().startswith("/"):
        return None
    number = _number(text, choices)
    if number is not None or text.strip().strip("[]").isdigit():
        return number
    for norm, table in ((clean, SYNONYMS), (fold, _FOLDED)):
        typed = _key(text, norm)
        if not typed or (norm is fold and typed in AMBIGUOUS_FOLDED):
            return None
        exact = _unique([data for label, data in choices if _key(label, norm) == typed])
        if exact is not None:
            return exact
        wanted = _reply_groups(text, norm, table)
        if wanted:
            by_meaning = _unique(
                [data for label, data in choices if _label_groups(label, norm, table) & wanted]
            )
            if by_meaning is not None:
                return by_meaning
        if len(typed) >= 3:
            prefix = _unique(
                [data for label, data in choices if _key(label, norm).startswith(typed + " ")]
            )
            if prefix is not None:
                return prefix
        if len(typed) >= MIN_INNER:  # "dinh ky" for "Sinh hoạt định kỳ": whole words inside
            inner = _unique(
                [data for label, data in choices if f" {typed} " in f" {_key(label, norm)} "]
            )
            if inner is not None:
                return inner
    return None


def remembered(channel: str, chat_ref: str, view: View, now: datetime) -> Prepared | None:
    """The statement that keeps the choices of a message about to leave as the chat's answerable
    choices, on every channel (buttons or not): the member may type a label instead of pressing,
    at once or days later, until a newer message with choices replaces them. The dispatcher
    commits it with the row's "sending" mark, before the send, so an answer never outruns the
    mapping. None when the message offers no choices."""
    mapping = [[choice.label, choice.data] for row in view.choices for choice in row]
    if not mapping:
        return None
    params = {"p_channel": channel, "p_chat_ref": chat_ref, "p_choices": mapping, "p_at": now}
    return Prepared(_upsert(), params)


_UPSERT = (
    "INSERT INTO pending_choice (channel, chat_ref, choices, updated_at)"
    " VALUES (:p_channel, :p_chat_ref, :p_choices, :p_at)"
    " ON CONFLICT (channel, chat_ref)"
    " DO UPDATE SET choices = excluded.choices, updated_at = excluded.updated_at"
)


def _upsert_types() -> list[BindParameter[Any]]:
    """The typed parameters keep the JSON encoding and the UTC check of the table's columns."""
    table = PendingChoices.__table__  # type: ignore[attr-defined]
    return [
        bindparam("p_choices", type_=table.c.choices.type),
        bindparam("p_at", type_=table.c.updated_at.type),
    ]


@cache
def _upsert() -> TextClause:
    """Built once (it runs for every message with choices), as text: SQLAlchemy caches no
    compiled form of its dialects' ``INSERT ... ON CONFLICT`` constructs, so that upsert was
    compiled anew for every message (~2 % of the PostgreSQL bot's CPU, bench/core_throughput);
    a text statement is cached like any other. PostgreSQL and SQLite read the same words."""
    return text(_UPSERT).bindparams(*_upsert_types())


def riding_with(statement: str, *binds: BindParameter[Any]) -> TextClause:
    """``statement`` (PostgreSQL) with the choices' upsert before it as a data-modifying CTE,
    which PostgreSQL runs whatever the statement reads: one round trip for both. Its
    parameters are ``remembered``'s and the statement's own (``binds`` for typed ones)."""
    return text(f"WITH chosen AS ({_UPSERT}) {statement}").bindparams(*_upsert_types(), *binds)


async def offered(session: AsyncSession, channel: str, chat_ref: str, text: str) -> str | None:
    """The signed data of the choice, among the chat's last offered ones, that ``text`` names."""
    row = await session.get(PendingChoices, (channel, chat_ref))
    return pick(row.choices, text) if row is not None else None
