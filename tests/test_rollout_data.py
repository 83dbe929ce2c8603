"""Rollout data the committee trusts: the handbook system's status import (CSV as Excel saves
it, XLSX with real cell types), precedence over chat answers, the smartphone target, and the
report as JSON, Excel and Word, checked against a province built with the source's totals."""

from __future__ import annotations

import asyncio
import io
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlmodel import select

from bot.clock import FakeClock
from bot.settings import Settings
from handlers.reports import cli_report
from handlers.rollout_data import StatusFileError, import_status_file, parse_flag
from handlers.roster import Reason
from storage.db import Database
from storage.models import DueJob, Member, Unit
from tests.conftest import World
from tests.harness import telegram_server
from tests.sotay_cli import run_sotay
from tests.test_reports import STAFF_ID, staff_bot  # noqa: F401  (fixture)
from tests.test_telegram_e2e import Bot

# The Telegram tests use the fake server; the rest keep the fixed clock.
pytestmark = pytest.mark.e2e(server=telegram_server, clock=FakeClock)

PROVINCE = "Tỉnh Tuyên Quang"
# Seven districts whose figures add up to the source's: 57,597 members, 46,728 with a
# smartphone (the target), 48,597 installed according to the handbook system.
DISTRICTS = [
    ("Huyện Sơn Dương", 8000, 6500, 6800),
    ("Huyện Yên Sơn", 8100, 6600, 6900),
    ("Huyện Hàm Yên", 8200, 6700, 7000),
    ("Huyện Chiêm Hóa", 8300, 6800, 7100),
    ("Huyện Na Hang", 8400, 6600, 6700),
    ("Huyện Lâm Bình", 8500, 6700, 6900),
    ("Thành phố Tuyên Quang", 8097, 6828, 7197),
]
COMMUNES, CELLS = 2, 5
NOW = datetime(2026, 5, 25, 3, 0, tzinfo=UTC)


def pct(part: int, whole: int) -> float:
    return round(1000 * part / whole + 1e-9) / 10


async def build_province(database_url: str, folder: Path) -> Path:
    """Units and members written directly (the roster import has its own tests), every member
    answering "installed" in the chat in the first district, and the handbook export as a
    semicolon CSV with a BOM and CRLF, as Excel saves it. Returns the export's path."""
    members = Member.__table__  # type: ignore[attr-defined]
    lines = ["member_code;installed;activated"]
    rows = []
    db = Database(database_url)
    try:
        async with db.reader() as session:
            root = Unit(name=PROVINCE, path=PROVINCE, depth=0)
            session.add(root)
            await session.flush()
            code = 0
            for d, (district, total, phones, installed) in enumerate(DISTRICTS):
                dpath = f"{PROVINCE} / {district}"
                dunit = Unit(name=district, path=dpath, depth=1, parent_id=root.id)
                session.add(dunit)
                await session.flush()
                cells = []
                for c in range(COMMUNES):
                    cname = f"Xã {d}-{c}"
                    commune = Unit(
                        name=cname, path=f"{dpath} / {cname}", depth=2, parent_id=dunit.id
                    )
                    session.add(commune)
                    await session.flush()
                    for k in range(CELLS):
                        name = f"Chi bộ thôn {k}"
                        cells.append(
                            Unit(
                                name=name,
                                path=f"{commune.path} / {name}",
                                depth=3,
                                parent_id=commune.id,
                            )
                        )
                session.add_all(cells)
                await session.flush()
                for i in range(total):
                    code += 1
                    rows.append(
                        {
                            "member_code": f"{code:06d}",
                            "cell_id": cells[i % len(cells)].id,
                            "status": "active",
                            "source": "roster",
                            "has_smartphone": i < phones,
                            "app_installed": True if d == 0 else None,
                        }
                    )
                    yes = i < installed
                    if not yes:
                        lines.append(f"{code:06d};không;0")
                    elif i % 3 == 0:
                        lines.append(f"{code:06d};25/05/2026;")
                    else:
                        lines.append(f"{code:06d};có;{1 if i % 2 else 'không'}")
            await session.exec(insert(members), params=rows)  # type: ignore[call-overload]
            await session.commit()
    finally:
        await db.dispose()
    export = folder / "export.csv"
    export.write_bytes("\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n")
    return export


