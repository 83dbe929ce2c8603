"""A fake Zalo Bot Platform API server for end-to-end tests of the Zalo channel.

Much smaller than ``tests/fake_telegram.py``, in the same spirit: the real channel talks to it
over HTTP (``<root>/bot<TOKEN>/<method>``, ``{ok, result}``) and it keeps the state a real chat
would have and answers with the platform's checks and errors, so tests exercise the channel's error
handling rather than a mock that accepts everything:

- string ids, dates in milliseconds, no update_id; ``getUpdates`` long-polls and hands out one
  event at a time (``result`` is the event object), answering ``error_code`` 408 when nothing
  arrived within ``timeout``; it refuses while a webhook is set;
- ``setWebhook`` (``secret_token`` of 8–256 characters) makes the server POST each event to the
  webhook with the ``X-Bot-Api-Secret-Token`` header, wrapped in ``{ok, result}`` or flat
  (``wrap_webhook``), retrying until the webhook answers 2xx;
- ``sendMessage`` refuses empty texts and texts over 2000 characters (400), users who blocked the
  bot (403) and unknown chats (400); ``sendPhoto`` takes a photo URL only; both spend a token of a
  per-chat and a global bucket or answer 429 with ``parameters.retry_after``;
- ``fail_next`` injects errors; ``redeliver`` queues the very same event again.

Waiting is event driven (``wait_for``, ``next_message``): tests never sleep.
This module depends on nothing from the project.
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

from aiohttp import ClientError, ClientSession, ClientTimeout, web

JSON = dict[str, Any]
TEXT_LIMIT = 2000
SECRET_HEADER = "X-Bot-Api-Secret-Token"
CHAT_ACTIONS = frozenset({"typing", "upload_photo"})
_NUMBERED = re.compile(r"^\[(\d+)\] (.+)$")


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Bucket:
    """``capacity`` sends at once, then one more every ``1 / per_second`` seconds."""

    capacity: float
    per_second: float
    clock: Callable[[], float]
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.updated = self.capacity, self.clock()

    def wait_time(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.per_second


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
        message = {
            "message_id": self.server.new_message_id(),
            "date": self.server.now_ms(),
            "from": {"id": self.id, "display_name": self.display_name, "is_bot": False},
            "chat": {"id": self.id, "chat_type": "PRIVATE"},
            **content,
        }
        return self.server.enqueue({"event_name": event_name, "message": message})

    async def send(self, text: str) -> JSON:
        """Write ``text`` to the bot; returns the event (for ``redeliver``)."""
        return self._event("message.text.received", {"text": text})

    async def send_photo(self, url: str, caption: str | None = None) -> JSON:
        content: JSON = {"photo_url": url}
        if caption:
            content["caption"] = caption
        return self._event("message.image.received", content)

    async def send_sticker(self) -> JSON:
        return self._event("message.sticker.received", {"sticker": "s1"})

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


class FakeZalo:
    """The fake API: an aiohttp server plus the chats it serves."""

    def __init__(
        self,
        token: str = "zalo-token",
        *,
        per_chat_rate: tuple[int, float] = (20, 0.05),
        global_rate: tuple[int, float] = (100, 1.0),
        clock: Callable[[], float] = time.monotonic,
        wrap_webhook: bool = True,
        webhook_retry_delay: float = 0.05,
    ) -> None:
        """Rates: ``per_chat_rate`` is (burst, seconds per further message); ``global_rate`` is
        (messages, per seconds). ``clock`` drives the rate limiter only."""
        self.token = token
        self.clock = clock
        self.wrap_webhook = wrap_webhook
        self.webhook_retry_delay = webhook_retry_delay
        self._per_chat_rate = per_chat_rate
        self._global = Bucket(global_rate[0], global_rate[0] / global_rate[1], clock)
        self._chat_buckets: dict[str, Bucket] = {}
        self.users: dict[str, FakeZaloUser] = {}
        self.stats: Counter[int] = Counter()
        self.calls: Counter[str] = Counter()
        self.chat_actions: list[tuple[str, str]] = []
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[Delivery] = []
        self.internal_errors: list[str] = []
        self.root = ""
        self._pending: list[JSON] = []
        self._faults: list[tuple[str, ApiError]] = []
        self._ids = itertools.count(1)
        self._poll_generation = 0
        self._changed_event = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
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
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = ClientSession()
        self._webhook_task = asyncio.create_task(self._webhook_loop())
        return self.root

    async def stop(self) -> None:
        self._closing = True
        self._changed()
        if self._webhook_task:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    # --- test-facing API ----------------------------------------------------------------------

    def user(self, user_id: str, display_name: str | None = None) -> FakeZaloUser:
        if user_id not in self.users:
            self.users[user_id] = FakeZaloUser(self, user_id, display_name or f"User {user_id}")
        return self.users[user_id]

    def fail_next(
        self, method: str, status: int = 500, count: int = 1, *, retry_after: int = 1
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``status``."""
        descriptions = {429: "Too Many Requests", 403: "User has blocked the bot"}
        for _ in range(count):
            error = ApiError(
                status,
                descriptions.get(status, "Injected failure"),
                retry_after if status == 429 else None,
            )
            self._faults.append((method.lower(), error))

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_change(remaining):
                if predicate():
                    return
                raise AssertionError(
                    f"timed out after {timeout}s: {describe() if describe else predicate}"
                )

    def delivered_count(self, user_id: str) -> int:
        user = self.users.get(user_id)
        return len(user.messages) if user else 0

    # --- state --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def new_message_id(self) -> str:
        return f"{next(self._ids):032x}"

    def enqueue(self, event: JSON) -> JSON:
        self._pending.append(event)
        self._changed()
        return event

    def _changed(self) -> None:
        event, self._changed_event = self._changed_event, asyncio.Event()
        event.set()

    async def _wait_change(self, seconds: float | None) -> bool:
        event = self._changed_event
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True

    # --- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        self.calls[method] += 1
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._methods.get(method)
            if handler is None:
                raise ApiError(404, "Not Found")
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
        return {"id": "bot1", "account_name": "bot.sotay", "account_type": "BASIC"}

    async def _get_updates(self, params: JSON, request: web.Request | None = None) -> JSON:
        """One event, or 408 after ``timeout`` seconds. A poll whose client went away, or that a
        newer poll replaced, hands out nothing: the event waits for the live poller."""
        if self.webhook_url:
            raise ApiError(409, "Conflict: webhook is active")
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed()
        try:
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: timeout must be a number") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            gone = request is not None and (
                request.transport is None or request.transport.is_closing()
            )
            if gone or generation != self._poll_generation:
                raise ApiError(408, "Request timeout")
            if self._pending and not self.webhook_url:
                return copy.deepcopy(self._pending.pop(0))
            remaining = deadline - loop.time()
            if self._closing or self.webhook_url or remaining <= 0:
                raise ApiError(408, "Request timeout")
            await self._wait_change(remaining)

    async def _set_webhook(self, params: JSON) -> JSON:
        url, secret = params.get("url"), params.get("secret_token")
        parts = urlsplit(str(url or ""))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Bad Request: url must be an http(s) URL")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise ApiError(400, "Bad Request: secret_token must have 8 to 256 characters")
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
            raise ApiError(400, "Bad Request: chat_id must be a non-empty string")
        user = self.users.get(chat_id)
        if user is None:
            raise ApiError(400, "Bad Request: chat not found")
        if user.blocked:
            raise ApiError(403, "Forbidden: user has blocked the bot")
        return user

    def _take_rate(self, chat_id: str) -> None:
        burst, seconds = self._per_chat_rate
        chat = self._chat_buckets.setdefault(chat_id, Bucket(burst, 1 / seconds, self.clock))
        wait = max(self._global.wait_time(), chat.wait_time())
        if wait > 0:
            raise ApiError(429, "Too Many Requests", max(1, math.ceil(wait - 1e-9)))
        self._global.tokens -= 1
        chat.tokens -= 1

    def _record(self, user: FakeZaloUser, fields: JSON) -> JSON:
        message = {"message_id": self.new_message_id(), "date": self.now_ms(), **fields}
        user.messages.append(message)
        return {"message_id": message["message_id"], "date": message["date"]}

    async def _send_message(self, params: JSON) -> JSON:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: text must not be empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, f"Bad Request: text is longer than {TEXT_LIMIT} characters")
        user = self._chat(params)
        self._take_rate(user.id)
        return self._record(user, {"text": text})

    async def _send_photo(self, params: JSON) -> JSON:
        photo = params.get("photo")
        if not isinstance(photo, str) or urlsplit(photo).scheme not in ("http", "https"):
            raise ApiError(400, "Bad Request: photo must be an http(s) URL")
        caption = params.get("caption") or ""
        if len(caption) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: caption is too long")
        user = self._chat(params)
        self._take_rate(user.id)
        return self._record(user, {"photo": photo, "text": caption})

    async def _send_chat_action(self, params: JSON) -> bool:
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: unknown action")
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
        assert self._session is not None
        try:
            async with self._session.post(
                self.webhook_url or "",
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
                raise ApiError(400, "Bad Request: invalid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: JSON object expected")
            params.update(body)
        elif request.content_type == "application/x-www-form-urlencoded":
            params.update(await request.post())
        else:
            raise ApiError(400, "Bad Request: unsupported content type")
    return params
