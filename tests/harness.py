"""The one end-to-end harness: the real app and a real channel talking HTTP to a fake server.

Every e2e test module builds its bot here, so starting, stopping and restarting the assistant (the
order matters: timed work and sending stop before the channel and the database) is written once.
A channel is made by a factory, so the harness itself knows no messenger.

Pacing: the assistant's own per-chat limit is raised to the fake servers' generous test rate
(burst 20, 20/s) so a guided dialog is not slowed to one message a second for real. The rate
limits themselves are exercised by the tests that set their own (429 retry, a notice to a big
cell under the server's limits, the rate limiter's unit tests).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import App
from bot.channels.base import Channel
from bot.clock import ShiftedClock
from bot.settings import Settings, load_settings
from storage.models import ChannelAccount, Member, Ticket, Unit

TELEGRAM_TOKEN = "123:TEST"
ZALO_TOKEN = "zalo-bot-token"
FAST_CHAT = {
    "telegram_chat_rate": 20.0,
    "telegram_chat_burst": 20.0,
    "zalo_chat_rate": 20.0,
    "zalo_chat_burst": 20.0,
}
BIG_CELL = int(os.environ.get("SOTAY_TEST_BIG_CELL", "100"))
"""Members in the load tests' cell. CI keeps it small; the full 2,000 (and 10,000 in
``bench.broadcast``) are run on demand: ``SOTAY_TEST_BIG_CELL=2000 .venv/bin/pytest -k big``."""

MakeChannel = Callable[[Settings, App, ShiftedClock], Channel]
MakeServer = Callable[[ShiftedClock], Any]
"""A fake messenger server on the test's clock. An e2e module names its own with
``pytestmark = pytest.mark.e2e(telegram_server)``; conftest's ``fake`` fixture runs it."""


def telegram_server(clock: ShiftedClock) -> Any:
    from tests.fake_telegram import FakeTelegram

    return FakeTelegram(token=TELEGRAM_TOKEN, per_chat_rate=(20, 0.05))


def zalo_server(clock: ShiftedClock) -> Any:
    from tests.fake_zalo import FakeZalo

    return FakeZalo(token=ZALO_TOKEN)


@asynccontextmanager
async def serving(server: Any) -> AsyncIterator[Any]:
    """A fake server started for the block, stopped after it; its own errors fail the test."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.internal_errors == []


def free_port() -> int:
    """A local TCP port nobody listens on (for a webhook the bot serves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_settings(database_url: str, **extra: Any) -> Settings:
    """Settings for a bot under test: no .env read, a fixed secret, test pacing per chat."""
    values: dict[str, Any] = {"secret_key": "test-secret", **FAST_CHAT, **extra}
    return load_settings(database_url=database_url, _env_file=None, **values)


def telegram_settings(database_url: str, root: str, **extra: Any) -> Settings:
    return bot_settings(database_url, telegram_token=TELEGRAM_TOKEN, telegram_api_url=root, **extra)


def zalo_settings(database_url: str, root: str, **extra: Any) -> Settings:
    return bot_settings(database_url, zalo_token=ZALO_TOKEN, zalo_api_url=root, **extra)


def telegram_channel(settings: Settings, app: App, clock: ShiftedClock) -> Channel:
    from bot.channels.telegram import TelegramChannel

    return TelegramChannel(settings, app.router.handle)


def zalo_channel(settings: Settings, app: App, clock: ShiftedClock) -> Channel:
    from bot.channels.zalo import ZaloChannel

    return ZaloChannel(settings, app.router.handle, app.db, clock=clock, poll_timeout=5)


async def start_app(
    settings: Settings, clock: ShiftedClock, make_channel: MakeChannel = telegram_channel
) -> tuple[App, Any]:
    """The app as ``sotay run`` builds it: channel started, then the dispatcher and scheduler."""
    app = App(settings, clock=clock)
    channel = make_channel(settings, app, clock)
    app.add_channel(channel)
    await channel.start()
    app.services.bot_username = getattr(channel, "username", None)
    await app.start_background()
    return app, channel


async def stop_app(app: App, channel: Channel) -> None:
    """Timed work and sending stop first, then the channel, then the database."""
    await app.stop_background()
    await channel.stop()
    await app.close()


@dataclass
class Bot:
    """A running assistant, its fake server, and the means to restart it as a crash would."""

    server: Any
    app: App
    channel: Any
    settings: Settings
    clock: ShiftedClock
    make_channel: MakeChannel = field(default=telegram_channel)

    @classmethod
    async def launch(
        cls,
        server: Any,
        settings: Settings,
        clock: ShiftedClock,
        make_channel: MakeChannel = telegram_channel,
    ) -> Bot:
        app, channel = await start_app(settings, clock, make_channel)
        return cls(server, app, channel, settings, clock, make_channel)

    async def stop(self) -> None:
        await stop_app(self.app, self.channel)

    async def start(self) -> None:
        self.app, self.channel = await start_app(self.settings, self.clock, self.make_channel)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def ticket(self, ticket_id: int = 1) -> Ticket:
        async with self.app.db.reader() as session:
            found = await session.get(Ticket, ticket_id)
        assert found is not None
        return found

    async def past_deadline(self, ticket_id: int = 1) -> None:
        """Move the clock just past the ticket's SLA deadline."""
        due = (await self.ticket(ticket_id)).sla_due_at
        assert due is not None
        self.clock.advance(due - self.clock.now() + timedelta(minutes=1))


DEMO_CELL = "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ thôn Cầu Bâu"
DEMO_SECRETARY_PHONE = "+84912000006"


async def link_cell_members(
    session: AsyncSession, channel: str, ref_of: Callable[[int], str]
) -> list[tuple[str, Member]]:
    """Every member of the demo's Cầu Bâu cell except its secretary gets a verified account on
    ``channel`` with the ref ``ref_of(i)`` (i = 0, 1, …); the channel's fake server makes the
    matching users. Returns (ref, member) in that order."""
    cell = (await session.exec(select(Unit).where(Unit.path == DEMO_CELL))).one()
    members = (await session.exec(select(Member).where(Member.cell_id == cell.id))).all()
    linked = []
    for offset, member in enumerate(m for m in members if m.phone != DEMO_SECRETARY_PHONE):
        ref = ref_of(offset)
        session.add(
            ChannelAccount(
                channel=channel,
                user_ref=ref,
                chat_ref=ref,
                member_id=member.id or 0,
                language="vi",
                verified=True,
            )
        )
        linked.append((ref, member))
    return linked
