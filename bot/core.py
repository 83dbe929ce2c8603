"""Channel-neutral messages: what comes in (``Inbound``) and what goes out (``View``).

Channels translate their updates into ``Inbound`` and render ``View`` in their own way
(Telegram buttons, numbered lists on Zalo and in the terminal). Handlers see only these types.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Zero-width and bidirectional control characters: invisible, and used to spoof text.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
MAX_INBOUND_CHARS = 4096


def clean_text(text: str) -> str:
    """NFC, no invisible control characters, trimmed. Every inbound text passes through here."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    return text.strip()[:MAX_INBOUND_CHARS]


@dataclass(frozen=True)
class Contact:
    phone: str
    is_own: bool


@dataclass(frozen=True)
class Attachment:
    """A file the user sent (a screenshot, usually). Only the channel's reference is kept."""

    kind: str  # photo | document
    file_ref: str
    size: int | None = None
    mime: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Inbound:
    """One event from a user, whatever the channel."""

    channel: str
    user_ref: str
    chat_ref: str
    key: str  # idempotency key, unique per channel
    text: str | None = None
    choice: str | None = None  # raw data of a pressed button
    contact: Contact | None = None
    language_hint: str | None = None
    display_name: str | None = None
    attachment: Attachment | None = None
    in_group: bool = False  # a group chat (staff groups); chat_ref is the group
    thread_ref: str | None = None  # forum topic inside a group
    reply_to_ref: str | None = None  # the message this one replies to
    unsupported: bool = False  # a sticker, voice note... we cannot read
    hidden: bool = False  # the channel withheld what was sent (Zalo hides protected users')

    @property
    def command(self) -> tuple[str, str] | None:
        """``("start", "ABC")`` for ``/start ABC`` (also ``/start@bot ABC``), else None."""
        if not self.text or not self.text.startswith("/"):
            return None
        head, _, rest = self.text[1:].partition(" ")
        name = head.split("@", 1)[0].lower()
        if not name or not name.replace("_", "").isalnum():
            return None
        return name, rest.strip()


@dataclass(frozen=True)
class Choice:
    label: str
    data: str  # signed, at most 64 bytes (Telegram's callback_data limit)


@dataclass(frozen=True)
class Upload:
    """A file we send (a chart, an export). The bytes travel inside the outbox row (base64 in
    the payload), so a queued file survives a restart like any other message."""

    name: str  # file name the recipient sees, e.g. "bao-cao.csv"
    kind: str  # photo | document
    data: bytes

    def to_payload(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "b64": base64.b64encode(self.data).decode("ascii"),
        }

    @staticmethod
    def from_payload(payload: dict[str, str]) -> Upload:
        return Upload(payload["name"], payload["kind"], base64.b64decode(payload["b64"]))


@dataclass
class View:
    """Text plus optional choices: what a handler wants the user to see."""

    text: str
    choices: list[list[Choice]] = field(default_factory=list)
    request_contact: str | None = None  # label of a "share my phone number" button
    remove_keyboard: bool = False
    thread_ref: str | None = None  # post into this forum topic
    photo_ref: str | None = None  # send this photo (channel file id) with the text as caption
    edit_of: int | None = None  # outbox id of an earlier message to edit instead of sending
    edit_ref: str | None = None  # filled by the dispatcher: the channel's id of that message
    upload: Upload | None = None  # send this file with the text as caption
    # The last message to someone we keep nothing of (declined consent, /forget): the outbox
    # row is deleted once it is delivered (or cannot be), so no row keeps their chat id.
    last_word: bool = False

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": self.text}
        if self.choices:
            payload["choices"] = [[[c.label, c.data] for c in row] for row in self.choices]
        if self.request_contact:
            payload["request_contact"] = self.request_contact
        if self.remove_keyboard:
            payload["remove_keyboard"] = True
        if self.last_word:
            payload["last_word"] = True
        for key in ("thread_ref", "photo_ref", "edit_of"):
            if getattr(self, key) is not None:
                payload[key] = getattr(self, key)
        if self.upload is not None:
            payload["upload"] = self.upload.to_payload()
        return payload

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> View:
        return View(
            text=payload["text"],
            choices=[
                [Choice(label, data) for label, data in row] for row in payload.get("choices", [])
            ],
            request_contact=payload.get("request_contact"),
            remove_keyboard=payload.get("remove_keyboard", False),
            thread_ref=payload.get("thread_ref"),
            last_word=payload.get("last_word", False),
            photo_ref=payload.get("photo_ref"),
            edit_of=payload.get("edit_of"),
            upload=Upload.from_payload(payload["upload"]) if payload.get("upload") else None,
        )


def caption_split(text: str, limit: int) -> tuple[str, str]:
    """A photo's caption (at most ``limit`` characters, cut at a line end when it must be cut)
    and the rest of the text, which follows as ordinary messages."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind("\n", 0, limit)
    cut = cut if cut > 0 else limit
    return text[:cut], text[cut:].lstrip("\n")


def split_text(text: str, limit: int) -> list[str]:
    """Split a long text at line boundaries so each part fits a channel's limit."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts
