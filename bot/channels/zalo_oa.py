"""Zalo through the committee's Official Account (OA API v3, webhook only).

Inbound: Zalo POSTs signed events to ``/zalo-oa/webhook`` on the process's web server. The
signature header is ``X-ZEvent-Signature: mac=<hex sha256(app_id + raw body + timestamp + OA
secret key)>``; anything else gets 403 and nothing happens. A signed event is answered 200 at once
(Zalo retries an event not answered within a few seconds) and handled after the answer; a
redelivery is dropped by the router's ``processedevent`` (key: the message id, else the event name,
user and timestamp). Echoes of the OA's own messages (``oa_send_*``) are ignored; follow, "chat
now" and every user event count as the member's interaction (``channel_interaction``), which
opens Zalo's 7-day window; unfollow marks the account unreachable.

Outbound: consultation messages (``POST /v3.0/oa/message/cs``). Choices travel as buttons of type
``oa.query.hide`` whose payload is ``#c:`` + the signed choice data: a press comes back as a hidden
``user_send_text`` and becomes ``Inbound.choice`` (the router checks the signature and staleness
like a Telegram button). More choices than OA shows as buttons become numbered lines. A contact
request (``View.request_contact``) is sent as a ``request_user_info`` template; the info the member
submits (``user_submit_info``) carries the phone Zalo holds for them: that is proof of identity,
handed to the handlers as ``Inbound.contact`` exactly like Telegram's own contact.

Errors by Zalo's codes: an invalid access token → one forced refresh and one more try (then the
admins are alerted by the token keeper); the member outside the 7-day window or not following →
``OutsideWindow`` (the dispatcher reaches them another way); the quota → the whole channel waits
until the quota resets (the next local midnight), not a retry every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from sqlalchemy import delete, update
from sqlmodel import col, select

from bot.channels.base import (
    Capabilities,
    OutsideWindow,
    Rejected,
    RetryLater,
    SendError,
    Transient,
)
from bot.clock import Clock
from bot.core import Attachment, Choice, Contact, Inbound, View, clean_text, split_text
from bot.i18n import t
from bot.outside_window import alert_admins
from bot.ratelimit import Limits
from bot.secrecy import as_bytes, secret_matches
from bot.settings import Settings
from bot.web import WebServer, serve_alone
from bot.zalo_oa_tokens import TokenError, TokenKeeper
from storage.db import Database
from storage.models import ChannelAccount
from storage.zalo_oa_models import ChannelInteraction, ZaloOaInbox

log = logging.getLogger("sotay.zalo_oa")
CHANNEL = "zalo_oa"
WEBHOOK_PATH = "/zalo-oa/webhook"
SIGNATURE_HEADER = "X-ZEvent-Signature"
TEXT_LIMIT = 2000
MAX_BUTTONS = 5  # more choices than this are numbered lines under the text
CHOICE_PREFIX = "#c:"  # a hidden button's payload: the signed choice data follows
WINDOW = timedelta(days=7)  # Zalo's interaction window for consultation messages
TOKEN_CHECK_SECONDS = 600.0  # how often an idle process looks whether the token is due
HINT_AFTER = timedelta(days=5)  # quiet this long: a message carries a word about the window
RULE = "───────────"

# Zalo's error codes (see tests/fake_zalo_oa.py for the pages they come from).
TOKEN_INVALID = frozenset({-216})
OUTSIDE_WINDOW = frozenset({-124, -213, -230})
QUOTA = frozenset({-32})

Handle = Callable[[Inbound], Awaitable[bool]]


class ZaloOaError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


# --- signature and inbound -----------------------------------------------------------------------


def signature(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    """The header value Zalo sends: ``mac=`` + hex sha256(app_id + body + timestamp + secret)."""
    digest = hashlib.sha256(as_bytes(app_id) + body + as_bytes(timestamp) + as_bytes(secret))
    return "mac=" + digest.hexdigest()


def signed(settings: Settings, header: str | None, body: bytes) -> dict[str, Any] | None:
    """The event when ``header`` is its valid signature, else None (compared as bytes in
    constant time; a body that is not a JSON object is refused too)."""
    if not header or not settings.zalo_oa_webhook_secret or not settings.zalo_oa_app_id:
        return None
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    expected = signature(
        settings.zalo_oa_app_id,
        body,
        str(event.get("timestamp", "")),
        settings.zalo_oa_webhook_secret,
    )
    return event if secret_matches(header.strip(), expected) else None


def _id(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value)[:64] if isinstance(value, (str, int)) and str(value) else None


def user_of(event: Mapping[str, Any]) -> str | None:
    """The member an event is about (None for the OA's own echoes)."""
    name = str(event.get("event_name") or "")
    if name.startswith("oa_send_"):
        return None
    if name in ("follow", "unfollow"):
        return _id(event.get("follower"))
    return _id(event.get("sender")) or _id(event.get("user_id"))


def event_key(event: Mapping[str, Any], user: str) -> str:
    message = event.get("message")
    msg_id = message.get("msg_id") if isinstance(message, dict) else None
    if msg_id:
        return str(msg_id)[:128]
    return f"{event.get('event_name')}:{user}:{event.get('timestamp')}"[:128]


def to_inbound(event: Mapping[str, Any]) -> Inbound | None:
    """A member's event as a channel-neutral Inbound (None for what only counts as interaction:
    follow, unfollow, "chat now", echoes)."""
    user = user_of(event)
    name = str(event.get("event_name") or "")
    if user is None or name in ("follow", "unfollow", "user_click_chatnow", "user_seen_message"):
        return None
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "user_ref": user,
        "chat_ref": user,
        "key": event_key(event, user),
    }
    if name == "user_submit_info":
        info = event.get("info")
        phone = info.get("phone") if isinstance(info, dict) else None
        if not phone:
            return Inbound(**base, unsupported=True)
        name_given = info.get("name") if isinstance(info, dict) else None
        return Inbound(
            **base,
            contact=Contact(phone=str(phone), is_own=True),  # Zalo's own record of the member
            display_name=str(name_given) if name_given else None,
        )
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    assert isinstance(message, dict)
    text = message.get("text")
    if name == "user_send_text" and isinstance(text, str) and text:
        if text.startswith(CHOICE_PREFIX):
            return Inbound(**base, choice=text[len(CHOICE_PREFIX) :])
        return Inbound(**base, text=clean_text(text))
    if name == "user_send_image":
        url = _image_url(message)
        if url:
            caption = clean_text(text) if isinstance(text, str) and text else None
            return Inbound(**base, text=caption, attachment=Attachment("photo", url))
    if name.startswith("user_send_") or name.startswith("user_"):
        return Inbound(**base, unsupported=True)  # sticker, voice, file, location, link…
    return None


