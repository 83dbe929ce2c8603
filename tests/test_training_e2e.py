"""Training end to end over HTTP: on the fake Telegram server, from scheduling to the follow-up
answer changing the report; on the fake Zalo server, members answer the invitation by number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.clock import ShiftedClock
from bot.demo import seed_demo
from handlers.feedback import cli_export
from handlers.privacy import phone_forms
from storage.models import Member
from storage.training_models import TrainingSeat, TrainingSession
from tests import test_zalo_e2e as zalo
from tests.fake_telegram import FakeTelegram, button_texts
from tests.fake_zalo import FakeZalo, numbered_choices
from tests.harness import telegram_server
from tests.test_meetings_e2e import link_telegram_members, next_with
from tests.test_telegram_e2e import SECRETARY_ID, start_bot, telegram_settings
from tests.test_venues import add_meetings_to

pytestmark = pytest.mark.e2e(server=telegram_server)
STAFF_ID = 9002


async def test_training_over_telegram_from_scheduling_to_the_report(
    fake: FakeTelegram, database_url: str
) -> None:
    clock = ShiftedClock()
    settings = telegram_settings(database_url, fake.root)
    await seed_demo(
        settings, channel="telegram", refs={"bithu": str(SECRETARY_ID), "canbo": str(STAFF_ID)}
    )
    members = await link_telegram_members(settings, fake)
    app, channel = await start_bot(settings, clock)
    try:
        staff = fake.user(STAFF_ID, language_code="vi")
        await staff.send("/training")
        await staff.press(await staff.next_message(), "➕ Lên lịch buổi tập huấn")
        await staff.press(await staff.next_message(), "Xã Hợp Thành")
        await staff.next_message()
        day = (clock.now() + timedelta(days=7)).astimezone(settings.tz).date()
        await staff.send(day.strftime("%d/%m/%Y"))
        await staff.press(await staff.next_message(), "14:00")
        await staff.next_message()
        await staff.send("Hội trường UBND xã")
        await staff.press(await staff.next_message(), "Cài đặt và đăng nhập Sổ tay")
        await staff.next_message()
        await staff.send("30")
        preview = await staff.next_message()
        assert "Sẽ mời 14 người" in preview["text"]
        await staff.press(preview, button_texts(preview)[0])
        await next_with(staff, "Đã lên lịch")

        invites = [await user.next_message() for user in members]
        assert all("Hội trường UBND xã" in m["text"] for m in invites)
        await members[0].press(invites[0], "✓ Tôi tham gia")
        assert "đồng chí tham gia" in (await members[0].next_message())["text"]

        async with app.db.reader() as session:
            training = (await session.exec(select(TrainingSession))).one()
        clock.advance(training.starts_at + timedelta(minutes=121) - clock.now())
        await app.scheduler.tick()
        ask = await next_with(staff, "Xin ghi danh sách")
        await staff.press(ask, "📝 Ghi danh sách có mặt")
        listing = await staff.next_message()
        await staff.press(listing, "💾 Lưu")
        assert "1 người có mặt" in (await next_with(staff, "Đã lưu"))["text"]

        clock.advance(timedelta(days=1, minutes=1))
        await app.scheduler.tick()
        question = await next_with(members[0], "đã cài và đăng nhập Sổ tay")
        await members[0].press(question, "✓ Đã cài và đăng nhập")
        assert "Đã ghi nhận" in (await members[0].next_message())["text"]

        await staff.send("/training report")
        report = (await next_with(staff, "Kết quả tập huấn"))["text"]
        assert "Chi bộ thôn Cầu Bâu: 1 buổi, 1 người được tập huấn" in report
        assert "đã đăng nhập 0 → 1" in report
    finally:
        await channel.stop()
        await app.close()


async def test_zalo_members_answer_the_invitation_by_number(database_url: str) -> None:
    server = FakeZalo(token=zalo.TOKEN)
    await server.start()
    clock = ShiftedClock()
    settings = zalo.zalo_settings(database_url, server.root)
    await seed_demo(settings, channel="zalo", refs={"bithu": zalo.SECRETARY, "canbo": "zstaff"})
    members = await zalo.link_zalo_members(settings, server)
    app, channel = await zalo.start_bot(settings, clock)
    try:
        staff, secretary = server.user("zstaff"), server.user(zalo.SECRETARY)
        await staff.send("/training")
        await staff.choose(await staff.next_message(), "➕ Lên lịch buổi tập huấn")
        await staff.choose(await staff.next_message(), "Chi bộ thôn Cầu Bâu")
        await staff.next_message()
        day = (clock.now() + timedelta(days=7)).astimezone(settings.tz).date()
        await staff.send(day.strftime("%d/%m/%Y"))
        await staff.choose(await staff.next_message(), "14:00")
        await staff.next_message()
        await staff.send("Nhà văn hóa thôn Cầu Bâu")
        await staff.choose(await staff.next_message(), "Cài đặt và đăng nhập Sổ tay")
        await staff.next_message()
        await staff.send("10")
        preview = await staff.next_message()
        assert "Sẽ mời 7 người" in preview["text"]
        await staff.send("1")
        invites = [await user.next_message() for user in members]
        assert numbered_choices(invites[0]) == {"✓ Tôi tham gia": "1", "✗ Không tham gia": "2"}
        secretary_invite = await secretary.next_message()
        assert "👥 Đăng ký hộ đảng viên chi bộ" in numbered_choices(secretary_invite)
        await members[0].send("1")
        assert "đồng chí tham gia" in (await members[0].next_message())["text"]
        await members[1].send("2")
        assert "không tham gia" in (await members[1].next_message())["text"]
        async with app.db.reader() as session:
            stmt = select(TrainingSeat, Member).join(
                Member, col(Member.id) == TrainingSeat.member_id
            )
            answers = {m.full_name: s.answer for s, m in (await session.exec(stmt)).all()}
        assert answers[members[0].display_name] == "yes"
        assert answers[members[1].display_name] == "no"
    finally:
        await channel.stop()
        await app.close()
        await server.stop()


async def test_venue_survey_and_its_list_over_telegram(
    fake: FakeTelegram, database_url: str
) -> None:
    clock = ShiftedClock()
    settings = telegram_settings(database_url, fake.root)
    await seed_demo(
        settings, channel="telegram", refs={"bithu": str(SECRETARY_ID), "canbo": str(STAFF_ID)}
    )
    app, channel = await start_bot(settings, clock)
    try:
        await add_meetings_to(app.db, clock.now())
        staff = fake.user(STAFF_ID, language_code="vi")
        secretary = fake.user(SECRETARY_ID, language_code="vi")
        secretary.started = True  # the secretary has talked to the bot before
        await staff.send("/venues")
        listing = await staff.next_message()
        await staff.press(listing, "📨 Hỏi bí thư các chi bộ chưa trả lời")
        assert "Đã hỏi 1 chi bộ" in (await staff.next_message())["text"]
        question = await secretary.next_message()
        assert "Nhà văn hóa thôn Cầu Bâu" in question["text"]
        await secretary.press(question, "Không có sóng")
        assert "Cảm ơn" in (await secretary.next_message())["text"]
        await staff.send("/venues")
        listing = await staff.next_message()
        assert (
            "Chi bộ thôn Cầu Bâu — Nhà văn hóa thôn Cầu Bâu: Không có sóng, 7 đảng viên"
            in (listing["text"])
        )
        await staff.press(listing, "📄 Xuất CSV")
        export = await staff.next_message()
        assert export["filename"].endswith(".csv")
        text = export["content"].decode("utf-8-sig")
        assert "Chi bộ thôn Cầu Bâu" in text and "Không có sóng" in text
    finally:
        await channel.stop()
        await app.close()


async def test_software_feedback_over_telegram_and_its_export_names_nobody(
    fake: FakeTelegram, database_url: str
) -> None:
    clock = ShiftedClock()
    settings = telegram_settings(database_url, fake.root)
    await seed_demo(settings, channel="telegram", refs={"bithu": str(SECRETARY_ID)})
    members = await link_telegram_members(settings, fake)
    app, channel = await start_bot(settings, clock)
    try:
        member = members[0]
        await member.send("/feedback")
        await member.press(await member.next_message(), "🐞 Phần mềm bị lỗi")
        await member.next_message()
        await member.send(f"Không mở được tài liệu, nhờ {members[1].first_name} gọi 0912000002")
        await member.press(await member.next_message(), "Bỏ qua")
        assert "không kèm tên" in (await member.next_message())["text"]
        async with app.db.reader() as session:
            data, groups = await cli_export(session, since=None, xlsx=False, tz=settings.tz)
            roster = (await session.exec(select(Member))).all()
        text = data.decode("utf-8-sig")
        assert groups == 1 and "Không mở được tài liệu" in text
        values = [v for m in roster for v in (m.full_name, *phone_forms(m.phone)) if v]
        assert [v for v in values if v in text] == []
    finally:
        await channel.stop()
        await app.close()
