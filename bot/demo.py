"""The demo organisation: a small province tree, a roster, and people who hold roles.

Seeded once into the demo database, so ``sotay demo`` can be run again and keeps what was done.
The secretary, the commune staff and the admin are linked to terminal users (``:user bithu``)
so one can play every part of a registration in a single terminal.
"""

from __future__ import annotations

from importlib import resources

from sqlmodel import select

from bot.clock import Clock
from bot.phones import normalize_phone
from bot.settings import Settings
from handlers.roster import import_roster_text
from storage import queries
from storage.db import Database
from storage.models import ChannelAccount, Member, Role, RoleGrant

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

HINT = """\
Demo: gõ /start để đăng ký. Số điện thoại có trong danh sách: 0912 000 001 (Nguyễn Văn An, Chi bộ
thôn Cầu Bâu). Số gõ tay cần bí thư duyệt: gõ :user bithu để làm bí thư, rồi :user demo để quay lại.
Demo: type /start to register. A roster number: 0912 000 001. Typed numbers need the secretary's
approval: type :user bithu to act as the secretary, then :user demo to come back."""


async def seed_demo(
    settings: Settings, *, channel: str = "terminal", refs: dict[str, str] | None = None
) -> str:
    """Seed the demo organisation if it is not there yet; return the hint to print.

    The role holders are linked to ``channel`` users named bithu, canbo and admin, or to the
    user ids ``refs`` maps those names to (tests use Telegram ids).
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
                            member_id=member.id or 0,
                            role=role,
                            unit_id=unit.id or 0,
                            created_at=now,
                        )
                    )
                    ref = (refs or {}).get(user, user)
                    session.add(
                        ChannelAccount(
                            channel=channel,
                            user_ref=ref,
                            chat_ref=ref,
                            member_id=member.id or 0,
                            language="vi",
                            verified=True,
                            created_at=now,
                        )
                    )
                    member.registered_at = now
                    session.add(member)
    finally:
        await db.dispose()
    return HINT
