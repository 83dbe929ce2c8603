"""A conversation that forgives (issue 17), written as transcripts: what the person types, what
they must get back. Older members type labels instead of pressing, without diacritics, and use
short synonyms; each transcript types where a button would be pressed.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.choices import pick
from storage.models import Application, ApplicationStatus, ChannelAccount, Member, Role
from tests.conftest import Chat, World

AN_PHONE = "+84912000001"  # Nguyễn Văn An, Chi bộ thôn Cầu Bâu (demo roster)


async def rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where))).all())


def texts(views) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(view.text for view in views)


def labels(chat: Chat) -> list[str]:
    return [choice.label for row in chat.last.choices for choice in row]


# --- the rule, as a table --------------------------------------------------------------------

YES_NO = [["Có", "yes"], ["Không", "no"]]
INSTALLED = [["Đã cài", "yes"], ["Chưa cài", "no"]]
APPROVAL = [["✓ Duyệt", "approve"], ["✗ Từ chối", "reject"]]
NOTICE = [["✓ Tham dự", "attend"], ["✗ Vắng, có lý do", "absent"]]
KINDS = [["Sinh hoạt định kỳ", "regular"], ["Sinh hoạt chuyên đề", "thematic"]]
ATTENDANCE = [["Nguyễn Văn An", "m1"], ["Trần Thị Bình", "m2"], ["Xong ✓", "done"]]


@pytest.mark.parametrize(
    ("choices", "typed", "picked"),
    [
        (YES_NO, "co", "yes"),
        (YES_NO, "Ừ", "yes"),
        (YES_NO, "vâng ạ", "yes"),
        (YES_NO, "OK", "yes"),
        (YES_NO, "ko", "no"),
        (YES_NO, "chưa", "no"),
        (YES_NO, "chua a", "no"),
        (YES_NO, "không vào được", None),  # a sentence is a question, never an answer
        (INSTALLED, "roi", "yes"),
        (INSTALLED, "chua cai", "no"),
        (INSTALLED, "có", "yes"),
        (APPROVAL, "duyet", "approve"),
        (APPROVAL, "Duyệt", "approve"),
        (APPROVAL, "dong y", "approve"),
        (APPROVAL, "co", None),  # an approval is never given by a bare "yes"
        (APPROVAL, "tu choi", "reject"),
        (NOTICE, "co", "attend"),
        (NOTICE, "tham du", "attend"),
        (NOTICE, "vắng", "absent"),
        (NOTICE, "vang", None),  # "vâng" (yes) or "vắng" (absent)? only the marks can tell
        (ATTENDANCE, "xong", "done"),
        (ATTENDANCE, "luu", "done"),
        (ATTENDANCE, "tran thi binh", "m2"),
        (ATTENDANCE, "2", "m2"),
        (ATTENDANCE, "4", None),
        (ATTENDANCE, "/start", None),
        (KINDS, "dinh ky", "regular"),
        (KINDS, "chuyen de", "thematic"),
        (KINDS, "sinh hoat", None),  # both are
    ],
)
def test_typed_answer_names_one_choice(
    choices: list[list[str]], typed: str, picked: str | None
) -> None:
    assert pick(choices, typed) == picked


# --- transcripts -------------------------------------------------------------------------------


async def test_registration_answered_by_typing_without_diacritics(world: World) -> None:
    chat = world.chat("u1")
    await chat.say("/start")
    await chat.say("tieng viet")
    views = await chat.say("dong y")
    assert views[-1].request_contact
    views = await chat.share(AN_PHONE)
    assert "Nguyễn Văn An" in views[-1].text
    await chat.say("dung")  # it is me
    await chat.say("co")  # smartphone
    await chat.say("roi")  # installed
    views = await chat.say("chưa")  # not logged in yet
    assert "Đăng ký xong" in texts(views)
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert (member.has_smartphone, member.app_installed, member.app_activated) == (
        True,
        True,
        False,
    )


async def test_secretary_approves_by_typing_the_label_outside_any_step(world: World) -> None:
    world.recorder.typed_phones_only()
    an, secretary = world.chat("an"), world.chat("bithu")
    await an.say("/start")
    await an.say("Tiếng Việt")
    await an.say("Đồng ý")
    await an.say("0912000001")
    await an.say("nguyen van an")
    await an.say("khong")  # no smartphone: the request goes out
    request = secretary.new()
    assert any(
        "Duyệt" in label
        for view in request
        for row in view.choices
        for label in [c.label for c in row]
    )
    views = await secretary.say("duyet")
    assert "Đã duyệt" in texts(views)
    [application] = await rows(world, Application)
    assert application.status == ApplicationStatus.approved
    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == "an")
    assert not account.pending


async def test_text_naming_no_offered_choice_is_a_question(world: World) -> None:
    world.recorder.typed_phones_only()
    an, secretary = world.chat("an"), world.chat("bithu")
    for typed in ("/start", "Tiếng Việt", "Đồng ý", "0912000001", "nguyen van an", "khong"):
        await an.say(typed)
    secretary.new()
    views = await secretary.say("làm sao để cài ứng dụng sổ tay")
    assert "Đã duyệt" not in texts(views)
    [application] = await rows(world, Application)
    assert application.status == ApplicationStatus.pending  # still waiting for a decision


# --- small talk ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("cam on", "Không có gì"),
        ("Cảm ơn đồng chí!", "Không có gì"),
        ("xin chao", "Xin chào"),
        ("alo", "Xin chào"),
        ("ok", "Vâng ạ"),
        ("quay lai", "không có việc nào đang làm dở"),
    ],
)
async def test_small_talk_gets_a_kind_word_in_vietnamese(
    world: World, typed: str, expected: str
) -> None:
    chat = world.chat("u9", lang_hint=None)
    views = await chat.say(typed)
    assert len(views) == 1 and expected in views[0].text
    assert not views[0].choices  # nothing offered: no FAQ suggestions, no "send to staff"


async def test_a_question_after_thanks_still_reaches_the_faq(world: World) -> None:
    chat = world.chat("u9")
    views = await chat.say("cảm ơn, cho hỏi cách cài ứng dụng trên điện thoại android")
    assert "Không có gì" not in texts(views)


# --- help at the moment of "not yet" -------------------------------------------------------------


async def register_not_installed(chat: Chat) -> list:  # type: ignore[type-arg]
    """A roster member with a Telegram contact who has not installed: 7 messages."""
    for typed in ("/start", "Tiếng Việt", "Đồng ý"):
        await chat.say(typed)
    await chat.share(AN_PHONE)
    for typed in ("Đúng, là tôi", "co"):
        await chat.say(typed)
    return await chat.say("chua cai")


async def test_not_installed_reaches_install_steps_in_one_more_message(world: World) -> None:
    chat = world.chat("u1")
    views = await register_not_installed(chat)
    assert "Đăng ký xong" in texts(views)
    assert "loại nào" in views[-1].text
    assert {"Android (Samsung, Oppo…)", "iPhone", "Nhờ bí thư chi bộ giúp", "Để sau"} <= set(
        labels(chat)
    )
    views = await chat.say("android")  # the 8th message
    assert "CH Play" in texts(views)  # the FAQ's own Android steps
    assert "hỏi lại" in views[-1].text
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert member.app_installed is False


async def test_check_back_asks_again_and_updates_the_status(world: World) -> None:
    chat = world.chat("u1")
    await register_not_installed(chat)
    await chat.say("de sau")
    world.clock.advance(timedelta(days=3, minutes=1))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    views = chat.new()
    assert "đã cài được Sổ tay" in views[-1].text
    await chat.say("roi")  # installed now
    views = await chat.say("da dang nhap")
    assert "Đã lưu" in texts(views)
    [member] = await rows(world, Member, Member.phone == AN_PHONE)
    assert (member.app_installed, member.app_activated) == (True, True)


async def test_member_asks_the_secretary_for_help(world: World) -> None:
    chat, secretary = world.chat("u1"), world.chat("bithu")
    await register_not_installed(chat)
    views = await chat.say("nho bi thu")
    assert "đã báo bí thư" in texts(views)
    told = secretary.new()
    assert any("Nguyễn Văn An" in v.text and "nhờ bí thư giúp" in v.text for v in told)


# --- applicants, names, units --------------------------------------------------------------------


async def test_applicant_is_told_where_the_application_stands(world: World) -> None:
    chat = world.chat("u7")
    for typed in ("/start", "Tiếng Việt", "Đồng ý"):
        await chat.say(typed)
    await chat.share("0987654321")
    await chat.say("Xin đăng ký vào chi bộ")
    await chat.say("tran thi lan")  # stored in proper case
    views = await chat.say("co quan xa")  # two cells of that name, in two communes
    found = labels(chat)
    assert "Chi bộ cơ quan xã — Xã Hợp Thành" in found
    assert "Chi bộ cơ quan xã — Xã Kháng Nhật" in found
    await chat.say("Chi bộ cơ quan xã — Xã Kháng Nhật")
    await chat.say("khong")  # no smartphone
    for command in ("/menu", "/me"):
        views = await chat.say(command)
        assert "chưa đăng ký" not in views[-1].text
        assert "Chi bộ cơ quan xã — Xã Kháng Nhật" in views[-1].text
    [application] = await rows(world, Application)
    assert application.full_name == "Tran Thi Lan"


async def test_me_is_in_words(world: World) -> None:
    chat = world.chat("u1")
    for typed in ("/start", "Tiếng Việt", "Đồng ý"):
        await chat.say(typed)
    await chat.share(AN_PHONE)
    for typed in ("Đúng, là tôi", "khong"):
        await chat.say(typed)
    views = await chat.say("/me")
    assert "Ngôn ngữ: Tiếng Việt" in views[-1].text
    assert "Vai trò: —" not in views[-1].text
    assert "Nhắn tin qua: Rec" in views[-1].text  # never an internal lower-case name


# --- meetings: dates and notices -----------------------------------------------------------------


async def test_a_past_day_this_year_is_confirmed_not_moved_silently(world: World) -> None:
    secretary = world.chat("bithu")  # the clock says 1 December 2026
    await secretary.say("/meeting")
    await secretary.say("sinh hoat dinh ky")
    views = await secretary.say("30/11")
    assert "đã qua" in views[-1].text and "2027" in views[-1].text
    views = await secretary.say("nhap lai")
    assert "Ngày họp" in views[-1].text
    views = await secretary.say("mai")  # 2 December
    assert "Mấy giờ" in views[-1].text


async def test_member_answers_a_meeting_notice_by_typing(world: World) -> None:
    from tests.test_meetings import create_meeting, link_members

    members = await link_members(world)
    await create_meeting(world.chat("bithu"))
    an, binh = members["Nguyễn Văn An"], members["Trần Thị Bình"]
    assert "Sinh hoạt chi bộ" in an.new()[-1].text
    views = await an.say("co")
    assert "Đã ghi: đồng chí tham dự" in texts(views)
    binh.new()
    views = await binh.say("vắng")
    assert "Lý do vắng" in views[-1].text
    views = await binh.say("om")  # "Ốm", typed without diacritics
    assert "Đã ghi: đồng chí vắng" in texts(views)


# --- wording -------------------------------------------------------------------------------------


async def test_no_buttons_are_mentioned_where_there_are_none(world: World) -> None:
    world.recorder.capabilities = dataclasses.replace(world.recorder.capabilities, buttons=False)
    chat = world.chat("u5")
    await chat.say("/start")
    views = await chat.say("bảy")  # names no choice of the language question
    assert "gõ số thứ tự" in views[0].text and "nút" not in views[0].text.lower()


async def test_quay_lai_goes_back_one_step(world: World) -> None:
    chat = world.chat("u1")
    await chat.say("/start")
    views = await chat.say("quay lai")  # at the first question: nowhere to go back to
    assert "câu hỏi đầu tiên" in views[0].text
    await chat.say("Tiếng Việt")
    await chat.say("Đồng ý")
    views = await chat.say("quay lại")
    assert "đồng ý" in views[-1].text.lower()  # the consent question again
    views = await chat.say("dong y")
    assert views[-1].request_contact


@pytest.mark.parametrize(
    ("typed", "hour"),
    [("tối", "19:30"), ("chieu nay", "14:00"), ("toi 7h", "19:00"), ("2h chiều", "14:00")],
)
def test_parts_of_the_day_are_times(typed: str, hour: str) -> None:
    from bot.timeparse import parse_time

    parsed = parse_time(typed)
    assert parsed is not None and not parsed.ambiguous and f"{parsed.value:%H:%M}" == hour


async def test_ticket_confirmation_says_simply_that_staff_will_answer(world: World) -> None:
    from tests.test_support import AN, link

    an = await link(world, "an", AN)
    await an.say("/support")
    views = await an.say("tai khoan kich hoat")  # the category "Tài khoản, kích hoạt, mã OTP"
    assert "chọn một" not in views[-1].text  # understood: the description is asked next
    views = await an.say("OTP không bao giờ về máy")
    confirmation = views[-1].text
    assert "Đã ghi nhận yêu cầu #" in confirmation and "sẽ trả lời" in confirmation
    assert "chuyển lên cấp trên" not in confirmation and ":" not in confirmation.split("#")[1]


# --- what was left of issue 17: FAQ-answered tickets, ratings, jargon, the help list, "7" -----


async def faq_answered_ticket(world: World) -> Chat:
    """An reports a difficulty; the commune's staff answer it with an FAQ entry."""
    from tests.test_support import AN, link, report

    an = await link(world, "an", AN)
    await report(an, text="Không nhận được mã OTP")
    staff = world.chat("canbo")
    views = await staff.press("📚 Trả lời bằng hỏi đáp")
    await staff.press([c.label for row in views[-1].choices for c in row][0])
    return an


