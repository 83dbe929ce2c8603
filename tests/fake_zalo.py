"""A fake Zalo Bot Platform API server for end-to-end tests of the Zalo channel.

Written from Zalo's documentation of the Bot Platform (Bot Creator) API:
- https://bot.zapps.me/docs/call-api/ — ``<root>/bot<TOKEN>/<method>``, POST, ``{ok, result}``;
- https://bot.zapps.me/docs/error-code/ — the error table: 400 Bad request, 401 Unauthorized
  (token invalid or expired), 403 Internal server error (Zalo's own trouble, not "forbidden"),
  404 Not found, 408 Request timeout (a long poll that found nothing), 429 Quota exceeded (the
  plan's message quota; the answer carries no retry_after);
- https://bot.zapps.me/docs/apis/getMe/, https://bot.zapps.me/docs/apis/getUpdates/ (one event
  per answer, no offset, refused while a webhook is set), https://bot.zapps.me/docs/apis/setWebhook/
  (an https URL only, ``secret_token`` of 8–256 characters), https://bot.zapps.me/docs/apis/sendMessage/
  (``text`` of 1–2000 characters), https://bot.zapps.me/docs/apis/sendPhoto/ (a photo URL, an
  optional caption);
- https://bot.zapps.me/docs/webhook/ — events ``{event_name, message}`` POSTed with the
  ``X-Bot-Api-Secret-Token`` header; string ids, ``date`` in milliseconds, no update_id; an image
  event carries ``photo`` (its URL) and ``caption``; ``message.unsupported.received`` is a message
  whose content Zalo withholds (some protected users), so it has no text.

Like ``tests/fake_telegram.py`` it keeps the state a real chat would have and answers with the
platform's checks and errors, so tests exercise the channel's error handling rather than a mock
that accepts everything:

- ``getUpdates`` long-polls and hands out one event at a time, answering ``error_code`` 408 when
  nothing arrived within ``timeout``;
- ``setWebhook`` makes the server POST each event to the webhook, wrapped in ``{ok, result}`` or
  flat (``wrap_webhook``), retrying until the webhook answers 2xx. ``webhook_proxy`` plays the
  TLS-terminating proxy in front of the bot: events for the registered https URL are POSTed over
  http to that root, same path;
- ``sendMessage``/``sendPhoto`` refuse empty texts, texts over 2000 characters and an empty
  caption (400), unknown chats (400) and, beyond the plan's ``quota``, answer 429 Quota exceeded
  until ``renew_quota``. The documentation names no code for a user who blocked the bot; the fake
  answers it with a 400 whose description says so (an assumption, kept in one place:
  ``BLOCKED``);
- ``revoke_token`` makes every call with the old token a 401, as resetting the token does;
  ``fail_next`` injects any error of the table; ``redeliver`` queues the very same event again;
  ``echo_own_messages`` sends each bot message back as an event from the bot itself.

Waiting is event driven (``wait_for``, ``next_message``): tests never sleep.
This module depends on nothing from the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientTimeout, web

from tests.fake_server import FakeServer

JSON = dict[str, Any]
TEXT_LIMIT = 2000
SECRET_HEADER = "X-Bot-Api-Secret-Token"
BOT_ID = "bot1"
BOT_NAME = "bot.sotay"
ERRORS = {  # https://bot.zapps.me/docs/error-code/
    400: "Bad request",
    401: "Unauthorized",
    403: "Internal server error",
    404: "Not found",
    408: "Request timeout",
    429: "Quota exceeded",
}
BLOCKED = (400, "Bad request: the user has blocked the bot")
CHAT_ACTIONS = frozenset({"typing", "upload_photo"})
_NUMBERED = re.compile(r"^\[(\d+)\] (.+)$")


class ApiError(Exception):
    def __init__(self, code: int, description: str | None = None) -> None:
        description = description or ERRORS.get(code, "Error")
        super().__init__(description)
        self.code, self.description = code, description

    def body(self) -> JSON:
        return {"ok": False, "error_code": self.code, "description": self.description}


@dataclass
class Delivery:
    """One webhook POST: what was sent and how the bot answered (None: no connection)."""

    body: JSON
    status: int | None
    secret: str | None


def numbered_choices(message: JSON) -> dict[str, str]:
    """The "[N] label" lines of a bot message, label → number."""
    found = (_NUMBERED.match(line) for line in (message.get("text") or "").splitlines())
    return {match.group(2): match.group(1) for match in found if match}


class FakeZaloUser:
    """A Zalo user and their private chat with the bot (the chat id is the user id)."""

    def __init__(self, server: FakeZalo, user_id: str, display_name: str) -> None:
        self.server = server
        self.id = user_id
        self.display_name = display_name
        self.blocked = False
        self.messages: list[JSON] = []  # bot messages received, in order
        self._cursor = 0

    def _event(self, event_name: str, content: JSON) -> JSON:
        sender = {"id": self.id, "display_name": self.display_name, "is_bot": False}
        return self.server.enqueue(self.server.event(event_name, sender, self.id, content))

    async def send(self, text: str) -> JSON:
        """Write ``text`` to the bot; returns the event (for ``redeliver``)."""
        return self._event("message.text.received", {"text": text})

    async def send_photo(self, url: str, caption: str | None = None) -> JSON:
        """An image event as documented: the URL in ``photo``, the text in ``caption``."""
        content: JSON = {"photo": url}
        if caption:
            content["caption"] = caption
        return self._event("message.image.received", content)

    async def send_sticker(self) -> JSON:
        return self._event("message.sticker.received", {"sticker": "s1"})

    async def send_hidden(self) -> JSON:
        """A message whose content Zalo withholds (a protected user): no text, no photo."""
        return self._event("message.unsupported.received", {})

    async def choose(self, message: JSON, label: str) -> JSON:
        """Reply with the number the bot gave ``label`` in ``message`` (as a member would)."""
        numbers = numbered_choices(message)
        assert label in numbers, f"no choice {label!r} in {message.get('text')!r}"
        return await self.send(numbers[label])

    async def next_message(self, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The next bot message not yet returned; AssertionError if none comes in time."""
        await self.server.wait_for(
            lambda: len(self.messages) > self._cursor,
            timeout,
            lambda: f"no new message for {self.id}; so far: {[m['text'] for m in self.messages]}",
        )
        message = self.messages[self._cursor]
        self._cursor += 1
        return message

    def drain(self) -> list[JSON]:
        skipped, self._cursor = self.messages[self._cursor :], len(self.messages)
        return skipped

    def block(self) -> None:
        self.blocked = True


