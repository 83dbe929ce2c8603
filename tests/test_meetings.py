"""Meetings end to end through the router with a controllable clock: create → notice reaches
every member → replies → status → reminders at the right moments → change → cancel; and the bad
input the issue lists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from storage.models import (
    Attendance,
    ChannelAccount,
    DueJob,
    JobStatus,
    Meeting,
    MeetingReply,
    Member,
    OutboxMessage,
)
from tests.conftest import Chat, World

CAU_BAU = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu"
MEMBER_PHONES = ["+84912000001", "+84912000002", "+84912000004", "+84912000005"]


async def link_members(world: World) -> dict[str, Chat]:
    """Give four Cầu Bâu members a chat account (as if they had registered)."""
    chats = {}
    async with world.app.db.session() as session:
        for phone in MEMBER_PHONES:
            member = (await session.exec(select(Member).where(Member.phone == phone))).one()
            ref = f"m{phone[-2:]}"
            session.add(
                ChannelAccount(
                    channel="rec",
                    user_ref=ref,
                    chat_ref=ref,
                    member_id=member.id or 0,
                    language="vi",
                    verified=True,
                    created_at=world.clock.now(),
                )
            )
            chats[member.full_name or ""] = world.chat(ref)
    return chats


async def create_meeting(secretary: Chat, *, day: str = "20/12", at: str = "19:30") -> list:  # type: ignore[type-arg]
    views = await secretary.say("/meeting")
    if "Tạo cuộc họp mới" in str(views[-1].choices):
        await secretary.press("➕ Tạo cuộc họp mới")
    await secretary.press("Sinh hoạt định kỳ")
    await secretary.say(day)
    await secretary.say(at)
    await secretary.say("Nhà văn hóa thôn Cầu Bâu")
    await secretary.say("Sinh hoạt chi bộ tháng 12; triển khai Sổ tay đảng viên")
    await secretary.press("90 phút")
    assert "Xem lại thông báo" in secretary.last.text
    return await secretary.press("📤 Gửi cho 7 đảng viên")


async def all_rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where))).all())


async def test_full_meeting_lifecycle(world: World) -> None:
    members = await link_members(world)
    secretary = world.chat("bithu")
    views = await create_meeting(secretary)
    assert "đang gửi thông báo tới 5 đảng viên" in " ".join(v.text for v in views)
    an, binh = members["Nguyễn Văn An"], members["Trần Thị Bình"]
    for chat in members.values():
        notice = chat.new()[-1]
        assert "Sinh hoạt định kỳ" in notice.text and "19:30 Chủ nhật 20/12/2026" in notice.text
    [meeting] = await all_rows(world, Meeting)
    assert meeting.starts_at.hour == 12  # 19:30 in Hà Nội is 12:30 UTC

    await an.press("✓ Tham dự")
    assert "tham dự" in an.last.text
    await binh.press("✗ Vắng, có lý do")
    await binh.say("Đi khám bệnh ở huyện")
    assert "vắng" in binh.last.text

    views = await secretary.say("/meeting status")
    status = views[-1].text
    assert "Tham dự (1): Nguyễn Văn An" in status
    assert "Trần Thị Bình (Đi khám bệnh ở huyện)" in status
    assert "Chưa trả lời (5)" in status

    # reminders: 24 h and 2 h before, not to the member who declined
    world.clock.advance(meeting.starts_at - timedelta(hours=24) - world.clock.now())
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert "Nhắc lịch" in an.new()[-1].text
    assert not any("Nhắc lịch" in v.text for v in binh.new())

    # change the time: everyone told, reminders re-planned for the new time
    await secretary.press_data(world.app.services.signer.sign(f"a:mtc:{meeting.id}:ch"))
    await secretary.press("Đổi ngày giờ")
    await secretary.say("21/12")
    await secretary.say("19h")
    views = await secretary.press("📤 Gửi thay đổi (7 đảng viên)")
    assert "thời gian" in views[-1].text
    assert "Thay đổi: thời gian" in an.new()[-1].text
    jobs = await all_rows(
        world, DueJob, DueJob.kind == "mt_reminder", DueJob.status == JobStatus.pending
    )
    [moved] = await all_rows(world, Meeting)
    assert sorted(j.due_at for j in jobs) == [
        moved.starts_at - timedelta(hours=24),
        moved.starts_at - timedelta(hours=2),
    ]

    # cancel: members told; a late press on the old notice is refused politely
    await secretary.press_data(world.app.services.signer.sign(f"a:mtc:{meeting.id}:cx"))
    await secretary.press("Hủy cuộc họp")
    assert "đã hủy" in an.new()[-1].text
    views = await an.press("✓ Tham dự")
    assert "đã hủy" in views[-1].text
    world.clock.advance(timedelta(days=2))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert an.new() == []  # cancelled: no reminder reaches the member
    replanned = {j.id for j in jobs}
    after = await all_rows(world, DueJob, col(DueJob.id).in_(replanned))
    assert [j.status for j in after] == [JobStatus.cancelled, JobStatus.cancelled]


async def test_member_sees_meetings_and_changes_answer(world: World) -> None:
    members = await link_members(world)
    await create_meeting(world.chat("bithu"))
    an = members["Nguyễn Văn An"]
    an.new()
    await an.press("✗ Vắng, có lý do")
    await an.press("Ốm")
    views = await an.say("/meetings")
    assert "vắng (Ốm)" in views[-1].text
    await an.press("✓ Tham dự")
    [reply] = await all_rows(world, MeetingReply)
    assert reply.answer == "attend" and reply.reason is None


@pytest.mark.parametrize(
    ("typed", "message"),
    [("1/1/2020", "đã qua"), ("31/02", "Không có ngày này"), ("hôm nào đó", "Chưa đọc được ngày")],
)
async def test_bad_dates_reprompt(world: World, typed: str, message: str) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/meeting")
    await secretary.press("Sinh hoạt định kỳ")
    views = await secretary.say(typed)
    assert message in views[0].text
    assert "Ngày họp" in views[-1].text


async def test_ambiguous_time_is_confirmed(world: World) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/meeting")
    await secretary.press("Sinh hoạt định kỳ")
    await secretary.say("20/12")
    views = await secretary.say("7h")
    assert "buổi sáng hay buổi tối" in views[-1].text
    await secretary.press("19:00 tối")
    assert "Địa điểm" in secretary.last.text


async def test_agenda_over_limit_keeps_what_was_entered(world: World) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/meeting")
    await secretary.press("Sinh hoạt định kỳ")
    await secretary.say("20/12")
    await secretary.say("19:30")
    await secretary.say("Nhà văn hóa")
    views = await secretary.say("x" * 5000)
    assert "tối đa 1500" in views[0].text
    await secretary.say("Nội dung ngắn")
    await secretary.press("120 phút")
    assert "Nhà văn hóa" in secretary.last.text and "120 phút" in secretary.last.text


async def test_plain_member_cannot_create_meetings_or_notices(world: World) -> None:
    members = await link_members(world)
    an = members["Nguyễn Văn An"]
    for command in ("/meeting", "/notice"):
        views = await an.say(command)
        assert "không có quyền" in views[-1].text


async def test_other_cells_secretary_is_refused_with_forged_buttons(world: World) -> None:
    await create_meeting(world.chat("bithu"))
    [meeting] = await all_rows(world, Meeting)
    async with world.app.db.session() as session:  # make "other" secretary of Chi bộ thôn Đồng Bèn
        from storage import queries
        from storage.models import Role, RoleGrant

        cell = await queries.unit_by_path(
            session, path="Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Đồng Bèn"
        )
        member = (await session.exec(select(Member).where(Member.phone == "+84912000008"))).one()
        session.add(RoleGrant(member_id=member.id or 0, role=Role.secretary, unit_id=cell.id or 0))
        session.add(
            ChannelAccount(
                channel="rec",
                user_ref="other",
                chat_ref="other",
                member_id=member.id or 0,
                verified=True,
                created_at=world.clock.now(),
            )
        )
    other = world.chat("other")
    for verb in ("st", "cx", "ch", "rm", "at"):
        views = await other.press_data(world.app.services.signer.sign(f"a:mtc:{meeting.id}:{verb}"))
        assert "không có quyền" in views[-1].text
    views = await other.press_data(world.app.services.signer.sign(f"a:mt:{meeting.id}:y"))
    assert "không có quyền" in views[-1].text
    assert (await all_rows(world, Meeting))[0].status == "scheduled"


async def test_double_tap_on_confirm_makes_one_meeting(world: World) -> None:
    await link_members(world)
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    views = await secretary.press("📤 Gửi cho 7 đảng viên")
    assert "cũ" in views[0].text
    assert len(await all_rows(world, Meeting)) == 1
    notices = await all_rows(world, OutboxMessage, OutboxMessage.broadcast_id.is_not(None))  # type: ignore[union-attr]
    assert len(notices) == 5


async def test_meeting_edited_while_notice_is_still_queued(world: World) -> None:
    members = await link_members(world)
    slow = [members["Trần Thị Bình"], members["Hoàng Văn Em"]]
    world.recorder.held.update(chat.user for chat in slow)  # their notices cannot leave yet
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    [meeting] = await all_rows(world, Meeting)
    await secretary.press_data(world.app.services.signer.sign(f"a:mtc:{meeting.id}:ch"))
    await secretary.press("Đổi địa điểm")
    await secretary.say("Hội trường xã")
    await secretary.press("📤 Gửi thay đổi (7 đảng viên)")
    world.recorder.held.clear()
    world.clock.advance(timedelta(minutes=2))
    await world.app.dispatcher.run_once()
    for chat in slow:  # they get one notice, with the new place, and never the old one
        texts = [v.text for v in world.recorder.sent[chat.user]]
        assert len(texts) == 1 and "Hội trường xã" in texts[0] and "Thay đổi" not in texts[0]
    prompt = [v.text for v in world.recorder.sent[members["Nguyễn Văn An"].user]]
    assert "Nhà văn hóa" in prompt[0] and "Thay đổi: địa điểm" in prompt[-1]
    superseded = await all_rows(world, OutboxMessage, OutboxMessage.status == "superseded")
    assert len(superseded) == 2


async def test_missed_reminder_is_sent_late_or_skipped(world: World) -> None:
    members = await link_members(world)
    await create_meeting(world.chat("bithu"))
    [meeting] = await all_rows(world, Meeting)
    an = members["Nguyễn Văn An"]
    an.new()
    # the bot was down from before the 24 h reminder until 3 h before the meeting
    world.clock.advance(meeting.starts_at - timedelta(hours=3) - world.clock.now())
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert "gửi muộn" in an.new()[-1].text and "19:30" in an.last.text
    # and down again past the meeting: the 2 h reminder is skipped, not sent
    world.clock.advance(timedelta(hours=4))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert not any("Nhắc lịch" in v.text for v in an.new())
    [skipped] = await all_rows(
        world, DueJob, DueJob.kind == "mt_reminder", DueJob.status == JobStatus.skipped
    )
    assert "started" in (skipped.note or "")


async def test_documents_nudge_until_confirmed_and_held_in_quiet_hours(world: World) -> None:
    secretary = world.chat("bithu")
    await create_meeting(secretary, at="06:00")
    [meeting] = await all_rows(world, Meeting)
    secretary.new()
    world.clock.advance(
        meeting.starts_at - timedelta(days=3) - world.clock.now()
    )  # 06:00 local: quiet
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert not any("tài liệu" in v.text for v in secretary.new())
    world.clock.advance(timedelta(hours=1, minutes=1))  # 07:01 local
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert "đăng tài liệu" in secretary.new()[-1].text
    await secretary.press("📎 Đã đăng tài liệu lên Sổ tay")
    world.clock.advance(timedelta(days=2))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert not any("đăng tài liệu" in v.text for v in secretary.new())


async def test_attendance_and_three_unexcused_absences_warn_the_secretary(world: World) -> None:
    await link_members(world)
    secretary = world.chat("bithu")
    for day in ("5/12", "12/12", "19/12"):
        await create_meeting(secretary, day=day)
    meetings = await all_rows(world, Meeting)
    world.clock.advance(timedelta(days=30))
    for meeting in meetings:
        await secretary.press_data(world.app.services.signer.sign(f"a:mtc:{meeting.id}:at"))
        await secretary.press("✓ Lê Văn Cường")
        assert "✗ Lê Văn Cường" in [c.label for row in secretary.last.choices for c in row]
        await secretary.press("Xong ✓")
        await secretary.press("Không có lý do")
        views = await secretary.press("Có")
    assert "vắng không lý do 3 lần" in views[-1].text
    rows = await all_rows(world, Attendance, Attendance.present == False)  # noqa: E712
    assert len(rows) == 3 and not any(r.excused for r in rows)
    assert all(m.entered_in_app for m in await all_rows(world, Meeting))


async def test_monthly_nudge_for_cells_without_next_months_meeting(world: World) -> None:
    from bot.context import Ctx  # noqa: F401
    from bot.scheduler import ensure_recurring

    secretary = world.chat("bithu")
    await secretary.say("/help")
    secretary.new()
    async with world.app.db.session() as session:
        await ensure_recurring(session, world.app.settings, world.clock.now())
    [job] = await all_rows(world, DueJob, DueJob.kind == "monthly_nudge")
    assert job.due_at.day == 20 and job.due_at.hour == 2  # 09:00 in Hà Nội
    world.clock.advance(job.due_at - world.clock.now())
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert "chưa có lịch sinh hoạt định kỳ tháng 01/2027" in secretary.new()[-1].text
    pending = await all_rows(
        world, DueJob, DueJob.kind == "monthly_nudge", DueJob.status == JobStatus.pending
    )
    assert len(pending) == 1 and pending[0].due_at.month == 1


async def test_notice_with_progress_and_delivery_report(world: World) -> None:
    members = await link_members(world)
    world.recorder.blocked.add(members["Hoàng Văn Em"].user)
    staff = world.chat("canbo")
    await staff.say("/notice")
    await staff.press("✓ Chọn Xã Hợp Thành")
    await staff.press("Tất cả đảng viên")
    await staff.say("Tuần sau tập huấn cài đặt Sổ tay tại hội trường xã.")
    assert "sẽ gửi tới 14 người" in staff.last.text
    await staff.press("📤 Gửi cho 14 người")
    texts = [v.text for v in world.recorder.sent["canbo"]]
    assert any(t.startswith("Đang gửi: 0/6") for t in texts)
    assert any(t.startswith("Đang gửi: 5/6") for t in texts)  # the progress message, edited
    assert texts[-1].startswith("Báo cáo gửi: 5/6 đã nhận, 0 lỗi, 1 đã chặn trợ lý, 8 đảng viên")
    assert "tập huấn" in members["Nguyễn Văn An"].new()[-1].text


async def test_remind_button_reaches_only_those_who_have_not_answered(world: World) -> None:
    members = await link_members(world)
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    an = members["Nguyễn Văn An"]
    await an.press("✓ Tham dự")
    for chat in members.values():
        chat.new()
    await secretary.say("/meeting status")
    await secretary.press("🔔 Nhắc người chưa trả lời")
    assert "Đã nhắc" in secretary.last.text
    assert not an.new()
    assert "Xin đồng chí trả lời" in members["Trần Thị Bình"].new()[-1].text


async def test_overseeing_staff_get_a_copy_when_enabled(world: World) -> None:
    world.app.settings.meeting_copy_to_staff = True
    await create_meeting(world.chat("bithu"))
    copy = world.recorder.sent["canbo"][-1].text
    assert "Sinh hoạt định kỳ — Chi bộ thôn Cầu Bâu" in copy


async def test_notice_to_secretaries_only(world: World) -> None:
    await link_members(world)
    admin = world.chat("admin")
    await admin.say("/notice")
    await admin.press("✓ Chọn Tỉnh Tuyên Quang")
    await admin.press("Chỉ bí thư, phó bí thư chi bộ")
    await admin.say("Bí thư các chi bộ nhập lịch họp tháng 1 trước ngày 20.")
    assert "sẽ gửi tới 1 người" in admin.last.text  # only Vũ Thị Hoa holds a secretary role
    await admin.press("📤 Gửi cho 1 người")
    assert "nhập lịch họp tháng 1" in world.recorder.sent["bithu"][-1].text
    assert not any("nhập lịch họp" in v.text for v in world.recorder.sent.get("m01", []))


async def test_a_notices_report_lost_with_its_worker_is_written_at_a_heartbeat_once(
    world: World,
) -> None:
    """The worker that sends a notice's last messages writes the final report; killed in
    between, no later send would. Every worker's heartbeat sweeps for such notices."""
    await link_members(world)
    staff = world.chat("canbo")
    await staff.say("/notice")
    await staff.press("✓ Chọn Xã Hợp Thành")
    await staff.press("Tất cả đảng viên")
    await staff.say("Tuần sau tập huấn cài đặt Sổ tay tại hội trường xã.")
    world.app.dispatcher.on_progress = None  # the sending worker dies before reporting
    await staff.press("📤 Gửi cho 14 người")
    assert not any(v.text.startswith("Báo cáo gửi") for v in world.recorder.sent["canbo"])
    await world.app.reporter.sweep()  # another worker's heartbeat
    await world.app.reporter.sweep()  # and the next one: nothing more
    await world.app.dispatcher.run_once()
    finals = [v.text for v in world.recorder.sent["canbo"] if v.text.startswith("Báo cáo gửi")]
    assert finals == [
        "Báo cáo gửi: 6/6 đã nhận, 0 lỗi, 0 đã chặn trợ lý, 8 đảng viên không có tài khoản "
        "nhắn tin (cần báo trực tiếp)."
    ]
