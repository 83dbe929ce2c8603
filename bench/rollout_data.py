"""A province like the source's, end to end from the command line: roster import, the handbook
system's status import and ``sotay report --json``, against a naive per-unit loop and a plain
GROUP BY over the same tables, in the same run.

    .venv/bin/python -m bench.rollout_data [--runs 3] [--write-docs]

The province (fixed seed): 57,597 members, 46,728 with a smartphone, 48,597 installed in the
handbook export; 7 districts, 138 communes, 2,000 cells. Everything runs in a temporary folder
on a temporary SQLite file (WAL, as ``storage.db`` configures it). The imports and the report are
timed as an operator sees them: wall time of the ``sotay`` process, start-up included. The
report's own query is timed in-process too, next to the two baselines, each the median of
``--runs`` interleaved runs; the report's figures are asserted equal to the GROUP BY's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench.docs import write_section

MEMBERS, SMARTPHONES, INSTALLED = 57_597, 46_728, 48_597
DISTRICTS, COMMUNES, CELLS = 7, 138, 2_000
PROVINCE = "Tỉnh Tuyên Quang"
SOTAY = str(Path(sys.executable).with_name("sotay"))


def make_files(folder: Path, seed: int = 7) -> tuple[Path, Path]:
    """The roster CSV and the handbook system's export (semicolons, BOM, CRLF: as Excel)."""
    rng = random.Random(seed)
    communes = [(c % DISTRICTS, c) for c in range(COMMUNES)]
    cells = [
        f"{PROVINCE} / Huyện {d + 1} / Xã {c + 1} / Chi bộ {k + 1}"
        for k in range(CELLS)
        for d, c in [communes[k % COMMUNES]]
    ]
    order = list(range(MEMBERS))
    rng.shuffle(order)
    phones = set(order[:SMARTPHONES])
    # Most installs are among members with a smartphone, some outside the target (hence 104%).
    outside = order[SMARTPHONES:]
    installed = set(order[: INSTALLED - 2_500]) | set(outside[:2_500])
    roster = ["member_code,full_name,phone,unit_path,has_smartphone"]
    export = ["member_code;installed;activated"]
    for i in range(MEMBERS):
        code = f"DV{i:06d}"
        roster.append(
            f"{code},Đảng viên {i},09{i:08d},{cells[i % CELLS]},{'có' if i in phones else 'không'}"
        )
        if i in installed:
            activated = "có" if rng.random() < 0.8 else "không"
            since = f"{rng.randint(1, 28):02d}/05/2026"
            export.append(f"{code};{since if i % 4 == 0 else 'có'};{activated}")
        else:
            export.append(f"{code};không;không")
    roster_path, export_path = folder / "roster.csv", folder / "export.csv"
    roster_path.write_text("\n".join(roster) + "\n", encoding="utf-8")
    export_path.write_bytes("\ufeff".encode() + "\r\n".join(export).encode() + b"\r\n")
    return roster_path, export_path


@dataclass(frozen=True)
class Scratch:
    url: str
    env: dict[str, str]
    roster: Path
    export: Path


@contextmanager
def scratch_province() -> Iterator[Scratch]:
    """A throw-away SQLite database at the current schema, with the source's province's roster
    and handbook export written beside it (not imported: each benchmark times its own)."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        url = f"sqlite+aiosqlite:///{folder / 'sotay.db'}"
        env = {**os.environ, "SOTAY_DATABASE_URL": url}
        roster, export = make_files(folder)
        sotay(env, "db", "upgrade")
        yield Scratch(url, env, roster, export)


def bench_arguments(doc: str, runs: int) -> argparse.Namespace:
    """The two options every data benchmark takes: ``--runs`` and ``--write-docs``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--write-docs", action="store_true")
    return parser.parse_args()


