"""Invites and registering on a member's behalf; the CLI's grant and invite commands."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from storage.models import ConsentRecord, Invite, Member, Role, RoleGrant, Unit
from tests.conftest import World


async def all_rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where))).all())


async def test_secretary_registers_member_without_smartphone(world: World) -> None:
    secretary = world.chat("bithu")
    views = await secretary.say("/addmember")
    assert "Họ và tên" in views[-1].text
    await secretary.say("Giàng Thị Già")
    views = await secretary.say("0912 12")
    assert "chưa đúng" in views[0].text
    await secretary.press("Không có số")
    await secretary.press("Không")
    views = await secretary.press("Có")
    assert "Đã đăng ký hộ" in views[-1].text and "Cầu Bâu" in views[-1].text
    [member] = await all_rows(world, Member, Member.full_name == "Giàng Thị Già")
    assert member.has_smartphone is False and member.phone is None
    assert member.source == "added_by_secretary"
    consent = await all_rows(world, ConsentRecord, ConsentRecord.member_id == member.id)
    assert consent[0].action == "given_by_secretary"


async def test_addmember_refuses_phone_of_another_cell(world: World) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/addmember")
    await secretary.say("Ai Đó")
    views = await secretary.say("0912000015")  # a member of Chi bộ thôn Đồng Giàn
    assert "chi bộ khác" in views[0].text


async def test_addmember_without_consent_saves_nothing(world: World) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/addmember")
    await secretary.say("Người Chưa Đồng Ý")
    await secretary.press("Không có số")
    await secretary.press("Có")
    views = await secretary.press("Không")
    assert "Chưa lưu" in views[-1].text
    assert await all_rows(world, Member, Member.full_name == "Người Chưa Đồng Ý") == []


async def test_secretary_invites_member_who_registers_without_approval(world: World) -> None:
    secretary = world.chat("bithu")
    await secretary.say("/invite")
    views = await secretary.press("đảng viên")
    assert "Mã:" in views[-1].text
    [invite] = await all_rows(world, Invite)
    assert invite.role == Role.member
    newcomer = world.chat("new1")
    await newcomer.say(f"/start {invite.code}")
    await newcomer.press("Tiếng Việt")
    await newcomer.press("Đồng ý")
    await newcomer.share("0977000111")
    await newcomer.press("Xin đăng ký vào chi bộ")
    await newcomer.say("Đinh Văn Mời")
    await newcomer.press("Không")
    assert "Đăng ký xong" in newcomer.last.text
    [member] = await all_rows(world, Member, Member.full_name == "Đinh Văn Mời")
    assert member.cell_id == invite.unit_id
    # single use: a second person with the same code is told and goes the normal way
    other = world.chat("new2")
    views = await other.say(f"/start {invite.code}")
    assert "hết hạn" in views[0].text


async def test_expired_invite_is_refused(world: World) -> None:
    admin = world.chat("admin")
    await admin.say("/invite")
    await admin.press("cán bộ hỗ trợ")
    views = await admin.press("✓ Chọn Tỉnh Tuyên Quang")
    assert "Mã:" in views[-1].text
    [invite] = await all_rows(world, Invite)
    world.clock.advance(timedelta(days=8))
    views = await world.chat("late").say(f"/start {invite.code}")
    assert "hết hạn" in views[0].text


async def test_admin_invites_staff_for_a_commune_and_role_is_granted(world: World) -> None:
    admin = world.chat("admin")
    await admin.say("/invite")
    await admin.press("cán bộ hỗ trợ")
    await admin.press("Xã Kháng Nhật")
    views = await admin.press("✓ Chọn Xã Kháng Nhật")
    assert "Xã Kháng Nhật" in views[-1].text
    [invite] = await all_rows(world, Invite)
    staff = world.chat("staff1")
    await staff.say(f"/start {invite.code}")
    await staff.press("Tiếng Việt")
    await staff.press("Đồng ý")
    await staff.share("0912000003")  # in the roster: Lê Văn Cường
    await staff.press("Đúng, là tôi")
    await staff.press("Không")
    [cuong] = await all_rows(world, Member, Member.phone == "+84912000003")
    grants = await all_rows(world, RoleGrant, RoleGrant.member_id == cuong.id)
    assert [(g.role, g.unit_id) for g in grants] == [(Role.staff, invite.unit_id)]
    assert "cán bộ hỗ trợ" in " ".join(v.text for v in world.recorder.sent["staff1"])


async def test_secretary_cannot_invite_a_secretary(world: World) -> None:
    secretary = world.chat("bithu")
    views = await secretary.say("/invite")
    labels = [c.label for row in views[-1].choices for c in row]
    assert labels == ["đảng viên", "phó bí thư chi bộ"]
    forged = world.app.services.signer.sign(f"d:{1}:secretary")
    views = await secretary.press_data(forged)
    assert await all_rows(world, Invite) == []


async def test_invite_code_typed_in_lower_case_with_spaces_and_dashes_is_accepted(
    world: World,
) -> None:
    """A code read aloud and typed on a keypad: case, spaces, dashes and O/I look-alikes are
    forgiven; still single use."""
    secretary = world.chat("bithu")
    await secretary.say("/invite")
    views = await secretary.press("đảng viên")
    [invite] = await all_rows(world, Invite)
    assert invite.code.isupper() and len(invite.code) == 12
    assert not set(invite.code) & set("ILOU")  # nothing to confuse when read aloud
    shown = f"{invite.code[:4]}-{invite.code[4:8]}-{invite.code[8:]}"
    assert shown in views[-1].text  # shown in groups of four
    typed = f"{invite.code[:4].lower()} {invite.code[4:8].lower()}-{invite.code[8:].lower()}"
    views = await world.chat("new1").say(f"/start {typed}")
    assert "Mã mời không đúng" not in views[0].text and "Xin chọn ngôn ngữ" in views[0].text
    newcomer = world.chat("new1")
    await newcomer.press("Tiếng Việt")
    await newcomer.press("Đồng ý")
    await newcomer.share("0977000111")
    await newcomer.press("Xin đăng ký vào chi bộ")
    await newcomer.say("Đinh Văn Mời")
    await newcomer.press("Không")
    assert "Đăng ký xong" in newcomer.last.text
    views = await world.chat("new2").say(f"/start {typed}")
    assert "Mã mời không đúng, đã dùng hoặc đã hết hạn" in views[0].text  # single use


async def test_an_old_mixed_case_invite_code_still_works_as_it_was_given(world: World) -> None:
    async with world.app.db.session() as session:
        cell = (await session.exec(select(Unit).where(Unit.name == "Chi bộ thôn Cầu Bâu"))).one()
        session.add(
            Invite(
                code="aB3-xY_9kQ",
                role=Role.member,
                unit_id=cell.id or 0,
                created_at=world.clock.now(),
                expires_at=world.clock.now() + timedelta(days=7),
            )
        )
    views = await world.chat("old").say("/start aB3-xY_9kQ")
    assert "Mã mời không đúng" not in views[0].text
    views = await world.chat("other").say("/start ZZZZ-ZZZZ-ZZZZ")
    assert "Mã mời không đúng" in views[0].text
