"""FAQ answering for members' free-text questions: a pure library, no database, no chat I/O.

Typical use (build once at start-up, then ask per message)::

    from bot.faq import DEFAULT_KB_PATH, FaqIndex, load_kb

    kb = load_kb(DEFAULT_KB_PATH)          # raises FaqFileError with every problem listed
    index = FaqIndex.build(kb)
    decision = index.ask(text, lang="vi")  # "answer" | "suggest" | "none"
    if decision.decision == "answer":
        reply = kb.get(decision.candidates[0].entry_id).answer["vi"]

Modules: ``text`` (normalisation, folding, chat abbreviations), ``kb`` (the YAML knowledge base),
``matcher`` (ranking and the answer/suggest/none decision). Figures: docs/benchmarks.md.
"""

from bot.faq.kb import (
    DEFAULT_KB_PATH,
    FaqEntry,
    FaqFileError,
    FaqTopic,
    KnowledgeBase,
    dump_kb,
    load_kb,
)
from bot.faq.matcher import Candidate, Decision, FaqIndex, MatchParams

__all__ = [
    "DEFAULT_KB_PATH",
    "Candidate",
    "Decision",
    "FaqEntry",
    "FaqFileError",
    "FaqIndex",
    "FaqTopic",
    "KnowledgeBase",
    "MatchParams",
    "dump_kb",
    "load_kb",
]