def sotay(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Wall time of one ``sotay`` process, start-up included, and its output."""
    started = time.perf_counter()
    done = subprocess.run([SOTAY, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"sotay {' '.join(args)} failed: {done.stderr}")
    return elapsed, done.stdout


GROUP_BY = text(
    """
    SELECT m.cell_id,
           count(*) AS members,
           sum(CASE WHEN m.has_smartphone THEN 1 ELSE 0 END) AS smartphone,
           sum(CASE WHEN coalesce(m.hb_installed, m.app_installed) THEN 1 ELSE 0 END) AS installed
    FROM member m
    WHERE m.status = 'active'
    GROUP BY m.cell_id
    """
)


async def measure(url: str, runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Interleaved: the CLI, the report's query in-process, the GROUP BY, the per-unit loop."""
    from bot import reports
    from storage import queries
    from storage.db import Database

    db = Database(url)
    times: dict[str, list[float]] = {"cli": [], "report": [], "group_by": [], "per_unit": []}
    try:
        for _ in range(runs):
            elapsed, out = sotay(env, "report", "--json")
            times["cli"].append(elapsed)
            figures = json.loads(out)
            async with db.reader() as session:
                root = await queries.unit_by_path(session, path=PROVINCE)
                assert root is not None
                span = reports.window(datetime.now(UTC))
                started = time.perf_counter()
                report = await reports.unit_report(session, unit=root, span=span)
                times["report"].append(time.perf_counter() - started)
            async with db.reader() as session:
                started = time.perf_counter()
                rows = (await session.execute(GROUP_BY)).all()
                times["group_by"].append(time.perf_counter() - started)
            async with db.reader() as session:
                started = time.perf_counter()
                naive = await per_unit(session, root.id or 0)
                times["per_unit"].append(time.perf_counter() - started)
            assert figures["installed"] == report.scope.installed == INSTALLED
            assert sum(r.installed for r in rows) == INSTALLED == naive
            assert figures["installed_pct"] == 84.4 and figures["target_pct"] == 104.0
    finally:
        await db.dispose()
    return times


async def per_unit(session, root_id: int) -> int:  # type: ignore[no-untyped-def]
    """The naive shape: walk the tree one query per unit, count each cell's members apart."""
    total = 0
    todo = [root_id]
    while todo:
        unit_id = todo.pop()
        kids = (
            await session.execute(text("SELECT id FROM unit WHERE parent_id = :u"), {"u": unit_id})
        ).all()
        todo += [kid[0] for kid in kids]
        if not kids:
            for column in ("1", "m.has_smartphone", "coalesce(m.hb_installed, m.app_installed)"):
                count = (
                    await session.execute(
                        text(
                            f"SELECT count(*) FROM member m WHERE m.cell_id = :u "
                            f"AND m.status = 'active' AND {column}"
                        ),
                        {"u": unit_id},
                    )
                ).scalar_one()
                if column.startswith("coalesce"):
                    total += count
    return total


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}"


def main() -> None:
    args = bench_arguments(__doc__ or "", runs=3)
    load = os.getloadavg()[0]
    with scratch_province() as scratch:
        env, roster, export = scratch.env, scratch.roster, scratch.export
        steps: list[tuple[str, float]] = []
        for name, call in (
            ("roster import (first)", lambda: sotay(env, "roster", "import", str(roster))),
            ("status import (first)", lambda: sotay(env, "status", "import", str(export))),
            (
                "status import (again, no change)",
                lambda: sotay(env, "status", "import", str(export)),
            ),
        ):
            elapsed, out = call()
            steps.append((name, elapsed))
            print(f"{name}: {elapsed:.2f} s  {out.splitlines()[0]}", file=sys.stderr)
        times = asyncio.run(measure(scratch.url, args.runs, env))
    lines = [
        "| step | seconds |",
        "|---|---:|",
        *[f"| {name} (`sotay` wall time) | {seconds:.2f} |" for name, seconds in steps],
        "| `sotay report --json`, province (wall time, start-up included) | "
        f"{median(times['cli'])} |",
        f"| report query in-process (`unit_report`) | {median(times['report'])} |",
        f"| baseline: plain GROUP BY over the same tables | {median(times['group_by'])} |",
        f"| baseline: naive per-unit loop | {median(times['per_unit'])} |",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        write_docs(body, args.runs, load)


def write_docs(body: str, runs: int, load: float) -> None:
    write_section(
        "## Rollout data (status import, province report)",
        "Command (from the repository root): `.venv/bin/python -m bench.rollout_data "
        f"--runs {runs} --write-docs`\n\n"
        "A province like the source's (57,597 members; 46,728 with a smartphone; 48,597 "
        "installed in the handbook export; 7 districts, 138 communes, 2,000 cells) on SQLite. "
        f"Report rows: median of {runs} interleaved runs; imports: one run each. Machine: 2 "
        f"cores shared with other jobs, 1-minute load average {load:.1f} when the run started "
        "(on a loaded machine every figure grows; compare rows of the same run).\n\n" + body,
    )


if __name__ == "__main__":
    main()
