"""The three settings a read-only command needs, read without pydantic-settings.

``sotay report`` must answer within a second, start-up included; loading ``bot.settings``
(pydantic-settings, every validator, the public-holiday calendar) took 0.35 s of it. This reads
``SOTAY_DATABASE_URL``, ``SOTAY_DEFAULT_LANGUAGE`` and ``SOTAY_TIMEZONE`` the way
``bot.settings.Settings`` does — the environment first (names case-insensitive), then ``.env``
in the working directory, then the same defaults — and checks them by the same rules.
tests/test_quick_settings.py compares the two on the same inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULTS = {
    "database_url": "sqlite+aiosqlite:///sotay.db",
    "default_language": "vi",
    "timezone": "Asia/Ho_Chi_Minh",
}


class QuickSettingsError(ValueError):
    """A setting a quick command needs is invalid; worded like bot.settings' errors."""


class ReportSettings(Protocol):
    """What ``sotay report`` reads: ``bot.settings.Settings`` has it, and so does this module's
    ``QuickSettings``."""

    @property
    def database_url(self) -> str: ...

    @property
    def default_language(self) -> str: ...

    @property
    def tz(self) -> ZoneInfo: ...


@dataclass(frozen=True)
class QuickSettings:
    database_url: str
    default_language: str
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``export`` and quotes allowed, # comments skipped), as python-dotenv."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip().lower()] = value
    return values


def async_driver(url: str) -> str:
    """The URL with the async driver the engine needs (bot.settings' rule)."""
    if url.startswith("sqlite:///"):
        url = url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise QuickSettingsError("must be a sqlite:/// or postgresql:// URL")
    return url


def read_quick_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path = Path(".env")
) -> QuickSettings:
    source = os.environ if environ is None else environ
    env = {key.lower(): value for key, value in source.items()}
    from_file = _dotenv(dotenv)

    def value(name: str) -> str:
        key = "sotay_" + name
        return env.get(key, from_file.get(key, DEFAULTS[name]))

    language = value("default_language")
    if language not in ("vi", "en"):
        raise QuickSettingsError("Setting SOTAY_DEFAULT_LANGUAGE is invalid: must be 'vi' or 'en'.")
    timezone = value("timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise QuickSettingsError(
            f"Setting SOTAY_TIMEZONE is invalid: '{timezone}' is not a known time zone."
        ) from None
    try:
        url = async_driver(value("database_url"))
    except QuickSettingsError as exc:
        raise QuickSettingsError(f"Setting SOTAY_DATABASE_URL is invalid: {exc}.") from None
    from bot.secrecy import remember, url_password

    remember(url_password(url))  # masked in any error line, as load_settings does
    return QuickSettings(url, language, timezone)
