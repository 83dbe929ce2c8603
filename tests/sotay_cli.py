"""`sotay ARGS` run inside the test process, as `python -m bot.cli ARGS` would run in a new one.

A new Python process costs ~2 CPU-s (interpreter start and importing the app) for every command a
test runs; on the two-core CI machine the suite's command-line tests spent most of their time on
that. Here the command runs in a thread of the test process with what a fresh process would have:
the given environment only (``os.environ`` replaced), the given working folder, its own stdin,
stdout and stderr, the root logger without the test's handlers (so ``sotay``'s own log setup, to
stderr or to the demo's file, is what records), and an uncaught exception printed as Python
prints it (``Traceback ...`` on stderr, exit code 1). Everything is put back afterwards.

The tests about processes themselves (``sotay run`` serving and stopping on SIGTERM, worker
processes killed and restarted, two processes racing for one refresh token) still start real
processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

PROG_NAME = "python -m bot.cli"  # what click calls the program when started with `-m bot.cli`
_one_at_a_time = threading.Lock()  # the environment, the folder and sys.std* are per process


@contextmanager
def _fresh_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger.name: logger.level for logger in loggers}
    disabled = logging.root.manager.disable
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)  # a new process's root logger
    try:
        yield
    finally:
        for handler in list(root.handlers):  # what the command added: its stderr, its log file
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for logger in loggers:
            logger.setLevel(levels[logger.name])
        logging.disable(disabled)


@contextmanager
def _folder(cwd: Path | None) -> Iterator[None]:
    before = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


def run_sotay(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``sotay ARGS`` with exactly the environment ``env``; the result is what
    ``subprocess.run(..., capture_output=True, text=True)`` gives for the same command.
    Callable from a synchronous test or an async one (it blocks: wrap it in
    ``asyncio.to_thread`` when the test's own servers must keep answering)."""
    from bot.cli import main

    outcome: list[subprocess.CompletedProcess[str]] = []
    failure: list[BaseException] = []

    def command() -> None:
        try:
            with _one_at_a_time, _folder(cwd), _fresh_logging():
                unset: dict[str, str | None] = {name: None for name in os.environ}
                result = CliRunner().invoke(
                    main,
                    list(args),
                    input=stdin,
                    env={**unset, **env},
                    prog_name=PROG_NAME,
                    catch_exceptions=True,
                )
            stderr, code = result.stderr, result.exit_code
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                assert result.exc_info is not None
                stderr += "".join(traceback.format_exception(*result.exc_info))
                code = 1
            outcome.append(
                subprocess.CompletedProcess([PROG_NAME, *args], code, result.stdout, stderr)
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=command, name="sotay " + " ".join(args[:2]), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise subprocess.TimeoutExpired([PROG_NAME, *args], timeout)
    if failure:
        raise failure[0]
    return outcome[0]


def run_sotay_here(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``run_sotay`` with this process's environment plus ``env``."""
    return run_sotay(args, env={**os.environ, **(env or {})}, stdin=stdin, cwd=cwd)
