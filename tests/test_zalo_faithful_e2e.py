"""End to end over the fake Zalo Bot Platform (tests/fake_zalo.py, written from Zalo's
documentation): the channel follows Zalo's error table and event shapes.

- 403 is Zalo's internal server error: retried with backoff and delivered, nobody marked blocked;
- 429 is the plan's quota, with no retry_after: the channel pauses, longer each time, the admins
  are told once, and the waiting messages go out when the quota returns;
- 401 is a refused token: the channel stops (polling and sending) with one log line without the
  token, the admins are told, and nothing queued is lost;
- an http SOTAY_ZALO_WEBHOOK_URL is refused at start-up in one sentence;
- the bot's own messages coming back are ignored; a message whose content Zalo withholds gets
  the menu; an image event's ``photo`` is read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import col, select

from bot.clock import ShiftedClock
from bot.core import View
from bot.demo import seed_demo
from bot.phones import normalize_phone
from storage.models import ChannelAccount, Member, OutboxMessage, OutboxStatus
from tests.fake_zalo import FakeZalo
from tests.harness import ZALO_TOKEN, Bot, zalo_channel, zalo_settings

SECRETARY = "z9001"
ADMIN_PHONE = "0912000091"  # the province admin of the demo data (linked to Zalo user "admin")
ADMIN_ELSEWHERE = "admin-terminal"  # the same admin's account on another channel


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeZalo]:
    server = FakeZalo(token=ZALO_TOKEN)
    await server.start()
    yield server
    await server.stop()
    assert server.internal_errors == []


@pytest_asyncio.fixture
async def bot(fake: FakeZalo, database_url: str, clock: ShiftedClock) -> AsyncIterator[Bot]:
    settings = zalo_settings(database_url, fake.root)
    await seed_demo(settings, channel="zalo", refs={"bithu": SECRETARY})
    running = await Bot.launch(fake, settings, clock, zalo_channel)
    await link_admin_elsewhere(running)
    yield running
    await running.stop()


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
    statuses = [row.status for row in await rows_to(bot, "zalo", SECRETARY)]
    assert statuses == [OutboxStatus.sent, OutboxStatus.sent]


async def test_429_quota_pauses_the_channel_longer_each_time_and_alerts_the_admins_once(
    bot: Bot,
) -> None:
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
    rows = await rows_to(bot, "zalo", "z7001")
    assert [(row.status, row.attempts) for row in rows] == [(OutboxStatus.sent, 1)]


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


async def test_image_event_photo_field_is_read(bot: Bot) -> None:
    user = bot.server.user(SECRETARY)
    await user.send_photo("https://photo.example/p.jpg")  # no caption, as documented: photo
    answer = (await user.next_message())["text"]
    assert "Đã nhận ảnh" in answer and "chỉ đọc được chữ" not in answer


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
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOTAY_")} | {
        "SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'z.db'}",
        "SOTAY_ZALO_TOKEN": "1:x",
        "SOTAY_ZALO_WEBHOOK_URL": "http://bot.example.vn/zalo",
        "SOTAY_ZALO_WEBHOOK_SECRET": "zalo-secret-0123",
        "SOTAY_SECRET_KEY": "k",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SOTAY_ZALO_WEBHOOK_URL" in lines[0] and "https" in lines[0]
    assert "Traceback" not in result.stderr
