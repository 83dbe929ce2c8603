"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when it is running),
the app wired to a recording channel, and the app wired to the fake Telegram server.

PostgreSQL tests are skipped only when no server answers on 127.0.0.1:5432, and the skip says so.
Set SOTAY_TEST_BACKENDS=sqlite (or postgresql) to run one backend only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import App
from bot.channels.base import Blocked, Capabilities, RetryLater
from bot.clock import FakeClock, ShiftedClock
from bot.core import Contact, Inbound, View
from bot.settings import Settings, load_settings
from storage.migrate import upgrade
from tests.harness import MakeServer, serving
from tests.harness import free_port as harness_free_port

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
PG_TEMPLATE = f"sotay_template_{os.getpid()}"  # one per test run: parallel runs never collide
BACKENDS = [b for b in os.environ.get("SOTAY_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "engine_neutral: the behaviour does not depend on the database engine (input checks, "
        "permission decisions); it runs on SQLite only, the PostgreSQL leg keeps the rest",
    )
    config.addinivalue_line(
        "markers",
        "e2e(server=make_server, clock=ShiftedClock): an end-to-end test; the ``fake`` fixture "
        "runs ``make_server(clock)`` (tests/harness.py), ``clock`` is real time moved on on demand",
    )
    config.addinivalue_line(
        "markers",
        "slow(seconds, timed=False): a test taking about this long on the CI machine; the run "
        "starts it first (see _slow_first), so the run does not end with one worker on it; "
        "timed: it measures real time, so it starts before the long process tests",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL run of engine-neutral tests (reported as deselected, with a count)."""
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
        neutral = item.get_closest_marker("engine_neutral") is not None
        (dropped if on_postgres and neutral else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    items[:] = _slow_first(items)


def _slow_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs["seconds"])


def _timed(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("slow")
    return marker is not None and bool(marker.kwargs.get("timed", False))


def _slow_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The ``slow`` tests first, each followed by one short test; the rest in their order.

    xdist hands each worker the next test when it is done with one and keeps one queued behind
    the running one (pyproject: ``--maxschedchunk 1``): what follows a test in this order is
    what waits behind it. The ``timed`` tests (they measure a rate in real time) come first, so
    they run beside short tests only, and the longest test is queued behind the first of them:
    it starts when that one is done, not beside it. Then the other slow tests, longest first.
    The run ends with every worker busy on short tests."""
    timed = [i for i in items if _timed(i)]
    slow = sorted(
        (i for i in items if _slow_seconds(i) and not _timed(i)), key=_slow_seconds, reverse=True
    )
    rest = [i for i in items if not _slow_seconds(i)]
    ordered: list[pytest.Item] = []
    for position, item in enumerate(timed):
        ordered.append(item)
        behind = slow if position == 0 and slow else rest
        if behind:
            ordered.append(behind.pop(0))
    for item in slow:
        ordered.append(item)
        if rest:
            ordered.append(rest.pop(0))
    return ordered + rest


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", PG_HOST, "-U", "postgres", "-d", "test", "-c", sql],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}; PostgreSQL tests skipped")
    _psql(f"DROP DATABASE IF EXISTS {PG_TEMPLATE}")
    _psql(f"CREATE DATABASE {PG_TEMPLATE}")
    upgrade(f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{PG_TEMPLATE}")
    yield PG_TEMPLATE
    _psql(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")


def _psql_value(database: str, sql: str) -> str:
    return subprocess.run(
        ["psql", "-Atq", "-h", PG_HOST, "-U", "postgres", "-d", database, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# What a test could change besides rows: tables, columns, triggers, indexes, the schema version.
_PG_SCHEMA_PRINT = """SELECT md5(concat_ws('|',
  (SELECT string_agg(c, ',' ORDER BY c) FROM (SELECT table_name || '.' || column_name || ':'
   || data_type AS c FROM information_schema.columns WHERE table_schema = 'public') AS cs),
  (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
   WHERE schemaname = 'public'),
  (SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version)))"""


class _PgConnection:
    """One connection kept open to a database, for the reset before each test: a ``psql``
    process per test cost ~0.05 CPU-s on the client and a new server process with cold caches
    on the server. asyncpg on a loop of its own in a thread (a test's loop comes and goes)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connection: Any = None

    async def _execute(self, sql: str) -> None:
        import asyncpg

        for attempt in (1, 2):
            if self.connection is None:
                self.connection = await asyncpg.connect(self.url)
            try:
                await self.connection.execute(sql)  # several statements: one simple query
                return
            except Exception:
                lost = self.connection.is_closed()
                await self.connection.close(timeout=5)
                self.connection = None  # an error leaves a transaction aborted: start over
                if not lost or attempt == 2:  # a lost connection (its backend was ended): again
                    raise

    def execute(self, sql: str) -> None:
        asyncio.run_coroutine_threadsafe(self._execute(sql), self.loop).result(timeout=120)

    def close(self) -> None:
        async def close() -> None:
            if self.connection is not None:
                await self.connection.close(timeout=5)
                self.connection = None

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass
class PgWorkerDatabase:
    """One PostgreSQL database per test worker, emptied before each test instead of a new copy
    of the template per test (CREATE + DROP DATABASE cost ~2 s a test on a loaded machine; the
    reset ~0.1 s). The reset deletes every row but the schema version (triggers and foreign
    keys off while it runs), restarts the sequences, and proves the schema is still the
    template's; if a test changed it, the database is made again from the template. It runs on
    one connection kept open for the worker (``_PgConnection``)."""

    template: str
    name: str
    reset_sql: str
    connection: _PgConnection | None = None

    @classmethod
    def make(cls, template: str) -> PgWorkerDatabase:
        name = f"sotay_w{os.getpid()}"
        tables = _psql_value(
            template,
            "SELECT string_agg(quote_ident(tablename), ',') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'",
        ).split(",")
        sequences = _psql_value(
            template, "SELECT string_agg(quote_ident(sequencename), ',') FROM pg_sequences"
        ).split(",")
        fingerprint = _psql_value(template, _PG_SCHEMA_PRINT)
        reset_sql = "; ".join(
            [
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                "SET LOCAL session_replication_role = replica",
                "SET LOCAL synchronous_commit = off",
                *(f"DELETE FROM {table}" for table in tables if table),
                *(f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences if sequence),
                f"DO $$ BEGIN IF ({_PG_SCHEMA_PRINT}) <> '{fingerprint}' THEN "
                "RAISE EXCEPTION 'schema changed'; END IF; END $$",
            ]
        )
        worker = cls(template, name, f"BEGIN; {reset_sql}; COMMIT")
        worker.recreate()
        return worker

    def recreate(self) -> None:
        _psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        _psql(f"CREATE DATABASE {self.name} TEMPLATE {self.template}")
        # A commit need not wait for the disk: what a test sees is the same (a client killed
        # after its commit still committed); only a crash of the PostgreSQL server could lose it.
        _psql(f"ALTER DATABASE {self.name} SET synchronous_commit = off")

    def reset(self) -> None:
        if self.connection is None:
            self.connection = _PgConnection(
                f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{self.name}"
            )
        try:
            self.connection.execute(self.reset_sql)
        except Exception:  # the schema changed, or the database is gone
            self.recreate()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{self.name}"


@pytest.fixture(scope="session")
def pg_worker_database(pg_template: str) -> Iterator[PgWorkerDatabase]:
    worker = PgWorkerDatabase.make(pg_template)
    yield worker
    worker.close()
    _psql(f"DROP DATABASE IF EXISTS {worker.name} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "sotay.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    worker: PgWorkerDatabase = request.getfixturevalue("pg_worker_database")
    worker.reset()
    yield worker.url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        telegram_token="123:TEST",
        secret_key="test-secret",
        telegram_bot_username="sotay_test_bot",
        _env_file=None,
    )


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> FakeClock | ShiftedClock:
    """A fixed clock; in an e2e test (servers and timers run) real time, moved on on demand."""
    marker = request.node.get_closest_marker("e2e")
    make_clock = FakeClock if marker is None else marker.kwargs.get("clock", ShiftedClock)
    return make_clock()  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def fake(request: pytest.FixtureRequest, clock: ShiftedClock) -> AsyncIterator[Any]:
    """The fake messenger server the test's ``pytest.mark.e2e(server=...)`` names, running."""
    marker = request.node.get_closest_marker("e2e")
    make_server: MakeServer | None = None if marker is None else marker.kwargs.get("server")
    assert make_server is not None, "mark the test pytest.mark.e2e(server=<server factory>)"
    async with serving(make_server(clock)) as server:
        yield server


@pytest.fixture
def scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A command-line test runs in an empty folder: no sotay.db or .env of a developer is read or
    written, and no SOTAY_* variable of the shell running the tests leaks in."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("SOTAY_")]:
        monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def free_port() -> int:
    return harness_free_port()


# --- a recording channel: drives the router directly, for many small cases -----------------------


@dataclass
class Recorder:
    """A channel that keeps what it was asked to send; ``blocked`` chats raise 403."""

    name: str = "rec"
    text_limit: int = 4096
    sent: dict[str, list[View]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)  # chats whose messages stay queued (slow network)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on every delivery
    # Like Telegram: buttons, edits, files and a contact button (tests turn contact off to act
    # as a channel where people type their number).
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(buttons=True, edits=True, uploads=True, contact=True)
    )

    def typed_phones_only(self) -> None:
        self.capabilities = dataclasses.replace(self.capabilities, contact=False)

    async def send(self, chat_ref: str, view: View) -> str:
        if chat_ref in self.blocked:
            raise Blocked("blocked")
        if chat_ref in self.held:
            raise RetryLater(60)
        self.sent.setdefault(chat_ref, []).append(view)
        self.arrived.set()
        return str(sum(len(v) for v in self.sent.values()))


class Chat:
    """One person talking to the app through the recording channel."""

    def __init__(
        self, app: App, recorder: Recorder, user: str, lang_hint: str | None = "vi"
    ) -> None:
        self.app, self.recorder, self.user, self.lang_hint = app, recorder, user, lang_hint
        self._seen = 0

    def _event(self, **kw: object) -> Inbound:
        return Inbound(
            channel=self.recorder.name,
            user_ref=self.user,
            chat_ref=self.user,
            key=f"k{next(_counter)}",  # like an update id: never the user's id
            language_hint=self.lang_hint,
            **kw,
        )  # type: ignore[arg-type]

    async def _deliver(self, event: Inbound) -> list[View]:
        await self.app.router.handle(event)
        await self.app.dispatcher.run_once()
        return self.new()

    def new(self) -> list[View]:
        views = self.recorder.sent.get(self.user, [])
        fresh, self._seen = views[self._seen :], len(views)
        return fresh

    @property
    def last(self) -> View:
        return self.recorder.sent[self.user][-1]

    async def say(self, text: str) -> list[View]:
        return await self._deliver(self._event(text=text))

    async def press(self, label: str) -> list[View]:
        """Press the button with this label on the newest message that has it."""
        for view in reversed(self.recorder.sent.get(self.user, [])):
            for row in view.choices:
                for choice in row:
                    if choice.label == label:
                        return await self._deliver(self._event(choice=choice.data))
        raise AssertionError(f"no button {label!r}; last message: {self.last}")

    async def press_data(self, data: str) -> list[View]:
        return await self._deliver(self._event(choice=data))

    async def share(self, phone: str, *, own: bool = True) -> list[View]:
        return await self._deliver(self._event(contact=Contact(phone, own)))

    async def send_event(self, event: Inbound) -> list[View]:
        return await self._deliver(event)


@dataclass
class World:
    app: App
    recorder: Recorder
    clock: FakeClock

    def chat(self, user: str, lang_hint: str | None = "vi") -> Chat:
        return Chat(self.app, self.recorder, user, lang_hint)


DEMO_CSV = Path(__file__).parent.parent / "bot" / "data" / "demo_roster.csv"


async def seed(app: App) -> None:
    """The demo organisation (see bot/data/demo_roster.csv) with its role holders."""
    from bot.demo import seed_demo

    await seed_demo(app.settings, channel="rec")


@pytest_asyncio.fixture
async def world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    app = App(settings, clock=clock)
    recorder = Recorder()
    app.add_channel(recorder)
    await seed(app)
    yield World(app, recorder, clock)
    await app.close()
