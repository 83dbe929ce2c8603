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
from tests.harness import (
    Bot,
    serving,
    telegram_channel,
    telegram_server,
    telegram_settings,
    zalo_channel,
    zalo_server,
    zalo_settings,
)

SECRETARY = "9001"
STAFF = "9002"
AN_PHONE = "+84912000001"


PEOPLE = {"bithu": SECRETARY, "canbo": STAFF}


pytestmark = pytest.mark.e2e()  # two servers: the ``bot`` fixture runs one per parameter

CHANNELS = {
    "telegram": (telegram_server, telegram_settings, telegram_channel),
    "zalo": (zalo_server, zalo_settings, zalo_channel),
}


@pytest_asyncio.fixture(params=list(CHANNELS))
async def bot(
    request: pytest.FixtureRequest, database_url: str, clock: ShiftedClock
) -> AsyncIterator[Bot]:
    make_server, make_settings, make_channel = CHANNELS[request.param]
    async with serving(make_server(clock)) as server:
        settings = make_settings(database_url, server.root)
        await seed_demo(settings, channel=request.param, refs=PEOPLE)
        running = await Bot.launch(server, settings, clock, make_channel)
        yield running
        await running.stop()


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


# --- what was left of issue 17, typed on both channels --------------------------------------------


async def registered_an(bot: Bot, ref: str) -> Any:
    """Nguyễn Văn An, already registered on the bot's channel as ``ref``."""
    await link_an(bot.app.db, bot.channel.name, ref)
    return person(bot, ref)


async def link_an(db: Any, channel: str, ref: str) -> None:
    from storage import queries
    from storage.models import ChannelAccount

    now = ShiftedClock().now()
    async with db.session() as session:
        member = await queries.member_by_phone(session, phone=AN_PHONE)
        assert member is not None
        member.registered_at = now
        session.add(member)
        session.add(
            ChannelAccount(
                channel=channel,
                user_ref=ref,
                chat_ref=ref,
                member_id=member.id,
                language="vi",
                verified=True,
                created_at=now,
            )
        )


async def awake(bot: Bot, ref: str) -> Any:
    """A role holder who has written to the bot before (Telegram refuses a first message from a
    bot), their earlier messages read."""
    user = person(bot, ref)
    await user.send("/help")
    await user.next_message()
    user.drain()
    return user


async def until(user: Any, fragment: str) -> str:
    """The text of the first next message containing ``fragment`` (earlier ones skipped)."""
    seen = []
    for _ in range(12):
        text = (await user.next_message())["text"]
        if fragment in text:
            return str(text)
        seen.append(text)
    raise AssertionError(f"{fragment!r} never came: {seen}")


async def test_faq_answered_ticket_is_closed_by_a_typed_yes_and_rated_in_words(bot: Bot) -> None:
    from storage.models import TicketStatus

    an, staff = await registered_an(bot, "1101"), await awake(bot, STAFF)
    await an.send("/support")
    await until(an, "khó khăn về việc gì")
    await an.send("tai khoan kich hoat")
    await until(an, "kể ngắn gọn")
    await an.send("Khong nhan duoc ma OTP")
    await until(an, "Đã ghi nhận yêu cầu #1")
    await until(staff, "#1")  # the ticket card
    await staff.send("tra loi bang hoi dap")  # the card's choice, typed
    await until(staff, "Chọn mục hỏi đáp")
    await staff.send("1")
    await until(an, "Trả lời yêu cầu #1")
    await until(an, "đã giúp đồng chí giải quyết được khó khăn (yêu cầu #1) chưa?")
    await an.send("co")
    await until(an, "chấm điểm")
    assert (await bot.ticket()).status == TicketStatus.closed  # closed, never escalated
    await an.send("rat tot")
    ticket = await bot.ticket()
    await until(an, "góp ý")  # asked for a comment: the score was understood
    assert (await bot.ticket()).rating == 5 and ticket.escalations == 0


async def test_a_number_from_an_older_message_gets_the_current_choices(bot: Bot) -> None:
    an = await registered_an(bot, "1102")
    await an.send("/menu")  # nine choices
    await until(an, "")
    await an.send("khong nhan duoc ma OTP")  # the FAQ answer's few choices replace them
    await until(an, "gửi lại mã")
    await an.send("7")
    reply = await until(an, "Số 7 không có trong các lựa chọn đang chờ")
    assert "Tôi chưa hiểu" not in reply


async def test_secretary_sees_who_asked_for_help_on_a_list(bot: Bot) -> None:
    an, secretary = await registered_an(bot, "1103"), await awake(bot, SECRETARY)
    await an.send("/status")
    await until(an, "điện thoại")
    await an.send("co")  # a smartphone
    await until(an, "cài")
    await an.send("chua")  # not installed
    await until(an, "loại nào")
    await an.send("nho bi thu")
    await until(an, "đã báo bí thư")
    await until(secretary, "/needhelp")
    await secretary.send("/needhelp")
    listed = await until(secretary, "Đảng viên nhờ đồng chí giúp")
    assert "Nguyễn Văn An (Chi bộ thôn Cầu Bâu) — chưa cài được Sổ tay" in listed


# --- the same transcripts on the terminal channel (`sotay chat`), one script per person switch --


async def terminal_transcript(database_url: str, lines: list[str]) -> str:
    """Everything the terminal printed for ``lines`` typed by An (registered), with ``:user``
    switches to the demo's secretary (bithu) and staff (canbo), as `sotay chat` runs them."""
    import io

    from bot.terminal_chat import chat_loop
    from storage.db import Database
    from tests.harness import bot_settings

    settings = bot_settings(database_url)
    await seed_demo(settings)
    db = Database(database_url)
    try:
        await link_an(db, "terminal", "an")
    finally:
        await db.dispose()
    out = io.StringIO()
    await chat_loop(settings, "an", stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out)
    return out.getvalue()


async def test_terminal_faq_answered_ticket_closed_by_typing_and_rated_in_words(
    database_url: str,
) -> None:
    from sqlmodel import select

    from storage.db import Database
    from storage.models import Ticket, TicketStatus

    out = await terminal_transcript(
        database_url,
        ["/support", "tai khoan kich hoat", "Khong nhan duoc ma OTP", ":user canbo"]
        + ["tra loi bang hoi dap", "1", ":user an", "co", "rat tot", ":quit"],
    )
    assert "đã giúp đồng chí giải quyết được khó khăn (yêu cầu #1) chưa?" in out
    assert "chấm điểm" in out and "góp ý" in out and "Tôi chưa hiểu" not in out
    db = Database(database_url)
    try:
        async with db.reader() as session:
            ticket = (await session.exec(select(Ticket))).one()
    finally:
        await db.dispose()
    assert ticket.status == TicketStatus.closed and ticket.rating == 5


async def test_terminal_number_from_an_older_message_and_the_help_list(database_url: str) -> None:
    out = await terminal_transcript(
        database_url,
        ["/menu", "khong nhan duoc ma OTP", "7", "/status", "co", "chua", "nho bi thu"]
        + [":user bithu", "/needhelp", ":quit"],
    )
    assert "Số 7 không có trong các lựa chọn đang chờ" in out and "Tôi chưa hiểu" not in out
    assert "Nguyễn Văn An (Chi bộ thôn Cầu Bâu) — chưa cài được Sổ tay" in out
