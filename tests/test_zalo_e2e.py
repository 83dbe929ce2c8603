"""End to end: the Zalo channel against the fake Zalo Bot API server over HTTP — numbered
replies instead of buttons, remembered in the database; typed phone numbers approved by the
secretary; meeting notices; rate limits, blocked users, duplicates and the webhook."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import aiohttp.web
import pytest
import pytest_asyncio
from sqlmodel import col, select

from bot.app import App
from bot.channels.zalo import WEBHOOK_HEADER, ZaloChannel
from bot.clock import ShiftedClock
from bot.core import Upload, View
from bot.demo import seed_demo
from bot.phones import normalize_phone
from bot.settings import Settings
from bot.web import serve_alone
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Meeting,
    MeetingReply,
    Member,
    OutboxMessage,
    OutboxStatus,
    PendingChoices,
    ReplyAnswer,
    Unit,
)
from tests.fake_zalo import FakeZalo, FakeZaloUser, numbered_choices
from tests.harness import (
    ZALO_TOKEN,
    Bot,
    link_cell_members,
    start_app,
    zalo_channel,
    zalo_server,
    zalo_settings,
)
from tests.test_cli import sotay

pytestmark = pytest.mark.e2e(server=zalo_server)

TOKEN = ZALO_TOKEN
SECRETARY = "z9001"
AN_PHONE = "+84912000001"
CELL = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu"


async def start_bot(settings: Settings, clock: ShiftedClock) -> tuple[App, ZaloChannel]:
    return await start_app(settings, clock, zalo_channel)


@pytest_asyncio.fixture
async def bot(fake: FakeZalo, database_url: str, clock: ShiftedClock) -> AsyncIterator[Bot]:
    settings = zalo_settings(database_url, fake.root)
    await seed_demo(settings, channel="zalo", refs={"bithu": SECRETARY})
    running = await Bot.launch(fake, settings, clock, zalo_channel)
    yield running
    await running.stop()


async def begin(user: FakeZaloUser) -> dict:  # type: ignore[type-arg]
    """/start, Vietnamese, consent: returns the phone prompt."""
    await user.send("/start")
    await user.choose(await user.next_message(), "Tiếng Việt")
    await user.choose(await user.next_message(), "Đồng ý")
    return await user.next_message()


async def account_of(bot: Bot, user_ref: str) -> ChannelAccount | None:
    async with bot.app.db.reader() as session:
        stmt = select(ChannelAccount).where(
            ChannelAccount.channel == "zalo", ChannelAccount.user_ref == user_ref
        )
        return (await session.exec(stmt)).first()


# --- registration --------------------------------------------------------------------------------


async def test_roster_member_registers_over_zalo_with_secretary_approval(bot: Bot) -> None:
    secretary = bot.server.user(SECRETARY, "Hoa")
    member = bot.server.user("z1001", "An")
    await member.send("/start")
    languages = await member.next_message()
    assert numbered_choices(languages) == {"Tiếng Việt": "1", "English": "2"}
    await member.send("1")
    consent = await member.next_message()
    assert "[1] Đồng ý" in consent["text"]
    await member.send("1")
    phone = await member.next_message()
    assert "gõ số điện thoại" in phone["text"]  # no contact button on Zalo
    await member.send("0912 000 001")
    ask_name = await member.next_message()
    assert "họ và tên" in ask_name["text"] and "Nguyễn" not in ask_name["text"]  # nothing shown
    await member.send("Nguyen Van An")
    confirm = await member.next_message()
    for label in ("Có", "Đã cài", "Đã đăng nhập"):  # smartphone; installed; activated
        await member.choose(confirm, label)
        confirm = await member.next_message()
    assert "người có thẩm quyền" in confirm["text"]  # sent for approval: typed is not proven
    assert "Cầu Bâu" not in confirm["text"]

    assert await account_of(bot, "z1001") is None  # no account, no role until approved
    request = await secretary.next_message()
    assert "Nguyễn Văn An" in request["text"] and "[1] ✓ Duyệt" in request["text"]
    await secretary.send("1")
    assert "Đã duyệt" in (await secretary.next_message())["text"]
    assert "Nguyễn Văn An" in (await member.next_message())["text"]
    account = await account_of(bot, "z1001")
    assert account is not None and account.pending is False and account.verified is True
    async with bot.app.db.reader() as session:
        person = await session.get(Member, account.member_id)
    assert person is not None and person.phone == AN_PHONE and person.app_activated is True


async def test_reply_by_label_without_diacritics_works(bot: Bot) -> None:
    user = bot.server.user("z1002")
    await user.send("/start")
    await user.next_message()
    await user.send("tieng viet")
    consent = await user.next_message()
    assert "Đồng chí có đồng ý không?" in consent["text"]
    await user.send("Dong y")
    assert "gõ số điện thoại" in (await user.next_message())["text"]


async def test_stale_number_after_a_newer_prompt_is_refused_politely(bot: Bot) -> None:
    user = bot.server.user("z1003")
    phone_prompt = await begin(user)
    assert numbered_choices(phone_prompt) == {}  # the phone step offers no choices
    await user.send("1")  # still numbered on the consent prompt, which is answered already
    refusal = await user.next_message()
    assert "đã cũ" in refusal["text"]
    assert "gõ số điện thoại" in (await user.next_message())["text"]  # asked again, not lost
    await user.send("0912 000 001")
    assert "họ và tên" in (await user.next_message())["text"]


async def test_plain_text_that_is_no_choice_stays_text(bot: Bot) -> None:
    user = bot.server.user("z1004")
    await user.send("/start")
    await user.next_message()
    await user.send("7")  # no seventh choice
    asked = (await user.next_message())["text"]
    assert "gõ số thứ tự" in asked and "nút" not in asked  # Zalo has no buttons


async def test_restart_between_prompt_and_numbered_reply(bot: Bot) -> None:
    user = bot.server.user("z1005")
    await user.send("/start")
    await user.next_message()
    async with bot.app.db.reader() as session:
        saved = await session.get(PendingChoices, ("zalo", "z1005"))
    assert saved is not None and [label for label, _ in saved.choices] == [
        "Tiếng Việt",
        "English",
    ]
    await bot.restart()
    await user.send("2")
    assert "Do you agree?" in (await user.next_message())["text"]


# --- delivery ------------------------------------------------------------------------------------


async def test_duplicate_message_id_is_processed_once(bot: Bot) -> None:
    user = bot.server.user("z1006")
    event = await user.send("/help")
    assert "/start" in (await user.next_message())["text"]
    await bot.server.redeliver(event)
    await user.send("/privacy")
    assert "CCCD" in (await user.next_message())["text"]
    assert bot.server.delivered_count("z1006") == 2


@pytest.mark.engine_neutral  # how the channel cuts a text
async def test_long_text_is_split_at_2000_characters(bot: Bot) -> None:
    user = bot.server.user("z1007")
    text = "\n".join(f"Dòng {i:03d} " + "x" * 60 for i in range(100))  # about 7,000 characters
    async with bot.app.db.session() as session:
        bot.app.services.outbox.add(session, channel="zalo", chat_ref="z1007", view=View(text))
    bot.app.dispatcher.wake()
    parts = [await user.next_message() for _ in range(4)]
    assert all(len(part["text"]) <= 2000 for part in parts)
    assert "\n".join(part["text"] for part in parts) == text


async def test_blocked_user_is_marked_unreachable(bot: Bot) -> None:
    secretary = bot.server.user(SECRETARY)
    secretary.block()
    async with bot.app.db.session() as session:
        bot.app.services.outbox.add(session, channel="zalo", chat_ref=SECRETARY, view=View("ping"))
    bot.app.dispatcher.wake()
    await bot.server.wait_for(lambda: bot.server.stats[400] >= 1)  # no code of its own

    async def unreachable() -> bool:
        account = await account_of(bot, SECRETARY)
        return account is not None and not account.reachable

    for _ in range(50):
        if await unreachable():
            break
        await bot.app.dispatcher.run_once()
    assert await unreachable()


@pytest.mark.engine_neutral  # the channel's rendering of a file
async def test_files_become_a_note_on_zalo(bot: Bot) -> None:
    user = bot.server.user("z1009")
    csv = Upload("bao-cao.csv", "document", b"a,b\n")
    async with bot.app.db.session() as session:
        outbox = bot.app.services.outbox
        outbox.add(session, channel="zalo", chat_ref="z1009", view=View("📄 Báo cáo", upload=csv))
        outbox.add(
            session,
            channel="zalo",
            chat_ref="z1009",
            view=View("Ảnh", photo_ref="https://example.org/a.jpg"),
        )
    bot.app.dispatcher.wake()
    note = await user.next_message()
    assert "📄 Báo cáo" in note["text"] and "bao-cao.csv" in note["text"]
    photo = await user.next_message()
    assert photo["photo"] == "https://example.org/a.jpg" and photo["text"] == "Ảnh"


async def test_report_files_on_zalo_say_where_to_get_them(bot: Bot) -> None:
    staff = bot.server.user("canbo")  # the commune's support staff (seeded on Zalo)
    await staff.send("/report")
    report = await staff.next_message()
    await staff.choose(report, "📄 Xuất CSV")
    csv = await staff.next_message()
    assert "chi bộ" in csv["text"] and "sotay report --csv" in csv["text"]
    await staff.choose(report, "📊 Biểu đồ")  # the report's numbers are still the latest
    chart = await staff.next_message()
    assert "sotay report --chart" in chart["text"] and "photo" not in chart


async def test_forget_over_zalo_erases_the_remembered_choices(bot: Bot) -> None:
    secretary = bot.server.user(SECRETARY)
    await secretary.send("/forget")
    await secretary.choose(await secretary.next_message(), "Xóa thông tin")
    assert "Đã xóa" in (await secretary.next_message())["text"]
    async with bot.app.db.reader() as session:
        assert await session.get(PendingChoices, ("zalo", SECRETARY)) is None
    assert await account_of(bot, SECRETARY) is None


# --- meetings ------------------------------------------------------------------------------------


async def link_zalo_members(settings: Settings, server: FakeZalo) -> list[FakeZaloUser]:
    """Every Cầu Bâu member except the secretary gets a Zalo account (ids z2000, z2001, …)."""
    db = Database(settings.database_url)
    users = []
    async with db.session() as session:
        for ref, member in await link_cell_members(session, "zalo", lambda i: f"z{2000 + i}"):
            users.append(server.user(ref, member.full_name))
    await db.dispose()
    return users


async def test_meeting_notice_reaches_zalo_members_and_numbered_replies_record_answers(
    fake: FakeZalo, database_url: str, clock: ShiftedClock
) -> None:
    settings = zalo_settings(database_url, fake.root)
    await seed_demo(settings, channel="zalo", refs={"bithu": SECRETARY})
    members = await link_zalo_members(settings, fake)
    app, channel = await start_bot(settings, clock)
    running = Bot(fake, app, channel, settings, clock, zalo_channel)
    try:
        secretary = fake.user(SECRETARY)
        await secretary.send("/meeting")
        await secretary.choose(await secretary.next_message(), "Sinh hoạt định kỳ")
        ask_date = await secretary.next_message()
        assert numbered_choices(ask_date) == {}  # no calendar of 31 numbers: the date is typed
        day = (clock.now() + timedelta(days=10)).astimezone(settings.tz).date()
        await secretary.send(day.strftime("%d/%m/%Y"))
        await secretary.choose(await secretary.next_message(), "19:30")
        await secretary.next_message()
        await secretary.send("Nhà văn hóa thôn")
        await secretary.next_message()
        await secretary.send("Sinh hoạt tháng; hướng dẫn dùng Sổ tay")
        await secretary.choose(await secretary.next_message(), "90 phút")
        preview = await secretary.next_message()
        assert "Nhà văn hóa thôn" in preview["text"]
        await secretary.send("1")  # the first choice sends the notice
        notices = [await user.next_message() for user in members]
        assert all("Sinh hoạt định kỳ" in n["text"] for n in notices)
        assert numbered_choices(notices[0]) == {"✓ Tham dự": "1", "✗ Vắng, có lý do": "2"}

        await members[0].send("1")
        assert "tham dự" in (await members[0].next_message())["text"]
        await members[1].send("2")
        await members[1].choose(await members[1].next_message(), "Bận công tác")
        assert "vắng" in (await members[1].next_message())["text"]

        async with app.db.reader() as session:
            meeting = (await session.exec(select(Meeting))).one()
            stmt = select(MeetingReply).where(MeetingReply.meeting_id == meeting.id)
            replies = (await session.exec(stmt)).all()
            accounts = {
                a.member_id: a.user_ref for a in (await session.exec(select(ChannelAccount))).all()
            }
        answers = {accounts[r.member_id]: (r.answer, r.reason) for r in replies}
        assert answers == {
            members[0].id: (ReplyAnswer.attend, None),
            members[1].id: (ReplyAnswer.absent, "Bận công tác"),
        }
        # Zalo cannot edit the progress message: rather than one new message per update, the
        # secretary gets the first progress line and the final delivery report only.
        await fake.wait_for(lambda: any("Báo cáo gửi" in m["text"] for m in secretary.messages))
        texts = [m["text"] for m in secretary.messages]
        assert sum(text.startswith("Đang gửi") for text in texts) == 1
    finally:
        await running.stop()


# --- webhook -------------------------------------------------------------------------------------


async def test_webhook_refuses_wrong_secret_and_accepts_wrapped_and_flat_bodies(
    fake: FakeZalo, database_url: str, clock: ShiftedClock, free_port: int
) -> None:
    url = "https://bot.example.vn/zalo"  # Zalo takes https only; a proxy in front terminates TLS
    fake.webhook_proxy = f"http://127.0.0.1:{free_port}"
    local = f"http://127.0.0.1:{free_port}/zalo"
    settings = zalo_settings(
        database_url,
        fake.root,
        zalo_webhook_url=url,
        zalo_webhook_secret="s3cret-token",
        web_port=free_port,
    )
    app, channel = await start_bot(settings, clock)
    try:
        assert fake.webhook_url == url and fake.webhook_secret == "s3cret-token"
        user = fake.user("z3001")
        event = {
            "event_name": "message.text.received",
            "message": {
                "message_id": "forged-1",
                "date": 0,
                "text": "/help",
                "from": {"id": "z3001", "display_name": "X"},
                "chat": {"id": "z3001", "chat_type": "PRIVATE"},
            },
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(local, json=event) as response:
                assert response.status == 403
            async with http.post(local, json=event, headers={WEBHOOK_HEADER: "wrong"}) as response:
                assert response.status == 403
        assert fake.delivered_count("z3001") == 0

        await user.send("/help")  # the fake wraps it: {"ok": true, "result": event}
        assert "/start" in (await user.next_message())["text"]
        assert "result" in fake.webhook_deliveries[-1].body
        fake.wrap_webhook = False
        await user.send("/privacy")  # flat: the event itself
        assert "CCCD" in (await user.next_message())["text"]
        assert "event_name" in fake.webhook_deliveries[-1].body
        assert {d.status for d in fake.webhook_deliveries} == {200}
    finally:
        await app.stop_background()
        await channel.stop()
        await app.close()


async def test_invite_plus_a_staff_members_number_gets_nothing_until_admin_approves(
    bot: Bot,
) -> None:
    """Attack (before this fix): any invite + a commune staff member's number = their role."""
    from handlers.admin import create_invite
    from storage.models import Role, RoleGrant

    async with bot.app.db.session() as session:
        cell = (await session.exec(select(Unit).where(Unit.path == CELL))).one()
        invite = await create_invite(
            session,
            role=Role.member,
            unit=cell,
            created_by=None,
            ttl=timedelta(days=1),
            now=bot.clock.now(),
        )
        code = invite.code
    secretary = bot.server.user(SECRETARY, "Hoa")
    admin = bot.server.user("admin", "Thu")
    attacker = bot.server.user("z6666", "X")
    await attacker.send(f"/start {code}")
    await attacker.choose(await attacker.next_message(), "Tiếng Việt")
    await attacker.choose(await attacker.next_message(), "Đồng ý")
    await attacker.next_message()  # the phone prompt
    await attacker.send("0912 000 090")  # Phan Văn Thắng, staff of Xã Hợp Thành
    asked = await attacker.next_message()
    assert "Phan" not in asked["text"] and "Hợp Thành" not in asked["text"]
    await attacker.send("phan van thang")
    await attacker.choose(await attacker.next_message(), "Không")  # no smartphone
    sent = await attacker.next_message()
    assert "người có thẩm quyền" in sent["text"]
    assert await account_of(bot, "z6666") is None  # no account, no role, no /queue
    await attacker.send("/queue")
    assert "chưa đăng ký" in (await attacker.next_message())["text"]
    request = await admin.next_message()  # only someone above the commune is asked
    assert "cán bộ hỗ trợ — Xã Hợp Thành" in request["text"]
    assert secretary.drain() == []  # the cell secretary is not asked, and cannot decide
    await admin.send("1")  # ✓ Duyệt
    assert "Đã duyệt" in (await admin.next_message())["text"]
    account = await account_of(bot, "z6666")
    assert account is not None
    async with bot.app.db.reader() as session:
        roles = (
            await session.exec(select(RoleGrant).where(RoleGrant.member_id == account.member_id))
        ).all()
    assert [g.role for g in roles] == [Role.staff]  # the invite's member role was not needed


