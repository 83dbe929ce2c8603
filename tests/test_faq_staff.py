"""Staff search the FAQ by typing when answering a ticket with an entry (issue 16)."""

from __future__ import annotations

from tests.conftest import World
from tests.test_support import AN, labels, link, report


async def test_staff_find_an_entry_by_typing_and_it_reaches_the_member(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an, text="Máy cứ báo sai, tôi không vào được")
    views = await staff.press("📚 Trả lời bằng hỏi đáp")
    assert "🔎 Tìm mục hỏi đáp bằng chữ" in labels(views[-1])
    views = await staff.press("🔎 Tìm mục hỏi đáp bằng chữ")
    assert "#1" in views[-1].text
    views = await staff.say("khóa tài khoản")
    assert "Tài khoản sổ tay bị khóa" in labels(views[-1])
    await staff.press("Tài khoản sổ tay bị khóa")
    answer, question = an.new()[-2:]
    assert "Trả lời yêu cầu #1" in answer.text and "bị khóa" in answer.text
    assert "đã giúp đồng chí giải quyết được" in question.text  # asked, not left to escalate


async def test_search_that_finds_nothing_asks_again(world: World) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")
    await report(an)
    await staff.press("📚 Trả lời bằng hỏi đáp")
    await staff.press("🔎 Tìm mục hỏi đáp bằng chữ")
    views = await staff.say("zzqxw")
    assert "Không tìm thấy mục nào" in views[0].text
    assert an.new() == [] or all("Trả lời yêu cầu" not in v.text for v in an.new())


async def test_someone_without_the_ticket_cannot_open_the_search(world: World) -> None:
    an = await link(world, "an", AN)
    await report(an)
    stranger = world.chat("q30")
    views = await stranger.press_data(world.app.services.signer.sign("a:tk:1:fs"))
    assert "chưa đăng ký" in views[-1].text  # refused before any ticket data is read
    views = await stranger.say("khóa tài khoản")
    assert all("Tìm mục hỏi đáp" not in v.text for v in views)
