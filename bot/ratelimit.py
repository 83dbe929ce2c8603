"""Per-channel send rates, so the dispatcher stays under a messenger's limits instead of
bouncing off 429s.

Token buckets on a monotonic clock: one for the whole channel (Telegram: 30 messages/s), one per
private chat (about 1/s, short bursts allowed) and one per group (20/min). ``reserve`` never
blocks: it takes a token and says how long the caller must wait before using it, or refuses a
chat token with the time until one is free, so a busy chat does not hold up the others.

The channel-wide rate adapts (``AdaptiveRate``): the configured rate is a ceiling, not a target.
A server that allows less answers 429; the rate then drops to a little under what the server
was seen to accept, and creeps back up while sends succeed. Pausing for ``retry_after`` and then
bursting again at the ceiling (the old behaviour) delivered 0.7–0.85 of a slow server's rate and
drew a 429 for most messages; Telegram punishes repeated 429s with longer bans.
"""

from __future__ import annotations

import time
from collections import deque
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


WINDOW = 5.0
"""Seconds of recent successful sends from which the server's accepted rate is estimated at the
first 429. Pauses count as time: what a server refills during a pause is part of the rate it
allows. This overestimates (the server's initial burst is in it); from the second 429 on, the
rate accepted between two 429s is used instead: at each 429 the server's allowance was used
up, so what it accepted in between is exactly what it refilled (over HTTP, the window's
estimate left the rate above the server's and drew a 429 every few seconds)."""
BETWEEN = 2.0
"""Seconds between two 429s needed to trust the rate accepted between them."""
HISTORY = 60.0
"""Seconds of intervals between 429s summed for that estimate: requests answered around a 429
make a single short interval err by a few messages either way; the sum evens that out, and a
server that changes its rate is followed within a minute."""
DECREASE = 0.97
"""On a channel-wide 429 the rate becomes this share of what the server was seen to accept."""
INCREASE = 0.2
"""Near the rate the server last refused, the rate grows by this many messages/s every second
(additive: probing slowly where the limit was found)."""
PROBE = 0.003
"""…but never faster than this share of the rate per second: every 429 costs a pause of a whole
``retry_after`` (≥ 1 s), so near the limit found the probing is slow (at 10/s a 429 about every
half minute, not every few seconds)."""
RECOVER = 0.05
"""Further below that rate it grows by this share every second, so a single 429 (a burst at
start, a hiccup) costs seconds, not minutes, of a fast server's rate."""


@dataclass
class AdaptiveRate:
    """A rate between ``floor`` and ``ceiling`` that follows what the server accepts."""

    ceiling: float
    floor: float = 1.0
    rate: float = 0.0
    known_limit: float | None = None  # what the server accepted when it last refused
    _sent: deque[float] = field(default_factory=deque)
    _started: float | None = None  # the first send: the window never reaches before it
    _paused_until: float | None = None
    _limited_at: float | None = None  # the last 429 (first of its pause)
    _since_limited: int = 0  # sends accepted since then
    _between: deque[tuple[float, float, int]] = field(default_factory=deque)  # (end, span, sent)

    def __post_init__(self) -> None:
        self.floor = min(self.floor, self.ceiling)
        self.rate = self.rate or self.ceiling

    def accepted(self, now: float) -> float | None:
        """Messages/s the server accepted over the recent window (None: too little to tell)."""
        start = max(now - WINDOW, self._started if self._started is not None else now)
        while self._sent and self._sent[0] < start:
            self._sent.popleft()
        span = now - start
        return len(self._sent) / span if span >= 0.5 and len(self._sent) >= 3 else None

    def succeeded(self, now: float) -> float:
        """One send went through: additive increase (``INCREASE`` per second of sending)."""
        if self._started is None:
            self._started = now
        self._sent.append(now)
        self._since_limited += 1
        per_second = min(INCREASE, PROBE * self.rate)
        if self.known_limit is None or self.rate < self.known_limit * 0.97:
            per_second = max(INCREASE, RECOVER * self.rate)
        self.rate = min(self.ceiling, self.rate + per_second / max(self.rate, self.floor))
        return self.rate

    def limited(self, now: float, pause: float) -> float:
        """The server answered 429 for the channel: drop under its accepted rate. The other
        sends already in flight are answered 429 too: one slowdown per pause, not one each."""
        if self._paused_until is not None and now < self._paused_until:
            return self.rate
        seen = self.accepted(now)
        if self._limited_at is not None and now - self._limited_at >= BETWEEN:
            self._between.append((now, now - self._limited_at, self._since_limited))
            while self._between and self._between[0][0] < now - HISTORY:
                self._between.popleft()
            seen = sum(n for _at, _span, n in self._between) / sum(
                span for _at, span, _n in self._between
            )
        self._limited_at, self._since_limited = now, 0
        # What was seen accepted can be low for reasons of our own (a slow database, chats
        # waiting on their own pace): one 429 never more than halves the rate.
        base = self.rate if seen is None else min(self.rate, max(seen, self.rate / 2))
        self.known_limit = base
        self.rate = max(self.floor, base * DECREASE)
        self._paused_until = now + pause
        return self.rate


