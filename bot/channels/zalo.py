"""Zalo through the Zalo Bot Platform: long polling (``getUpdates``) by default, a webhook served
by aiohttp when ``SOTAY_ZALO_WEBHOOK_URL`` is set.

The platform is modelled on Telegram's Bot API (``<base>/bot<TOKEN>/<method>``, ``{ok, result}``)
but has no buttons, no edits, no contact sharing, no update_id and no file uploads (``sendPhoto``
takes a URL). So: choices are rendered as a numbered list under the text and remembered per chat in
the database (``pending_choice``), and a reply that is just a number or a label becomes the pressed
choice (the dispatcher remembers the choices, as on every channel); the message_id is the
idempotency key; an edit is sent as a new message; a file we made is replaced by a note saying
where to get it; members type their phone number (the secretary approves).

Inbound events become ``Inbound`` for the router; outbound messages come only from the dispatcher
via ``send``. Errors follow Zalo's error table (https://bot.zapps.me/docs/error-code/):
403 is Zalo's *internal server error* (retried with backoff, never "blocked"); 429 is the plan's
quota, spent, with no retry_after (the whole channel pauses, longer each time, and the admins are
told once); 401 is a token that is no longer valid (the channel stops, says so in one log line and
alerts the admins; queued messages wait for a restart with a good token); 400 is a refused
message; 408 and 5xx are retried. The bot's own messages, if they come back, are ignored. Logs
never carry message text, names or phone numbers, and never the token (it is part of every URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlparse

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from bot import choices as choices_rule
from bot.channel_alerts import alert_admins
from bot.channels.base import (
    Blocked,
    Capabilities,
    ChannelPaused,
    Rejected,
    SendError,
    Transient,
)
from bot.clock import Clock
from bot.core import Attachment, Choice, Inbound, View, caption_split, clean_text, split_text
from bot.i18n import t
from bot.ratelimit import Limits
from bot.secrecy import secret_matches
from bot.settings import Settings
from bot.web import WebServer, serve_alone
from storage.db import Database
from storage.models import PendingChoices

log = logging.getLogger("sotay.zalo")
CHANNEL = "zalo"
WEBHOOK_HEADER = "X-Bot-Api-Secret-Token"
TEXT_LIMIT = 2000
CAPTION_LIMIT = 1000  # undocumented; kept well under the text limit
POLL_TIMEOUT = 30  # seconds a getUpdates call may wait for an event
MAX_POLL_BACKOFF = 30.0
QUOTA_FIRST_PAUSE = 60.0  # seconds the channel waits after the plan's quota is first found spent
QUOTA_MAX_PAUSE = 3600.0  # ...doubling at each further 429, up to an hour
TOKEN_PAUSE = 3600.0  # a refused token: queued messages wait (re-checked hourly) for a restart
EVENT_UNSUPPORTED = "message.unsupported.received"  # Zalo hides the content (protected users)

Handle = Callable[[Inbound], Awaitable[bool]]


class ZaloApiError(Exception):
    """An answer of the Bot API with ``ok: false`` (or an HTTP error status)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description


# --- inbound -------------------------------------------------------------------------------------


def unwrap(body: Any) -> dict[str, Any] | None:
    """The event inside a webhook body, which comes either wrapped (``{ok, result: event}``) or
    flat (the event itself)."""
    if not isinstance(body, dict):
        return None
    inner = body.get("result")
    if isinstance(inner, dict) and "message" not in body:
        return inner
    return body if "message" in body or "event_name" in body else None


def events_of(result: Any) -> list[dict[str, Any]]:
    """getUpdates answers one event object, or a list of them, or nothing: accept all three."""
    if isinstance(result, list):
        return [item for item in result if isinstance(item, dict)]
    if isinstance(result, dict) and ("message" in result or "event_name" in result):
        return [result]
    return []


def _object(value: object) -> dict[str, Any]:
    """A JSON object from the payload, or an empty one when the field is missing or not one."""
    return value if isinstance(value, dict) else {}


