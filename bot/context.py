"""What a handler gets: the event, the actor, one database session, and the outbox port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.buttons import ButtonSigner
from bot.callbacks import Callback
from bot.channels.base import NO_CAPABILITIES, Capabilities, Channel
from bot.clock import Clock
from bot.core import Choice, Inbound, View
from bot.i18n import pick_language, t
from bot.outbox import Outbox
from bot.settings import Settings
from storage import queries
from storage.ids import id_of
from storage.models import ChannelAccount, Member, Role, RoleGrant, Unit


@dataclass
class Services:
    """Long-lived collaborators, built once by the app."""

    settings: Settings
    clock: Clock
    outbox: Outbox
    signer: ButtonSigner
    bot_username: str | None = None
    # The app's channels by name: for what they can do (``caps``) and the few things that are
    # not a message (creating a forum topic). Handlers still send only through the outbox.
    channels: dict[str, Channel] = field(default_factory=dict)
    # The commands an actor may use, as the features registered them (set by the router): /help
    # lists exactly these, so a role's commands are never missing from its help.
    commands_for: Callable[[Actor], list[str]] = field(default=lambda _actor: [])

    def caps(self, channel: str) -> Capabilities:
        """What ``channel`` can do; an unknown one (timed work's "system") can do nothing."""
        found = self.channels.get(channel)
        return found.capabilities if found is not None else NO_CAPABILITIES


@dataclass
class Actor:
    """Who is speaking: their account and member record (if registered) and their roles."""

    account: ChannelAccount | None = None
    member: Member | None = None
    grants: list[tuple[RoleGrant, Unit]] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        return self.account is not None and self.member is not None and not self.account.pending

    def scopes(self, *roles: Role) -> list[Unit]:
        """Units on which the actor holds one of ``roles`` (each applies to its subtree)."""
        return [unit for grant, unit in self.grants if grant.role in roles]

    def holds(self, *roles: Role) -> bool:
        return bool(self.scopes(*roles))

    def can_act_on(self, unit: Unit, *roles: Role) -> bool:
        return any(queries.within(unit.path, scope.path) for scope in self.scopes(*roles))


@dataclass
class Ctx:
    session: AsyncSession
    services: Services
    event: Inbound
    actor: Actor
    lang: str

    @property
    def now(self) -> datetime:
        return self.services.clock.now()

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def caps(self) -> Capabilities:
        """What the channel of this event can do (buttons, edits, files, contact proof)."""
        return self.services.caps(self.event.channel)

    @property
    def has_contact_button(self) -> bool:
        return self.caps.contact

    @property
    def can_upload(self) -> bool:
        return self.caps.uploads

    def t(self, key: str, /, **values: object) -> str:
        return t(self.lang, key, **values)

    def button(self, label: str, data: str | Callback) -> Choice:
        """A signed button; ``data`` is a typed ``Callback`` or (older code) its wire string."""
        raw = data.encode() if isinstance(data, Callback) else data
        return Choice(label, self.services.signer.sign(raw))

    def reply(self, view: View | str) -> None:
        if isinstance(view, str):
            view = View(view)
        self.services.outbox.add(
            self.session,
            channel=self.event.channel,
            chat_ref=self.event.chat_ref,
            view=view,
            member_id=self.actor.member.id if self.actor.member else None,
        )

    def send_to_chat(self, channel: str, chat_ref: str, view: View) -> None:
        self.services.outbox.add(self.session, channel=channel, chat_ref=chat_ref, view=view)

    async def notify_member(
        self, member: Member, render: Callable[[str], View], *, dedupe_key: str | None = None
    ) -> int:
        """Queue a message to every reachable account of ``member``, in their language."""
        accounts = await queries.accounts_of(self.session, member_id=id_of(member))
        for account in accounts:
            lang = pick_language(
                account.language or member.language, None, self.settings.default_language
            )
            key = f"{dedupe_key}:{account.id}" if dedupe_key else None
            self.services.outbox.add(
                self.session,
                channel=account.channel,
                chat_ref=account.chat_ref,
                view=render(lang),
                member_id=member.id,
                dedupe_key=key,
            )
        return len(accounts)
