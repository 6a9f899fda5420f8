"""Throttling: the send rate per (host, API), learned from the gateway's answers, and caps.

The gateway's quota is per API per tenant (about 200 requests/s, a fixed one-second
window), so the manager keeps one ``ApiGate`` per (host, API). Every send passes it at the
moment it goes out (after the concurrency slot), so calls queued on the semaphore obey it.

``AdaptiveRate`` learns the quota. A 429 is pushback, not failure: it paces at the rate the
server was seen to accept in the trailing second (not a fraction of it, as botocore's
CUBIC does), and only when throttling is a real share of the answers (at least
``_QUOTA_SHARE`` of them, and ``_QUOTA_MIN_THROTTLED``), so occasional, uncorrelated 429s
never slow anything down. After a throttle-free spell it climbs back fast, exponentially,
to the last rate the server accepted; past that it probes, each failed probe doubling the
time to the next, so a raised quota is found and a fixed one costs few 429s. An
unthrottled gate has no limit at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Final

__all__ = ["AdaptiveRate", "ApiGate", "ConcurrencyLimit", "RateLimiter"]

#: The learner's memory: the trailing second, in ten buckets of 100 ms.
_BUCKETS: Final = 10
#: Pace this far below the accepted rate, so that a fixed window never sees one too many.
_MARGIN: Final = 0.98
#: Throttling counts as the quota binding only when it is at least this share of the
#: trailing second's answers, and at least this many answers.
_QUOTA_SHARE: Final = 0.15
_QUOTA_MIN_THROTTLED: Final = 20
#: After a decrease, the 429s of the same episode (requests already on their way, retries
#: bunched by the same Retry-After) are not news for this long.
_EPISODE: Final = 1.0
#: Probes won in a row after which the quota is taken to be gone: the limit is dropped.
_WINS_TO_UNLIMITED: Final = 3
#: Throttle-free time before each climb step, and the climb factor back to the last good rate.
_SPELL: Final = 0.5
_CLIMB: Final = 4.0
#: A probe sends this much above the last good rate; the first probe waits _FIRST_PROBE.
_PROBE: Final = 1.5
_FIRST_PROBE: Final = 10.0
#: A probe that ran this long (a whole window of the gateway and then some) without a 429
#: has won: the quota was raised.
_PROBE_JUDGED: Final = 1.5
#: The slowest the learner paces (an outage where nothing is accepted), and the rate above
#: which a limit that nobody waits for is dropped altogether.
_FLOOR: Final = 1.0
_UNLIMITED: Final = 100_000.0


class RateLimiter:
    """At most ``rate`` sends per second, first come first served (``None``: no limit).

    Turns sit on a grid ``1/rate`` apart; a waiter that is cancelled before its turn gives
    it to the next, and one cancelled as its turn came hands the turn back.
    """

    __slots__ = ("_last", "_next", "_timer", "_waiters", "rate", "waited")

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self._next = 0.0  # loop time of the next free turn
        self._last = float("-inf")  # loop time of the last turn granted
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self.waited = False  # someone had to wait since the owner last looked

    def ready(self) -> bool:
        """Whether a turn taken now would not wait (``turn()`` then returns at once)."""
        return self.rate is None or (
            not self._waiters and asyncio.get_running_loop().time() >= self._next
        )

    def set_rate(self, rate: float | None) -> None:
        """Change the rate; the next turn comes ``1/rate`` after the last one granted."""
        if rate == self.rate:
            return
        self.rate = rate
        if rate is not None:
            self._next = self._last + 1.0 / rate
        if self._waiters:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._dispatch()

    async def turn(self) -> float:
        """Wait for this caller's turn; return how long it waited, in seconds."""
        rate = self.rate
        if rate is None:
            return 0.0
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters and now >= self._next:
            self._take(now, rate)
            return 0.0
        self.waited = True
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._timer is None:
            self._timer = loop.call_at(self._next, self._dispatch)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Granted as we were cancelled: hand the turn back to whoever is next.
                self._next = min(self._next, loop.time())
                if self._timer is None and self._waiters:
                    self._dispatch()
            raise
        return loop.time() - now

    def _take(self, now: float, rate: float) -> None:
        self._last = now
        interval = 1.0 / rate
        if now - self._next >= interval:
            self._next = now + interval  # after an idle spell: a fresh grid, nothing banked
        else:
            # On the grid: a turn served a little late (a busy loop) does not push the next
            # one back, and no two turns ever share one interval of the grid.
            self._next += interval

    def _dispatch(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiters:
            rate = self.rate
            if rate is not None and now < self._next:
                self._timer = loop.call_at(self._next, self._dispatch)
                return
            waiter = self._waiters.popleft()
            if waiter.done():
                continue  # cancelled while queued: its turn goes to the next
            waiter.set_result(None)
            if rate is not None:
                self._take(now, rate)


class AdaptiveRate:
    """Learns the rate a (host, API) accepts from its answers, and paces sends to it.

    A decrease happens at once, from what the trailing second shows; the estimate then
    settles half a second later, once the accepted answers still in flight at the time
    (they pay the backend's latency, 429s do not) have arrived. Only a probe that survives
    a whole window of the gateway at its higher rate raises the estimate.
    """

    __slots__ = (
        "_accepted",
        "_bucket",
        "_ceiling",
        "_climbed_at",
        "_decreased_at",
        "_peak",
        "_probe_every",
        "_probing_since",
        "_sent",
        "_settling",
        "_throttled",
        "_wins",
        "good",
        "limiter",
    )

    def __init__(self) -> None:
        self.limiter = RateLimiter()
        self._sent = [0] * _BUCKETS
        self._accepted = [0] * _BUCKETS
        self._throttled = [0] * _BUCKETS
        self._bucket = 0
        #: The rate the server was seen to accept while throttling (requests/s).
        self.good: float | None = None
        self._ceiling: float | None = None  # what good was before the decrease settling now
        self._settling = False
        self._peak = 0  # the most accepted in a trailing second while settling
        self._decreased_at = float("-inf")
        self._climbed_at = float("-inf")
        self._probe_every = _FIRST_PROBE
        self._probing_since: float | None = None
        self._wins = 0  # probes won in a row

    def sending(self, now: float) -> None:
        """A request to this (host, API) is going out now."""
        bucket = int(now * _BUCKETS)
        if bucket != self._bucket:
            self._roll(bucket)
        self._sent[bucket % _BUCKETS] += 1

    def record(self, now: float, sent_at: float, *, throttled: bool) -> None:
        """One answer that passed the gateway (``throttled``: it was a 429)."""
        bucket = int(now * _BUCKETS)
        if bucket != self._bucket:
            self._roll(bucket)
        if throttled:
            self._throttled[bucket % _BUCKETS] += 1
            # Answers to requests sent before the last decrease say nothing about it.
            if sent_at >= self._decreased_at:
                self._on_throttle(now)
            return
        self._accepted[bucket % _BUCKETS] += 1
        if self._settling:
            # Bursty traffic (retries bunched by one Retry-After) lands at the start of the
            # gateway's windows: the trailing second may straddle them, so keep its peak.
            self._peak = max(self._peak, sum(self._accepted))
        if (
            self.limiter.rate is not None
            and now - self._climbed_at >= _SPELL
            and now - self._decreased_at >= _SPELL
        ):
            self._climb(now)

    def _roll(self, bucket: int) -> None:
        """Forget the buckets that fell out of the trailing second."""
        for stale in range(max(self._bucket + 1, bucket - _BUCKETS + 1), bucket + 1):
            self._sent[stale % _BUCKETS] = 0
            self._accepted[stale % _BUCKETS] = 0
            self._throttled[stale % _BUCKETS] = 0
        self._bucket = bucket

    def _on_throttle(self, now: float) -> None:
        # Whether throttling is a real share is judged against what was *sent* in the
        # trailing second: 429s come back at once, accepted answers only after the
        # backend's latency, so answers alone would make a run's first 429s look like a
        # flood. The rate is set from the accepted answers (low while some are still on
        # their way) and settles half a second later, once they have all arrived.
        throttled = sum(self._throttled)
        accepted = sum(self._accepted)
        if self._probing_since is not None:
            # The probe found the quota where it was: back to the good rate, and probe
            # less often. The estimate stays: a probe's answers prove nothing lower, and
            # the 429s of the window it overfilled are its own, not news.
            self._probing_since = None
            self._probe_every *= 2
            self._wins = 0
            rate = _MARGIN * self.good if self.good else _FLOOR
        elif now - self._decreased_at < _EPISODE:
            return
        elif throttled < _QUOTA_MIN_THROTTLED or throttled < _QUOTA_SHARE * sum(self._sent):
            return  # occasional throttling: pushback for that call, not a quota
        elif not accepted:
            # Nothing accepted yet (a storm, or a flood whose accepted answers are still
            # on their way): no rate to learn from; the throttled calls wait their turn.
            return
        else:
            if not self._settling:
                self._ceiling = self.good
            # Never above what was good before: the trailing second can straddle two of
            # the gateway's windows; only a probe that wins raises the estimate.
            ceiling = self._ceiling
            self.good = min(float(accepted), ceiling) if ceiling else float(accepted)
            self._settling = True
            self._peak = accepted
            rate = _MARGIN * self.good
        self.limiter.set_rate(max(rate, _FLOOR))
        self._decreased_at = self._climbed_at = now

    def _climb(self, now: float) -> None:
        self._climbed_at = now
        limiter = self.limiter
        rate = limiter.rate
        assert rate is not None  # noqa: S101 - only called with a limit set
        binding, limiter.waited = limiter.waited, False
        accepted = float(sum(self._accepted))
        if self._settling:
            # The accepted answers in flight at the decrease have arrived: count them, but
            # never above what was good before (only a probe may raise that).
            self._settling = False
            settled = max(self.good or 0.0, accepted, float(self._peak))
            if not settled:
                # Nothing was accepted after all (a storm): nothing learned, no limit.
                self.good = self._ceiling
                limiter.set_rate(_MARGIN * self.good if self.good else None)
                return
            self.good = min(settled, self._ceiling) if self._ceiling else settled
        if self._probing_since is not None:
            if now - self._probing_since < _PROBE_JUDGED:
                return  # a fixed window fills before it refuses: not judged yet
            # A whole window at the probe rate without a 429: the quota was raised.
            self._probing_since = None
            self._wins += 1
            if self._wins >= _WINS_TO_UNLIMITED:
                # Again and again more was accepted: the quota is gone (or far above us).
                self.good, self._wins = None, 0
                self._probe_every = _FIRST_PROBE
                limiter.set_rate(None)
                return
            # What the probe sent went through: that rate is good now.
            self.good = max(self.good or 0.0, accepted, rate / _PROBE * 1.25)
            self._probe_every = _SPELL
        target = _MARGIN * self.good if self.good else None
        if target is None or rate >= _UNLIMITED:
            # Nothing known to hold on to: climb until the limit no longer binds.
            limiter.set_rate(None if not binding or rate >= _UNLIMITED else rate * _CLIMB)
        elif rate < target:
            limiter.set_rate(min(rate * _CLIMB, target))
        elif binding and now - self._decreased_at >= self._probe_every and self.good:
            self._probing_since = now
            limiter.set_rate(self.good * _PROBE)


class ApiGate:
    """What a send to one (host, API) passes: the learned rate, then the ``max_rate`` cap."""

    __slots__ = ("cap", "learned")

    def __init__(self, max_rate: float | None = None) -> None:
        self.learned = AdaptiveRate()
        self.cap = RateLimiter(max_rate) if max_rate is not None else None


class ConcurrencyLimit:
    """The manager's semaphore: at most ``limit`` requests in flight.

    Behaves like ``asyncio.Semaphore`` (FIFO, cancellation-safe) but the uncontended
    acquire is a plain method call: on the request hot path that saves two coroutine
    frames per call, which is most of the distance to a raw aiohttp loop.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued; never waits."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot, in arrival order."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
