"""The Bot API over aiohttp (bot/channels/telegram_request.py): PTB gets what it got from httpx —
the answer, files as multipart, a timeout as TimedOut, a dead server as NetworkError."""

from __future__ import annotations

import asyncio
import socket
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram_request import AiohttpRequest
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.engine_neutral
TOKEN = "123:REQUEST"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(token=TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def answering(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A stand-in Bot API server whose every method is ``handler``, on a free port: its root."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def bot_on(root: str, request: AiohttpRequest) -> Bot:
    return Bot(TOKEN, base_url=f"{root}/bot", base_file_url=f"{root}/file/bot", request=request)


async def test_messages_and_uploads_reach_the_server_through_aiohttp(fake: FakeTelegram) -> None:
    user = fake.user(42, first_name="Lan")
    await user.send("/start")  # the bot may write to someone who wrote first
    async with bot_on(fake.root, AiohttpRequest()) as bot:
        me = await bot.get_me()
        sent = await bot.send_message(chat_id=42, text="Chào đồng chí")
        upload = InputFile(b"a,b\n1,2\n", "bao-cao.csv")
        await bot.send_document(chat_id=42, document=upload, caption="Báo cáo")
    assert me.id and sent.text == "Chào đồng chí"
    messages = user.drain()
    assert [m.get("text") or m.get("caption") for m in messages] == ["Chào đồng chí", "Báo cáo"]
    assert [c.method for c in fake.requests][-2:] == ["sendMessage", "sendDocument"]


async def test_parameters_go_as_json_and_arrive_whole() -> None:
    """A message with buttons goes as a JSON body (no URL-encoding of its Vietnamese text):
    the server reads the text in NFC and each button with its data."""
    seen: list[tuple[str, dict[str, object]]] = []

    async def send_message(request: web.Request) -> web.Response:
        seen.append((request.content_type, await request.json()))
        message = {"message_id": 7, "date": 0, "chat": {"id": 43, "type": "private"}}
        return web.json_response({"ok": True, "result": message})

    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton("Đúng, là tôi", callback_data="d:3:yes")]]
        + [[InlineKeyboardButton("Không phải", callback_data="d:3:no")]]
    )
    text = unicodedata.normalize("NFC", "Đồng chí có phải là Hà?")
    async with answering(send_message) as root:
        request = AiohttpRequest()
        await request.initialize()
        try:
            sent = await bot_on(root, request).send_message(43, text, reply_markup=markup)
        finally:
            await request.shutdown()
    [(content_type, body)] = seen
    assert content_type == "application/json" and sent.message_id == 7
    assert body["chat_id"] == 43 and body["text"] == text
    assert body["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Đúng, là tôi", "callback_data": "d:3:yes"}],
            [{"text": "Không phải", "callback_data": "d:3:no"}],
        ]
    }


async def test_a_refused_connection_is_a_network_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
    finally:
        await request.shutdown()


async def test_a_server_that_does_not_answer_in_time_is_a_timeout() -> None:
    release = asyncio.Event()

    async def stuck(_request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True, "result": True})

    async with answering(stuck) as root:
        try:
            request = AiohttpRequest(read_timeout=0.2)
            await request.initialize()
            try:
                with pytest.raises(TimedOut):
                    await request.post(f"{root}/bot{TOKEN}/getMe")
            finally:
                await request.shutdown()
        finally:
            release.set()  # before the server stops: it waits for its handlers
