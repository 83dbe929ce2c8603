"""Per-channel send rates, so the dispatcher stays under a messenger's limits instead of
bouncing off 429s.

Token buckets on a monotonic clock: one for the whole channel (Telegram: 30 messages/s), one per
private chat (about 1/s, short bursts allowed) and one per group (20/min). ``reserve`` never
blocks: it takes a token and says how long the caller must wait before using it, or refuses a
chat token with the time until one is free, so a busy chat does not hold up the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Bucket:
    capacity: float
    per_second: float
    tokens: float = 0.0
    updated: float | None = None  # None until first used: a new bucket starts full

    def _refill(self, now: float) -> None:
        if self.updated is None:
            self.tokens, self.updated = self.capacity, now
            return
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def wait_time(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    def take(self, now: float) -> float:
        """Take a token, going into debt if needed; return how long until it is really ours."""
        wait = self.wait_time(now)
        self.tokens -= 1
        return wait


@dataclass(frozen=True)
class Limits:
    overall_per_second: float = 30.0
    chat_burst: float = 3.0
    chat_per_second: float = 1.0
    group_per_minute: float = 20.0
    # Which chat references are groups (paced per group); the channel knows its own id scheme.
    is_group: Callable[[str], bool] = field(default=lambda _ref: False, compare=False)


@dataclass
class RateLimiter:
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    _overall: Bucket | None = None
    _chats: dict[str, Bucket] = field(default_factory=dict)
    _last_sent: dict[str, float] = field(default_factory=dict)
    _previous: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._overall = Bucket(self.limits.overall_per_second, self.limits.overall_per_second)

    def _chat_bucket(self, chat_ref: str) -> Bucket:
        bucket = self._chats.get(chat_ref)
        if bucket is None:
            if self.limits.is_group(chat_ref):
                per_second = self.limits.group_per_minute / 60
                bucket = Bucket(self.limits.group_per_minute, per_second)
            else:
                bucket = Bucket(self.limits.chat_burst, self.limits.chat_per_second)
            self._chats[chat_ref] = bucket
            if len(self._chats) > 50_000:  # forget idle chats; their buckets are full again anyway
                self._chats.clear()
        return bucket

    def chat_wait(self, chat_ref: str) -> float:
        """Seconds until this chat may receive another message (0 when it may now)."""
        return self._chat_bucket(chat_ref).wait_time(self.clock())

    def reserve(self, chat_ref: str) -> float:
        """Take a chat token (caller checked ``chat_wait``) and an overall one; return the wait."""
        now = self.clock()
        self._chat_bucket(chat_ref).take(now)
        self._previous[chat_ref] = self._last_sent.get(chat_ref)
        self._last_sent[chat_ref] = now
        assert self._overall is not None
        return self._overall.take(now)

    def recently_sent(self, chat_ref: str, within: float = 1.0) -> bool:
        """Whether the chat had another message just before the last one: a 429 then is likely
        the chat's own limit; otherwise it is the channel's, and the whole channel must wait."""
        previous = self._previous.get(chat_ref)
        return previous is not None and self.clock() - previous < within