def _image_url(message: Mapping[str, Any]) -> str | None:
    attachments = message.get("attachments")
    if not isinstance(attachments, list):
        return None
    for item in attachments:
        payload = item.get("payload") if isinstance(item, dict) else None
        if isinstance(payload, dict) and isinstance(payload.get("url"), str):
            return str(payload["url"])
    return None


# --- outbound ------------------------------------------------------------------------------------


def numbered(text: str, choices: list[Choice]) -> str:
    lines = [f"[{number}] {choice.label}" for number, choice in enumerate(choices, 1)]
    return "\n".join([text, RULE, *lines]) if text else "\n".join(lines)


def button_message(text: str, choices: list[Choice]) -> dict[str, Any]:
    """A consultation message with its choices as hidden-query buttons."""
    buttons = [
        {"title": c.label[:100], "type": "oa.query.hide", "payload": CHOICE_PREFIX + c.data}
        for c in choices
    ]
    return {"text": text, "attachment": {"type": "template", "payload": {"buttons": buttons}}}


def info_request(title: str, subtitle: str) -> dict[str, Any]:
    """The ``request_user_info`` template: the member taps it and shares name and phone."""
    element = {"title": title[:100], "subtitle": subtitle[:500]}
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "request_user_info", "elements": [element]},
        }
    }


def until_quota_resets(now: datetime, settings: Settings) -> float:
    """Seconds to the next local midnight, when Zalo's daily quotas reset."""
    local = now.astimezone(settings.tz)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return max(60.0, (midnight - local).total_seconds())


