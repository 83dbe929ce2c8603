"""Choose the coverage gate's settings (key-word IDF, largest missing share) on tuning data only.

Run ``.venv/bin/python -m bench.faq_eval.tune_gate`` from the project root. The pool is every
split already looked at (dev, dev2, test, fresh, fresh2 after its single sealed run) plus the
out-of-scope dev set ``oos``; the sealed split ``final3`` is never read here. Prints one line per
setting; the chosen one (written by hand as ``KEY_IDF``/``MAX_MISSING`` in bot/faq/matcher.py)
is the one answering most questions with confident wrong <= 1% and out-of-scope answered <= 4%
on the pool, a margin below the goals (2% and 5%) for the sealed run.
"""

from __future__ import annotations

from bot.faq.kb import DEFAULT_KB_PATH, load_kb
from bot.faq.matcher import FaqIndex, MatchParams

from .evaluate import load_questions, score_outcomes

POOL = ("dev", "dev2", "test", "fresh", "fresh2", "oos")


def main() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    pool = [q for split in POOL for q in load_questions(split)]
    for key_idf in (1.5, 2.0, 2.5, 3.0):
        for max_missing in (0.2, 0.3, 0.35, 0.4, 0.5, 9.0):
            index = FaqIndex.build(kb, params=MatchParams(key_idf=key_idf, max_missing=max_missing))
            outcomes = []
            for q in pool:
                decision = index.ask(q.text)
                outcomes.append((decision.decision, [c.entry_id for c in decision.candidates]))
            m = score_outcomes(pool, outcomes)
            print(
                f"key_idf {key_idf} max_missing {max_missing}: top-1 {m.top1:.3f} "
                f"answered {m.answered:.3f} confident wrong {m.confident_wrong:.4f} "
                f"(covered {m.covered_wrong:.4f}) out-of-scope answered {m.oos_answered:.3f}"
            )


if __name__ == "__main__":
    main()
