"""Secrets handled as secrets: compared in constant time on bytes, and kept out of any output.

A header is text decoded by the web server; a forged one may hold any character, so both sides
are compared as bytes (``hmac.compare_digest`` refuses non-ASCII ``str`` with a TypeError, which
would turn a forgery into an HTTP 500). Whatever is registered here (database password, tokens,
webhook secrets) is replaced by ``***`` in every log line and every operator-facing error.
"""

from __future__ import annotations

import hmac
import logging

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_SECRETS: set[str] = set()
MASK = "***"


def as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def secret_matches(given: str | bytes | None, expected: str | bytes | None) -> bool:
    """True only when a secret is configured and ``given`` equals it byte for byte."""
    wanted = as_bytes(expected)
    return bool(wanted) and hmac.compare_digest(as_bytes(given), wanted)


def remember(*values: str | None) -> None:
    """Register values that must never be shown (short ones would mask ordinary words)."""
    _SECRETS.update(v for v in values if v and len(v) >= 6)


def url_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def shown_url(url: str) -> str:
    """The database URL as it may be printed: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact(url)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message and traceback before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS:
            return True
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
