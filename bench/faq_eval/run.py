"""Evaluate the FAQ matcher against a plain fuzzy baseline on the labelled questions.

Run from the project root: ``.venv/bin/python -m bench.faq_eval.run [--split SPLIT]`` (test by
default; dev, dev2, fresh, fresh2, oos, final3; final4 is sealed: run it once). It tunes nothing:
matcher runs with its defaults, the
baseline with ``BASELINE_POLICY``; both were chosen on the tuning splits by
``bench.faq_eval.tune``. Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Sequence

from bot.faq.kb import DEFAULT_KB_PATH, load_kb
from bot.faq.matcher import FaqIndex, MatchParams

from .evaluate import (
    BASELINE_POLICY,
    NONE,
    SPLITS,
    Metrics,
    Outcome,
    Question,
    TokenSetBaseline,
    load_questions,
    score_outcomes,
    timed,
)

Ask = Callable[[str], Outcome]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _row(name: str, metrics: Metrics, timing: tuple[float, float, float]) -> str:
    mean_ms, p99_ms, cpu_ms = timing
    cells = [
        name,
        _pct(metrics.top1),
        _pct(metrics.top3),
        _pct(metrics.answered),
        _pct(metrics.confident_wrong),
        _pct(metrics.covered_wrong),
        _pct(metrics.oos_answered),
        _pct(metrics.kept_out),
        f"{mean_ms:.2f}",
        f"{p99_ms:.2f}",
        f"{cpu_ms:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def _kinds_table(questions: Sequence[Question], results: dict[str, list[Outcome]]) -> list[str]:
    kinds = sorted({q.kind for q in questions if q.expected != NONE})
    lines = [
        "| top-1 by kind | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for name, outcomes in results.items():
        cells = []
        for kind in kinds:
            pairs = [(q, o) for q, o in zip(questions, outcomes, strict=True) if q.kind == kind]
            hits = sum(bool(ids) and ids[0] == q.expected for q, (_, ids) in pairs)
            cells.append(f"{hits}/{len(pairs)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, default="test")
    args = parser.parse_args(argv)

    kb = load_kb(DEFAULT_KB_PATH)
    questions = load_questions(args.split)
    index = FaqIndex.build(kb)
    baseline = TokenSetBaseline(kb)

    def ours(text: str) -> Outcome:
        decision = index.ask(text)
        return decision.decision, [c.entry_id for c in decision.candidates]

    def plain(text: str) -> Outcome:
        return BASELINE_POLICY.apply(baseline.rank(text))

    ungated = FaqIndex.build(  # the matcher before issue 16: its thresholds, no coverage gate
        kb, answer_threshold=0.34, margin=0.04, params=MatchParams(max_missing=float("inf"))
    )

    def before(text: str) -> Outcome:
        decision = ungated.ask(text)
        return decision.decision, [c.entry_id for c in decision.candidates]

    methods: dict[str, Ask] = {
        "ours: BM25 + char 3-grams + fuzzy + coverage gate": ours,
        "previous matcher (no coverage gate)": before,
        "baseline: token_set_ratio": plain,
    }
    covered = sum(q.expected != NONE for q in questions)
    print(
        f"Split `{args.split}`: {len(questions)} questions ({covered} covered, "
        f"{len(questions) - covered} not covered); {len(kb.entries)} FAQ entries; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f} at start.\n"
    )
    print(
        "| method | top-1 | top-3 | answered | confident wrong | wrong of covered "
        "| out-of-scope answered | out-of-scope none | mean ms | p99 ms | CPU ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results: dict[str, list[Outcome]] = {}
    for name, ask in methods.items():
        results[name] = [ask(q.text) for q in questions]
        timing = timed(ask, [q.text for q in questions])
        print(_row(name, score_outcomes(questions, results[name]), timing))
    print()
    print("\n".join(_kinds_table(questions, results)))


if __name__ == "__main__":
    main()