@pytest.mark.engine_neutral  # refused before any database work
async def test_webhook_secret_with_odd_bytes_is_a_403(
    fake: FakeZalo, database_url: str, clock: ShiftedClock
) -> None:  # noqa: E501
    port = _free_port()
    settings = zalo_settings(
        database_url,
        fake.root,
        zalo_webhook_url=f"https://example.vn:{port}/zalo",
        zalo_webhook_secret="s3cret-token",
        web_port=port,
    )
    channel = ZaloChannel(settings, lambda event: None, Database(settings.database_url))  # type: ignore[arg-type, return-value]
    server = await serve_alone(settings, channel.add_routes)
    try:
        async with aiohttp.ClientSession() as http:
            for forged in ("sécret-tökén", "đồng chí"):
                async with http.post(
                    f"http://127.0.0.1:{port}/zalo", json={}, headers={WEBHOOK_HEADER: forged}
                ) as response:
                    assert response.status == 403
    finally:
        await server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- faithful to Zalo's documentation (tests/fake_zalo.py cites the pages) -----------------------
# 403 is Zalo's internal error (retried, nobody blocked); 429 the plan's quota (the channel
# pauses longer each time, admins told once); 401 a refused token (the channel stops, one log
# line, an alert, nothing lost); https-only webhook; own echoes ignored; hidden content; photo.

