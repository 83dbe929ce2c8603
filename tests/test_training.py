"""Training sessions through the router on a controllable clock: scheduling → invitations to
those who need it and to secretaries → yes / no / on behalf → reminders → attendance → the
follow-up a day later → the report moves; and the refusals, bad input, capacity, cancellation and
privacy the issue asks for."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.callbacks import Callback
from bot.i18n import t
from handlers.training import child_path, needs_training
from handlers.training.common import (
    CardVerb,
    FollowUp,
    FollowupAnswer,
    InviteAnswer,
    NewTraining,
    SignUpOthers,
    TrainingAnswer,
    TrainingCard,
    TrainingReport,
)
from storage.models import ChannelAccount, DueJob, JobStatus, Member, Role, RoleGrant, Unit
from storage.training_models import TrainingSeat, TrainingSession, TrainingStatus
from tests.conftest import Chat, World
from tests.test_meetings import link_members
from tests.test_privacy import AN_PHONE, dump

HOP_THANH = "Tỉnh Tuyên Quang / Xã Hợp Thành"
KHANG_NHAT = "Tỉnh Tuyên Quang / Xã Kháng Nhật"
CAU_BAU = f"{HOP_THANH} / Chi bộ thôn Cầu Bâu"


async def schedule(
    staff: Chat, *, unit: str = "Xã Hợp Thành", capacity: str = "20", day: str = "10/12"
) -> str:
    """Staff schedule a training at 14:00 on ``day``; returns the preview text."""
    await staff.say("/training")
    await staff.press("➕ Lên lịch buổi tập huấn")
    await staff.press(unit)
    await staff.say(day)
    await staff.say("14:00")
    await staff.say("Hội trường UBND xã")
    await staff.press("Cài đặt và đăng nhập Sổ tay")
    await staff.say(capacity)
    preview = staff.last.text
    assert "Xem lại lời mời" in preview
    send = staff.last.choices[0][0].label
    await staff.press(send)
    return preview


async def the_session(world: World) -> TrainingSession:
    async with world.app.db.reader() as session:
        return (await session.exec(select(TrainingSession))).one()


async def seats(world: World) -> dict[str, TrainingSeat]:
    async with world.app.db.reader() as session:
        stmt = select(TrainingSeat, Member).join(Member, col(Member.id) == TrainingSeat.member_id)
        rows = (await session.exec(stmt)).all()
    return {m.full_name or "": s for s, m in rows}


async def link(world: World, code: str, ref: str, role: Role | None = None, unit: str = "") -> Chat:
    """A chat account for the roster member ``code`` (and a role on ``unit`` if given)."""
    async with world.app.db.session() as session:
        member = (await session.exec(select(Member).where(Member.member_code == code))).one()
        session.add(
            ChannelAccount(
                channel="rec", user_ref=ref, chat_ref=ref, member_id=member.id or 0, verified=True
            )
        )
        if role is not None:
            target = (await session.exec(select(Unit).where(Unit.path == unit))).one()
            session.add(RoleGrant(member_id=member.id or 0, role=role, unit_id=target.id or 0))
    return world.chat(ref)


def test_english_texts_agree_with_their_count() -> None:
    assert t("en", "tr.confirm.send", n=1) == "📤 Invite 1 person"
    assert t("en", "tr.confirm.send", n=3) == "📤 Invite 3 people"
    assert t("vi", "tr.confirm.send", n=3) == "📤 Gửi lời mời cho 3 người"


def test_who_needs_training_and_the_child_a_path_falls_in() -> None:
    assert needs_training(Member(app_installed=None))
    assert needs_training(Member(app_installed=True, app_activated=False))
    assert not needs_training(Member(app_installed=True, app_activated=True))
    assert child_path("A", "A / B / C") == "A / B"
    assert child_path("A", "A") == "A"
    assert child_path("A", "AB / C") == "A"  # a name that merely starts alike is not below


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("wire", "value"),
    [
        ("a:trn", NewTraining()),
        ("a:trc:5:card", TrainingCard(5, CardVerb.card)),
        ("a:trc:5:st", TrainingCard(5, CardVerb.status)),
        ("a:trc:5:at", TrainingCard(5, CardVerb.attendance)),
        ("a:trc:5:cx", TrainingCard(5, CardVerb.cancel)),
        ("a:trc:5:cy", TrainingCard(5, CardVerb.cancel_confirmed)),
        ("a:trr:3", TrainingReport(3)),
        ("a:tr:7:y", TrainingAnswer(7, InviteAnswer.yes)),
        ("a:tr:7:n", TrainingAnswer(7, InviteAnswer.no)),
        ("a:trs:7", SignUpOthers(7)),
        ("a:trf:7:ok", FollowUp(7, FollowupAnswer.ok)),
        ("a:trf:7:inst", FollowUp(7, FollowupAnswer.installed)),
        ("a:trf:7:none", FollowUp(7, FollowupAnswer.none)),
    ],
)
def test_buttons_already_in_chats_keep_their_wire_format(wire: str, value: Callback) -> None:
    """The data of buttons sent before the typed codecs reads as the same press, both ways."""
    assert value.encode() == wire
    assert type(value).decode(wire.split(":")[2:]) == value


async def test_a_signed_training_button_of_the_wrong_shape_is_a_stale_button(
    world: World,
) -> None:
    """Signed by us but of another shape: answered as an old button, and nothing changes."""
    await link_members(world)
    canbo, bithu = world.chat("canbo"), world.chat("bithu")
    await schedule(canbo)
    training = await the_session(world)
    sign = world.app.services.signer.sign
    for chat, data in (
        (canbo, "a:trn:1"),
        (canbo, f"a:trc:{training.id}:cz"),
        (canbo, f"a:trc:{training.id}"),
        (canbo, "a:trr:x"),
        (bithu, f"a:tr:{training.id}:maybe"),
        (bithu, "a:trs:"),
        (bithu, f"a:trf:{training.id}:yes"),
    ):
        views = await chat.press_data(sign(data))
        assert "Nút này đã cũ" in views[-1].text, data
    assert (await the_session(world)).status == TrainingStatus.scheduled
    assert not any(s.answer for s in (await seats(world)).values())
    views = await canbo.press_data(sign(TrainingCard(training.id or 0, CardVerb.status).encode()))
    assert "Tham gia (0/20)" in views[-1].text


async def test_training_from_scheduling_to_the_report(world: World) -> None:
    members = await link_members(world)  # four Cầu Bâu members with a chat
    an, binh = members["Nguyễn Văn An"], members["Trần Thị Bình"]
    async with world.app.db.session() as session:  # Bình has already installed and logged in
        row = (await session.exec(select(Member).where(Member.member_code == "DEMO002"))).one()
        row.app_installed = row.app_activated = True
    canbo, bithu = world.chat("canbo"), world.chat("bithu")

    preview = await schedule(canbo)
    # 13 of Hợp Thành's 14 members lack the handbook (not Bình); the secretary is among them
    assert "Sẽ mời 13 người" in preview and "13 đồng chí chưa cài" in preview
    assert "Đã lên lịch và gửi lời mời" in canbo.last.text
    invite = an.new()[-1]
    assert "Hội trường UBND xã" in invite.text and "Còn 20 chỗ" in invite.text
    assert binh.new() == []  # already uses the handbook: not invited
    assert [c.label for row in invite.choices for c in row] == [
        "✓ Tôi tham gia",
        "✗ Không tham gia",
    ]
    assert "👥 Đăng ký hộ đảng viên chi bộ" in str(bithu.new()[-1].choices)

    await an.press("✓ Tôi tham gia")
    assert "đồng chí tham gia" in an.last.text
    dung = members["Phạm Thị Dung"]
    await dung.press("✗ Không tham gia")
    assert "không tham gia" in dung.last.text

    # the secretary signs up Lê Văn Cường, who has no smartphone and no chat
    await bithu.press("👥 Đăng ký hộ đảng viên chi bộ")
    await bithu.press("▫ Lê Văn Cường")
    assert "✓ Lê Văn Cường" in str(bithu.last.choices)
    await bithu.press("✅ Xong")
    assert "Đã đăng ký 1 đồng chí" in bithu.last.text
    found = await seats(world)
    assert found["Lê Văn Cường"].answer == "yes" and found["Lê Văn Cường"].signed_up_by
    assert found["Nguyễn Văn An"].answer == "yes" and found["Phạm Thị Dung"].answer == "no"

    canbo.new()
    await canbo.press_data(
        world.app.services.signer.sign(f"a:trc:{found['Nguyễn Văn An'].session_id}:st")
    )
    status = canbo.last.text
    assert "Tham gia (2/20)" in status and "Lê Văn Cường" in status and "Phạm Thị Dung" in status

    training = await the_session(world)
    world.clock.advance(training.starts_at - timedelta(hours=2) - world.clock.now())
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert any("Nhắc lịch tập huấn" in v.text for v in an.new())
    assert not any("Nhắc lịch tập huấn" in v.text for v in dung.new())  # said no

    world.clock.advance(timedelta(hours=4))  # the session is over
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    after = canbo.new()
    assert any("Xin ghi danh sách người có mặt" in v.text for v in after)
    await canbo.press("📝 Ghi danh sách có mặt")
    assert "✓ Nguyễn Văn An" in str(canbo.last.choices)  # those who said yes are ticked
    await canbo.press("✓ Nguyễn Văn An")  # untick, then tick again: the toggle works both ways
    await canbo.press("✗ Nguyễn Văn An")
    await canbo.press("💾 Lưu")
    assert "2 người có mặt" in canbo.last.text

    await canbo.say("/training report")
    assert "đã cài 0 → 0" in canbo.last.text

    world.clock.advance(timedelta(days=1, minutes=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    asked = an.new()
    assert any("đã cài và đăng nhập Sổ tay" in v.text for v in asked)
    assert not any("đã cài và đăng nhập Sổ tay" in v.text for v in dung.new())  # did not come
    await an.press("✓ Đã cài và đăng nhập")
    assert "Đã ghi nhận" in an.last.text
    async with world.app.db.reader() as session:
        row = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
    assert row.app_installed is True and row.app_activated is True

    await canbo.say("/training report")
    report = canbo.last.text
    assert "Chi bộ thôn Cầu Bâu: 1 buổi, 2 người được tập huấn" in report
    assert "đã cài 0 → 1; đã đăng nhập 0 → 1 (1 người đã trả lời" in report
    views = await world.chat("admin").say("/training report")  # the province: by commune
    assert "Xã Hợp Thành: 1 buổi, 2 người được tập huấn" in views[-1].text


async def test_members_outside_the_unit_and_other_staff_are_refused(world: World) -> None:
    await link_members(world)
    await schedule(world.chat("canbo"))
    training = await the_session(world)
    sign = world.app.services.signer.sign
    outsider = await link(world, "DEMO019", "khuon-the")  # a cell of another commune
    views = await outsider.press_data(sign(f"a:tr:{training.id}:y"))
    assert "không có quyền" in views[-1].text
    other_staff = await link(world, "DEMO014", "kn-staff", Role.staff, KHANG_NHAT)
    for verb in ("st", "at", "cy"):
        views = await other_staff.press_data(sign(f"a:trc:{training.id}:{verb}"))
        assert "không có quyền" in views[-1].text
    views = await world.chat("bithu").press_data(sign(f"a:trc:{training.id}:cy"))
    assert "không có quyền" in views[-1].text  # a secretary is no trainer
    views = await outsider.press_data(sign(f"a:trs:{training.id}"))
    assert "không có quyền" in views[-1].text
    views = await outsider.press_data(sign(f"a:trf:{training.id}:ok"))
    assert "không có quyền" in views[-1].text  # did not come: no follow-up answer
    assert (await the_session(world)).status == TrainingStatus.scheduled
    views = await outsider.press_data("forged-data")
    assert "Nút này đã cũ" in views[-1].text


async def test_bad_input_is_explained_and_nothing_is_lost(world: World) -> None:
    canbo = world.chat("canbo")
    await canbo.say("/training")
    await canbo.press("➕ Lên lịch buổi tập huấn")
    await canbo.press("Xã Hợp Thành")
    views = await canbo.say("31/02")
    assert "Không có ngày này" in views[0].text and "Ngày tập huấn" in views[-1].text
    views = await canbo.say("hôm nào đó")
    assert "Chưa đọc được ngày" in views[0].text
    await canbo.say("10/12")
    views = await canbo.say("25:99")
    assert "Chưa đọc được giờ" in views[0].text
    views = await canbo.say("8h")  # morning or evening?
    assert "20:00 tối" in str(views[-1].choices)
    await canbo.press("08:00 sáng")
    await canbo.say("Hội trường UBND xã")
    views = await canbo.say("x" * 1200)
    assert "tối đa 1000" in views[0].text
    await canbo.press("Cài đặt và đăng nhập Sổ tay")
    views = await canbo.say("nhiều")
    assert "từ 1 đến 500" in views[0].text
    views = await canbo.say("0")
    assert "từ 1 đến 500" in views[0].text
    views = await canbo.say("25")
    assert "Hội trường UBND xã" in views[-1].text and "Còn 25 chỗ" in views[-1].text
    assert "08:00" in views[-1].text


async def test_a_past_day_this_year_is_asked_about_as_for_a_meeting(world: World) -> None:
    """The same date step as /meeting: "30/11" on 1 December asks about next year, never guesses."""
    canbo = world.chat("canbo")
    await canbo.say("/training")
    await canbo.press("➕ Lên lịch buổi tập huấn")
    await canbo.press("Xã Hợp Thành")
    views = await canbo.say("30/11")
    assert "đã qua" in views[-1].text and "2027" in views[-1].text
    views = await canbo.say("nhap lai")
    assert "Ngày tập huấn" in views[-1].text
    views = await canbo.say("30/11")
    views = await canbo.press("Đúng, năm 2027")
    assert "Mấy giờ bắt đầu" in views[-1].text


async def test_capacity_is_kept_and_a_cancelled_training_tells_the_invited(world: World) -> None:
    members = await link_members(world)
    an, binh = members["Nguyễn Văn An"], members["Trần Thị Bình"]
    canbo = world.chat("canbo")
    await schedule(canbo, capacity="1")
    await an.press("✓ Tôi tham gia")
    await binh.press("✓ Tôi tham gia")
    assert "đủ chỗ" in binh.last.text
    await an.press("✓ Tôi tham gia")  # answering yes again keeps the place
    assert "đồng chí tham gia" in an.last.text
    found = await seats(world)
    assert found["Nguyễn Văn An"].answer == "yes" and found["Trần Thị Bình"].answer is None

    training = await the_session(world)
    await canbo.press_data(world.app.services.signer.sign(f"a:trc:{training.id}:cx"))
    await canbo.press("❌ Hủy và báo mọi người")
    assert "Đã hủy và báo" in canbo.last.text
    assert "đã hủy" in an.new()[-1].text
    async with world.app.db.reader() as session:
        jobs = (await session.exec(select(DueJob).where(DueJob.ref_id == training.id))).all()
    assert jobs and all(j.status == JobStatus.cancelled for j in jobs if j.kind.startswith("tr_"))
    await an.press("✓ Tôi tham gia")
    assert "đã hủy" in an.last.text


async def test_members_see_open_trainings_and_attendance_waits_for_the_start(world: World) -> None:
    members = await link_members(world)
    canbo = world.chat("canbo")
    views = await members["Nguyễn Văn An"].say("/training")
    assert "chưa có buổi tập huấn" in views[-1].text
    await schedule(canbo)
    views = await members["Nguyễn Văn An"].say("/training")
    assert "Hội trường UBND xã" in views[-1].text and "✓ Tôi tham gia" in str(views[-1].choices)
    training = await the_session(world)
    views = await canbo.press_data(world.app.services.signer.sign(f"a:trc:{training.id}:at"))
    assert "chưa bắt đầu" in views[-1].text


async def register_installed_not_logged_in(chat: Chat) -> None:
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    await chat.share(AN_PHONE)
    for answer in ("Đúng, là tôi", "Có", "Đã cài", "Chưa đăng nhập"):
        await chat.press(answer)
    assert any("Đăng ký xong" in view.text for view in chat.recorder.sent[chat.user])


async def test_me_lists_trainings_and_forget_leaves_no_identity(world: World) -> None:
    an = world.chat("tg-5550177")
    await register_installed_not_logged_in(an)  # so An is invited
    canbo, bithu = world.chat("canbo"), world.chat("bithu")
    await schedule(canbo)
    await an.press("✓ Tôi tham gia")
    await an.say("/me")
    views = await an.press("📄 Tải toàn bộ dữ liệu về máy (một tệp)")
    data = json.loads(views[-1].upload.data)  # type: ignore[union-attr]
    assert data["trainings"][0]["answer"] == "yes"
    await bithu.press("👥 Đăng ký hộ đảng viên chi bộ")
    await bithu.press("▫ Lê Văn Cường")
    await bithu.press("✅ Xong")

    await an.say("/forget")
    await an.press("Xóa thông tin")
    await bithu.say("/forget")
    await bithu.press("Xóa thông tin")
    await canbo.say("/forget")
    await canbo.press("Xóa thông tin")
    after = await dump(world)
    for value in ("Nguyễn Văn An", "Vũ Thị Hoa", "Phan Văn Thắng", "tg-5550177", "0912000001"):
        assert value not in after, value
    async with world.app.db.reader() as session:
        kept = (await session.exec(select(TrainingSeat))).all()
        training = (await session.exec(select(TrainingSession))).one()
    assert any(s.answer == "yes" for s in kept)  # the counts stay, anonymous
    assert all(s.signed_up_by is None for s in kept) and training.created_by is None


async def test_a_vendor_trainer_with_the_trainer_role_schedules_in_their_unit_only(
    world: World,
) -> None:
    trainer = await link(world, "DEMO019", "viettel", Role.trainer, HOP_THANH)
    preview = await schedule(trainer)
    assert "Sẽ mời 14 người" in preview
    training = await the_session(world)
    views = await trainer.press_data(world.app.services.signer.sign(f"a:trc:{training.id}:st"))
    assert "Tham gia (0/20)" in views[-1].text
    elsewhere = await link(world, "DEMO020", "viettel-2", Role.trainer, KHANG_NHAT)
    views = await elsewhere.press_data(world.app.services.signer.sign(f"a:trc:{training.id}:st"))
    assert "không có quyền" in views[-1].text
    views = await elsewhere.press_data(world.app.services.signer.sign(f"a:trr:{training.unit_id}"))
    assert "không có quyền" in views[-1].text


async def test_two_members_answering_at_once_cannot_both_take_the_last_place(
    world: World,
) -> None:
    members = await link_members(world)
    await schedule(world.chat("canbo"), capacity="1")
    training = await the_session(world)
    data = world.app.services.signer.sign(f"a:tr:{training.id}:y")
    chats = [members["Nguyễn Văn An"], members["Trần Thị Bình"], members["Phạm Thị Dung"]]
    events = [chat._event(choice=data) for chat in chats]
    await asyncio.gather(*(world.app.router.handle(event) for event in events))
    async with world.app.db.reader() as session:
        stmt = select(TrainingSeat).where(TrainingSeat.answer == "yes")
        assert len((await session.exec(stmt)).all()) == 1


async def test_when_the_creator_left_the_staff_above_are_asked_to_record_attendance(
    world: World,
) -> None:
    canbo = world.chat("canbo")
    await schedule(canbo, unit="Chi bộ thôn Cầu Bâu")
    training = await the_session(world)
    async with world.app.db.session() as session:  # the creator is no longer staff
        for grant in (await session.exec(select(RoleGrant))).all():
            if grant.role == Role.staff:
                await session.delete(grant)
    world.clock.advance(training.starts_at + timedelta(minutes=121) - world.clock.now())
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    admin = world.chat("admin")
    assert any("Xin ghi danh sách người có mặt" in v.text for v in admin.new())
    assert not any("Xin ghi danh sách" in v.text for v in canbo.new())
