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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from bot.app import App
from bot.channels.base import Blocked, Capabilities, RetryLater
from bot.clock import FakeClock
from bot.core import Contact, Inbound, View
from bot.settings import Settings, load_settings
from storage.migrate import upgrade

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


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "sotay.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"sotay_t{os.getpid()}_{next(_counter)}"
    _psql(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
def clock() -> FakeClock:
    return FakeClock()


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
