"""Registration and account commands, driven through the router with a recording channel.

These cover the many small and bad-input cases quickly; tests/test_telegram_e2e.py drives the
same flows through the real Telegram stack.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels.base import Blocked
from bot.core import Inbound, View
from storage.models import (
    Application,
    ChannelAccount,
    ConsentRecord,
    Dialog,
    Member,
    MemberStatus,
    OutboxMessage,
)
from tests.conftest import Chat, World

AN_PHONE = "+84912000001"  # Nguyễn Văn An, Chi bộ thôn Cầu Bâu (demo roster)


async def rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where))).all())


async def register_an(chat: Chat, *, lang: str = "Tiếng Việt") -> None:
    await chat.say("/start")
    await chat.press(lang)
    await chat.press("Đồng ý" if lang == "Tiếng Việt" else "I agree")
    await chat.share(AN_PHONE)
    vi = lang == "Tiếng Việt"
    await chat.press("Đúng, là tôi" if vi else "Yes, that's me")
    await chat.press("Có" if vi else "Yes")  # smartphone
    await chat.press("Đã cài" if vi else "Installed")
    await chat.press("Chưa đăng nhập" if vi else "Not yet")  # not logged in yet: help offered
    await chat.press("Để sau" if vi else "Later")


async def test_roster_member_registers_with_shared_contact(world: World) -> None:
    chat = world.chat("u1")
    views = await chat.say("/start")
    assert "Xin chọn ngôn ngữ" in views[-1].text
    await chat.press("Tiếng Việt")
    assert "Đồng ý" in [c.label for row in chat.last.choices for c in row]
    views = await chat.press("Đồng ý")
    assert views[-1].request_contact
    views = await chat.share(AN_PHONE)
    assert "Nguyễn Văn An" in views[-1].text and "Cầu Bâu" in views[-1].text
    await chat.press("Đúng, là tôi")
    await chat.press("Có")
    await chat.press("Đã cài")
    views = await chat.press("Chưa đăng nhập")
    assert "Đăng ký xong" in views[0].text and views[0].choices  # the menu
    assert "đăng nhập" in views[-1].text  # then help with logging in
    await chat.press("Để sau")
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert (member.has_smartphone, member.app_installed, member.app_activated) == (
        True,
        True,
        False,
    )
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "u1")
    assert account.member_id == member.id and account.verified and not account.pending
    consent = await rows(world, ConsentRecord, ConsentRecord.member_id == member.id)
    assert [c.action for c in consent] == ["given"]
    assert await rows(world, Dialog, Dialog.user_ref == "u1") == []


async def test_english_registration_uses_english_texts(world: World) -> None:
    chat = world.chat("u-en", lang_hint="en")
    await register_an(chat, lang="English")
    assert any("You are registered" in v.text for v in world.recorder.sent["u-en"])
    views = await chat.say("/me")
    assert "Nguyễn Văn An" in views[-1].text and "Logged in: No" in views[-1].text


async def test_declining_consent_stores_nothing(world: World) -> None:
    chat = world.chat("u2")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    views = await chat.press("Không đồng ý")
    assert "không lưu thông tin" in views[-1].text.lower()
    assert await rows(world, Dialog, Dialog.user_ref == "u2") == []
    assert await rows(world, ChannelAccount, ChannelAccount.user_ref == "u2") == []


async def test_someone_elses_contact_is_refused(world: World) -> None:
    chat = world.chat("u3")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.share(AN_PHONE, own=False)
    assert "người khác" in views[0].text
    assert views[-1].request_contact  # asked again
    assert await rows(world, ChannelAccount, ChannelAccount.user_ref == "u3") == []


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("typed", "reply"),
    [
        ("12345", "chưa đúng"),
        ("+1 202 555 0100", "không phải số điện thoại Việt Nam"),
        ("abc", "chưa đúng"),
    ],
)
async def test_typed_phone_problems_reprompt(world: World, typed: str, reply: str) -> None:
    world.recorder.typed_phones_only()  # a channel without contact button
    chat = world.chat("u4")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.say(typed)
    assert reply in views[0].text
    assert "gõ số điện thoại" in views[-1].text
    [dialog] = await rows(world, Dialog, Dialog.user_ref == "u4")
    assert dialog.step == "phone" and dialog.data["lang"] == "vi"  # nothing entered is lost


async def test_typing_a_number_where_a_contact_button_exists_is_refused(world: World) -> None:
    chat = world.chat("u5")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.say("0912000001")
    assert "dùng nút" in views[0].text


async def test_typed_phone_needs_secretary_approval(world: World) -> None:
    world.recorder.typed_phones_only()
    chat = world.chat("u6")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.say("0912.000.001")
    assert "Nguyễn" not in views[-1].text and "Cầu Bâu" not in views[-1].text  # nothing shown
    await chat.say("nguyen van  AN")  # the person names themselves, any case, no diacritics
    await chat.press("Không")  # no smartphone: the other two questions are skipped
    assert "người có thẩm quyền" in chat.last.text
    assert all("Cầu Bâu" not in v.text for v in chat.new())
    views = await chat.say("/status")
    assert "chưa đăng ký" in views[-1].text  # no member features until approved
    secretary = world.chat("bithu")
    request = secretary.new()[-1]
    assert "Nguyễn Văn An" in request.text and "chưa xác minh" in request.text
    views = await secretary.press("✓ Duyệt")
    assert "Đã duyệt" in views[-1].text
    assert "đã duyệt" in chat.new()[-1].text
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "u6")
    assert not account.pending and account.verified
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert member.has_smartphone is False and member.app_installed is None  # not asked
    again = await secretary.press("✓ Duyệt")  # a double tap decides nothing twice
    assert "đã được xử lý" in again[-1].text


async def test_applicant_not_in_roster_is_approved_by_the_cell_secretary(world: World) -> None:
    chat = world.chat("u7")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.share("0987654321")
    assert "chưa tìm thấy" in views[-1].text
    await chat.press("Xin đăng ký vào chi bộ")
    views = await chat.say("1234")
    assert "chỉ gồm chữ cái" in views[0].text
    await chat.say("Nguyễn Thị Mới")
    views = await chat.say("cau bau")  # search without diacritics
    assert "Chi bộ thôn Cầu Bâu" in [c.label for row in views[-1].choices for c in row]
    await chat.press("Chi bộ thôn Cầu Bâu")
    await chat.press("Có")
    await chat.press("Đã cài")
    await chat.press("Đã đăng nhập")
    assert "Cầu Bâu" in chat.last.text
    secretary = world.chat("bithu")
    assert "Nguyễn Thị Mới" in secretary.new()[-1].text
    await secretary.press("✓ Duyệt")
    assert "Nguyễn Thị Mới" in chat.new()[-1].text
    [member] = await rows(world, Member, Member.full_name == "Nguyễn Thị Mới")
    assert member.source == "application" and member.app_activated is True


async def test_applicant_rejected_is_told_and_data_dropped(world: World) -> None:
    chat = world.chat("u8")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    await chat.share("0987654322")
    await chat.press("Xin đăng ký vào chi bộ")
    await chat.say("Trần Văn Lạ")
    await chat.press("Tỉnh Tuyên Quang")
    await chat.press("Xã Hợp Thành")
    await chat.press("Chi bộ thôn Cầu Bâu")
    await chat.press("Không")
    secretary = world.chat("bithu")
    await secretary.press("✗ Từ chối")
    assert "chưa được duyệt" in chat.new()[-1].text
    [application] = await rows(world, Application, Application.user_ref == "u8")
    assert application.full_name is None and application.phone is None


async def test_other_cells_secretary_cannot_approve_with_forged_button(world: World) -> None:
    chat = world.chat("u9")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    await chat.share("0987654323")
    await chat.press("Xin đăng ký vào chi bộ")
    await chat.say("Lê Thị Khác")
    await chat.say("dong gian")
    await chat.press("Chi bộ thôn Đồng Giàn")  # Xã Kháng Nhật: bithu is not its secretary
    await chat.press("Không")
    [application] = await rows(world, Application, Application.user_ref == "u9")
    secretary = world.chat("bithu")
    signed = world.app.services.signer.sign(f"a:appr:{application.id}:y")
    views = await secretary.press_data(signed)
    assert "không có quyền" in views[-1].text
    tampered = await secretary.press_data(f"a:appr:{application.id}:y~AAAAAAAA")
    assert "không còn hiệu lực" in tampered[-1].text
    [application] = await rows(world, Application, Application.user_ref == "u9")
    assert application.status == "pending"


async def test_stale_button_is_refused_and_current_step_asked_again(world: World) -> None:
    chat = world.chat("u10")
    await chat.say("/start")
    first = chat.last
    await chat.press("Tiếng Việt")
    views = await chat.press_data(first.choices[1][0].data)  # "English" on the old message
    assert "cũ" in views[0].text
    assert "đồng ý" in views[-1].text.lower()


async def test_text_where_a_choice_is_expected_reprompts(world: World) -> None:
    chat = world.chat("u11")
    await chat.say("/start")
    views = await chat.say("xin chào 👋")
    assert "chọn một trong các nút" in views[0].text
    views = await chat.say("2")  # typed number picks the option
    assert "agree" in views[-1].text.lower()


@pytest.mark.engine_neutral
@pytest.mark.parametrize("step_presses", [0, 1, 2, 3])
async def test_cancel_at_any_step_saves_nothing(world: World, step_presses: int) -> None:
    chat = world.chat(f"c{step_presses}")
    await chat.say("/start")
    for label in ["Tiếng Việt", "Đồng ý"][:step_presses]:
        await chat.press(label)
    if step_presses == 3:
        await chat.share(AN_PHONE)
    views = await chat.say("/cancel")
    assert "Đã hủy" in views[-1].text
    assert await rows(world, Dialog, Dialog.user_ref == chat.user) == []
    assert await rows(world, ChannelAccount, ChannelAccount.user_ref == chat.user) == []


async def test_idle_dialog_expires_with_a_friendly_message(world: World) -> None:
    from datetime import timedelta

    chat = world.chat("u12")
    await chat.say("/start")
    world.clock.advance(timedelta(hours=25))
    views = await chat.press("Tiếng Việt")
    assert "quá lâu" in views[0].text
    assert await rows(world, Dialog, Dialog.user_ref == "u12") == []


async def test_restart_mid_dialog_resumes_at_same_step(world: World) -> None:
    from bot.app import App

    chat = world.chat("u13")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    await world.app.close()
    fresh = App(world.app.settings, clock=world.clock)
    fresh.add_channel(world.recorder)
    world.app = fresh
    chat.app = fresh
    views = await chat.press("Đồng ý")
    assert views[-1].request_contact


async def test_same_update_twice_is_processed_once(world: World) -> None:
    chat = world.chat("u14")
    event = Inbound(channel="rec", user_ref="u14", chat_ref="u14", key="dup-1", text="/start")
    assert await world.app.router.handle(event) is True
    assert await world.app.router.handle(event) is False
    await world.app.dispatcher.run_once()
    assert len(chat.new()) == 1


async def test_two_updates_of_one_user_at_once_are_serialised(world: World) -> None:
    import asyncio

    chat = world.chat("u15")
    await chat.say("/start")
    await chat.press("Tiếng Việt")
    consent = chat.last
    press = consent.choices[0][0].data
    events = [
        Inbound(channel="rec", user_ref="u15", chat_ref="u15", key=f"p{i}", choice=press)
        for i in range(2)
    ]
    await asyncio.gather(*(world.app.router.handle(e) for e in events))
    await world.app.dispatcher.run_once()
    views = chat.new()
    # the first press moved on to the phone step; the second, handled after it, was stale
    assert views[0].request_contact
    assert "cũ" in views[1].text
    [dialog] = await rows(world, Dialog, Dialog.user_ref == "u15")
    assert dialog.step == "phone"


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    "text",
    ["x" * 5000, "\u200b\u200f/start", "Nguye\u0302\u0303n", "🙂🙂🙂", "\u202eabc"],
)
async def test_odd_text_never_crashes(world: World, text: str) -> None:
    chat = world.chat("odd")
    views = await chat.say(text)
    assert views and all(v.text for v in views)
    assert "lỗi" not in views[-1].text


async def test_blocked_user_is_marked_unreachable(world: World) -> None:
    chat = world.chat("u16")
    await register_an(chat)
    world.recorder.blocked.add("u16")
    await chat.say("/me")
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "u16")
    assert account.reachable is False
    blocked = await rows(
        world, OutboxMessage, OutboxMessage.chat_ref == "u16", OutboxMessage.status == "blocked"
    )
    assert len(blocked) == 1


async def test_a_user_who_writes_while_a_send_to_them_fails_gets_the_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send to them fails with 403 (they had blocked the bot) while they unblock it and
    write to us: what was queued before stays blocked, the answer to what they wrote goes,
    and the account stays reachable (the failure used to be recorded over their message)."""
    chat = world.chat("u18")
    await register_an(chat)
    async with world.app.db.session() as session:
        world.app.services.outbox.add(session, channel="rec", chat_ref="u18", view=View("Tin cũ"))
    send = world.recorder.send
    wrote: list[bool] = []

    async def failing_while_they_write(chat_ref: str, view: View) -> str:
        if chat_ref == "u18" and not wrote:
            wrote.append(True)
            world.clock.advance(timedelta(seconds=1))
            await world.app.router.handle(chat._event(text="/me"))  # meanwhile, they write
            raise Blocked("403 while they unblocked the bot")
        return await send(chat_ref, view)

    monkeypatch.setattr(world.recorder, "send", failing_while_they_write)
    await world.app.dispatcher.run_once()
    views = chat.new()
    assert wrote and any("Nguyễn Văn An" in v.text for v in views)  # the answer to /me
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "u18")
    assert account.reachable is True
    blocked = await rows(
        world, OutboxMessage, OutboxMessage.chat_ref == "u18", OutboxMessage.status == "blocked"
    )
    assert [View.from_payload(r.payload).text for r in blocked] == ["Tin cũ"]


