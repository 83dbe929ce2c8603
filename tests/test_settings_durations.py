"""Durations in settings: compound values are read, and a ticket SLA under a minute is refused
with a sentence naming the setting (issue 15)."""

from __future__ import annotations

from datetime import timedelta

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
    assert parse_duration(settings.ticket_sla) == timedelta(minutes=90)
    assert load_settings(ticket_sla="1m", _env_file=None).ticket_sla == "1m"
