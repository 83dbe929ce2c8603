"""Per-channel send rates, so the dispatcher stays under a messenger's limits instead of
bouncing off 429s.

Token buckets on a monotonic clock: one for the whole channel (Telegram: 30 messages/s), one per
private chat (about 1/s, short bursts allowed) and one per group (20/min). ``reserve`` never
blocks: it takes a token and says how long the caller must wait before using it, or refuses a
chat token with the time until one is free, so a busy chat does not hold up the others.

The channel-wide rate adapts (``AdaptiveRate``): the configured rate is a ceiling, not a target.
A server that allows less answers 429; the rate then drops to a little under what the server
was seen to accept, and creeps back up while sends succeed; once that rate is measured, the
end of each pause spends at once what the server refilled during it (``REFILL``). Pausing for
``retry_after`` and then bursting again at the ceiling (the old behaviour) delivered 0.7–0.85
of a slow server's rate and drew a 429 for most messages; Telegram punishes repeated 429s with
longer bans.
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
"""Seconds of recent successful sends from which the server's accepted rate is guessed at the
first 429. Pauses count as time: what a server refills during a pause is part of the rate it
allows. This overestimates (the server's initial burst is in it); from the second 429 on, the
rate accepted between two 429s is measured instead: at each 429 the server's allowance was
used up, so what it accepted in between is what it refilled (over HTTP, the window's estimate
left the rate above the server's and drew a 429 every few seconds)."""
BETWEEN = 1.0
"""Seconds of intervals between 429s needed to measure the rate accepted in them. Each holds a
whole ``retry_after`` pause (≥ 1 s), whose refill the sender then used."""
COUNTED = 3
"""…and messages accepted in them: fewer say little (a server that refuses nearly everything,
or a sender with little to send)."""
HISTORY = 60.0
"""Seconds of intervals between 429s summed for that measure: a single short interval errs by a
message either way at each end; the sum evens that out (between back-to-back intervals the
errors cancel), and a server that changes its rate is followed within a minute."""
UNSEEN = 0.5
"""Messages added to the count: the server refused when it had less than a message's worth
left, half a message on average (3 % of a 1.5 s interval at 10/s; the rate, which sits 3 %
under what was measured, would otherwise sit 6 % under the server's)."""
BUSY = 0.8
"""An interval between 429s is measured only if the sender kept up its own pace in it (had
this share of the rate it was set to accepted, over the time it was sending): only then was the
server the limit. Otherwise the sender was short of messages, or slow for reasons of its own (a
slow database, chats waiting on their own pace), and the server's allowance overflowed unseen:
the count is only a lower bound."""
DECREASE = 0.97
"""On a channel-wide 429 the rate becomes this share of what the server was seen to accept."""
INCREASE = 0.2
"""Near the rate the server last refused, the rate grows by this many messages/s every second
(additive: probing slowly where the limit was found)."""
PROBE = 0.003
"""…but never faster than this share of the rate per second: near the limit found the probing
is slow (at 10/s a 429 about every half minute, not every few seconds)."""
RECOVER = 0.05
"""Further below that rate it grows by this share every second, so a single 429 (a burst at
start, a hiccup) costs seconds, not minutes, of a fast server's rate."""
PLATEAU = 60.0
"""Seconds after a 429 that measured the server's rate during which the rate grows no further
than that measure, give or take its error (a message over the seconds measured), as TCP CUBIC
stays near the window it last lost at before probing past it. A measured limit is exact but
for that error, so probing past it at once only found the server's limit again, a 429 about
every 20 s at 10/s: after a burst the server has little left to absorb a probe."""
REFILL = 1.0
"""Once the server's rate is measured, a pause's end may spend at once what the server refilled
during it at that rate, up to this many seconds' worth: a token bucket (or a per-second window)
allows that. Sent at the rate only, that refill was lost: a second of the server's rate per
429, 3 % of a 30 s broadcast. While the rate is a guess (the first 429), no such burst: the
guess is high. A server whose allowance is smaller than the refill (a 429 before the burst
was spent) is sent no more bursts, and that interval measures nothing (it overflowed)."""


@dataclass
class AdaptiveRate:
    """A rate between ``floor`` and ``ceiling`` that follows what the server accepts."""

    ceiling: float
    floor: float = 1.0
    rate: float = 0.0
    known_limit: float | None = None  # what the server accepted when it last refused
    measured: bool = False  # known_limit is the rate accepted between 429s, not a guess
    burst: float = 0.0  # messages the end of the current pause may send at once
    bursts: bool = True  # False once a burst drew a 429 before it was spent
    _sent: deque[float] = field(default_factory=deque)
    _started: float | None = None  # the first send: the window never reaches before it
    _paused_until: float | None = None
    _pause: float = 0.0  # the last 429's pause
    _limited_at: float | None = None  # the last 429 (first of its pause)
    _resumed_at: float | None = None  # the first send accepted after its pause
    _rate_after: float = 0.0  # the rate set at the last 429
    _margin: float = 0.0  # how far the measured limit may be off (a message over its span)
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
        if self._resumed_at is None and now >= (self._paused_until or now):
            self._resumed_at = now  # the first send after the pause (not one already in flight)
        self._since_limited += 1
        per_second = min(INCREASE, PROBE * self.rate)
        if self.known_limit is None or self.rate < self.known_limit * 0.97:
            per_second = max(INCREASE, RECOVER * self.rate)
        rate = min(self.ceiling, self.rate + per_second / max(self.rate, self.floor))
        if (
            self.measured
            and self.known_limit is not None
            and self._limited_at is not None
            and now - self._limited_at < PLATEAU
        ):
            rate = min(rate, max(self.rate, self.known_limit + self._margin))
        self.rate = rate
        return self.rate

    def limited(self, now: float, pause: float) -> float:
        """The server answered 429 for the channel: drop under its accepted rate. The other
        sends already in flight are answered 429 too: one slowdown per pause, not one each."""
        if self._paused_until is not None and now < self._paused_until:
            return self.rate
        if self._measure(now):  # only the burst after the pause was too much: no more bursts
            self.bursts, self.burst = False, 0.0
        else:
            span = sum(span for _at, span, _n in self._between)
            counted = sum(n for _at, _span, n in self._between)
            seen = (counted + UNSEEN) / span if span >= BETWEEN else self.accepted(now)
            # What was seen accepted can be low for reasons of our own (a slow database, chats
            # waiting on their own pace) or of a server that allows less at once than it
            # refills in a pause: one 429 never more than halves the rate.
            base = self.rate if seen is None else min(self.rate, max(seen, self.rate / 2))
            self.measured = (
                span >= BETWEEN
                and counted >= COUNTED
                and seen is not None
                and self.rate / 2 <= seen <= self.rate
            )
            self.known_limit = base
            self._margin = 1 / span if self.measured else 0.0
            self.rate = self._rate_after = max(self.floor, base * DECREASE)
            self.burst = self.rate * min(pause, REFILL) if self.measured and self.bursts else 0.0
        self._limited_at, self._since_limited, self._resumed_at = now, 0, None
        self._pause, self._paused_until = pause, now + pause
        return self.rate

    def _measure(self, now: float) -> bool:
        """Keep the interval since the last 429 if the server was what limited it: the pause
        (refilled at the server's rate) plus the time from the first send accepted after it.
        True: the 429 came before the burst after the pause was spent (it overflowed)."""
        overflowed = False
        if self._limited_at is not None:
            span = now - self._limited_at
            if self._resumed_at is not None:  # a slow start after the pause: refill lost
                span = min(span, self._pause + now - self._resumed_at)
            # Nothing accepted says as much however idle the sender was: nothing was refilled.
            busy = not self._since_limited or (
                self._since_limited >= BUSY * self._rate_after * (span - self._pause)
            )
            overflowed = self._since_limited < self.burst - 1
            if busy and not overflowed:
                self._between.append((now, span, self._since_limited))
        while self._between and self._between[0][0] < now - HISTORY:
            self._between.popleft()
        return overflowed


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
    _resume_at: float = 0.0  # the end of the last channel-wide pause

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
        """A channel-wide 429: slow down to under what the server accepts, and send nothing
        until the pause ends. While the server's rate is a guess, no burst after the pause
        either: the bucket is empty then and holds a quarter second's worth from then on. Once
        the rate is measured, the pause's end may spend what the server refilled during it at
        that rate (``REFILL``): it fills from the 429 on, and a second's worth is its size."""
        assert self._overall is not None
        if self.adaptive is None:
            return
        now = self.clock()
        rate = self.adaptive.limited(now, pause)
        bucket = self._overall
        bucket.wait_time(now)  # brought up to now at the old rate
        bucket.per_second = rate
        bucket.tokens = min(bucket.tokens, 0.0)
        if self.adaptive.burst:  # filled at the rate from the 429 to the pause's end
            bucket.capacity = max(1.0, self.adaptive.burst)
            bucket.updated = now
        else:  # one send at the pause's end: the server refilled at least that much
            bucket.capacity = max(1.0, rate / 4)
            bucket.tokens, bucket.updated = 1.0, now + pause
        self._resume_at = max(self._resume_at, now + pause)

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
        now = self.clock()
        return max(self._resume_at - now, self._overall.wait_time(now))

    def reserve(self, chat_ref: str) -> float:
        """Take a chat token (caller checked ``chat_wait``) and an overall one; return the wait."""
        now = self.clock()
        self._chat_bucket(chat_ref).take(now)
        self._previous[chat_ref] = self._last_sent.get(chat_ref)
        self._last_sent[chat_ref] = now
        assert self._overall is not None
        return max(self._resume_at - now, self._overall.take(now))

    def recently_sent(self, chat_ref: str, within: float = 1.0) -> bool:
        """Whether the chat had another message just before the last one: a 429 then is likely
        the chat's own limit; otherwise it is the channel's, and the whole channel must wait."""
        previous = self._previous.get(chat_ref)
        return previous is not None and self.clock() - previous < within
