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
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.secrecy import RedactingFilter, redact, shown_url
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # imported lazily at run time: `sotay --help` must not load the messengers
    from bot.app import App
    from bot.channels.telegram import TelegramChannel
    from bot.channels.zalo import ZaloChannel
    from bot.web import WebServer

T = TypeVar("T")


class Fail(click.ClickException):
    """An operator-facing failure: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"sotay: {self.message}", err=True)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise Fail(str(exc)) from None


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


async def _require_current_schema(settings: Settings) -> None:
    from storage.db import make_engine
    from storage.migrate import schema_is_current

    engine = make_engine(settings.database_url)
    try:
        current = await schema_is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any connection problem is reported in one line
        raise Fail(
            f"cannot open the database {shown_url(settings.database_url)!r}: {type(exc).__name__}"
        ) from None
    finally:
        await engine.dispose()
    if not current:
        raise Fail("the database schema is out of date; run `sotay db upgrade` first.")


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
            f"cannot upgrade the database {shown_url(settings.database_url)!r}: "
            f"{redact(str(exc)).splitlines()[0][:200]}"
        ) from None
    click.echo("database schema is up to date")


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
    settings = _settings()
    try:
        settings.require_webhook_secret()
    except SettingsError as exc:
        raise Fail(str(exc)) from None
    if not settings.telegram_token and not settings.zalo_token:
        raise Fail(
            "SOTAY_TELEGRAM_TOKEN is not set, nor SOTAY_ZALO_TOKEN; set one or both "
            "(or try `sotay demo` to chat in the terminal)."
        )
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
        raise Fail("Telegram refused SOTAY_TELEGRAM_TOKEN (invalid token).") from None
    except NetworkError as exc:
        raise Fail(
            f"cannot reach the Telegram Bot API at {settings.telegram_api_url}: {exc}"
        ) from None
    app.services.bot_username = telegram.username


async def _start_zalo(zalo: ZaloChannel, settings: Settings, web_server: WebServer) -> None:
    from aiohttp import ClientError

    from bot.channels.zalo import ZaloApiError

    try:
        await zalo.start(web_server)
    except ZaloApiError as exc:
        if exc.code in (401, 403, 404):
            raise Fail("Zalo refused SOTAY_ZALO_TOKEN (invalid token).") from None
        raise Fail(f"the Zalo Bot API at {settings.zalo_api_url} answered {exc.code}.") from None
    except (ClientError, TimeoutError) as exc:
        raise Fail(
            f"cannot reach the Zalo Bot API at {settings.zalo_api_url}: {type(exc).__name__}"
        ) from None


async def _stop_taking_updates(telegram: TelegramChannel | None, web_server: WebServer) -> None:
    """A graceful stop's first step (SIGTERM, 10 s in all): no new updates — the poll loop ends
    after the batch in hand, the web server closes (webhooks in progress are answered) — while
    sending still works for what those updates produce."""
    if telegram is not None:
        await telegram.poller.stop(grace=3.0)
    await web_server.stop()


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
    web_server.mount_operations(app.readiness, lambda: app.metrics.render(app.db, app.clock.now()))
    started: list[TelegramChannel | ZaloChannel] = []
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
    except BaseException:
        for channel in reversed(started):
            await channel.stop()
        await web_server.stop()
        await app.close()
        raise
    await app.start_background()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
    "--db", "db_path", default="sotay-demo.db", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--user", "user", default="demo", show_default=True)
@click.option("--fresh", is_flag=True, help="Start over with a new demo database.")
def demo(db_path: str, user: str, fresh: bool) -> None:
    """A demo in the terminal: SQLite, a seeded demo organisation, no token, no network."""
    from bot.demo import seed_demo
    from storage.migrate import upgrade

    path = Path(db_path)
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = _settings(database_url=f"sqlite+aiosqlite:///{path}")
    upgrade(settings.database_url)
    hint = _run(seed_demo(settings, history=True))
    _run(_chat(settings, user, hint=hint))


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
    from handlers.roster import RosterFileError, import_roster_file

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        report = _run(
            import_roster_file(
                settings.database_url, file, dry_run=dry_run, progress=sys.stderr.isatty()
            )
        )
    except RosterFileError as exc:
        raise Fail(str(exc)) from None
    click.echo(report.render())
    if report.errors:
        sys.exit(3)


@main.group()
def status() -> None:
    """The handbook system's own install / activation statuses."""


