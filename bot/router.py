"""The one place that decides routing and access.

For each inbound event: drop it if already processed; find the actor; then pick the handler
(an explicit command, a pressed button, the open dialog's step, or free text) and check the
actor's registration and roles before calling it. Handlers run inside one transaction and only
write rows; the outbox sends after commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import Insert, Table, bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import choices, dialogs
from bot.callbacks import BadCallback, Callback
from bot.context import Actor, Ctx, Services
from bot.core import Inbound, View
from bot.i18n import pick_language
from storage import queries
from storage.db import Database, is_postgres
from storage.locks import lock_key
from storage.models import ChannelAccount, Dialog, ProcessedEvent, Role

if TYPE_CHECKING:
    from bot.outbox import Handover

_PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[attr-defined]


def _record_event() -> Insert:
    table = _PROCESSED.c
    return insert(_PROCESSED).values(
        channel=bindparam("event_channel", type_=table.channel.type),
        key=bindparam("event_key", type_=table.key.type),
        at=bindparam("event_at", type_=table.at.type),
    )


# Built once (every update on SQLite runs it): building a statement and its cache key costs
# several times what running it does; SQLAlchemy memoizes the key on the statement object.
_RECORD_EVENT = _record_event()

log = logging.getLogger("sotay.router")

CommandFn = Callable[[Ctx, str], Awaitable[None]]
ActionFn = Callable[[Ctx, list[str]], Awaitable[None]]
C = TypeVar("C", bound=Callback)
TextFn = Callable[[Ctx, str], Awaitable[bool]]  # True: handled; False: the next stage's turn
GroupFn = Callable[[Ctx], Awaitable[bool]]


class TextStage(IntEnum):
    """The free-text pipeline, in this order: text outside any dialog, button or command goes to
    each stage until one takes it. A feature registers its stage with ``Router.free_text``."""

    TICKETS = 30  # a reply to a message about a ticket, or text while a ticket is open
    SMALL_TALK = 50  # thanks, greetings, "ok": a kind word back, never the FAQ or staff
    QUESTIONS = 90  # everything else is a question: the FAQ answers (it always takes the text)


ANYONE: tuple[Role, ...] = ()
REGISTERED: tuple[Role, ...] = (Role.member,)


@dataclass(frozen=True)
class Command:
    name: str
    handler: CommandFn
    requires: tuple[Role, ...]  # () anyone; (member,) registered; else any of these roles
    published: bool = True


@dataclass(frozen=True)
class Action:
    name: str
    handler: ActionFn
    requires: tuple[Role, ...]


class HandOver(Protocol):
    """The dispatcher as the router sees it (``bot.outbox.Dispatcher.take``)."""

    async def take(
        self, session: AsyncSession, known: Mapping[tuple[str, str], bool] | None = None
    ) -> Handover: ...

    def send_taken(self, handover: Handover) -> None: ...

    def abandon(self, handover: Handover) -> None: ...


class UserLocks:
    """One lock per messenger user: two messages of one user are handled one after the other."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield


def stale_key(ctx: Ctx) -> str:
    """An old choice is a "button" only where there are buttons; elsewhere it was a number."""
    return "common.stale_button" if ctx.caps.buttons else "talk.stale_choice"


