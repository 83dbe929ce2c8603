"""``unit_rollup`` (storage/rollup.py) equals a fresh GROUP BY over the members after every kind
of write the code makes — roster import and re-import (members moving between cells), the
handbook system's status import and re-import, chat answers, registration, /forget — and after
writes the code does not make yet but the database allows (a member or a unit deleted). Runs on
SQLite and PostgreSQL: the triggers are different code on each.

Also: a member who answers "no smartphone" leaves the target without being counted "not
installed", and the handbook system's status still counts first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select

from bot import reports
from handlers.rollout_data import import_status_file
from handlers.roster import import_roster_file
from storage import report_tables, rollup, rollup_models  # noqa: F401  (the table)
from storage.models import Member, Unit
from tests.conftest import DEMO_CSV, World
from tests.test_registration import register_an

CAU_BAU = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu"
DONG_BEN = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Đồng Bèn"


async def counts(world: World) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
    """(the table, the GROUP BY), unit id -> counts; units without members count zeros."""
    columns = ", ".join(rollup.COUNTS)
    async with world.app.db.reader() as session:
        connection = await session.connection()
        kept = {
            row[0]: tuple(row[1:])
            for row in await connection.execute(text(f"SELECT unit_id, {columns} FROM unit_rollup"))
        }
        fresh = {
            row.unit_id: tuple(int(getattr(row, c)) for c in rollup.COUNTS)
            for row in await connection.execute(text(rollup.group_by_members()))
        }
        units = [row[0] for row in await connection.execute(text("SELECT id FROM unit"))]
    zero = (0,) * len(rollup.COUNTS)
    return kept, {unit_id: fresh.get(unit_id, zero) for unit_id in units}


async def assert_exact(world: World) -> dict[int, tuple[int, ...]]:
    kept, fresh = await counts(world)
    assert kept == fresh
    return kept


async def unit_id(world: World, path: str) -> int:
    async with world.app.db.reader() as session:
        found = (await session.exec(select(Unit).where(Unit.path == path))).one()
    return found.id or 0


def figure(kept: dict[int, tuple[int, ...]], unit: int, name: str) -> int:
    return kept[unit][rollup.COUNTS.index(name)]


async def test_rollup_follows_imports_and_reimports(world: World, tmp_path: Path) -> None:
    kept = await assert_exact(world)  # the demo roster, imported at seeding
    cau_bau, dong_ben = await unit_id(world, CAU_BAU), await unit_id(world, DONG_BEN)
    assert figure(kept, cau_bau, "members") == 7
    export = tmp_path / "hb.csv"
    export.write_text(
        "member_code;installed;activated\nDEMO001;có;có\nDEMO002;20/05/2026;không\nDEMO003;0;0\n"
    )
    await import_status_file(world.app.settings.database_url, export)
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "installed_hb") == 2 and figure(kept, cau_bau, "hb_known") == 3
    await import_status_file(world.app.settings.database_url, export)  # again: nothing changes
    assert await assert_exact(world) == kept
    # A roster re-import that moves DEMO001 and DEMO002 to another cell and drops a smartphone.
    roster = DEMO_CSV.read_text(encoding="utf-8").splitlines()
    moved = [
        line.replace(CAU_BAU, DONG_BEN) if line.startswith(("DEMO001,", "DEMO002,")) else line
        for line in roster
    ]
    moved = [
        line[: -len(",có")] + ",không" if line.startswith("DEMO004,") else line for line in moved
    ]
    changed = tmp_path / "roster.csv"
    changed.write_text("\n".join(moved) + "\n", encoding="utf-8")
    await import_roster_file(world.app.settings.database_url, changed)
    after = await assert_exact(world)
    assert figure(after, cau_bau, "members") == 5 and figure(after, dong_ben, "members") == 8
    assert figure(after, dong_ben, "installed_hb") == 2  # the imported statuses moved along
    await import_roster_file(world.app.settings.database_url, changed)
    assert await assert_exact(world) == after


async def test_rollup_follows_chat_answers_registration_and_forget(world: World) -> None:
    cau_bau = await unit_id(world, CAU_BAU)
    before = await assert_exact(world)
    chat = world.chat("u1")
    await register_an(chat)  # a verified account; smartphone yes, installed, not activated
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "registered") == figure(before, cau_bau, "registered") + 1
    await chat.say("/status")
    await chat.press("Có")
    await chat.press("Đã cài")
    await chat.press("Đã đăng nhập")
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "activated") == figure(before, cau_bau, "activated") + 1
    await chat.say("/forget")
    views = await chat.press("Xóa thông tin")
    assert "Đã xóa" in views[-1].text
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "members") == figure(before, cau_bau, "members") - 1


async def test_rollup_follows_deletes_the_database_allows(world: World) -> None:
    """No handler deletes a member or a unit today; an operator's SQL or a later feature may."""
    cau_bau = await unit_id(world, CAU_BAU)
    async with world.app.db.session() as session:
        empty = Unit(name="Chi bộ mới", path=f"{CAU_BAU} / Chi bộ mới", depth=3, parent_id=cau_bau)
        session.add(empty)
        await session.flush()
        newcomer = Member(full_name="Người mới", cell_id=empty.id, has_smartphone=True)
        session.add(newcomer)
    kept = await assert_exact(world)
    assert figure(kept, empty.id or 0, "members") == 1
    async with world.app.db.session() as session:
        connection = await session.connection()
        await connection.execute(text("DELETE FROM member WHERE id = :i"), {"i": newcomer.id})
        await connection.execute(text("DELETE FROM unit WHERE id = :i"), {"i": empty.id})
    kept = await assert_exact(world)
    assert empty.id not in kept


