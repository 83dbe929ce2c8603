"""The ``sotay`` command: run the bot, the terminal chat and demo, and admin tasks.

Errors an operator can fix (bad settings, old schema, unknown unit) end in one clear sentence
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from bot.i18n import t
from bot.secrecy import RedactingFilter, redact, shown_url

if TYPE_CHECKING:  # imported lazily at run time: `sotay --help` must not load the messengers
    from bot.app import App
    from bot.channels.telegram import TelegramChannel
    from bot.channels.zalo import ZaloChannel
    from bot.quick_settings import ReportSettings
    from bot.settings import Settings  # lazily too: pydantic-settings costs `sotay report` 0.2 s
    from bot.web import WebServer

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])  # a click command function


class Fail(click.ClickException):
    """An operator-facing failure: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"sotay: {self.message}", err=True)


def _settings(**overrides: Any) -> Settings:
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise Fail(str(exc)) from None


def _say(settings: ReportSettings, key: str, **values: object) -> str:
    """A text for the operator, in SOTAY_DEFAULT_LANGUAGE."""
    return t(settings.default_language, key, **values)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # tokens and the database password, masked
        handler.addFilter(RedactingFilter())
        if os.environ.get("SOTAY_LOG_FORMAT", "").lower() == "json":
            from bot.jsonlog import JsonFormatter

            handler.setFormatter(JsonFormatter())
    for noisy in ("httpx", "telegram", "apscheduler", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _require_current_schema(settings: ReportSettings) -> None:
    from storage.db import make_engine
    from storage.migrate import schema_is_current

    engine = make_engine(settings.database_url)
    try:
        current = await schema_is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any connection problem is reported in one line
        raise Fail(
            _say(
                settings,
                "op.fail.db_open",
                url=repr(shown_url(settings.database_url)),
                error=type(exc).__name__,
            )
        ) from None
    finally:
        await engine.dispose()
    if not current:
        raise Fail(_say(settings, "op.fail.schema_old"))


def _admin_command(make: Callable[[Settings], Awaitable[str]], *also: type[Exception]) -> None:
    """Run one administrative command on a current schema and print its answer; a refusal
    (``AdminError``, or one of ``also``) is the one line the operator sees, exit 1."""
    from handlers.cli_admin import AdminError

    refusals: tuple[type[Exception], ...] = (AdminError, *also)
    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        click.echo(_run(make(settings)))
    except refusals as exc:
        raise Fail(str(exc)) from None


class _Imported(Protocol):
    @property
    def errors(self) -> Sequence[object]: ...

    def render(self, lang: str) -> str: ...


def _import_command(run_import: Callable[[str], Awaitable[_Imported]]) -> None:
    """Import a file into the database at SOTAY_DATABASE_URL and print the summary in the
    operator's language; a file refused as a whole is one line (exit 1), rows refused exit 3."""
    from handlers.roster import RosterFileError

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        result = _run(run_import(settings.database_url))
    except RosterFileError as exc:  # a StatusFileError too
        raise Fail(_say(settings, exc.key, **exc.values)) from None
    click.echo(result.render(settings.default_language))
    if result.errors:
        sys.exit(3)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Sổ tay đảng viên assistant."""
    _logging(verbose)


# --- database -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from storage.migrate import upgrade

    settings = _settings()
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one sentence, the password masked
        raise Fail(
            _say(
                settings,
                "op.fail.db_upgrade",
                url=repr(shown_url(settings.database_url)),
                error=redact(str(exc)).splitlines()[0][:200],
            )
        ) from None
    click.echo(_say(settings, "op.db.current"))


# --- running --------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing one port (PostgreSQL and webhooks only).",
)
def run(workers: int) -> None:
    """Start everything configured (Telegram and/or Zalo, polling or webhook; dispatcher)."""
    from bot.settings import SettingsError

    settings = _settings()
    try:
        settings.require_webhook_secret()
    except SettingsError as exc:
        raise Fail(str(exc)) from None
    if not settings.telegram_token and not settings.zalo_token and not settings.zalo_oa_app_id:
        raise Fail(_say(settings, "op.fail.no_token"))
    if workers > 1:
        from bot.workers_cli import refuse_several, supervise

        refusal = refuse_several(settings)
        if refusal:
            raise Fail(refusal)
        raise SystemExit(supervise(workers, settings))
    _run(_serve(settings))


async def _start_telegram(
    app: App, telegram: TelegramChannel, settings: Settings, web_server: WebServer
) -> None:
    from telegram.error import InvalidToken, NetworkError

    try:
        await telegram.start(web_server)
    except InvalidToken:
        raise Fail(_say(settings, "op.fail.tg_token")) from None
    except NetworkError as exc:
        raise Fail(
            _say(settings, "op.fail.tg_unreachable", url=settings.telegram_api_url, error=exc)
        ) from None
    app.services.bot_username = telegram.username


async def _start_zalo(zalo: ZaloChannel, settings: Settings, web_server: WebServer) -> None:
    from aiohttp import ClientError

    from bot.channels.zalo import ZaloApiError

    try:
        await zalo.start(web_server)
    except ZaloApiError as exc:
        if exc.code == 401:  # Zalo's error table: 403 is its internal error, not the token
            raise Fail(_say(settings, "op.fail.zalo_token")) from None
        raise Fail(
            _say(settings, "op.fail.zalo_answer", url=settings.zalo_api_url, code=exc.code)
        ) from None
    except (ClientError, TimeoutError) as exc:
        raise Fail(
            _say(
                settings,
                "op.fail.zalo_unreachable",
                url=settings.zalo_api_url,
                error=type(exc).__name__,
            )
        ) from None


async def _stop_taking_updates(telegram: TelegramChannel | None, web_server: WebServer) -> None:
    """A graceful stop's first step (SIGTERM, 10 s in all): no new updates — the poll loop ends
    after the batch in hand, the web server closes (webhooks in progress are answered) — while
    sending still works for what those updates produce."""
    if telegram is not None:
        await telegram.poller.stop(grace=3.0)
    await web_server.stop()


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``. Only the main thread receives signals: a command run
    in another thread (the tests' in-process runner, tests/sotay_cli.py) has none to take."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except RuntimeError:  # set_wakeup_fd only works in the main thread
            return


async def _serve(settings: Settings) -> None:
    from bot.app import App
    from bot.channels.telegram import TelegramChannel
    from bot.channels.zalo import ZaloChannel
    from bot.web import WebServer

    await _require_current_schema(settings)
    app = App(settings)
    telegram = TelegramChannel(settings, app.router.handle) if settings.telegram_token else None
    zalo = (
        ZaloChannel(settings, app.router.handle, app.db, clock=app.clock)
        if settings.zalo_token
        else None
    )
    # One web server for the process: every channel on a webhook mounts its route on it.
    web_server = WebServer(settings)
    for channel in (telegram, zalo):
        if channel is not None and channel.webhook_mode:
            web_server.mount(channel.add_routes)
    zalo_oa = _zalo_oa_channel(app, settings)
    if zalo_oa is not None:
        web_server.mount(zalo_oa.add_routes)
    if settings.web_base_url:  # the staff dashboard (handlers/dashboard) under /web/
        from handlers import dashboard

        web_server.mount(dashboard.mount(app))
    web_server.mount_operations(app.readiness, lambda: app.metrics.render(app.db, app.clock.now()))
    # Signals are taken from here on: a SIGTERM while the channels start (the first updates may
    # already be answered) waits for the start to finish, then stops gracefully, not at once.
    stop = asyncio.Event()
    _stop_on_signals(stop)
    started: list[Any] = []
    try:
        if web_server.mounted or settings.ops_endpoints:
            await web_server.start()
        if telegram is not None:
            app.add_channel(telegram)
            await _start_telegram(app, telegram, settings, web_server)
            started.append(telegram)
        if zalo is not None:
            app.add_channel(zalo)
            await _start_zalo(zalo, settings, web_server)
            started.append(zalo)
        if zalo_oa is not None:
            app.add_channel(zalo_oa)
            await _start_zalo_oa(zalo_oa, web_server, settings)
            started.append(zalo_oa)
    except BaseException:
        for channel in reversed(started):
            await channel.stop()
        await web_server.stop()
        await app.close()
        raise
    await app.start_background()
    await stop.wait()
    log = logging.getLogger("sotay.run")
    log.info("run.stopping")
    await _stop_taking_updates(telegram, web_server)
    await app.stop_background()  # sends started finish, the rest is handed back; no timed work
    for channel in reversed(started):
        await channel.stop()
    await web_server.stop()
    await app.close()
    log.info("run.stopped")


@main.command()
@click.option("--user", "user", default="me", show_default=True, help="Who is typing.")
def chat(user: str) -> None:
    """Chat with the assistant in this terminal."""
    settings = _settings()
    _run(_chat(settings, user, hint=None))


@main.command()
@click.option(
    "--db",
    "db_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="SQLite file (default: the database `sotay report` reads, sotay.db).",
)
@click.option("--user", "user", default="demo", show_default=True)
@click.option("--fresh", is_flag=True, help="Start over with a new demo database.")
def demo(db_path: str | None, user: str, fresh: bool) -> None:
    """A demo in the terminal: SQLite, a seeded demo organisation, no token, no network.

    By default it uses the database every other command reads, so `sotay report` run in the
    same folder reports on what was done in the demo. Its log goes to a file, not the chat."""
    from bot.demo import seed_demo
    from storage.migrate import upgrade

    settings = _settings(**({"database_url": f"sqlite+aiosqlite:///{db_path}"} if db_path else {}))
    log_file = Path("sotay-demo.log")
    _log_to_file(log_file)
    if fresh:
        _forget_demo_database(settings)
    upgrade(settings.database_url)
    prefix = f"SOTAY_DATABASE_URL=sqlite:///{db_path} " if db_path else ""
    command = f"{prefix}sotay report"
    hint = _run(seed_demo(settings, history=True))
    hint += "\n" + _say(settings, "op.demo.report", log=log_file, command=command)
    _run(_chat(settings, user, hint=hint))
    click.echo(_say(settings, "op.demo.bye", command=command))


def _log_to_file(path: Path) -> None:
    """Send the log to ``path`` instead of the terminal, where it would fall inside the chat."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)


def _forget_demo_database(settings: Settings) -> None:
    """``demo --fresh``: delete the SQLite file, but only when it holds the demo organisation
    (the default path is the one a real deployment uses too)."""
    import sqlite3
    from contextlib import closing

    from sqlalchemy.engine import make_url

    parsed = make_url(settings.database_url)
    path = Path(parsed.database or "")
    if parsed.get_backend_name() != "sqlite" or not path.name:
        raise Fail(_say(settings, "op.fail.demo_fresh", path=shown_url(settings.database_url)))
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(path)) as connection:
            row = connection.execute(
                "SELECT 1 FROM member WHERE member_code = 'DEMO001'"
            ).fetchone()
    except sqlite3.Error:
        row = None
    if row is None:
        raise Fail(_say(settings, "op.fail.demo_fresh", path=path))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _chat(settings: Settings, user: str, *, hint: str | None) -> None:
    from bot.terminal_chat import chat_loop

    await _require_current_schema(settings)
    await chat_loop(settings, user, hint=hint)