@pytest.mark.slow(seconds=22)
async def test_province_report_matches_the_handbook_system(settings: Settings, tmp_path: Path):
    export = await build_province(settings.database_url, tmp_path)
    before = json.loads(await cli_report(settings, as_json=True, now=NOW))
    assert before["installed"] == 8000  # only the first district's chat answers so far
    result = await import_status_file(settings.database_url, export)
    assert (result.rows, result.updated, result.errors) == (57597, 57597, [])
    figures = json.loads(await cli_report(settings, as_json=True, now=NOW))
    assert set(figures) == {
        "unit",
        "members",
        "smartphone",
        "installed",
        "activated",
        "installed_pct",
        "target_pct",
        "cells",
        "cells_meeting_in_app",
        "cells_meeting_in_app_pct",
        "children",
    }
    assert figures["unit"] == PROVINCE
    assert figures["members"] == 57597
    assert figures["smartphone"] == 46728
    assert figures["installed"] == 48597
    assert figures["installed_pct"] == 84.4
    assert figures["target_pct"] == 104.0
    assert figures["cells"] == 70 and figures["cells_meeting_in_app"] == 0
    by_unit = {child["unit"]: child for child in figures["children"]}
    assert len(by_unit) == 7
    for district, total, phones, installed in DISTRICTS:
        child = by_unit[f"{PROVINCE} / {district}"]
        assert "children" not in child
        assert (child["members"], child["smartphone"], child["installed"]) == (
            total,
            phones,
            installed,
        )
        assert child["installed_pct"] == pct(installed, total)
        assert child["target_pct"] == pct(installed, phones)
        assert child["cells"] == COMMUNES * CELLS
    # Importing the same export again changes nothing.
    again = await import_status_file(settings.database_url, export)
    assert (again.updated, again.unchanged) == (0, 57597)
    text = await cli_report(settings, now=NOW)
    assert "Đã cài Sổ tay: 48.597/57.597 đảng viên (84,4%)" in text
    assert "(đảng viên có điện thoại thông minh: 46.728): 104,0%" in text
    assert "hệ thống Sổ tay cho 57.597 đảng viên" in text

    xlsx, docx = tmp_path / "r.xlsx", tmp_path / "r.docx"
    await cli_report(settings, xlsx_path=xlsx, docx_path=docx, now=NOW)
    from openpyxl import load_workbook

    book = load_workbook(xlsx)
    summary = book.worksheets[0]
    values = [[cell.value for cell in row] for row in summary.iter_rows()]
    total_row = next(row for row in values if row[0] == "Tổng cộng")
    assert total_row[1:5] == [57597, 46728, 48597, figures["activated"]]
    assert summary.freeze_panes is not None
    assert book.sheetnames == ["Tổng hợp", "Cấp 1", "Cấp 2", "Chi bộ"]
    districts = list(book["Cấp 1"].iter_rows(min_row=2, values_only=True))
    assert [(row[1], row[2], row[3], row[4]) for row in districts] == [
        (name, total, phones, installed) for name, total, phones, installed in sorted(DISTRICTS)
    ]
    assert book["Cấp 2"].max_row == 1 + 7 * COMMUNES
    cells_sheet = book.worksheets[-1]
    assert cells_sheet.max_row == 71  # the header and one row per cell
    sources = [row[9] for row in cells_sheet.iter_rows(min_row=2, values_only=True)]
    assert sum(sources) == 57597  # every member's figure came from the handbook system
    from docx import Document

    document = Document(io.BytesIO(docx.read_bytes()))
    body = "\n".join(p.text for p in document.paragraphs)
    assert "BÁO CÁO" in body and "Sổ tay đảng viên điện tử" in body
    assert "48.597/57.597" in body and "84,4%" in body and "104,0%" in body
    assert len(document.tables) >= 1
    table_text = "\n".join(c.text for row in document.tables[0].rows for c in row.cells)
    assert "Huyện Sơn Dương" in table_text and "8.000" in table_text


