"""``sotay report --json`` for the source's province on SQLite, wall time from the command line
(start-up included), against the floor of any Python command that reads the database with
SQLAlchemy (``python -c "import sqlalchemy"``), in the same run.

    .venv/bin/python -m bench.report_startup [--runs 15] [--baseline-src DIR --baseline-db FILE]

The province (bench/rollout_data.py's: 57,597 members, 2,000 cells) is imported once into a
temporary SQLite file with ``sotay roster import`` and ``sotay status import``. Then the
commands run interleaved, ``--runs`` times each after one warm-up, and the medians are printed.
``--baseline-src`` adds an older checkout of the code (run with this venv's Python and
``PYTHONPATH=DIR``) on its own database ``--baseline-db`` (imported with that code), so the
before/after comparison is made on the same machine in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.rollout_data import make_files, sotay


def wall(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--baseline-db", type=Path, default=None)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        env = {**os.environ, "SOTAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'p.db'}"}
        roster, export = make_files(folder)
        for step in (("db", "upgrade"), ("roster", "import", str(roster))):
            sotay(env, *step)
        sotay(env, "status", "import", str(export))
        commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
            'floor: python -c "import sqlalchemy"': (
                [python, "-c", "import sqlalchemy"],
                env,
                None,
            ),
            "sotay report --json (this code)": (
                [python, "-m", "bot.cli", "report", "--json"],
                env,
                None,
            ),
        }
        if args.baseline_src and args.baseline_db:
            old = {
                **os.environ,
                "PYTHONPATH": str(args.baseline_src),
                "SOTAY_DATABASE_URL": f"sqlite+aiosqlite:///{args.baseline_db}",
            }
            commands["sotay report --json (baseline code)"] = (
                [python, "-m", "bot.cli", "report", "--json"],
                old,
                args.baseline_src,
            )
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command, cmd_env, cwd in commands.values():
            wall(command, cmd_env, cwd)  # warm-up: page cache, .pyc files
        for _ in range(args.runs):
            for name, (command, cmd_env, cwd) in commands.items():
                times[name].append(wall(command, cmd_env, cwd))
    load = os.getloadavg()[0]
    print(f"median of {args.runs} interleaved runs, 1-minute load {load:.1f} at the end")
    print("| command | median s | min s |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} |")


if __name__ == "__main__":
    main()
