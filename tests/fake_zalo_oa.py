"""A fake Zalo Official Account platform for end-to-end tests: OAuth v4, OA API v3 consultation
messages, ZNS template messages, and signed webhook events sent to the bot.

Written from what could be found of Zalo's documentation (the official developers.zalo.me pages
themselves were not in the searchable corpus; these are the sources used, and where they stop the
issue's text is followed):
- Consultation message ``POST https://openapi.zalo.me/v3.0/oa/message/cs``, header
  ``access_token``, body ``{recipient: {user_id}, message: {text | attachment}}``, answer
  ``{error: 0, message: "Success", data: {message_id, user_id}}`` — Zalo's own Java SDK,
  github.com/zaloplatform/zalo-java-sdk src/test/java/v3/SendRequestUserInfoCSMessage.java, which
  also gives the ``request_user_info`` template (``template_type: request_user_info``,
  ``elements: [{title, subtitle, image_url}]``); npm ``zalo-api`` (list / media /
  request_user_info templates).
- OAuth v4 ``POST https://oauth.zaloapp.com/v4/oa/access_token``, header ``secret_key`` (the app
  secret), form ``app_id``, ``grant_type=refresh_token`` + ``refresh_token`` or
  ``grant_type=authorization_code`` + ``code`` + ``code_verifier``; answer ``{access_token,
  refresh_token, expires_in}`` (a string of seconds) — zaloplatform/zalo-php-sdk README, and
  several integrations (e.g. Kai-D13/Kajo_rehab refresh-zalo-token.ps1). The refresh token is
  single-use (the issue; integrations store the new one after every refresh). An OAuth error is
  answered as ``{error: <negative>, error_name, error_description}``; the exact code for a spent
  refresh token (-14014 here) was not found in the sources.
- Webhook events ``{app_id, user_id_by_app, event_name, timestamp (ms, string), sender: {id},
  recipient: {id}, message: {text, msg_id, attachments: [{type, payload: {url}}]}}``,
  ``follow``/``unfollow`` with ``follower: {id}``, ``user_submit_info`` with ``info: {name, phone,
  address, city, district}``, echoes ``oa_send_text`` from the OA — chatwoot/chatwoot
  (app/controllers/webhooks/zalo_controller.rb reads ``X-ZEvent-Signature``), TypeScript event
  types of several integrations. Signature ``X-ZEvent-Signature: mac=`` + hex
  sha256(appId + body + timestamp + OAsecretKey) — a published helper ("Generates SHA256
  signature for Zalo OA webhook: sha256(appId + data + timestamp + OASecretKey)") and the issue.
- Error codes: -230 "User has not interacted with the OA in the past 7 days" and -213 "user has
  not followed the OA" (khoicodedao/Poto_platform docs/FIX_ERROR_230.md); -216 access token
  invalid, -124 and -32 (quota) as the issue's brief lists them — no official error table was
  found. Consultation messages reach only members who interacted within 7 days (the issue; one
  SDK's comments say 48 hours for an older rule).
- Buttons on a consultation message: ``attachment: {type: template, payload: {buttons: [{title,
  type: oa.query.hide, payload}]}}``; a press of ``oa.query.hide`` comes back as a
  ``user_send_text`` whose text is the payload, not shown in the chat. This button shape is from
  integrations (not the official page); up to 5 buttons are accepted here.
- ZNS ``POST https://business.openapi.zalo.me/message/template``, header ``access_token``, body
  ``{phone: "84…", template_id, template_data, tracking_id}``, answer ``{error: 0, data:
  {msg_id, sent_time}}`` — redai-zalo-sdk (npm) ZNS service docs.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientSession, web

from tests.fake_server import FakeServer

JSON = dict[str, Any]
WINDOW = timedelta(days=7)
SPENT_REFRESH = -14014
TOKEN_INVALID = -216
OUTSIDE_WINDOW = -230
QUOTA = -32
MAX_BUTTONS = 5


@dataclass
class Delivery:
    """One webhook POST: what the bot answered and how long it took."""

    event: JSON
    status: int
    seconds: float


@dataclass
class FakeOAUser:
    server: FakeZaloOA
    id: str
    name: str
    phone: str
    messages: list[JSON] = field(default_factory=list)  # what the OA sent, in order
    _cursor: int = 0

    def _event(self, event_name: str, **content: Any) -> JSON:
        return {
            "app_id": self.server.app_id,
            "user_id_by_app": f"app-{self.id}",
            "event_name": event_name,
            "timestamp": str(self.server.now_ms()),
            "sender": {"id": self.id},
            "recipient": {"id": self.server.oa_id},
            **content,
        }

    async def send(self, text: str) -> Delivery:
        message = {"text": text, "msg_id": self.server.new_id()}
        return await self.server.deliver(self._event("user_send_text", message=message))

    async def press(self, message: JSON, label: str) -> Delivery:
        """Tap a button of ``message``: Zalo sends its payload back as hidden text."""
        buttons = buttons_of(message)
        assert label in buttons, f"no button {label!r} in {list(buttons)}"
        return await self.send(buttons[label])

    async def choose(self, message: JSON, label: str) -> Delivery:
        """Tap the button ``label``, or type its number when the OA listed the choices."""
        if label in buttons_of(message):
            return await self.press(message, label)
        numbered = dict(re.findall(r"^\[(\d+)\] (.+)$", text_of(message), re.MULTILINE))
        number = next((n for n, text in numbered.items() if text == label), None)
        assert number is not None, f"no choice {label!r} in {text_of(message)!r}"
        return await self.send(number)

    async def send_image(self, url: str) -> Delivery:
        message = {
            "msg_id": self.server.new_id(),
            "attachments": [{"type": "image", "payload": {"url": url, "thumbnail": url}}],
        }
        return await self.server.deliver(self._event("user_send_image", message=message))

    async def share_info(self) -> Delivery:
        """Submit the request_user_info form: Zalo adds the phone it holds for the account."""
        info = {"name": self.name, "phone": self.phone, "address": "", "city": "", "district": ""}
        return await self.server.deliver(self._event("user_submit_info", info=info))

    async def follow(self, event_name: str = "follow") -> Delivery:
        event = {
            "app_id": self.server.app_id,
            "oa_id": self.server.oa_id,
            "event_name": event_name,
            "timestamp": str(self.server.now_ms()),
            "follower": {"id": self.id},
            "source": "oa_profile",
        }
        return await self.server.deliver(event)

    async def next_message(self, timeout: float = 10.0) -> JSON:  # noqa: ASYNC109
        await self.server.wait_for(lambda: len(self.messages) > self._cursor, timeout)
        message = self.messages[self._cursor]
        self._cursor += 1
        return message

    def drain(self) -> list[JSON]:
        rest, self._cursor = self.messages[self._cursor :], len(self.messages)
        return rest


def buttons_of(message: JSON) -> dict[str, str]:
    """``{title: payload}`` of a consultation message's buttons."""
    attachment = message.get("attachment") or {}
    buttons = (attachment.get("payload") or {}).get("buttons") or []
    return {b["title"]: b["payload"] for b in buttons}


