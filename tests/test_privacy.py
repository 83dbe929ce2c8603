"""Privacy: /forget forgets everything, /me shows everything, declining stores nothing, and
sent messages do not pile up beyond their retention."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import SQLModel, select, text

from bot.phones import display_phone
from bot.scheduler import ensure_recurring
from storage.models import Broadcast, OutboxMessage, OutboxStatus
from tests.conftest import Chat, World
from tests.test_meetings import create_meeting
from tests.test_support import OTP, report

AN_PHONE = "+84912000001"
USER = "tg-5550177"  # a messenger id that appears nowhere else
REASON = "Con gái ốm nặng phải đưa đi viện huyện"
TICKET = "OTP không về máy của tôi từ hôm thứ hai tuần trước"
QUESTION = "Làm sao đổi ảnh đại diện trong ứng dụng ngân hàng nông nghiệp?"


async def register_an(chat: Chat) -> None:
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    await chat.share(AN_PHONE)
    for answer in ("Đúng, là tôi", "Có", "Đã cài", "Đã đăng nhập"):
        await chat.press(answer)
    assert "Đăng ký xong" in chat.last.text


def readable(value: object) -> str:
    """A column's value as text; JSON documents decoded, so escaped letters are seen too."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), ensure_ascii=False)
        except ValueError:
            return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def dump(world: World) -> str:
    """Every column of every table, as one text."""
    lines = []
    async with world.app.db.reader() as session:
        for table in SQLModel.metadata.sorted_tables:
            result = await session.exec(text(f'SELECT * FROM "{table.name}"'))  # type: ignore[call-overload]
            for row in result.all():
                lines.append(f"{table.name}: " + " | ".join(map(readable, row)))
    return "\n".join(lines)


async def test_forget_leaves_no_identifying_value_in_any_table(world: World) -> None:
    an = world.chat(USER)
    await register_an(an)
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    await an.press("✗ Vắng, có lý do")
    await an.say(REASON)
    await an.say(QUESTION)  # an FAQ question kept for the gaps digest
    await report(an, TICKET, OTP)  # a support ticket: its card names An, with the phone
    canbo = world.chat("canbo")
    assert any("Nguyễn Văn An" in v.text for v in canbo.new())
    secretary.new()
    identifying = [
        "Nguyễn Văn An",
        AN_PHONE,
        "0912000001",
        display_phone(AN_PHONE),
        "DEMO001",
        USER,
        REASON,
        TICKET,
        QUESTION[:40],
    ]
    before = await dump(world)
    for value in ("Nguyễn Văn An", AN_PHONE, "DEMO001", USER, REASON, TICKET):
        assert value in before, value  # the dump does see them (in payloads too)
    assert before.count("Nguyễn Văn An") > 3

    await an.say("/forget")
    views = await an.press("Xóa thông tin")
    assert "Đã xóa" in views[-1].text
    assert "không thu hồi được" in views[-1].text  # the ticket card already on canbo's phone
    assert "Đã rút 1 yêu cầu" in views[-1].text
    assert any("rút lại" in v.text for v in canbo.new())  # staff told
    await world.app.dispatcher.run_once()
    after = await dump(world)
    leaks = [value for value in identifying if value in after]
    assert leaks == [], [line for line in after.splitlines() if any(v in line for v in leaks)]
    views = await an.say("/me")
    assert "chưa đăng ký" in views[-1].text


async def test_declining_consent_leaves_no_row_with_the_messenger_id(world: World) -> None:
    stranger = world.chat("tg-99887766")
    await stranger.say("/start")
    await stranger.press("Tiếng Việt")
    views = await stranger.press("Không đồng ý")
    assert "không lưu" in views[-1].text.lower()
    await world.app.dispatcher.run_once()
    assert "tg-99887766" not in await dump(world)


async def test_me_shows_everything_stored_and_offers_it_as_a_file(world: World) -> None:
    an = world.chat("an")
    await register_an(an)
    await create_meeting(world.chat("bithu"))
    await an.press("✗ Vắng, có lý do")
    await an.say(REASON)
    views = await an.say("/me")
    shown = views[-1].text
    for expected in ("Nguyễn Văn An", "0912 000 001", "Chi bộ thôn Cầu Bâu", REASON, "phiên bản"):
        assert expected in shown, expected
    assert "Ngôn ngữ: Tiếng Việt" in shown and "Vai trò: đảng viên" in shown
    views = await an.press("📄 Tải toàn bộ dữ liệu về máy (một tệp)")
    upload = views[-1].upload
    assert upload is not None and upload.name.endswith(".json")
    data = json.loads(upload.data)
    assert data["member"]["phone"] == AN_PHONE
    assert data["meeting_replies"][0]["reason"] == REASON
    assert data["consent"][0]["action"] == "given"


async def test_privacy_notice_lists_what_is_kept_why_and_how_long(world: World) -> None:
    views = await world.chat("anyone").say("/privacy")
    notice = views[-1].text
    for kind in ("Họ tên", "Câu trả lời", "lý do vắng", "Yêu cầu hỗ trợ", "Câu hỏi", "30 ngày"):
        assert kind in notice, kind


async def test_sent_messages_are_purged_after_retention_and_counts_kept(world: World) -> None:
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    async with world.app.db.reader() as session:
        sent = (await session.exec(select(OutboxMessage))).all()
        [broadcast] = (await session.exec(select(Broadcast))).all()
    assert sent and all(row.status != OutboxStatus.pending for row in sent)
    async with world.app.db.session() as session:
        await ensure_recurring(session, world.app.settings, world.clock.now())
    world.clock.advance(timedelta(days=29))
    await world.app.scheduler.tick()
    ids = {row.id for row in sent}
    async with world.app.db.reader() as session:
        assert ids <= {row.id for row in (await session.exec(select(OutboxMessage))).all()}
    world.clock.advance(timedelta(days=2))
    await world.app.scheduler.tick()
    async with world.app.db.reader() as session:
        left = {row.id for row in (await session.exec(select(OutboxMessage))).all()}
        kept = await session.get(Broadcast, broadcast.id)
    assert not ids & left  # everything older than 30 days is gone
    assert kept is not None and kept.delivery_counts
    assert kept.delivery_counts.get("sent", 0) == broadcast.total >= 1
