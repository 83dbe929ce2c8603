"""Feedback for the software vendor: members say the kind first (help → support; a problem or a
suggestion → feedback), staff mark a ticket or an FAQ gap, and `sotay feedback export` (CSV and
XLSX) carries no name or phone of anyone in the roster."""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from sqlmodel import select

from bot.callbacks import BadCallback
from bot.i18n import t
from handlers.feedback import (
    Category,
    FeedbackButton,
    FeedbackVerb,
    export_groups,
    mask,
    split_device,
)
from handlers.privacy import phone_forms
from storage.models import Member, Role, Ticket
from storage.training_models import SoftwareFeedback
from tests.conftest import Chat, World
from tests.test_cli import sotay
from tests.test_meetings import link_members
from tests.test_support import OTP, report
from tests.test_training import KHANG_NHAT, link

BUG = "Ứng dụng bị treo khi mở tài liệu nghị quyết, tôi là Nguyễn Văn An, gọi 0912 000 001"
QUESTION = "Làm sao đổi ảnh đại diện trong ứng dụng ngân hàng nông nghiệp?"


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("wire", "value"),
    [
        ("a:fb:new:bug", FeedbackButton(FeedbackVerb.new, Category.bug)),
        ("a:fb:new:suggestion", FeedbackButton(FeedbackVerb.new, Category.suggestion)),
        ("a:fb:new:hard", FeedbackButton(FeedbackVerb.new, Category.hard)),
        ("a:fb:tk", FeedbackButton(FeedbackVerb.ticket)),
        ("a:fb:gap", FeedbackButton(FeedbackVerb.gap)),
    ],
)
def test_buttons_already_in_chats_keep_their_wire_format(wire: str, value: FeedbackButton) -> None:
    """The data of buttons sent before the typed codec reads as the same press, both ways."""
    assert value.encode() == wire
    assert FeedbackButton.decode(wire.split(":")[2:]) == value


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    "args",
    [[], ["new"], ["new", "zz"], ["new", "bug", "x"], ["tk", "bug"], ["gap", ""], ["xx"], [""]],
)
def test_feedback_data_of_the_wrong_shape_is_refused(args: list[str]) -> None:
    with pytest.raises(BadCallback):
        FeedbackButton.decode(args)


@pytest.mark.engine_neutral
def test_a_category_goes_with_new_only() -> None:
    with pytest.raises(ValueError):
        FeedbackButton(FeedbackVerb.new)
    with pytest.raises(ValueError):
        FeedbackButton(FeedbackVerb.ticket, Category.bug)


async def test_a_signed_feedback_button_of_the_wrong_shape_is_a_stale_button(world: World) -> None:
    an = (await link_members(world))["Nguyễn Văn An"]
    sign = world.app.services.signer.sign
    for data in ("a:fb:new:zz", "a:fb:new", "a:fb", "a:fb:tk:bug"):
        views = await an.press_data(sign(data))
        assert "Nút này đã cũ" in views[-1].text, data
    views = await an.press_data(sign(FeedbackButton(FeedbackVerb.new, Category.bug).encode()))
    assert views[-1].text == t("vi", "fb.ask.text.bug")


def test_masking_and_the_device_line() -> None:
    masked = mask(
        "Gọi 0912 000 001 hoặc +84912000001, an@mail.vn — Nguyễn Văn An", ["nguyễn văn an"]
    )
    assert "0912" not in masked and "84912" not in masked and "@" not in masked
    assert "Nguyễn" not in masked and masked.count("[…]") == 4
    assert mask("nhờ NGUYEN VAN AN giúp", ["Nguyễn Văn An"]) == "nhờ […] giúp"  # any spelling
    assert mask("Văn hóa thôn", ["Nguyễn Văn An"]) == "Văn hóa thôn"
    assert split_device("Samsung A10, Sổ tay 2.1.0") == ("2.1.0", "Samsung A10, Sổ tay")
    assert split_device("Oppo") == (None, "Oppo")


async def give_bug(chat: Chat, *, device: str | None) -> None:
    await chat.say("/feedback")
    await chat.press("🐞 Phần mềm bị lỗi")
    views = await chat.say("treo")
    assert "ít nhất 10 ký tự" in views[0].text  # too short: said, and asked again
    await chat.say(BUG)
    if device is None:
        await chat.press("Bỏ qua")
    else:
        await chat.say(device)
    assert "không kèm tên hay số điện thoại" in chat.last.text


async def test_members_feedback_is_stored_masked_and_grouped(world: World) -> None:
    members = await link_members(world)
    an, binh = members["Nguyễn Văn An"], members["Trần Thị Bình"]
    await give_bug(an, device="Samsung A10, 2.1.0")
    await give_bug(binh, device=None)
    async with world.app.db.reader() as session:
        rows = (await session.exec(select(SoftwareFeedback))).all()
        groups = await export_groups(session)
    assert len(rows) == 2 and all("0912" not in r.text for r in rows)
    assert all("Nguyễn Văn An" not in r.text for r in rows)  # Bình named An: masked too
    assert rows[0].app_version == "2.1.0"
    [group] = groups
    assert group.count == 2 and group.category == "bug" and group.versions == {"2.1.0"}
    assert group.phones == {"Samsung A10"}