async def test_forget_deletes_personal_data_keeps_counts(world: World) -> None:
    chat = world.chat("u17")
    await register_an(chat)
    await chat.say("/forget")
    views = await chat.press("Giữ lại")
    assert "giữ nguyên" in views[-1].text
    await chat.say("/forget")
    views = await chat.press("Xóa thông tin")
    assert "Đã xóa" in views[-1].text
    assert await rows(world, Member, Member.phone == AN_PHONE) == []
    [member] = await rows(
        world, Member, Member.member_code.is_(None), Member.status == MemberStatus.forgotten
    )  # type: ignore[union-attr]
    assert member.full_name is None and member.has_smartphone is True
    assert await rows(world, ChannelAccount, ChannelAccount.user_ref == "u17") == []
    consent = await rows(world, ConsentRecord)
    assert [(c.member_id, c.action) for c in consent] == [(None, "withdrawn")]
    views = await chat.say("/me")
    assert "chưa đăng ký" in views[-1].text


async def test_status_updates_answers(world: World) -> None:
    chat = world.chat("u18")
    await register_an(chat)
    await chat.say("/status")
    await chat.press("Có")
    await chat.press("Đã cài")
    views = await chat.press("Đã đăng nhập")
    assert "Đã lưu" in views[-1].text
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert member.app_activated is True


