"""``sotay report`` reads its three settings without pydantic-settings (bot/quick_settings.py);
on the same environment and .env file it must read what ``bot.settings`` reads, and refuse
what it refuses with the same sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.quick_settings import QuickSettingsError, read_quick_settings
from bot.settings import SettingsError, load_settings

pytestmark = pytest.mark.engine_neutral
NAMES = ("SOTAY_DATABASE_URL", "SOTAY_DEFAULT_LANGUAGE", "SOTAY_TIMEZONE")


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    ("environ", "dotenv"),
    [
        ({}, ""),
        ({"SOTAY_DATABASE_URL": "sqlite:///x.db", "SOTAY_DEFAULT_LANGUAGE": "en"}, ""),
        ({}, 'SOTAY_DATABASE_URL="postgresql://u:secret@h/db"\nSOTAY_TIMEZONE=Asia/Bangkok\n'),
        (
            {"SOTAY_TIMEZONE": "UTC"},
            "# a comment\nexport SOTAY_TIMEZONE=Asia/Tokyo\nSOTAY_DEFAULT_LANGUAGE='en'\n",
        ),
        ({"sotay_default_language": "en"}, "SOTAY_DEFAULT_LANGUAGE=vi  # inline comment\n"),
        ({}, "SOTAY_DATABASE_URL=postgres://h/db\nSOTAY_TELEGRAM_TOKEN=x\n"),
    ],
)
def test_reads_what_the_full_settings_read(
    clean: pytest.MonkeyPatch, environ: dict[str, str], dotenv: str
) -> None:
    for name, value in environ.items():
        clean.setenv(name, value)
    if dotenv:
        Path(".env").write_text(dotenv, encoding="utf-8")
    full, quick = load_settings(), read_quick_settings()
    assert (quick.database_url, quick.default_language, quick.timezone) == (
        full.database_url,
        full.default_language,
        full.timezone,
    )
    assert quick.tz == full.tz


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOTAY_DEFAULT_LANGUAGE", "fr"),
        ("SOTAY_TIMEZONE", "Mars/Olympus"),
        ("SOTAY_DATABASE_URL", "mysql://h/db"),
    ],
)
def test_refuses_what_the_full_settings_refuse(
    clean: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean.setenv(name, value)
    with pytest.raises(SettingsError) as full:
        load_settings()
    with pytest.raises(QuickSettingsError) as quick:
        read_quick_settings()
    assert str(quick.value) == str(full.value)
