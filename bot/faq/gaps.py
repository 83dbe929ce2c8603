"""Group the questions the FAQ could not settle, so that one new entry answers many of them.

Members ask the same missing thing in many ways ("đảng phí bao nhiêu", "dang phi dong bao
nhieu a", "mức đóng đảng phí"). Counting exact texts scatters them; an administrator needs one
line per topic with its count. Pure code: no database, no chat.

Each question is reduced to its *content key*: canonical tokens (``bot.faq.text.tokens``) minus
function words, as a sorted set, so word order, particles and diacritics do not matter. Keys are
then merged greedily, most frequent first, into the first cluster whose representative key
shares enough of its words (Jaccard overlap of the two word sets). Greedy and order-stable: the
same questions always give the same clusters, and the representative is the most asked one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.faq.text import FUNCTION_WORDS, fold, tokens

SIMILAR = 0.65
"""Share of shared content words (Jaccard) at or above which two keys are one topic. Lower
merges topics that differ in the one word that matters: "quên mật khẩu zalo" and "quên mật khẩu
wifi" share 3 of 5 words (0.6) and stay apart."""


@dataclass
class Cluster:
    """Unsettled questions about one topic: ``ids`` are their rows, ``text`` the most asked."""

    id: int
    text: str
    count: int
    ids: list[int] = field(default_factory=list)
    variants: int = 1
    key: str = ""


def content_key(text: str) -> str:
    """What a question is about: its sorted content words (the folded text if it has none)."""
    words = sorted(set(tokens(text)) - FUNCTION_WORDS)
    return " ".join(words) if words else fold(text).strip()


def _overlap(words: set[str], key: str) -> float:
    other = set(key.split())
    union = words | other
    return len(words & other) / len(union) if union else 0.0


def cluster_questions(
    questions: Sequence[tuple[int, str]], *, similar: float = SIMILAR
) -> list[Cluster]:
    """Clusters of (row id, text) pairs, most asked first (ties: the earliest row first)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for row_id, text in questions:
        groups.setdefault(content_key(text), []).append((row_id, text))
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), min(i for i, _ in kv[1])))
    clusters: list[Cluster] = []
    for key, rows in ordered:
        words = set(key.split())
        target = next((c for c in clusters if _overlap(words, c.key) >= similar), None)
        if target is None:
            first = min(rows)
            clusters.append(Cluster(first[0], first[1], len(rows), [i for i, _ in rows], 1, key))
        else:
            target.count += len(rows)
            target.ids.extend(i for i, _ in rows)
            target.variants += 1
    clusters.sort(key=lambda c: (-c.count, c.id))
    return clusters
