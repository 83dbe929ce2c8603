"""FAQ matching: members' chat typing finds the right entry; garbage never gets an answer."""

from __future__ import annotations

import time
import unicodedata

import pytest

from bot.faq.kb import DEFAULT_KB_PATH, load_kb
from bot.faq.matcher import Decision, FaqIndex


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.build(load_kb(DEFAULT_KB_PATH))


def _top(decision: Decision) -> str:
    return decision.candidates[0].entry_id


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [
        ("ko nhan dc ma otp", "otp_not_received"),
        ("quên mk", "forgot_password"),
        ("sdt doi roi dang nhap ko dc", "changed_phone_number"),
        ("ứng dụng báo không tìm thấy thông tin đảng viên", "info_not_found"),
        ("chi bo hop may lan 1 thang", "meeting_frequency"),
        ("I forgot my password", "forgot_password"),
        ("How long does a cell meeting have to last?", "meeting_duration"),
    ],
)
def test_member_typing_gets_the_right_answer(index: FaqIndex, text: str, entry_id: str) -> None:
    decision = index.ask(text)
    assert decision.decision == "answer"
    assert _top(decision) == entry_id


def test_english_question_is_shown_in_english(index: FaqIndex) -> None:
    decision = index.ask("I never get the OTP code")
    assert _top(decision) == "otp_not_received"
    assert decision.candidates[0].question == "I don't receive the OTP code"


def test_vietnamese_question_is_shown_in_vietnamese_unless_lang_given(index: FaqIndex) -> None:
    assert index.ask("quen mat khau").candidates[0].question == "Quên mật khẩu Sổ tay đảng viên"
    assert index.ask("quen mat khau", lang="en").candidates[0].question == "I forgot my password"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "😀🙏👍🎉",
        "?!.,;:...!!!",
        "a" * 5000,
        ("lorem ipsum dolor sit amet consectetur " * 130)[:5000],
        "你好，我想问一下明天天气怎么样",
        "Здравствуйте, как у вас дела сегодня?",
        "SELECT * FROM users WHERE id = 1; DROP TABLE members;--",
        "<html><body><script>alert('x')</script><div class='a'>hi</div></body></html>",
        "xin chào, cảm ơn nhé",
    ],
)
def test_garbage_gets_no_candidates(index: FaqIndex, text: str) -> None:
    decision = index.ask(text)
    assert decision.decision == "none"
    assert decision.candidates == []


def test_long_story_with_a_question_is_at_most_suggested(index: FaqIndex) -> None:
    story = "Hôm nay trời mưa to, cả nhà tôi ở nhà làm việc vặt và nói chuyện. " * 10
    decision = index.ask(story + "Tôi quên mật khẩu sổ tay rồi, làm sao lấy lại?")
    assert decision.decision == "suggest"
    assert _top(decision) == "forgot_password"


def test_very_long_message_is_never_answered_outright(index: FaqIndex) -> None:
    question = "Tôi quên mật khẩu sổ tay rồi. "
    assert index.ask(question).decision == "answer"
    decision = index.ask(question * 30)
    assert decision.decision == "suggest"
    assert _top(decision) == "forgot_password"


def test_one_ambiguous_word_is_suggested_not_answered(index: FaqIndex) -> None:
    decision = index.ask("mật khẩu")
    assert decision.decision == "suggest"
    assert {"forgot_password", "change_password"} <= {c.entry_id for c in decision.candidates}


@pytest.mark.parametrize(
    "text",
    ["Tôi quên mật khẩu đăng nhập", "Không nhận được mã OTP", "Đổi số điện thoại rồi"],
)
def test_nfd_input_gives_the_same_result_as_nfc(index: FaqIndex, text: str) -> None:
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert index.ask(nfd).to_json() == index.ask(text).to_json()


def test_invisible_characters_do_not_change_the_result(index: FaqIndex) -> None:
    noisy = "\u200bquên\u200d mật\u2066 khẩu\ufeff"
    assert index.ask(noisy).to_json() == index.ask("quên mật khẩu").to_json()


def test_non_text_input_does_not_raise(index: FaqIndex) -> None:
    assert index.ask(None).decision == "none"  # type: ignore[arg-type]


def test_to_json_shape_and_scores(index: FaqIndex) -> None:
    data = index.ask("không nhận được otp").to_json()
    assert data["decision"] == "answer"
    scores = [c["score"] for c in data["candidates"]]
    assert set(data["candidates"][0]) == {"id", "question", "score"}
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_limit_caps_the_candidates(index: FaqIndex) -> None:
    assert len(index.ask("mật khẩu", limit=1).candidates) == 1
    assert len(index.ask("mật khẩu", limit=3).candidates) == 3


def test_thresholds_are_constructor_parameters() -> None:
    strict = FaqIndex.build(load_kb(DEFAULT_KB_PATH), answer_threshold=1.01)
    decision = strict.ask("ko nhan dc ma otp")
    assert decision.decision == "suggest"
    assert _top(decision) == "otp_not_received"


def test_rank_scores_every_entry_in_unit_interval(index: FaqIndex) -> None:
    ranked = index.rank("lịch họp chi bộ xem ở đâu")
    assert len(ranked) == len(load_kb(DEFAULT_KB_PATH).entries)
    assert all(0.0 <= score <= 1.0 for _, score in ranked)
    assert ranked[0][0] == "meeting_schedule"


def test_matching_is_fast(index: FaqIndex) -> None:
    texts = ["ko nhan dc ma otp", "quên mk", "lịch họp ở đâu", "I can't log in"] * 50
    start = time.perf_counter()
    for text in texts:
        index.ask(text)
    mean_ms = (time.perf_counter() - start) * 1000 / len(texts)
    assert mean_ms < 5.0


@pytest.mark.parametrize(
    ("text", "near"),
    [
        ("quên mật khẩu Zalo thì lấy lại sao", "forgot_password"),
        ("VNeID đăng nhập không được", "cannot_login"),
        ("how do I reset my Gmail password", "forgot_password"),
    ],
)
def test_a_question_about_another_app_is_suggested_not_answered(
    index: FaqIndex, text: str, near: str
) -> None:
    """Issue 16: the topic word ("zalo", "vneid", "gmail") is missing from the entry."""
    decision = index.ask(text)
    assert decision.decision != "answer"
    assert index.missing_share(text, near) > index.params.max_missing


@pytest.mark.parametrize(
    "text", ["quên mật khẩu sổ tay", "quen mat khaaur so tay", "I forgot my handbook password"]
)
def test_the_same_words_about_the_handbook_are_still_answered(index: FaqIndex, text: str) -> None:
    """Function words and typos of the entry's words do not count as missing."""
    decision = index.ask(text)
    assert (decision.decision, _top(decision)) == ("answer", "forgot_password")
    assert index.missing_share(text, "forgot_password") == 0.0
