"""Telegram through python-telegram-bot: long polling by default, a webhook served by aiohttp
when ``SOTAY_WEBHOOK_URL`` is set.

Inbound updates become ``Inbound`` events for the router; outbound messages come only from the
dispatcher via ``send``. Errors are mapped onto the dispatcher's outcomes (429 → wait, 403 →
blocked, 400 → rejected, network → retry).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlparse

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InputFile,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.channels.base import (
    Blocked,
    Capabilities,
    GroupPeople,
    Rejected,
    RetryLater,
    Transient,
)
from bot.channels.telegram_poll import ConfirmingPoller
from bot.channels.telegram_request import AiohttpRequest
from bot.core import Attachment, Contact, Inbound, View, caption_split, clean_text, split_text
from bot.i18n import LANGUAGES, t
from bot.ratelimit import Limits
from bot.secrecy import secret_matches
from bot.settings import Settings
from bot.web import WebServer, serve_alone

# Opt in to PTB's future behaviour: RetryAfter.retry_after as a timedelta (no deprecation noise).
os.environ.setdefault("PTB_TIMEDELTA", "true")
log = logging.getLogger("sotay.telegram")
WEBHOOK_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CAPTION_LIMIT = 1024


def telegram_limits(settings: Settings) -> Limits:
    return Limits(
        overall_per_second=settings.telegram_overall_rate,
        chat_burst=settings.telegram_chat_burst,
        chat_per_second=settings.telegram_chat_rate,
        group_per_minute=settings.telegram_group_per_minute,
        is_group=lambda ref: ref.startswith("-"),  # groups have negative ids
    )


def telegram_capabilities(settings: Settings) -> Capabilities:
    return Capabilities(
        buttons=True,
        edits=True,
        uploads=True,
        contact=True,
        text_limit=4096,
        limits=telegram_limits(settings),
    )


JSONDict = dict[str, Any]


def to_inbound(data: JSONDict) -> Inbound | None:
    """Translate an update, as the Bot API's JSON, into a channel-neutral event (None for
    updates we ignore). ``well_formed`` has checked the ids it relies on.

    Read from the JSON, not from python-telegram-bot's ``Update``: building the ``Update``
    objects of every fetched update was ~2 % of the bot's CPU (py-spy, bench/core_throughput),
    and we keep a handful of fields. The fields mean what PTB's would: ``full_name``, a topic's
    thread only for a topic message, a contact that is the sender's own only when its
    ``user_id`` is the sender's id."""
    common = partial(Inbound, channel="telegram", key=str(data["update_id"]))
    query = data.get("callback_query")
    if query is not None:
        sender = query["from"]
        message = query.get("message")
        chat_id = message["chat"]["id"] if message is not None else sender["id"]
        return common(
            user_ref=str(sender["id"]),
            chat_ref=str(chat_id),
            choice=_text(query.get("data")) or "",
            language_hint=_text(sender.get("language_code")),
        )
    message = data.get("message")
    if message is None:
        return None
    user = message.get("from")
    if user is None or user.get("is_bot") is True:
        return None
    chat = message["chat"]
    in_group = chat.get("type") != "private"
    thread = message.get("message_thread_id")
    topic = message.get("is_topic_message") is True and _is_id(thread)
    reply_to = message.get("reply_to_message")
    replied = reply_to.get("message_id") if isinstance(reply_to, dict) else None
    base = partial(
        common,
        user_ref=str(user["id"]),
        chat_ref=str(chat["id"]),
        language_hint=_text(user.get("language_code")),
        display_name=_full_name(user),
        in_group=in_group,
        thread_ref=str(thread) if topic else None,
        reply_to_ref=str(replied) if _is_id(replied) else None,
    )
    contact = message.get("contact")
    if contact is not None and not in_group:
        owner = contact.get("user_id")
        own = _is_id(owner) and owner == user["id"]
        return base(contact=Contact(contact["phone_number"], own))
    attachment = _attachment(message)
    text = _text(message.get("text"))
    if text is None:
        text = _text(message.get("caption"))
    if text is not None or attachment is not None:
        return base(text=clean_text(text) if text else None, attachment=attachment)
    return None if in_group else base(unsupported=True)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _full_name(user: JSONDict) -> str:
    """As PTB's ``User.full_name``: the first name, then the last name if there is one."""
    first, last = _text(user.get("first_name")) or "", _text(user.get("last_name"))
    return f"{first} {last}" if last else first


