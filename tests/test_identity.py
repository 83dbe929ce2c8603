"""The identity rule (handlers/identity.py), as a table and as attacks.

1. The pure rule: which grants may vouch for which stakes (no database).
2. The whole path through the router with typed phone numbers: (roles the roster member holds)
   × (who presses "approve") → which roles the new account ends up with.
3. Attacks that worked before: an invite plus someone else's number, a secretary vouching for a
   commune staff member, reading names off the roster by typing numbers, guessing without end.
The same attacks over the fake Zalo server are in tests/test_zalo_e2e.py; Telegram's contact
column of the table is in tests/test_telegram_e2e.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from handlers.identity import Stake, may_approve
from storage.models import Application, ChannelAccount, IdentityAttempt, Member, Role, RoleGrant
from tests.conftest import Chat, World

P = "Tỉnh Tuyên Quang"
HT = f"{P} / Xã Hợp Thành"
KN = f"{P} / Xã Kháng Nhật"
CAU_BAU = f"{HT} / Chi bộ thôn Cầu Bâu"
DONG_BEN = f"{HT} / Chi bộ thôn Đồng Bèn"
HT_OFFICE = f"{HT} / Chi bộ cơ quan xã"

M, SEC, DEP, STAFF, ADMIN = Role.member, Role.secretary, Role.deputy, Role.staff, Role.admin


@pytest.mark.parametrize(
    ("approver", "stakes", "allowed"),
    [
        # a plain member: their cell's secretary or deputy, or anyone serving above
        ([(SEC, CAU_BAU)], [(M, CAU_BAU)], True),
        ([(DEP, CAU_BAU)], [(M, CAU_BAU)], True),
        ([(STAFF, HT)], [(M, CAU_BAU)], True),
        ([(ADMIN, P)], [(M, CAU_BAU)], True),
        ([(SEC, DONG_BEN)], [(M, CAU_BAU)], False),  # another cell's secretary
        ([(STAFF, KN)], [(M, CAU_BAU)], False),  # another commune's staff
        ([(M, CAU_BAU)], [(M, CAU_BAU)], False),  # a fellow member
        # a secretary or deputy: only staff or admins strictly above the cell
        ([(SEC, CAU_BAU)], [(M, CAU_BAU), (SEC, CAU_BAU)], False),
        ([(SEC, CAU_BAU)], [(M, CAU_BAU), (DEP, CAU_BAU)], False),  # the role would outrank
        ([(DEP, CAU_BAU)], [(M, CAU_BAU), (SEC, CAU_BAU)], False),
        ([(STAFF, HT)], [(M, CAU_BAU), (SEC, CAU_BAU)], True),
        ([(ADMIN, P)], [(M, CAU_BAU), (SEC, CAU_BAU)], True),
        ([(STAFF, KN)], [(M, CAU_BAU), (SEC, CAU_BAU)], False),
        # commune staff: only staff or admins above the commune
        ([(SEC, CAU_BAU)], [(M, HT_OFFICE), (STAFF, HT)], False),
        ([(STAFF, HT)], [(M, HT_OFFICE), (STAFF, HT)], False),  # a peer on the same unit
        ([(STAFF, P)], [(M, HT_OFFICE), (STAFF, HT)], True),
        ([(ADMIN, P)], [(M, HT_OFFICE), (STAFF, HT)], True),
        ([(SEC, CAU_BAU), (STAFF, KN)], [(M, HT_OFFICE), (STAFF, HT)], False),
        # the province's admin: nobody above, so nobody vouches by a typed number
        ([(ADMIN, P)], [(M, P + " / x"), (ADMIN, P)], False),
        ([(STAFF, HT)], [(M, CAU_BAU), (ADMIN, P)], False),
        # every stake must be covered, not just one
        ([(STAFF, HT)], [(M, CAU_BAU), (STAFF, KN)], False),
        ([(STAFF, HT), (STAFF, KN)], [(M, CAU_BAU), (SEC, f"{KN} / Chi bộ thôn Đồng Giàn")], True),
        # nothing at stake is no reason to approve
        ([(ADMIN, P)], [], False),
        # literal paths: a unit name with LIKE wildcards widens nothing
        ([(STAFF, "Tỉnh _")], [(M, CAU_BAU)], False),
        ([(STAFF, "Tỉnh%")], [(M, CAU_BAU)], False),
    ],
)
def test_who_may_vouch_for_what(
    approver: list[tuple[Role, str]], stakes: list[tuple[Role, str]], allowed: bool
) -> None:
    assert may_approve(approver, [Stake(role, path) for role, path in stakes]) is allowed


# --- through the router, with typed numbers ------------------------------------------------------

AN = ("0912000001", "nguyen van an")  # plain member of Cầu Bâu
HOA = ("0912000006", "Vũ Thị Hoa")  # secretary of Cầu Bâu (demo user "bithu")
THANG = ("0912000090", "PHAN VAN THANG")  # staff of Xã Hợp Thành (demo user "canbo")


async def rows(world: World, model, *where):  # type: ignore[no-untyped-def]
    async with world.app.db.reader() as session:
        return list((await session.exec(select(model).where(*where))).all())


async def claim(chat: Chat, phone: str, name: str, *, invite: str | None = None) -> None:
    """Register by typing a phone number and a name (a channel without a contact button)."""
    await chat.say(f"/start {invite}" if invite else "/start")
    await chat.press("Tiếng Việt")
    await chat.press("Đồng ý")
    views = await chat.say(phone)
    assert all("Nguyễn" not in v.text and "Cầu Bâu" not in v.text for v in views)
    await chat.say(name)
    await chat.press("Không")  # no smartphone


async def roles_of_account(world: World, user_ref: str) -> set[tuple[Role, str]] | None:
    """None when the account is not linked; else the (role, unit path) it now holds."""
    from storage.models import Unit

    [account] = await rows(world, ChannelAccount, ChannelAccount.user_ref == user_ref) or [None]
    if account is None or account.pending:
        return None
    async with world.app.db.reader() as session:
        stmt = (
            select(RoleGrant, Unit)
            .join(Unit, Unit.id == RoleGrant.unit_id)  # type: ignore[arg-type]
            .where(RoleGrant.member_id == account.member_id)
        )
        return {(g.role, u.path) for g, u in (await session.exec(stmt)).all()}


@pytest.mark.parametrize(
    ("person", "approver", "linked"),
    [
        (AN, "bithu", set()),
        (AN, "canbo", set()),
        (AN, "admin", set()),
        (HOA, "bithu", None),  # never the member themselves
        (HOA, "canbo", {(SEC, CAU_BAU)}),
        (HOA, "admin", {(SEC, CAU_BAU)}),
        (THANG, "bithu", None),  # a secretary cannot hand over a commune staff role
        (THANG, "canbo", None),
        (THANG, "admin", {(STAFF, HT)}),
    ],
)
async def test_typed_number_links_only_with_approval_by_authority_over_every_role(
    world: World, person: tuple[str, str], approver: str, linked: set[tuple[Role, str]] | None
) -> None:
    world.recorder.typed_phones_only()  # typed numbers only
    applicant = world.chat("claimant")
    await claim(applicant, *person)
    assert await roles_of_account(world, "claimant") is None  # nothing before approval
    [application] = await rows(world, Application)
    assert "Cầu Bâu" not in applicant.last.text and "thẩm quyền" in applicant.last.text
    data = world.app.services.signer.sign(f"a:appr:{application.id}:y")
    said = " ".join(v.text for v in await world.chat(approver).press_data(data))
    assert ("không có quyền" in said) is (linked is None)
    assert ("Đã duyệt" in said) is (linked is not None)
    assert await roles_of_account(world, "claimant") == linked


async def test_the_request_goes_to_the_right_people_and_names_the_roles_at_stake(
    world: World,
) -> None:
    world.recorder.typed_phones_only()
    for user in ("bithu", "canbo", "admin"):
        world.chat(user).new()  # what they had before
    await claim(world.chat("claimant"), *THANG)
    bithu, canbo, admin = (world.chat(u) for u in ("bithu", "canbo", "admin"))
    assert world.recorder.sent.get("bithu", []) == [] or not bithu.new()
    assert not canbo.new()  # the staff member himself is never asked
    [request] = admin.new()
    assert "Phan Văn Thắng" in request.text and "cán bộ hỗ trợ — Xã Hợp Thành" in request.text
    views = await admin.say("/approvals")
    assert "Phan Văn Thắng" in views[-1].text
    views = await world.chat("bithu").say("/approvals")
    assert "Phan Văn Thắng" not in views[-1].text  # not listed to someone who may not decide


async def test_invite_proves_its_role_only_and_never_the_typed_number(world: World) -> None:
    """Before: any invite + a staff member's number = that staff member's roles at once."""
    world.recorder.typed_phones_only()
    secretary = world.chat("bithu")
    await secretary.say("/invite")
    await secretary.press("đảng viên")
    attacker = world.chat("attacker")
    from storage.models import Invite

    [invite] = await rows(world, Invite)
    await claim(attacker, *THANG, invite=invite.code)
    assert await roles_of_account(world, "attacker") is None  # not linked, no staff role
    [application] = await rows(world, Application)
    assert application.answers.get("invite") == invite.code  # redeemed only if approved
    [queue] = (await world.chat("attacker").say("/queue"))[-1:]
    assert "chưa đăng ký" in queue.text


async def test_an_invite_with_a_number_that_is_someone_elses_never_copies_it(
    world: World,
) -> None:
    world.recorder.typed_phones_only()
    secretary = world.chat("bithu")
    await secretary.say("/invite")
    await secretary.press("đảng viên")
    from storage.models import Invite

    [invite] = await rows(world, Invite)
    newcomer = world.chat("newcomer")
    await newcomer.say(f"/start {invite.code}")
    await newcomer.press("Tiếng Việt")
    await newcomer.press("Đồng ý")
    await newcomer.say(THANG[0])
    views = await newcomer.say("Lò Văn Mới")  # not the name that goes with this number
    assert "Phan" not in views[-1].text
    await newcomer.press("Xin đăng ký vào chi bộ")  # the invite places them: no cell to pick
    await newcomer.press("Không")
    [member] = await rows(world, Member, Member.full_name == "Lò Văn Mới")
    assert member.phone is None  # the unproven number of someone else is not copied
    assert await roles_of_account(world, "newcomer") == set()


async def test_typing_numbers_reveals_nothing_and_is_throttled(world: World) -> None:
    world.recorder.typed_phones_only()
    prober = world.chat("prober")
    await prober.say("/start")
    await prober.press("Tiếng Việt")
    await prober.press("Đồng ý")
    seen: list[str] = []
    for n in range(5):  # five guesses: roster numbers with wrong names
        seen += [v.text for v in await prober.say(f"09120000{n + 10:02d}")]
        seen += [v.text for v in await prober.say("Nguyễn Văn Đoán")]
        seen += [v.text for v in await prober.press("Dùng số khác")]
    roster = await rows(world, Member)
    names = [m.full_name for m in roster if m.full_name]
    assert not any(name in text for name in names for text in seen)  # no name ever shown
    assert not any("Chi bộ thôn" in text for text in seen)  # nor a cell
    views = await prober.say("0912000001")
    assert "sai nhiều lần" in views[0].text  # locked out now
    [attempt] = await rows(world, IdentityAttempt)
    assert attempt.failures == 5 and "0912" not in str(attempt.model_dump())  # counts only
    world.clock.advance(timedelta(minutes=16))
    views = await prober.say("0912000001")
    assert "họ và tên" in views[-1].text  # the wait is over
    views = await prober.say("Sai Tên Nữa")  # the sixth failure: a longer wait (30 min)
    assert "sai nhiều lần" in views[0].text
    await prober.press("Dùng số khác")
    world.clock.advance(timedelta(minutes=16))
    views = await prober.say("0912000001")
    assert "sai nhiều lần" in views[0].text
    world.clock.advance(timedelta(minutes=15))
    views = await prober.say("0912000001")
    assert "họ và tên" in views[-1].text


async def test_a_second_account_of_the_same_member_is_told_to_the_first(world: World) -> None:
    world.recorder.typed_phones_only()
    first = world.chat("first-account")
    await claim(first, *AN)
    [application] = await rows(world, Application)
    await world.chat("bithu").press_data(
        world.app.services.signer.sign(f"a:appr:{application.id}:y")
    )
    first.new()
    await claim(world.chat("second-account"), *AN)
    second = (await rows(world, Application))[-1]
    views = await world.chat("bithu").press_data(
        world.app.services.signer.sign(f"a:appr:{second.id}:y")
    )
    assert "tài khoản cũ đã được báo" in views[-1].text
    assert any("tài khoản khác" in v.text for v in first.new())


async def test_a_pending_applicant_sees_nobody_elses_data(world: World) -> None:
    world.recorder.typed_phones_only()
    applicant = world.chat("waiting")
    await claim(applicant, *HOA)
    for command in ("/me", "/approvals", "/report", "/queue", "/meetings", "/menu"):
        views = await applicant.say(command)
        if command in ("/me", "/menu"):  # told where the application stands, nothing more
            assert "đang chờ" in views[-1].text and "Hợp Thành" not in views[-1].text, command
        else:
            assert "chưa đăng ký" in views[-1].text, command