def text_of(message: JSON) -> str:
    return str(message.get("text") or "")


def is_info_request(message: JSON) -> bool:
    payload = (message.get("attachment") or {}).get("payload") or {}
    return payload.get("template_type") == "request_user_info"


class FakeZaloOA(FakeServer):
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        app_id: str = "4291763606161179100",
        app_secret: str = "app-secret-123",
        oa_secret: str = "oa-secret-key-456",
        access_ttl: int = 90000,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.app_id, self.app_secret, self.oa_secret = app_id, app_secret, oa_secret
        self.oa_id = "579745863508352884"
        self.access_ttl = access_ttl
        self.webhook_url: str | None = None
        self._refresh: dict[str, bool] = {}  # refresh token → still unused
        self._access: dict[str, datetime] = {}  # access token → expiry
        self._codes: dict[str, str] = {}  # authorization code → its PKCE verifier
        self.refresh_calls = 0  # refresh_token grants received (spent or not)
        self.spent_attempts = 0  # refreshes with a token already used
        self.users: dict[str, FakeOAUser] = {}
        self.last_interaction: dict[str, datetime] = {}
        self.zns: list[JSON] = []
        self.deliveries: list[Delivery] = []
        self.fail_next: list[int] = []  # error codes the next consultation calls answer
        self.oauth_gate: asyncio.Event | None = None  # holds OAuth answers while cleared
        self.oauth_arrived = 0  # OAuth requests received (before the gate)
        self.getoa_calls = 0  # the bot asks who it is when it starts
        self.internal_errors: list[str] = []
        self._ids = itertools.count(1)
        self._echoes: set[asyncio.Task[Delivery]] = set()

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v4/oa/access_token", self._oauth)
        app.router.add_post("/v3.0/oa/message/cs", self._cs)
        app.router.add_post("/message/template", self._zns)
        app.router.add_get("/v2.0/oa/getoa", self._getoa)
        return await self._serve(app)

    async def stop(self) -> None:
        for task in list(self._echoes):
            task.cancel()
        await super().stop()

    # --- helpers for tests --------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def new_id(self) -> str:
        return f"m{next(self._ids)}{secrets.token_hex(4)}"

    def consent_refresh_token(self) -> str:
        """What the OA's admin gets from the consent screen: a fresh refresh token."""
        token = "rt-" + secrets.token_hex(12)
        self._refresh[token] = True
        return token

    def consent_code(self, verifier: str) -> str:
        code = "code-" + secrets.token_hex(8)
        self._codes[code] = verifier
        return code

    def expire_access_tokens(self) -> None:
        """Zalo invalidates tokens on its side (e.g. the OA revoked the app)."""
        for token in self._access:
            self._access[token] = self.clock() - timedelta(seconds=1)

    def user(
        self, user_id: str, name: str = "Người dùng", phone: str = "84912000001"
    ) -> FakeOAUser:
        return self.users.setdefault(user_id, FakeOAUser(self, user_id, name, phone))

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_until(condition, timeout, lambda: repr(condition))

    def sign(self, body: bytes, timestamp: str) -> str:
        raw = self.app_id.encode() + body + timestamp.encode() + self.oa_secret.encode()
        return "mac=" + hashlib.sha256(raw).hexdigest()

    async def deliver(self, event: JSON, *, signature: str | None = None) -> Delivery:
        """POST one event to the bot's webhook, signed as Zalo signs it (or with ``signature``)."""
        assert self.webhook_url, "set webhook_url first"
        sender = (event.get("sender") or event.get("follower") or {}).get("id")
        if sender and not str(event.get("event_name", "")).startswith("oa_send_"):
            self.last_interaction[sender] = self.clock()
        body = json.dumps(event, ensure_ascii=False).encode()
        header = signature if signature is not None else self.sign(body, event["timestamp"])
        started = time.monotonic()
        async with (
            ClientSession() as http,
            http.post(
                self.webhook_url,
                data=body,
                headers={"Content-Type": "application/json", "X-ZEvent-Signature": header},
            ) as response,
        ):
            await response.read()
            delivery = Delivery(event, response.status, time.monotonic() - started)
        self.deliveries.append(delivery)
        return delivery

    # --- OAuth ----------------------------------------------------------------------------------

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.oauth_arrived += 1
        self._changed()
        if self.oauth_gate is not None:
            await self.oauth_gate.wait()
        if (
            request.headers.get("secret_key") != self.app_secret
            or form.get("app_id") != self.app_id
        ):
            return self._oauth_error(-14002, "Invalid app")
        grant = form.get("grant_type")
        if grant == "refresh_token":
            self.refresh_calls += 1
            token = str(form.get("refresh_token") or "")
            if token not in self._refresh:
                return self._oauth_error(SPENT_REFRESH, "Invalid refresh token")
            if not self._refresh[token]:
                self.spent_attempts += 1
                return self._oauth_error(SPENT_REFRESH, "Refresh token was used")
            self._refresh[token] = False
        elif grant == "authorization_code":
            code = str(form.get("code") or "")
            if self._codes.pop(code, None) != form.get("code_verifier"):
                return self._oauth_error(-14019, "Invalid code or code verifier")
        else:
            return self._oauth_error(-14003, "Invalid grant_type")
        access, refresh = "at-" + secrets.token_hex(12), "rt-" + secrets.token_hex(12)
        self._access[access] = self.clock() + timedelta(seconds=self.access_ttl)
        self._refresh[refresh] = True
        return web.json_response(
            {"access_token": access, "refresh_token": refresh, "expires_in": str(self.access_ttl)}
        )

    @staticmethod
    def _oauth_error(code: int, description: str) -> web.Response:
        return web.json_response(
            {"error": code, "error_name": "Invalid parameter", "error_description": description}
        )

    def _token_ok(self, request: web.Request) -> bool:
        expiry = self._access.get(request.headers.get("access_token", ""))
        return expiry is not None and self.clock() < expiry

    # --- OA API ---------------------------------------------------------------------------------

    async def _getoa(self, request: web.Request) -> web.Response:
        self.getoa_calls += 1
        self._changed()
        if not self._token_ok(request):
            return web.json_response({"error": TOKEN_INVALID, "message": "Access token is invalid"})
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"oa_id": self.oa_id, "name": "Đảng ủy xã"}}
        )

    async def _cs(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            return web.json_response(await self._consult(request, body))
        except Exception as exc:  # noqa: BLE001 - a fake must say what broke it
            self.internal_errors.append(repr(exc))
            raise

    async def _consult(self, request: web.Request, body: JSON) -> JSON:
        if not self._token_ok(request):
            return {"error": TOKEN_INVALID, "message": "Access token is invalid"}
        if self.fail_next:
            code = self.fail_next.pop(0)
            return {"error": code, "message": "failure requested by the test"}
        user_id = str((body.get("recipient") or {}).get("user_id") or "")
        message = body.get("message") or {}
        user = self.users.get(user_id)
        if user is None:
            return {"error": -213, "message": "User has not followed the OA"}
        last = self.last_interaction.get(user_id)
        if last is None or self.clock() - last > WINDOW:
            return {
                "error": OUTSIDE_WINDOW,
                "message": "User has not interacted with the OA in the past 7 days",
            }
        if not message.get("text") and not message.get("attachment"):
            return {"error": -201, "message": "message is empty"}
        if len(buttons_of(message)) > MAX_BUTTONS:
            return {"error": -201, "message": "too many buttons"}
        if len(text_of(message)) > 2000:
            return {"error": -201, "message": "text too long"}
        user.messages.append(message)
        self._changed()
        message_id = self.new_id()
        # The OA's own message comes back as an event, as on Zalo (the bot must ignore it).
        if self.webhook_url and message.get("text"):
            echo = {
                "app_id": self.app_id,
                "event_name": "oa_send_text",
                "timestamp": str(self.now_ms()),
                "sender": {"id": self.oa_id},
                "recipient": {"id": user_id},
                "message": {"text": message["text"], "msg_id": message_id},
            }
            task = asyncio.get_running_loop().create_task(self.deliver(echo))
            self._echoes.add(task)
            task.add_done_callback(self._echoes.discard)
        return {
            "error": 0,
            "message": "Success",
            "data": {"message_id": message_id, "user_id": user_id},
        }

    async def _zns(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return web.json_response({"error": TOKEN_INVALID, "message": "Access token is invalid"})
        body = await request.json()
        phone = str(body.get("phone") or "")
        if not phone.startswith("84") or not body.get("template_id"):
            return web.json_response({"error": -108, "message": "Phone number is invalid"})
        self.zns.append(body)
        self._changed()
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"msg_id": self.new_id(), "sent_time": str(self.now_ms())},
            }
        )
