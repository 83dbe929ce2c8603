"""Self-tests of the fake Bot API server, driven by the real python-telegram-bot client.

If the fake accepted what Telegram refuses (or the other way round), every end-to-end test of
the bot built on it would prove nothing; these tests pin the behaviour the bot relies on.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fake_telegram import (
    FakeTelegram,
    FakeUser,
    ManualClock,
    button_texts,
    inline_buttons,
    reply_keyboard,
)

TOKEN = "123:ABC"
LANGUAGES = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Tiếng Việt", callback_data="lang:vi")],
        [InlineKeyboardButton("English", callback_data="lang:en")],
    ]
)


def retry_seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB_TIMEDELTA."""
    value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB's timedelta durations so RetryAfter does not warn about the int form."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def server(clock: ManualClock) -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(token=TOKEN, bot_username="sotay_test_bot", clock=clock)
    await fake.start()
    yield fake
    await fake.stop()
    assert fake.internal_errors == []


@pytest_asyncio.fixture
async def bot(server: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{server.root}/bot") as client:
        yield client


@pytest_asyncio.fixture
async def alice(server: FakeTelegram) -> FakeUser:
    """A user who has started the bot (her /start is still queued as an update)."""
    user = server.user(1001, first_name="Hoa", last_name="Nguyễn", language_code="vi")
    await user.send("/start")
    return user


@dataclass
class Receiver:
    """A webhook endpoint; answers with the queued statuses first, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [body["message"]["text"] for _, body in self.requests]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()

    async def handle(request: web.Request) -> web.Response:
        hook.requests.append((dict(request.headers), await request.json()))
        return web.Response(status=hook.statuses.pop(0) if hook.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


# -------------------------------------------------------------------------------- sending


async def test_send_message_is_recorded_and_returned(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(alice.id, "Xin chào", reply_markup=LANGUAGES)

    msg = await alice.next_message()
    assert sent.text == "Xin chào" and sent.chat.id == alice.id
    assert msg["message_id"] == sent.message_id and msg["text"] == "Xin chào"
    assert button_texts(msg) == ["Tiếng Việt", "English"]
    assert server.sent == [msg] and alice.messages == [msg]
    assert server.delivered_count(alice.id, "Xin chào") == 1
    assert server.count("sendMessage", 200) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   \n ", "empty"), ("x" * 4097, "too long")],
)
async def test_bad_texts_are_refused(
    server: FakeTelegram, bot: Bot, alice: FakeUser, text: str, reason: str
) -> None:
    with pytest.raises(BadRequest, match=reason):
        await bot.send_message(alice.id, text)
    assert server.sent == []
    assert server.stats[400] == 1


async def test_text_of_exactly_4096_characters_is_accepted(bot: Bot, alice: FakeUser) -> None:
    await bot.send_message(alice.id, "ệ" * 4096)
    assert len((await alice.next_message())["text"]) == 4096


async def test_callback_data_longer_than_64_bytes_is_refused(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ệ" * 21 + "a")]])
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="ệ" * 21 + "ab")]])

    await bot.send_message(alice.id, "vừa", reply_markup=fits)
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(alice.id, "dài", reply_markup=too_long)
    assert [m["text"] for m in server.sent] == ["vừa"]


async def test_url_button_to_localhost_is_refused(bot: Bot, alice: FakeUser) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("web", url="http://localhost/x")]])
    with pytest.raises(BadRequest, match="(?i)Wrong HTTP URL"):
        await bot.send_message(alice.id, "link", reply_markup=markup)


async def test_unknown_never_started_and_blocked_chats(server: FakeTelegram, bot: Bot) -> None:
    stranger = server.user(2002, first_name="Lan")
    blocker = server.user(2003, first_name="Minh")
    await blocker.send("/start")
    blocker.block()

    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999, "hi")
    with pytest.raises(Forbidden, match="(?i)can't initiate conversation"):
        await bot.send_message(stranger.id, "hi")
    with pytest.raises(Forbidden, match="(?i)blocked by the user"):
        await bot.send_message(blocker.id, "hi")
    blocker.unblock()
    await bot.send_message(blocker.id, "welcome back")

    assert server.stats[403] == 2
    assert [m["text"] for m in server.sent] == ["welcome back"]


async def test_blocking_sends_my_chat_member_update(server: FakeTelegram, bot: Bot) -> None:
    user = server.user(2004, first_name="Tú")
    await user.send("/start")
    user.block()

    updates = await bot.get_updates(timeout=0)

    change = updates[-1].my_chat_member
    assert change is not None and change.chat.id == user.id
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("member", "kicked")
    with pytest.raises(AssertionError, match="blocked"):
        await user.send("hello")


# ---------------------------------------------------------------------------- rate limits


async def test_per_chat_rate_limit_then_recovery(
    server: FakeTelegram, bot: Bot, alice: FakeUser, clock: ManualClock
) -> None:
    for i in range(3):
        await bot.send_message(alice.id, f"burst {i}")
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(alice.id, "one too many")
    assert retry_seconds(refused.value) == 1
    assert server.stats[429] == 1
    assert server.delivered_count(alice.id, "one too many") == 0

    clock.advance(0.5)
    with pytest.raises(RetryAfter):
        await bot.send_message(alice.id, "still too early")
    clock.advance(0.5)
    await bot.send_message(alice.id, "after waiting")

    assert [m["text"] for m in alice.messages][-1] == "after waiting"
    assert len(server.sent) == 4


async def test_group_rate_limit_is_twenty_per_minute(
    server: FakeTelegram, bot: Bot, clock: ManualClock
) -> None:
    staff = server.group(-100777, title="Staff")
    for i in range(20):
        await bot.send_message(staff.id, f"tin {i}")
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(staff.id, "tin 20")
    assert retry_seconds(refused.value) == 3
    clock.advance(3)
    await bot.send_message(staff.id, "tin 20")
    assert server.delivered_count(staff.id) == 21


async def test_global_rate_limit_is_thirty_per_second(server: FakeTelegram, bot: Bot) -> None:
    users = [server.user(3000 + i) for i in range(31)]
    for user in users:
        await user.send("/start")
    for user in users[:30]:
        await bot.send_message(user.id, "broadcast")
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(users[30].id, "broadcast")
    assert retry_seconds(refused.value) == 1
    assert server.delivered_count(users[30].id) == 0


async def test_rate_limits_can_be_disabled(clock: ManualClock) -> None:
    async with FakeTelegram(token=TOKEN, clock=clock, rate_limits=False) as fake:
        user = fake.user(1)
        await user.send("/start")
        async with Bot(TOKEN, base_url=f"{fake.root}/bot") as client:
            for i in range(10):
                await client.send_message(user.id, f"m{i}")
        assert fake.delivered_count(user.id) == 10 and fake.stats[429] == 0


# -------------------------------------------------------------------------------- updates


async def test_long_poll_returns_promptly_and_offset_confirms(
    server: FakeTelegram, bot: Bot
) -> None:
    bob = server.user(1002, first_name="Bình", language_code="vi")
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await server.wait_for(lambda: server.waiting_polls == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()

    await bob.send("/start now")
    updates = await poll

    assert loop.time() - started < 1.0
    message = updates[0].message
    assert message is not None and message.text == "/start now"
    assert message.from_user is not None and message.from_user.language_code == "vi"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


async def test_a_second_poller_conflicts_with_the_first(server: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await server.wait_for(lambda: server.waiting_polls == 1)

    async with Bot(TOKEN, base_url=f"{server.root}/bot") as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="(?i)terminated by other getUpdates"):
        await first


async def test_redelivered_update_comes_again_with_same_id(server: FakeTelegram, bot: Bot) -> None:
    carol = server.user(1003, first_name="Chi")
    update = await carol.send("/start")
    [received] = await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=received.update_id + 1, timeout=0) == ()

    await server.redeliver(update)

    again = await bot.get_updates(offset=received.update_id + 1, timeout=0)
    assert [u.update_id for u in again] == [update["update_id"]]
    assert await bot.get_updates(offset=received.update_id + 1, timeout=0) == ()


async def test_press_produces_a_callback_query(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    await bot.send_message(alice.id, "Chọn ngôn ngữ", reply_markup=LANGUAGES)
    msg = await alice.next_message()

    by_label = Update.de_json(await alice.press(msg, "Tiếng Việt"), bot)
    by_data = Update.de_json(await alice.press(msg, "lang:en"), bot)
    forged = Update.de_json(await alice.press_data(msg, "admin:drop"), bot)

    query = by_label.callback_query
    assert query is not None and query.data == "lang:vi" and query.from_user.id == alice.id
    assert query.message is not None and query.message.message_id == msg["message_id"]
    assert by_data.callback_query is not None and by_data.callback_query.data == "lang:en"
    assert forged.callback_query is not None and forged.callback_query.data == "admin:drop"
    with pytest.raises(AssertionError, match="Tiếng Việt"):
        await alice.press(msg, "Français")

    await bot.answer_callback_query(query.id, text="Đã lưu", show_alert=True)
    assert server.callback_answers[query.id] == {
        "text": "Đã lưu",
        "show_alert": True,
        "url": None,
        "cache_time": None,
    }
    with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
        await bot.answer_callback_query(query.id)


async def test_application_polling_round_trip(server: FakeTelegram, alice: FakeUser) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Chọn ngôn ngữ", reply_markup=LANGUAGES)

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("OK")
        await query.edit_message_text(f"Đã chọn {query.data}")

    app = Application.builder().token(TOKEN).base_url(f"{server.root}/bot").build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(choose))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=5)
        try:
            msg = await alice.next_message()
            assert msg["text"] == "Chọn ngôn ngữ"
            update = await alice.press(msg, "Tiếng Việt")
            assert (await server.answer_of(update))["text"] == "OK"
            await server.wait_for(lambda: msg["edited"])
        finally:
            await app.updater.stop()
            await app.stop()

    assert msg["text"] == "Đã chọn lang:vi" and msg["reply_markup"] is None
    assert msg["history"][0]["text"] == "Chọn ngôn ngữ"
    assert server.pending_updates == []


# -------------------------------------------------------------------------------- webhook


async def test_webhook_delivers_in_order_with_secret_and_blocks_polling(
    server: FakeTelegram, bot: Bot, alice: FakeUser, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret_TOKEN")
    await alice.send("xin chào")

    await server.wait_for(lambda: len(receiver.requests) == 2)

    assert receiver.texts == ["/start", "xin chào"]
    assert all(h["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_TOKEN" for h, _ in receiver.requests)
    assert [d.status for d in server.webhook_deliveries] == [200, 200]
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0

    assert await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == ()


async def test_webhook_retries_a_failed_delivery_before_the_next_update(
    server: FakeTelegram, bot: Bot, alice: FakeUser, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    await bot.set_webhook(receiver.url)
    await alice.send("sau đó")

    await server.wait_for(lambda: len(receiver.requests) == 3)

    assert receiver.texts == ["/start", "/start", "sau đó"]
    assert [d.status for d in server.webhook_deliveries] == [500, 200, 200]
    assert "X-Telegram-Bot-Api-Secret-Token" not in receiver.requests[0][0]
    info = await bot.get_webhook_info()
    assert info.last_error_message is not None and "500" in info.last_error_message


# ----------------------------------------------------------------------- edits and deletes


async def test_edits_check_existence_and_modification(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(alice.id, "Bản nháp", reply_markup=LANGUAGES)

    with pytest.raises(BadRequest, match="(?i)not modified"):
        await bot.edit_message_text("Bản nháp", alice.id, sent.message_id, reply_markup=LANGUAGES)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("Khác", alice.id, sent.message_id + 50)
    await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=None)

    msg = alice.messages[0]
    assert msg["edited"] and msg["edit_count"] == 1 and msg["reply_markup"] is None
    assert await bot.delete_message(alice.id, sent.message_id)
    assert msg["deleted"]
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("Muộn", alice.id, sent.message_id)


async def test_users_messages_cannot_be_edited(bot: Bot, alice: FakeUser) -> None:
    own = await alice.send("tin của tôi")
    with pytest.raises(BadRequest, match="(?i)can't be edited"):
        await bot.edit_message_text("sửa", alice.id, own["message"]["message_id"])


# ----------------------------------------------------------------------------- formatting


async def test_text_is_plain_and_a_parse_mode_is_refused_loudly(bot: Bot, alice: FakeUser) -> None:
    """The bot formats nothing; the fake keeps no HTML/Markdown parser that nothing uses."""
    sent = await bot.send_message(alice.id, "  <b>Chào</b> *bạn*  ")
    msg = await alice.next_message()
    assert msg["text"] == sent.text == "<b>Chào</b> *bạn*"  # shown as typed, trimmed
    with pytest.raises(BadRequest, match="(?i)unsupported parse_mode"):
        await bot.send_message(alice.id, "<b>đậm</b>", parse_mode=ParseMode.HTML)


# -------------------------------------------------------------------------------- commands


async def test_commands_are_stored_per_scope_and_language(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    await bot.set_my_commands([BotCommand("start", "Start")])
    await bot.set_my_commands([BotCommand("start", "Bắt đầu")], language_code="vi")
    await bot.set_my_commands(
        [BotCommand("help", "Trợ giúp")], scope=BotCommandScopeAllPrivateChats(), language_code="vi"
    )

    vi = await bot.get_my_commands(language_code="vi")
    assert [(c.command, c.description) for c in vi] == [("start", "Bắt đầu")]
    assert server.commands[("default", "")] == [{"command": "start", "description": "Start"}]
    assert server.commands[("all_private_chats", "vi")][0]["command"] == "help"
    assert server.visible_commands(alice)[0]["command"] == "help"

    await bot.delete_my_commands(language_code="vi")
    assert ("default", "vi") not in server.commands
    with pytest.raises(BadRequest):
        await bot.set_my_commands([BotCommand("Start", "viết hoa")])


# ---------------------------------------------------------------------------------- files


async def test_send_document_multipart_is_recorded(
    server: FakeTelegram, bot: Bot, alice: FakeUser, clock: ManualClock
) -> None:
    payload = b"ho_ten,so_the\nNguyen Van A,123\n"
    sent = await bot.send_document(
        alice.id, io.BytesIO(payload), filename="danh_sach.csv", caption="Báo cáo"
    )

    msg = await alice.next_message()
    assert (msg["filename"], msg["size"], msg["caption"]) == (
        "danh_sach.csv",
        len(payload),
        "Báo cáo",
    )
    assert msg["content"] == payload
    assert sent.document is not None and sent.document.file_name == "danh_sach.csv"

    clock.advance(10)
    again = await bot.send_document(alice.id, sent.document.file_id)
    assert again.document is not None and again.document.file_id == sent.document.file_id
    with pytest.raises(BadRequest, match="(?i)caption is too long"):
        await bot.send_document(alice.id, io.BytesIO(payload), caption="c" * 1025)
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_document(alice.id, "not-a-file-id")
    photo = await bot.send_photo(alice.id, b"\x89PNG fake bytes", caption="Ảnh")
    assert photo.photo and photo.caption == "Ảnh"
    assert [m["method"] for m in alice.messages] == ["sendDocument", "sendDocument", "sendPhoto"]


# --------------------------------------------------------------------- groups and contacts


async def test_forum_topics_threads_and_replies(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    staff = server.group(-100123, title="Staff", is_forum=True)
    plain = server.group(-100124, title="Plain")
    topic = await bot.create_forum_topic(staff.id, "Hỏi đáp")
    sent = await bot.send_message(staff.id, "Chào nhóm", message_thread_id=topic.message_thread_id)

    with pytest.raises(BadRequest, match="(?i)not a forum"):
        await bot.create_forum_topic(plain.id, "x")
    with pytest.raises(BadRequest, match="(?i)thread not found"):
        await bot.send_message(staff.id, "lạc", message_thread_id=9999)
    update = await alice.send_in(
        staff, "/help@sotay_test_bot", thread_id=topic.message_thread_id, reply_to=sent.to_dict()
    )

    message = Update.de_json(update, bot).message
    assert message is not None and message.chat.type == "supergroup"
    assert message.message_thread_id == topic.message_thread_id and message.is_topic_message
    assert message.reply_to_message is not None
    assert message.reply_to_message.message_id == sent.message_id
    assert message.entities[0].length == len("/help@sotay_test_bot")
    assert (await staff.next_message())["message_thread_id"] == topic.message_thread_id


async def test_contacts_own_and_someone_elses(bot: Bot, alice: FakeUser) -> None:
    own = Update.de_json(await alice.share_contact(phone="+84912345678"), bot).message
    other = Update.de_json(await alice.share_contact("+84900000000", user_id=5555), bot).message
    unknown = Update.de_json(await alice.share_contact("+84911111111", user_id=None), bot).message

    assert own is not None and own.contact is not None
    assert (own.contact.user_id, own.contact.phone_number) == (alice.id, "+84912345678")
    assert other is not None and other.contact is not None and other.contact.user_id == 5555
    assert unknown is not None and unknown.contact is not None and unknown.contact.user_id is None


async def test_reply_keyboard_with_contact_button_is_recorded(
    server: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    markup = ReplyKeyboardMarkup(
        [[KeyboardButton("Chia sẻ số điện thoại", request_contact=True)]], one_time_keyboard=True
    )
    await bot.send_message(alice.id, "Cho tôi số của bạn", reply_markup=markup)

    msg = await alice.next_message()
    assert reply_keyboard(msg) == [[{"text": "Chia sẻ số điện thoại", "request_contact": True}]]
    assert inline_buttons(msg) == []


# --------------------------------------------------------------------- raw HTTP and faults


async def test_raw_http_errors_and_encodings(server: FakeTelegram, alice: FakeUser) -> None:
    async with ClientSession() as http:
        wrong = await http.get(f"{server.root}/bot999:XYZ/getMe")
        unknown = await http.post(f"{server.root}/bot{TOKEN}/sendTelepathy", json={})
        got = await http.get(f"{server.root}/bot{TOKEN}/getme")
        as_json = await http.post(
            f"{server.root}/bot{TOKEN}/sendMessage",
            json={"chat_id": alice.id, "text": "json", "reply_markup": LANGUAGES.to_dict()},
        )
        as_form = await http.post(
            f"{server.root}/bot{TOKEN}/sendMessage",
            data={"chat_id": str(alice.id), "text": "form", "reply_markup": LANGUAGES.to_json()},
        )
        as_query = await http.get(
            f"{server.root}/bot{TOKEN}/sendMessage", params={"chat_id": alice.id, "text": "query"}
        )
        broken = await http.post(
            f"{server.root}/bot{TOKEN}/sendMessage",
            data={"chat_id": str(alice.id), "text": "broken", "reply_markup": "{not json"},
        )
        assert (wrong.status, await wrong.json()) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        assert (unknown.status, await unknown.json()) == (
            404,
            {"ok": False, "error_code": 404, "description": "Not Found"},
        )
        assert (await got.json())["result"]["username"] == "sotay_test_bot"
        assert (await as_json.json())["result"]["reply_markup"] == LANGUAGES.to_dict()
        assert (await as_form.json())["result"]["reply_markup"] == LANGUAGES.to_dict()
        assert (await as_query.json())["result"]["text"] == "query"
        assert broken.status == 400
        assert "reply keyboard markup" in (await broken.json())["description"]
    assert [m["text"] for m in alice.messages] == ["json", "form", "query"]
    assert server.calls["sendTelepathy"] == 1


async def test_injected_faults(server: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    server.fail_next("sendMessage", status=500)
    server.fail_next("sendMessage", status=429, retry_after=7)
    server.fail_next("sendMessage", status=403)

    with pytest.raises(NetworkError):
        await bot.send_message(alice.id, "a")
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(alice.id, "b")
    with pytest.raises(Forbidden):
        await bot.send_message(alice.id, "c")
    await bot.send_message(alice.id, "d")

    assert retry_seconds(refused.value) == 7
    assert (server.stats[500], server.stats[429], server.stats[403]) == (1, 1, 1)
    assert [m["text"] for m in server.sent] == ["d"]


# ----------------------------------------------------------------------- waiting helpers


async def test_next_message_timeout_lists_what_was_seen(bot: Bot, alice: FakeUser) -> None:
    await bot.send_message(alice.id, "Tin duy nhất")
    await alice.next_message()
    with pytest.raises(BadRequest):
        await bot.send_message(alice.id, "")

    with pytest.raises(AssertionError, match="(?i)Tin duy nhất.*message text is empty"):
        await alice.next_message(timeout=0.05)


async def test_wait_for_times_out_with_a_description(server: FakeTelegram) -> None:
    with pytest.raises(AssertionError, match="nothing sent"):
        await server.wait_for(lambda: server.sent, timeout=0.05, what="nothing sent")


async def test_chat_action_and_get_chat(server: FakeTelegram, bot: Bot, alice: FakeUser) -> None:
    await bot.send_chat_action(alice.id, "typing")
    chat = await bot.get_chat(alice.id)

    assert server.chat_actions == [(alice.id, "typing")]
    assert (chat.first_name, chat.last_name) == ("Hoa", "Nguyễn")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.get_chat(server.user(7777).id)
