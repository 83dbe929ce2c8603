"""End to end: the real python-telegram-bot stack against the fake Bot API server over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats
from sqlmodel import select

from bot.app import App
from bot.channels.telegram import WEBHOOK_HEADER, TelegramChannel
from bot.clock import ShiftedClock
from bot.demo import seed_demo
from bot.settings import Settings
from storage.models import ChannelAccount, Member, RoleGrant
from tests.fake_telegram import FakeTelegram, FakeUser, button_texts, reply_keyboard
from tests.harness import (
    TELEGRAM_TOKEN,
    Bot,
    link_cell_members,
    start_app,
    telegram_channel,
    telegram_server,
    telegram_settings,
)

pytestmark = pytest.mark.e2e(server=telegram_server)

TOKEN = TELEGRAM_TOKEN
SECRETARY_ID = 9001
AN_PHONE = "+84912000001"


async def start_bot(settings: Settings, clock: ShiftedClock) -> tuple[App, TelegramChannel]:
    return await start_app(settings, clock, telegram_channel)


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram, database_url: str, clock: ShiftedClock) -> AsyncIterator[Bot]:
    settings = telegram_settings(database_url, fake.root)
    await seed_demo(settings, channel="telegram", refs={"bithu": str(SECRETARY_ID)})
    running = await Bot.launch(fake, settings, clock)
    yield running
    await running.stop()


async def test_roster_member_registers_through_telegram(bot: Bot) -> None:
    hoa = bot.server.user(1001, first_name="An", language_code="vi")
    await hoa.send("/start")
    msg = await hoa.next_message()
    assert button_texts(msg) == ["Tiếng Việt", "English"]
    await hoa.press(msg, "Tiếng Việt")
    msg = await hoa.next_message()
    await hoa.press(msg, "Đồng ý")
    msg = await hoa.next_message()
    assert reply_keyboard(msg)[0][0]["request_contact"] is True
    await hoa.share_contact(phone="84912000001")
    assert "Cảm ơn" in (await hoa.next_message())["text"]
    msg = await hoa.next_message()
    assert "Nguyễn Văn An" in msg["text"]
    for answer in ("Đúng, là tôi", "Có", "Đã cài", "Đã đăng nhập"):
        await hoa.press(msg, answer)
        msg = await hoa.next_message()
    assert "Đăng ký xong" in msg["text"]
    async with bot.app.db.reader() as session:
        account = (
            await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == "1001"))
        ).one()
        member = await session.get(Member, account.member_id)
    assert member is not None and member.phone == AN_PHONE and member.app_activated is True


async def test_every_statement_of_a_registration_is_compiled_once(bot: Bot) -> None:
    """Issue 14's core throughput: SQLAlchemy compiles a statement once and then reuses it,
    unless the statement has no cache key, and then it compiles it anew on every run (the
    choices' upsert cost ~2 % of the bot's CPU so). Every statement a registration runs, from
    the update's record to the send journal, must be one SQLAlchemy can cache."""
    uncached: list[str] = []

    def watch(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: Any) -> None:
        if context.compiled is not None and context.cache_hit is CacheStats.NO_CACHE_KEY:
            uncached.append(" ".join(sql.split())[:60])

    engine = bot.app.db.engine.sync_engine  # this app's: a restart makes another
    event.listen(engine, "before_cursor_execute", watch)
    try:
        hoa = bot.server.user(1001, first_name="An", language_code="vi")
        await hoa.send("/start")
        msg = await hoa.next_message()
        await hoa.press(msg, "Tiếng Việt")
        await hoa.press(await hoa.next_message(), "Đồng ý")
        await hoa.next_message()
        await hoa.share_contact(phone="84912000001")
        await hoa.next_message()
        msg = await hoa.next_message()
        for answer in ("Đúng, là tôi", "Có", "Đã cài", "Đã đăng nhập"):
            await hoa.press(msg, answer)
            msg = await hoa.next_message()
        assert "Đăng ký xong" in msg["text"]
        await bot.restart()  # a stop waits for the last reply's journal writes
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert uncached == []


async def test_someone_elses_contact_is_refused_over_telegram(bot: Bot) -> None:
    user = bot.server.user(1002, language_code="vi")
    await user.send("/start")
    await user.press(await user.next_message(), "Tiếng Việt")
    await user.press(await user.next_message(), "Đồng ý")
    await user.next_message()
    await user.share_contact(phone="+84912000001", user_id=5555)
    assert "người khác" in (await user.next_message())["text"]


