"""A fake Telegram Bot API server for end-to-end tests of the bot.

The real bot (python-telegram-bot) talks to this server over HTTP exactly as it would talk to
``api.telegram.org``: configure it with ``base_url=f"{root}/bot"``. The server keeps the state a
real chat would have (users who started or blocked the bot, groups and forum topics, messages
and their edits, callback queries, webhook, bot commands) and applies the checks, rate limits
and error answers of the real Bot API, so that tests exercise the bot's error handling instead of
a mock that accepts everything.

Typical use::

    server = FakeTelegram(token="123:ABC")
    root = await server.start()
    alice = server.user(1001, first_name="Hoa", language_code="vi")
    await alice.send("/start")
    reply = await alice.next_message()
    await alice.press(reply, "Tiếng Việt")
    await server.stop()

Waiting is event driven: every state change wakes the waiters of ``wait_for`` and
``next_message``, so tests never need ``asyncio.sleep``. Rate limits use an injectable clock
(see :class:`ManualClock`) so a test can run past a limit without waiting for real.

This module deliberately depends on nothing from the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import math
import re
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientTimeout, web

from tests.fake_server import FakeServer

__all__ = [
    "OWN_CONTACT",
    "ApiCall",
    "FakeChat",
    "FakeGroup",
    "FakeTelegram",
    "FakeUser",
    "ManualClock",
    "StoredFile",
    "WebhookDelivery",
    "button_texts",
    "inline_buttons",
    "inline_keyboard",
    "reply_keyboard",
]

JSON = dict[str, Any]

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
DOCUMENT_SIZE_LIMIT = 50 * 1024 * 1024
MAX_INLINE_BUTTONS = 100
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
EPSILON = 1e-9
_MESSAGE_FIELDS = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    "contact",
    "document",
    "photo",
    "edit_date",
)


# --------------------------------------------------------------------------------------------
# Errors and small helpers
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API; raised anywhere inside a method handler."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> ApiError:
    return ApiError(403, f"Forbidden: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    """Parse errors of the real API point at UTF-8 byte offsets."""
    return len(text[:index].encode("utf-8"))


def _omit_none(data: JSON) -> JSON:
    return {key: value for key, value in data.items() if value is not None}


class ManualClock:
    """A clock for the rate limiter that only moves when a test says so.

    Pass it as ``FakeTelegram(clock=ManualClock())``; call :meth:`advance` to let buckets refill.
    To drive it from a clock object with ``now() -> datetime``, pass
    ``clock=lambda: other.now().timestamp()`` instead.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class TokenBucket:
    """Allows ``capacity`` sends at once, then one more each ``1 / refill_per_second`` seconds."""

    capacity: float
    refill_per_second: float
    clock: Callable[[], float]
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_second)
        self.updated = now

    def wait_time(self) -> float:
        """Seconds until one token is available; 0 when a send may go now."""
        self._refill()
        if self.tokens >= 1 - EPSILON:
            return 0.0
        return (1 - self.tokens) / self.refill_per_second

    def take(self) -> None:
        self._refill()
        self.tokens -= 1


# --------------------------------------------------------------------------------------------
# Text: plain only (the bot sends no parse_mode), trimmed as Telegram trims it
# --------------------------------------------------------------------------------------------