def test_flags_read_as_excel_and_people_write_them() -> None:
    assert parse_flag("Có") == (True, None)
    assert parse_flag("khong") == (False, None)
    assert parse_flag("1") == (True, None)
    assert parse_flag(0) == (False, None)
    assert parse_flag(1.0) == (True, None)
    assert parse_flag("") == (None, None)
    assert parse_flag(None) == (None, None)
    assert parse_flag("05/03/2026") == (True, date(2026, 3, 5))
    assert parse_flag(datetime(2026, 3, 5, 0, 0)) == (True, date(2026, 3, 5))
    assert str(parse_flag("31/02/2026")) == "'31/02/2026' is not a real date"
    assert isinstance(parse_flag("maybe"), Reason)
    assert isinstance(parse_flag(2), Reason)
    refused = parse_flag("maybe")
    assert isinstance(refused, Reason) and "không phải có/không" in refused.text("vi")


async def test_bad_rows_are_reported_and_good_ones_import(world: World, tmp_path: Path) -> None:
    export = tmp_path / "hb.csv"
    export.write_text(
        "phone,installed,activated\n"
        "0912000001,có,có\n"
        "0912 000 002,yes,\n"
        "0999999999,có,có\n"
        "0912000003,maybe,\n"
        "0912000001,có,có\n"
        "0912000004,không,có\n"
        ",,\n",
        encoding="utf-8",
    )
    result = await import_status_file(world.app.settings.database_url, export)
    assert result.updated == 2
    assert [(e.line, e.reason) for e in result.errors] == [
        (4, "phone '0999999999' is not in the roster"),
        (5, "installed 'maybe' is not có/không, yes/no, 1/0 or a date dd/mm/yyyy"),
        (6, "the same member as on line 2"),
        (7, "activated without installed"),
    ]
    async with world.app.db.reader() as session:
        an = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
    assert (an.hb_installed, an.hb_activated, an.app_installed) == (True, True, an.app_installed)
    assert an.hb_updated_at is not None


async def test_xlsx_with_excel_types(world: World, tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["member_code", "installed", "activated"])
    sheet.append(["DEMO001", datetime(2026, 5, 20), 1])
    sheet.append(["DEMO002", 0, 0])
    sheet.append(["NOPE", 1, 1])
    path = tmp_path / "hb.xlsx"
    book.save(path)
    result = await import_status_file(world.app.settings.database_url, path)
    assert result.updated == 2
    assert [(e.line, e.reason) for e in result.errors] == [
        (4, "member_code 'NOPE' is not in the roster")
    ]
    async with world.app.db.reader() as session:
        an = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
        binh = (await session.exec(select(Member).where(Member.member_code == "DEMO002"))).one()
    assert (an.hb_installed, an.hb_installed_on, an.hb_activated) == (True, date(2026, 5, 20), True)
    assert (binh.hb_installed, binh.hb_activated) == (False, False)