ADMIN_PHONE = "0912000091"  # the province admin of the demo data (linked to Zalo user "admin")
ADMIN_ELSEWHERE = "admin-terminal"  # the same admin's account on another channel


async def link_admin_elsewhere(bot: Bot) -> None:
    """The admin also uses the terminal channel: where an alert about Zalo can reach them."""
    async with bot.app.db.session() as session:
        phone = normalize_phone(ADMIN_PHONE)
        admin = (await session.exec(select(Member).where(Member.phone == phone))).one()
        session.add(
            ChannelAccount(
                channel="terminal",
                user_ref=ADMIN_ELSEWHERE,
                chat_ref=ADMIN_ELSEWHERE,
                member_id=admin.id or 0,
                language="vi",
                verified=True,
            )
        )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the database shows ``check``, or fail. Rows change in other tasks' own
    transactions, which signal nothing a test could await: the condition is re-read every 20 ms
    (a wait on a condition, never a fixed sleep standing in for one)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - no event exists for a database row
            await asyncio.sleep(0.02)


async def rows_to(bot: Bot, channel: str, chat_ref: str) -> list[OutboxMessage]:
    async with bot.app.db.reader() as session:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.channel == channel, OutboxMessage.chat_ref == chat_ref)
            .order_by(col(OutboxMessage.id))
        )
        return list((await session.exec(stmt)).all())


