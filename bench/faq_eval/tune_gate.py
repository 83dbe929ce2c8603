"""Choose the coverage gate's settings (key-word IDF, largest missing share) on tuning data only.

Run ``.venv/bin/python -m bench.faq_eval.tune_gate`` from the project root. The pool is every
split already looked at (dev, dev2, test, fresh, fresh2 after its single sealed run, final3 after
its single run) plus the out-of-scope dev set ``oos``; the sealed split ``final4`` is never read
here. Prints one line per setting. Chosen (written by hand as the defaults in
bot/faq/matcher.py): answer 0.42, margin 0.08, max_missing 0.3, the strictest setting that still
answers the typical member questions of tests/test_faq_matcher.py (0.5 turns some into
suggestions); final3 showed that the pool understates out-of-scope answers about threefold.
"""

from __future__ import annotations

from bot.faq.kb import DEFAULT_KB_PATH, load_kb
from bot.faq.matcher import FaqIndex, MatchParams

from .evaluate import load_questions, score_outcomes

POOL = ("dev", "dev2", "test", "fresh", "fresh2", "oos", "final3")


def main() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    pool = [q for split in POOL for q in load_questions(split)]
    for answer_threshold, margin in ((0.34, 0.04), (0.42, 0.04), (0.42, 0.08), (0.5, 0.08)):
        for max_missing in (0.3, 0.35, float("inf")):
            index = FaqIndex.build(
                kb,
                answer_threshold=answer_threshold,
                margin=margin,
                params=MatchParams(max_missing=max_missing),
            )
            outcomes = []
            for q in pool:
                decision = index.ask(q.text)
                outcomes.append((decision.decision, [c.entry_id for c in decision.candidates]))
            m = score_outcomes(pool, outcomes)
            print(
                f"answer {answer_threshold} margin {margin} max_missing {max_missing}: "
                f"top-1 {m.top1:.3f} "
                f"answered {m.answered:.3f} confident wrong {m.confident_wrong:.4f} "
                f"(covered {m.covered_wrong:.4f}) out-of-scope answered {m.oos_answered:.3f}"
            )


if __name__ == "__main__":
    main()
