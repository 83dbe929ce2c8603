"""Assembly: one place that builds the database, router, handlers, outbox and channels."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy import bindparam, update

import handlers
from bot.buttons import ButtonSigner
from bot.channels.base import Channel
from bot.clock import Clock
from bot.context import Services
from bot.core import Inbound
from bot.election import SchedulerElection
from bot.metrics import Metrics, backlogs, database_answers
from bot.outbox import Dispatcher, Outbox
from bot.outside_window import reach_otherwise
from bot.ratelimit import RateLimiter
from bot.router import Router
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.workers import WorkerIdentity
from handlers.broadcast import BroadcastReporter
from storage.db import Database, is_postgres
from storage.models import ChannelAccount

log = logging.getLogger("sotay.app")
STOP_GRACE = 5.0  # seconds in-flight sends get to finish at a stop (SIGTERM budget: 10 s)


def menu_digest(names: list[str], lang: str) -> str:
    """A chat's own menu as ``ChannelAccount.menu`` keeps it: its language and commands, hashed
    to a fixed width (only compared, never read back)."""
    return hashlib.sha256(f"{lang}:{','.join(names)}".encode()).hexdigest()[:32]


_ACCOUNTS = ChannelAccount.__table__  # type: ignore[attr-defined]
_GIVE_MENU = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("account_id"))
    .values(menu=bindparam("digest"))
)


class App:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.db = Database(settings.database_url)
        self.services = Services(
            settings=settings,
            clock=self.clock,
            outbox=Outbox(self.clock),
            signer=ButtonSigner(settings.signing_key),
            bot_username=settings.telegram_bot_username,
        )
        self.router = Router(self.db, self.services)
        handlers.setup(self.router)
        self.channels: dict[str, Channel] = {}
        self.services.channels = self.channels  # e.g. forum topics for support tickets
        self.dispatcher = Dispatcher(
            self.db,
            self.channels,
            self.clock,
            max_attempts=settings.outbox_max_attempts,
            lease=settings.outbox_lease,
            identity=WorkerIdentity.named(settings.worker_name),
            heartbeat=settings.heartbeat,
            in_flight=settings.outbox_in_flight,
            in_flight_max=settings.outbox_in_flight_max,
        )
        self.reporter = BroadcastReporter(self.db, self.services)
        self.dispatcher.on_progress = self.reporter.progress
        self.dispatcher.on_heartbeat = self.reporter.sweep
        self.dispatcher.on_outside_window = partial(
            reach_otherwise, self.db, self.channels, settings, self.clock
        )
        self.router.after_commit.append(self.dispatcher.wake)
        # The hand-over (Dispatcher.take): an idle dispatcher leases a handler's replies in the
        # handler's own commit and sends them right after it (issue 14's core throughput). It was
        # off for a while: its lanes waited for a drain slot while holding every place in flight,
        # a deadlock (a fresh bot silent for 30 s); lanes now take no slot (``_send_chat``).
        self.router.hand_over = self.dispatcher
        self.scheduler = Scheduler(self.db, self.services, wake=self.dispatcher.wake)
        self.router.on_scheduled = self.scheduler.rearm
        self.election = (
            SchedulerElection(self.db, self.scheduler, interval=settings.heartbeat.seconds)
            if is_postgres(self.db.engine)
            else None
        )
        self.metrics = Metrics()
        self.router.observe = self.metrics.observe_update
        self.dispatcher.on_outcome = self.metrics.observe_send
        self.router.on_menu = self.chat_menu
        self._menus: set[tuple[str, str]] = set()  # chats whose menu is being given now
        self._background: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def chat_menu(
        self, event: Inbound, account: ChannelAccount, names: list[str], lang: str
    ) -> None:
        """Give a chat the command menu of its person's roles (Telegram's per-chat command
        scope): staff see /queue, secretaries /meeting. A member's chat shows the default list;
        a former role holder's own menu is removed. What the chat was last given is kept on the
        account (``menu``, read with the sender), so a chat whose menu is already right costs
        no call, a restart included; the call runs beside the update, never inside its
        transaction, and one chat's is never twice in flight."""
        channel = self.channels.get(event.channel)
        publish = getattr(channel, "publish_chat_commands", None)
        default = names == self.router.published_commands()
        wanted = None if default else menu_digest(names, lang)
        chat = (event.channel, event.chat_ref)
        if publish is None or account.menu == wanted or chat in self._menus:
            return
        self._menus.add(chat)
        given = None if default else names
        task = asyncio.create_task(self._give_menu(publish, chat, account.id, given, lang, wanted))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _give_menu(
        self,
        publish: Callable[[str, list[str] | None, str], Awaitable[None]],
        chat: tuple[str, str],
        account_id: int | None,
        names: list[str] | None,
        lang: str,
        wanted: str | None,
    ) -> None:
        try:
            await publish(chat[1], names, lang)
            async with self.db.autocommit() as connection:
                await connection.execute(_GIVE_MENU, {"account_id": account_id, "digest": wanted})
        except Exception as exc:  # noqa: BLE001 - tried again at the chat's next message
            log.warning("menu.publish_failed error=%s", type(exc).__name__)
        finally:
            self._menus.discard(chat)

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready: the database answers, timed work runs, and no due message has waited longer
        than SOTAY_READY_BACKLOG (a stuck sender or a channel banned for long)."""
        database = await database_answers(self.db)
        scheduler = self.scheduler.running or (self.election is not None and self.election.alive)
        worst = 0.0
        if database:
            backlog = await backlogs(self.db, self.clock.now())
            worst = max((b.oldest_age for b in backlog.values()), default=0.0)
        limit = self.settings.ready_backlog.total_seconds()
        checks: dict[str, object] = {
            "database": database,
            "scheduler": scheduler,
            "outbox_oldest_age_seconds": round(worst, 1),
            "outbox_age_limit_seconds": limit,
        }
        return database and scheduler and worst <= limit, checks

    def add_channel(self, channel: Channel) -> None:
        """Register a channel: its sends are paced by the limits it declares."""
        self.channels[channel.name] = channel
        if hasattr(channel, "published_commands"):  # a channel with a command menu
            channel.published_commands = self.router.published_commands()
        limits = channel.capabilities.limits
        if limits is not None:
            self.dispatcher.add_limiter(channel.name, RateLimiter(limits))

    def start_dispatcher(self) -> None:
        self._tasks.append(asyncio.create_task(self.dispatcher.run_forever(), name="dispatcher"))

    async def start_background(self) -> None:
        """The dispatcher and the scheduler: what a serving process runs besides its channels."""
        self.start_dispatcher()
        # Every worker arms the recurring jobs at start; two starting together race for the same
        # rows, and the loser's duplicate key is not an error (it used to stop that worker).
        await self.scheduler.ensure_recurring()
        if self.election is not None:  # PostgreSQL: one scheduler among the workers
            self.election.start()
        else:
            await self.scheduler.start()

    async def stop_background(self) -> None:
        """Stop timed work and sending, and wait for both, before channels and the database go."""
        if self.election is not None:
            await self.election.stop()  # stops the scheduler if this worker held it
        else:
            await self.scheduler.stop()
        if self._background:  # menus being published: a moment to finish, then dropped
            _done, late = await asyncio.wait(set(self._background), timeout=5)
            for task in late:
                task.cancel()
        self.dispatcher.stop_taking()  # requests already started finish and are recorded
        if self._tasks or self.dispatcher.lanes:
            await asyncio.wait([*self._tasks, *self.dispatcher.lanes], timeout=STOP_GRACE)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.dispatcher.retire(grace=0)  # lanes had their STOP_GRACE above
        except Exception:  # noqa: BLE001 - the database may be gone; leases then run out
            log.warning("worker.retire_failed")

    async def close(self) -> None:
        await self.stop_background()
        await self.db.dispose()