async def alerts(bot: Bot) -> list[str]:
    return [row.payload["text"] for row in await rows_to(bot, "terminal", ADMIN_ELSEWHERE)]


async def queue(bot: Bot, chat_ref: str, *texts: str) -> None:
    async with bot.app.db.session() as session:
        for text in texts:
            bot.app.services.outbox.add(session, channel="zalo", chat_ref=chat_ref, view=View(text))
    bot.app.dispatcher.wake()


async def test_403_is_zalos_internal_error_retried_and_delivered_nobody_blocked(bot: Bot) -> None:
    user = bot.server.user(SECRETARY)
    bot.server.fail_next("sendMessage", status=403, count=2)
    await queue(bot, SECRETARY, "một", "hai")
    await bot.server.wait_for(lambda: bot.server.stats[403] == 1)
    await eventually(lambda: _put_back(bot, SECRETARY))
    bot.clock.advance(timedelta(seconds=3))  # the first backoff is 2 s
    bot.app.dispatcher.wake()
    await bot.server.wait_for(lambda: bot.server.stats[403] == 2)
    await eventually(lambda: _put_back(bot, SECRETARY))
    bot.clock.advance(timedelta(seconds=5))  # then 4 s
    bot.app.dispatcher.wake()
    assert (await user.next_message())["text"] == "một"
    assert (await user.next_message())["text"] == "hai"  # the queued one was not dropped
    async with bot.app.db.reader() as session:
        account = (
            await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == SECRETARY))
        ).one()
    assert account.reachable is True
    # The fake server has the message before the bot commits its row as sent: wait for that commit.
    await eventually(lambda: _all_sent(bot, SECRETARY, count=2))


