"""Signed button data: what a modified client can send is refused politely, never a crash."""

from __future__ import annotations

import pytest

from bot.buttons import ButtonSigner
from bot.secrecy import RedactingFilter, redact, remember, secret_matches, shown_url


def test_signed_data_round_trips_and_forgeries_are_refused() -> None:
    signer = ButtonSigner(b"key")
    signed = signer.sign("a:appr:12:y")
    assert signer.verify(signed) == "a:appr:12:y"
    assert signer.verify(signed.replace("12", "13")) is None
    assert ButtonSigner(b"other").verify(signed) is None


@pytest.mark.parametrize(
    "raw",
    ["a:appr:1:y~ñññññññ", "đ~đđđđđđđđ", "a~\udcff\udcfe", "", "~", "x" * 5000, "a:b~" + "é" * 8],
)
def test_odd_bytes_are_a_stale_button_not_an_error(raw: str) -> None:
    assert ButtonSigner(b"key").verify(raw) is None


def test_secrets_compare_as_bytes() -> None:
    assert secret_matches("abc", "abc") and not secret_matches("abd", "abc")
    assert not secret_matches("sécret", "secret") and not secret_matches(None, "x")
    assert not secret_matches("", "") and not secret_matches("x", None)  # no secret: refuse


def test_passwords_and_tokens_are_masked() -> None:
    remember("Zz-token-123456")
    assert redact("token=Zz-token-123456 rest") == "token=*** rest"
    assert shown_url("postgresql+asyncpg://u:pw-998877@h/db") == "postgresql+asyncpg://u:***@h/db"
    import logging

    record = logging.LogRecord("x", logging.INFO, "f", 1, "connect %s", ("Zz-token-123456",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "connect ***"
