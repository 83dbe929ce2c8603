"""Typed settings read from the environment or a .env file (prefix ``SOTAY_``).

A bad or missing setting must stop the program with one clear sentence, never a traceback:
operators in a committee office read these messages, not developers.

Settings that are written as text (durations, offsets, quiet hours, working hours, holidays)
are parsed once, when the settings are loaded, into typed values: ``ticket_sla`` is a
``timedelta``, ``quiet_hours`` a pair of local times, ``working_hours`` a ``WorkingHours``...
Code reads the field and never splits the text itself. Assigning a field (tests do) parses the
new text the same way (``validate_assignment``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time, timedelta
from functools import cached_property
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PlainValidator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.secrecy import remember, url_password
from bot.workhours import WorkCalendar, WorkingHours, parse_holidays, public_calendar

_DURATION = re.compile(r"^(?:\s*\d+\s*[dhms])+\s*$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


class SettingsError(Exception):
    """A configuration problem, worded for the operator."""


def parse_duration(text: str) -> timedelta:
    """Parse ``3d``, ``24h``, ``30m``, ``45s`` or a sum of them (``1h30m``) into a timedelta."""
    if not _DURATION.match(text):
        raise ValueError(f"'{text}' is not a duration like 3d, 24h, 30m, 45s or 1h30m")
    seconds = sum(
        int(amount) * _UNIT_SECONDS[unit.lower()] for amount, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)


MIN_TICKET_SLA = timedelta(minutes=1)


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """``24h,2h`` → the offsets, longest first."""
    return tuple(sorted((parse_duration(part) for part in text.split(",")), reverse=True))


_QUIET = re.compile(r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """``21:00-07:00`` → (start, end) local times; the span may cross midnight. "" → None."""
    if not text:
        return None
    if not _QUIET.match(text.strip()):
        raise ValueError("must look like 21:00-07:00")
    start, end = text.strip().split("-")
    try:
        return time.fromisoformat(start.zfill(5)), time.fromisoformat(end.zfill(5))
    except ValueError:
        raise ValueError(f"'{text}' is not two times of day like 21:00-07:00") from None


def _from_text(parse: Callable[[str], Any], kind: type | tuple[type, ...]) -> PlainValidator:
    """A setting written as text, read by ``parse`` (its ValueError is the operator's sentence);
    a value that already has the type (a test's override) is kept as it is."""

    def read(value: object) -> Any:
        if isinstance(value, str):
            return parse(value)
        if isinstance(value, kind):
            return value
        raise ValueError(f"must be text, not {type(value).__name__}")

    return PlainValidator(read)


# The typed settings written as text. ``NoDecode``: pydantic-settings would otherwise read a
# tuple's or a dataclass's environment value as JSON before our parser sees the text.
Duration = Annotated[timedelta, _from_text(parse_duration, timedelta)]
Offsets = Annotated[tuple[timedelta, ...], NoDecode, _from_text(parse_offsets, tuple)]
QuietHours = Annotated[
    tuple[time, time] | None, NoDecode, _from_text(parse_quiet_hours, (tuple, type(None)))
]
Hours = Annotated[WorkingHours, NoDecode, _from_text(WorkingHours.parse, WorkingHours)]
Holidays = Annotated[frozenset[date], NoDecode, _from_text(parse_holidays, frozenset)]


def _text_default(text: str) -> Any:
    """The default written as the operator would write it, parsed like their value."""
    return Field(default=text, validate_default=True)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOTAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_assignment=True,
    )

    database_url: str = "sqlite+aiosqlite:///sotay.db"
    telegram_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_username: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_host: str = "127.0.0.1"  # behind a reverse proxy; 0.0.0.0 to listen on every address
    # How long a sender holds the messages it took; after a crash the next process re-sends
    # them once this has passed (longer than one batch takes to send, or a slow sender and a
    # second worker could both send a message).
    outbox_lease: Duration = _text_default("60s")
    # /readyz says "not ready" when a due message has waited longer than this.
    ready_backlog: Duration = _text_default("10m")
    # Serve /healthz, /readyz and /metrics even when no channel uses a webhook (polling mode).
    ops_endpoints: bool = False
    # Sent messages are purged after this (counts are kept).
    outbox_retention: Duration = _text_default("30d")
    timezone: str = "Asia/Ho_Chi_Minh"
    default_language: str = "vi"
    secret_key: str | None = None
    dialog_timeout: Duration = _text_default("24h")
    invite_ttl: Duration = _text_default("7d")
    outbox_max_attempts: int = Field(default=8, ge=1)
    telegram_overall_rate: float = Field(default=30.0, gt=0)
    telegram_chat_rate: float = Field(default=1.0, gt=0)
    telegram_chat_burst: float = Field(default=3.0, ge=1)
    telegram_group_per_minute: float = Field(default=20.0, gt=0)
    zalo_token: str | None = None
    zalo_api_url: str = "https://bot-api.zaloplatforms.com"
    zalo_webhook_url: str | None = None
    zalo_webhook_secret: str | None = None
    # Zalo publishes no send rates for the Bot Platform, so we start well below Telegram's:
    # a third of its overall rate and the same 1/s per chat. A 429 still pauses the channel, but
    # an unknown limit is better kept clear of than discovered during a province-wide notice.
    zalo_overall_rate: float = Field(default=10.0, gt=0)
    zalo_chat_rate: float = Field(default=1.0, gt=0)
    zalo_chat_burst: float = Field(default=3.0, ge=1)
    reminder_offsets: Offsets = _text_default("24h,2h")  # longest first
    nudge_day: int = Field(default=20, ge=1, le=28)
    quiet_hours: QuietHours = _text_default("21:00-07:00")  # local; None: never quiet
    meeting_copy_to_staff: bool = False
    ticket_sla: Duration = _text_default("4h")  # working time before an unclaimed ticket escalates
    working_hours: Hours = _text_default("Mon-Fri 07:30-11:30,13:30-17:00")  # or "24/7"
    holidays: Holidays = _text_default("")  # local extra days off: comma list of YYYY-MM-DD
    public_holidays: str = "VN"  # python-holidays country code; "" for none
    tickets_per_day: int = Field(default=5, ge=1)
    max_attachment_mb: int = Field(default=10, ge=1)
    # Zalo Official Account (issue 11): the OA app's id and secret (OAuth calls), the OA secret
    # key that signs webhook events, the API roots, and the ZNS template for members outside
    # Zalo's 7-day window. The channel runs when the app id is set and a token pair is stored.
    zalo_oa_app_id: str | None = None
    zalo_oa_app_secret: str | None = None
    zalo_oa_webhook_secret: str | None = None
    zalo_oa_api_url: str = "https://openapi.zalo.me"
    zalo_oa_oauth_url: str = "https://oauth.zaloapp.com"
    zns_api_url: str = "https://business.openapi.zalo.me"
    zns_reminder_template: str | None = None
    zalo_oa_overall_rate: float = Field(default=10.0, gt=0)
    zalo_oa_chat_rate: float = Field(default=1.0, gt=0)
    zalo_oa_chat_burst: float = Field(default=3.0, ge=1)

    # The staff web dashboard (handlers/dashboard): the address people open, as seen from their
    # browser (the sign-in links start with it); unset, the dashboard is off. Sessions last
    # SOTAY_WEB_SESSION (a working day).
    web_base_url: str | None = None
    web_session: Duration = _text_default("10h")

    # Scale-out (issue 14). The worker's name: one per systemd instance / compose replica, so a
    # restarted worker takes over its predecessor's outbox leases at once ("" = the host name).
    worker_name: str = Field(default="", max_length=64)
    # How often a worker says it is alive; one silent for five beats is taken for dead.
    heartbeat: Duration = _text_default("2s")
    # Requests started and not yet answered, per worker: what a SIGKILL may repeat. At least
    # SOTAY_OUTBOX_IN_FLIGHT; more as the target rate × the API's measured answer time needs (a
    # distant API), never more than SOTAY_OUTBOX_IN_FLIGHT_MAX (bot/inflight.py).
    outbox_in_flight: int = Field(default=2, ge=1, le=64)
    outbox_in_flight_max: int = Field(default=16, ge=1, le=64)
    # Several processes listen on one port, the kernel sharing the connections (SO_REUSEPORT;
    # set by `sotay run --workers N` for its workers).
    web_reuse_port: bool = False
    # "json": one JSON object per log line (same fields, same masking); anything else: text.
    log_format: str = "text"

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ("vi", "en"):
            raise ValueError("must be 'vi' or 'en'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not a known time zone") from exc
        return value

    @field_validator("ticket_sla", mode="wrap")
    @classmethod
    def _sla(cls, value: object, read: ValidatorFunctionWrapHandler) -> timedelta:
        sla: timedelta = read(value)
        if sla < MIN_TICKET_SLA:
            raise ValueError(
                f"'{value}' is shorter than a minute: every ticket would escalate at once; "
                "use at least 1m (for example 4h or 1h30m)"
            )
        return sla

    @field_validator("public_holidays")
    @classmethod
    def _public_holidays(cls, value: str) -> str:
        public_calendar(value)
        return value.strip().upper()

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        from bot.quick_settings import async_driver  # one rule for `sotay report`'s quick read

        return async_driver(value)

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: str | None) -> str | None:
        if value and len(value) < 16:
            raise ValueError("must have at least 16 characters")
        if value and not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in value):
            raise ValueError("may hold only letters, digits, _ and - (Telegram's rule)")
        return value or None

    @field_validator("outbox_retention")
    @classmethod
    def _retention(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError("must be at least 1d (delivery reports need the recent rows)")
        return value

    @field_validator("outbox_lease")
    @classmethod
    def _lease(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=5) <= value <= timedelta(minutes=30):
            raise ValueError("must be between 5s and 30m")
        return value

    @field_validator("heartbeat")
    @classmethod
    def _heartbeat(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=1):
            raise ValueError("must be between 1s and 1m")
        return value

    @field_validator("zalo_webhook_secret")
    @classmethod
    def _zalo_secret(cls, value: str | None) -> str | None:
        if value and not 8 <= len(value) <= 256:
            raise ValueError("must have 8 to 256 characters (Zalo's rule)")
        return value or None

    @field_validator("web_base_url")
    @classmethod
    def _web_base_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://sotay.example.vn")
        return value.rstrip("/") if value else None

    @field_validator("web_session")
    @classmethod
    def _web_session(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=5) <= value <= timedelta(days=7):
            raise ValueError("must be between 5m and 7d (for example 10h)")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value or None

    @field_validator("zalo_webhook_url")
    @classmethod
    def _zalo_https_webhook(cls, value: str | None) -> str | None:
        """Zalo's setWebhook takes only an https URL (https://bot.zapps.me/docs/apis/setWebhook/):
        refused here, at start-up, rather than by Zalo after the bot has started."""
        if value and not value.startswith("https://"):
            raise ValueError("must be an https URL (Zalo's setWebhook accepts no other)")
        return value or None

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def work_calendar(self) -> WorkCalendar:
        """Working hours, local extra holidays and the public calendar, in the local zone."""
        return WorkCalendar(
            self.working_hours.week, self.holidays, self.tz, public_calendar(self.public_holidays)
        )

    @property
    def signing_key(self) -> bytes:
        """Key for button signatures; derived from the token when no key is configured."""
        key = self.secret_key or self.telegram_token or self.zalo_token or "sotay-local-demo"
        return key.encode()

    def require_webhook_secret(self) -> None:
        if self.webhook_url and not self.webhook_secret:
            raise SettingsError(
                "SOTAY_WEBHOOK_SECRET must be set when SOTAY_WEBHOOK_URL is set "
                "(Telegram sends it back so we can refuse forged updates)."
            )
        if self.zalo_webhook_url and not self.zalo_webhook_secret:
            raise SettingsError(
                "SOTAY_ZALO_WEBHOOK_SECRET must be set when SOTAY_ZALO_WEBHOOK_URL is set "
                "(Zalo sends it back so we can refuse forged events)."
            )


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning validation errors into one readable sentence."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SOTAY_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"Setting {name} is invalid: {message}.") from None
    remember(
        url_password(settings.database_url),
        settings.telegram_token,
        settings.zalo_token,
        settings.webhook_secret,
        settings.zalo_webhook_secret,
        settings.secret_key,
        settings.zalo_oa_app_secret,
        settings.zalo_oa_webhook_secret,
    )
    return settings
