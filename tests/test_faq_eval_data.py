"""The FAQ evaluation set is sound: enough labelled questions, valid labels, honest splits."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.faq_eval.evaluate import NONE, SPLITS, Question, load_questions, score_outcomes
from bot.faq.kb import DEFAULT_KB_PATH, load_kb
from bot.faq.text import fold


def test_enough_questions_with_known_labels() -> None:
    questions = load_questions()
    ids = {entry.id for entry in load_kb(DEFAULT_KB_PATH).entries}
    assert len(questions) >= 320
    assert {q.expected for q in questions} <= ids | {NONE}
    assert {q.split for q in questions} == {"dev", "test"}
    uncovered = sum(q.expected == NONE for q in questions) / len(questions)
    assert 0.08 <= uncovered <= 0.13


def test_splits_are_balanced_and_stratified() -> None:
    questions = load_questions()
    dev = Counter(q.expected for q in questions if q.split == "dev")
    test = Counter(q.expected for q in questions if q.split == "test")
    assert abs(sum(dev.values()) - sum(test.values())) <= 0.1 * len(questions)
    assert set(dev) == set(test)


def test_no_question_is_a_stored_phrasing() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    stored = {fold(q) for e in kb.entries for lang in ("vi", "en") for q in e.questions[lang]}
    asked = [q for split in SPLITS for q in load_questions(split)]
    copied = [q.text for q in asked if fold(q.text) in stored]
    assert copied == []


@pytest.mark.parametrize(("split", "before"), [("fresh", ()), ("fresh2", ("dev2", "fresh"))])
def test_fresh_splits_are_sound_held_out_sets(split: str, before: tuple[str, ...]) -> None:
    fresh = load_questions(split)
    ids = {entry.id for entry in load_kb(DEFAULT_KB_PATH).entries}
    assert len(fresh) >= 150
    assert {q.split for q in fresh} == {split}
    labels = {q.expected for q in fresh}
    assert labels <= ids | {NONE} and NONE in labels
    assert len(labels) >= 56, "every entry of the base when it was written, and uncovered ones"
    earlier = {fold(q.text) for q in load_questions()}
    earlier |= {fold(q.text) for name in before for q in load_questions(name)}
    assert [q.text for q in fresh if fold(q.text) in earlier] == []


def test_development_questions_are_labelled_with_known_entries() -> None:
    dev2 = load_questions("dev2")
    ids = {entry.id for entry in load_kb(DEFAULT_KB_PATH).entries}
    assert len(dev2) >= 150 and {q.split for q in dev2} == {"dev2"}
    assert {q.expected for q in dev2} <= ids | {NONE}


def test_metrics_follow_their_definitions() -> None:
    questions = [
        Question("a", "otp", "vi", "dev"),
        Question("b", "otp", "vi", "dev"),
        Question("c", NONE, "none", "dev"),
        Question("d", NONE, "none", "dev"),
    ]
    outcomes = [
        ("answer", ["otp", "x"]),
        ("suggest", ["x", "otp"]),
        ("answer", ["x"]),
        ("none", []),
    ]
    metrics = score_outcomes(questions, outcomes)
    assert (metrics.top1, metrics.top3) == (0.5, 1.0)
    assert metrics.answered == 0.5
    assert metrics.confident_wrong == 0.25
    assert metrics.kept_out == 0.5
    assert (metrics.covered_wrong, metrics.oos_answered) == (0.0, 0.5)


@pytest.mark.parametrize(("split", "later"), [("final3", ("final4",)), ("final4", ())])
def test_out_of_scope_sets_are_big_enough_and_new(split: str, later: tuple[str, ...]) -> None:
    """Issue 16: >= 60 out-of-scope questions in each sealed split, and a separate dev set."""
    final = load_questions(split)
    oos = load_questions("oos")
    assert sum(q.expected == NONE for q in final) >= 60
    assert len(oos) >= 60 and {q.expected for q in oos} == {NONE}
    assert sum(q.expected != NONE for q in final) >= 60
    ids = {entry.id for entry in load_kb(DEFAULT_KB_PATH).entries}
    assert {q.expected for q in final} <= ids | {NONE}
    earlier = {
        fold(q.text) for name in SPLITS if name not in (split, *later) for q in load_questions(name)
    }
    assert [q.text for q in final if fold(q.text) in earlier] == []