# --- administration -------------------------------------------------------------------------------


@main.group()
def roster() -> None:
    """The committee's member roster."""


@roster.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report without writing.")
def roster_import(file: Path, dry_run: bool) -> None:
    """Import members from a UTF-8 CSV roster.

    Columns: member_code, full_name, phone, unit_path, has_smartphone.
    """
    from handlers.roster import import_roster_file

    _import_command(
        lambda url: import_roster_file(url, file, dry_run=dry_run, progress=sys.stderr.isatty())
    )


@main.group()
def status() -> None:
    """The handbook system's own install / activation statuses."""


@status.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def status_import(file: Path) -> None:
    """Import the handbook system's export (.csv or .xlsx).

    Columns: member_code (or phone), installed, activated: có/không, yes/no, 1/0 or a date.
    """
    from handlers.rollout_data import import_status_file

    _import_command(lambda url: import_status_file(url, file, progress=sys.stderr.isatty()))


def _role_on_unit(command: F) -> F:
    """The options that name a role on a unit and the person by phone (grant, revoke)."""
    for option in reversed(
        [
            click.option(
                "--role",
                type=click.Choice(["secretary", "deputy", "staff", "admin", "trainer"]),
                required=True,
            ),
            click.option(
                "--unit", "unit_path", required=True, help='Unit path, e.g. "Tỉnh Tuyên Quang".'
            ),
            click.option("--phone", required=True),
        ]
    ):
        command = option(command)
    return command