async def test_reports_read_the_rollup(world: World) -> None:
    """The report's figures are the table's: changing a row by hand shows in the report (so the
    report does not scan the members), and a rebuild puts the truth back."""
    root = await unit_id(world, "Tỉnh Tuyên Quang")
    span = reports.window(world.clock.now())
    async with world.app.db.reader() as session:
        unit = await session.get(Unit, root)
        assert unit is not None
        truth = await reports.unit_report(session, unit=unit, span=span)
    async with world.app.db.session() as session:
        await (await session.connection()).execute(text("UPDATE unit_rollup SET members = 1000"))
    async with world.app.db.reader() as session:
        skewed = await reports.unit_report(session, unit=unit, span=span)
    assert skewed.scope.members >= 1000 * len(skewed.children) > truth.scope.members
    async with world.app.db.session() as session:
        await rollup.rebuild(session)
    await assert_exact(world)
    async with world.app.db.reader() as session:
        again = await reports.unit_report(session, unit=unit, span=span)
    assert again.scope == truth.scope


async def test_no_smartphone_leaves_the_target_without_a_no(world: World, tmp_path: Path) -> None:
    cau_bau = await unit_id(world, CAU_BAU)
    chat = world.chat("u1")
    await register_an(chat)  # smartphone yes, installed
    before = await assert_exact(world)
    await chat.say("/status")
    views = await chat.press("Không")  # no smartphone: the install questions are skipped
    assert "Đã lưu" in views[-1].text
    async with world.app.db.reader() as session:
        an = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
    assert (an.has_smartphone, an.smartphone_source) == (False, "member")
    assert (an.app_installed, an.app_activated) == (None, None)  # not asked, not "no"
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "smartphone") == figure(before, cau_bau, "smartphone") - 1
    assert figure(kept, cau_bau, "installed") == figure(before, cau_bau, "installed") - 1
    # The handbook system says An installed it (on another device): that counts first, and
    # counts outside the target, as the committee counts it.
    export = tmp_path / "hb.csv"
    export.write_text("member_code,installed,activated\nDEMO001,có,có\n")
    await import_status_file(world.app.settings.database_url, export)
    kept = await assert_exact(world)
    assert figure(kept, cau_bau, "installed") == figure(before, cau_bau, "installed")
    assert figure(kept, cau_bau, "smartphone") == figure(before, cau_bau, "smartphone") - 1
    await chat.say("/status")
    await chat.press("Không")  # answering again leaves the imported status alone
    async with world.app.db.reader() as session:
        an = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
    assert (an.hb_installed, an.hb_activated, an.app_installed) == (True, True, None)
    await assert_exact(world)


@pytest.mark.engine_neutral
def test_the_light_report_tables_match_the_schema() -> None:
    """storage/report_tables.py names columns by hand; each must exist in the real tables."""
    metadata: Any = SQLModel.metadata
    for light in (
        report_tables.unit,
        report_tables.unit_rollup,
        report_tables.meeting,
        report_tables.ticket,
    ):
        real = metadata.tables[light.name]
        assert {c.name for c in light.columns} <= {c.name for c in real.columns}, light.name
