"""Roster import: the CSV rules, the upsert, the report, and the ``sotay roster import`` command.

Every database test runs on SQLite and on PostgreSQL (``db_url``): the import writes with bulk
statements whose behaviour differs between the two drivers. Checks of the file itself (encoding,
columns, empty paths) are engine-neutral and run on SQLite only.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import select

from handlers.roster import (
    RosterFileError,
    RosterReport,
    RowError,
    import_roster_file,
    import_roster_text,
    reason,
)
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Member, MemberStatus, Unit
from tests.sotay_cli import run_sotay

DATA = Path(__file__).parent / "data"
SOTAY = Path(__file__).parent.parent / ".venv" / "bin" / "sotay"
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HEADER = "member_code,full_name,phone,unit_path,has_smartphone\n"
CELL = "Tỉnh Hà Giang / Xã Lũng Cú / Chi bộ thôn Lô Lô Chải"
# What Excel's plain "CSV" gives on Vietnamese Windows: cp1258, tone marks as combining characters.
CP1258 = "full_name,phone,unit_path\nNguy\u00ea\u0303n V\u0103n An,,Xa\u0303 A\n"


@pytest.fixture
def db_url(database_url: str) -> str:
    """The shared per-test database (tests/conftest.py): SQLite, and PostgreSQL when running."""
    return database_url


async def run(url: str, text: str, *, dry_run: bool = False) -> RosterReport:
    db = Database(url)
    try:
        async with db.session() as session:
            return await import_roster_text(session, text, dry_run=dry_run, now=NOW)
    finally:
        await db.dispose()


async def state(url: str) -> tuple[dict[str, Member], dict[str, Unit]]:
    """Members keyed by code (or name when they have none) and units keyed by path."""
    db = Database(url)
    try:
        async with db.reader() as session:
            members = (await session.exec(select(Member))).all()
            units = (await session.exec(select(Unit))).all()
    finally:
        await db.dispose()
    return {m.member_code or m.full_name or "": m for m in members}, {u.path: u for u in units}


async def add_member(url: str, member: Member) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            session.add(member)
    finally:
        await db.dispose()


def cell_of(units: dict[str, Unit], member: Member) -> str:
    return next(path for path, unit in units.items() if unit.id == member.cell_id)


async def test_every_phone_form_is_normalised(db_url: str) -> None:
    report = await run(db_url, HEADER + f"P1,Nguyễn Văn An,0912 345 678,{CELL},có\n")
    assert report.created == 1
    for form in ("0912.345.678", "84912345678", "+84 912 345 678", "0912345678"):
        again = await run(db_url, HEADER + f"P1,Nguyễn Văn An,{form},{CELL},có\n")
        assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 1, [])
    members, _ = await state(db_url)
    assert members["P1"].phone == "+84912345678"


async def test_good_file_creates_members_and_units_of_any_depth(db_url: str) -> None:
    report = await run(db_url, (DATA / "roster_good.csv").read_text("utf-8"))
    assert (report.rows, report.created, report.updated, report.errors) == (8, 8, 0, [])
    members, units = await state(db_url)
    assert report.units_created == len(units) == 7
    assert {p: (u.depth, u.folded_name) for p, u in units.items()} == {
        "Tỉnh Hà Giang": (0, "tinh ha giang"),
        "Tỉnh Hà Giang / Xã Lũng Cú": (1, "xa lung cu"),
        "Tỉnh Hà Giang / Xã Lũng Cú / Chi bộ thôn Lô Lô Chải": (2, "chi bo thon lo lo chai"),
        "Tỉnh Hà Giang / Xã Lũng Cú / Chi bộ thôn Thèn Pả": (2, "chi bo thon then pa"),
        "Tỉnh Hà Giang / Huyện Đồng Văn": (1, "huyen dong van"),
        "Tỉnh Hà Giang / Huyện Đồng Văn / Thị trấn Phó Bảng": (2, "thi tran pho bang"),
        "Tỉnh Hà Giang / Huyện Đồng Văn / Thị trấn Phó Bảng / Chi bộ khu 1": (3, "chi bo khu 1"),
    }
    for path, unit in units.items():
        parent, _, name = path.rpartition(" / ")
        assert unit.name == name
        assert unit.parent_id == (units[parent].id if parent else None)
    assert {code: m.phone for code, m in members.items()} == {
        "HG001": "+84912000201",
        "HG002": "+84912000202",
        "HG003": "+84912000203",
        "HG004": "+84912000204",
        "HG005": None,
        "HG006": "+84912000206",
        "Hoàng Văn Chu": "+84912000207",
        "HG008": "+84912000208",
    }
    assert [members[c].has_smartphone for c in ("HG001", "HG002", "HG003", "HG004")] == [
        True,
        False,
        None,
        True,
    ]
    assert cell_of(units, members["HG008"]) == "Tỉnh Hà Giang"
    assert cell_of(units, members["HG002"]) == CELL  # "/" without spaces is the same path
    an = members["HG001"]
    assert (an.source, an.status, an.created_at) == ("roster", MemberStatus.active, NOW)
    assert an.created_at is not None and an.created_at.tzinfo is not None


async def test_reimport_changes_nothing(db_url: str) -> None:
    await import_roster_file(db_url, DATA / "roster_good.csv")
    before = await state(db_url)
    report = await import_roster_file(db_url, DATA / "roster_good.csv")
    assert (report.created, report.updated, report.unchanged, report.units_created) == (0, 0, 8, 0)
    after = await state(db_url)
    dump = [{k: m.model_dump() for k, m in side.items()} for side in before]
    assert dump == [{k: m.model_dump() for k, m in side.items()} for side in after]


async def test_changed_rows_update_the_member(db_url: str) -> None:
    await run(
        db_url,
        HEADER
        + f"C1,Nguyễn Văn An,0912000301,{CELL},có\n"
        + f"C2,Trần Thị Bình,0912000302,{CELL},không\n"
        + f",Lê Văn Cường,0912000303,{CELL},\n"
        + f"C4,Phạm Thị Dung,0912000304,{CELL},có\n",
    )
    report = await run(
        db_url,
        HEADER
        + f"C1,Nguyễn Văn Ân,0912000301,{CELL},có\n"  # name corrected
        + f"C2,Trần Thị Bình,0912000392,{CELL} / Tổ 2,\n"  # new phone and cell, answer blank
        + f"C3,Lê Văn Cường,0912 000 303,{CELL},yes\n"  # matched by phone, gets a code
        + f"C4,Phạm Thị Dung,0912000304,{CELL},có\n",
    )
    assert (report.created, report.updated, report.unchanged, report.units_created) == (0, 3, 1, 1)
    members, units = await state(db_url)
    assert len(members) == 4
    assert members["C1"].full_name == "Nguyễn Văn Ân"
    assert members["C2"].phone == "+84912000392"
    assert cell_of(units, members["C2"]) == CELL + " / Tổ 2"
    assert members["C2"].has_smartphone is False  # a blank answer keeps the known one
    assert (members["C3"].full_name, members["C3"].has_smartphone) == ("Lê Văn Cường", True)


async def test_blank_phone_keeps_the_known_phone(db_url: str) -> None:
    await run(db_url, HEADER + f"K1,Nguyễn Văn An,0912000401,{CELL},có\n")
    report = await run(db_url, HEADER + f"K1,Nguyễn Văn An,,{CELL},có\n")
    assert (report.updated, report.unchanged) == (0, 1)
    members, _ = await state(db_url)
    assert members["K1"].phone == "+84912000401"


async def test_members_without_code_or_phone_match_by_name_and_cell(db_url: str) -> None:
    text = HEADER + f",Nguyễn Văn An,,{CELL},\n,Nguyễn Văn An,,{CELL},\n,Trần Thị Bình,,{CELL},\n"
    assert (await run(db_url, text)).created == 3  # namesakes in one cell are two people
    again = await run(db_url, text)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    changed = await run(db_url, text.replace("Bình,,", "Bình,0912000501,"))
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)


async def test_bad_rows_are_reported_by_line_and_good_rows_import(db_url: str) -> None:
    report = await import_roster_file(db_url, DATA / "roster_bad.csv")
    assert [(e.line, e.reason) for e in report.errors] == [
        (3, "full_name is empty"),
        (4, "phone '123' is not a Vietnamese number"),
        (5, "phone '+1 202 555 0100' is a foreign number"),
        (6, "unit_path is empty"),
        (7, "unit_path 'Tỉnh Hà Giang // Chi bộ thôn Lô Lô Chải' has an empty unit name"),
        (8, "has_smartphone 'có lẽ' is not yes/no (có/không)"),
        (9, "member_code 'B001' already appears on line 2"),
        (10, "phone '0912.000.101' already appears on line 2"),
        (11, "expected 5 fields, found 3"),
        (12, "expected 5 fields, found 6"),
        (17, "phone 'abc' is not a Vietnamese number"),
    ]
    assert (report.rows, report.created, report.updated, report.unchanged) == (14, 3, 0, 0)
    members, _ = await state(db_url)
    assert sorted(members) == ["B001", "B014", "B015"]
    assert members["B001"].full_name == "Nguyễn Văn An"  # the first occurrence of the code wins
    assert members["B015"].full_name == "Dương Thị Nga"  # a quoted line break is collapsed
    rendered = report.render()
    assert "3 new" in rendered and "11 with errors" in rendered
    assert "line 4: phone '123' is not a Vietnamese number" in rendered.splitlines()


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    "path",
    ["", "  /  ", "Tỉnh Hà Giang / / Chi bộ", "Tỉnh Hà Giang / Xã Lũng Cú /", "/Tỉnh Hà Giang"],
)
async def test_empty_unit_paths_are_row_errors(db_url: str, path: str) -> None:
    report = await run(db_url, HEADER + f"E1,Nguyễn Văn An,0912000601,{path},có\n")
    assert report.created == 0
    assert [e.line for e in report.errors] == [2]
    assert report.errors[0].reason.startswith("unit_path")
    assert await state(db_url) == ({}, {})


async def test_duplicate_member_codes(db_url: str) -> None:
    report = await run(
        db_url,
        HEADER
        + f"D1,Nguyễn Văn An,0912000701,{CELL},có\n"
        + f"D2,Trần Thị Bình,0912000702,{CELL},có\n"
        + f"D1,Lê Văn Cường,0912000703,{CELL},có\n",
    )
    assert report.created == 2
    assert [(e.line, e.reason) for e in report.errors] == [
        (4, "member_code 'D1' already appears on line 2")
    ]


async def test_phone_of_another_existing_member_is_refused(db_url: str) -> None:
    await run(
        db_url,
        HEADER + f"X1,Nguyễn Văn An,0912000801,{CELL},có\nX2,Trần Thị Bình,0912000802,{CELL},\n",
    )
    report = await run(
        db_url,
        HEADER
        + f"X2,Trần Thị Bình,0912000801,{CELL},\n"  # X1's number moved onto X2
        + f"X3,Lê Văn Cường,0912000802,{CELL},\n",  # a new code with X2's number
    )
    assert [(e.line, e.reason) for e in report.errors] == [
        (2, "phone '0912000801' belongs to another member (X1)"),
        (3, "phone '0912000802' belongs to another member (X2)"),
    ]
    members, _ = await state(db_url)
    assert (members["X1"].phone, members["X2"].phone) == ("+84912000801", "+84912000802")
    assert "X3" not in members


async def test_phone_freed_earlier_in_the_file_can_be_reused(db_url: str) -> None:
    await run(db_url, HEADER + f"F1,Nguyễn Văn An,0912000901,{CELL},\n")
    report = await run(
        db_url,
        HEADER + f"F1,Nguyễn Văn An,0912000902,{CELL},\nF2,Trần Thị Bình,0912000901,{CELL},\n",
    )
    assert (report.created, report.updated, report.errors) == (1, 1, [])
    members, _ = await state(db_url)
    assert (members["F1"].phone, members["F2"].phone) == ("+84912000902", "+84912000901")


async def test_forgotten_members_are_never_matched(db_url: str) -> None:
    await run(db_url, HEADER + f",Nguyễn Văn An,,{CELL},\n")
    _, units = await state(db_url)
    await add_member(
        db_url,
        Member(
            full_name="Trần Thị Bình",
            phone="+84912001001",
            cell_id=units[CELL].id,
            status=MemberStatus.forgotten,
        ),
    )
    report = await run(db_url, HEADER + f",Trần Thị Bình,0912001001,{CELL},\n")
    assert (report.created, report.updated) == (1, 0)


async def test_dry_run_writes_nothing(db_url: str) -> None:
    report = await import_roster_file(db_url, DATA / "roster_good.csv", dry_run=True)
    assert (report.dry_run, report.created, report.units_created) == (True, 8, 7)
    assert report.render().startswith("Dry run (nothing written)")
    assert await state(db_url) == ({}, {})
    await import_roster_file(db_url, DATA / "roster_good.csv")
    text = (DATA / "roster_good.csv").read_text("utf-8")
    changed = text.replace("Ma Thị Hoa", "Ma Thị Hoà").replace("Tỉnh Hà Giang,Có", "Tỉnh B,Có")
    report = await run(db_url, changed, dry_run=True)
    assert (report.updated, report.unchanged, report.units_created) == (1, 7, 1)
    members, units = await state(db_url)
    assert members["HG008"].full_name == "Ma Thị Hoa" and "Tỉnh B" not in units


async def test_nfd_text_is_stored_as_nfc(db_url: str) -> None:
    nfd = unicodedata.normalize("NFD", f"N1,Nguyễn  Văn   Ánh,0912001101,{CELL},Có\n")
    assert nfd != unicodedata.normalize("NFC", nfd)
    assert (await run(db_url, HEADER + nfd)).created == 1
    members, units = await state(db_url)
    assert members["N1"].full_name == "Nguyễn Văn Ánh"
    assert members["N1"].has_smartphone is True
    assert set(units) == {"Tỉnh Hà Giang", "Tỉnh Hà Giang / Xã Lũng Cú", CELL}
    nfc = unicodedata.normalize("NFC", f"N1,Nguyễn Văn Ánh,0912001101,{CELL},có\n")
    assert (await run(db_url, HEADER + nfc)).unchanged == 1


async def test_semicolons_bom_crlf_and_loose_header(db_url: str) -> None:
    text = (
        "\ufeff Full_Name ;PHONE; Unit_Path ;Has_Smartphone\r\n"
        f"Nguyễn Văn An;0912001201;{CELL};KHÔNG\r\n"
        "\r\n"
        ";;;\r\n"
        f"Trần Thị Bình;;{CELL};x\r\n"
    )
    report = await run(db_url, text)
    assert (report.rows, report.created) == (2, 1)
    assert [(e.line, e.reason) for e in report.errors] == [
        (5, "has_smartphone 'x' is not yes/no (có/không)")
    ]
    members, _ = await state(db_url)
    assert members["Nguyễn Văn An"].has_smartphone is False


async def test_has_smartphone_values(db_url: str) -> None:
    values = {
        "yes": True, "Y": True, "có": True, "CO": True, "1": True, "True": True,
        "no": False, "n": False, "Không": False, "khong": False, "0": False, "FALSE": False,
        "": None,
    }  # fmt: skip
    rows = "".join(
        f"S{i},Người {i},09120013{i:02d},{CELL},{value}\n" for i, value in enumerate(values)
    )
    assert (await run(db_url, HEADER + rows)).created == len(values)
    members, _ = await state(db_url)
    assert [members[f"S{i}"].has_smartphone for i in range(len(values))] == list(values.values())


async def test_import_uses_batched_statements(db_url: str) -> None:
    """No per-row SELECT or INSERT: a province-sized file must stay fast."""
    rows = "".join(
        f"Q{i},Người {i},0913{i:06d},Tỉnh A / Xã {i % 7} / Chi bộ {i % 40},có\n"
        for i in range(2500)
    )
    db = Database(db_url)
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        async with db.session() as session:
            report = await import_roster_text(session, HEADER + rows, now=NOW)
    finally:
        await db.dispose()
    assert (report.created, report.units_created) == (2500, 1 + 7 + 280)
    assert len(statements) < 25, statements[:30]


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf  \n", "the file is empty"),
        (HEADER.encode(), "no member rows"),
        (b"full_name,unit_path\nAn,A\n", "lacks the required column(s) phone"),
        (b"member_code,has_smartphone\nX,yes\n", "full_name, phone, unit_path"),
        (f"Nguyễn Văn An,0912000001,{CELL},có\n".encode(), "not a header"),
        (b"\nfull_name,phone,unit_path\n", "the first line is empty"),
        (b"full_name,phone,phone,unit_path\nA,1,1,B\n", "phone appears twice"),
        ("full_name,phone,unit_path\nAn,,Xa A\n".encode("utf-16-le"), "NUL characters"),
        (b'full_name,phone,unit_path\nAn,,A\n"' + b"x" * 140_000, "line 3 cannot be read as CSV"),
        ("full_name,phone,unit_path\nLê Hà,,Xã A\n".encode("latin-1"), "not UTF-8"),
        (CP1258.encode("cp1258"), 'save it from Excel as "CSV UTF-8'),
    ],
    ids=[
        "empty",
        "bom-only",
        "header-only",
        "missing-phone",
        "missing-three",
        "no-header",
        "blank-first-line",
        "twice",
        "utf16",
        "runaway-quote",
        "latin1",
        "cp1258",
    ],
)
async def test_whole_file_problems(
    db_url: str, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    with pytest.raises(RosterFileError) as caught:
        await import_roster_file(db_url, path)
    assert message in str(caught.value)
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)  # one sentence
    assert await state(db_url) == ({}, {})


def test_render_lists_at_most_fifty_errors() -> None:
    errors = [RowError(line, reason("op.roster.row.long_path")) for line in range(2, 62)]
    report = RosterReport(
        rows=70, created=10, updated=0, unchanged=0, units_created=3, errors=errors, dry_run=False
    )
    lines = report.render().splitlines()
    assert lines[0] == (
        "Roster imported, 70 rows: 10 new, 0 updated, 0 unchanged, 60 with errors; 3 new units."
    )
    assert lines[1] == "line 2: unit_path is too long" and lines[50].startswith("line 51: ")
    assert lines[51:] == ["... and 10 more"]


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def sotay(
    db: Path, *args: str, lang: str = "vi", process: bool = False
) -> subprocess.CompletedProcess[str]:
    """``sotay roster import ARGS``: in this process as a new one would run it
    (tests/sotay_cli.py), or with ``process`` as the installed ``sotay`` command itself."""
    env = {
        **os.environ,
        "SOTAY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "SOTAY_DEFAULT_LANGUAGE": lang,
    }
    if not process:
        return run_sotay(["roster", "import", *args], env=env, cwd=db.parent)
    return subprocess.run(
        [str(SOTAY), "roster", "import", *args],
        env=env,
        cwd=db.parent,  # away from any developer .env
        capture_output=True,
        text=True,
        timeout=120,
    )


def count_members(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM member").fetchone()[0]


def test_cli_imports_a_clean_file(cli_db: Path) -> None:
    done = sotay(cli_db, str(DATA / "roster_good.csv"), process=True)  # the installed command
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "Đã nhập danh sách, 8 dòng: 8 mới, 0 cập nhật, 0 không đổi, 0 có lỗi; 7 đơn vị mới."
    )
    assert "checking" not in done.stderr  # no progress bar when stderr is not a terminal
    assert count_members(cli_db) == 8
    again = sotay(cli_db, str(DATA / "roster_good.csv"), lang="en")
    assert again.returncode == 0 and again.stdout.strip() == (
        "Roster imported, 8 rows: 0 new, 0 updated, 8 unchanged, 0 with errors; 0 new units."
    )


def test_cli_reports_bad_rows_with_exit_code_3(cli_db: Path) -> None:
    done = sotay(cli_db, str(DATA / "roster_bad.csv"))
    assert done.returncode == 3
    lines = done.stdout.splitlines()
    assert "11 có lỗi" in lines[0]
    assert "dòng 4: số điện thoại '123' không phải số Việt Nam" in lines
    assert "dòng 5: số điện thoại '+1 202 555 0100' là số nước ngoài" in lines
    assert "dòng 9: member_code 'B001' đã có ở dòng 2" in lines
    assert not any("line" in line or "not a" in line for line in lines)  # no English left
    assert count_members(cli_db) == 3
    english = sotay(cli_db, str(DATA / "roster_bad.csv"), lang="en")
    assert english.returncode == 3
    assert "line 17: phone 'abc' is not a Vietnamese number" in english.stdout.splitlines()
    assert "dòng" not in english.stdout


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("vi", "sotay: tệp có dòng tiêu đề nhưng không có dòng đảng viên nào."),
        ("en", "sotay: the file has a header but no member rows."),
    ],
)
def test_cli_whole_file_problem_in_the_operators_language(
    cli_db: Path, tmp_path: Path, lang: str, message: str
) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("full_name,phone,unit_path\n", encoding="utf-8")
    done = sotay(cli_db, str(path), lang=lang)
    assert done.returncode == 1 and done.stderr.strip() == message


def test_cli_dry_run(cli_db: Path) -> None:
    done = sotay(cli_db, "--dry-run", str(DATA / "roster_good.csv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Chạy thử (không ghi gì), 8 dòng: 8 mới")
    assert count_members(cli_db) == 0


def test_cli_wrong_encoding_is_one_line(cli_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("full_name,phone,unit_path\nLê Hà,,Xã A\n".encode("latin-1"))
    done = sotay(cli_db, str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("sotay: excel.csv không phải văn bản UTF-8")
    assert len(done.stderr.strip().splitlines()) == 1
    english = sotay(cli_db, str(path), lang="en")
    assert english.stderr.startswith("sotay: excel.csv is not UTF-8 text")