def _strip_entities(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Telegram trims surrounding whitespace of a message and moves the entities with it."""
    stripped = text.strip()
    if not stripped:
        return "", []
    shift = _utf16_len(text[: len(text) - len(text.lstrip())])
    limit = _utf16_len(stripped)
    result = []
    for entity in entities:
        start = max(0, entity["offset"] - shift)
        end = min(limit, entity["offset"] - shift + entity["length"])
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


def render_text(
    raw: str, parse_mode: str | None, entities: list[JSON] | None = None
) -> tuple[str, list[JSON]]:
    """The text and entities a chat would show for ``raw``. The bot sends plain text only, so
    the fake parses no HTML or Markdown: a ``parse_mode`` is refused loudly (a formatting
    change then fails here instead of passing unchecked) rather than parsed half-right."""
    if parse_mode:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}: the fake serves plain text")
    return _strip_entities(raw, list(entities or []))


# --------------------------------------------------------------------------------------------
# Keyboards
# --------------------------------------------------------------------------------------------


def _button_url_ok(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "tg":
        return bool(parts.netloc or parts.path)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "https") and bool(host) and host != "localhost"


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    actions = [name for name in BUTTON_ACTIONS if name in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        size = len(data.encode("utf-8")) if isinstance(data, str) else 0
        if not 1 <= size <= CALLBACK_DATA_LIMIT:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not _button_url_ok(button["url"]):
        raise bad_request(
            f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL"
        )


def _rows(markup: JSON, key: str, kind: str) -> list[list[Any]]:
    rows = markup.get(key)
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{key}" of the {kind} must be an Array of Arrays')
    return rows


def _validate_reply_button(button: Any) -> None:
    text = button if isinstance(button, str) else (button or {}).get("text")
    if not isinstance(text, str) or not text:
        raise bad_request('can\'t parse keyboard button: Field "text" must be of type String')


def validate_reply_markup(markup: Any) -> JSON | None:
    """Check a reply_markup the way the Bot API does; return it unchanged when valid."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _rows(markup, "inline_keyboard", "InlineKeyboardMarkup")
        buttons = [button for row in rows for button in row]
        if len(buttons) > MAX_INLINE_BUTTONS:
            raise bad_request("reply markup is too long")
        for button in buttons:
            _validate_inline_button(button)
    elif "keyboard" in markup:
        for row in _rows(markup, "keyboard", "ReplyKeyboardMarkup"):
            for button in row:
                _validate_reply_button(button)
    elif markup.get("remove_keyboard") is not True and markup.get("force_reply") is not True:
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def inline_keyboard(msg: JSON) -> list[list[JSON]]:
    """Rows of inline buttons of a recorded message (empty when it has none)."""
    markup = msg.get("reply_markup") or {}
    return [list(row) for row in markup.get("inline_keyboard", [])]


def inline_buttons(msg: JSON) -> list[JSON]:
    """All inline buttons of a recorded message, row by row."""
    return [button for row in inline_keyboard(msg) for button in row]


def reply_keyboard(msg: JSON) -> list[list[JSON]]:
    """Rows of a reply keyboard, each button as a dict (plain-string buttons become {"text"})."""
    markup = msg.get("reply_markup") or {}
    return [
        [{"text": b} if isinstance(b, str) else dict(b) for b in row]
        for row in markup.get("keyboard", [])
    ]


def button_texts(msg: JSON) -> list[str]:
    """Labels of the inline keyboard, or of the reply keyboard when there is no inline one."""
    buttons = inline_buttons(msg) or [b for row in reply_keyboard(msg) for b in row]
    return [button["text"] for button in buttons]


# --------------------------------------------------------------------------------------------
# Request parameters
# --------------------------------------------------------------------------------------------


@dataclass
class Upload:
    """One file part of a multipart request."""

    filename: str | None
    content: bytes
    content_type: str | None


class Params:
    """Typed access to request parameters, whichever encoding they arrived in.

    Form-encoded requests carry every value as a string and nested objects as JSON text; a JSON
    body carries native values. The accessors accept both, like the real server.
    """

    def __init__(self, values: JSON, files: dict[str, Upload]) -> None:
        self.values = values
        self.files = files

    def raw(self, name: str) -> Any:
        value = self.values.get(name)
        return None if value == "" else value

    def get_str(self, name: str) -> str | None:
        value = self.raw(name)
        return None if value is None else str(value)

    def get_int(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            return int(str(value))
        except ValueError:
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def get_float(self, name: str) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Number') from None

    def get_bool(self, name: str) -> bool:
        value = self.raw(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def get_json(self, name: str, error: str | None = None) -> Any:
        value = self.raw(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise bad_request(error or f"can't parse {name} JSON object") from None

    def chat_id(self) -> int | str:
        value = self.raw("chat_id")
        if value is None:
            raise bad_request("chat_id is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        return int(text) if re.fullmatch(r"-?\d+", text) else text

    def loggable(self) -> JSON:
        """The parameters without file contents, for :attr:`FakeTelegram.requests`."""
        files = {name: f"<file {upload.filename!r}>" for name, upload in self.files.items()}
        return {**self.values, **files}


async def read_params(request: web.Request) -> Params:
    """Collect query string and body (JSON, url-encoded or multipart) into one Params."""
    values: JSON = dict(request.query)
    files: dict[str, Upload] = {}
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                raise bad_request("can't parse JSON encoded request body") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected in the request body")
            values.update(body)
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = Upload(value.filename, value.file.read(), value.content_type)
                else:
                    values[name] = value
    return Params(values, files)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class ApiCall:
    """One Bot API request as the server answered it."""

    method: str
    params: JSON
    status: int
    description: str | None = None
    at: float = 0.0  # the server's clock when it answered (rates measured on the server side)


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the webhook; ``status`` is None on connection errors."""

    update_id: int
    url: str
    status: int | None
    secret_header: str | None
    error: str | None = None


@dataclass
class StoredFile:
    """A file the bot uploaded (``content`` set) or referenced by URL (``url`` set)."""

    file_id: str
    file_unique_id: str
    kind: str
    file_name: str | None
    mime_type: str | None = None
    size: int | None = None
    content: bytes | None = None
    url: str | None = None


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Pending:
    """A queued update; ``handed_out`` once getUpdates returned it."""

    update: JSON
    handed_out: bool = False
    redelivered: bool = False

    @property
    def update_id(self) -> int:
        return self.update["update_id"]


def _update_chat(update: JSON) -> int:
    """The chat an update belongs to (its sender's, for a button press), for per-chat order."""
    for kind in ("message", "edited_message", "callback_query", "my_chat_member"):
        body = update.get(kind)
        if isinstance(body, dict):
            chat = body.get("chat") or (body.get("message") or {}).get("chat") or body.get("from")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
    return -int(update["update_id"])


OWN_CONTACT: Any = object()
"""Default of ``FakeUser.share_contact(user_id=...)``: the user shares their own contact."""


# --------------------------------------------------------------------------------------------
# Chats and users
# --------------------------------------------------------------------------------------------


class FakeChat:
    """A chat the bot can write to; keeps the messages it received, in order."""

    type: str = "private"

    def __init__(self, server: FakeTelegram, chat_id: int, bucket: TokenBucket) -> None:
        self.server = server
        self.id = chat_id
        self.bucket = bucket
        self.records: dict[int, JSON] = {}
        self._bot_messages: list[JSON] = []
        self._next_message_id = 1
        self._cursor = 0

    def api_chat(self) -> JSON:
        raise NotImplementedError

    @property
    def messages(self) -> list[JSON]:
        """All bot messages to this chat in sending order (edits applied, deleted ones flagged)."""
        return list(self._bot_messages)

    @property
    def history(self) -> list[JSON]:
        """Every message of the chat, the users' and the bot's, by message_id."""
        return [self.records[key] for key in sorted(self.records)]

    def allocate_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def add_record(self, record: JSON) -> JSON:
        self.records[record["message_id"]] = record
        if record["from_bot"]:
            self._bot_messages.append(record)
        return record

    async def next_message(self, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The next bot message not yet returned here; AssertionError if none comes in time."""
        await self.server.wait_until(
            lambda: len(self._bot_messages) > self._cursor, timeout, self._describe_wait
        )
        message = self._bot_messages[self._cursor]
        self._cursor += 1
        return message

    def drain(self) -> list[JSON]:
        """Skip every bot message received so far; return the skipped ones."""
        skipped = self._bot_messages[self._cursor :]
        self._cursor = len(self._bot_messages)
        return skipped

    def _describe_wait(self) -> str:
        seen = [m.get("text") or m.get("caption") for m in self._bot_messages]
        failed = self.server.failed_calls(self.id)[-5:]
        return (
            f"no new bot message in chat {self.id}; all bot messages so far: {seen!r}; "
            f"recent failed calls for this chat: {failed!r}"
        )


class FakeUser(FakeChat):
    """A Telegram user and their private chat with the bot (the chat id is the user id)."""

    def __init__(
        self,
        server: FakeTelegram,
        user_id: int,
        bucket: TokenBucket,
        *,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        super().__init__(server, user_id, bucket)
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.started = False
        self.blocked = False
        self.seen = False

    def api_user(self) -> JSON:
        return _omit_none(
            {
                "id": self.id,
                "is_bot": False,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
                "language_code": self.language_code,
            }
        )

    def api_chat(self) -> JSON:
        return _omit_none(
            {
                "id": self.id,
                "type": "private",
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
            }
        )

    async def send(self, text: str, *, reply_to: JSON | None = None) -> JSON:
        """Write ``text`` to the bot in the private chat; the user has started the bot after."""
        self._ensure_not_blocked()
        self.started = True
        return self.server.user_message(self, self, {"text": text}, reply_to=reply_to)

    async def send_photo(self, caption: str | None = None, *, size: int = 48_000) -> JSON:
        """Send the bot a photo (a screenshot), with an optional caption; the file is known to
        the server, so the bot may send it on by its file_id."""
        self._ensure_not_blocked()
        self.started = True
        stored = self.server._new_file("photo", None)
        stored.size = size
        content: JSON = {"photo": _file_json(stored, "photo")}
        if caption:
            content["caption"] = caption
        return self.server.user_message(self, self, content)

    async def send_in(
        self,
        group: FakeGroup,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """Write ``text`` in a group (optionally in a forum topic or as a reply)."""
        return self.server.user_message(
            group, self, {"text": text}, reply_to=reply_to, thread_id=thread_id
        )

    async def share_contact(
        self,
        phone: str = "+84912345678",
        user_id: Any = OWN_CONTACT,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> JSON:
        """Send a contact. By default it is the user's own (``user_id`` = their id), as from a
        request_contact button; pass another id for someone else's contact, or None for a
        contact that is no Telegram user (no ``user_id`` field at all)."""
        self._ensure_not_blocked()
        self.started = True
        own = user_id is OWN_CONTACT
        if own:
            first_name = first_name or self.first_name
            last_name = last_name if last_name is not None else self.last_name
        contact = _omit_none(
            {
                "phone_number": phone,
                "first_name": first_name or "Contact",
                "last_name": last_name,
                "user_id": self.id if own else user_id,
            }
        )
        return self.server.user_message(self, self, {"contact": contact})

    async def press(self, msg: JSON, label: str) -> JSON:
        """Press the inline button whose text (or callback_data) equals ``label``."""
        record = self.server.find_record(msg)
        for button in inline_buttons(record):
            if label in (button.get("text"), button.get("callback_data")):
                if "callback_data" not in button:
                    raise AssertionError(f"button {label!r} has no callback_data: {button!r}")
                return self.server.callback_query(self, record, button["callback_data"])
        labels = [button.get("text") for button in inline_buttons(record)]
        raise AssertionError(f"no button {label!r} on message {record['message_id']}: {labels!r}")

    async def press_data(self, msg: JSON, data: str) -> JSON:
        """A forged press: a callback_query with arbitrary data on ``msg``."""
        return self.server.callback_query(self, self.server.find_record(msg), data)

    def block(self) -> None:
        """Block the bot: sends now fail with 403; the bot gets a my_chat_member update."""
        if not self.blocked:
            self.blocked = True
            self.server.chat_member_update(self, "member", "kicked")

    def unblock(self) -> None:
        if self.blocked:
            self.blocked = False
            self.server.chat_member_update(self, "kicked", "member")

    def _ensure_not_blocked(self) -> None:
        if self.blocked:
            raise AssertionError(f"user {self.id} blocked the bot; call unblock() before writing")


class FakeGroup(FakeChat):
    """A group or supergroup (ids starting with -100) the bot is a member of."""

    def __init__(
        self,
        server: FakeTelegram,
        chat_id: int,
        bucket: TokenBucket,
        *,
        title: str,
        is_forum: bool,
        username: str | None,
    ) -> None:
        super().__init__(server, chat_id, bucket)
        self.title = title
        self.is_forum = is_forum
        self.username = username
        self.type = "supergroup" if str(chat_id).startswith("-100") else "group"
        self.topics: dict[int, str] = {}
        self.members: dict[int, FakeUser] = {}  # who wrote here (or was added with ``join``)
        self.admins: list[int] = []  # user ids; the first is the creator
        if is_forum and self.type != "supergroup":
            raise ValueError("only supergroups (id -100...) can be forums")

    def api_chat(self) -> JSON:
        return _omit_none(
            {
                "id": self.id,
                "type": self.type,
                "title": self.title,
                "username": self.username,
                "is_forum": True if self.is_forum else None,
            }
        )

    def join(self, user: FakeUser, *, admin: bool = False) -> None:
        """Add a member (an administrator when ``admin``), as a group owner would."""
        self.members[user.id] = user
        if admin and user.id not in self.admins:
            self.admins.append(user.id)

    def add_topic(self, name: str) -> int:
        """Create a forum topic as a user would; returns its message_thread_id."""
        if not self.is_forum:
            raise ValueError(f"group {self.id} is not a forum")
        thread_id = self.allocate_message_id()
        self.topics[thread_id] = name
        return thread_id


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeTelegram(FakeServer):
    """The fake Bot API: an aiohttp server plus the chat state it serves."""

    def __init__(
        self,
        token: str = "123:ABC",
        bot_username: str = "sotay_test_bot",
        *,
        bot_first_name: str = "Sổ tay",
        per_chat_rate: tuple[int, float] = (3, 1.0),
        global_rate: tuple[int, float] = (30, 1.0),
        group_rate: tuple[int, float] = (20, 60.0),
        rate_limits: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        privacy_mode: bool = False,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
        latency: float = 0.0,
        webhook_connections: int = 1,
    ) -> None:
        """Rates: ``per_chat_rate`` is (burst, seconds per further message) for private chats;
        ``global_rate`` and ``group_rate`` are (messages, per seconds). ``clock`` drives the rate
        limiter only; ``wall_clock`` gives the unix dates stamped on messages. ``latency``: the
        seconds every Bot API call takes as a network round trip would (half on the way to
        the server, half on the way back). ``webhook_connections`` above 1 delivers the webhook
        as Telegram does under load: up to that many (and the webhook's ``max_connections``)
        updates at once, one chat's in order."""
        super().__init__()
        self.token = token
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.bot_id = int(token.split(":", 1)[0])
        self.rate_limits = rate_limits
        self.clock = clock
        self.wall_clock = wall_clock
        self.privacy_mode = privacy_mode
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.latency = latency
        self.webhook_connections = webhook_connections
        self._per_chat_rate = per_chat_rate
        self._group_rate = group_rate
        self._global_bucket = TokenBucket(global_rate[0], global_rate[0] / global_rate[1], clock)

        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.sent: list[JSON] = []
        self._sent_by_chat: dict[
            int, list[JSON]
        ] = {}  # index, so big broadcasts stay O(1) to check
        self.requests: list[ApiCall] = []
        self.stats: Counter[int] = Counter()
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.settings: dict[tuple[str, str], Any] = {}
        self.chat_actions: list[tuple[int, str]] = []
        self.callback_answers: dict[str, JSON] = {}
        self.files: dict[str, StoredFile] = {}
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.internal_errors: list[str] = []
        self.disconnects = 0  # requests whose client hung up before the server could answer
        self.waiting_polls = 0

        self._pending: list[_Pending] = []
        self._allowed_updates: list[str] | None = None
        self._callback_queries: dict[str, JSON] = {}
        self._faults: list[tuple[str, ApiError]] = []
        self._webhook: _Webhook | None = None
        self._update_ids = itertools.count(10_001)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._poll_generation = 0
        self._methods: dict[str, Callable[[Params], Awaitable[Any]]] = {
            name.lower(): getattr(self, f"_api_{name}")
            for name in (
                "getMe",
                "getUpdates",
                "setWebhook",
                "deleteWebhook",
                "getWebhookInfo",
                "sendMessage",
                "editMessageText",
                "editMessageCaption",
                "editMessageReplyMarkup",
                "deleteMessage",
                "answerCallbackQuery",
                "setMyCommands",
                "getMyCommands",
                "deleteMyCommands",
                "setMyDescription",
                "setMyShortDescription",
                "setChatMenuButton",
                "sendChatAction",
                "sendPhoto",
                "sendDocument",
                "createForumTopic",
                "getChat",
                "getChatMemberCount",
                "getChatAdministrators",
            )
        }

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Serve on 127.0.0.1 at a free port; returns the root URL (``base_url`` = root + /bot)."""
        app = web.Application(client_max_size=DOCUMENT_SIZE_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown_path)
        return await self._serve(app, self._webhook_loop)

    # ------------------------------------------------------------------------- test-facing API

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
        username: str | None = None,
    ) -> FakeUser:
        """The user with this id, created on first use (later calls return the same object)."""
        if user_id not in self.users:
            self.users[user_id] = FakeUser(
                self,
                user_id,
                TokenBucket(self._per_chat_rate[0], 1 / self._per_chat_rate[1], self.clock),
                first_name=first_name or f"User{user_id}",
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
        return self.users[user_id]

    def group(
        self,
        chat_id: int,
        title: str = "Group",
        is_forum: bool = False,
        username: str | None = None,
    ) -> FakeGroup:
        """The group with this id, created on first use; the bot is a member."""
        if chat_id not in self.groups:
            count, period = self._group_rate
            self.groups[chat_id] = FakeGroup(
                self,
                chat_id,
                TokenBucket(count, count / period, self.clock),
                title=title,
                is_forum=is_forum,
                username=username,
            )
        return self.groups[chat_id]

    def chat(self, chat_id: int) -> FakeChat:
        """The user or group with this id; KeyError if the server does not know it."""
        return self.users.get(chat_id) or self.groups[chat_id]

    def fail_next(
        self,
        method: str,
        status: int = 500,
        count: int = 1,
        *,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" for any) fail with ``status``."""
        for _ in range(count):
            self._faults.append((method.lower(), _injected_error(status, retry_after, description)))

    async def redeliver(self, update: JSON) -> None:
        """Queue the very same update (same update_id) again, as Telegram does after a timeout."""
        self._pending.append(_Pending(copy.deepcopy(update), redelivered=True))
        self._changed()

    async def wait_for(
        self,
        predicate: Callable[[], object],
        timeout: float = 5.0,  # noqa: ASYNC109
        what: str | None = None,
    ) -> None:
        """Wait until ``predicate()`` is true, re-checked on every state change."""
        await self.wait_until(predicate, timeout, lambda: what or repr(predicate))

    async def next_change(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for the server's next state change (a request, a delivery); False on timeout."""
        return await self._wait_change(timeout)

    async def answer_of(self, update: JSON, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The bot's answerCallbackQuery for a callback_query update, once it arrives."""
        query_id = update["callback_query"]["id"]
        await self.wait_for(
            lambda: query_id in self.callback_answers, timeout, f"answer to query {query_id}"
        )
        return self.callback_answers[query_id]

    def delivered(self, chat_id: int) -> list[JSON]:
        """Bot messages sent to one chat, in order (deleted ones included, flagged)."""
        return list(self._sent_by_chat.get(chat_id, []))

    def delivered_count(self, chat_id: int, text: str | None = None) -> int:
        """How many bot messages reached the chat (with exactly this text or caption)."""
        return sum(
            1
            for record in self.delivered(chat_id)
            if text is None or text in (record.get("text"), record.get("caption"))
        )

    def count(self, method: str, status: int | None = None) -> int:
        """How many calls of ``method`` were answered (with ``status``, if given)."""
        return sum(
            1
            for call in self.requests
            if call.method.lower() == method.lower() and status in (None, call.status)
        )

    @property
    def calls(self) -> Counter[str]:
        """How many times each method was called, whatever the answer."""
        return Counter(call.method for call in self.requests)

    def failed_calls(self, chat_id: int | None = None) -> list[ApiCall]:
        """Calls answered with an error (for one chat), to explain a missing message."""
        return [
            call
            for call in self.requests
            if call.status != 200
            and (chat_id is None or str(call.params.get("chat_id")) == str(chat_id))
        ]

    def visible_commands(self, user: FakeUser) -> list[JSON]:
        """The command menu a user sees in the private chat, resolved by Telegram's rules."""
        lang = user.language_code or ""
        for scope in (f"chat:{user.id}", "all_private_chats", "default"):
            for code in dict.fromkeys((lang, "")):
                if (scope, code) in self.commands:
                    return self.commands[(scope, code)]
        return []

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url if self._webhook else None

    @property
    def pending_updates(self) -> list[JSON]:
        return [entry.update for entry in self._pending]

    def handed_out_unconfirmed(self) -> list[int]:
        """update_ids a getUpdates returned that no later offset has confirmed yet."""
        return [entry.update_id for entry in self._pending if entry.handed_out]

    # --------------------------------------------------------------------- state and updates

    def _now(self) -> int:
        return int(self.wall_clock())

    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def enqueue(self, kind: str, payload: JSON) -> JSON:
        """Create an update; queue it unless allowed_updates excludes its kind."""
        update = {"update_id": next(self._update_ids), kind: payload}
        allowed = self._allowed_updates
        if allowed is not None and allowed:
            wanted = kind in allowed
        else:
            wanted = kind not in DEFAULT_EXCLUDED_UPDATES
        if wanted:
            self._pending.append(_Pending(update))
        self._changed()
        return update

    def user_message(
        self,
        chat: FakeChat,
        user: FakeUser,
        content: JSON,
        *,
        reply_to: JSON | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """Record a user's message and queue it as a ``message`` update.

        Returns the update. In privacy mode a group message the bot would not see is recorded but
        not queued; it comes back as ``{"update_id": None, "message": ...}``.
        """
        user.seen = True
        if isinstance(chat, FakeGroup):
            chat.members.setdefault(user.id, user)
        reply_id = self.find_record(reply_to)["message_id"] if reply_to else None
        if thread_id is not None and isinstance(chat, FakeGroup) and thread_id not in chat.topics:
            raise ValueError(f"group {chat.id} has no topic {thread_id}")
        if "text" in content:
            content["entities"] = _command_entities(content["text"])
        record = chat.add_record(
            {
                "message_id": chat.allocate_message_id(),
                "chat_id": chat.id,
                "date": self._now(),
                "from_bot": False,
                "from": user.api_user(),
                "message_thread_id": thread_id,
                "reply_to_message_id": reply_id,
                **content,
            }
        )
        message = self.api_message(record)
        if isinstance(chat, FakeGroup) and not self._passes_privacy(record):
            self._changed()
            return {"update_id": None, "message": message}
        return self.enqueue("message", message)

    def _passes_privacy(self, record: JSON) -> bool:
        """In privacy mode a bot in a group only sees commands, replies to it and mentions."""
        if not self.privacy_mode:
            return True
        text = record.get("text") or ""
        mention = f"@{self.bot_username}".lower()
        if mention in text.lower() or text.startswith("/"):
            return True
        target_id = record.get("reply_to_message_id")
        chat = self.chat(record["chat_id"])
        return bool(target_id and chat.records.get(target_id, {}).get("from_bot"))

    def callback_query(self, user: FakeUser, record: JSON, data: str) -> JSON:
        """Queue a callback_query as if ``user`` pressed a button with ``data`` on ``record``."""
        if record.get("deleted"):
            raise AssertionError(f"message {record['message_id']} was deleted")
        if record["chat_id"] in self.users and record["chat_id"] != user.id:
            raise AssertionError(f"user {user.id} cannot see private chat {record['chat_id']}")
        user.seen = True
        query = {
            "id": str(next(self._query_ids) * 1_000_003 + user.id),
            "from": user.api_user(),
            "message": self.api_message(record),
            "chat_instance": str(abs(record["chat_id"]) * 7919 + 17),
            "data": data,
        }
        self._callback_queries[query["id"]] = query
        return self.enqueue("callback_query", query)

    def chat_member_update(self, user: FakeUser, old: str, new: str) -> JSON:
        """The my_chat_member update Telegram sends when a user blocks or unblocks the bot."""

        def member(status: str) -> JSON:
            extra = {"until_date": 0} if status == "kicked" else {}
            return {"user": self.bot_user(), "status": status, **extra}

        return self.enqueue(
            "my_chat_member",
            {
                "chat": user.api_chat(),
                "from": user.api_user(),
                "date": self._now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def find_record(self, msg: JSON) -> JSON:
        """The live record for a message dict (a record, or API JSON with a ``chat``)."""
        chat_id = msg["chat_id"] if "chat_id" in msg else msg["chat"]["id"]
        try:
            return self.chat(chat_id).records[msg["message_id"]]
        except KeyError:
            raise AssertionError(f"unknown message {msg.get('message_id')} in {chat_id}") from None

    def api_message(self, record: JSON, *, nested: bool = True) -> JSON:
        """The Bot API ``Message`` object for a record, as Telegram would return it now."""
        chat = self.chat(record["chat_id"])
        message: JSON = {
            "message_id": record["message_id"],
            "date": record["date"],
            "chat": chat.api_chat(),
            "from": self.bot_user() if record["from_bot"] else record["from"],
        }
        thread_id = record.get("message_thread_id")
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if isinstance(chat, FakeGroup) and chat.is_forum:
                message["is_topic_message"] = True
        for key in _MESSAGE_FIELDS:
            if record.get(key):
                message[key] = record[key]
        markup = record.get("reply_markup") or {}
        if "inline_keyboard" in markup:
            message["reply_markup"] = markup
        target = chat.records.get(record.get("reply_to_message_id") or 0)
        if nested and target:
            message["reply_to_message"] = self.api_message(target, nested=False)
        return message

    # -------------------------------------------------------------------------- HTTP handling

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        return _json_response(ApiError(404, "Not Found").body(), 404)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.latency:
            return await self._handle_now(request)
        await asyncio.sleep(self.latency / 2)  # the network's delay, not a synchronisation
        response = await self._handle_now(request)
        await asyncio.sleep(self.latency / 2)
        return response

    async def _handle_now(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = Params({}, {})
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._methods.get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            params = await read_params(request)
            self._raise_injected_fault(method)
            result = await handler(params)
        except ApiError as error:
            return self._answer(method, params, error.code, error.body(), error.description)
        except ConnectionResetError:  # the client went away mid-request: its doing, not a bug
            self.disconnects += 1
            raise
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            body = ApiError(500, "Internal Server Error").body()
            return self._answer(method, params, 500, body, "fake server bug")
        body = {"ok": True, "result": result}
        if isinstance(result, _Described):
            body = {"ok": True, "result": result.result, "description": result.description}
        return self._answer(method, params, 200, body, None)

    def _answer(
        self, method: str, params: Params, status: int, body: JSON, description: str | None
    ) -> web.Response:
        self.requests.append(ApiCall(method, params.loggable(), status, description, self.clock()))
        self.stats[status] += 1
        self._changed()
        return _json_response(body, status)

    def _raise_injected_fault(self, method: str) -> None:
        for index, (target, error) in enumerate(self._faults):
            if target in (method.lower(), "*"):
                del self._faults[index]
                raise error

    # ------------------------------------------------------------------ chats, limits, checks

    def _resolve_chat(self, params: Params) -> FakeChat:
        chat_id = params.chat_id()
        if isinstance(chat_id, str):
            name = chat_id.removeprefix("@").lower()
            found = [g for g in self.groups.values() if (g.username or "").lower() == name]
            if not found:
                raise bad_request("chat not found")
            return found[0]
        chat = self.users.get(chat_id) or self.groups.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _writable_chat(self, params: Params) -> FakeChat:
        """The target chat, refusing users who blocked or never started the bot (403)."""
        chat = self._resolve_chat(params)
        if isinstance(chat, FakeUser):
            if chat.blocked:
                raise forbidden("bot was blocked by the user")
            if not chat.started:
                raise forbidden("bot can't initiate conversation with a user")
        return chat

    def _thread_id(self, chat: FakeChat, params: Params) -> int | None:
        thread_id = params.get_int("message_thread_id")
        forum = isinstance(chat, FakeGroup) and chat.is_forum
        if thread_id is not None and forum and thread_id not in chat.topics:
            raise bad_request("message thread not found")
        return thread_id

    def _reply_target(self, chat: FakeChat, params: Params) -> int | None:
        reply = params.get_json("reply_parameters") or {}
        message_id = reply.get("message_id") or params.get_int("reply_to_message_id")
        if message_id is None:
            return None
        target = chat.records.get(int(message_id))
        if target and not target.get("deleted"):
            return target["message_id"]
        if reply.get("allow_sending_without_reply") or params.get_bool(
            "allow_sending_without_reply"
        ):
            return None
        raise bad_request("message to be replied not found")

    def _take_rate(self, chat: FakeChat) -> None:
        """Spend one token of the global and the chat bucket, or refuse with 429."""
        if not self.rate_limits:
            return
        buckets = (self._global_bucket, chat.bucket)
        wait = max(bucket.wait_time() for bucket in buckets)
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait - EPSILON)))
        for bucket in buckets:
            bucket.take()

    def _markup(self, params: Params) -> JSON | None:
        raw = params.get_json("reply_markup", "can't parse reply keyboard markup JSON object")
        return validate_reply_markup(raw)

    def _inline_markup(self, params: Params) -> JSON | None:
        markup = self._markup(params)
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        return markup

    def _text(self, params: Params) -> JSON:
        raw = params.get_str("text") or ""
        entities = params.get_json("entities")
        text, found = render_text(raw, params.get_str("parse_mode"), entities)
        if not text:
            raise bad_request("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        return {"text": text, "entities": found, "raw_text": raw}

    def _caption(self, params: Params) -> JSON:
        raw = params.get_str("caption") or ""
        entities = params.get_json("caption_entities")
        caption, found = render_text(raw, params.get_str("parse_mode"), entities)
        if len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        return {"caption": caption or None, "caption_entities": found, "raw_caption": raw}

    def _record_sent(self, chat: FakeChat, method: str, params: Params, fields: JSON) -> JSON:
        """Store a message the bot sent; this is the only way into :attr:`sent`."""
        record = chat.add_record(
            {
                "message_id": chat.allocate_message_id(),
                "chat_id": chat.id,
                "date": self._now(),
                "from_bot": True,
                "method": method,
                "text": None,
                "entities": [],
                "caption": None,
                "parse_mode": params.get_str("parse_mode"),
                "reply_markup": None,
                "message_thread_id": None,
                "reply_to_message_id": None,
                "disable_notification": params.get_bool("disable_notification"),
                "edited": False,
                "edit_count": 0,
                "edit_date": None,
                "history": [],
                "deleted": False,
                **fields,
            }
        )
        self.sent.append(record)
        self._sent_by_chat.setdefault(record["chat_id"], []).append(record)
        return record

    def _editable(self, params: Params) -> tuple[FakeChat, JSON]:
        if params.get_str("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._writable_chat(params)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        record = chat.records.get(message_id)
        if record is None or record.get("deleted"):
            raise bad_request("message to edit not found")
        if not record["from_bot"]:
            raise bad_request("message can't be edited")
        return chat, record

    def _apply_edit(self, record: JSON, changes: JSON) -> JSON:
        """Apply an edit, refusing a no-op as Telegram does; keeps the old version in history."""
        markup = record.get("reply_markup")
        if changes.get("reply_markup", {}) is None and markup and "inline_keyboard" not in markup:
            # A reply keyboard belongs to the chat, not the message: omitting it changes nothing.
            changes = {key: value for key, value in changes.items() if key != "reply_markup"}
        current = {key: record.get(key) for key in changes}
        if current == changes:
            raise bad_request(NOT_MODIFIED)
        record["history"].append(
            {key: record.get(key) for key in ("text", "entities", "caption", "reply_markup")}
        )
        record.update(changes)
        record["edited"] = True
        record["edit_count"] += 1
        record["edit_date"] = self._now()
        return self.api_message(record)

    def _store_file(self, params: Params, name: str) -> StoredFile:
        """The file of a send call: a multipart upload, a known file_id or an HTTP URL."""
        value = params.raw(name)
        upload = params.files.get(name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = params.files.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"wrong file identifier/HTTP URL specified for {name}")
        if upload is not None:
            return self._save_upload(upload, name)
        if not isinstance(value, str) or not value:
            raise bad_request(f"there is no {name} in the request")
        if value in self.files:
            stored = self.files[value]
            if stored.kind != name:
                kinds = (stored.kind.capitalize(), name.capitalize())
                raise bad_request("can't use file of type {} as {}".format(*kinds))
            return stored
        if re.match(r"https?://", value):
            stored = self._new_file(name, urlsplit(value).path.rsplit("/", 1)[-1] or None)
            stored.url = value
            return stored
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _save_upload(self, upload: Upload, kind: str) -> StoredFile:
        if not upload.content:
            raise bad_request("file must be non-empty")
        if len(upload.content) > DOCUMENT_SIZE_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        stored = self._new_file(kind, upload.filename)
        stored.mime_type = upload.content_type
        stored.size = len(upload.content)
        stored.content = upload.content
        return stored

    def _new_file(self, kind: str, file_name: str | None) -> StoredFile:
        number = next(self._file_ids)
        stored = StoredFile(f"FAKE{kind.upper()}{number:06d}", f"U{number:06d}", kind, file_name)
        self.files[stored.file_id] = stored
        return stored

    # ---------------------------------------------------------------------- Bot API methods

    async def _api_getMe(self, params: Params) -> JSON:
        return {
            **self.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_getUpdates(self, params: Params) -> list[JSON]:
        if self._webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed()  # an older long poll still waiting must now answer 409
        allowed = params.get_json("allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        self._confirm(params.get_int("offset"))
        limit = min(100, max(1, params.get_int("limit") or 100))
        deadline = asyncio.get_running_loop().time() + max(0.0, params.get_float("timeout") or 0.0)
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if self._pending or self._closing or self._webhook or remaining <= 0:
                return self._hand_out(limit)
            self.waiting_polls += 1
            self._changed()
            try:
                await self._wait_change(remaining)
            finally:
                self.waiting_polls -= 1

    def _confirm(self, offset: int | None) -> None:
        """Forget updates below ``offset``; a redelivered copy survives until handed out."""
        if offset is None:
            return
        if offset < 0:
            self._pending = self._pending[offset:]
            return
        self._pending = [
            entry
            for entry in self._pending
            if entry.update_id >= offset or (entry.redelivered and not entry.handed_out)
        ]

    def _hand_out(self, limit: int) -> list[JSON]:
        if self._webhook:
            return []
        batch = self._pending[:limit]
        for entry in batch:
            entry.handed_out = True
        return [copy.deepcopy(entry.update) for entry in batch]

    async def _api_setWebhook(self, params: Params) -> _Described:
        url = params.get_str("url")
        if not url:
            self._webhook = None
            self._changed()
            return _Described(True, "Webhook was deleted")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get_str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = params.get_json("allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._webhook = _Webhook(url, secret, params.get_int("max_connections") or 40)
        self._changed()
        return _Described(True, "Webhook was set")

    async def _api_deleteWebhook(self, params: Params) -> _Described:
        existed = self._webhook is not None
        self._webhook = None
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._changed()
        return _Described(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    async def _api_getWebhookInfo(self, params: Params) -> JSON:
        hook = self._webhook
        info: JSON = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if hook:
            info["max_connections"] = hook.max_connections
            if hook.last_error_date:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        if self._allowed_updates:
            info["allowed_updates"] = self._allowed_updates
        return info

    async def _api_sendMessage(self, params: Params) -> JSON:
        content = self._text(params)
        markup = self._markup(params)
        chat = self._writable_chat(params)
        thread_id = self._thread_id(chat, params)
        reply_to = self._reply_target(chat, params)
        self._take_rate(chat)
        fields = {
            **content,
            "reply_markup": markup,
            "message_thread_id": thread_id,
            "reply_to_message_id": reply_to,
        }
        return self.api_message(self._record_sent(chat, "sendMessage", params, fields))

    async def _api_editMessageText(self, params: Params) -> JSON:
        content = self._text(params)
        markup = self._inline_markup(params)
        _, record = self._editable(params)
        if record["text"] is None:
            raise bad_request("there is no text in the message to edit")
        changes = {"text": content["text"], "entities": content["entities"], "reply_markup": markup}
        return self._apply_edit(record, changes)

    async def _api_editMessageCaption(self, params: Params) -> JSON:
        content = self._caption(params)
        markup = self._inline_markup(params)
        _, record = self._editable(params)
        if record["text"] is not None:
            raise bad_request("there is no caption in the message to edit")
        changes = {
            "caption": content["caption"],
            "caption_entities": content["caption_entities"],
            "reply_markup": markup,
        }
        return self._apply_edit(record, changes)

    async def _api_editMessageReplyMarkup(self, params: Params) -> JSON:
        markup = self._inline_markup(params)
        _, record = self._editable(params)
        return self._apply_edit(record, {"reply_markup": markup})

    async def _api_deleteMessage(self, params: Params) -> bool:
        chat = self._resolve_chat(params)
        record = chat.records.get(params.get_int("message_id") or 0)
        if record is None or record.get("deleted"):
            raise bad_request("message to delete not found")
        record["deleted"] = True
        return True

    async def _api_answerCallbackQuery(self, params: Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        if query_id not in self._callback_queries or query_id in self.callback_answers:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get_str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = {
            "text": text,
            "show_alert": params.get_bool("show_alert"),
            "url": params.get_str("url"),
            "cache_time": params.get_int("cache_time"),
        }
        return True

    def _commands_key(self, params: Params) -> tuple[str, str]:
        scope = params.get_json("scope") or {"type": "default"}
        kind = scope.get("type") if isinstance(scope, dict) else None
        language = params.get_str("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2,3}", language):
            raise bad_request("invalid language code specified")
        if kind in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
            return kind, language
        if kind in ("chat", "chat_administrators", "chat_member"):
            chat = self._resolve_chat(Params({"chat_id": scope.get("chat_id")}, {}))
            suffix = f":{scope.get('user_id')}" if kind == "chat_member" else ""
            return f"{kind}:{chat.id}{suffix}", language
        raise bad_request("wrong bot command scope type specified")

    async def _api_setMyCommands(self, params: Params) -> bool:
        commands = params.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("commands must be an array")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        stored = [{"command": c["command"], "description": c["description"]} for c in commands]
        if stored:
            self.commands[key] = stored
        else:
            self.commands.pop(key, None)
        return True

    async def _api_getMyCommands(self, params: Params) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _api_deleteMyCommands(self, params: Params) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _api_setMyDescription(self, params: Params) -> bool:
        self.settings[("description", params.get_str("language_code") or "")] = params.get_str(
            "description"
        )
        return True

    async def _api_setMyShortDescription(self, params: Params) -> bool:
        key = ("short_description", params.get_str("language_code") or "")
        self.settings[key] = params.get_str("short_description")
        return True

    async def _api_setChatMenuButton(self, params: Params) -> bool:
        self.settings[("menu_button", params.get_str("chat_id") or "")] = params.get_json(
            "menu_button"
        )
        return True

    async def _api_sendChatAction(self, params: Params) -> bool:
        action = params.get_str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        chat = self._writable_chat(params)
        self._thread_id(chat, params)
        self.chat_actions.append((chat.id, action))
        return True

    async def _send_file(self, params: Params, method: str, name: str) -> JSON:
        caption = self._caption(params)
        markup = self._markup(params)
        chat = self._writable_chat(params)
        thread_id = self._thread_id(chat, params)
        reply_to = self._reply_target(chat, params)
        stored = self._store_file(params, name)
        self._take_rate(chat)
        fields = {
            **caption,
            "reply_markup": markup,
            "message_thread_id": thread_id,
            "reply_to_message_id": reply_to,
            "filename": stored.file_name,
            "size": stored.size,
            "mime_type": stored.mime_type,
            "content": stored.content,
            "file_id": stored.file_id,
            name: _file_json(stored, name),
        }
        return self.api_message(self._record_sent(chat, method, params, fields))

    async def _api_sendPhoto(self, params: Params) -> JSON:
        return await self._send_file(params, "sendPhoto", "photo")

    async def _api_sendDocument(self, params: Params) -> JSON:
        return await self._send_file(params, "sendDocument", "document")

    async def _api_createForumTopic(self, params: Params) -> JSON:
        chat = self._resolve_chat(params)
        if not isinstance(chat, FakeGroup) or not chat.is_forum:
            raise bad_request("the chat is not a forum")
        name = params.get_str("name") or ""
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_INVALID")
        thread_id = chat.add_topic(name)
        return {
            "message_thread_id": thread_id,
            "name": name,
            "icon_color": params.get_int("icon_color") or 7322096,
        }

    def _group(self, params: Params) -> FakeGroup:
        chat = self._resolve_chat(params)
        if not isinstance(chat, FakeGroup):
            raise bad_request("chat not found")
        return chat

    async def _api_getChatMemberCount(self, params: Params) -> int:
        """Members and the bot (Bot API: getChatMemberCount)."""
        return len(self._group(params).members) + 1

    async def _api_getChatAdministrators(self, params: Params) -> list[JSON]:
        """ChatMemberOwner for the first administrator, ChatMemberAdministrator for the others
        (Bot API: getChatAdministrators; bots other than us are left out, as for privacy)."""
        group = self._group(params)
        found: list[JSON] = []
        for index, user_id in enumerate(group.admins):
            user = group.members[user_id].api_user()
            if index == 0:
                found.append({"status": "creator", "user": user, "is_anonymous": False})
                continue
            rights = dict.fromkeys(
                (
                    "can_be_edited",
                    "is_anonymous",
                    "can_manage_chat",
                    "can_delete_messages",
                    "can_manage_video_chats",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_change_info",
                    "can_invite_users",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                ),
                False,
            )
            found.append({"status": "administrator", "user": user, **rights})
        return found

    async def _api_getChat(self, params: Params) -> JSON:
        chat = self._resolve_chat(params)
        if isinstance(chat, FakeUser) and not chat.seen:
            raise bad_request("chat not found")
        return {
            **chat.api_chat(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    # ------------------------------------------------------------------------------ webhook

    async def _webhook_loop(self) -> None:
        """Deliver queued updates to the webhook one at a time, in order, retrying failures."""
        if self.webhook_connections > 1:
            await self._webhook_loop_parallel()
            return
        while not self._closing:
            hook = self._webhook
            if hook is None or not self._pending:
                await self._wait_change(None)
                continue
            entry = self._pending[0]
            ok = self._record_delivery(hook, entry, await self._post_update(hook, entry.update))
            self._changed()
            if not ok:
                await self._pause_unless(
                    lambda current=hook: self._webhook is not current, self.webhook_retry_delay
                )

    async def _webhook_loop_parallel(self) -> None:
        """Several deliveries at once, never two of one chat: a chat's updates stay in order."""
        busy: set[int] = set()  # chats with an update being delivered
        tasks: set[asyncio.Task[None]] = set()

        async def deliver(hook: _Webhook, entry: _Pending, chat: int) -> None:
            try:
                delivery = await self._post_update(hook, entry.update)
                if not self._record_delivery(hook, entry, delivery):
                    self._changed()
                    await self._pause_unless(
                        lambda: self._webhook is not hook, self.webhook_retry_delay
                    )
            finally:
                busy.discard(chat)
                self._changed()

        try:
            while not self._closing:
                hook = self._webhook
                limit = min(self.webhook_connections, hook.max_connections) if hook else 0
                entry = None
                if len(tasks) < limit:
                    entry = next(
                        (e for e in self._pending if _update_chat(e.update) not in busy), None
                    )
                if hook is None or entry is None:
                    await self._wait_change(None)
                    continue
                chat = _update_chat(entry.update)
                busy.add(chat)
                task = asyncio.create_task(deliver(hook, entry, chat))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in list(tasks):
                task.cancel()

    def _record_delivery(self, hook: _Webhook, entry: _Pending, delivery: WebhookDelivery) -> bool:
        """Note one delivery attempt; a delivered update leaves the queue. True if delivered."""
        self.webhook_deliveries.append(delivery)
        if delivery.status is not None and 200 <= delivery.status < 300:
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
            return True
        hook.last_error_date = self._now()
        hook.last_error_message = delivery.error
        return False

    async def _pause_unless(self, interrupt: Callable[[], bool], seconds: float) -> None:
        """Wait ``seconds`` of real time (the retry back-off), cut short only by ``interrupt``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not interrupt() and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_change(remaining):
                return

    async def _post_update(self, hook: _Webhook, update: JSON) -> WebhookDelivery:
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        assert self._session is not None
        try:
            async with self._session.post(
                hook.url,
                data=json.dumps(update),
                headers=headers,
                timeout=ClientTimeout(total=self.webhook_timeout),
            ) as response:
                await response.read()
                error = None
                if not 200 <= response.status < 300:
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
                return WebhookDelivery(
                    update["update_id"], hook.url, response.status, hook.secret_token, error
                )
        except (ClientError, TimeoutError) as exc:
            return WebhookDelivery(
                update["update_id"], hook.url, None, hook.secret_token, f"Connection failed: {exc}"
            )


@dataclass
class _Described:
    """A successful result that also carries a ``description`` (setWebhook and friends)."""

    result: Any
    description: str


def _json_response(body: JSON, status: int) -> web.Response:
    return web.json_response(body, status=status)


def _injected_error(status: int, retry_after: int, description: str | None) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            description or f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
    defaults = {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        409: "Conflict: terminated by other getUpdates request",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
    return ApiError(status, description or defaults.get(status, "Injected failure"))


def _file_json(stored: StoredFile, kind: str) -> Any:
    base = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
    if stored.size:
        base["file_size"] = stored.size
    if kind == "photo":
        return [{**base, "width": 320, "height": 320}]
    return _omit_none({**base, "file_name": stored.file_name, "mime_type": stored.mime_type})


_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?")


def _command_entities(text: str) -> list[JSON]:
    """``bot_command`` entities as Telegram marks them (UTF-16 offsets)."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group(0)),
        }
        for match in _COMMAND_RE.finditer(text)
    ]
