"""Find the FAQ entry a member's free-text question is about, and say how sure we are.

No embedding model is available (and none may be downloaded), and questions are short, noisy
chat messages, so matching combines three cheap lexical signals over the canonical tokens of
``bot.faq.text.tokens`` (folded, abbreviations expanded):

* ``word``: BM25-style IDF weighting over syllables and syllable bigrams. Rare words ("otp",
  "khóa", "biểu quyết") decide the topic; bigrams ("mat khau", "so dien thoai") restore the
  context that diacritic folding removes.
* ``char``: the same weighting over character trigrams, which survives typos ("mat khua",
  "dnag nhap") and Telex leftovers ("cuar").
* ``fuzzy``: rapidfuzz ``token_set_ratio`` against each stored phrasing, best phrasing per entry:
  it rewards a question that reads like one stored question, not words spread over many.

The lexical scores are normalised by the query's own IDF mass (the share of what the member
said that the entry explains, unknown words included), so each signal and their weighted sum lie
in [0, 1]. ``ask`` answers only when the best score clears ``answer_threshold`` and leads the
runner-up by ``margin``; otherwise it suggests up to ``limit`` entries above
``suggest_threshold``, or says "none". Messages longer than ``LONG_MESSAGE`` are at most
suggested. Weights and thresholds were tuned on the tuning splits of bench/faq_eval
only (figures and the ablation in docs/benchmarks.md). Everything that depends on the knowledge
base is precomputed when the index is built; ``ask`` never raises, whatever the text.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from rapidfuzz import fuzz, process

from bot.faq.kb import FaqEntry, KnowledgeBase
from bot.faq.text import FUNCTION_WORDS, Lang, detect_language, tokens

DecisionKind = Literal["answer", "suggest", "none"]

MAX_CHARS = 1200
"""Only this much of a message is read: it bounds the cost of pasted walls of text."""

LONG_MESSAGE = 600
"""Longer messages are never answered outright, only suggested: too much else is in them."""

ANSWER_THRESHOLD = 0.42
SUGGEST_THRESHOLD = 0.26
MARGIN = 0.08
"""Suggest threshold chosen by bench/faq_eval/tune.py; answer threshold and margin raised with
the coverage gate by bench/faq_eval/tune_gate.py, after the sealed final3 run showed that
near-miss questions got through (docs/benchmarks.md)."""

KEY_IDF = 2.5
"""A query word is a key content word when it is not a function word (``FUNCTION_WORDS``) and its
IDF over the entries is at least this (it is in at most 3 of 55 entries, or in none): words such
as "sổ tay" or "đăng nhập" are in many entries and do not single out a topic."""

MAX_MISSING = 0.3
"""An answer needs its entry to cover the query's key content words: at most this share of
their IDF mass may be missing from the entry's words. "quên mật khẩu Zalo" matches the
forgot-password entry well overall, but "zalo" (the topic) is missing, so it is only suggested.
Tuned with the thresholds on the tuning splits and the out-of-scope dev set."""

FUZZY_WORD = 80.0
"""A word the base has never seen counts as covered when it is this close (rapidfuzz ratio) to a
word of the entry: typos ("khaaur", "adroid") must not block an answer."""

FUZZY_MIN_LEN = 5
"""Shorter unknown words are never taken for typos: "phi" (phí) is one letter from "phim"."""

SHORTLIST = 12
"""Fuzzy similarity is computed only for this many best lexical entries. Fuzzy weighs at most
``fuzzy_weight``, so an entry outside the shortlist cannot reach the top three in practice."""

CHAR_N = 3
"""Character n-gram length: a one-letter typo leaves most of a syllable's trigrams intact."""


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    question: str
    score: float


@dataclass(frozen=True)
class Decision:
    decision: DecisionKind
    candidates: list[Candidate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "candidates": [
                {"id": c.entry_id, "question": c.question, "score": round(c.score, 4)}
                for c in self.candidates
            ],
        }


@dataclass(frozen=True)
class MatchParams:
    """How the three signals are computed and mixed (tuned on the tuning splits)."""

    word_weight: float = 0.45
    char_weight: float = 0.30
    fuzzy_weight: float = 0.25
    k1: float = 1.2
    b: float = 0.40
    key_idf: float = KEY_IDF
    max_missing: float = MAX_MISSING


def decide(
    ranked: list[tuple[str, float]],
    *,
    answer_threshold: float,
    suggest_threshold: float,
    margin: float,
    limit: int,
) -> tuple[DecisionKind, list[tuple[str, float]]]:
    """The decision rule shared by the matcher and the benchmark baseline.

    ``ranked`` is (entry id, score) best first. Answer when the best score clears
    ``answer_threshold`` and leads the runner-up by ``margin``; else suggest what clears
    ``suggest_threshold``; else none (with no candidates). At least one candidate is kept
    whatever ``limit`` says, so an answer always names its entry.
    """
    shown = [item for item in ranked[: max(limit, 1)] if item[1] >= suggest_threshold]
    if not shown:
        return "none", []
    best = shown[0][1]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if best >= answer_threshold and best - runner_up >= margin:
        return "answer", shown
    return "suggest", shown


class _WeightedTerms:
    """IDF-weighted coverage of a query's terms by each entry (BM25 term saturation).

    For a query term t and entry e the contribution is idf(t) · tf / (tf + norm(e)), BM25's term
    frequency part divided by its limit; the sum is divided by the query's total IDF (terms never
    seen count at the highest IDF), so a score is the share of the query's information that the
    entry explains, in [0, 1).
    """

    def __init__(self, docs: list[Counter[str]], k1: float, b: float) -> None:
        n_docs = len(docs)
        avg_len = sum(sum(doc.values()) for doc in docs) / max(n_docs, 1) or 1.0
        df = Counter(term for doc in docs for term in doc)
        self.idf = {term: math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for term, d in df.items()}
        self.unknown_idf = math.log(1 + (n_docs + 0.5) / 0.5)
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for index, doc in enumerate(docs):
            norm = k1 * (1 - b + b * sum(doc.values()) / avg_len)
            for term, tf in doc.items():
                # BM25's tf saturation over its limit (k1 + 1): below 1, rising with repetition,
                # so two entries that both contain every word of a short question do not tie;
                # the one that is more about those words wins.
                saturation = tf / (tf + norm)
                self.postings.setdefault(term, []).append((index, self.idf[term] * saturation))

    def scores(self, terms: set[str], n_docs: int) -> list[float]:
        totals = [0.0] * n_docs
        mass = 0.0
        for term in terms:
            mass += self.idf.get(term, self.unknown_idf)
            for index, weight in self.postings.get(term, ()):
                totals[index] += weight
        if mass == 0.0:
            return totals
        return [total / mass for total in totals]


def _word_terms(words: list[str]) -> list[str]:
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _char_terms(words: list[str]) -> list[str]:
    padded = f" {' '.join(words)} "
    return [padded[i : i + CHAR_N] for i in range(len(padded) - CHAR_N + 1)]


def _entry_docs(entry: FaqEntry) -> tuple[Counter[str], Counter[str], list[str]]:
    """An entry's word terms and character n-grams (questions and keywords), and its phrasings."""
    questions = entry.questions["vi"] + entry.questions["en"]
    word_doc: Counter[str] = Counter()
    char_doc: Counter[str] = Counter()
    for text in questions + entry.keywords:
        words = tokens(text)
        word_doc.update(_word_terms(words))
        char_doc.update(_char_terms(words))
    return word_doc, char_doc, [" ".join(tokens(question)) for question in questions]