async def test_member_cannot_use_secretary_commands(world: World) -> None:
    chat = world.chat("u19")
    await register_an(chat)
    for command in ("/addmember", "/invite", "/approvals"):
        views = await chat.say(command)
        assert "không có quyền" in views[-1].text


async def test_unregistered_user_is_told_to_start(world: World) -> None:
    chat = world.chat("u20")
    assert "/start" in (await chat.say("/me"))[-1].text
    answer = (await chat.say("quên mật khẩu"))[-1]
    assert "Quên mật khẩu" in answer.text  # questions are answered before registering too


async def test_help_lists_every_command_of_the_persons_roles(world: World) -> None:
    """/help comes from the features' registrations: a role's commands are never missing."""
    newcomer = (await world.chat("stranger").say("/help"))[-1].text
    assert "/start" in newcomer and "/queue" not in newcomer and "/meetings" not in newcomer
    secretary = (await world.chat("bithu").say("/help"))[-1].text
    assert "/meetings" in secretary and "/meeting –" in secretary and "/venues" not in secretary
    staff = (await world.chat("canbo").say("/help"))[-1].text
    by_role = staff.split("Theo vai trò của đồng chí:")[1]
    assert "/queue" in by_role and "/notice" in by_role and "/venues" in by_role
    assert "/meetings" not in by_role  # everyone's commands are listed above, once
    admin = (await world.chat("admin").say("/help"))[-1].text
    assert "/faqedit" in admin and "/faqgaps" in admin


async def test_the_menu_offers_each_role_its_work(world: World) -> None:
    def labels(view: View) -> set[str]:
        return {c.label for row in view.choices for c in row}

    member = labels((await world.chat("bithu").say("/menu"))[-1])
    staff = labels((await world.chat("canbo").say("/menu"))[-1])
    assert {"📚 Tập huấn", "💬 Góp ý phần mềm", "📥 Yêu cầu hỗ trợ đang chờ"} <= member
    assert {"📥 Yêu cầu hỗ trợ đang chờ", "📶 Internet nơi sinh hoạt", "📢 Gửi thông báo"} <= staff
    assert "📶 Internet nơi sinh hoạt" not in member  # a secretary is not staff
    views = await world.chat("canbo").press("📥 Yêu cầu hỗ trợ đang chờ")  # the button works
    assert views and "không có quyền" not in views[-1].text
