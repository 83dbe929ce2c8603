"""The demo organisation: a small province tree, a roster, and people who hold roles.

Seeded once into the demo database, so ``sotay demo`` can be run again and keeps what was done.
The secretary, the commune staff and the admin are linked to terminal users (``:user bithu``)
so one can play every part of a registration in a single terminal.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.phones import normalize_phone
from bot.settings import Settings
from handlers.roster import import_roster_text
from storage import queries
from storage.db import Database
from storage.ids import id_of
from storage.models import ChannelAccount, Meeting, MeetingKind, Member, Role, RoleGrant

# (terminal user, phone, role, unit path): the people playing the other parts of the demo.
DEMO_PEOPLE = [
    (
        "bithu",
        "0912000006",
        Role.secretary,
        "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu",
    ),
    ("canbo", "0912000090", Role.staff, "Tỉnh Tuyên Quang / Xã Hợp Thành"),
    ("admin", "0912000091", Role.admin, "Tỉnh Tuyên Quang"),
]

# Rollout so far in the other cells (Cầu Bâu is left for the visitor to play): members' answers
# (installed, activated) by member code, and meetings (cell path, days ago, entered in the app).
# It gives /report something to rank: one commune ahead, one behind.
DEMO_ANSWERS = {
    "DEMO008": (True, True),
    "DEMO010": (True, True),
    "DEMO011": (True, False),
    "DEMO013": (True, True),
    "DEMO014": (True, False),
    "DEMO017": (False, False),
    "DEMO019": (True, True),
    "DEMO021": (True, True),
    "DEMO022": (True, False),
}
DEMO_MEETINGS = [
    ("Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Đồng Bèn", 12, True),
    ("Tỉnh Tuyên Quang / Xã Kháng Nhật / Chi bộ thôn Khuôn Thê", 20, True),
    ("Tỉnh Tuyên Quang / Xã Kháng Nhật / Chi bộ thôn Đồng Giàn", 16, False),
]

HINT = """\
Demo: gõ /start để đăng ký. Trong danh sách có: số 0912 000 001, họ tên Nguyễn Văn An (gõ số rồi gõ
họ tên, có dấu hay không đều được). Số gõ tay cần bí thư duyệt: gõ :user bithu để làm bí thư, rồi
:user demo để quay lại.
Demo: type /start to register. On the roster: number 0912 000 001, name Nguyễn Văn An (type the
number, then the name). Typed numbers need the secretary's approval: type :user bithu to act as
the secretary, then :user demo to come back."""


async def seed_history(session: AsyncSession, now: datetime) -> None:
    """Install answers and past meetings of the other cells, for a /report worth reading."""
    for code, (installed, activated) in DEMO_ANSWERS.items():
        member = (await session.exec(select(Member).where(Member.member_code == code))).one()
        member.app_installed, member.app_activated = installed, activated
        member.status_updated_at = now
        session.add(member)
    for path, days_ago, entered in DEMO_MEETINGS:
        cell = await queries.unit_by_path(session, path=path)
        assert cell is not None, path
        starts = (now - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0)
        session.add(
            Meeting(
                cell_id=id_of(cell),
                kind=MeetingKind.regular,
                starts_at=starts,
                place="Nhà văn hóa thôn",
                agenda="Sinh hoạt chi bộ định kỳ",
                created_at=starts - timedelta(days=7),
                updated_at=starts,
                documents_posted=True,
                entered_in_app=entered,
            )
        )


async def seed_demo(
    settings: Settings,
    *,
    channel: str = "terminal",
    refs: dict[str, str] | None = None,
    history: bool = False,
) -> str:
    """Seed the demo organisation if it is not there yet; return the hint to print.

    The role holders are linked to ``channel`` users named bithu, canbo and admin, or to the
    user ids ``refs`` maps those names to (tests use Telegram ids). ``history`` adds the other
    cells' rollout so far (``sotay demo`` does; tests start from a clean organisation).
    """
    db = Database(settings.database_url)
    now = Clock().now()
    try:
        async with db.session() as session:
            if (await session.exec(select(Member.id).limit(1))).first() is None:
                text = resources.files("bot.data").joinpath("demo_roster.csv").read_text("utf-8")
                await import_roster_text(session, text, now=now)
                for user, phone, role, path in DEMO_PEOPLE:
                    member = await queries.member_by_phone(session, phone=normalize_phone(phone))
                    unit = await queries.unit_by_path(session, path=path)
                    assert member is not None and unit is not None, (phone, path)
                    session.add(
                        RoleGrant(
                            member_id=id_of(member),
                            role=role,
                            unit_id=id_of(unit),
                            created_at=now,
                        )
                    )
                    ref = (refs or {}).get(user, user)
                    session.add(
                        ChannelAccount(
                            channel=channel,
                            user_ref=ref,
                            chat_ref=ref,
                            member_id=id_of(member),
                            language="vi",
                            verified=True,
                            created_at=now,
                        )
                    )
                    member.registered_at = now
                    session.add(member)
                if history:
                    await seed_history(session, now)
    finally:
        await db.dispose()
    return HINT
