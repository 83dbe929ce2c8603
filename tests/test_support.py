"""Support tickets through the router with a recording channel: the many small cases.

Every bad input of the issue has a test here (staff replying to a closed ticket, two claims at
once, a member who blocked the bot, attachments too big or of the wrong type, a member opening
tickets in a loop, staff losing their role, forged buttons), plus the authorization table.
tests/test_support_e2e.py drives the main story through the real Telegram stack.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.base import Rejected, Transient
from bot.core import Attachment, Inbound, View
from bot.phones import normalize_phone
from bot.settings import Settings, SettingsError, load_settings
from handlers import support_core as core
from handlers.cli_admin import AdminError
from handlers.roster import import_roster_text
from handlers.support_admin import revoke_role, tickets_report
from storage import queries
from storage.models import (
    ChannelAccount,
    Dialog,
    DueJob,
    JobStatus,
    OutboxMessage,
    Role,
    RoleGrant,
    StaffGroup,
    Ticket,
    TicketMessage,
    TicketStatus,
    TicketTopic,
    Unit,
)
from tests.conftest import Chat, Recorder, World

AN = "0912000001"  # Nguyễn Văn An, Chi bộ thôn Cầu Bâu, Xã Hợp Thành
BINH = "0912000002"  # Trần Thị Bình, same cell
QUYEN = "0912000014"  # Mai Thị Quyên, Chi bộ thôn Đồng Giàn, Xã Kháng Nhật
COMMUNE = "Tỉnh Tuyên Quang / Xã Hợp Thành"
OTHER_COMMUNE = "Tỉnh Tuyên Quang / Xã Kháng Nhật"
OTP = "Tài khoản, kích hoạt, mã OTP"
NOT_ALLOWED = "không có quyền"
_keys = itertools.count()


async def rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    """Rows in the order they were written (PostgreSQL returns an unordered SELECT in any)."""
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where).order_by(model.id))).all())


async def one_ticket(world: World) -> Ticket:
    [ticket] = await rows(world, Ticket)
    return ticket


async def link(world: World, user: str, phone: str, *, lang: str = "vi") -> Chat:
    """The roster member with ``phone``, registered on the recording channel as ``user``."""
    async with world.app.db.session() as session:
        member = await queries.member_by_phone(session, phone=normalize_phone(phone))
        assert member is not None
        member.registered_at = world.clock.now()
        session.add(member)
        session.add(
            ChannelAccount(
                channel="rec",
                user_ref=user,
                chat_ref=user,
                member_id=member.id or 0,
                language=lang,
                verified=True,
                created_at=world.clock.now(),
            )
        )
    return world.chat(user, lang_hint=lang)


async def grant(world: World, phone: str, role: Role, path: str) -> None:
    async with world.app.db.session() as session:
        member = await queries.member_by_phone(session, phone=normalize_phone(phone))
        unit = await queries.unit_by_path(session, path=path)
        assert member is not None and unit is not None
        session.add(RoleGrant(member_id=member.id or 0, role=role, unit_id=unit.id or 0))


def texts(views: list[View]) -> str:
    return "\n".join(v.text for v in views)


def about(views: list[View], needle: str) -> View:
    """The newest of ``views`` that contains ``needle``."""
    found = [v for v in views if needle in v.text]
    assert found, f"no message with {needle!r} in {[v.text[:60] for v in views]!r}"
    return found[-1]


def labels(view: View) -> list[str]:
    return [c.label for row in view.choices for c in row]


async def report(chat: Chat, text: str = "OTP không bao giờ về máy", category: str = OTP):  # type: ignore[no-untyped-def]
    await chat.say("/support")
    await chat.press(category)
    return await chat.say(text)


async def send(world: World, chat: Chat, **kw: object) -> list[View]:
    """An event of ``chat``'s user with any fields (attachments, replies, group messages)."""
    fields: dict[str, object] = {
        "channel": "rec",
        "user_ref": chat.user,
        "chat_ref": chat.user,
        "key": f"ev-{next(_keys)}",
        "language_hint": "vi",
    }
    fields.update(kw)
    await world.app.router.handle(Inbound(**fields))  # type: ignore[arg-type]
    await world.app.dispatcher.run_once()
    return chat.new()


async def external_id(world: World, chat_ref: str, contains: str) -> str:
    """The channel's id of the newest message to ``chat_ref`` whose text contains ``contains``."""
    for row in reversed(await rows(world, OutboxMessage, OutboxMessage.chat_ref == chat_ref)):
        if contains in row.payload["text"] and row.external_id:
            return row.external_id
    raise AssertionError(f"no sent message with {contains!r} in {chat_ref}")


# --- the member's side ----------------------------------------------------------------------------