class Router:
    def __init__(self, db: Database, services: Services) -> None:
        self.db = db
        self.services = services
        services.commands_for = self.commands_for
        self.commands: dict[str, Command] = {}
        self.actions: dict[str, Action] = {}
        self.text_stages: list[tuple[TextStage, TextFn]] = []
        self.group_commands: dict[str, Command] = {}
        self.group_stages: list[tuple[TextStage, GroupFn]] = []
        self.after_commit: list[Callable[[], None]] = []
        self.on_scheduled: Callable[[], Awaitable[None]] | None = None
        # (channel, outcome, seconds) of every update, for the operator's metrics
        self.observe: Callable[[str, str, float], None] | None = None
        # (event, its registered sender's account, the commands they may use, language): the
        # chat's own menu
        self.on_menu: Callable[[Inbound, ChannelAccount, list[str], str], None] | None = None
        # The dispatcher: takes the replies a handler wrote, to send them right after its commit
        self.hand_over: HandOver | None = None
        self._locks = UserLocks()
        self._several_workers = is_postgres(db.engine)

    def command(
        self, name: str, *, requires: tuple[Role, ...] = ANYONE, published: bool = True
    ) -> Callable[[CommandFn], CommandFn]:
        def register(fn: CommandFn) -> CommandFn:
            self.commands[name] = Command(name, fn, requires, published)
            return fn

        return register

    def group_command(
        self, name: str, *, requires: tuple[Role, ...] = REGISTERED
    ) -> Callable[[CommandFn], CommandFn]:
        """A command typed in a group chat (e.g. binding a staff group to a unit)."""

        def register(fn: CommandFn) -> CommandFn:
            self.group_commands[name] = Command(name, fn, requires, published=False)
            return fn

        return register

    def free_text(self, stage: TextStage) -> Callable[[TextFn], TextFn]:
        """Register a stage of the free-text pipeline (one per stage)."""

        def register(fn: TextFn) -> TextFn:
            if any(existing == stage for existing, _ in self.text_stages):
                raise ValueError(f"free-text stage {stage.name} is taken")
            self.text_stages = sorted([*self.text_stages, (stage, fn)], key=lambda s: s[0])
            return fn

        return register

    def group_text(self, stage: TextStage) -> Callable[[GroupFn], GroupFn]:
        """Register a stage for plain messages in group chats (staff groups)."""

        def register(fn: GroupFn) -> GroupFn:
            self.group_stages = sorted([*self.group_stages, (stage, fn)], key=lambda s: s[0])
            return fn

        return register

    def callback(
        self, codec: type[C], *, requires: tuple[Role, ...] = REGISTERED
    ) -> Callable[[Callable[[Ctx, C], Awaitable[None]]], Callable[[Ctx, C], Awaitable[None]]]:
        """Register a typed button (``bot.callbacks``): the handler gets the decoded value; data
        that does not fit the codec's shape is answered as a stale button, never half-read."""

        def register(
            fn: Callable[[Ctx, C], Awaitable[None]],
        ) -> Callable[[Ctx, C], Awaitable[None]]:
            async def decoded(ctx: Ctx, args: list[str]) -> None:
                try:
                    value = codec.decode(args)
                except BadCallback:
                    log.info("button.misshapen action=%s", codec.key())
                    ctx.reply(ctx.t(stale_key(ctx)))
                    return
                await fn(ctx, value)

            self.actions[codec.key()] = Action(codec.key(), decoded, requires)
            return fn

        return register

    async def handle(self, event: Inbound) -> bool:
        """Process one event exactly once; False when it was a duplicate."""
        started, outcome = time.perf_counter(), "ok"
        handover: Handover | None = None
        committed = sent_over = False  # sent_over: all it wrote left by the hand-over
        async with self._locks.hold((event.channel, event.user_ref)):
            try:
                async with self.db.locked_session(self._lock(event)) as session:
                    ctx, dialog, waiting = await self._context(session, event, record=True)
                    await self._route(ctx, dialog)
                    if self.hand_over is not None:  # what the sender's read said of their chat
                        known = {(event.channel, event.chat_ref): waiting}
                        handover = await self.hand_over.take(session, known)
                committed = True
                if handover is not None and self.hand_over is not None:
                    self.hand_over.send_taken(handover)
                    sent_over = handover.complete
                if session.info.get("scheduled") and self.on_scheduled is not None:
                    await self.on_scheduled()
                for work in session.info.get("after_commit", ()):  # e.g. reports: read-only
                    await work(self.db)
                account = ctx.actor.account
                menu_for = account if ctx.actor.registered and not event.in_group else None
                if self.on_menu is not None and menu_for is not None:
                    names = self.commands_for(ctx.actor, published=True)
                    self.on_menu(event, menu_for, names, ctx.lang)
            except IntegrityError:
                if not await self._seen(event):
                    outcome = "failed"
                    raise
                log.info("event.duplicate channel=%s", event.channel)
                outcome = "duplicate"
                return False
            except Exception:
                log.exception("event.failed channel=%s", event.channel)
                outcome = "failed"
                await self._apologise(event)
            finally:
                if handover is not None and self.hand_over is not None and not committed:
                    self.hand_over.abandon(handover)
                for hook in () if sent_over else self.after_commit:
                    hook()
                if self.observe is not None:
                    self.observe(event.channel, outcome, time.perf_counter() - started)
        return True

    def _lock(self, event: Inbound) -> int | None:
        """The sender's advisory lock, held by the update's transaction from its first round
        trip (``Database.locked_session``): with several workers on PostgreSQL, two messages of
        one user must not interleave (the in-process lock holds one process only)."""
        return lock_key(event.channel, event.user_ref) if self._several_workers else None

    async def _seen(self, event: Inbound) -> bool:
        async with self.db.reader() as session:
            return await session.get(ProcessedEvent, (event.channel, event.key)) is not None

    async def _apologise(self, event: Inbound) -> None:
        async with self.db.session() as session:
            ctx, _dialog, _waiting = await self._context(session, event)
            ctx.reply(ctx.t("common.error"))

    async def _context(
        self, session: AsyncSession, event: Inbound, *, record: bool = False
    ) -> tuple[Ctx, Dialog | None, bool]:
        """Who sent the event (and, read in the same query, their open dialog and whether a
        reply to their chat still waits in the outbox). ``record``: record the event as
        processed in the same transaction; one already recorded (or being recorded by another
        worker) fails the unique key, and ``handle`` reports it as a duplicate. On PostgreSQL
        the record rides in the sender's query (one round trip); SQLite inserts it first."""
        recording = None
        if record:
            recording = queries.Recording(event.channel, event.key, self.services.clock.now())
            if not self._several_workers:  # SQLite: no data-modifying CTE, the insert goes first
                await session.exec(_RECORD_EVENT, params=recording.params)
                recording = None
        sender = await queries.who_writes(
            session,
            channel=event.channel,
            user_ref=event.user_ref,
            chat_ref=event.chat_ref,
            recording=recording,
        )
        # a pending account sees and holds nothing yet: its member (and grants) are not loaded
        actor = Actor(account=sender.account, member=sender.member, grants=sender.grants)
        if actor.account is not None and not actor.account.reachable:
            actor.account.reachable = True  # they wrote to us, so they unblocked the bot
            session.add(actor.account)
        dialog = sender.dialog
        stored = actor.account.language if actor.account else None
        lang = pick_language(stored, event.language_hint, self.services.settings.default_language)
        ctx = Ctx(session=session, services=self.services, event=event, actor=actor, lang=lang)
        return ctx, dialog, sender.replies_waiting

    async def _route(self, ctx: Ctx, dialog: Dialog | None) -> None:
        event = ctx.event
        if event.in_group:
            await self._group(ctx)
            return
        if dialog is not None and dialogs.expired(ctx, dialog):
            await dialogs.end(ctx, dialog)
            dialog = None
            ctx.reply(ctx.t("common.dialog_expired"))
            if event.command is None:
                return
        if dialog is not None:
            ctx.lang = dialog.data.get("lang", ctx.lang)
        offered = await self._offered_choice(ctx, dialog)
        if event.command is not None:
            await self._command(ctx, dialog, *event.command)
        elif offered is not None:
            await self._choice(ctx, dialog, offered)
        elif event.choice is not None:
            await self._choice(ctx, dialog, event.choice)
        elif dialog is not None and (event.text or event.contact or event.attachment):
            answer = dialogs.interpret(
                dialog,
                text=event.text,
                contact=event.contact,
                value=None,
                attachment=event.attachment,
            )
            await dialogs.answer(ctx, dialog, answer)
        elif event.contact is not None:
            ctx.reply(ctx.t("common.contact_without_dialog"))
        elif event.text or event.attachment is not None:
            # A photo without caption goes there too: it may belong to an open support ticket.
            for _stage, handler in self.text_stages:
                if await handler(ctx, event.text or ""):
                    return
            key = "common.attachment_outside_dialog" if event.attachment else "common.unsupported"
            ctx.reply(ctx.t(key))
        elif event.hidden:
            await self._hidden(ctx, dialog)
        else:
            ctx.reply(ctx.t("common.unsupported"))

    async def _hidden(self, ctx: Ctx, dialog: Dialog | None) -> None:
        """The channel withheld what the person sent (Zalo hides some protected users'
        messages): it may well have been text, so "I can only read text" would be wrong. Say
        we could not see it, then what they can answer: the open step again, else the menu."""
        if dialog is not None:
            ctx.reply(ctx.t("channel.hidden_in_dialog"))
            await dialogs.ask(ctx, dialog)
            return
        ctx.reply(ctx.t("channel.hidden"))
        await self._command(ctx, None, "menu", "")

    async def _offered_choice(self, ctx: Ctx, dialog: Dialog | None) -> str | None:
        """Typed text that names a choice of the chat's last message with choices (an approval
        request, a meeting notice) is that choice, on every channel, whether or not a guided step
        is open — unless the open step takes it: one of its own options, or free text it asks
        for. A choice of a dialog step is never taken this way (the dialog has moved on)."""
        event = ctx.event
        if event.command is not None or event.choice is not None or event.attachment is not None:
            return None
        if not event.text or event.contact is not None:
            return None
        if dialog is not None and (
            dialog.prompt.get("free_text") or dialogs.matches_option(dialog, event.text)
        ):
            return None
        data = await choices.offered(ctx.session, event.channel, event.chat_ref, event.text)
        verified = self.services.signer.verify(data) if data is not None else None
        if verified is None or verified.startswith("d:"):
            return None
        return data

    async def _group(self, ctx: Ctx) -> None:
        """Groups (staff groups): only group commands and the group handler; never chatter."""
        if ctx.event.choice is not None:
            await self._choice(ctx, None, ctx.event.choice)
            return
        command = ctx.event.command
        if command is not None:
            spec = self.group_commands.get(command[0])
            if spec is not None and self.allowed(ctx, spec.requires):
                await spec.handler(ctx, command[1])
            elif spec is not None:
                self.refuse(ctx, spec.requires)
            return
        for _stage, handler in self.group_stages:
            if await handler(ctx):
                return

    def allowed(self, ctx: Ctx, requires: tuple[Role, ...]) -> bool:
        if not requires:
            return True
        if not ctx.actor.registered:
            return False
        return requires == REGISTERED or ctx.actor.holds(*requires)

    def commands_for(self, actor: Actor, *, published: bool = False) -> list[str]:
        """Every private-chat command ``actor`` may use (only those their features list in a
        menu when ``published``), in registration order, then /cancel."""
        allowed = [
            c.name
            for c in self.commands.values()
            if (c.published or not published)
            and (
                not c.requires
                or (actor.registered and (c.requires == REGISTERED or actor.holds(*c.requires)))
            )
        ]
        return [*allowed, "cancel"]

    def published_commands(self) -> list[str]:
        """Commands every member may use and that their feature chose to list, in the order
        features registered them, then /cancel (the router's own): the messenger's menu."""
        names = [
            c.name
            for c in self.commands.values()
            if c.published and c.requires in (ANYONE, REGISTERED)
        ]
        return [*names, "cancel"]

    def refuse(self, ctx: Ctx, requires: tuple[Role, ...]) -> None:
        ctx.reply(
            ctx.t("common.not_registered" if not ctx.actor.registered else "common.not_allowed")
        )

    async def _command(self, ctx: Ctx, dialog: Dialog | None, name: str, args: str) -> None:
        if name == "cancel":
            await dialogs.end(ctx, dialog)
            ctx.reply(
                View(
                    ctx.t("common.cancelled" if dialog else "common.nothing_to_cancel"),
                    remove_keyboard=True,
                )
            )
            return
        command = self.commands.get(name)
        if command is None:
            ctx.reply(ctx.t("common.unknown_command", name=name[:32]))
            if dialog is not None:
                await dialogs.ask(ctx, dialog)
            return
        if not self.allowed(ctx, command.requires):
            self.refuse(ctx, command.requires)
            return
        if name == "help" and dialog is not None:
            await command.handler(ctx, args)
            await dialogs.ask(ctx, dialog)
            return
        await dialogs.end(ctx, dialog)
        await ctx.session.flush()
        await command.handler(ctx, args)

    async def _choice(self, ctx: Ctx, dialog: Dialog | None, raw: str) -> None:
        data = self.services.signer.verify(raw)
        if data is None:
            log.warning("button.forged channel=%s", ctx.event.channel)
            ctx.reply(ctx.t(stale_key(ctx)))
            return
        kind, _, rest = data.partition(":")
        if kind == "d":
            seq, _, value = rest.partition(":")
            if dialog is None or str(dialog.seq) != seq:
                ctx.reply(ctx.t(stale_key(ctx)))
                if dialog is not None:
                    await dialogs.ask(ctx, dialog)
                return
            await dialogs.answer(ctx, dialog, dialogs.Answer(value=value))
            return
        name, *args = rest.split(":") if kind == "a" else ("",)
        if name == "cmd" and args:
            await self._command(ctx, dialog, args[0], "")
            return
        action = self.actions.get(name)
        if action is None:
            ctx.reply(ctx.t(stale_key(ctx)))
            return
        if not self.allowed(ctx, action.requires):
            self.refuse(ctx, action.requires)
            return
        await action.handler(ctx, args)