async def test_unreadable_files_write_nothing(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "x.xlsx"
    bad.write_bytes(b"not a zip")
    no_id = tmp_path / "y.csv"
    no_id.write_text("name,installed\nA,1\n", encoding="utf-8")
    for path in (bad, no_id):
        try:
            await import_status_file(world.app.settings.database_url, path)
        except StatusFileError:
            continue
        raise AssertionError(f"{path.name} was accepted")


async def test_cli_status_import_and_report_json(world: World, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SOTAY_DATABASE_URL": world.app.settings.database_url,
        "SOTAY_DEFAULT_LANGUAGE": "vi",
    }
    export = tmp_path / "hb.csv"
    export.write_text("member_code;installed;activated\r\nDEMO001;1;1\r\nBAD;1;1\r\n")

    async def sotay(*args: str) -> tuple[int, str, str]:  # in this process, as a new one would
        done = await asyncio.to_thread(run_sotay, args, env=env, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, _ = await sotay("status", "import", str(export))
    assert code == 3  # some rows had errors
    assert out.splitlines() == [
        "Đã nhập trạng thái, 2 dòng: 1 cập nhật, 0 không đổi, 1 có lỗi.",
        "dòng 3: member_code 'BAD' không có trong danh sách",
    ]
    env["SOTAY_DEFAULT_LANGUAGE"] = "en"
    code, out, _ = await sotay("status", "import", str(export))
    assert code == 3
    assert out.splitlines() == [
        "Statuses imported, 2 rows: 0 updated, 1 unchanged, 1 with errors.",
        "line 3: member_code 'BAD' is not in the roster",
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    env["SOTAY_DEFAULT_LANGUAGE"] = "vi"
    code, _, err = await sotay("status", "import", str(empty))
    assert code == 1 and err.strip() == "sotay: tệp trống."
    code, out, _ = await sotay("report", "--json")
    assert code == 0
    figures = json.loads(out)
    assert figures["unit"] == PROVINCE and figures["members"] > 0
    assert [child["unit"] for child in figures["children"]] == sorted(
        child["unit"] for child in figures["children"]
    )


async def test_roster_reimport_keeps_the_members_own_smartphone_answer(world: World) -> None:
    from handlers.roster import import_roster_file
    from tests.conftest import DEMO_CSV

    async with world.app.db.reader() as session:
        cuong = (await session.exec(select(Member).where(Member.member_code == "DEMO003"))).one()
        assert cuong.has_smartphone is False  # the roster says không
        cuong.has_smartphone, cuong.smartphone_source = True, "member"
        session.add(cuong)
        await session.commit()
    result = await import_roster_file(world.app.settings.database_url, DEMO_CSV)
    assert result.updated == 0
    async with world.app.db.reader() as session:
        cuong = (await session.exec(select(Member).where(Member.member_code == "DEMO003"))).one()
    assert (cuong.has_smartphone, cuong.smartphone_source) == (True, "member")


async def test_me_lists_the_handbook_systems_status(world: World, tmp_path: Path) -> None:
    from handlers.privacy import stored_about

    export = tmp_path / "hb.csv"
    export.write_text("member_code,installed,activated\nDEMO001,20/05/2026,không\n")
    await import_status_file(world.app.settings.database_url, export)
    async with world.app.db.reader() as session:
        an = (await session.exec(select(Member).where(Member.member_code == "DEMO001"))).one()
        data = await stored_about(session, an)
    assert data["member"]["handbook_system"]["installed"] is True
    assert data["member"]["handbook_system"]["installed_on"] == "2026-05-20"
    assert data["member"]["handbook_system"]["activated"] is False


async def test_staff_get_the_workbook_and_the_word_report_over_telegram(
    staff_bot: Bot,  # noqa: F811
    tmp_path: Path,
) -> None:
    from docx import Document
    from openpyxl import load_workbook

    export = tmp_path / "hb.csv"
    export.write_text("member_code,installed,activated\nDEMO001,có,có\nDEMO002,1,0\n")
    await import_status_file(staff_bot.settings.database_url, export)
    staff = staff_bot.server.user(STAFF_ID, language_code="vi")
    await staff.send("/report")
    report = await staff.next_message()
    assert "Đã cài Sổ tay:" in report["text"] and "So với chỉ tiêu" in report["text"]

    await staff.press(report, "📗 Excel")
    sent = await staff.next_message()
    assert sent["filename"].endswith(".xlsx")
    book = load_workbook(io.BytesIO(sent["content"]))
    rows = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    total = next(row for row in rows if row[0] == "Tổng cộng")
    text = report["text"]
    assert f"Đã cài Sổ tay: {total[3]}/{total[1]} đảng viên" in text
    assert book.worksheets[0]["F3"].number_format == "0.0%"

    await staff.press(report, "📝 Báo cáo")
    sent = await staff.next_message()
    assert sent["filename"].endswith(".docx")
    document = Document(io.BytesIO(sent["content"]))
    body = "\n".join(p.text for p in document.paragraphs)
    assert "BÁO CÁO KẾT QUẢ TRIỂN KHAI ỨNG DỤNG SỔ TAY ĐẢNG VIÊN ĐIỆN TỬ" in body
    assert f"{total[3]}/{total[1]} đồng chí" in body
    assert staff_bot.server.count("sendDocument", 200) == 2


async def test_secretary_sees_who_lags_and_reminds_them_once_a_week(world: World) -> None:
    from tests.test_reports import CAU_BAU, answer, labels, link, make_secretary, sign, unit

    await link(world, "+84912000001", "an")
    await link(world, "+84912000002", "binh")
    await answer(world, "+84912000001", installed=True, activated=True)
    await answer(world, "+84912000002", installed=True, activated=False)
    secretary = world.chat("bithu")
    views = await secretary.say("/report")
    views = await secretary.press("👥 Ai chưa cài, chưa kích hoạt")
    text = views[-1].text
    assert "Nguyễn Văn An" not in text  # installed and activated
    assert "Đã cài, chưa kích hoạt (1):\n• Trần Thị Bình" in text
    assert "Chưa cài Sổ tay (5):" in text and "• Lê Văn Cường" in text
    [button] = labels(views[-1])
    assert button == "🔔 Nhắc 6 đồng chí này"

    views = await secretary.press(button)
    # bithu (Vũ Thị Hoa) is reachable too and has not installed; Bình has an account.
    assert "Đang gửi lời nhắc tới 2 đồng chí" in views[-1].text
    assert "4 đồng chí chưa dùng trợ lý" in views[-1].text
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    [nudge] = world.chat("binh").new()
    assert "chưa kích hoạt tài khoản" in nudge.text
    assert world.chat("an").new() == []

    views = await secretary.press(button)  # again the same week: nobody is reminded twice
    assert "đã được nhắc trong tuần này rồi" in views[-1].text
    async with world.app.db.reader() as session:
        nudges = (await session.exec(select(DueJob).where(DueJob.kind == "rd_nudge"))).all()
    assert len(nudges) == 1  # the second press queued nothing

    cau_bau = await unit(world, CAU_BAU)
    await make_secretary(
        world, "+84912000014", "quyen", f"{PROVINCE} / Xã Kháng Nhật / Chi bộ thôn Đồng Giàn"
    )
    views = await world.chat("quyen").press_data(sign(world, f"a:rd:{cau_bau.id}:l"))
    assert "ngoài phạm vi" in views[-1].text and "Trần Thị Bình" not in views[-1].text
    views = await world.chat("quyen").press_data(sign(world, f"a:rd:{cau_bau.id}:r"))
    assert "ngoài phạm vi" in views[-1].text


async def test_reminders_wait_out_the_quiet_hours(world: World) -> None:
    from datetime import timedelta

    from tests.test_reports import answer, link

    await link(world, "+84912000002", "binh")
    await answer(world, "+84912000002", installed=False, activated=False)
    world.clock.advance(timedelta(hours=12))  # Tuesday 22:00 in Hà Nội
    secretary = world.chat("bithu")
    await secretary.say("/report")
    await secretary.press("👥 Ai chưa cài, chưa kích hoạt")
    views = await secretary.press("🔔 Nhắc 7 đồng chí này")
    assert "sẽ gửi lúc 07:00" in views[-1].text
    await world.app.scheduler.tick()  # other work may be due; the reminder is not
    await world.app.dispatcher.run_once()
    assert world.chat("binh").new() == []
    world.clock.advance(timedelta(hours=9))  # 07:00
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    [nudge] = world.chat("binh").new()
    assert "cài ứng dụng Sổ tay" in nudge.text


async def test_weekly_digest_uses_imported_figures_and_the_trend(
    world: World, tmp_path: Path
) -> None:
    from datetime import timedelta

    try:  # main arms every recurring job at once (APScheduler triggers); before, one by one
        from bot.scheduler import ensure_recurring as arm  # type: ignore[attr-defined]
    except ImportError:
        from handlers.reports import ensure_weekly_report as arm  # type: ignore[attr-defined]

    async with world.app.db.session() as session:
        await arm(session, world.app.settings, world.clock.now())
    monday = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    world.clock.advance(monday - world.clock.now())
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    admin = world.chat("admin")
    first = admin.new()[-1].text
    assert "📈 Tuần đầu ghi nhận số liệu" in first

    export = tmp_path / "hb.csv"
    export.write_text("member_code,installed,activated\nDEMO001,1,1\nDEMO002,1,1\nDEMO003,1,0\n")
    await import_status_file(world.app.settings.database_url, export)
    world.clock.advance(timedelta(days=7))
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    second = admin.new()[-1].text
    assert "📈 So với 07/12: cài Sổ tay +3" in second and "kích hoạt +2" in second
    assert "Đã cài Sổ tay: 3/" in second
    assert "hệ thống Sổ tay cho 3 đảng viên" in second


async def test_a_report_in_progress_does_not_hold_up_other_members(
    world: World, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The report is computed after the event's write transaction: while it is still being
    computed, another member's message (which writes) goes through. Before, on SQLite, it
    waited for the report's transaction; here that would never end, so a timeout fails it."""
    from bot import reports
    from storage import db as storage_db

    computing, other_done = asyncio.Event(), asyncio.Event()
    original = reports.unit_report
    held: list[bool] = []

    async def slow_report(session, **kw):  # type: ignore[no-untyped-def]
        held.append(storage_db._holding_write_lock.get())
        computing.set()
        await other_done.wait()
        return await original(session, **kw)

    monkeypatch.setattr(reports, "unit_report", slow_report)
    admin = world.chat("admin")
    report = asyncio.create_task(world.app.router.handle(admin._event(text="/report")))
    await asyncio.wait_for(computing.wait(), 10)
    await asyncio.wait_for(world.app.router.handle(world.chat("canbo")._event(text="/help")), 10)
    other_done.set()
    await asyncio.wait_for(report, 10)
    await world.app.dispatcher.run_once()
    assert held == [False]
    assert world.chat("canbo").new() and "Tổng cộng" in admin.new()[-1].text


def test_the_quick_schema_check_agrees_with_alembic() -> None:
    """``sotay report`` reads the head revision from the migration files instead of loading
    alembic; it must name the same head alembic does."""
    from alembic.script import ScriptDirectory

    from storage.migrate import MIGRATIONS, head_revision

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None and head_revision() == head


async def test_a_channel_without_files_is_told_where_to_get_them(world: World) -> None:
    import dataclasses

    world.recorder.capabilities = dataclasses.replace(world.recorder.capabilities, uploads=False)
    admin = world.chat("admin")
    await admin.say("/report")
    views = await admin.press("📝 Báo cáo")
    assert views[-1].upload is None
    assert "sotay report --docx" in views[-1].text
    views = await admin.press("📗 Excel")
    assert views[-1].upload is None and "sotay report --xlsx" in views[-1].text


async def test_forget_erases_the_handbook_systems_dates(world: World, tmp_path: Path) -> None:
    from tests.test_reports import link

    export = tmp_path / "hb.csv"
    export.write_text("member_code,installed,activated\nDEMO001,20/05/2026,21/05/2026\n")
    await import_status_file(world.app.settings.database_url, export)
    await link(world, "+84912000001", "an")
    an = world.chat("an")
    await an.say("/forget")
    views = await an.press("Xóa thông tin")
    assert "Đã xóa" in views[-1].text
    async with world.app.db.reader() as session:
        rows = (await session.exec(select(Member).where(Member.status == "forgotten"))).all()
    [gone] = rows
    assert (gone.member_code, gone.hb_installed_on, gone.hb_activated_on) == (None, None, None)
    assert gone.hb_updated_at is None
    assert gone.hb_installed is True  # the anonymous yes/no stays, like the chat answers
