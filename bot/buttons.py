"""Signed button data.

Telegram lets a modified client send any callback_data, so every button we render carries a short
HMAC. A forged or corrupted press fails verification and is refused politely; a genuine press is
still checked against the actor's role on the server, the signature only proves we made it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from bot.secrecy import as_bytes, secret_matches

MAX_DATA_BYTES = 64
_SIG_CHARS = 8


class ButtonSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sig(self, data: str) -> str:
        digest = hmac.new(self._key, as_bytes(data), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_SIG_CHARS]

    def sign(self, data: str) -> str:
        signed = f"{data}~{self._sig(data)}"
        if len(signed.encode()) > MAX_DATA_BYTES:
            raise ValueError(f"button data too long ({len(signed.encode())} bytes): {data!r}")
        return signed

    def verify(self, signed: str) -> str | None:
        """The original data, or None when the signature does not match."""
        data, sep, sig = signed.rpartition("~")
        if not sep or not secret_matches(sig, self._sig(data)):
            return None  # forged, corrupted, or odd bytes from a modified client: a stale button
        return data