@main.command()
@_role_on_unit
@click.option("--name", default=None, help="Full name, when the person is not in the roster.")
def grant(role: str, unit_path: str, phone: str, name: str | None) -> None:
    """Give a role on a unit to the person with this phone number."""
    from handlers.cli_admin import grant_role

    _admin_command(
        lambda settings: grant_role(
            settings, role=role, unit_path=unit_path, phone=phone, name=name
        )
    )


@main.command()
@click.option(
    "--role", type=click.Choice(["member", "secretary", "deputy", "staff", "admin"]), required=True
)
@click.option("--unit", "unit_path", required=True)
@click.option("--ttl", default=None, help="Validity, e.g. 7d or 48h (default SOTAY_INVITE_TTL).")
def invite(role: str, unit_path: str, ttl: str | None) -> None:
    """Create a single-use, expiring invite and print its link and code."""
    from handlers.cli_admin import make_invite

    _admin_command(lambda settings: make_invite(settings, role=role, unit_path=unit_path, ttl=ttl))


# --- support tickets ------------------------------------------------------------------------------


@main.group()
def tickets() -> None:
    """Support tickets."""


@tickets.command("report")
@click.option("--unit", "unit_path", default=None, help="Only tickets of cells under this unit.")
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the member-database correction list to this CSV file.",
)
def tickets_report(unit_path: str | None, csv_path: Path | None) -> None:
    """Tickets by category and unit, response times, SLA breaches, satisfaction."""
    from handlers.support_admin import tickets_report as build_report

    _admin_command(
        lambda settings: build_report(settings, unit_path=unit_path, csv_path=csv_path), OSError
    )