async def test_member_to_staff_and_back_full_cycle(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    views = await an.say("/menu")
    assert "🆘 Báo khó khăn" in labels(views[-1])
    await an.press("🆘 Báo khó khăn")
    assert OTP in labels(an.last) and len(labels(an.last)) == 9
    await an.press(OTP)
    views = await an.say("OTP không bao giờ về máy")
    assert "Đã ghi nhận yêu cầu #" in views[-1].text and "Xã Hợp Thành" in views[-1].text
    ticket = await one_ticket(world)
    card = staff.new()[-1]
    assert f"Yêu cầu #{ticket.id}" in card.text
    assert "Nguyễn Văn An" in card.text and "Chi bộ thôn Cầu Bâu" in card.text
    assert OTP in card.text and "OTP không bao giờ về máy" in card.text
    assert labels(card) == [
        "✋ Nhận xử lý",
        "✍️ Trả lời",
        "📚 Trả lời bằng hỏi đáp",
        "🗂 Cần sửa hồ sơ",
        "✅ Đã giải quyết",
        "⬆️ Chuyển lên",
        "⬇️ Chuyển xuống",
    ]
    views = await staff.press("✋ Nhận xử lý")
    assert "Đồng chí đã nhận yêu cầu" in views[-1].text
    assert "đã nhận: Phan Văn Thắng" in views[0].text  # the card was edited
    assert "đã nhận yêu cầu" in an.new()[-1].text
    await staff.press("✍️ Trả lời")
    views = await staff.say("Đồng chí bấm «Gửi lại mã» và chờ 2 phút.")
    assert "Đang gửi câu trả lời" in views[-1].text
    answer = an.new()[-1]
    assert "Gửi lại mã" in answer.text and "Xã Hợp Thành" in answer.text
    assert "Phan Văn Thắng" not in answer.text  # staff speak as their unit
    views = await an.say("Vẫn không được ạ")  # after an answer, free text goes to the ticket
    assert "Đã chuyển tới cán bộ" in views[-1].text
    assert "Vẫn không được ạ" in staff.new()[-1].text
    await staff.press("✅ Đã giải quyết")
    assert "Khó khăn của đồng chí đã hết chưa?" in an.new()[-1].text
    views = await an.press("✅ Đã xong")
    assert "chấm điểm" in views[-1].text and labels(views[-1])[:5] == [
        "Kém (1)",
        "Chưa tốt (2)",
        "Bình thường (3)",
        "Tốt (4)",
        "Rất tốt (5)",
    ]
    assert "Đảng viên đã đóng" in texts(staff.new())
    await an.press("Tốt (4)")
    views = await an.say("Cán bộ nhiệt tình")
    assert "Cảm ơn" in views[-1].text
    ticket = await one_ticket(world)
    assert ticket.status == TicketStatus.closed and ticket.rating == 4
    assert ticket.rating_comment == "Cán bộ nhiệt tình"
    assert ticket.first_response_at is not None and ticket.resolved_at is not None
    history = [m.role for m in await rows(world, TicketMessage)]
    assert history.count("member") == 2 and history.count("staff") == 1


async def test_english_member_gets_english_and_staff_get_their_language(world: World) -> None:
    an = await link(world, "an", AN, lang="en")
    await an.say("/support")
    await an.press("Account, activation, OTP code")
    views = await an.say("The OTP never arrives")
    assert "Request #" in views[-1].text and "recorded" in views[-1].text
    card = world.chat("canbo").new()[-1]
    assert "Yêu cầu #" in card.text and "Tài khoản, kích hoạt, mã OTP" in card.text


async def test_short_or_empty_description_reprompts_and_keeps_category(world: World) -> None:
    an = await link(world, "an", AN)
    await an.say("/support")
    await an.press(OTP)
    views = await an.say("a")
    assert "rõ hơn" in views[0].text and "kể ngắn gọn" in views[-1].text
    [dialog] = await rows(world, Dialog, Dialog.user_ref == "an")
    assert dialog.step == "describe" and dialog.data["category"] == "account"
    assert await rows(world, Ticket) == []


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("attachment", "reply"),
    [
        (Attachment("document", "f1", 20 * 1024 * 1024, "application/pdf", "a.pdf"), "lớn quá"),
        (Attachment("photo", "f2", 11 * 1024 * 1024, "image/jpeg"), "tối đa 10 MB"),
        (Attachment("document", "f3", 1000, "application/msword", "a.doc"), "chỉ nhận ảnh"),
        (Attachment("document", "f4", 1000, "application/zip", "x.zip"), "PDF"),
    ],
)
async def test_bad_attachment_reprompts_and_nothing_is_lost(
    world: World, attachment: Attachment, reply: str
) -> None:
    an = await link(world, "an", AN)
    await an.say("/support")
    await an.press(OTP)
    views = await send(world, an, text="ảnh lỗi", attachment=attachment)
    assert reply in views[0].text and "kể ngắn gọn" in views[-1].text
    [dialog] = await rows(world, Dialog, Dialog.user_ref == "an")
    assert dialog.step == "describe" and dialog.data["category"] == "account"
    assert await rows(world, Ticket) == []
    good = Attachment("photo", "photo-ok", 300_000, "image/jpeg")
    views = await send(world, an, text=None, attachment=good)  # a screenshot alone is enough
    assert "Đã ghi nhận" in views[-1].text
    [message] = await rows(world, TicketMessage)
    assert message.attachment_ref == "photo-ok" and message.attachment_kind == "photo"
    card, photo = world.chat("canbo").new()[-2:]
    assert "[ảnh]" in card.text and photo.photo_ref == "photo-ok"  # the card, then the picture


