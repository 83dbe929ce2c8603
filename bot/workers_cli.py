"""``sotay run --workers N``: N worker processes on one port, kept running (issue 14).

Each worker is an ordinary ``sotay run`` with its own ``SOTAY_WORKER_NAME`` (``<base>-<i>``), so
a worker restarted after a crash takes over its predecessor's outbox leases at once, and the
web servers share the port (SO_REUSEPORT). Several workers need what coordinates them:
PostgreSQL (advisory locks, SKIP LOCKED) and webhooks (only one process may poll a bot).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

from bot.settings import Settings

log = logging.getLogger("sotay.workers")

STOP_BUDGET = 10.0  # seconds the workers get after SIGTERM before they are killed
RESTART_PAUSE = 1.0  # seconds before a worker that died is started again


def refuse_several(settings: Settings) -> str | None:
    """Why this configuration cannot run several workers (a sentence), or None."""
    if not settings.database_url.startswith("postgresql"):
        return (
            "--workers above 1 needs PostgreSQL: SQLite serves one process "
            "(set SOTAY_DATABASE_URL to a postgresql+asyncpg:// URL, or run one worker)."
        )
    polling = [
        name
        for name, token, hook in (
            ("Telegram", settings.telegram_token, settings.webhook_url),
            ("Zalo", settings.zalo_token, settings.zalo_webhook_url),
        )
        if token and not hook
    ]
    if polling:
        return (
            f"--workers above 1 needs webhooks: {' and '.join(polling)} would be polled by "
            "several processes at once (set SOTAY_WEBHOOK_URL / SOTAY_ZALO_WEBHOOK_URL)."
        )
    return None


def _start(index: int, base: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SOTAY_WORKER_NAME": f"{base}-{index}",
        "SOTAY_WEB_REUSE_PORT": "true",
    }
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=env)  # noqa: S603


def supervise(count: int, settings: Settings) -> int:
    """Start ``count`` workers, start again any that dies, stop them all on SIGTERM/SIGINT."""
    base = settings.worker_name or socket.gethostname()
    workers = {index: _start(index, base) for index in range(1, count + 1)}
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for index, process in list(workers.items()):
            if process.poll() is not None and not stopping:
                log.warning("worker.died index=%s code=%s", index, process.returncode)
                time.sleep(RESTART_PAUSE)
                workers[index] = _start(index, base)
        time.sleep(0.2)
    for process in workers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_BUDGET
    codes = []
    for index, process in workers.items():
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
        log.info("worker.stopped index=%s code=%s", index, process.returncode)
    # -SIGTERM: a worker still starting up (no handler yet) had nothing to finish
    return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