class ZaloOaChannel:
    name = CHANNEL
    text_limit = TEXT_LIMIT
    webhook_mode = True  # the OA delivers events only by webhook

    def __init__(
        self, settings: Settings, handle: Handle, db: Database, *, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._handle = handle
        self._db = db
        self._clock = clock or Clock()
        self.capabilities = Capabilities(
            buttons=True,
            edits=False,
            uploads=False,
            contact=True,  # request_user_info: Zalo hands over the member's own phone
            text_limit=TEXT_LIMIT,
            limits=Limits(
                overall_per_second=settings.zalo_oa_overall_rate,
                chat_burst=settings.zalo_oa_chat_burst,
                chat_per_second=settings.zalo_oa_chat_rate,
            ),
        )
        self.tokens = TokenKeeper(db, settings, self._clock, on_alert=self._alert)
        self._api = settings.zalo_oa_api_url.rstrip("/")
        self._http: ClientSession | None = None
        self._own_web: WebServer | None = None
        self._work: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None

    async def start(self, web_server: WebServer | None = None) -> None:
        """Check that a token pair is stored (``sotay zalo-oa connect``), then serve the
        webhook (on ``web_server`` when the caller mounted ``add_routes`` there)."""
        if not self._settings.zalo_oa_webhook_secret:
            raise TokenError("op.oa.webhook_secret")
        self._http = ClientSession()
        try:
            await self._check_oa()
            if web_server is None:
                self._own_web = await serve_alone(self._settings, self.add_routes)
            self._keeper = asyncio.create_task(self._keep_fresh(), name="zalo-oa-tokens")
            await self._left_over()
        except BaseException:
            await self.stop()
            raise
        log.info("zalo_oa.started")

    async def _check_oa(self) -> None:
        """Ask Zalo who we are (``GET /v2.0/oa/getoa``): a token Zalo refuses even after one
        refresh stops the start-up with one sentence instead of failing every send later."""
        assert self._http is not None
        token = await self.tokens.access_token()
        for attempt in range(2):
            async with self._http.get(
                self._api + "/v2.0/oa/getoa",
                headers={"access_token": token},
                timeout=ClientTimeout(total=30),
            ) as response:
                answer: Any = await response.json(content_type=None)
            code = int(answer.get("error") or 0) if isinstance(answer, dict) else 500
            if code == 0:
                return
            if code not in TOKEN_INVALID or attempt:
                raise TokenError("op.oa.getoa_error", code=code)
            token = await self.tokens.refresh(failed_token=token)

    async def _keep_fresh(self) -> None:
        """Renew the token when due even while nothing is sent: an idle OA must not let its
        refresh token (valid for months, not forever) lapse."""
        while True:
            await asyncio.sleep(TOKEN_CHECK_SECONDS)
            try:
                await self.tokens.access_token()
            except Exception as exc:  # noqa: BLE001 - the check must outlive a bad moment
                log.warning("zalo_oa.token_check_failed error=%s", type(exc).__name__)

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self._work:  # events already answered 200: finish them before closing
            await asyncio.wait(set(self._work), timeout=10)
        if self._own_web is not None:
            await self._own_web.stop()
            self._own_web = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def idle(self) -> None:
        """Wait until every event answered so far has been handled (tests, shutdown)."""
        while self._work:
            await asyncio.wait(set(self._work))

    # --- inbound -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self._webhook)

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = signed(self._settings, request.headers.get(SIGNATURE_HEADER), body)
        if event is None:
            log.warning("zalo_oa.webhook_refused")
            return web.Response(status=403, text="forbidden")
        async with self._db.session() as session:  # one small insert: the answer stays fast
            row = ZaloOaInbox(event=event, received_at=self._clock.now())
            session.add(row)
            await session.flush()
            inbox_id = row.id or 0
        self._later(inbox_id, event)
        return web.json_response({"error": 0})

    def _later(self, inbox_id: int, event: Mapping[str, Any]) -> None:
        task = asyncio.create_task(self._process_safely(inbox_id, event))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _left_over(self) -> None:
        """Events answered before a crash but not handled: handle them now, in order."""
        async with self._db.reader() as session:
            stmt = select(ZaloOaInbox).order_by(col(ZaloOaInbox.id))
            rows = (await session.exec(stmt)).all()
        for row in rows:
            self._later(row.id or 0, row.event)

    async def _process_safely(self, inbox_id: int, event: Mapping[str, Any]) -> None:
        try:
            await self.process(event)
        except Exception:  # answered already: log, never let a task die silently
            log.exception("zalo_oa.event_failed event=%s", str(event.get("event_name"))[:40])
        async with self._db.session() as session:  # handled (or failed for good): let it go
            await session.exec(delete(ZaloOaInbox).where(col(ZaloOaInbox.id) == inbox_id))

    async def process(self, event: Mapping[str, Any]) -> None:
        user = user_of(event)
        if user is None:
            return  # the OA's own message coming back
        await self._interacted(user, str(event.get("event_name") or ""))
        inbound = to_inbound(event)
        if inbound is not None:
            await self._handle(inbound)

    async def _interacted(self, user: str, event_name: str) -> None:
        """Remember when the member last wrote (the 7-day window); an unfollow makes their
        account unreachable until they follow again."""
        now = self._clock.now()
        async with self._db.session() as session:
            if event_name in ("follow", "unfollow"):
                await session.exec(
                    update(ChannelAccount)
                    .where(col(ChannelAccount.channel) == CHANNEL)
                    .where(col(ChannelAccount.user_ref) == user)
                    .values(reachable=event_name == "follow")
                )
            if event_name == "unfollow":
                return
            row = await session.get(ChannelInteraction, (CHANNEL, user))
            if row is None:
                row = ChannelInteraction(channel=CHANNEL, user_ref=user, last_at=now)
            row.last_at = max(row.last_at or now, now)
            session.add(row)

    # --- outbound ----------------------------------------------------------------------------

    async def send(self, chat_ref: str, view: View) -> str:
        quiet_for = await self._quiet_for(chat_ref)
        if quiet_for is not None and quiet_for > WINDOW:
            raise OutsideWindow("no interaction in 7 days")
        if quiet_for is not None and quiet_for > HINT_AFTER and not view.choices:
            # The window is closing: say why writing to the OA now and then helps.
            lang = self._settings.default_language
            view = dataclasses.replace(view, text=view.text + "\n\n" + t(lang, "zoa.window_hint"))
        try:
            return await self._send(chat_ref, view)
        except ZaloOaError as exc:
            raise self._classify(exc) from exc
        except TokenError as exc:
            raise Transient(str(exc)[:200]) from exc
        except (ClientError, TimeoutError) as exc:
            raise Transient(type(exc).__name__) from exc

    async def _quiet_for(self, chat_ref: str) -> timedelta | None:
        """How long since the member last wrote, when known. Known to be outside the window:
        no API call (and no quota) is spent to learn it again."""
        async with self._db.reader() as session:
            row = await session.get(ChannelInteraction, (CHANNEL, chat_ref))
        return None if row is None else self._clock.now() - row.last_at  # type: ignore[operator]

    def _classify(self, exc: ZaloOaError) -> SendError:
        if exc.code in OUTSIDE_WINDOW:
            return OutsideWindow(f"{exc.code}")
        if exc.code in QUOTA:
            seconds = until_quota_resets(self._clock.now(), self._settings)
            return RetryLater(seconds, scope="channel")
        if exc.code in TOKEN_INVALID:
            return Transient("access token refused after a refresh")
        if exc.code < 0:
            return Rejected(f"{exc.code}")
        return Transient(f"{exc.code}")

    async def _send(self, chat_ref: str, view: View) -> str:
        lang = self._settings.default_language  # the view is already in the member's language
        choices = [choice for row in view.choices for choice in row]
        text = view.text
        if view.upload is not None:
            text += "\n\n" + t(lang, "zoa.file_elsewhere", name=view.upload.name)
        if view.photo_ref:
            text += "\n\n" + t(lang, "zoa.photo_elsewhere")
        as_buttons = 0 < len(choices) <= MAX_BUTTONS
        if choices and not as_buttons:
            text = numbered(text, choices)
        parts = split_text(text, self.text_limit) if text else []
        message_id = ""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            message = button_message(part, choices) if last and as_buttons else {"text": part}
            message_id = await self._cs(chat_ref, message)
        if view.request_contact:
            request = info_request(view.request_contact, t(lang, "zoa.request_info"))
            message_id = await self._cs(chat_ref, request)
        return message_id

    async def _cs(self, user_id: str, message: dict[str, Any]) -> str:
        """One consultation message; an invalid token is refreshed once and the call repeated."""
        body = {"recipient": {"user_id": user_id}, "message": message}
        token = await self.tokens.access_token()
        try:
            data = await self._post("/v3.0/oa/message/cs", body, token)
        except ZaloOaError as exc:
            if exc.code not in TOKEN_INVALID:
                raise
            token = await self.tokens.refresh(failed_token=token)
            data = await self._post("/v3.0/oa/message/cs", body, token)
        return str(data.get("message_id", "")) if isinstance(data, dict) else ""

    async def _post(
        self, path: str, body: dict[str, Any], token: str, *, root: str | None = None
    ) -> Any:
        assert self._http is not None, "ZaloOaChannel.start() first"
        async with self._http.post(
            (root or self._api) + path,
            json=body,
            headers={"access_token": token},
            timeout=ClientTimeout(total=30),
        ) as response:
            try:
                answer: Any = await response.json(content_type=None)
            except ValueError:
                answer = None
            status = response.status
        if status >= 500 or not isinstance(answer, dict):
            raise ZaloOaError(status if status >= 400 else 500, "no JSON answer")
        code = int(answer.get("error") or 0)
        if code != 0:
            raise ZaloOaError(code, str(answer.get("message") or "")[:200])
        return answer.get("data")

    async def send_template(self, phone: str, template_id: str, data: dict[str, str]) -> str:
        """A ZNS template message to a phone (``POST {zns}/message/template``): reaches a member
        outside the 7-day window. Zalo wants the phone as 84…, without the plus."""
        body = {
            "phone": phone.lstrip("+"),
            "template_id": template_id,
            "template_data": data,
            "tracking_id": hashlib.sha256(f"{phone}:{data}".encode()).hexdigest()[:32],
        }
        token = await self.tokens.access_token()
        root = self._settings.zns_api_url.rstrip("/")
        answer = await self._post("/message/template", body, token, root=root)
        return str(answer.get("msg_id", "")) if isinstance(answer, dict) else ""

    async def _alert(self, reason: str) -> None:
        await alert_admins(self._db, self._settings, self._clock, "zoa.token_failed", reason=reason)