async def test_screenshot_is_relayed_to_staff_as_a_photo(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✋ Nhận xử lý")
    await send(world, an, text="Màn hình báo lỗi", attachment=Attachment("photo", "shot-1"))
    # the member is asked once whether this belongs to the open ticket
    assert "Tin nhắn vừa rồi là" in an.last.text
    await an.press("Viết thêm vào yêu cầu #1")
    relayed = [v for v in staff.new() if v.photo_ref]
    assert relayed and relayed[-1].photo_ref == "shot-1" and "Màn hình báo lỗi" in relayed[-1].text
    pdf = Attachment("document", "doc-1", 5000, "application/pdf", "loi.pdf")
    views = await send(world, an, text="Tệp lỗi", attachment=pdf)
    assert "Đã chuyển tới cán bộ" in views[-1].text
    assert "[tệp loi.pdf]" in staff.new()[-1].text


async def test_a_screenshot_sent_with_the_description_reaches_the_staff(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await an.say("/support")
    await an.press(OTP)
    await send(
        world, an, text="Màn hình báo lỗi khi đăng nhập", attachment=Attachment("photo", "s-0")
    )
    photos = [v for v in staff.new() if v.photo_ref]
    assert [v.photo_ref for v in photos] == ["s-0"] and "#1" in photos[0].text
    await send(world, an, text="Thêm ảnh", attachment=Attachment("photo", "s-1"))
    await an.press("Viết thêm vào yêu cầu #1")
    staff.new()
    views = await staff.press_data(world.app.services.signer.sign("a:tk:1:view"))  # «Xem đủ»
    assert [v.photo_ref for v in views if v.photo_ref] == ["s-0", "s-1"]  # oldest first


async def test_daily_limit_stops_a_loop_with_a_clear_message(world: World) -> None:
    world.app.settings.tickets_per_day = 2
    an = await link(world, "an", AN)
    for n in range(2):
        await report(an, text=f"Khó khăn số {n}")
        await an.say("/tickets")
        await an.press(f"✔️ Đóng #{n + 1}")
    views = await an.say("/support")
    assert "tối đa trong ngày" in views[-1].text and "Ngày mai" in views[-1].text
    assert await rows(world, Dialog, Dialog.user_ref == "an") == []
    assert len(await rows(world, Ticket)) == 2
    world.clock.advance(timedelta(days=1))
    await report(an, text="Hôm sau lại hỏi")
    assert len(await rows(world, Ticket)) == 3


async def test_limit_also_applies_to_new_ticket_from_free_text(world: World) -> None:
    world.app.settings.tickets_per_day = 1
    an = await link(world, "an", AN)
    await report(an)
    await an.say("Một việc khác nữa")
    views = await an.press("Báo khó khăn mới")
    assert "tối đa trong ngày" in views[-1].text
    assert len(await rows(world, Ticket)) == 1


async def test_free_text_with_open_ticket_asks_once_then_adds(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    staff.new()
    views = await an.say("Tôi đã thử khởi động lại máy")
    assert "Tin nhắn vừa rồi là" in views[-1].text
    assert labels(views[-1]) == [
        "Viết thêm vào yêu cầu #1",
        "Báo khó khăn mới",
        "Không, tôi chỉ hỏi trợ lý",
    ]
    assert staff.new() == []  # nothing is relayed before the member chooses
    await an.press("Viết thêm vào yêu cầu #1")
    assert "Tôi đã thử khởi động lại máy" in staff.new()[-1].text
    views = await an.say("Vẫn chưa có mã")
    assert "Đã chuyển tới cán bộ" in views[-1].text  # asked once: now it goes straight in
    assert "Vẫn chưa có mã" in staff.new()[-1].text
    member_texts = [m.text for m in await rows(world, TicketMessage) if m.role == "member"]
    assert member_texts == [
        "OTP không bao giờ về máy",
        "Tôi đã thử khởi động lại máy",
        "Vẫn chưa có mã",
    ]


async def test_free_text_can_start_a_new_ticket_with_that_text(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an)
    await an.say("Không xem được lịch họp")
    await an.press("Báo khó khăn mới")
    views = await an.press("Lịch sinh hoạt chi bộ")
    assert "Đã ghi nhận yêu cầu #2" in views[-1].text
    second = (await rows(world, Ticket, Ticket.id == 2))[0]
    assert second.category == "meeting"
    assert [m.text for m in await rows(world, TicketMessage, TicketMessage.ticket_id == 2)] == [
        "Không xem được lịch họp"
    ]


async def test_free_text_not_a_ticket_goes_to_the_assistant(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an)
    await an.say("Đảng phí đóng ở đâu?")
    views = await an.press("Không, tôi chỉ hỏi trợ lý")
    assert views and "Đã chuyển" not in texts(views)  # the usual free-text answer instead
    assert [m.role for m in await rows(world, TicketMessage)] == ["member"]  # draft gone
    stale = await an.press_data(world.app.services.signer.sign("a:sup:1:add:2"))
    assert "đã cũ" in stale[-1].text


async def test_photo_without_caption_joins_the_open_ticket(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✋ Nhận xử lý")
    views = await send(world, an, text=None, attachment=Attachment("photo", "shot-bare"))
    assert "Tin nhắn vừa rồi là" in views[-1].text
    await an.press("Viết thêm vào yêu cầu #1")
    relayed = [v for v in staff.new() if v.photo_ref]
    assert relayed and relayed[-1].photo_ref == "shot-bare"
    stored = [m.attachment_ref for m in await rows(world, TicketMessage) if m.role == "member"]
    assert stored == [None, "shot-bare"]


async def test_photo_without_caption_and_without_ticket_points_to_support(world: World) -> None:
    an = await link(world, "an", AN)
    views = await send(world, an, text=None, attachment=Attachment("photo", "shot-lost"))
    assert "Đã nhận ảnh/tệp" in views[-1].text
    assert await rows(world, TicketMessage) == []


async def test_free_text_without_open_ticket_is_not_captured(world: World) -> None:
    an = await link(world, "an", AN)
    views = await an.say("Xin chào")
    assert views and "Tin nhắn vừa rồi là" not in views[-1].text
    assert await rows(world, TicketMessage) == []


async def test_member_reply_to_an_answer_goes_to_its_ticket(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an, text="Việc thứ nhất")
    await an.say("/support")
    await an.press("Báo khó khăn mới")
    await an.press("Mật khẩu")
    await an.say("Quên mật khẩu")
    await staff.press_data(world.app.services.signer.sign("a:tk:1:reply"))
    await staff.say("Trả lời cho việc thứ nhất")
    target = await external_id(world, "an", "Trả lời cho việc thứ nhất")
    views = await send(world, an, text="Cảm ơn, đã được", reply_to_ref=target)
    assert "yêu cầu #1" in views[-1].text
    [message] = await rows(world, TicketMessage, TicketMessage.text == "Cảm ơn, đã được")
    assert message.ticket_id == 1


async def test_an_unsolved_faq_question_becomes_a_ticket_with_its_text(world: World) -> None:
    from bot.i18n import t

    an = await link(world, "an", AN)
    question = "Máy tôi báo lỗi lạ khi mở ứng dụng"
    views = await an.say(question)
    # an answer that did not help, or suggestions that do not fit
    for way_out in ("faq.not_solved", "faq.none_of_these"):
        if t("vi", way_out) in labels(views[-1]):
            views = await an.press(t("vi", way_out))
    views = await an.press(t("vi", "faq.to_staff"))
    assert "gặp khó khăn về việc gì" in views[-1].text
    views = await an.press("Cài đặt ứng dụng")  # no need to describe it again
    assert "Đã ghi nhận yêu cầu #1" in views[-1].text
    [message] = await rows(world, TicketMessage)
    assert message.text == question


async def test_tickets_lists_my_tickets_with_their_state(world: World) -> None:
    an = await link(world, "an", AN)
    views = await an.say("/tickets")
    assert "chưa có yêu cầu" in views[-1].text
    await report(an)
    await world.chat("canbo").press("✋ Nhận xử lý")
    views = await an.say("/tickets")
    assert "#1 · Tài khoản, kích hoạt, mã OTP · đang xử lý" in views[-1].text
    assert labels(views[-1]) == ["✍️ Viết thêm #1", "✔️ Đóng #1"]
    bình = await link(world, "binh", BINH)
    views = await bình.say("/tickets")
    assert "chưa có yêu cầu" in views[-1].text  # nobody else's tickets


async def test_member_says_not_solved_reopens_and_asks_what_is_left(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✋ Nhận xử lý")
    await staff.press("✅ Đã giải quyết")
    staff.new()
    views = await an.press("❌ Chưa xong")
    assert "bổ sung cho yêu cầu #1" in views[-1].text
    assert "chưa xong" in texts(staff.new())
    await an.say("Mã vẫn không đến")
    ticket = await one_ticket(world)
    assert ticket.status == TicketStatus.claimed and ticket.resolved_at is None
    assert "Mã vẫn không đến" in staff.new()[-1].text


async def test_resolved_ticket_closes_itself_after_three_days(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✋ Nhận xử lý")
    await staff.press("✅ Đã giải quyết")
    world.clock.advance(timedelta(days=3, minutes=1))
    assert await world.app.scheduler.tick() >= 1
    assert (await one_ticket(world)).status == TicketStatus.closed


# --- the staff's side -----------------------------------------------------------------------------


async def test_staff_reply_to_a_closed_ticket_is_refused(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✍️ Trả lời")  # the staff member starts writing...
    await an.say("/tickets")
    await an.press("✔️ Đóng #1")  # ...while the member closes the ticket
    an.new()
    views = await staff.say("Đồng chí thử lại nhé")
    assert "đã đóng" in views[-1].text and "không được gửi" in views[-1].text
    assert an.new() == []
    views = await staff.press_data(world.app.services.signer.sign("a:tk:1:reply"))
    assert "đã đóng" in views[-1].text
    assert [m.role for m in await rows(world, TicketMessage) if m.role == "staff"] == []


async def test_two_staff_claiming_at_once_one_wins(world: World) -> None:
    await grant(world, BINH, Role.staff, COMMUNE)
    an = await link(world, "an", AN)
    first, second = world.chat("canbo"), await link(world, "binh", BINH)
    await report(an)
    data = world.app.services.signer.sign("a:tk:1:claim")
    events = [
        Inbound(channel="rec", user_ref=c.user, chat_ref=c.user, key=f"race-{c.user}", choice=data)
        for c in (first, second)
    ]
    await asyncio.gather(*(world.app.router.handle(e) for e in events))
    await world.app.dispatcher.run_once()
    said = {c.user: texts(c.new()) for c in (first, second)}
    winners = [u for u, text in said.items() if "Đồng chí đã nhận yêu cầu #1." in text]
    losers = [u for u, text in said.items() if "đã có đồng chí" in text]
    assert len(winners) == 1 and len(losers) == 1
    ticket = await one_ticket(world)
    [winner] = await rows(world, ChannelAccount, ChannelAccount.user_ref == winners[0])
    assert ticket.status == TicketStatus.claimed and ticket.claimed_by == winner.member_id
    assert texts(an.new()).count("đã nhận yêu cầu #1") == 1


async def test_member_who_blocked_the_bot_staff_are_told_at_once(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    async with world.app.db.session() as session:
        account = (
            await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == "an"))
        ).one()
        account.reachable = False  # the dispatcher learnt it from a 403 earlier
        session.add(account)
    await staff.press("✍️ Trả lời")
    views = await staff.say("Đồng chí thử lại")
    assert "Không gửi được" in views[-1].text and "Chi bộ thôn Cầu Bâu" in views[-1].text


async def test_member_who_blocked_the_bot_staff_are_told_after_the_send_fails(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    world.recorder.blocked.add("an")  # blocked since: the next send gets a 403
    await staff.press("✍️ Trả lời")
    views = await staff.say("Đồng chí thử lại")
    assert "Đang gửi câu trả lời" in views[-1].text  # not known yet
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "an")
    assert account.reachable is False  # the dispatcher got the 403
    notice = views[-1]
    world.clock.advance(core.DELIVERY_CHECK_AFTER + timedelta(seconds=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    truth = staff.new()[-1]
    assert "Không gửi được câu trả lời #1" in truth.text
    assert truth.edit_of is not None and notice.edit_of is None  # it replaces "sending"


async def test_delivered_answer_raises_no_alarm(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("✍️ Trả lời")
    await staff.say("Đồng chí thử lại")
    world.clock.advance(core.DELIVERY_CHECK_AFTER + timedelta(seconds=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    said = staff.new()
    assert "Không gửi được" not in texts(said)
    assert "đã tới đảng viên" in said[-1].text and said[-1].edit_of is not None
    [check] = await rows(world, DueJob, DueJob.kind == "ticket_delivery")
    assert check.status == JobStatus.done and check.note == "delivered"


async def test_staff_reply_to_the_card_in_private_chat_is_relayed(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    card = await external_id(world, "canbo", "Yêu cầu #1")
    views = await send(world, staff, text="Trả lời nhanh", reply_to_ref=card)
    assert "Đang gửi câu trả lời" in views[-1].text
    assert "Trả lời nhanh" in an.new()[-1].text


async def test_faq_answer_reaches_the_member(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an, text="Không nhận được mã OTP")
    views = await staff.press("📚 Trả lời bằng hỏi đáp")
    assert "Chọn mục hỏi đáp" in views[-1].text and labels(views[-1])
    await staff.press(labels(views[-1])[0])
    answer, question = an.new()[-2:]
    assert "Trả lời yêu cầu #1" in answer.text and "OTP" in answer.text
    assert "đã giúp đồng chí giải quyết được khó khăn (yêu cầu #1) chưa?" in question.text
    ticket = await one_ticket(world)
    assert ticket.first_response_at is not None and ticket.status == TicketStatus.resolved


async def test_mark_database_correction_tells_the_member(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an, category="Sai thông tin trong hồ sơ đảng viên", text="Báo không tìm thấy")
    views = await staff.press("🗂 Cần sửa hồ sơ")
    assert "danh sách cần sửa" in views[-1].text
    assert "hồ sơ đảng viên cần sửa" in an.new()[-1].text
    assert (await one_ticket(world)).db_correction is True
    views = await staff.press_data(world.app.services.signer.sign("a:tk:1:db"))
    assert "đã có trong danh sách" in views[-1].text


async def test_queue_oldest_first_with_age_and_sla_state(world: World) -> None:
    an, binh = await link(world, "an", AN), await link(world, "binh", BINH)
    staff = world.chat("canbo")
    await report(an, text="Việc cũ")
    world.clock.advance(timedelta(hours=7))  # 17:00: past the 16:00 deadline
    await report(binh, text="Việc mới")
    await staff.press_data(world.app.services.signer.sign("a:tk:2:claim"))
    views = await staff.say("/queue")
    lines = views[-1].text.splitlines()
    assert lines[0] == "Yêu cầu đang mở (2), cũ nhất trước:"
    assert lines[1].startswith("#1 · 7 giờ 0 phút") and lines[1].endswith("⚠️ quá hạn")
    assert lines[2].startswith("#2 · 0 phút") and "đã nhận: Phan Văn Thắng" in lines[2]
    assert labels(views[-1]) == ["#1", "#2"]
    assert "Nguyễn Văn An" not in views[-1].text  # the list shows no names
    views = await staff.press("#1")
    assert "Nguyễn Văn An" in views[-1].text and "Việc cũ" in views[-1].text


async def test_queue_is_limited_to_the_units_served(world: World) -> None:
    await grant(world, QUYEN, Role.staff, OTHER_COMMUNE)
    other = await link(world, "quyen", QUYEN)
    await report(await link(world, "an", AN))
    views = await other.say("/queue")
    assert "Không có yêu cầu nào" in views[-1].text
    views = await world.chat("bithu").say("/queue")  # the cell's secretary sees her cell's
    assert "#1 ·" in views[-1].text
    views = await world.chat("admin").say("/queue")
    assert "#1 ·" in views[-1].text
    member = await link(world, "binh", BINH)
    views = await member.say("/queue")
    assert NOT_ALLOWED in views[-1].text


async def test_secretary_helps_her_cell_but_cannot_claim(world: World) -> None:
    an = await link(world, "an", AN)
    secretary = world.chat("bithu")
    await report(an)
    views = await secretary.say("/queue")
    await secretary.press("#1")
    card = secretary.last
    assert "Nguyễn Văn An" in card.text
    views = await secretary.press("✋ Nhận xử lý")
    assert NOT_ALLOWED in views[-1].text
    await secretary.press("✍️ Trả lời")
    await secretary.say("Mai chị qua nhà giúp đồng chí")
    assert "Mai chị qua nhà" in an.new()[-1].text
    assert (await one_ticket(world)).status == TicketStatus.open


async def test_staff_hand_up_and_down(world: World) -> None:
    an = await link(world, "an", AN)
    staff, admin = world.chat("canbo"), world.chat("admin")
    await report(an)
    views = await staff.press("⬇️ Chuyển xuống")
    assert "Không có đơn vị cấp dưới" in views[-1].text
    await staff.press("✋ Nhận xử lý")
    views = await staff.press("⬆️ Chuyển lên")
    assert "chuyển lên Tỉnh Tuyên Quang" in views[-1].text
    ticket = await one_ticket(world)
    assert ticket.status == TicketStatus.open and ticket.claimed_by is None
    card = admin.new()[-1]
    assert "Xã Hợp Thành chuyển lên" in card.text and "Nguyễn Văn An" in card.text
    assert "chuyển cho cán bộ Tỉnh Tuyên Quang" in an.new()[-1].text
    views = await admin.press("⬆️ Chuyển lên")
    assert "Không có đơn vị cấp trên" in views[-1].text
    await admin.press("⬇️ Chuyển xuống")
    assert (await one_ticket(world)).unit_id == (await unit(world, COMMUNE)).id
    assert "Tỉnh Tuyên Quang chuyển xuống" in staff.new()[-1].text


async def unit(world: World, path: str) -> Unit:
    async with world.app.db.reader() as session:
        found = await queries.unit_by_path(session, path=path)
    assert found is not None
    return found


# --- SLA ------------------------------------------------------------------------------------------


async def test_sla_escalates_to_the_province_then_reminds_at_the_root(world: World) -> None:
    an = await link(world, "an", AN)
    staff, admin = world.chat("canbo"), world.chat("admin")
    await report(an)  # Tuesday 10:00; 4 working hours → 16:00 (lunch does not count)
    ticket = await one_ticket(world)
    assert core.when(world.app.settings, ticket.sla_due_at) == "16:00 01/12"
    world.clock.advance(timedelta(hours=5, minutes=59))
    await world.app.scheduler.tick()
    assert (await one_ticket(world)).escalations == 0  # 15:59: not yet
    world.clock.advance(timedelta(minutes=2))
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    ticket = await one_ticket(world)
    province = await unit(world, "Tỉnh Tuyên Quang")
    assert ticket.unit_id == province.id and ticket.escalations == 1 and ticket.breached
    assert "chuyển lên Tỉnh Tuyên Quang" in texts(an.new())
    assert "chuyển lên Tỉnh Tuyên Quang vì quá hạn" in texts(staff.new())
    card = about(admin.new(), "Chuyển lên từ Xã Hợp Thành")
    assert "Nguyễn Văn An" in card.text
    # 16:01 + 4 working hours: 59 minutes today, then Wednesday 07:30 + 3:01 → 10:31
    assert core.when(world.app.settings, ticket.sla_due_at) == "10:31 02/12"
    world.clock.advance(timedelta(hours=18, minutes=31))
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    assert "Nguyễn Văn An" in about(admin.new(), "Quá hạn mà chưa có ai nhận").text
    assert "lâu hơn dự kiến" in texts(an.new())
    ticket = await one_ticket(world)
    assert ticket.unit_id == province.id and ticket.escalations == 1
    # still nobody: the top unit's staff are reminded every SLA period; the member not again
    world.clock.advance(timedelta(hours=6, minutes=1))  # 4 working hours later: 16:31
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    assert "nhắc lần 2" in about(admin.new(), "Vẫn chưa có ai nhận").text
    assert "lâu hơn dự kiến" not in texts(an.new())
    await admin.press("✋ Nhận xử lý")  # a claim ends the reminders
    world.clock.advance(timedelta(days=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert "Vẫn chưa có ai nhận" not in texts(admin.new())


async def test_claimed_ticket_does_not_escalate(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an)
    await world.chat("canbo").press("✋ Nhận xử lý")
    world.clock.advance(timedelta(days=2))
    await world.app.scheduler.tick()
    ticket = await one_ticket(world)
    assert ticket.escalations == 0 and not ticket.breached
    [sla] = await rows(world, DueJob, DueJob.kind == "ticket_sla")
    assert sla.status == JobStatus.cancelled


async def test_sla_counts_weekends_and_holidays(world: World) -> None:
    world.app.settings.holidays = "2026-12-07"
    world.clock.advance(timedelta(days=3, hours=6))  # Friday 16:00
    an = await link(world, "an", AN)
    await report(an)
    ticket = await one_ticket(world)
    # 1 hour on Friday, Monday is a holiday, 3 hours on Tuesday from 07:30
    assert core.when(world.app.settings, ticket.sla_due_at) == "10:30 08/12"


# --- role loss, forged buttons --------------------------------------------------------------------


async def test_staff_losing_the_role_puts_claimed_tickets_back(world: World) -> None:
    await grant(world, BINH, Role.staff, COMMUNE)
    an = await link(world, "an", AN)
    staff, colleague = world.chat("canbo"), await link(world, "binh", BINH)
    await report(an)
    await staff.press("✋ Nhận xử lý")
    colleague.new()
    message = await revoke_role(
        english(world), role="staff", unit_path=COMMUNE, phone="0912000090", clock=world.clock
    )
    assert "1 claimed ticket back in the queue" in message
    await world.app.dispatcher.run_once()
    ticket = await one_ticket(world)
    assert ticket.status == TicketStatus.open and ticket.claimed_by is None
    assert ticket.sla_due_at is not None and ticket.sla_due_at > world.clock.now()
    [sla] = await rows(world, DueJob, DueJob.kind == "ticket_sla", DueJob.status == "pending")
    assert sla.due_at == ticket.sla_due_at
    card = colleague.new()[-1]
    assert "Trở lại hàng chờ" in card.text and "✋ Nhận xử lý" in labels(card)
    views = await staff.press_data(world.app.services.signer.sign("a:tk:1:claim"))
    assert NOT_ALLOWED in views[-1].text  # the former staff member cannot act any more
    with pytest.raises(AdminError, match="không giữ vai trò cán bộ hỗ trợ"):  # operator's language
        await revoke_role(world.app.settings, role="staff", unit_path=COMMUNE, phone="0912000090")


async def test_forged_button_data_cannot_read_or_claim_another_units_ticket(world: World) -> None:
    await grant(world, QUYEN, Role.staff, OTHER_COMMUNE)
    other = await link(world, "quyen", QUYEN)
    an = await link(world, "an", AN)
    await report(an)
    signer = world.app.services.signer
    views = await other.press_data("a:tk:1:view~AAAAAAAA")  # a made-up signature
    assert "đã cũ" in views[-1].text
    for verb in ("view", "claim", "reply", "faq", "done", "up", "down", "db"):
        views = await other.press_data(signer.sign(f"a:tk:1:{verb}"))  # a real but foreign one
        assert NOT_ALLOWED in views[-1].text, verb
        assert "Nguyễn Văn An" not in texts(views)
    ticket = await one_ticket(world)
    assert ticket.status == TicketStatus.open and ticket.claimed_by is None
    assert not ticket.db_correction and ticket.unit_id == (await unit(world, COMMUNE)).id
    views = await other.press_data(signer.sign("a:tk:999:view"))
    assert NOT_ALLOWED in views[-1].text  # a missing ticket looks the same as a foreign one
    binh = await link(world, "binh", BINH)
    for data in ("a:sup:1:close", "a:sup:1:more", "a:sup:1:rate:1"):
        views = await binh.press_data(signer.sign(data))  # another member's ticket
        assert NOT_ALLOWED in views[-1].text
    assert (await one_ticket(world)).status == TicketStatus.open


# --- the authorization table ----------------------------------------------------------------------

TREE = """member_code,full_name,phone,unit_path,has_smartphone
AUTH01,Chủ Yêu Cầu,0988000001,Tỉnh Thử / Huyện Đông / Xã Xuân / Chi bộ Cây Thị,có
AUTH02,Cán Bộ Tỉnh,0988000002,Tỉnh Thử / Huyện Tây / Xã Nam / Chi bộ Bến Đò,có
AUTH03,Cán Bộ Xã,0988000003,Tỉnh Thử / Huyện Tây / Xã Nam / Chi bộ Bến Đò,có
AUTH04,Người Thử,0988000004,Tỉnh Thử / Huyện Tây / Xã Nam / Chi bộ Bến Đò,có
AUTH05,Người Khác,0988000005,Tỉnh Thử / Huyện Đông / Xã Hạ / Chi bộ Gốc Đa,có
"""
# The ticket is the responsibility of "Huyện Đông"; its member is in "Xã Xuân / Chi bộ Cây Thị".
RELATIONS = {
    "own": "Tỉnh Thử / Huyện Đông",
    "parent": "Tỉnh Thử",
    "child": "Tỉnh Thử / Huyện Đông / Xã Xuân",
    "cell": "Tỉnh Thử / Huyện Đông / Xã Xuân / Chi bộ Cây Thị",
    "child_other": "Tỉnh Thử / Huyện Đông / Xã Hạ",
    "sibling": "Tỉnh Thử / Huyện Tây",
}
ACTIONS = (
    "view",
    "claim",
    "reply",
    "faq",
    "faq_answer",
    "mark_db",
    "resolve",
    "hand_up",
    "hand_down",
)
HELPER_ACTIONS = {"view", "reply", "faq", "faq_answer"}
SERVES = {"own", "parent", "child", "cell"}


def expected(role: str, relation: str) -> set[str]:
    if role == "member" or relation not in SERVES:
        return set()
    return set(ACTIONS) if role in ("staff", "admin") else HELPER_ACTIONS


@dataclass
class Table:
    world: World
    owner: Chat
    actor: Chat
    units: dict[str, Unit] = field(default_factory=dict)


async def auth_world(world: World, role: str, relation: str) -> Table:
    async with world.app.db.session() as session:
        await import_roster_text(session, TREE, now=world.clock.now())
    owner = await link(world, "owner", "0988000001")
    actor = await link(world, "actor", "0988000004")
    await link(world, "bg-parent", "0988000002")
    await link(world, "bg-child", "0988000003")
    # Staff above and below the responsible unit, so handing up and down is always possible.
    await grant(world, "0988000002", Role.staff, "Tỉnh Thử")
    await grant(world, "0988000003", Role.staff, RELATIONS["child"])
    if role == "member":
        async with world.app.db.session() as session:
            member = await queries.member_by_phone(session, phone="+84988000004")
            target = await queries.unit_by_path(session, path=RELATIONS[relation])
            assert member is not None and target is not None
            member.cell_id = target.id
            session.add(member)
    else:
        await grant(world, "0988000004", Role(role), RELATIONS[relation])
    table = Table(world, owner, actor)
    for name, path in RELATIONS.items():
        table.units[name] = await unit(world, path)
    return table


async def fresh_ticket(table: Table) -> Ticket:
    world = table.world
    async with world.app.db.session() as session:
        owner = await queries.member_by_phone(session, phone="+84988000001")
        assert owner is not None
        now = world.clock.now()
        ticket = Ticket(
            member_id=owner.id or 0,
            cell_id=table.units["cell"].id or 0,
            unit_id=table.units["own"].id or 0,
            category="account",
            created_at=now,
            sla_due_at=now + timedelta(hours=4),
        )
        session.add(ticket)
        await session.flush()
        session.add(
            TicketMessage(
                ticket_id=ticket.id or 0, role="member", text="Không nhận được mã OTP", at=now
            )
        )
    return ticket


async def attempt(table: Table, action: str) -> tuple[bool, str]:
    """Press the action's button as the actor; (allowed, why) judged from replies and rows."""
    world, actor = table.world, table.actor
    ticket = await fresh_ticket(table)
    verb = {
        "faq_answer": "fq:otp_not_received",
        "mark_db": "db",
        "resolve": "done",
        "hand_up": "up",
        "hand_down": "down",
    }.get(action, action)
    table.owner.new()
    views = await actor.press_data(world.app.services.signer.sign(f"a:tk:{ticket.id}:{verb}"))
    said = texts(views)
    [after] = await rows(world, Ticket, Ticket.id == ticket.id)
    refused = NOT_ALLOWED in said
    if refused:
        assert "Chủ Yêu Cầu" not in said, "identity leaked in a refusal"
        assert after.model_dump() == {**ticket.model_dump()}, "a refused action changed the ticket"
        return False, said
    done = {
        "view": "Chủ Yêu Cầu" in said,
        "claim": after.status == TicketStatus.claimed,
        "reply": "Xin gõ câu trả lời" in said,
        "faq": "mục hỏi đáp" in said,
        "faq_answer": "Trả lời yêu cầu" in texts(table.owner.new()),
        "mark_db": after.db_correction,
        "resolve": after.status == TicketStatus.resolved,
        "hand_up": after.unit_id == table.units["parent"].id,
        "hand_down": after.unit_id == table.units["child"].id,
    }[action]
    assert done, f"{action} was neither refused nor done: {said!r}"
    await actor.say("/cancel")  # leave any dialog the action opened
    return True, said


@pytest.mark.engine_neutral
@pytest.mark.parametrize("relation", list(RELATIONS))
@pytest.mark.parametrize("role", ["member", "secretary", "staff", "admin"])
async def test_authorization_table(world: World, role: str, relation: str) -> None:
    table = await auth_world(world, role, relation)
    wanted = expected(role, relation)
    wrong = []
    for action in ACTIONS:
        allowed, said = await attempt(table, action)
        if allowed != (action in wanted):
            wrong.append(f"{action}: {'allowed' if allowed else 'refused'} ({said[:80]!r})")
    assert wrong == [], f"{role} of the {relation} unit: " + "; ".join(wrong)


# --- staff groups with forum topics (recording channel with topics) -------------------------------


@dataclass
class TopicRecorder(Recorder):
    topics: dict[str, list[str]] = field(default_factory=dict)
    refuse: bool = False
    failures: int = 0  # the next calls that fail with a network error

    async def create_topic(self, chat_ref: str, name: str) -> str:
        if self.refuse:
            raise Rejected("the chat is not a forum")
        if self.failures:
            self.failures -= 1
            raise Transient("network down")
        self.topics.setdefault(chat_ref, []).append(name)
        return str(500 + len(self.topics[chat_ref]))


GROUP = "-100777"


async def topic_world(world: World, *, refuse: bool = False) -> tuple[World, TopicRecorder]:
    recorder = TopicRecorder(refuse=refuse)
    world.app.add_channel(recorder)  # replaces the plain recorder under the same name
    return World(world.app, recorder, world.clock), recorder


async def in_group(world: World, chat: Chat, **kw: object) -> list[View]:
    await send(world, chat, **{"chat_ref": GROUP, "in_group": True, **kw})
    return world.recorder.sent.get(GROUP, [])


async def bind_group(world: World, chat: Chat, text: str = "/bindgroup") -> list[View]:
    """/bindgroup, read the warning, confirm."""
    confirm = (await in_group(world, chat, text=text))[-1]
    assert "Mọi người trong nhóm sẽ thấy" in confirm.text and "số điện thoại" in confirm.text
    data = next(c.data for row in confirm.choices for c in row if c.label == "✓ Gắn nhóm này")
    return await in_group(world, chat, choice=data)


async def test_staff_group_gets_one_topic_per_ticket_and_relays_answers(world: World) -> None:
    world, recorder = await topic_world(world)
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    sent = await bind_group(world, staff)
    assert "Xã Hợp Thành" in sent[-1].text
    [group] = await rows(world, StaffGroup)
    assert group.chat_ref == GROUP and group.forum
    await report(an)
    assert staff.new() == []  # the group, not private chats, gets the ticket
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    assert recorder.topics[GROUP] == ["#1 · Tài khoản, kích hoạt, mã OTP · Chi bộ thôn Cầu Bâu"]
    card = recorder.sent[GROUP][-1]
    assert card.thread_ref == "501" and "Nguyễn Văn An" in card.text
    assert "0912" not in card.text  # the phone only on demand, privately
    phone = next(c.data for row in card.choices for c in row if "Số điện thoại" in c.label)
    sent = await in_group(world, staff, choice=phone, thread_ref="501")
    assert "0912" not in sent[-1].text and "riêng" in sent[-1].text
    assert "0912 000 001" in recorder.sent["canbo"][-1].text  # in their private chat
    sent = await in_group(world, await link(world, "binh0", BINH), choice=phone, thread_ref="501")
    assert "0912" not in texts(sent) and "không có quyền" in sent[-1].text
    await an.say("Thêm: máy em là Android")  # before anyone answers: asked once, then relayed
    await an.press("Viết thêm vào yêu cầu #1")
    assert recorder.sent[GROUP][-1].thread_ref == "501"
    assert "máy em là Android" in recorder.sent[GROUP][-1].text
    sent = await in_group(world, staff, text="Đồng chí mở Cài đặt, chọn Tin nhắn", thread_ref="501")
    assert sent[-1].thread_ref == "501" and "Đang gửi câu trả lời" in sent[-1].text
    assert "mở Cài đặt" in an.new()[-1].text
    outsider = await link(world, "binh", BINH)  # a member who happens to be in the group
    sent = await in_group(world, outsider, text="Tôi cũng bị thế", thread_ref="501")
    assert "không được chuyển" in sent[-1].text
    assert "Tôi cũng bị thế" not in texts(an.new())
    sent = await in_group(world, staff, text="chuyện khác ngoài chủ đề")  # chatter: ignored
    assert "chuyện khác" not in texts(an.new())
    await an.say("/tickets")
    await an.press("✔️ Đóng #1")
    sent = await in_group(world, staff, text="Còn gì nữa không?", thread_ref="501")
    assert "đã đóng" in sent[-1].text and "Còn gì nữa" not in texts(an.new())


async def test_topic_creation_is_retried_after_a_network_error(world: World) -> None:
    world, recorder = await topic_world(world)
    recorder.failures = 1
    an = await link(world, "an", AN)
    await bind_group(world, world.chat("canbo"))
    await report(an, text="Gửi trước khi mạng hỏng")
    await world.app.scheduler.tick()
    assert recorder.topics == {}
    [retry] = await rows(world, DueJob, DueJob.kind == "ticket_topic", DueJob.status == "pending")
    assert retry.payload["tries"] == 1 and retry.due_at > world.clock.now()
    await an.say("Thêm một dòng")  # while the topic does not exist yet
    await an.press("Viết thêm vào yêu cầu #1")
    world.clock.advance(timedelta(minutes=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert len(recorder.topics[GROUP]) == 1
    card = recorder.sent[GROUP][-1]
    assert card.thread_ref == "501"
    assert "Gửi trước khi mạng hỏng" in card.text and "Thêm một dòng" in card.text  # nothing lost


async def test_group_that_is_not_a_forum_gets_tickets_in_the_group(world: World) -> None:
    world, recorder = await topic_world(world, refuse=True)
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await bind_group(world, staff)
    await report(an)
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    [group] = await rows(world, StaffGroup)
    assert group.forum is False
    posted = recorder.sent[GROUP]
    assert "chưa bật Chủ đề" in posted[-2].text
    assert "Yêu cầu #1" in posted[-1].text and posted[-1].thread_ref is None
    card = await external_id(world, GROUP, "Yêu cầu #1")
    sent = await in_group(world, staff, text="Trả lời trong nhóm", reply_to_ref=card)
    assert "Đang gửi câu trả lời" in sent[-1].text
    assert "Trả lời trong nhóm" in an.new()[-1].text
    assert await rows(world, TicketTopic) == []


async def test_group_button_press_answers_in_the_topic(world: World) -> None:
    world, recorder = await topic_world(world)
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await bind_group(world, staff)
    await report(an)
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    data = world.app.services.signer.sign("a:tk:1:claim")
    sent = await in_group(world, staff, choice=data, in_group=False)  # callbacks are not "in_group"
    assert "Đồng chí đã nhận" in sent[-1].text and sent[-1].thread_ref == "501"
    reply = world.app.services.signer.sign("a:tk:1:reply")
    sent = await in_group(world, staff, choice=reply, in_group=False)
    assert "viết câu trả lời ngay trong chủ đề" in sent[-1].text
    assert await rows(world, Dialog, Dialog.user_ref == "canbo") == []


async def test_bindgroup_needs_staff_and_unbind_returns_to_private_chats(world: World) -> None:
    world, recorder = await topic_world(world)
    member = await link(world, "an", AN)
    sent = await in_group(world, member, text="/bindgroup")
    assert NOT_ALLOWED in sent[-1].text and await rows(world, StaffGroup) == []
    async with world.app.db.reader() as session:
        commune = await queries.unit_by_path(session, path="Tỉnh Tuyên Quang / Xã Hợp Thành")
        other = await queries.unit_by_path(session, path="Tỉnh Tuyên Quang / Xã Kháng Nhật")
    assert commune is not None and other is not None
    forged = world.app.services.signer.sign(f"a:grp:bind:{commune.id}")
    for chat in (member, world.chat("bithu")):  # a member, a secretary: no binding by button
        sent = await in_group(world, chat, choice=forged)
        assert NOT_ALLOWED in sent[-1].text
    elsewhere = world.app.services.signer.sign(f"a:grp:bind:{other.id}")
    sent = await in_group(world, world.chat("canbo"), choice=elsewhere)  # not a unit he serves
    assert NOT_ALLOWED in sent[-1].text and await rows(world, StaffGroup) == []
    staff = world.chat("canbo")
    await bind_group(world, staff)
    sent = await in_group(world, staff, text="/unbindgroup")
    assert "thôi nhận" in sent[-1].text and await rows(world, StaffGroup) == []
    await report(member)
    assert "Yêu cầu #1" in staff.new()[-1].text


async def test_admin_of_several_units_names_the_unit_to_bind(world: World) -> None:
    world, recorder = await topic_world(world)
    admin = world.chat("admin")
    sent = await bind_group(world, admin, "/bindgroup kháng nhật")
    assert "Xã Kháng Nhật" in sent[-1].text
    [group] = await rows(world, StaffGroup)
    assert group.unit_id == (await unit(world, OTHER_COMMUNE)).id


# --- reports, privacy, settings -------------------------------------------------------------------


def english(world: World) -> Settings:
    """The world's settings for an operator whose SOTAY_DEFAULT_LANGUAGE is English."""
    return world.app.settings.model_copy(update={"default_language": "en"})


async def test_tickets_report_and_database_correction_csv(world: World, tmp_path: Path) -> None:
    an, binh = await link(world, "an", AN), await link(world, "binh", BINH)
    staff = world.chat("canbo")
    await report(an)
    await report(binh, category="Sai thông tin trong hồ sơ đảng viên", text="Sai số điện thoại")
    world.clock.advance(timedelta(minutes=30))
    await staff.press_data(world.app.services.signer.sign("a:tk:2:db"))
    await staff.press_data(world.app.services.signer.sign("a:tk:2:reply"))
    await staff.say("Đã chuyển ban xây dựng Đảng sửa")
    world.clock.advance(timedelta(minutes=30))
    await staff.press_data(world.app.services.signer.sign("a:tk:2:done"))
    await binh.press("✅ Đã xong")
    await binh.press("Rất tốt (5)")
    world.clock.advance(timedelta(hours=8))
    await world.app.scheduler.tick()  # ticket 1 escalates: one SLA breach
    out = tmp_path / "corrections.csv"
    text = await tickets_report(english(world), unit_path="Tỉnh Tuyên Quang", csv_path=out)
    assert "Tickets: 2 (open 1, claimed 0, resolved 0, closed 1)" in text
    assert "Account, activation, OTP code" in text and "Wrong data in the member database" in text
    assert "Median time to first response: 0 h 30 min (1 answered)" in text
    assert "Median time to resolution: 1 h 00 min (1 resolved)" in text
    assert "SLA breaches: 1 ticket(s) (50%), 1 escalation(s)" in text
    assert "Satisfaction: 5.0 / 5 from 1 rating(s)" in text
    with out.open(encoding="utf-8") as handle:
        exported = list(csv.reader(handle))
    assert exported == [
        ["ticket_id", "member_code", "cell_path", "category", "created"],
        [
            "2",
            "DEMO002",
            "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu",
            "data",
            "2026-12-01 10:00",
        ],
    ]
    assert "Sai số điện thoại" not in out.read_text(encoding="utf-8")
    other = await tickets_report(world.app.settings, unit_path=OTHER_COMMUNE)
    assert "Số yêu cầu: 0" in other  # SOTAY_DEFAULT_LANGUAGE=vi: the whole report in Vietnamese
    vietnamese = await tickets_report(world.app.settings, unit_path="Xã Hợp Thành")
    assert "Thời gian trả lời đầu tiên (trung vị): 0 giờ 30 phút" in vietnamese
    assert "Median" not in vietnamese and "Tickets" not in vietnamese
    with pytest.raises(AdminError, match="không có đơn vị nào"):
        await tickets_report(world.app.settings, unit_path="Tỉnh Không Có")


async def test_forget_erases_what_the_member_wrote(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an, text="Số của tôi là 0912000001")
    async with world.app.db.session() as session:
        member = await queries.member_by_phone(session, phone="+84912000001")
        assert member is not None
        await core.forget_tickets(session, member.id or 0)
    assert [m.text for m in await rows(world, TicketMessage)] == [""]
    assert len(await rows(world, Ticket)) == 1  # the anonymous count stays


def test_settings_refuse_bad_working_hours() -> None:
    with pytest.raises(SettingsError, match="SOTAY_WORKING_HOURS"):
        load_settings(working_hours="Mon-Fri 17:00-07:30", _env_file=None)
    with pytest.raises(SettingsError, match="SOTAY_HOLIDAYS"):
        load_settings(holidays="2026-13-01", _env_file=None)
    with pytest.raises(SettingsError, match="SOTAY_TICKET_SLA"):
        load_settings(ticket_sla="four hours", _env_file=None)
    assert load_settings(working_hours="24/7", _env_file=None).working_hours.always


async def test_logs_carry_no_text_names_or_phones(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an, text="Bí mật riêng tư")
    await staff.press("✋ Nhận xử lý")
    await staff.press("✍️ Trả lời")
    await staff.say("Câu trả lời kín")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sotay"))
    assert "ticket.created" in logged and "ticket.answered" in logged
    for secret in ("Bí mật", "Câu trả lời kín", "Nguyễn Văn An", "0912", "+84"):
        assert secret not in logged


async def test_member_without_a_cell_is_told_to_see_the_secretary(world: World) -> None:
    async with world.app.db.session() as session:
        member = await queries.member_by_phone(session, phone="+84912000001")
        assert member is not None
        member.cell_id = None
        session.add(member)
    an = await link(world, "an", AN)
    views = await an.say("/support")
    assert "Chưa xác định được chi bộ" in views[-1].text


async def test_restart_keeps_the_open_ticket_and_its_deadline(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an)
    await world.app.close()  # the process stops...
    from bot.app import App

    app = App(world.app.settings, clock=world.clock)  # ...and a new one starts
    app.add_channel(world.recorder)
    try:
        world.clock.advance(timedelta(hours=7))
        assert await app.scheduler.tick() >= 1
        await app.dispatcher.run_once()
        assert "chuyển lên Tỉnh Tuyên Quang" in texts(an.new())
    finally:
        await app.close()


@pytest.mark.usefixtures("scratch_folder")  # the command line runs in an empty folder
async def test_cli_report_and_revoke(world: World, tmp_path: Path) -> None:
    from tests.test_cli import sotay

    an = await link(world, "an", AN)
    await report(an)
    await world.chat("canbo").press("✋ Nhận xử lý")
    env = {"SOTAY_DATABASE_URL": world.app.settings.database_url}
    out = tmp_path / "corrections.csv"
    args = ("tickets", "report", "--unit", "Tỉnh Tuyên Quang", "--csv", str(out))
    result = await asyncio.to_thread(sotay, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert "Số yêu cầu: 1 (chờ nhận 0, đã nhận 1, đã giải quyết 0, đã đóng 0)" in result.stdout
    assert out.read_text(encoding="utf-8").startswith("ticket_id,member_code,cell_path")
    bad = await asyncio.to_thread(sotay, "tickets", "report", "--unit", "Tỉnh Nào Đó", env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("sotay: không có đơn vị nào tên 'Tỉnh Nào Đó'")
    args = ("revoke", "--role", "staff", "--unit", COMMUNE, "--phone", "0912 000 090")
    english = {**env, "SOTAY_DEFAULT_LANGUAGE": "en"}
    result = await asyncio.to_thread(sotay, *args, env=english)
    assert result.returncode == 0, result.stderr
    assert "1 claimed ticket back in the queue" in result.stdout
    assert (await one_ticket(world)).status == TicketStatus.open
