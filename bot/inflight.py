"""How many sends a worker keeps in flight: as many as its target rate needs, and no more.

Every request in flight is an outbox row marked "sending" (``bot/outbox_journal.py``), and a
SIGKILL repeats exactly those. A fixed small number in flight is the tightest bound on that,
but it caps the rate at in-flight ÷ answer time: two requests and a 200 ms round trip allow
10 msg/s whatever the server accepts. So the window follows Little's law: requests in flight =
rate × round trip. Per channel, the round trip is the shortest over its last requests (sent to
answered): what the network and the server take when nothing local holds a request up (as TCP
BBR takes the round trip's floor). On a busy machine the median grows with the wait for CPU,
and more requests in flight would not send faster; they would only let a kill repeat more. The
rate is the channel's current target (its ``AdaptiveRate``, at most the configured ceiling,
lower after 429s). The window is the sum over the channels that sent recently, times
``HEADROOM``, rounded up, kept between a minimum (``SOTAY_OUTBOX_IN_FLIGHT``, 2) and a maximum
(``SOTAY_OUTBOX_IN_FLIGHT_MAX``, 16).

On a near Bot API (30/s × 20 ms × 1.5 = 0.9) it stays at the minimum, so a kill repeats at
most 2; at a 200 ms round trip it opens to about 10 for the ceiling's 30/s, and a kill then
repeats at most what was really in flight. A channel without a known rate counts for nothing
(the minimum covers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator

HEADROOM = 1.5
"""Above Little's law's bare need: a place is held a little longer than the round trip (the
mark and the outcome are committed around it), most round trips are longer than the shortest,
and a full window leaves a paced send waiting."""
SAMPLES = 32
"""Round trips kept per channel (about a second's worth at 30 msg/s)."""
RECENT = 10.0
"""Seconds: a channel whose last request is older than this no longer counts (its round trips
described another moment)."""
MIN_SAMPLES = 3
"""Round trips needed before a channel counts."""


class InFlightWindow:
    """Places for requests in flight, each taken before a row's "sending" mark and given back
    once its outcome is recorded (or it never started); sized from the timed round trips."""

    def __init__(
        self,
        minimum: int = 2,
        maximum: int | None = None,
        *,
        rate_of: Callable[[str], float | None] = lambda _channel: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum if maximum is not None else self.minimum)
        self.rate_of = rate_of  # a channel's target rate now (msg/s), None when unknown
        self._clock = clock
        self._holding: set[int] = set()
        self._trips: dict[str, deque[tuple[float, float]]] = {}  # channel: (ended, seconds)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.limit = self.minimum
        self.widest = self.minimum  # the largest limit so far (what a benchmark reports)

    @property
    def in_flight(self) -> int:
        return len(self._holding)

    def needed(self, now: float | None = None) -> float:
        """Requests in flight the channels' target rates need now (Little's law, no headroom)."""
        now = self._clock() if now is None else now
        total = 0.0
        for channel, samples in self._trips.items():
            while samples and samples[0][0] < now - RECENT:
                samples.popleft()
            rate = self.rate_of(channel)
            if rate is None or len(samples) < MIN_SAMPLES:
                continue
            total += rate * min(seconds for _ended, seconds in samples)
        return total

    def resize(self, now: float | None = None) -> int:
        wanted = math.ceil(self.needed(now) * HEADROOM - 1e-9)  # 9.000000001 needs 9
        self.limit = min(self.maximum, max(self.minimum, wanted))
        self.widest = max(self.widest, self.limit)
        self._wake()
        return self.limit

    async def acquire(self, key: int) -> None:
        """Wait for a place, then hold it for ``key`` (a row id); at once if it holds one."""
        self.resize()
        while key not in self._holding and len(self._holding) >= self.limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake()  # a place it was woken for goes to the next one
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._holding.add(key)

    def try_hold(self, key: int) -> bool:
        """Hold a place for ``key`` if one is free now, without waiting."""
        self.resize()
        if len(self._holding) >= self.limit:
            return False
        self._holding.add(key)
        return True

    def rekey(self, old: int, new: int) -> None:
        """The place held under ``old`` (a provisional key) is now held under ``new``."""
        if old in self._holding:
            self._holding.discard(old)
            self._holding.add(new)

    def release(self, key: int) -> None:
        """The row's request is over (its outcome recorded, or it never started): its place is
        free. Releasing a key not held (again, or never taken) does nothing."""
        if key in self._holding:
            self._holding.discard(key)
            self._wake()

    @contextlib.contextmanager
    def round_trip(self, channel: str) -> Iterator[None]:
        """Times one request, from sent to answered (whatever the answer), for ``channel``."""
        started = self._clock()
        try:
            yield
        finally:
            now = self._clock()
            self._trips.setdefault(channel, deque(maxlen=SAMPLES)).append((now, now - started))
            self.resize(now)

    def _wake(self) -> None:
        free = self.limit - len(self._holding)
        for waiter in self._waiters:
            if free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