async def _all_sent(bot: Bot, chat_ref: str, count: int) -> bool:
    statuses = [row.status for row in await rows_to(bot, "zalo", chat_ref)]
    return statuses == [OutboxStatus.sent] * count


async def test_429_quota_pauses_the_channel_longer_each_time_and_alerts_the_admins_once(
    bot: Bot,
) -> None:
    await link_admin_elsewhere(bot)
    user = bot.server.user("z7001")
    bot.server.quota = 0  # this month's messages are spent
    await user.send("/help")
    await bot.server.wait_for(lambda: bot.server.stats[429] == 1)
    await eventually(lambda: _has_alert(bot, "hạn mức"))
    await eventually(lambda: _put_back(bot, "z7001"))
    assert bot.server.delivered_count("z7001") == 0

    bot.clock.advance(timedelta(seconds=61))  # the first pause (60 s) is over: still spent
    bot.app.dispatcher.wake()
    await bot.server.wait_for(lambda: bot.server.stats[429] == 2)
    await eventually(lambda: _put_back(bot, "z7001"))
    bot.clock.advance(timedelta(seconds=61))  # the second pause is longer (120 s)
    assert await bot.app.dispatcher.run_once() == 0  # nothing tried: no retry each second
    assert bot.server.stats[429] == 2

    bot.server.renew_quota()
    bot.clock.advance(timedelta(seconds=60))
    bot.app.dispatcher.wake()
    assert "/start" in (await user.next_message())["text"]  # delivered once the quota is back
    assert len(await alerts(bot)) == 1  # told once, not at every 429

    async def recorded_sent_once() -> bool:  # the outcome is written after the delivery
        rows = await rows_to(bot, "zalo", "z7001")
        return [(row.status, row.attempts) for row in rows] == [(OutboxStatus.sent, 1)]

    await eventually(recorded_sent_once)


