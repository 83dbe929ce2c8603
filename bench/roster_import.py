"""Roster import speed on SQLite, against a naive row-by-row importer measured in the same run.

A provincial committee's roster is tens of thousands of rows and is re-imported whenever it
changes, so both the first import and the no-change re-import must take seconds, not minutes.

    .venv/bin/python -m bench.roster_import [--rows 60000] [--write-docs]

Prints a Markdown table of measured figures only (nothing is extrapolated); ``--write-docs``
also replaces the ``## Roster import`` section of docs/benchmarks.md with them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import select

from bench.docs import DOCS, cpu_model, write_section
from bot.phones import normalize_phone
from handlers.roster import import_roster_file
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Member, Unit, utcnow
from storage.queries import PATH_SEP

SECTION = "## Roster import"


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words(
    "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Ma Nông Hà Triệu "
    "Giàng Sùng Lò Vàng Quan Âu Đinh Lương"
)
MIDDLES = _words("Văn Thị Đức Minh Ngọc Thanh Hữu Quang Thu Hồng Xuân Thị Văn Kim Bảo")
GIVEN = _words(
    "An Bình Cường Dung Giang Hà Hạnh Hoa Hùng Khánh Lan Linh Long Mai Minh Nga Phúc Quyên Sơn "
    "Tâm Thắng Thảo Thu Trang Tùng Uyên Việt Xuân Yến Ánh Đạt Phương Hiếu Nhung Dũng Tuấn"
)
PLACES = _words(
    "Cầu Bâu Đồng Bèn Khuôn Thê Tân Trào Kim Quan Hợp Thành Kháng Nhật Phúc Ninh Lăng Quán "
    "Thái Bình Mỹ Bằng Xuân Vân Trung Sơn Hùng Lợi Yên Nguyên Minh Thanh Đại Phú Thượng Ấm "
    "Vĩnh Lợi Sơn Nam Hồng Lạc Tú Thịnh Đông Thọ Lâm Xuyên Kiến Thiết Chiêu Yên Nhữ Khê"
)
DISTRICTS = (
    "Thành phố Tuyên Quang",
    "Huyện Lâm Bình",
    "Huyện Na Hang",
    "Huyện Chiêm Hóa",
    "Huyện Hàm Yên",
    "Huyện Yên Sơn",
    "Huyện Sơn Dương",
    "Huyện Kim Bình",
    "Huyện Tân Trào",
)
COMMUNES, CELLS = 140, 2500
NAIVE_ROWS = 5000
ANSWERS = {"có": True, "yes": True, "không": False, "no": False}  # the ones make_roster writes
T = TypeVar("T")


def _place(rng: random.Random, taken: set[str]) -> str:
    """A two-syllable Vietnamese place name not used yet under the same parent."""
    while True:
        name = f"{rng.choice(PLACES)} {rng.choice(PLACES)}"
        if name not in taken:
            taken.add(name)
            return name


def _phone(national: str, style: int) -> str:
    """The number in one of the forms committees actually type."""
    a, b, c = national[:3], national[3:6], national[6:]
    return (
        f"0{a} {b} {c}",
        f"0{a}.{b}.{c}",
        f"84{national}",
        f"+84 {a} {b} {c}",
        f"0{national}",
    )[style % 5]


def make_roster(rows: int, seed: int = 1) -> str:
    """1 province / 9 districts / 140 communes / 2,500 cells; unique phones, ~2% blank."""
    rng = random.Random(seed)
    communes: list[str] = []
    taken_by_district: dict[str, set[str]] = {d: set() for d in DISTRICTS}
    for i in range(COMMUNES):
        district = DISTRICTS[i % len(DISTRICTS)]
        kind = "Phường" if district.startswith("Thành phố") else "Xã"
        name = f"{kind} {_place(rng, taken_by_district[district])}"
        communes.append(PATH_SEP.join(("Tỉnh Tuyên Quang", district, name)))
    cells: list[str] = []
    for i, commune in enumerate(communes):
        count = CELLS // COMMUNES + (1 if i < CELLS % COMMUNES else 0)
        taken: set[str] = set()
        cells.append(commune + PATH_SEP + "Chi bộ cơ quan")
        cells += [
            commune + PATH_SEP + f"Chi bộ thôn {_place(rng, taken)}" for _ in range(count - 1)
        ]
    numbers = rng.sample(range(5 * 10**8), rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("member_code", "full_name", "phone", "unit_path", "has_smartphone"))
    for i, number in enumerate(numbers):
        national = "35789"[number // 10**8] + f"{number % 10**8:08d}"
        writer.writerow(
            (
                f"TQ{i + 1:06d}",
                f"{rng.choice(SURNAMES)} {rng.choice(MIDDLES)} {rng.choice(GIVEN)}",
                "" if rng.random() < 0.02 else _phone(national, i),
                cells[rng.randrange(len(cells))],
                rng.choice(("có", "có", "không", "", "yes", "no")),
            )
        )
    return "\ufeff" + out.getvalue()  # with the BOM that Excel's "CSV UTF-8" writes


async def naive_import(url: str, path: Path, limit: int) -> int:
    """The baseline: one SELECT and one INSERT per row, a commit every 1,000 rows."""
    text = await asyncio.to_thread(path.read_text, "utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))[:limit]
    db = Database(url)
    now = utcnow()
    try:
        async with db.reader() as session:
            units = {p: uid for uid, p in (await session.exec(select(Unit.id, Unit.path))).all()}
            for n, row in enumerate(rows, 1):
                stmt = select(Member).where(Member.member_code == row["member_code"])
                if (await session.exec(stmt)).first() is None:
                    session.add(
                        Member(
                            member_code=row["member_code"],
                            full_name=row["full_name"],
                            phone=normalize_phone(row["phone"]) if row["phone"] else None,
                            cell_id=units[row["unit_path"]],
                            has_smartphone=ANSWERS.get(row["has_smartphone"]),
                            created_at=now,
                        )
                    )
                    await session.flush()
                if n % 1000 == 0:
                    await session.commit()
            await session.commit()
    finally:
        await db.dispose()
    return len(rows)


def _timed(factory: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, float]:
    start = time.perf_counter()
    result = asyncio.run(factory())
    return result, time.perf_counter() - start


def _line(step: str, rows: int, seconds: float) -> str:
    return f"| {step} | {rows:,} | {seconds:.2f} | {rows / seconds:,.0f} |"


def _machine() -> str:
    model = cpu_model()
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python -m bench.roster_import", *sys.argv[1:]])
    load = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="sotay-bench-") as tmp:
        csv_path, db_path = Path(tmp) / "roster.csv", Path(tmp) / "roster.db"
        csv_path.write_text(make_roster(args.rows), "utf-8")
        url = f"sqlite+aiosqlite:///{db_path}"
        upgrade(url)
        first, first_s = _timed(lambda: import_roster_file(url, csv_path))
        again, again_s = _timed(lambda: import_roster_file(url, csv_path))
        assert (first.created, first.errors) == (args.rows, []), first.render()
        assert (again.created, again.updated, again.unchanged) == (0, 0, args.rows)

        naive_path = Path(tmp) / "naive.db"
        with sqlite3.connect(db_path) as conn:  # same units, no members
            conn.execute("VACUUM INTO ?", (str(naive_path),))
        with sqlite3.connect(naive_path) as conn:
            conn.execute("DELETE FROM member")
        naive_rows = min(NAIVE_ROWS, args.rows)
        naive_url = f"sqlite+aiosqlite:///{naive_path}"
        done, naive_s = _timed(lambda: naive_import(naive_url, csv_path, naive_rows))

    table = "\n".join(
        [
            "| step | rows | seconds | rows/s |",
            "|---|---:|---:|---:|",
            _line("first import", args.rows, first_s),
            _line("re-import (no change)", args.rows, again_s),
            _line("naive baseline (SELECT + INSERT per row)", done, naive_s),
        ]
    )
    print(table)
    body = f"""\
Command (from the repository root):
`{command}`

Machine: {_machine()}; shared, 1-minute load average {load:.1f} when the run started, so
expect some noise. File-backed SQLite in WAL mode (synchronous=NORMAL), as `storage.db`
configures it; each import is one transaction, including reading the CSV and opening the engine.

Roster: synthetic, 1 province / 9 districts / 140 communes / 2,500 cells ({first.units_created:,}
units created), {args.rows:,} members with Vietnamese names, unique phones in five written forms
(~2% blank), UTF-8 with BOM.

{table}

The naive baseline is a row-by-row importer (one SELECT by member_code and one INSERT per row,
commit every 1,000 rows) run on the first {done:,} rows of the same file into a database that
already holds the units; its figure is measured, not extrapolated.
"""
    if args.write_docs:
        write_section(SECTION, body)
        print(f"\nwrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()