def _has_id(data: object, key: str) -> bool:
    return isinstance(data, dict) and _is_id(data.get(key))


def well_formed(data: object) -> bool:
    """The ids and fields a handler relies on have the Bot API's types: anything else is a
    forged or broken update and is refused before it reaches the router (HTTP 400 on the
    webhook; skipped when polled)."""
    if not isinstance(data, dict) or not _is_id(data.get("update_id")):
        return False
    query = data.get("callback_query")
    if query is not None:
        if not isinstance(query, dict) or not _has_id(query.get("from"), "id"):
            return False
        message = query.get("message")
        return message is None or (isinstance(message, dict) and _has_id(message.get("chat"), "id"))
    message = data.get("message")
    if message is None:
        return True  # other kinds of update are ignored
    if not _has_id(message, "message_id") or not _has_id(message.get("chat"), "id"):
        return False
    sender, contact = message.get("from"), message.get("contact")
    if sender is not None and not _has_id(sender, "id"):
        return False
    if contact is not None and not (
        isinstance(contact, dict) and isinstance(contact.get("phone_number"), str)
    ):
        return False
    return all(
        isinstance(message.get(key), kind)
        for key, kind in (("photo", list), ("document", dict), ("reply_to_message", dict))
        if message.get(key) is not None
    )


def _attachment(message: JSONDict) -> Attachment | None:
    photos = [photo for photo in message.get("photo") or () if isinstance(photo, dict)]
    if photos and _text(photos[-1].get("file_id")):
        photo = photos[-1]  # the largest size
        return Attachment("photo", photo["file_id"], _size(photo.get("file_size")), "image/jpeg")
    doc = message.get("document")
    if doc is not None and _text(doc.get("file_id")):
        return Attachment(
            "document",
            doc["file_id"],
            _size(doc.get("file_size")),
            _text(doc.get("mime_type")),
            _text(doc.get("file_name")),
        )
    return None