# --- rollout reports ------------------------------------------------------------------------------

_OUT = click.Path(dir_okay=False, path_type=Path)


@main.command()
@click.option("--unit", "unit_path", default=None, help="Report on this unit (default: the root).")
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write one row per cell to this CSV file (UTF-8 with BOM, for Excel).",
)
@click.option(
    "--chart",
    "chart_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the rates per unit into this PNG file.",
)
@click.option("--xlsx", "xlsx_path", default=None, type=_OUT, help="Also write an Excel workbook.")
@click.option("--docx", "docx_path", default=None, type=_OUT, help="Also write a Word report.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def report(
    unit_path: str | None,
    csv_path: Path | None,
    chart_path: Path | None,
    xlsx_path: Path | None,
    docx_path: Path | None,
    as_json: bool,
) -> None:
    """Handbook rollout by unit, weakest first: the same text as /report in the chat."""
    from bot.quick_settings import QuickSettingsError, read_quick_settings
    from bot.report_cli import ReportError, cli_report

    try:  # three settings, read without pydantic-settings: the report must start fast
        settings = read_quick_settings()
    except QuickSettingsError as exc:
        raise Fail(str(exc)) from None
    _run(_require_current_schema(settings))
    try:
        click.echo(
            _run(
                cli_report(
                    settings,
                    unit_path=unit_path,
                    csv_path=csv_path,
                    chart_path=chart_path,
                    xlsx_path=xlsx_path,
                    docx_path=docx_path,
                    as_json=as_json,
                )
            )
        )
    except (ReportError, OSError) as exc:
        raise Fail(str(exc)) from None


