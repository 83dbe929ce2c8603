"""Matching keys: diacritics, NFD, invisible characters and chat shorthand all fold together."""

from __future__ import annotations

import unicodedata

import pytest

from bot.faq.text import clean, detect_language, fold, syllables, tokens


def test_fold_removes_diacritics_including_d_stroke() -> None:
    assert fold("Đảng viên ĐÃ đăng nhập") == "dang vien da dang nhap"


def test_nfd_and_invisible_characters_clean_to_the_same_text() -> None:
    nfc = "Quên mật khẩu"
    messy = "\u200b" + unicodedata.normalize("NFD", nfc) + "\u202e\ufeff"
    assert clean(messy) == clean(nfc) == "quên mật khẩu"


def test_syllables_drop_punctuation() -> None:
    assert syllables("Sổ tay (đảng viên)?!") == ["so", "tay", "dang", "vien"]


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("quên mk", "quen mat khau"),
        ("quen pass", "quen mat khau"),
        ("ko nhận đc mã xác thực", "khong nhan duoc otp"),
        ("k nhan dc ma otp", "khong nhan duoc otp"),
        ("đổi sđt", "doi so dien thoai"),
        ("số đt mới", "so dien thoai moi"),
        ("đv cb", "dang vien chi bo"),
        ("tk bị khóa", "tai khoan bi khoa"),
        ("ko đn được app", "khong dang nhap duoc ung dung"),
        ("phần mềm", "ung dung"),
        ("ns cho bí thư", "nhan cho bi thu"),
    ],
)
def test_chat_abbreviations_expand_to_one_spelling(typed: str, canonical: str) -> None:
    assert " ".join(tokens(typed)) == canonical


def test_particles_and_greetings_are_dropped() -> None:
    assert tokens("Chào ad ạ, em cảm ơn nhé") == []


def test_english_plurals_are_stemmed() -> None:
    assert tokens("documents") == tokens("document")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Tôi quên mật khẩu", "vi"),
        ("ko nhan dc ma otp", "vi"),
        ("sdt doi roi dang nhap ko dc", "vi"),
        ("I forgot my password", "en"),
        ("where is the meeting schedule", "en"),
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    assert detect_language(text) == lang