async def test_applicant_is_approved_by_secretary_over_telegram(bot: Bot) -> None:
    secretary = bot.server.user(SECRETARY_ID, first_name="Hoa", language_code="vi")
    await secretary.send("/menu")
    await secretary.next_message()
    user = bot.server.user(1003, language_code="vi")
    await user.send("/start")
    await user.press(await user.next_message(), "Tiếng Việt")
    await user.press(await user.next_message(), "Đồng ý")
    await user.next_message()
    await user.share_contact(phone="0987 111 222")
    await user.next_message()  # thanks
    await user.press(await user.next_message(), "Xin đăng ký vào chi bộ")
    await user.next_message()
    await user.send("Phạm Văn Mới")
    msg = await user.next_message()
    await user.send("Cầu Bâu")
    msg = await user.next_message()
    await user.press(msg, "Chi bộ thôn Cầu Bâu")
    await user.press(await user.next_message(), "Không")
    assert "bí thư" in (await user.next_message())["text"]
    request = await secretary.next_message()
    assert "Phạm Văn Mới" in request["text"]
    await secretary.press(request, "✓ Duyệt")
    assert "Đã duyệt" in (await secretary.next_message())["text"]
    assert "Phạm Văn Mới" in (await user.next_message())["text"]


async def test_forget_over_telegram(bot: Bot) -> None:
    user = await register(bot, 1004)
    await user.send("/forget")
    await user.press(await user.next_message(), "Xóa thông tin")
    assert "Đã xóa" in (await user.next_message())["text"]
    async with bot.app.db.reader() as session:
        assert (await session.exec(select(Member).where(Member.phone == AN_PHONE))).first() is None


async def register(bot: Bot, user_id: int):  # type: ignore[no-untyped-def]
    user = bot.server.user(user_id, language_code="vi")
    await user.send("/start")
    await user.press(await user.next_message(), "Tiếng Việt")
    await user.press(await user.next_message(), "Đồng ý")
    await user.next_message()
    await user.share_contact(phone=AN_PHONE)
    await user.next_message()
    msg = await user.next_message()
    for answer in ("Đúng, là tôi", "Không"):
        await user.press(msg, answer)
        msg = await user.next_message()
    assert "Đăng ký xong" in msg["text"]
    return user


async def test_restart_mid_dialog_resumes(bot: Bot) -> None:
    user = bot.server.user(1005, language_code="vi")
    await user.send("/start")
    await user.press(await user.next_message(), "Tiếng Việt")
    consent = await user.next_message()
    await bot.restart()
    await user.press(consent, "Đồng ý")
    msg = await user.next_message()
    assert reply_keyboard(msg)[0][0]["request_contact"] is True


async def test_duplicate_update_is_processed_once(bot: Bot) -> None:
    user = bot.server.user(1006, language_code="vi")
    update = await user.send("/help")
    await user.next_message()
    await bot.server.redeliver(update)
    await user.send("/privacy")
    assert "CCCD" in (await user.next_message())["text"]
    assert bot.server.delivered_count(1006) == 2


async def test_rate_limited_send_is_retried_after_retry_after(bot: Bot) -> None:
    user = bot.server.user(1007, language_code="vi")
    bot.server.fail_next("sendMessage", status=429, retry_after=3)
    await user.send("/help")
    await bot.server.wait_for(lambda: bot.server.stats[429] == 1)
    assert bot.server.delivered_count(1007) == 0
    bot.clock.advance(timedelta(seconds=4))
    bot.app.dispatcher.wake()
    assert "/start" in (await user.next_message())["text"]
    assert bot.server.delivered_count(1007) == 1


async def test_blocked_user_is_marked_unreachable(bot: Bot) -> None:
    user = await register(bot, 1008)
    user.block()
    async with bot.app.db.session() as session:
        member = (await session.exec(select(Member).where(Member.phone == AN_PHONE))).one()
    from bot.core import View

    async with bot.app.db.session() as session:
        bot.app.services.outbox.add(
            session, channel="telegram", chat_ref="1008", view=View("ping"), member_id=member.id
        )
    bot.app.dispatcher.wake()
    await bot.server.wait_for(lambda: bot.server.stats[403] >= 1)

    async def unreachable() -> bool:
        async with bot.app.db.reader() as session:
            account = (
                await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == "1008"))
            ).one()
        return not account.reachable

    for _ in range(50):
        if await unreachable():
            break
        await bot.app.dispatcher.run_once()
    assert await unreachable()


async def test_command_list_is_published_in_vietnamese_and_english(bot: Bot) -> None:
    vi = bot.server.visible_commands(bot.server.user(1, language_code="vi"))
    en = bot.server.visible_commands(bot.server.user(2, language_code="en"))
    assert {"command": "start", "description": "Bắt đầu / đăng ký"} in vi
    assert {"command": "start", "description": "Start / register"} in en
    # the list is what the features registered for every member, not a copy kept in the channel
    assert [c["command"] for c in vi] == bot.app.router.published_commands()
    assert {"training", "feedback", "support", "cancel"} <= {c["command"] for c in en}
    assert not {"queue", "notice", "approvals", "faqedit"} & {c["command"] for c in vi}


SECRET = "s3cret-webhook-token_0123456789"