async def test_an_faq_answered_ticket_asks_the_member_and_closes_on_yes(world: World) -> None:
    from storage.models import Ticket, TicketStatus

    an = await faq_answered_ticket(world)
    answer, question = an.new()[-2:]
    assert "Trả lời yêu cầu #1" in answer.text
    assert "đã giúp đồng chí giải quyết được khó khăn (yêu cầu #1) chưa?" in question.text
    views = await an.say("co")  # typed, not pressed
    assert "chấm điểm" in views[-1].text
    [ticket] = await rows(world, Ticket)
    assert ticket.status == TicketStatus.closed
    world.clock.advance(timedelta(hours=10))  # past the SLA: nothing escalates
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    assert all("chuyển lên" not in v.text for v in an.new())
    views = await an.say("rat tot")  # the score in words, without diacritics
    [ticket] = await rows(world, Ticket)
    assert ticket.rating == 5 and "Tôi chưa hiểu" not in texts(views)


async def test_an_faq_answer_that_did_not_help_goes_back_to_staff(world: World) -> None:
    from storage.models import Ticket, TicketStatus

    an = await faq_answered_ticket(world)
    staff = world.chat("canbo")
    staff.new()
    await an.say("chua duoc")
    [ticket] = await rows(world, Ticket)
    assert ticket.status == TicketStatus.open and ticket.resolved_at is None
    assert any("#1" in v.text for v in staff.new())  # staff are told


