"""End to end: the Zalo Official Account channel against the fake OA platform over HTTP —
tokens (connect, refresh at 90% of their life, across a restart, two processes racing), signed
webhooks, registration by shared info, buttons, the 7-day rule (consultation, another channel,
ZNS, the secretary told), FAQ and a support ticket answered by staff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import select

from bot.app import App
from bot.channels.base import Channel
from bot.channels.zalo_oa import WEBHOOK_PATH, ZaloOaChannel
from bot.clock import ShiftedClock
from bot.demo import seed_demo
from bot.settings import Settings
from bot.zalo_oa_tokens import TokenKeeper
from storage.db import Database
from storage.models import (
    ChannelAccount,
    DueJob,
    Meeting,
    MeetingKind,
    OutboxMessage,
    ProcessedEvent,
    Unit,
)
from storage.zalo_oa_models import ZaloOaInbox
from tests.fake_zalo_oa import FakeOAUser, FakeZaloOA, buttons_of, is_info_request, text_of
from tests.harness import Bot, bot_settings, free_port, link_cell_members
from tests.test_zalo_e2e import eventually

SECRETARY, STAFF = "oa9001", "oa9002"
AN_PHONE = "+84912000001"
CELL = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu"


def oa_settings(database_url: str, fake: FakeZaloOA, port: int, **extra: Any) -> Settings:
    return bot_settings(
        database_url,
        zalo_oa_app_id=fake.app_id,
        zalo_oa_app_secret=fake.app_secret,
        zalo_oa_webhook_secret=fake.oa_secret,
        zalo_oa_api_url=fake.root,
        zalo_oa_oauth_url=fake.root,
        zns_api_url=fake.root,
        web_port=port,
        quiet_hours="",
        zalo_oa_chat_rate=20.0,
        zalo_oa_chat_burst=20.0,
        **extra,
    )


def oa_channel(settings: Settings, app: App, clock: ShiftedClock) -> Channel:
    return ZaloOaChannel(settings, app.router.handle, app.db, clock=clock)


async def connect(settings: Settings, fake: FakeZaloOA, clock: ShiftedClock) -> None:
    """What `sotay zalo-oa connect --refresh-token …` does."""
    db = Database(settings.database_url)
    try:
        await TokenKeeper(db, settings, clock).connect(refresh_token=fake.consent_refresh_token())
    finally:
        await db.dispose()


def oa_server(clock: ShiftedClock) -> FakeZaloOA:
    return FakeZaloOA(clock.now, access_ttl=3600)


pytestmark = pytest.mark.e2e(server=oa_server)


async def launch(fake: FakeZaloOA, database_url: str, clock: ShiftedClock, **extra: Any) -> Bot:
    port = free_port()
    settings = oa_settings(database_url, fake, port, **extra)
    await seed_demo(settings, channel="zalo_oa", refs={"bithu": SECRETARY, "canbo": STAFF})
    await connect(settings, fake, clock)
    fake.webhook_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    fake.user(SECRETARY, "Hoa", "84912000006")
    fake.last_interaction[SECRETARY] = clock.now()
    return await Bot.launch(fake, settings, clock, oa_channel)


@pytest_asyncio.fixture
async def bot(fake: FakeZaloOA, database_url: str, clock: ShiftedClock) -> AsyncIterator[Bot]:
    running = await launch(fake, database_url, clock)
    yield running
    await running.stop()


async def account_of(bot: Bot, user_ref: str) -> ChannelAccount | None:
    async with bot.app.db.reader() as session:
        stmt = select(ChannelAccount).where(
            ChannelAccount.channel == "zalo_oa", ChannelAccount.user_ref == user_ref
        )
        return (await session.exec(stmt)).first()


async def register(user: FakeOAUser) -> None:
    await user.send("/start")
    await user.press(await user.next_message(), "Tiếng Việt")
    await user.press(await user.next_message(), "Đồng ý")
    await user.next_message()  # the phone prompt
    assert is_info_request(await user.next_message())
    await user.share_info()
    await user.next_message()  # thanks
    msg = await user.next_message()
    for answer in ("Đúng, là tôi", "Không"):
        await user.press(msg, answer)
        msg = await user.next_message()
    assert "Đăng ký xong" in text_of(msg)


# --- registration by shared info -----------------------------------------------------------------


async def test_member_registers_by_sharing_info_without_secretary_approval(bot: Bot) -> None:
    member = bot.server.user("oa1001", "Nguyễn Văn An", "84912000001")
    secretary = bot.server.users[SECRETARY]
    await member.send("/start")
    languages = await member.next_message()
    assert set(buttons_of(languages)) == {"Tiếng Việt", "English"}  # real buttons
    await member.press(languages, "Tiếng Việt")
    await member.press(await member.next_message(), "Đồng ý")
    prompt = await member.next_message()
    assert "gõ số điện thoại" not in text_of(prompt)  # the OA proves the phone: no typing
    request = await member.next_message()
    assert is_info_request(request)
    await member.share_info()
    await member.next_message()  # thanks
    confirm = await member.next_message()
    assert "Nguyễn Văn An" in text_of(confirm)  # proven: the roster entry may be shown
    await member.press(confirm, "Đúng, là tôi")
    msg = await member.next_message()
    await member.press(msg, "Không")
    assert "Đăng ký xong" in text_of(await member.next_message())
    account = await account_of(bot, "oa1001")
    assert account is not None and account.verified is True and account.pending is False
    assert secretary.drain() == []  # nobody had to approve


async def test_typed_number_is_refused_while_info_can_be_shared(bot: Bot) -> None:
    member = bot.server.user("oa1002", "An", "84912000001")
    await member.send("/start")
    await member.press(await member.next_message(), "Tiếng Việt")
    await member.press(await member.next_message(), "Đồng ý")
    await member.next_message()
    await member.next_message()
    await member.send("0912 000 001")
    retry = await member.next_message()
    assert text_of(retry)  # asked again to use the shared info, nothing linked
    assert await account_of(bot, "oa1002") is None


# --- webhook -------------------------------------------------------------------------------------


async def count_processed(bot: Bot) -> int:
    async with bot.app.db.reader() as session:
        stmt = select(ProcessedEvent).where(ProcessedEvent.channel == "zalo_oa")
        return len((await session.exec(stmt)).all())


@pytest.mark.engine_neutral  # refused before any database work
async def test_forged_or_missing_signature_is_403_and_does_nothing(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    member = fake.user("oa1003", "An")
    event = member._event("user_send_text", message={"text": "/start", "msg_id": "x1"})
    assert (await fake.deliver(event, signature="mac=" + "0" * 64)).status == 403
    assert (await fake.deliver(event, signature="")).status == 403
    assert (await fake.deliver(event, signature="mac=ấ")).status == 403  # odd bytes: no 500
    other_secret = FakeZaloOA(fake.clock, oa_secret="another-secret", app_id=fake.app_id)
    body = b'{"timestamp": "1"}'
    assert (await fake.deliver(event, signature=other_secret.sign(body, "1"))).status == 403
    await bot.channel.idle()
    assert await count_processed(bot) == 0 and member.messages == []


async def test_signed_events_are_answered_fast_once_and_echoes_ignored(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    member = fake.user("oa1004", "An")
    first = await member.send("/start")
    assert first.status == 200 and first.seconds < 2.0
    await member.next_message()
    again = await fake.deliver(first.event)  # Zalo retries: same msg_id
    assert again.status == 200
    await bot.channel.idle()
    await fake.wait_for(
        lambda: any(d.event["event_name"] == "oa_send_text" for d in fake.deliveries)
    )
    await bot.channel.idle()
    assert await count_processed(bot) == 1  # the retry and the echo did nothing
    assert member.drain() == []
    followed = await member.follow()
    image = await member.send_image("https://example.com/a.jpg")
    assert followed.status == 200 and image.status == 200
    await bot.channel.idle()


async def test_unfollow_makes_the_account_unreachable_until_follow(bot: Bot) -> None:
    member = bot.server.user("oa1008", "Nguyễn Văn An", "84912000001")
    await register(member)
    assert (await member.follow("unfollow")).status == 200
    await bot.channel.idle()
    account = await account_of(bot, "oa1008")
    assert account is not None and account.reachable is False
    await member.follow()
    await bot.channel.idle()
    account = await account_of(bot, "oa1008")
    assert account is not None and account.reachable is True


async def test_an_event_answered_before_a_crash_is_handled_at_the_next_start(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    member = fake.user("oa1009", "An")
    await bot.stop()
    event = member._event("user_send_text", message={"text": "/start", "msg_id": "late1"})
    fake.last_interaction[member.id] = bot.clock.now()
    crashed = Database(bot.settings.database_url)  # what the crashed process had kept
    async with crashed.session() as session:
        session.add(ZaloOaInbox(event=event, received_at=bot.clock.now()))
    await crashed.dispose()
    await bot.start()
    assert "Tiếng Việt" in buttons_of(await member.next_message())
    await bot.channel.idle()

    async def inbox_empty() -> bool:  # the event's row goes once its transaction is over;
        async with bot.app.db.reader() as session:  # the reply may arrive before that
            return (await session.exec(select(ZaloOaInbox))).all() == []

    await eventually(inbox_empty)


# --- tokens --------------------------------------------------------------------------------------


async def test_token_refreshed_before_expiry_across_a_restart(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    calls = fake.refresh_calls  # the connect
    member = fake.user("oa1005", "An")
    await member.send("/start")
    await member.next_message()
    assert fake.refresh_calls == calls  # the first token is fresh
    bot.clock.advance(timedelta(seconds=3600 * 0.9 + 5))  # past 90% of its hour
    fake.last_interaction["oa1005"] = bot.clock.now()
    await member.send("/help")
    await member.next_message()
    assert fake.refresh_calls == calls + 1
    await bot.restart()
    bot.clock.advance(timedelta(seconds=3600 * 0.9 + 5))
    await member.send("/help")
    await member.next_message()
    # the refresh comes with the reply's send, which may still be on its way
    await fake.wait_for(lambda: fake.refresh_calls == calls + 2)
    assert fake.spent_attempts == 0


async def test_two_processes_racing_make_one_refresh_call(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    bot.clock.advance(timedelta(seconds=3600 * 0.95))
    calls = fake.refresh_calls
    fake.oauth_gate = asyncio.Event()  # hold the first refresh so the others queue behind it
    dbs = [Database(bot.settings.database_url) for _ in range(2)]
    keepers = [TokenKeeper(db, bot.settings, bot.clock) for db in dbs]
    try:
        racing = [asyncio.create_task(k.access_token()) for k in (*keepers, *keepers)]
        await fake.wait_for(lambda: fake.oauth_arrived > 0)  # one refresh is at Zalo…
        assert not any(task.done() for task in racing)  # …and everyone else waits for it
        fake.oauth_gate.set()
        tokens = await asyncio.gather(*racing)
    finally:
        for db in dbs:
            await db.dispose()
    assert fake.refresh_calls == calls + 1 and fake.spent_attempts == 0
    assert len(set(tokens)) == 1


async def test_refused_refresh_keeps_old_pair_and_alerts_admins(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    keeper = bot.channel.tokens
    old = await keeper.access_token()
    fake._refresh.clear()  # Zalo no longer knows the refresh token
    bot.clock.advance(timedelta(seconds=3600 * 0.95))
    assert await keeper.access_token() == old  # the old pair still works until it expires
    calls = fake.refresh_calls
    assert await keeper.access_token() == old
    assert fake.refresh_calls == calls  # a rejected refresh token is never sent again
    status = await keeper.status()
    assert status.last_error is not None and status.last_error.startswith("rejected")
    async with bot.app.db.reader() as session:
        stmt = select(OutboxMessage).where(col_like_alert())
        assert (await session.exec(stmt)).first() is not None


def col_like_alert() -> Any:
    from sqlmodel import col

    return col(OutboxMessage.dedupe_key).startswith("alert:zoa.token_failed")


async def test_invalid_token_is_refreshed_once_and_the_message_sent(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    member = fake.user("oa1006", "An")
    await member.send("/start")
    await member.next_message()
    calls = fake.refresh_calls
    fake.expire_access_tokens()  # Zalo revoked it early
    await member.send("/help")
    assert text_of(await member.next_message())
    assert fake.refresh_calls == calls + 1


# --- the 7-day rule ------------------------------------------------------------------------------


async def link_members(
    settings: Settings, fake: FakeZaloOA, clock: ShiftedClock
) -> list[FakeOAUser]:
    """Cầu Bâu's members other than the secretary get OA accounts (ids oa2000, oa2001, …)."""
    db = Database(settings.database_url)
    users = []
    async with db.session() as session:
        cell = (await session.exec(select(Unit).where(Unit.path == CELL))).one()
        for ref, member in await link_cell_members(session, "zalo_oa", lambda i: f"oa{2000 + i}"):
            users.append(fake.user(ref, member.full_name or "", (member.phone or "").lstrip("+")))
        meeting = Meeting(
            cell_id=cell.id or 0,
            kind=MeetingKind.regular,
            starts_at=clock.now() + timedelta(days=1),
            place="Nhà văn hóa thôn",
            agenda="Sinh hoạt tháng",
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(meeting)
        await session.flush()
        session.add(
            DueJob(
                kind="mt_reminder",
                ref_id=meeting.id,
                due_at=clock.now() + timedelta(days=8),
                created_at=clock.now(),
            )
        )
    await db.dispose()
    return users


async def reminder_bot(
    fake: FakeZaloOA, database_url: str, clock: ShiftedClock, **extra: Any
) -> tuple[Bot, list[FakeOAUser]]:
    """A meeting in 9 days; its reminder due in 8 days. Members[0] writes on day 2 (inside the
    window at the reminder, 6 days quiet), the others last wrote today (outside by then)."""
    bot = await launch(fake, database_url, clock, **extra)
    members = await link_members(bot.settings, fake, clock)
    async with bot.app.db.session() as session:
        meeting = (await session.exec(select(Meeting))).one()
        meeting.starts_at = clock.now() + timedelta(days=9)
        session.add(meeting)
    for user in members:
        await user.send("cảm ơn")
    await bot.channel.idle()
    for user in members:
        await user.next_message()
    clock.advance(timedelta(days=2))
    await members[0].send("cảm ơn")
    await members[0].next_message()
    clock.advance(timedelta(days=5))
    fake.last_interaction[SECRETARY] = clock.now() + timedelta(days=1)
    clock.advance(timedelta(days=1, minutes=1))
    await bot.app.scheduler.tick()  # the reminder is due: its job queues the notices
    return bot, members


async def test_reminder_inside_window_by_consultation_outside_by_zns(
    fake: FakeZaloOA, database_url: str, clock: ShiftedClock
) -> None:
    bot, members = await reminder_bot(fake, database_url, clock, zns_reminder_template="231001")
    try:
        reminder = await members[0].next_message(timeout=10)
        assert "Nhắc lịch" in text_of(reminder)  # consultation message
        assert "7 ngày" in text_of(reminder)  # six quiet days: told why writing to the OA helps
        await fake.wait_for(lambda: len(fake.zns) == len(members) - 1, timeout=10)
        phones = {z["phone"] for z in fake.zns}
        assert phones == {u.phone for u in members[1:]}
        assert all(z["template_id"] == "231001" for z in fake.zns)
        assert "Nhắc lịch" in fake.zns[0]["template_data"]["content"]
        assert all(u.drain() == [] for u in members[1:])
    finally:
        await bot.stop()


async def test_reminder_outside_window_without_zns_is_reported_to_the_secretary(
    fake: FakeZaloOA, database_url: str, clock: ShiftedClock
) -> None:
    bot, members = await reminder_bot(fake, database_url, clock)
    secretary = fake.users[SECRETARY]
    try:
        assert "Nhắc lịch" in text_of(await members[0].next_message(timeout=10))
        await fake.wait_for(
            lambda: (
                sum("quy định 7 ngày" in text_of(m) for m in secretary.messages) == len(members) - 1
            ),
            timeout=10,
        )
        named = " ".join(text_of(m) for m in secretary.messages)
        assert members[1].name in named and members[0].name not in named
        assert fake.zns == []
    finally:
        await bot.stop()


# --- FAQ and support -----------------------------------------------------------------------------


async def test_faq_and_a_support_ticket_answered_by_staff(bot: Bot) -> None:
    fake: FakeZaloOA = bot.server
    staff = fake.user(STAFF, "Thắng", "84912000090")
    await staff.send("/menu")  # the staff member has written to the OA: inside the window
    await staff.next_message()
    member = fake.user("oa1007", "Nguyễn Văn An", "84912000001")
    await register(member)
    await member.send("Quên mật khẩu đăng nhập Sổ tay thì làm thế nào?")
    answer = await member.next_message()
    assert "mật khẩu" in text_of(answer).lower() and buttons_of(answer)  # FAQ, with buttons

    await member.send("/support")
    topics = await member.next_message()
    assert buttons_of(topics) == {}  # nine topics: more than OA's buttons, so numbered lines
    assert "[2] Tài khoản, kích hoạt, mã OTP" in text_of(topics)
    await member.send("2")
    assert "kể ngắn gọn" in text_of(await member.next_message())
    await member.send("OTP không bao giờ về máy")
    assert "Đã ghi nhận yêu cầu #" in text_of(await member.next_message())
    card = await staff.next_message()
    assert "OTP không bao giờ về máy" in text_of(card)
    await staff.choose(card, "✍️ Trả lời")
    await staff.next_message()
    await staff.send("Đồng chí bấm «Gửi lại mã» rồi chờ 2 phút")
    # The card, updated, comes again (OA cannot edit a message), then the sending notice.
    await fake.wait_for(lambda: any("Đang gửi câu trả lời" in text_of(m) for m in staff.messages))
    reply = await member.next_message()
    assert "Gửi lại mã" in text_of(reply) and "Trả lời yêu cầu #1" in text_of(reply)