async def test_webhook_refuses_wrong_secret_and_accepts_right_one(
    fake: FakeTelegram, database_url: str, clock: ShiftedClock, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}/telegram"
    settings = telegram_settings(
        database_url, fake.root, webhook_url=url, webhook_secret=SECRET, web_port=free_port
    )
    app, channel = await start_bot(settings, clock)
    try:
        assert fake.webhook_url == url
        async with aiohttp.ClientSession() as http:
            body = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "text": "/help",
                    "chat": {"id": 77, "type": "private"},
                    "from": {"id": 77, "is_bot": False, "first_name": "X"},
                },
            }
            async with http.post(url, json=body) as response:
                assert response.status == 403
            async with http.post(url, json=body, headers={WEBHOOK_HEADER: "wrong"}) as response:
                assert response.status == 403
            for forged in ("sécret-ñ-ü-" + SECRET, "đồng chí"):  # non-ASCII: 403, never a 500
                headers = {WEBHOOK_HEADER: forged}
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == 403
            right = {WEBHOOK_HEADER: SECRET}
            malformed = [
                {**body, "message": {**body["message"], "chat": {"id": "abc", "type": "private"}}},
                {**body, "update_id": "1"},
                {**body, "message": {**body["message"], "from": {"id": [1]}}},
                {"update_id": 2, "callback_query": {"id": "q", "data": "x"}},
                [1, 2, 3],
            ]
            for update in malformed:  # refused before any handler sees it
                async with http.post(url, json=update, headers=right) as response:
                    assert response.status == 400
            async with http.post(url, data=b"{not json", headers=right) as response:
                assert response.status == 400
        user = fake.user(1010, language_code="vi")
        await user.send("/help")
        assert "/start" in (await user.next_message())["text"]
        assert fake.webhook_deliveries[-1].status == 200
    finally:
        await channel.stop()
        await app.close()


async def test_a_role_holders_chat_gets_the_commands_of_their_roles(bot: Bot) -> None:
    """Telegram's per-chat command scope: the secretary's menu holds /meeting and /queue, a
    member's chat keeps the default list (which has neither)."""
    secretary = bot.server.user(SECRETARY_ID, language_code="vi")
    await secretary.send("/help")
    await secretary.next_message()
    await bot.server.wait_for(lambda: f"chat:{SECRETARY_ID}" in {k for k, _ in bot.server.commands})
    menu = [c["command"] for c in bot.server.visible_commands(secretary)]
    assert {"meeting", "queue", "approvals", "meetings"} <= set(menu)
    described = {c["command"]: c["description"] for c in bot.server.visible_commands(secretary)}
    assert described["meeting"] == "Tạo / quản lý cuộc họp"  # in the secretary's language
    stranger = bot.server.user(4242, language_code="vi")
    assert "meeting" not in [c["command"] for c in bot.server.visible_commands(stranger)]


def menu_calls(server: FakeTelegram) -> list[tuple[str, int]]:
    """The per-chat menu calls the server answered: (method, chat id)."""
    calls = []
    for call in server.requests:
        scope = call.params.get("scope")
        scope = json.loads(scope) if isinstance(scope, str) else scope
        if call.method.endswith("MyCommands") and isinstance(scope, dict) and "chat_id" in scope:
            calls.append((call.method, int(scope["chat_id"])))
    return calls


async def test_a_chats_menu_is_given_only_when_it_changes_even_across_restarts(bot: Bot) -> None:
    """Issue 14: the per-chat menu costs a Bot API call only when the chat's must change. A
    member's chat costs none; the secretary's is given once and not again after a restart (the
    account keeps what it was given); once her role is revoked, her own menu is removed once."""

    async def chat(user: FakeUser, times: int = 2) -> None:
        for _ in range(times):  # a second reply: the first update (and its menu check) is done
            await user.send("/help")
            await user.next_message()

    secretary = bot.server.user(SECRETARY_ID, language_code="vi")
    await chat(secretary, times=1)
    await bot.server.wait_for(lambda: f"chat:{SECRETARY_ID}" in {k for k, _ in bot.server.commands})
    await bot.restart()  # a stop waits for the menu being given and its record
    await chat(secretary)
    async with bot.app.db.session() as session:  # the cell's members, registered
        [(member_ref, _member), *_] = await link_cell_members(
            session, "telegram", lambda i: str(1001 + i)
        )
    await chat(bot.server.user(int(member_ref), language_code="vi"))
    assert menu_calls(bot.server) == [("setMyCommands", SECRETARY_ID)]

    async with bot.app.db.session() as session:
        account = (
            await session.exec(
                select(ChannelAccount).where(ChannelAccount.user_ref == str(SECRETARY_ID))
            )
        ).one()
        for grant in (
            await session.exec(select(RoleGrant).where(RoleGrant.member_id == account.member_id))
        ).all():
            await session.delete(grant)
    await chat(secretary, times=1)
    await bot.server.wait_for(
        lambda: f"chat:{SECRETARY_ID}" not in {k for k, _ in bot.server.commands}
    )
    await bot.restart()
    await chat(secretary)
    assert menu_calls(bot.server) == [
        ("setMyCommands", SECRETARY_ID),
        ("deleteMyCommands", SECRETARY_ID),
    ]
    assert "meeting" not in [c["command"] for c in bot.server.visible_commands(secretary)]