async def test_forget_withdraws_an_faq_answered_ticket(world: World) -> None:
    from storage.models import Ticket, TicketStatus

    an = await faq_answered_ticket(world)
    await an.say("/forget")
    views = await an.press("Xóa thông tin")
    assert "Đã rút 1 yêu cầu" in views[-1].text
    [ticket] = await rows(world, Ticket)
    assert ticket.status == TicketStatus.closed  # not left waiting, blank, for anyone


@pytest.mark.parametrize(
    ("typed", "score"), [("rat tot", 5), ("Rất tốt", 5), ("tot", 4), ("kem", 1), ("3", 3)]
)
def test_scores_are_understood_in_words(typed: str, score: int) -> None:
    from bot.i18n import t

    offered = [[t("vi", f"sup.rate.{n}"), str(n)] for n in range(1, 6)]
    assert pick(offered, typed) == str(score)


def test_member_facing_texts_carry_no_database_jargon() -> None:
    from bot.i18n import catalog

    jargon = [key for key, text in catalog("vi").items() if "CSDL" in text or "(JSON)" in text]
    assert jargon == []


async def test_secretary_lists_who_asked_for_help(world: World) -> None:
    chat, secretary = world.chat("u1"), world.chat("bithu")
    await register_not_installed(chat)
    await chat.say("nho bi thu")
    told = secretary.new()
    assert any("/needhelp" in v.text for v in told)
    views = await secretary.say("/menu")
    assert "🙋 Ai nhờ giúp cài Sổ tay" in [c.label for row in views[-1].choices for c in row]
    views = await secretary.press("🙋 Ai nhờ giúp cài Sổ tay")
    assert "Nguyễn Văn An (Chi bộ thôn Cầu Bâu) — chưa cài được Sổ tay" in views[-1].text
    # a secretary of another cell sees nothing of it, whatever they type
    other = world.chat("other-secretary")
    from tests.test_support import grant, link

    await link(world, "other-secretary", "+84912000015")  # a member of Chi bộ thôn Đồng Giàn
    await grant(
        world,
        "+84912000015",
        Role.secretary,
        "Tỉnh Tuyên Quang / Xã Kháng Nhật / Chi bộ thôn Đồng Giàn",
    )
    views = await other.say("/needhelp")
    assert "Nguyễn Văn An" not in texts(views) and "Chưa có đảng viên nào" in texts(views)
    views = await chat.say("/needhelp")  # a plain member may not open it
    assert "Nguyễn Văn An (Chi bộ" not in texts(views)
    from handlers.privacy import stored_about

    async with world.app.db.reader() as session:
        [member] = (await session.exec(select(Member).where(Member.phone == AN_PHONE))).all()
        about = await stored_about(session, member)
    assert about["help_asked_of_secretary"]["need"] == "install"  # shown in /me's file
    # once logged in, the member leaves the list
    async with world.app.db.session() as session:
        [member] = (await session.exec(select(Member).where(Member.phone == AN_PHONE))).all()
        member.app_installed = member.app_activated = True
        session.add(member)
    views = await secretary.say("/needhelp")
    assert "Chưa có đảng viên nào" in views[-1].text


