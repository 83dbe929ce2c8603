"""The FAQ knowledge base file: the shipped one is complete, broken ones are refused loudly."""

from __future__ import annotations

import textwrap
import unicodedata
from pathlib import Path

import pytest

from bot.faq.kb import DEFAULT_KB_PATH, FaqFileError, dump_kb, load_kb

GOOD = textwrap.dedent(
    """\
    version: 1
    topics:
      - id: account
        title: {vi: "Tài khoản", en: "Account"}
    entries:
      - id: forgot_password
        topic: account
        questions:
          vi: ["Quên mật khẩu"]
          en: ["I forgot my password"]
        answer:
          vi: "Bấm Quên mật khẩu.\\nNhập mã OTP."
          en: "Tap forgot password.\\nEnter the OTP."
    """
)

SECOND_ENTRY = (
    "  - id: {id}\n"
    "    topic: {topic}\n"
    "    questions:\n"
    '      vi: ["Không nhận được OTP"]\n'
    '      en: ["No OTP"]\n'
    "    answer:\n"
    '      vi: "Chờ rồi gửi lại mã."\n'
    '      en: "{en_answer}"\n'
)


def _with_second(entry_id: str = "otp", topic: str = "account", en_answer: str = "Wait.") -> str:
    return GOOD + SECOND_ENTRY.format(id=entry_id, topic=topic, en_answer=en_answer)


def test_shipped_kb_has_enough_bilingual_entries() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    assert kb.version == 1
    assert len(kb.entries) >= 45
    for entry in kb.entries:
        assert 3 <= len(entry.questions["vi"]) <= 6, entry.id
        assert 2 <= len(entry.questions["en"]) <= 3, entry.id
        for lang in ("vi", "en"):
            assert 2 <= len(entry.answer[lang].splitlines()) <= 6, (entry.id, lang)


def test_shipped_file_is_nfc_utf8() -> None:
    raw = DEFAULT_KB_PATH.read_text(encoding="utf-8")
    assert unicodedata.normalize("NFC", raw) == raw


def test_shipped_vietnamese_answers_address_members_politely() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    addressed = [e.id for e in kb.entries if "đồng chí" in e.answer["vi"]]
    assert len(addressed) >= len(kb.entries) // 2


def test_dump_round_trips_and_keeps_vietnamese_readable() -> None:
    kb = load_kb(DEFAULT_KB_PATH)
    text = dump_kb(kb)
    assert load_kb(text) == kb
    assert "Sổ tay đảng viên" in text
    assert "\\u" not in text


def test_loads_from_path_string_and_text(tmp_path: Path) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_kb(path) == load_kb(str(path)) == load_kb(GOOD)
    assert load_kb(GOOD).get("forgot_password").answer["en"].startswith("Tap")


def test_nfd_text_is_stored_as_nfc() -> None:
    kb = load_kb(unicodedata.normalize("NFD", GOOD))
    question = kb.entries[0].questions["vi"][0]
    assert question == unicodedata.normalize("NFC", "Quên mật khẩu")


def test_duplicate_id_is_refused() -> None:
    with pytest.raises(FaqFileError, match="duplicate id 'forgot_password'"):
        load_kb(_with_second(entry_id="forgot_password"))


def test_missing_answer_language_is_refused() -> None:
    text = GOOD.replace('      en: "Tap forgot password.\\nEnter the OTP."\n', "")
    with pytest.raises(FaqFileError, match=r"entry 'forgot_password' answer: missing .*en"):
        load_kb(text)


def test_missing_questions_are_refused() -> None:
    text = GOOD.replace(
        '    questions:\n      vi: ["Quên mật khẩu"]\n      en: ["I forgot my password"]\n', ""
    )
    with pytest.raises(FaqFileError, match="questions are missing"):
        load_kb(text)


def test_entry_id_must_fit_in_button_data() -> None:
    with pytest.raises(FaqFileError, match="id must be 1-32 of a-z"):
        load_kb(_with_second(entry_id="OTP not received"))


def test_unknown_topic_is_refused() -> None:
    with pytest.raises(FaqFileError, match="unknown topic 'weather'"):
        load_kb(_with_second(topic="weather"))


def test_wrong_types_are_refused() -> None:
    text = GOOD.replace('vi: ["Quên mật khẩu"]', 'vi: "Quên mật khẩu"')
    with pytest.raises(FaqFileError, match=r"questions\.vi: must be a non-empty list"):
        load_kb(text)


def test_bad_yaml_names_the_line() -> None:
    lines = GOOD.splitlines()
    lines[6] = "    topic: [account"  # line 7: an unclosed flow sequence
    with pytest.raises(FaqFileError, match=r"not valid YAML \(line \d+") as caught:
        load_kb("\n".join(lines))
    line = int(str(caught.value).split("line ")[1].split(",")[0])
    assert 7 <= line <= 9


def test_every_problem_is_reported_and_nothing_is_returned() -> None:
    text = _with_second(entry_id="forgot_password", topic="weather", en_answer="")
    with pytest.raises(FaqFileError) as caught:
        load_kb(text)
    problems = caught.value.problems
    assert any("duplicate id" in p for p in problems)
    assert any("unknown topic 'weather'" in p for p in problems)
    assert any("answer.en" in p for p in problems)


def test_unreadable_path_is_a_faq_file_error(tmp_path: Path) -> None:
    with pytest.raises(FaqFileError, match="cannot read FAQ file"):
        load_kb(tmp_path / "missing.yaml")