@main.command()
@_role_on_unit
def revoke(role: str, unit_path: str, phone: str) -> None:
    """Take a role away; support tickets the person had claimed go back to the queue."""
    from handlers.support_admin import revoke_role

    _admin_command(
        lambda settings: revoke_role(settings, role=role, unit_path=unit_path, phone=phone)
    )


# --- FAQ ------------------------------------------------------------------------------------------


@main.group()
def faq() -> None:
    """The FAQ knowledge base."""


async def _with_session(settings: Settings, work):  # type: ignore[no-untyped-def]
    from storage.db import Database

    await _require_current_schema(settings)
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            return await work(session)
    finally:
        await db.dispose()


@faq.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Also delete entries that are not in the file.")
def faq_import(file: Path, replace: bool) -> None:
    """Import (upsert) entries from a YAML file; a bad file imports nothing."""
    from bot.clock import Clock
    from bot.faq import FaqFileError, load_kb
    from handlers.faq import import_kb

    settings = _settings()
    try:
        kb = load_kb(file)
    except FaqFileError as exc:
        raise Fail(f"{file}: {exc}") from None
    result = _run(
        _with_session(settings, lambda s: import_kb(s, kb, now=Clock().now(), replace=replace))
    )
    click.echo(
        _say(
            settings,
            "op.faq.imported",
            topics=result.topics,
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            removed=result.removed,
        )
    )


@faq.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
def faq_export(output: Path | None) -> None:
    """Write the knowledge base as YAML (to stdout, or to a file)."""
    from bot.faq import DEFAULT_KB_PATH, dump_kb, load_kb
    from handlers.faq import load_from_db

    settings = _settings()
    kb = _run(_with_session(settings, load_from_db)) or load_kb(DEFAULT_KB_PATH)
    text = dump_kb(kb)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _sqlite_file_missing(url: str) -> bool:
    """True for a SQLite URL whose file does not exist (opening it would create an empty one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and name not in ("", ":memory:")
        and not Path(name).exists()
    )


@faq.command("ask")
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: decision and candidates.")
def faq_ask(question: str, as_json: bool) -> None:
    """Show how the assistant would answer QUESTION."""
    import json

    from bot.clock import Clock
    from handlers.faq import SERVICE

    settings = _settings()
    try:
        if _sqlite_file_missing(settings.database_url):  # do not leave an empty file behind
            raise Fail("no database yet")
        index = _run(_with_session(settings, lambda s: SERVICE.index(s, Clock().now())))
    except Fail:
        from bot.faq import DEFAULT_KB_PATH, FaqIndex, load_kb

        click.echo(_say(settings, "op.faq.shipped"), err=True)
        index = FaqIndex.build(load_kb(DEFAULT_KB_PATH))
    decision = index.ask(question)
    if as_json:
        click.echo(json.dumps(decision.to_json(), ensure_ascii=False))
        return
    click.echo(_say(settings, "op.faq.decision", decision=decision.decision))
    for candidate in decision.candidates:
        click.echo(f"  {candidate.score:.3f}  {candidate.entry_id}: {candidate.question}")


@faq.command("gaps")
@click.option("--days", type=int, default=None, help="Only the last N days.")
def faq_gaps(days: int | None) -> None:
    """Unanswered questions grouped by topic, most asked first (no identities are kept)."""
    from datetime import timedelta

    from bot.clock import Clock
    from handlers.faq_gaps import gap_clusters

    settings = _settings()
    since = Clock().now() - timedelta(days=days) if days else None
    clusters = _run(_with_session(settings, lambda s: gap_clusters(s, since=since)))
    if not clusters:
        click.echo(_say(settings, "op.faq.no_gaps"))
    for c in clusters:
        click.echo(_say(settings, "op.faq.gap", count=c.count, text=c.text, n=c.variants))


# --- feedback for the software vendor (handlers/feedback.py) -------------------------------------


@main.group()
def feedback() -> None:
    """Software feedback for the vendor."""


@feedback.command("export")
@click.option("--since", default=None, help="Only feedback from this day on (YYYY-MM-DD).")
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE.csv or FILE.xlsx: no names or phone numbers are written.",
)
def feedback_export(since: str | None, output: Path) -> None:
    """Category, the members' words (masked), app versions, phone types, how many, dates."""
    from handlers.feedback import ExportError, cli_export, parse_since

    settings = _settings()
    try:
        start = parse_since(since, settings.tz)
    except ExportError:
        raise Fail(_say(settings, "op.feedback.bad_since", text=since)) from None
    xlsx = output.suffix.lower() == ".xlsx"
    data, count = _run(
        _with_session(settings, lambda s: cli_export(s, since=start, xlsx=xlsx, tz=settings.tz))
    )
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise Fail(str(exc)) from None
    click.echo(_say(settings, "op.feedback.written", n=count, path=output))