async def test_a_number_from_an_older_message_is_answered_kindly(world: World) -> None:
    from tests.test_support import AN, link

    an = await link(world, "an", AN)
    views = await an.say("/menu")  # many choices: 7 is one of them
    assert len([c for row in views[-1].choices for c in row]) >= 7
    await an.say("/tickets")  # a newer message with fewer choices replaces them
    await an.say("/me")
    views = await an.say("7")
    text = texts(views)
    assert "Tôi chưa hiểu" not in text
    assert "Số 7 không có trong các lựa chọn đang chờ" in text
    assert views[-1].choices  # the current choices, offered again
    views = await an.say("1")  # and they work
    assert "Số 1 không có" not in texts(views)


async def test_a_number_with_no_choices_waiting_is_answered_kindly(world: World) -> None:
    views = await world.chat("stranger").say("7")
    assert "Tôi chưa hiểu" not in texts(views)
    assert "không có lựa chọn nào đang chờ" in texts(views) and "/start" in texts(views)


async def test_forget_erases_the_request_for_help(world: World) -> None:
    from storage.forgive_models import InstallHelp

    chat = world.chat("u1")
    await register_not_installed(chat)
    await chat.say("nho bi thu")
    assert len(await rows(world, InstallHelp)) == 1
    await chat.say("/forget")
    await chat.press("Xóa thông tin")
    assert await rows(world, InstallHelp) == []
    views = await world.chat("bithu").say("/needhelp")
    assert "Chưa có đảng viên nào" in views[-1].text