class FaqIndex:
    """A knowledge base prepared for matching; build once, ask many times (thread-safe reads)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        answer_threshold: float = ANSWER_THRESHOLD,
        suggest_threshold: float = SUGGEST_THRESHOLD,
        margin: float = MARGIN,
        params: MatchParams | None = None,
    ) -> None:
        self.kb = kb
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self.margin = margin
        self.params = params or MatchParams()
        self._entries: list[FaqEntry] = list(kb.entries)
        self._by_id: dict[str, FaqEntry] = {entry.id: entry for entry in self._entries}
        self._position = {entry.id: i for i, entry in enumerate(self._entries)}
        docs = [_entry_docs(entry) for entry in self._entries]
        self._word = _WeightedTerms([word for word, _, _ in docs], self.params.k1, self.params.b)
        self._char = _WeightedTerms([char for _, char, _ in docs], self.params.k1, self.params.b)
        self._phrasings: list[list[str]] = [phrasings for _, _, phrasings in docs]
        self._vocab: list[frozenset[str]] = [
            frozenset(term for term in word if "_" not in term) for word, _, _ in docs
        ]
        # A question typed exactly as one of an entry's phrasings is that entry, whatever the
        # scores of its neighbours (an administrator just added it for that reason).
        self._exact: dict[str, str] = {}
        for entry, phrasings in zip(self._entries, self._phrasings, strict=True):
            for phrasing in phrasings:
                self._exact.setdefault(phrasing, entry.id)

    @classmethod
    def build(
        cls,
        kb: KnowledgeBase,
        *,
        answer_threshold: float = ANSWER_THRESHOLD,
        suggest_threshold: float = SUGGEST_THRESHOLD,
        margin: float = MARGIN,
        params: MatchParams | None = None,
    ) -> FaqIndex:
        """Precompute everything matching needs from ``kb``."""
        return cls(
            kb,
            answer_threshold=answer_threshold,
            suggest_threshold=suggest_threshold,
            margin=margin,
            params=params,
        )

    def _score(self, text: str) -> list[float]:
        words = tokens(text)
        n_docs = len(self._entries)
        if not words:
            return [0.0] * n_docs
        p = self.params
        word = self._word.scores(set(_word_terms(words)), n_docs)
        char = self._char.scores(set(_char_terms(words)), n_docs)
        scores = [p.word_weight * w + p.char_weight * c for w, c in zip(word, char, strict=True)]
        query = " ".join(words)
        for index in heapq.nlargest(SHORTLIST, range(n_docs), key=scores.__getitem__):
            similarity = max(fuzz.token_set_ratio(query, q) for q in self._phrasings[index])
            scores[index] += p.fuzzy_weight * similarity / 100.0
        return scores

    def missing_share(self, text: str, entry_id: str, words: list[str] | None = None) -> float:
        """The share (by IDF) of the query's key content words that the entry does not cover.

        Overall similarity cannot tell "quên mật khẩu Zalo" from "quên mật khẩu": the words the
        two share dominate. The word that names the topic is rare ("zalo", "vneid", "đảng phí"),
        so it carries a high IDF; when the entry lacks it, the entry answers another question.
        ``words`` are ``tokens(text)`` when the caller has them already.
        """
        vocab = self._vocab[self._position[entry_id]]
        idf, unknown = self._word.idf, self._word.unknown_idf
        key_mass = missing_mass = 0.0
        for word in set(tokens(text[:MAX_CHARS]) if words is None else words) - FUNCTION_WORDS:
            if word.isdigit():
                continue
            weight = idf.get(word, unknown)
            if weight < self.params.key_idf or word in vocab:
                key_mass += weight if weight >= self.params.key_idf else 0.0
                continue
            key_mass += weight
            if (
                word not in idf
                and len(word) >= FUZZY_MIN_LEN
                and process.extractOne(word, vocab, scorer=fuzz.ratio, score_cutoff=FUZZY_WORD)
            ):
                continue  # a typo of one of the entry's words
            missing_mass += weight
        return missing_mass / key_mass if key_mass else 0.0

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every entry id with its score in [0, 1], best first."""
        best = self._score(text[:MAX_CHARS] if isinstance(text, str) else "")
        order = sorted(range(len(best)), key=lambda i: (-best[i], i))
        return [(self._entries[i].id, min(1.0, best[i])) for i in order]

    def ask(self, text: str, lang: str | None = None, limit: int = 3) -> Decision:
        """Answer, suggest up to ``limit`` entries, or say none.

        Each candidate shows its entry's first question in ``lang`` ("vi"/"en"), or in the
        language the text looks written in when ``lang`` is None.
        """
        text = text if isinstance(text, str) else ""
        ranked = self.rank(text)
        words = tokens(text[:MAX_CHARS])
        exact = self._exact.get(" ".join(words))
        if exact is not None:
            cap = 1.0 - 2 * self.margin  # the exact entry leads by more than the margin
            ranked = [(exact, 1.0)] + [(i, min(s, cap)) for i, s in ranked if i != exact]
        kind, shown = decide(
            ranked,
            answer_threshold=self.answer_threshold,
            suggest_threshold=self.suggest_threshold,
            margin=self.margin,
            limit=limit,
        )
        if kind == "answer" and len(text) > LONG_MESSAGE:
            kind = "suggest"
        if (
            kind == "answer"
            and exact is None
            and self.missing_share(text, shown[0][0], words) > self.params.max_missing
        ):
            kind = "suggest"  # similar words, but the entry does not cover what is asked
        shown_lang: Lang = "en" if lang == "en" else "vi" if lang == "vi" else detect_language(text)
        candidates = [
            Candidate(entry_id, self._by_id[entry_id].questions[shown_lang][0], score)
            for entry_id, score in shown
        ]
        return Decision(kind, candidates)
