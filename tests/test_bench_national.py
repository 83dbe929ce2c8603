"""bench/national_scale.py at CI size: it loads a country with COPY, and its own checks hold —
the report through ``unit_rollup`` equals the plain GROUP BY and the per-unit loop, and after
its status changes (triggers on and off, rolled back, then committed) the table still equals a
fresh GROUP BY. The full 5.6-million-member run is in docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow(seconds=9)
@pytest.mark.engine_neutral  # PostgreSQL only, whatever the engine of the run
def test_national_benchmark_runs_and_checks_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.national_scale", "--members", "3000", "--runs", "1"]
        + ["--naive-timeout", "60"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| national: report (rollup) |" in done.stdout
    assert "| province: naive per-unit loop |" in done.stdout
    assert "stopped after" not in done.stdout  # the whole country was walked and agreed
