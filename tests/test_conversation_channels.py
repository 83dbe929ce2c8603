"""The forgiving conversation (issue 17) over real channel stacks: the same transcripts typed
to Telegram (buttons exist, the member types anyway) and to Zalo (numbered lines, no buttons),
through the fake servers over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.clock import ShiftedClock
from bot.demo import seed_demo
from tests.fake_telegram import FakeTelegram
from tests.fake_zalo import FakeZalo
from tests.harness import (
    TELEGRAM_TOKEN,
    ZALO_TOKEN,
    Bot,
    telegram_settings,
    zalo_channel,
    zalo_settings,
)

SECRETARY = "9001"
AN_PHONE = "+84912000001"


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture(params=["telegram", "zalo"])
async def bot(
    request: pytest.FixtureRequest, database_url: str, clock: ShiftedClock
) -> AsyncIterator[Bot]:
    if request.param == "telegram":
        server: Any = FakeTelegram(token=TELEGRAM_TOKEN, per_chat_rate=(20, 0.05))
        await server.start()
        settings = telegram_settings(database_url, server.root)
        await seed_demo(settings, channel="telegram", refs={"bithu": SECRETARY})
        running = await Bot.launch(server, settings, clock)
    else:
        server = FakeZalo(token=ZALO_TOKEN)
        await server.start()
        settings = zalo_settings(database_url, server.root)
        await seed_demo(settings, channel="zalo", refs={"bithu": SECRETARY})
        running = await Bot.launch(server, settings, clock, zalo_channel)
    yield running
    await running.stop()
    await server.stop()
    assert server.internal_errors == []


def person(bot: Bot, ref: str) -> Any:
    """A user of either fake server (Telegram ids are numbers, Zalo ids strings)."""
    if isinstance(bot.server, FakeTelegram):
        return bot.server.user(int(ref), language_code="vi")
    return bot.server.user(ref)


async def test_typed_labels_and_synonyms_register_and_approve(bot: Bot) -> None:
    member, secretary = person(bot, "1001"), person(bot, SECRETARY)
    await member.send("/start")
    await member.next_message()
    await member.send("tieng viet")
    await member.next_message()
    await member.send("dong y")
    await member.next_message()  # the phone prompt
    if isinstance(bot.server, FakeTelegram):
        await member.share_contact(phone=AN_PHONE)
        await member.next_message()  # thanks
        assert "Nguyễn Văn An" in (await member.next_message())["text"]
        await member.send("dung")  # it is me
    else:
        await member.send("0912 000 001")
        await member.next_message()  # your name?
        await member.send("nguyen van an")
    await member.next_message()  # smartphone?
    await member.send("co")
    await member.next_message()  # installed?
    await member.send("chua")
    texts = [(await member.next_message())["text"]]
    if isinstance(bot.server, FakeTelegram):  # registered at once: the menu, then help
        texts.append((await member.next_message())["text"])
        assert "Đăng ký xong" in texts[0]
        assert "loại nào" in texts[-1]
        await member.send("iphone")
        assert "App Store" in (await member.next_message())["text"]
    else:  # a typed number: the secretary approves by typing the label, outside any step
        request = await secretary.next_message()
        assert "Nguyễn Văn An" in request["text"]
        await secretary.send("duyet")
        assert "Đã duyệt" in (await secretary.next_message())["text"]


async def test_small_talk_is_answered_kindly(bot: Bot) -> None:
    member = person(bot, "1002")
    await member.send("cam on")
    reply = await member.next_message()
    assert "Không có gì" in reply["text"]
    await member.send("alo")
    assert "Xin chào" in (await member.next_message())["text"]


async def test_terminal_understands_the_same_typed_answers() -> None:
    import io

    from bot.channels.terminal import TerminalChannel
    from bot.core import Choice, View

    channel = TerminalChannel("an", out=io.StringIO())
    await channel.send(
        "an",
        View("Đồng chí đã cài Sổ tay chưa?", [[Choice("Đã cài", "Y")], [Choice("Chưa cài", "N")]]),
    )
    assert channel.inbound("chua").choice == "N"
    assert channel.inbound("roi").choice == "Y"
    assert channel.inbound("làm sao để cài").choice is None  # a question stays text
