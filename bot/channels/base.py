"""What the dispatcher needs from a channel, and the errors a send can end in.

Channels map their transport errors onto these few outcomes so the dispatcher can decide
retry, wait or give up the same way for Telegram, Zalo and the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.core import View
from bot.ratelimit import Limits


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


class ChannelPaused(SendError):
    """The channel cannot send to anyone for a while (a plan's quota is spent, its token was
    refused): every chat of the channel waits ``seconds``, nothing is counted as an attempt and
    the send rate is left alone (the rate was not the cause)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"channel paused {seconds}s ({reason})")
        self.seconds = seconds
        self.reason = reason


class OutsideWindow(SendError):
    """The member is outside the channel's interaction window (Zalo OA: no free-form message
    more than 7 days after they last wrote): retrying cannot help, another way may
    (``bot.outside_window``)."""


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do. Handlers and the dispatcher ask this; none of them names a
    channel, so a new channel is one module that fills this in."""

    buttons: bool = False  # choices as tappable buttons (else numbered lines to answer)
    edits: bool = False  # a sent message can be edited (progress reports)
    uploads: bool = False  # a file we made can be sent (charts, exports, /me as JSON)
    contact: bool = False  # the channel proves the sender's own phone (Telegram's contact)
    text_limit: int = 4096
    limits: Limits | None = None  # send rates (per chat, per group, overall); None: unlimited


NO_CAPABILITIES = Capabilities()  # a channel we do not know (e.g. "system" for timed work)


class Channel(Protocol):
    name: str
    text_limit: int
    capabilities: Capabilities

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