def markup_json(view: View, *, inline_only: bool = False) -> JSONDict | None:
    """A view's ``reply_markup`` as the Bot API's JSON: what PTB's ``InlineKeyboardMarkup``
    (or reply keyboard) would serialise to, without building its objects and turning them back
    into dicts (~25 % of the client's CPU for a call with buttons, measured against a local
    server). ``inline_only``: an edited message may carry inline buttons only."""
    if view.choices:
        rows = [[{"text": c.label, "callback_data": c.data} for c in row] for row in view.choices]
        return {"inline_keyboard": rows}
    if inline_only:
        return None
    if view.request_contact:
        button = {"text": view.request_contact, "request_contact": True}
        return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}
    if view.remove_keyboard:
        return {"remove_keyboard": True}
    return None


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramChannel:
    name = "telegram"
    text_limit = 4096

    def __init__(self, settings: Settings, handle: Callable[[Inbound], Awaitable[bool]]) -> None:
        self._settings = settings
        self._handle = handle
        self.capabilities = telegram_capabilities(settings)
        self.published_commands: list[str] = ["start", "help", "cancel"]  # App gives the rest
        root = settings.telegram_api_url.rstrip("/")
        builder = (
            Application.builder()
            .token(settings.telegram_token or "")
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .concurrent_updates(True)
            .request(AiohttpRequest())
            .get_updates_request(AiohttpRequest(connections=1))
        )
        # No PTB Updater: it confirms updates before they are handled (see telegram_poll.py).
        builder = builder.updater(None)
        self.ptb = builder.build()
        self.poller = ConfirmingPoller(
            self.ptb.bot, self.process, allowed_updates=["message", "callback_query"]
        )
        self._own_web: WebServer | None = None  # when started without the process's server

    @property
    def username(self) -> str | None:
        return self.ptb.bot.username if self.ptb.bot._bot_user else None  # noqa: SLF001

    @property
    def webhook_mode(self) -> bool:
        return bool(self._settings.webhook_url)

    async def start(self, web_server: WebServer | None = None) -> None:
        """Poll, or register the webhook. In webhook mode the route is served by
        ``web_server`` (mounted there by the caller with ``add_routes``) or by a server of its own.
        """
        await self.ptb.initialize()
        await self.publish_commands()
        if self._settings.webhook_url:
            if web_server is None:
                self._own_web = await serve_alone(self._settings, self.add_routes)
            await self._set_webhook()
        else:
            await self.ptb.bot.delete_webhook()
        await self.ptb.start()
        if not self._settings.webhook_url:
            self.poller.start()
        log.info("telegram.started mode=%s", "webhook" if self._settings.webhook_url else "polling")

    async def stop(self) -> None:
        await self.poller.stop()
        if self.ptb.running:
            await self.ptb.stop()
        if self._own_web is not None:
            await self._own_web.stop()
            self._own_web = None
        await self.ptb.shutdown()

    async def publish_commands(self) -> None:
        """The command list, in Vietnamese and English (Telegram picks by the user's language).
        The names come from the features' registrations (``App.add_channel`` hands them over)."""
        names = self.published_commands
        for lang in LANGUAGES:
            commands = [BotCommand(name, t(lang, f"cmd.{name}")) for name in names]
            await self.ptb.bot.set_my_commands(commands, language_code=lang)
        default = [BotCommand(n, t(self._settings.default_language, f"cmd.{n}")) for n in names]
        await self.ptb.bot.set_my_commands(default)

    async def publish_chat_commands(
        self, chat_ref: str, names: list[str] | None, lang: str
    ) -> None:
        """One private chat's own menu (the commands of its person's roles, in their language);
        ``None`` removes it, so the chat sees the default list again."""
        scope = BotCommandScopeChat(chat_id=int(chat_ref))
        if names is None:
            await self.ptb.bot.delete_my_commands(scope=scope)
            return
        commands = [BotCommand(name, t(lang, f"cmd.{name}")) for name in names]
        await self.ptb.bot.set_my_commands(commands, scope=scope)

    # --- inbound ---------------------------------------------------------------------------------

    async def process(self, data: JSONDict) -> None:
        """One update as the Bot API's JSON (polled or posted to the webhook)."""
        if not well_formed(data):
            log.warning("telegram.bad_update")
            return
        query = data.get("callback_query")
        if query is not None:
            try:  # stop the client's spinner at once
                await self._raw("answerCallbackQuery", callback_query_id=str(query.get("id")))
            except TelegramError:
                log.info("telegram.callback_answer_failed")
        event = to_inbound(data)
        if event is not None:
            await self._handle(event)

    def add_routes(self, app: web.Application) -> None:
        """Our webhook route, on the process's web server."""
        path = urlparse(self._settings.webhook_url or "").path or "/telegram"
        app.router.add_post(path, self._webhook)

    async def _webhook(self, request: web.Request) -> web.Response:
        """Refuse anything without our secret; process before answering so nothing is lost."""
        if not secret_matches(request.headers.get(WEBHOOK_HEADER), self._settings.webhook_secret):
            log.warning("telegram.webhook_refused")
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not well_formed(data):
            log.warning("telegram.webhook_bad_update")
            return web.Response(status=400, text="bad update")
        await self.process(data)
        return web.Response(text="ok")

    async def _set_webhook(self) -> None:
        await self.ptb.bot.set_webhook(
            url=self._settings.webhook_url or "",
            secret_token=self._settings.webhook_secret,
            allowed_updates=["message", "callback_query"],
        )

    # --- outbound --------------------------------------------------------------------------------

    async def send(self, chat_ref: str, view: View) -> str:
        try:
            if view.edit_ref:
                return await self._edit(chat_ref, view)
            return await self._send_new(chat_ref, view)
        except RetryAfter as exc:
            raise RetryLater(max(1.0, _seconds(exc.retry_after))) from exc
        except Forbidden as exc:
            raise Blocked(str(exc)) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Blocked(exc.message) from exc
            raise Rejected(exc.message) from exc
        except NetworkError as exc:
            raise Transient(str(exc)) from exc

    async def _send_new(self, chat_ref: str, view: View) -> str:
        thread = int(view.thread_ref) if view.thread_ref else None
        text = view.text
        message_id = ""
        if view.photo_ref or view.upload:
            caption, text = caption_split(text, CAPTION_LIMIT)
            media: JSONDict = {
                "chat_id": int(chat_ref),
                "caption": caption or None,
                "message_thread_id": thread,
                "reply_markup": None if text else markup_json(view),
            }
            upload = view.upload
            if upload is None:  # a photo Telegram has already: its file id
                sent = await self._raw("sendPhoto", photo=view.photo_ref, **media)
            else:  # a file of ours, sent as multipart
                file = InputFile(upload.data, upload.name)
                kind = "photo" if upload.kind == "photo" else "document"
                sent = await self._raw(f"send{kind.title()}", **{kind: file}, **media)
            message_id = str(sent["message_id"])
            if not text:
                return message_id
        parts = split_text(text, self.text_limit)
        for index, part in enumerate(parts):
            answer = await self._raw(
                "sendMessage",
                chat_id=int(chat_ref),
                text=part,
                reply_markup=markup_json(view) if index == len(parts) - 1 else None,
                message_thread_id=thread,
            )
            message_id = str(answer["message_id"])
        return message_id

    async def _raw(self, endpoint: str, **params: Any) -> Any:
        """A Bot API call answered as raw JSON. PTB's ``send_message``, ``send_photo``... build
        a ``Message`` of every answer (~250 µs of CPU a message on this machine,
        bench/core_throughput), of which we keep only the id, so their common step
        ``Bot._post`` is called instead: the same request (an ``InputFile`` goes as multipart),
        errors mapped the same way (a 429 is ``RetryAfter``, a 403 ``Forbidden``...). The
        public ``do_api_request`` does this too but warns for endpoints that have a method.
        ``None`` parameters are left out, as PTB's methods leave them."""
        given = {name: value for name, value in params.items() if value is not None}
        return await self.ptb.bot._post(endpoint, given)  # noqa: SLF001

    async def _edit(self, chat_ref: str, view: View) -> str:
        try:
            await self._raw(
                "editMessageText",
                chat_id=int(chat_ref),
                message_id=int(view.edit_ref or 0),
                text=view.text[: self.text_limit],
                reply_markup=markup_json(view, inline_only=True),
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        return view.edit_ref or ""

    async def group_people(self, chat_ref: str) -> GroupPeople:
        """Member count and administrators: all a bot may learn of a group's members."""
        try:
            count = await self.ptb.bot.get_chat_member_count(chat_id=int(chat_ref))
            admins = await self.ptb.bot.get_chat_administrators(chat_id=int(chat_ref))
        except (TelegramError, ValueError):
            log.info("telegram.group_people_failed")
            return GroupPeople(None, [])
        return GroupPeople(count, [a.user.full_name for a in admins if not a.user.is_bot])

    async def create_topic(self, chat_ref: str, name: str) -> str:
        try:
            topic = await self.ptb.bot.create_forum_topic(chat_id=int(chat_ref), name=name[:128])
        except RetryAfter as exc:
            raise RetryLater(max(1.0, _seconds(exc.retry_after))) from exc
        except Forbidden as exc:
            raise Blocked(str(exc)) from exc
        except BadRequest as exc:
            raise Rejected(exc.message) from exc
        except NetworkError as exc:
            raise Transient(str(exc)) from exc
        return str(topic.message_thread_id)