async def test_i_need_help_goes_to_support(world: World) -> None:
    members = await link_members(world)
    an = members["Nguyễn Văn An"]
    await an.say("/feedback")
    views = await an.press("🆘 Tôi cần giúp đỡ")
    assert "gặp khó khăn về việc gì" in views[-1].text
    assert "Tài khoản, kích hoạt, mã OTP" in str(views[-1].choices)


async def test_staff_mark_a_ticket_and_an_faq_gap(world: World) -> None:
    members = await link_members(world)
    an = members["Nguyễn Văn An"]
    for chat in (an, members["Trần Thị Bình"]):  # the FAQ cannot answer it: a gap, twice
        await chat.say(QUESTION)
        await chat.press("Không phải các câu trên")
    await report(an, "Ứng dụng báo lỗi 500 khi đăng nhập bằng số 0912000001", OTP)
    async with world.app.db.reader() as session:
        ticket = (await session.exec(select(Ticket))).one()
    canbo = world.chat("canbo")

    other = await link(world, "DEMO014", "kn-staff", Role.staff, KHANG_NHAT)
    await other.say("/feedback")
    await other.press("🎫 Đánh dấu một yêu cầu hỗ trợ là góp ý phần mềm")
    views = await other.say(str(ticket.id))
    assert "Không tìm thấy" in views[0].text  # not a unit they serve

    views = await canbo.say("/feedback")
    assert "❓ Câu hỏi trợ lý chưa trả lời được" in str(views[-1].choices)
    await canbo.press("🎫 Đánh dấu một yêu cầu hỗ trợ là góp ý phần mềm")
    await canbo.say(f"#{ticket.id}")
    await canbo.press("🐞 Phần mềm bị lỗi")
    assert "Đã ghi là góp ý phần mềm" in canbo.last.text
    await canbo.say("/feedback")
    await canbo.press("🎫 Đánh dấu một yêu cầu hỗ trợ là góp ý phần mềm")
    views = await canbo.say(str(ticket.id))
    assert "đã được đánh dấu" in views[-1].text

    await canbo.say("/feedback")
    views = await canbo.press("❓ Câu hỏi trợ lý chưa trả lời được")
    gap_label = next(c.label for row in views[-1].choices for c in row if "ngân hàng" in c.label)
    assert gap_label.startswith("(2×)")
    await canbo.press(gap_label)
    await canbo.press("💡 Góp ý cho phần mềm")
    async with world.app.db.reader() as session:
        rows = {r.source: r for r in (await session.exec(select(SoftwareFeedback))).all()}
    assert rows["ticket"].ticket_id == ticket.id and "0912000001" not in rows["ticket"].text
    assert rows["faq_gap"].hits == 2 and rows["faq_gap"].member_id is None

    views = await an.say("/feedback")  # a plain member gets no staff buttons
    assert "Đánh dấu" not in str(views[-1].choices)
    views = await an.press_data(world.app.services.signer.sign("a:fb:tk"))
    assert "không có quyền" in views[-1].text


@pytest.mark.usefixtures("scratch_folder")  # the command line runs in an empty folder
async def test_export_files_hold_no_name_or_phone_of_the_roster(
    world: World, tmp_path: Path
) -> None:
    members = await link_members(world)
    for chat in members.values():
        await give_bug(chat, device="Nokia G10 của Trần Thị Bình, 2.0.1")
    await report(members["Nguyễn Văn An"], "Không đăng nhập được, số Phạm Thị Dung 0912000004", OTP)
    async with world.app.db.reader() as session:
        ticket = (await session.exec(select(Ticket))).one()
        roster = (await session.exec(select(Member))).all()
    canbo = world.chat("canbo")
    await canbo.say("/feedback")
    await canbo.press("🎫 Đánh dấu một yêu cầu hỗ trợ là góp ý phần mềm")
    await canbo.say(str(ticket.id))
    await canbo.press("😕 Phần mềm khó dùng")

    env = {"SOTAY_DATABASE_URL": world.app.settings.database_url}
    exported = {}
    for name in ("gop-y.csv", "gop-y.xlsx"):
        result = sotay(
            "feedback", "export", "--since", "2026-11-01", "-o", str(tmp_path / name), env=env
        )
        assert result.returncode == 0, result.stderr
        assert "đã ghi 2 nhóm góp ý" in result.stdout
        exported[name] = (tmp_path / name).read_bytes()
    csv_text = exported["gop-y.csv"].decode("utf-8-sig")
    with zipfile.ZipFile(BytesIO(exported["gop-y.xlsx"])) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "treo khi mở tài liệu" in csv_text and "treo khi mở tài liệu" in sheet
    assert "bug" in csv_text and "2.0.1" in csv_text and ",4," in csv_text  # four members
    values = [v for m in roster for v in (m.full_name, m.member_code, *phone_forms(m.phone)) if v]
    for text in (csv_text, sheet):
        leaks = [v for v in values if v in text]
        assert leaks == []
    result = sotay(
        "feedback", "export", "--since", "hôm qua", "-o", str(tmp_path / "x.csv"), env=env
    )
    assert result.returncode != 0 and "--since phải là một ngày" in result.stderr