def to_inbound(event: Mapping[str, Any], bot_id: str | None = None) -> Inbound | None:
    """Translate a Zalo message event into a channel-neutral event (None for what we ignore).

    The key is the message_id: Zalo has no update_id, and a redelivered event keeps its
    message_id. Group chats are ignored: the assistant serves members in private chats here, and
    so are messages from a bot — our own (``bot_id``, from getMe) coming back included.
    An image event carries its URL in ``photo`` and its text in ``caption``
    (https://bot.zapps.me/docs/webhook/; ``photo_url`` is accepted too). A
    ``message.unsupported.received`` event is a message whose content Zalo withheld (it hides
    some protected users' messages): ``hidden``, so the member is answered fittingly.
    """
    message = event.get("message")
    if not isinstance(message, dict):
        return None
    sender, chat = _object(message.get("from")), _object(message.get("chat"))
    message_id, user_id = message.get("message_id"), sender.get("id")
    if not message_id or not user_id or sender.get("is_bot"):
        return None
    if bot_id is not None and str(user_id) == bot_id:
        return None
    if str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE":
        return None
    hint = sender.get("language_code") or sender.get("language")
    base = partial(
        Inbound,
        channel=CHANNEL,
        key=str(message_id)[:128],
        user_ref=str(user_id),
        chat_ref=str(chat.get("id") or user_id),
        language_hint=str(hint) if hint else None,
        display_name=sender.get("display_name") or sender.get("name"),
    )
    if event.get("event_name") == EVENT_UNSUPPORTED:
        return base(hidden=True)
    photo = message.get("photo") or message.get("photo_url")
    attachment = Attachment("photo", str(photo)) if isinstance(photo, str) and photo else None
    text = message.get("text") or message.get("caption")
    if isinstance(text, str) and text or attachment is not None:
        cleaned = clean_text(text) if isinstance(text, str) and text else None
        return base(text=cleaned, attachment=attachment)
    return base(unsupported=True)


def pick(choices: Sequence[Sequence[str]], text: str) -> str | None:
    """The data of the choice a typed reply names: its number ("2", "[2]") or its label, with or
    without diacritics, or a fitting synonym; None when the text names none of them (it stays
    ordinary text). The rule itself is ``bot.choices.pick``, the same on every channel."""
    return choices_rule.pick(choices, text)


# --- outbound ------------------------------------------------------------------------------------


RULE = "───────────"


def numbered(text: str, choices: Sequence[Choice]) -> str:
    """The text with its choices as "[1] label" lines under a rule: Zalo has no buttons. The
    brackets and the rule keep the choices apart from an answer's own numbered steps ("1. Mở
    ứng dụng…"), so nobody takes step 1 for choice 1."""
    if not choices:
        return text
    lines = [f"[{number}] {choice.label}" for number, choice in enumerate(choices, 1)]
    return "\n".join([text, RULE, *lines]) if text else "\n".join(lines)


def _is_url(ref: str | None) -> bool:
    return bool(ref) and urlparse(ref or "").scheme in ("http", "https")


def classify(error: ZaloApiError, quota_pause: float = QUOTA_FIRST_PAUSE) -> SendError:
    """The dispatcher's outcome for an API error, after Zalo's error table
    (https://bot.zapps.me/docs/error-code/): 400 bad request, 401 unauthorized, 403 internal
    server error, 404 not found, 408 request timeout, 429 quota exceeded."""
    description = error.description.lower()
    if error.code == 401:
        return ChannelPaused(TOKEN_PAUSE, "token refused")
    if error.code == 429:  # the plan's quota: no retry_after, and no use retrying each second
        return ChannelPaused(quota_pause, "quota exceeded")
    if error.code == 403 or error.code == 408 or error.code >= 500:
        return Transient(f"{error.code}")  # Zalo's own trouble: keep the message, retry later
    if "block" in description or "chat not found" in description or "user not found" in description:
        return Blocked(error.description[:200])
    return Rejected(error.description[:200])