async def _has_alert(bot: Bot, words: str) -> bool:
    return any(words in text for text in await alerts(bot))


async def _put_back(bot: Bot, chat_ref: str) -> bool:
    """The failed attempt is over: the rows are put back (no lease) until their next try."""
    rows = await rows_to(bot, "zalo", chat_ref)
    return bool(rows) and all(row.lease_until is None for row in rows)


async def test_401_stops_the_channel_with_one_log_line_alerts_and_keeps_the_queue(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sotay")
    await link_admin_elsewhere(bot)
    user = bot.server.user("z7002")
    await user.send("/help")
    assert "/start" in (await user.next_message())["text"]
    bot.server.revoke_token()  # the token was reset in Bot Creator
    await user.send("/privacy")  # arrives through the poll already running; the reply is refused
    await bot.server.wait_for(lambda: bot.server.stats[401] >= 1)  # getUpdates or sendMessage
    await eventually(lambda: _has_alert(bot, "401"))

    async def polling_stopped() -> bool:
        return not bot.channel.polling

    await eventually(polling_stopped)
    await queue(bot, "z7002", "sau")
    await eventually(lambda: _all_waiting(bot, "z7002", 2))
    assert bot.server.delivered_count("z7002") == 1  # nothing more left
    stopped = [r.getMessage() for r in caplog.records if "zalo.stopped" in r.getMessage()]
    assert len(stopped) == 1 and "SOTAY_ZALO_TOKEN" in stopped[0]
    assert all(ZALO_TOKEN not in r.getMessage() for r in caplog.records)
    assert len(await alerts(bot)) == 1


async def _all_waiting(bot: Bot, chat_ref: str, count: int) -> bool:
    rows = [r for r in await rows_to(bot, "zalo", chat_ref) if r.status == OutboxStatus.pending]
    return len(rows) == count and all(row.lease_until is None for row in rows)


async def test_own_messages_coming_back_are_ignored(bot: Bot) -> None:
    bot.server.echo_own_messages = True
    user = bot.server.user("z7003")
    await user.send("/help")
    assert "/start" in (await user.next_message())["text"]
    await user.send("/privacy")  # queued after the echo of the help text
    assert "CCCD" in (await user.next_message())["text"]
    assert bot.server.delivered_count("z7003") == 2  # the echo got no answer
    async with bot.app.db.reader() as session:
        accounts = (
            await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == "bot1"))
        ).all()
    assert accounts == []


