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
from typing import Any, TypedDict
from urllib.parse import urlparse

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler

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


def to_inbound(update: Update) -> Inbound | None:
    """Translate an update into a channel-neutral event (None for updates we ignore)."""
    common = partial(Inbound, channel="telegram", key=str(update.update_id))
    if update.callback_query is not None:
        query = update.callback_query
        chat_id = query.message.chat.id if query.message else query.from_user.id
        return common(
            user_ref=str(query.from_user.id),
            chat_ref=str(chat_id),
            choice=query.data or "",
            language_hint=query.from_user.language_code,
        )
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    user = message.from_user
    in_group = message.chat.type != "private"
    reply_to = message.reply_to_message
    base = partial(
        common,
        user_ref=str(user.id),
        chat_ref=str(message.chat.id),
        language_hint=user.language_code,
        display_name=user.full_name,
        in_group=in_group,
        thread_ref=str(message.message_thread_id) if message.is_topic_message else None,
        reply_to_ref=str(reply_to.message_id) if reply_to is not None else None,
    )
    if message.contact is not None and not in_group:
        own = message.contact.user_id == user.id
        return base(contact=Contact(message.contact.phone_number, own))
    attachment = _attachment(message)
    text = message.text if message.text is not None else message.caption
    if text is not None or attachment is not None:
        return base(text=clean_text(text) if text else None, attachment=attachment)
    return None if in_group else base(unsupported=True)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def well_formed(data: object) -> bool:
    """The ids a handler relies on are integers, as the Bot API sends them: anything else is a
    forged or broken update and is refused before it reaches the router (HTTP 400)."""
    if not isinstance(data, dict) or not _is_id(data.get("update_id")):
        return False
    query = data.get("callback_query")
    if query is not None:
        sender = query.get("from") if isinstance(query, dict) else None
        return isinstance(sender, dict) and _is_id(sender.get("id"))
    message = data.get("message")
    if message is None:
        return True  # other kinds of update are ignored
    if not isinstance(message, dict) or not _is_id(message.get("message_id")):
        return False
    chat, sender = message.get("chat"), message.get("from")
    if not isinstance(chat, dict) or not _is_id(chat.get("id")):
        return False
    return sender is None or (isinstance(sender, dict) and _is_id(sender.get("id")))


def _attachment(message: Message) -> Attachment | None:
    if message.photo:
        photo = message.photo[-1]  # the largest size
        return Attachment("photo", photo.file_id, photo.file_size, "image/jpeg")
    if message.document is not None:
        doc = message.document
        return Attachment("document", doc.file_id, doc.file_size, doc.mime_type, doc.file_name)
    return None


Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


class _MediaArgs(TypedDict):
    """What send_photo and send_document share in ``_send_new``."""

    chat_id: int
    caption: str | None
    message_thread_id: int | None
    reply_markup: Markup


def render_markup(view: View) -> Markup:
    if view.choices:
        return InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(c.label, callback_data=c.data) for c in row]
                for row in view.choices
            ]
        )
    if view.request_contact:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(view.request_contact, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if view.remove_keyboard:
        return ReplyKeyboardRemove()
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
        self.ptb.add_handler(TypeHandler(Update, self._on_update))
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

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.process(update)

    async def process(self, update: Update) -> None:
        if update.callback_query is not None:
            try:
                await update.callback_query.answer()  # stop the client's spinner at once
            except TelegramError:
                log.info("telegram.callback_answer_failed")
        event = to_inbound(update)
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
            if not well_formed(data):
                raise ValueError("malformed update")
            update = Update.de_json(data, self.ptb.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("telegram.webhook_bad_update")
            return web.Response(status=400, text="bad update")
        await self.process(update)
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
        bot = self.ptb.bot
        thread = int(view.thread_ref) if view.thread_ref else None
        text = view.text
        message_id = ""
        if view.photo_ref or view.upload:
            caption, text = caption_split(text, CAPTION_LIMIT)
            common: _MediaArgs = {
                "chat_id": int(chat_ref),
                "caption": caption or None,
                "message_thread_id": thread,
                "reply_markup": None if text else render_markup(view),
            }
            upload = view.upload
            if upload is None:
                assert view.photo_ref is not None  # photo_ref or upload, and upload is None
                sent = await bot.send_photo(photo=view.photo_ref, **common)
            elif upload.kind == "photo":
                sent = await bot.send_photo(photo=InputFile(upload.data, upload.name), **common)
            else:
                sent = await bot.send_document(
                    document=InputFile(upload.data, upload.name), **common
                )
            message_id = str(sent.message_id)
            if not text:
                return message_id
        parts = split_text(text, self.text_limit)
        for index, part in enumerate(parts):
            markup = render_markup(view) if index == len(parts) - 1 else None
            answer = await self._raw(
                "sendMessage",
                chat_id=int(chat_ref),
                text=part,
                reply_markup=markup,
                message_thread_id=thread,
            )
            message_id = str(answer["message_id"])
        return message_id

    async def _raw(self, endpoint: str, **params: Any) -> Any:
        """A Bot API call answered as raw JSON. PTB's ``send_message`` and
        ``edit_message_text`` build a ``Message`` of every answer (~250 µs of CPU a message on
        this machine, bench/core_throughput), of which we keep only the id, so their common step
        ``Bot._post`` is called instead: the same request, errors mapped the same way (a 429 is
        ``RetryAfter``, a 403 ``Forbidden``...). The public ``do_api_request`` does this too
        but warns for endpoints that have a method. ``None`` parameters are left out, as PTB's
        methods leave them."""
        given = {name: value for name, value in params.items() if value is not None}
        return await self.ptb.bot._post(endpoint, given)  # noqa: SLF001

    async def _edit(self, chat_ref: str, view: View) -> str:
        markup = render_markup(view)
        try:
            await self._raw(
                "editMessageText",
                chat_id=int(chat_ref),
                message_id=int(view.edit_ref or 0),
                text=view.text[: self.text_limit],
                reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
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
