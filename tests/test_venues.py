"""Internet at meeting venues through the router: the usual place comes from the meetings, the
secretary answers one question, staff see the weak/none list by commune with member counts and
export it; refusals; privacy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from bot.callbacks import Callback
from handlers.venues import Internet, StaffVerb, VenueAnswer, VenueStaff, usual_places
from storage.db import Database
from storage.models import Meeting, MeetingKind, MeetingStatus, Role, Unit
from storage.training_models import VenueSurvey
from tests.conftest import World
from tests.test_training import HOP_THANH, KHANG_NHAT, link

CAU_BAU = f"{HOP_THANH} / Chi bộ thôn Cầu Bâu"
DONG_BEN = f"{HOP_THANH} / Chi bộ thôn Đồng Bèn"
KHUON_THE = f"{KHANG_NHAT} / Chi bộ thôn Khuôn Thê"
NVH = "Nhà văn hóa thôn Cầu Bâu"


async def add_meetings(world: World) -> None:
    await add_meetings_to(world.app.db, world.clock.now())


async def add_meetings_to(db: Database, now: datetime) -> None:
    """Past meetings: Cầu Bâu twice at its cultural house and once elsewhere; Đồng Bèn and
    Khuôn Thê once each; cancelled ones that must not count."""
    plan = [
        (CAU_BAU, NVH, 40, MeetingStatus.scheduled),
        (CAU_BAU, "Trụ sở UBND xã", 10, MeetingStatus.scheduled),
        (CAU_BAU, NVH, 70, MeetingStatus.scheduled),
        (CAU_BAU, "Nhà bí thư", 5, MeetingStatus.cancelled),
        (CAU_BAU, "Nhà bí thư", 6, MeetingStatus.cancelled),
        (CAU_BAU, "Nhà bí thư", 7, MeetingStatus.cancelled),
        (DONG_BEN, "Nhà văn hóa thôn Đồng Bèn", 20, MeetingStatus.scheduled),
        (KHUON_THE, "Nhà văn hóa thôn Khuôn Thê", 20, MeetingStatus.scheduled),
    ]
    async with db.session() as session:
        for path, place, days, status in plan:
            cell = (await session.exec(select(Unit).where(Unit.path == path))).one()
            starts = now - timedelta(days=days)
            session.add(
                Meeting(
                    cell_id=cell.id or 0,
                    kind=MeetingKind.regular,
                    status=status,
                    starts_at=starts,
                    place=place,
                    agenda="Sinh hoạt định kỳ",
                    created_at=starts,
                    updated_at=starts,
                )
            )


async def test_usual_place_is_the_most_frequent_among_meetings_held(world: World) -> None:
    await add_meetings(world)
    async with world.app.db.reader() as session:
        hop_thanh = (await session.exec(select(Unit).where(Unit.path == HOP_THANH))).one()
        cau_bau = (await session.exec(select(Unit).where(Unit.path == CAU_BAU))).one()
        places = await usual_places(session, hop_thanh)
    assert places[cau_bau.id or 0] == NVH  # the cancelled ones do not count
    assert len(places) == 2  # Khuôn Thê is in another commune


async def test_survey_from_the_question_to_the_list_and_its_export(world: World) -> None:
    await add_meetings(world)
    canbo, bithu = world.chat("canbo"), world.chat("bithu")
    views = await canbo.say("/venues")
    assert "2 chi bộ đã biết nơi sinh hoạt; đã hỏi 0" in views[-1].text
    views = await canbo.press("📨 Hỏi bí thư các chi bộ chưa trả lời")
    assert "Đã hỏi 1 chi bộ. 1 chi bộ chưa có bí thư" in views[-1].text  # Đồng Bèn has none
    question = bithu.new()[-1]
    assert NVH in question.text
    labels = [c.label for row in question.choices for c in row]
    assert labels == ["📶 Có Wi-Fi", "📱 Sóng điện thoại tốt", "Sóng yếu", "Không có sóng"]
    views = await canbo.press("📨 Hỏi bí thư các chi bộ chưa trả lời")
    assert "Đã hỏi 0 chi bộ" in views[-1].text and bithu.new() == []  # not asked twice at once

    await bithu.press("Sóng yếu")
    assert "đưa internet về nơi sinh hoạt" in bithu.last.text
    views = await canbo.say("/venues")
    listing = views[-1].text
    assert "Cần hỗ trợ internet (1 chi bộ)" in listing
    assert f"Xã Hợp Thành:\n • Chi bộ thôn Cầu Bâu — {NVH}: Sóng yếu, 7 đảng viên" in listing
    views = await canbo.press("📄 Xuất CSV")
    upload = views[-1].upload
    assert upload is not None and upload.name.endswith(".csv")
    rows = upload.data.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("Đơn vị,Chi bộ,Nơi sinh hoạt,Internet")
    assert any("Chi bộ thôn Cầu Bâu" in r and "Sóng yếu" in r and ",7," in r for r in rows)
    assert any("Chi bộ thôn Đồng Bèn" in r and "chưa trả lời" in r for r in rows)

    await bithu.press("📶 Có Wi-Fi")  # the secretary may correct the answer
    views = await canbo.say("/venues")
    assert "Chưa có chi bộ nào báo sóng yếu" in views[-1].text

    views = await world.chat("admin").say("/venues")
    assert "3 chi bộ đã biết nơi sinh hoạt" in views[-1].text  # the province sees both communes


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("wire", "value"),
    [
        ("a:vn:4:wifi", VenueAnswer(4, Internet.wifi)),
        ("a:vn:4:good", VenueAnswer(4, Internet.good)),
        ("a:vn:4:weak", VenueAnswer(4, Internet.weak)),
        ("a:vn:4:none", VenueAnswer(4, Internet.none)),
        ("a:vnq:2:ask", VenueStaff(2, StaffVerb.ask)),
        ("a:vnq:2:csv", VenueStaff(2, StaffVerb.csv)),
    ],
)
def test_buttons_already_in_chats_keep_their_wire_format(wire: str, value: Callback) -> None:
    """The data of buttons sent before the typed codecs reads as the same press, both ways."""
    assert value.encode() == wire
    assert type(value).decode(wire.split(":")[2:]) == value


async def test_a_signed_venue_button_of_the_wrong_shape_is_a_stale_button(world: World) -> None:
    """Signed by us but of another shape: answered as an old button; the survey stays open."""
    await add_meetings(world)
    canbo, bithu = world.chat("canbo"), world.chat("bithu")
    await canbo.say("/venues")
    await canbo.press("📨 Hỏi bí thư các chi bộ chưa trả lời")
    async with world.app.db.reader() as session:
        survey = (await session.exec(select(VenueSurvey))).one()
        hop_thanh = (await session.exec(select(Unit).where(Unit.path == HOP_THANH))).one()
    sign = world.app.services.signer.sign
    for chat, data in (
        (bithu, f"a:vn:{survey.id}:maybe"),
        (bithu, f"a:vn:{survey.id}"),
        (bithu, "a:vn:x:none"),
        (canbo, f"a:vnq:{hop_thanh.id}:pdf"),
        (canbo, f"a:vnq:{hop_thanh.id}"),
    ):
        views = await chat.press_data(sign(data))
        assert "Nút này đã cũ" in views[-1].text, data
    async with world.app.db.reader() as session:
        assert (await session.get(VenueSurvey, survey.id)).answer is None  # type: ignore[union-attr]
    views = await bithu.press_data(sign(VenueAnswer(survey.id or 0, Internet.weak).encode()))
    assert "Nút này đã cũ" not in views[-1].text


async def test_only_the_cells_secretary_answers_and_only_staff_above_see(world: World) -> None:
    await add_meetings(world)
    canbo = world.chat("canbo")
    await canbo.say("/venues")
    await canbo.press("📨 Hỏi bí thư các chi bộ chưa trả lời")
    async with world.app.db.reader() as session:
        survey = (await session.exec(select(VenueSurvey))).one()
        hop_thanh = (await session.exec(select(Unit).where(Unit.path == HOP_THANH))).one()
    sign = world.app.services.signer.sign
    other_secretary = await link(world, "DEMO019", "kt-bithu", Role.secretary, KHUON_THE)
    views = await other_secretary.press_data(sign(f"a:vn:{survey.id}:none"))
    assert "không có quyền" in views[-1].text
    member = await link(world, "DEMO001", "an")
    views = await member.press_data(sign(f"a:vn:{survey.id}:none"))
    assert "không có quyền" in views[-1].text
    views = await world.chat("bithu").say("/venues")
    assert "không có quyền" in views[-1].text
    other_staff = await link(world, "DEMO014", "kn-staff", Role.staff, KHANG_NHAT)
    for verb in ("ask", "csv"):
        views = await other_staff.press_data(sign(f"a:vnq:{hop_thanh.id}:{verb}"))
        assert "không có quyền" in views[-1].text
    async with world.app.db.reader() as session:
        assert (await session.get(VenueSurvey, survey.id)).answer is None  # type: ignore[union-attr]


async def test_forget_keeps_the_answer_and_drops_who_gave_it(world: World) -> None:
    await add_meetings(world)
    canbo, bithu = world.chat("canbo"), world.chat("bithu")
    await canbo.say("/venues")
    await canbo.press("📨 Hỏi bí thư các chi bộ chưa trả lời")
    await bithu.press("Không có sóng")
    await bithu.say("/me")
    views = await bithu.press("📄 Tải toàn bộ dữ liệu về máy (một tệp)")
    data = json.loads(views[-1].upload.data)  # type: ignore[union-attr]
    assert data["venue_answers"] == [{"cell": CAU_BAU, "place": NVH, "answer": "none"}]
    await bithu.say("/forget")
    await bithu.press("Xóa thông tin")
    async with world.app.db.reader() as session:
        survey = (await session.exec(select(VenueSurvey))).one()
    assert survey.answer == "none" and survey.answered_by is None