@dataclass
class RateLimiter:
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    _overall: Bucket | None = None
    _chats: dict[str, Bucket] = field(default_factory=dict)
    _last_sent: dict[str, float] = field(default_factory=dict)
    _previous: dict[str, float | None] = field(default_factory=dict)

    adapt: bool = True  # False: a fixed rate (the behaviour before; a benchmark's baseline)
    adaptive: AdaptiveRate | None = None

    def __post_init__(self) -> None:
        self._overall = Bucket(self.limits.overall_per_second, self.limits.overall_per_second)
        if self.adapt:
            self.adaptive = AdaptiveRate(ceiling=self.limits.overall_per_second)

    def share(self, workers: int) -> None:
        """``workers`` processes send for this bot: each keeps to its part of the configured
        channel-wide rate (the server counts them together); per-chat limits stay whole, as a
        chat's messages leave through one worker at a time."""
        assert self._overall is not None
        ceiling = self.limits.overall_per_second / max(1, workers)
        if self.adaptive is None:
            self._overall.per_second = ceiling
            return
        # Lower at once; higher (a worker gone) by the usual additive increase as sends succeed.
        self.adaptive.ceiling = ceiling
        self.adaptive.floor = min(self.adaptive.floor, ceiling)
        self.adaptive.rate = min(self.adaptive.rate, ceiling)
        self._overall.per_second = min(self._overall.per_second, ceiling)

    @property
    def overall_rate(self) -> float:
        """The channel-wide rate in force now (at most the configured one)."""
        assert self._overall is not None
        return self._overall.per_second

    def sent(self) -> None:
        """A send went through: the channel-wide rate may grow back towards its ceiling."""
        assert self._overall is not None
        if self.adaptive is None:
            return
        self._overall.per_second = self.adaptive.succeeded(self.clock())

    def channel_limited(self, pause: float) -> None:
        """A channel-wide 429: slow down to under what the server accepts, and no burst after
        the pause: the bucket is empty until the pause ends and holds a quarter second's worth
        from then on (a server that refused once is not sent bursts)."""
        assert self._overall is not None
        if self.adaptive is None:
            return
        now = self.clock()
        rate = self.adaptive.limited(now, pause)
        self._overall.per_second = rate
        self._overall.capacity = max(1.0, rate / 4)
        self._overall.tokens = min(self._overall.tokens, 0.0)
        self._overall.updated = max(self._overall.updated or now, now + pause)

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

    def overall_wait(self) -> float:
        """Seconds until the channel-wide bucket holds a token (0 when a send may go now)."""
        assert self._overall is not None
        return self._overall.wait_time(self.clock())

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