class FakeZalo(FakeServer):
    """The fake API: an aiohttp server plus the chats it serves."""

    def __init__(
        self,
        token: str = "zalo-token",
        *,
        quota: int | None = None,
        wrap_webhook: bool = True,
        webhook_retry_delay: float = 0.05,
        webhook_proxy: str | None = None,
        echo_own_messages: bool = False,
    ) -> None:
        """``quota``: the messages the plan still allows (None: no end); beyond it every send
        is a 429 Quota exceeded until ``renew_quota``."""
        super().__init__()
        self.token = token
        self.quota = quota
        self.wrap_webhook = wrap_webhook
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_proxy = webhook_proxy
        self.echo_own_messages = echo_own_messages
        self.users: dict[str, FakeZaloUser] = {}
        self.stats: Counter[int] = Counter()
        self.calls: Counter[str] = Counter()
        self.chat_actions: list[tuple[str, str]] = []
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[Delivery] = []
        self.internal_errors: list[str] = []
        self._pending: list[JSON] = []
        self._faults: list[tuple[str, ApiError]] = []
        self._ids = itertools.count(1)
        self._poll_generation = 0
        self._methods: dict[str, Callable[[JSON], Awaitable[Any]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "sendchataction": self._send_chat_action,
        }

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return await self._serve(app, self._webhook_loop)

    # --- test-facing API ----------------------------------------------------------------------

    def user(self, user_id: str, display_name: str | None = None) -> FakeZaloUser:
        if user_id not in self.users:
            self.users[user_id] = FakeZaloUser(self, user_id, display_name or f"User {user_id}")
        return self.users[user_id]

    def fail_next(self, method: str, status: int = 500, count: int = 1) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``status`` (described as in
        Zalo's error table)."""
        for _ in range(count):
            self._faults.append((method.lower(), ApiError(status)))

    def renew_quota(self, messages: int | None = None) -> None:
        """The plan's quota is granted again (``messages`` more; None: no end)."""
        self.quota = messages
        self._changed()

    def revoke_token(self) -> None:
        """The bot's token is reset in Bot Creator: the old one is refused (401) from now on."""
        self.token = f"{self.token}-reset"
        self._changed()

    async def redeliver(self, event: JSON) -> None:
        """Queue the very same event (same message_id) again."""
        self._pending.append(copy.deepcopy(event))
        self._changed()

    async def wait_for(
        self,
        predicate: Callable[[], object],
        timeout: float = 5.0,  # noqa: ASYNC109
        describe: Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every state change."""
        await self.wait_until(predicate, timeout, describe or (lambda: repr(predicate)))

    def delivered_count(self, user_id: str) -> int:
        user = self.users.get(user_id)
        return len(user.messages) if user else 0

    # --- state --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def new_message_id(self) -> str:
        return f"{next(self._ids):032x}"

    def event(self, event_name: str, sender: JSON, chat_id: str, content: JSON) -> JSON:
        """An event as the webhook documentation shows it."""
        message = {
            "message_id": self.new_message_id(),
            "date": self.now_ms(),
            "from": sender,
            "chat": {"id": chat_id, "chat_type": "PRIVATE"},
            **content,
        }
        return {"event_name": event_name, "message": message}

    def enqueue(self, event: JSON) -> JSON:
        self._pending.append(event)
        self._changed()
        return event

    # --- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        self.calls[method] += 1
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401)
            handler = self._methods.get(method)
            if handler is None:
                raise ApiError(404)
            params = await _params(request)
            for index, (target, error) in enumerate(self._faults):
                if target == method:
                    del self._faults[index]
                    raise error
            if method == "getupdates":
                result = await self._get_updates(params, request)
            else:
                result = await handler(params)
        except ApiError as error:
            return self._answer(error.code, error.body())
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            return self._answer(500, ApiError(500, "Internal Server Error").body())
        return self._answer(200, {"ok": True, "result": result})

    def _answer(self, status: int, body: JSON) -> web.Response:
        self.stats[status] += 1
        self._changed()
        # A long poll that found nothing is an ok:false answer over HTTP 200, as the platform does.
        return web.json_response(body, status=200 if status == 408 else status)

    # --- methods ------------------------------------------------------------------------------

    async def _get_me(self, params: JSON) -> JSON:
        return {"id": BOT_ID, "account_name": BOT_NAME, "account_type": "BASIC"}

    async def _get_updates(self, params: JSON, request: web.Request | None = None) -> JSON:
        """One event, or 408 after ``timeout`` seconds. A poll whose client went away, or that a
        newer poll replaced, hands out nothing: the event waits for the live poller."""
        if self.webhook_url:
            raise ApiError(400, "Bad request: a webhook is set; getUpdates is not available")
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed()
        try:
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad request: timeout must be a number") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            gone = request is not None and (
                request.transport is None or request.transport.is_closing()
            )
            if gone or generation != self._poll_generation:
                raise ApiError(408)
            if self._pending and not self.webhook_url:
                return copy.deepcopy(self._pending.pop(0))
            remaining = deadline - loop.time()
            if self._closing or self.webhook_url or remaining <= 0:
                raise ApiError(408)
            await self._wait_change(remaining)

    async def _set_webhook(self, params: JSON) -> JSON:
        url, secret = params.get("url"), params.get("secret_token")
        parts = urlsplit(str(url or ""))
        if parts.scheme != "https" or not parts.hostname:
            raise ApiError(400, "Bad request: url must be an https URL")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise ApiError(400, "Bad request: secret_token must have 8 to 256 characters")
        self.webhook_url, self.webhook_secret = str(url), secret
        self._changed()
        return {"url": self.webhook_url, "updated_at": self.now_ms()}

    async def _delete_webhook(self, params: JSON) -> JSON:
        self.webhook_url = self.webhook_secret = None
        self._changed()
        return {"url": ""}

    def _chat(self, params: JSON) -> FakeZaloUser:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise ApiError(400, "Bad request: chat_id must be a non-empty string")
        user = self.users.get(chat_id)
        if user is None:
            raise ApiError(400, "Bad request: chat not found")
        if user.blocked:
            raise ApiError(*BLOCKED)
        return user

    def _spend_quota(self) -> None:
        if self.quota is not None:
            if self.quota <= 0:
                raise ApiError(429)
            self.quota -= 1

    def _record(self, user: FakeZaloUser, fields: JSON) -> JSON:
        message = {"message_id": self.new_message_id(), "date": self.now_ms(), **fields}
        user.messages.append(message)
        if self.echo_own_messages:  # the bot's message comes back as an event from the bot
            sender = {"id": BOT_ID, "display_name": BOT_NAME, "is_bot": True}
            photo, text = fields.get("photo"), fields.get("text") or ""
            name, content = (
                ("message.image.received", {"photo": photo, "caption": text})
                if photo
                else ("message.text.received", {"text": text})
            )
            self.enqueue(self.event(name, sender, user.id, content))
        return {"message_id": message["message_id"], "date": message["date"]}

    async def _send_message(self, params: JSON) -> JSON:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad request: text must not be empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, f"Bad request: text is longer than {TEXT_LIMIT} characters")
        user = self._chat(params)
        self._spend_quota()
        return self._record(user, {"text": text})

    async def _send_photo(self, params: JSON) -> JSON:
        photo = params.get("photo")
        if not isinstance(photo, str) or urlsplit(photo).scheme not in ("http", "https"):
            raise ApiError(400, "Bad request: photo must be an http(s) URL")
        caption = params.get("caption")
        if caption is not None and (not isinstance(caption, str) or not caption.strip()):
            raise ApiError(400, "Bad request: caption must not be empty when given")
        if caption is not None and len(caption) > TEXT_LIMIT:
            raise ApiError(400, "Bad request: caption is too long")
        user = self._chat(params)
        self._spend_quota()
        return self._record(user, {"photo": photo, "text": caption or ""})

    async def _send_chat_action(self, params: JSON) -> bool:
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad request: unknown action")
        user = self._chat(params)
        self.chat_actions.append((user.id, str(action)))
        return True

    # --- webhook ------------------------------------------------------------------------------

    async def _webhook_loop(self) -> None:
        """POST queued events to the webhook one at a time, in order, retrying failures."""
        while not self._closing:
            if not self.webhook_url or not self._pending:
                await self._wait_change(None)
                continue
            event = self._pending[0]
            delivery = await self._post(event)
            self.webhook_deliveries.append(delivery)
            ok = delivery.status is not None and 200 <= delivery.status < 300
            if ok:
                with contextlib.suppress(ValueError):
                    self._pending.remove(event)
            self._changed()
            if not ok:
                await self._wait_change(self.webhook_retry_delay)

    async def _post(self, event: JSON) -> Delivery:
        body = {"ok": True, "result": event} if self.wrap_webhook else event
        headers = {"Content-Type": "application/json", SECRET_HEADER: self.webhook_secret or ""}
        target = self.webhook_url or ""
        if self.webhook_proxy:  # the proxy in front of the bot terminates TLS
            target = self.webhook_proxy.rstrip("/") + (urlsplit(target).path or "/")
        assert self._session is not None
        try:
            async with self._session.post(
                target,
                data=json.dumps(body),
                headers=headers,
                timeout=ClientTimeout(total=10),
            ) as response:
                await response.read()
                return Delivery(body, response.status, self.webhook_secret)
        except (ClientError, TimeoutError):
            return Delivery(body, None, self.webhook_secret)


async def _params(request: web.Request) -> JSON:
    """JSON body, form or query string, like the real API accepts."""
    params: JSON = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "Bad request: invalid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad request: JSON object expected")
            params.update(body)
        elif request.content_type == "application/x-www-form-urlencoded":
            params.update(await request.post())
        else:
            raise ApiError(400, "Bad request: unsupported content type")
    return params