async def test_hidden_content_gets_the_numbered_menu_not_text_only(bot: Bot) -> None:
    secretary = bot.server.user(SECRETARY)
    await secretary.send_hidden()
    notice = (await secretary.next_message())["text"]
    assert "chưa xem được" in notice and "chỉ đọc được chữ" not in notice
    menu = (await secretary.next_message())["text"]
    assert "Đồng chí muốn làm gì?" in menu and "[1]" in menu
    stranger = bot.server.user("z7004")  # in the middle of registration: the step again
    await stranger.send("/start")
    await stranger.next_message()
    await stranger.send_hidden()
    assert "chưa xem được" in (await stranger.next_message())["text"]
    assert "[1] Tiếng Việt" in (await stranger.next_message())["text"]


@pytest.mark.engine_neutral  # the channel's parsing of an event
async def test_image_event_photo_field_is_read(bot: Bot) -> None:
    user = bot.server.user(SECRETARY)
    await user.send_photo("https://photo.example/p.jpg")  # no caption, as documented: photo
    answer = (await user.next_message())["text"]
    assert "Đã nhận ảnh" in answer and "chỉ đọc được chữ" not in answer


@pytest.mark.engine_neutral  # the channel's request shape
async def test_photo_without_text_is_sent_without_an_empty_caption(bot: Bot) -> None:
    user = bot.server.user(SECRETARY)
    async with bot.app.db.session() as session:
        bot.app.services.outbox.add(
            session,
            channel="zalo",
            chat_ref=SECRETARY,
            view=View("", photo_ref="https://example.org/chart.png"),
        )
    bot.app.dispatcher.wake()
    photo = await user.next_message()  # the fake refuses an empty caption with a 400
    assert photo["photo"] == "https://example.org/chart.png" and photo["text"] == ""
    assert bot.server.stats[400] == 0


def test_http_webhook_url_is_refused_at_start_up_in_one_sentence(tmp_path: Path) -> None:
    env = {
        "SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'z.db'}",
        "SOTAY_ZALO_TOKEN": "1:x",
        "SOTAY_ZALO_WEBHOOK_URL": "http://bot.example.vn/zalo",
        "SOTAY_ZALO_WEBHOOK_SECRET": "zalo-secret-0123",
    }
    result = sotay("run", env=env, cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SOTAY_ZALO_WEBHOOK_URL" in lines[0] and "https" in lines[0]
    assert "Traceback" not in result.stderr