class ZaloChannel:
    name = CHANNEL
    text_limit = TEXT_LIMIT

    def __init__(
        self,
        settings: Settings,
        handle: Handle,
        db: Database,
        *,
        clock: Clock | None = None,
        poll_timeout: int = POLL_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._handle = handle
        self.capabilities = Capabilities(
            buttons=False,  # numbered lines, answered with the number or the label
            edits=False,
            uploads=False,  # sendPhoto takes only a URL: our files cannot travel
            contact=False,  # a bot of a personal account cannot see phones
            text_limit=TEXT_LIMIT,
            limits=Limits(
                overall_per_second=settings.zalo_overall_rate,
                chat_burst=settings.zalo_chat_burst,
                chat_per_second=settings.zalo_chat_rate,
            ),
        )
        self._db = db
        self._clock = clock or Clock()
        self._poll_timeout = poll_timeout
        root = settings.zalo_api_url.rstrip("/")
        self._base = f"{root}/bot{settings.zalo_token or ''}"
        self._http: ClientSession | None = None
        self._poller: asyncio.Task[None] | None = None
        self._own_web: WebServer | None = None  # when started without the process's server
        self.bot_name: str | None = None
        self.bot_id: str | None = None  # our own sender id: our messages coming back are ignored
        self.token_refused = False  # a 401 while running: stopped until restarted
        self._quota_pause = 0.0  # the pause after the last 429 (0: the quota is not spent)
        self._alerted: set[str] = set()  # troubles the admins were told about (once each)

    @property
    def webhook_mode(self) -> bool:
        return bool(self._settings.zalo_webhook_url)

    @property
    def polling(self) -> bool:
        """Whether the getUpdates loop runs (it ends when Zalo refuses the token)."""
        return self._poller is not None and not self._poller.done()

    async def start(self, web_server: WebServer | None = None) -> None:
        """Check the token (getMe), then poll or register the webhook. In webhook mode the route
        is served by ``web_server`` (mounted there by the caller with ``add_routes``) or by a
        server of its own."""
        self._http = ClientSession()
        try:
            me = await self._call("getMe")
            self.bot_name = (me or {}).get("account_name") or (me or {}).get("name")
            self.bot_id = str(me["id"]) if isinstance(me, dict) and me.get("id") else None
            if self.webhook_mode:
                if web_server is None:
                    self._own_web = await serve_alone(self._settings, self.add_routes)
                await self._call(
                    "setWebhook",
                    url=self._settings.zalo_webhook_url or "",
                    secret_token=self._settings.zalo_webhook_secret or "",
                )
            else:
                await self._call("deleteWebhook")
                self._poller = asyncio.create_task(self._poll_forever(), name="zalo-poll")
        except BaseException:
            await self.stop()
            raise
        log.info("zalo.started mode=%s", "webhook" if self.webhook_mode else "polling")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._own_web is not None:
            await self._own_web.stop()
            self._own_web = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- the API -----------------------------------------------------------------------------

    async def _call(self, method: str, *, http_timeout: float = 30.0, **params: Any) -> Any:
        """POST one method; the result on ``ok``, else ZaloApiError. Network errors propagate."""
        assert self._http is not None, "ZaloChannel.start() first"
        async with self._http.post(
            f"{self._base}/{method}", json=params, timeout=ClientTimeout(total=http_timeout)
        ) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            status = response.status
        if isinstance(body, dict) and body.get("ok") is True and status < 400:
            return body.get("result")
        code = status if status >= 400 else 500
        description = "no JSON answer"
        if isinstance(body, dict):
            code = int(body.get("error_code") or code)
            description = str(body.get("description") or body.get("message") or "")
        raise ZaloApiError(code, description)

    # --- inbound -----------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        """Long-poll until cancelled. No event within the timeout is an answer, not an error;
        real errors back off so an outage does not turn into a busy loop."""
        backoff = 1.0
        while True:
            try:
                result = await self._call(
                    "getUpdates",
                    http_timeout=self._poll_timeout + 10.0,
                    timeout=str(self._poll_timeout),
                )
            except asyncio.CancelledError:
                raise
            except ZaloApiError as exc:
                if exc.code == 408:  # nothing arrived within the long-poll timeout
                    continue
                if exc.code == 401:
                    await self._token_refused()
                    return
                log.warning("zalo.poll_failed code=%s", exc.code)
                await asyncio.sleep(backoff)
                backoff = min(MAX_POLL_BACKOFF, backoff * 2)
                continue
            except (ClientError, TimeoutError) as exc:
                log.warning("zalo.poll_failed error=%s", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(MAX_POLL_BACKOFF, backoff * 2)
                continue
            backoff = 1.0
            for event in events_of(result):
                await self._process_safely(event)

    async def _process_safely(self, event: Mapping[str, Any]) -> None:
        try:
            await self.process(event)
        except Exception:  # the poll loop is the only way events arrive: it must never die
            log.exception("zalo.event_failed")

    async def process(self, event: Mapping[str, Any]) -> None:
        inbound = to_inbound(event, self.bot_id)
        if inbound is not None:
            await self._handle(await self.resolve_choice(inbound))

    async def resolve_choice(self, inbound: Inbound) -> Inbound:
        """A reply naming one of the chat's numbered choices becomes that choice's data; the
        router then checks it like a pressed button (stale prompts are refused politely)."""
        if inbound.text is None or inbound.attachment is not None or inbound.command is not None:
            return inbound
        async with self._db.reader() as session:
            row = await session.get(PendingChoices, (CHANNEL, inbound.chat_ref))
        data = pick(row.choices, inbound.text) if row is not None else None
        if data is None:
            return inbound
        return dataclasses.replace(inbound, text=None, choice=data)

    def add_routes(self, app: web.Application) -> None:
        """Our webhook route, on the process's web server."""
        path = urlparse(self._settings.zalo_webhook_url or "").path or "/zalo"
        app.router.add_post(path, self._webhook)

    async def _webhook(self, request: web.Request) -> web.Response:
        """Refuse anything without our secret; process before answering so nothing is lost."""
        if not secret_matches(
            request.headers.get(WEBHOOK_HEADER), self._settings.zalo_webhook_secret
        ):
            log.warning("zalo.webhook_refused")
            return web.Response(status=403, text="forbidden")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="bad event")
        event = unwrap(body)
        if event is None:
            return web.Response(status=400, text="bad event")
        await self.process(event)
        return web.json_response({"ok": True})

    # --- outbound ----------------------------------------------------------------------------

    async def send(self, chat_ref: str, view: View) -> str:
        """Deliver one view. An edit (``view.edit_ref``) is sent as a new message: Zalo cannot
        edit. (The dispatcher has remembered the choices for the chat before this call.)"""
        if self.token_refused:  # nothing can leave until a restart with a valid token
            raise ChannelPaused(TOKEN_PAUSE, "token refused")
        try:
            message_id = await self._send(chat_ref, view)
        except ZaloApiError as exc:
            raise await self._outcome(exc) from exc
        except (ClientError, TimeoutError) as exc:
            raise Transient(type(exc).__name__) from exc
        if self._quota_pause:  # the quota is back: a later 429 is a new trouble
            log.info("zalo.quota_back")
            self._quota_pause = 0.0
            self._alerted.discard("quota")
        return message_id

    async def _outcome(self, error: ZaloApiError) -> SendError:
        """The dispatcher's outcome for ``error``; a spent quota pauses longer each time it is
        found still spent, and the channel's troubles are told to the admins once."""
        if error.code == 401:
            await self._token_refused()
        elif error.code == 429:
            self._quota_pause = min(QUOTA_MAX_PAUSE, 2 * self._quota_pause or QUOTA_FIRST_PAUSE)
            log.warning("zalo.quota_exceeded pause=%s", self._quota_pause)
            await self._alert_once("quota", "channel.alert.quota")
        return classify(error, self._quota_pause or QUOTA_FIRST_PAUSE)

    async def _token_refused(self) -> None:
        """Zalo answered 401: the token is invalid or was reset. Stop polling and sending, say
        so once in the log (never the token) and tell the admins."""
        if self.token_refused:
            return
        self.token_refused = True
        log.error(
            "zalo.stopped: Zalo refused SOTAY_ZALO_TOKEN (401 Unauthorized); set a valid token "
            "and restart, queued messages wait until then"
        )
        await self._alert_once("token", "channel.alert.token")

    async def _alert_once(self, trouble: str, key: str) -> None:
        if trouble in self._alerted:
            return
        self._alerted.add(trouble)
        await alert_admins(
            self._db,
            self._clock,
            channel=CHANNEL,
            key=key,
            default_language=self._settings.default_language,
        )

    async def _send(self, chat_ref: str, view: View) -> str:
        lang = self._settings.default_language  # the view is already in the member's language
        text = numbered(view.text, [choice for row in view.choices for choice in row])
        if view.upload is not None:  # handlers avoid this; a defensive note, never a lost message
            text += "\n\n" + t(lang, "zalo.file_elsewhere", name=view.upload.name)
        photo = view.photo_ref if _is_url(view.photo_ref) else None
        if view.photo_ref and photo is None:  # another channel's file id: Zalo cannot fetch it
            text += "\n\n" + t(lang, "zalo.photo_elsewhere")
        message_id = ""
        if photo is not None:
            caption, text = caption_split(text, CAPTION_LIMIT)
            extra: dict[str, Any] = {"caption": caption} if caption.strip() else {}  # never empty
            sent = await self._call("sendPhoto", chat_id=chat_ref, photo=photo, **extra)
            message_id = _message_id(sent)
        if text or not message_id:
            for part in split_text(text, self.text_limit):
                sent = await self._call("sendMessage", chat_id=chat_ref, text=part)
                message_id = _message_id(sent)
        return message_id


def _message_id(sent: Any) -> str:
    return str(sent.get("message_id", "")) if isinstance(sent, dict) else ""
