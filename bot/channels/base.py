"""What the dispatcher needs from a channel, and the errors a send can end in.

Channels map their transport errors onto these few outcomes so the dispatcher can decide
retry, wait or give up the same way for Telegram, Zalo and the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.core import View


class SendError(Exception):
    pass


class RetryLater(SendError):
    """Rate limited: wait ``seconds``, for this chat or for the whole channel."""

    def __init__(self, seconds: float, scope: Literal["chat", "channel"] = "chat") -> None:
        super().__init__(f"retry after {seconds}s ({scope})")
        self.seconds = seconds
        self.scope = scope


class Blocked(SendError):
    """The user blocked the bot or never started it: do not retry on this channel."""


class Transient(SendError):
    """Server or network trouble: retry with backoff."""


class Rejected(SendError):
    """The message itself was refused (bad request): retrying cannot help."""


class Channel(Protocol):
    name: str
    text_limit: int

    async def send(self, chat_ref: str, view: View) -> str:
        """Deliver one message (or edit ``view.edit_ref``); return the channel's message id."""
        ...


class TopicChannel(Protocol):
    """Channels with forum topics in groups (Telegram): one topic per support ticket."""

    async def create_topic(self, chat_ref: str, name: str) -> str: ...


@dataclass(frozen=True)
class GroupPeople:
    """Who is in a group, as far as the channel lets a bot see: the member count and the names
    it can list (Telegram lists only administrators to a bot)."""

    count: int | None
    named: list[str] = field(default_factory=list)


class GroupDirectory(Protocol):
    """Channels that can say who is in a group (Telegram): shown before a staff group is bound."""

    async def group_people(self, chat_ref: str) -> GroupPeople: ...
