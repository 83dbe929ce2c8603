"""Durations in settings: compound values are read, and a ticket SLA under a minute is refused
with a sentence naming the setting (issue 15)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from bot.settings import SettingsError, load_settings, parse_duration


def test_compound_durations_add_up() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1d 2h") == timedelta(hours=26)
    assert parse_duration("45s") == timedelta(seconds=45)
    with pytest.raises(ValueError, match="1h30m"):
        parse_duration("1h30")


@pytest.mark.parametrize("value", ["0s", "30s", "0m", "59s"])
def test_a_ticket_sla_under_a_minute_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="SOTAY_TICKET_SLA.*shorter than a minute"):
        load_settings(ticket_sla=value, _env_file=None)


def test_compound_ticket_sla_is_accepted() -> None:
    settings = load_settings(ticket_sla="1h30m", _env_file=None)
    assert settings.ticket_sla == timedelta(minutes=90)
    assert load_settings(ticket_sla="1m", _env_file=None).ticket_sla == timedelta(minutes=1)


def test_text_settings_are_typed_values_read_once_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The environment's text (not JSON) becomes the typed value; a test's assignment too."""
    monkeypatch.setenv("SOTAY_REMINDER_OFFSETS", "2h,1d")
    monkeypatch.setenv("SOTAY_QUIET_HOURS", "22:00-6:30")
    monkeypatch.setenv("SOTAY_WORKING_HOURS", "Sat 08:00-12:00")
    monkeypatch.setenv("SOTAY_HOLIDAYS", "2026-12-07, 2026-12-08")
    monkeypatch.setenv("SOTAY_OUTBOX_LEASE", "1m30s")
    settings = load_settings(_env_file=None)
    assert settings.reminder_offsets == (timedelta(days=1), timedelta(hours=2))
    assert settings.quiet_hours == (time(22), time(6, 30))
    assert settings.working_hours.week == {5: ((time(8), time(12)),)}
    assert settings.holidays == frozenset({date(2026, 12, 7), date(2026, 12, 8)})
    assert settings.outbox_lease == timedelta(seconds=90)
    assert settings.work_calendar.is_holiday(date(2026, 12, 8))
    settings.holidays = "2026-12-09"  # type: ignore[assignment]
    assert settings.work_calendar.is_holiday(date(2026, 12, 9))
    assert not settings.work_calendar.is_holiday(date(2026, 12, 8))
    monkeypatch.setenv("SOTAY_QUIET_HOURS", "")
    assert load_settings(_env_file=None).quiet_hours is None


def test_defaults_are_the_documented_texts_parsed() -> None:
    settings = load_settings(_env_file=None)
    assert settings.ticket_sla == timedelta(hours=4)
    assert settings.reminder_offsets == (timedelta(hours=24), timedelta(hours=2))
    assert settings.quiet_hours == (time(21), time(7))
    assert set(settings.working_hours.week or {}) == {0, 1, 2, 3, 4}  # Mon-Fri
    assert settings.holidays == frozenset()


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        ("SOTAY_REMINDER_OFFSETS", "2h,soon", "'soon' is not a duration"),
        ("SOTAY_QUIET_HOURS", "9pm-7am", "must look like 21:00-07:00"),
        ("SOTAY_WORKING_HOURS", "Mon-Fri", "needs days and spans"),
        ("SOTAY_OUTBOX_RETENTION", "12h", "must be at least 1d"),
    ],
)
def test_bad_text_from_the_environment_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, sentence: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^Setting {name} is invalid: .*{sentence}"):
        load_settings(_env_file=None)