@status.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def status_import(file: Path) -> None:
    """Import the handbook system's export (.csv or .xlsx).

    Columns: member_code (or phone), installed, activated: có/không, yes/no, 1/0 or a date.
    """
    from handlers.rollout_data import StatusFileError, import_status_file

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        result = _run(import_status_file(settings.database_url, file, progress=sys.stderr.isatty()))
    except StatusFileError as exc:
        raise Fail(str(exc)) from None
    click.echo(result.render())
    if result.errors:
        sys.exit(3)


@main.command()
@click.option(
    "--role",
    type=click.Choice(["secretary", "deputy", "staff", "admin", "trainer"]),
    required=True,
)
@click.option("--unit", "unit_path", required=True, help='Unit path, e.g. "Tỉnh Tuyên Quang".')
@click.option("--phone", required=True)
@click.option("--name", default=None, help="Full name, when the person is not in the roster.")
def grant(role: str, unit_path: str, phone: str, name: str | None) -> None:
    """Give a role on a unit to the person with this phone number."""
    from handlers.cli_admin import AdminError, grant_role

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        click.echo(
            _run(grant_role(settings, role=role, unit_path=unit_path, phone=phone, name=name))
        )
    except AdminError as exc:
        raise Fail(str(exc)) from None


@main.command()
@click.option(
    "--role", type=click.Choice(["member", "secretary", "deputy", "staff", "admin"]), required=True
)
@click.option("--unit", "unit_path", required=True)
@click.option("--ttl", default=None, help="Validity, e.g. 7d or 48h (default SOTAY_INVITE_TTL).")
def invite(role: str, unit_path: str, ttl: str | None) -> None:
    """Create a single-use, expiring invite and print its link and code."""
    from handlers.cli_admin import AdminError, make_invite

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        click.echo(_run(make_invite(settings, role=role, unit_path=unit_path, ttl=ttl)))
    except AdminError as exc:
        raise Fail(str(exc)) from None


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
    from handlers.cli_admin import AdminError
    from handlers.support_admin import tickets_report as build_report

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        click.echo(_run(build_report(settings, unit_path=unit_path, csv_path=csv_path)))
    except (AdminError, OSError) as exc:
        raise Fail(str(exc)) from None


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
    from bot.report_cli import ReportError, cli_report

    settings = _settings()
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
@click.option(
    "--role",
    type=click.Choice(["secretary", "deputy", "staff", "admin", "trainer"]),
    required=True,
)
@click.option("--unit", "unit_path", required=True, help='Unit path, e.g. "Tỉnh Tuyên Quang".')
@click.option("--phone", required=True)
def revoke(role: str, unit_path: str, phone: str) -> None:
    """Take a role away; support tickets the person had claimed go back to the queue."""
    from handlers.cli_admin import AdminError
    from handlers.support_admin import revoke_role

    settings = _settings()
    _run(_require_current_schema(settings))
    try:
        click.echo(_run(revoke_role(settings, role=role, unit_path=unit_path, phone=phone)))
    except AdminError as exc:
        raise Fail(str(exc)) from None


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
        f"{result.topics} topics; entries: {result.created} new, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.removed} removed"
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


SHIPPED_BASE_NOTE = (
    "note: the database is not set up (run `sotay db upgrade`), "
    "so this answer comes from the shipped knowledge base."
)


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

        click.echo(SHIPPED_BASE_NOTE, err=True)
        index = FaqIndex.build(load_kb(DEFAULT_KB_PATH))
    decision = index.ask(question)
    if as_json:
        click.echo(json.dumps(decision.to_json(), ensure_ascii=False))
        return
    click.echo(f"decision: {decision.decision}")
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
        click.echo("no unanswered questions")
    for c in clusters:
        click.echo(
            f"{c.count:5d}  {c.text}  ({c.variants} phrasing(s); turn into an entry: /faqgaps)"
        )


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
    except ExportError as exc:
        raise Fail(str(exc)) from None
    xlsx = output.suffix.lower() == ".xlsx"
    data, count = _run(
        _with_session(settings, lambda s: cli_export(s, since=start, xlsx=xlsx, tz=settings.tz))
    )
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise Fail(str(exc)) from None
    click.echo(f"{count} feedback groups written to {output}")


if __name__ == "__main__":  # pragma: no cover
    main()