# --- the committee's Zalo Official Account (bot/channels/zalo_oa.py) ------------------------------


def _zalo_oa_channel(app: App, settings: Settings) -> Any:
    if not settings.zalo_oa_app_id:
        return None
    from bot.channels.zalo_oa import ZaloOaChannel

    return ZaloOaChannel(settings, app.router.handle, app.db, clock=app.clock)


async def _start_zalo_oa(channel: Any, web_server: WebServer, settings: Settings) -> None:
    from aiohttp import ClientError

    from bot.zalo_oa_tokens import TokenError

    try:
        await channel.start(web_server)
    except TokenError as exc:
        raise Fail(exc.text(settings.default_language)) from None
    except (ClientError, TimeoutError) as exc:
        error = type(exc).__name__
        url = settings.zalo_oa_api_url
        raise Fail(_say(settings, "op.oa.api_unreachable", url=url, error=error)) from None


@main.group("zalo-oa")
def zalo_oa() -> None:
    """The committee's Zalo Official Account: connect it, see its state."""


@zalo_oa.command("connect")
@click.option("--refresh-token", default=None, help="From the OA's OAuth consent (single-use).")
@click.option("--code", default=None, help="An OAuth authorization code (with --code-verifier).")
@click.option("--code-verifier", default=None, help="The PKCE verifier the code was asked with.")
def zalo_oa_connect(refresh_token: str | None, code: str | None, code_verifier: str | None) -> None:
    """Store the OA's tokens (encrypted with SOTAY_SECRET_KEY)."""
    from bot.zalo_oa_admin import connect
    from bot.zalo_oa_tokens import TokenError

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        expires = _run(
            connect(settings, refresh_token=refresh_token, code=code, code_verifier=code_verifier)
        )
    except TokenError as exc:
        raise Fail(exc.text(settings.default_language)) from None
    local = expires.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
    click.echo(_say(settings, "op.oa.connected", at=local))


@zalo_oa.command("status")
def zalo_oa_status() -> None:
    """The connected OA, token expiry, last refresh and webhook health."""
    from bot.zalo_oa_admin import status_lines
    from bot.zalo_oa_tokens import TokenError

    settings = _settings()
    try:
        for line in _run(status_lines(settings)):
            click.echo(line)
    except TokenError as exc:
        raise Fail(exc.text(settings.default_language)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
