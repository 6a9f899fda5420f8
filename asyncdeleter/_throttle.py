"""Throttling: the per-host ``Retry-After`` pause, the AIMD limit and the rate pacer.

The gateway throttles the tenant, not the request (API.md, section 3), so when one call
is told to come back later, every call of the manager to that host waits too instead of
drawing more 429s.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

__all__ = ["AdaptiveLimit", "ConcurrencyLimit", "HostGate", "RatePacer"]


class HostGate:
    """When the next send to one host may start (loop time), and its optional rate cap."""

    __slots__ = ("pacer", "paused_until")

    def __init__(self, max_rate: float | None = None) -> None:
        self.paused_until = 0.0
        self.pacer = RatePacer(max_rate) if max_rate is not None else None

    def pause_for(self, seconds: float) -> None:
        """Hold every new send to this host for ``seconds`` from now (never shortens a pause)."""
        until = asyncio.get_running_loop().time() + seconds
        self.paused_until = max(until, self.paused_until)

    async def wait_until_open(self) -> None:
        """Sleep until the pause (which may be extended meanwhile) is over."""
        loop = asyncio.get_running_loop()
        # A loop, not an Event: another 429 may extend the pause while we sleep.
        while (delay := self.paused_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


class AdaptiveLimit:
    """An AIMD concurrency limit, between 1 and ``maximum``, starting at ``maximum``.

    Each throttling answer halves the limit, at most once per "window" (only for work
    started after the last decrease, so one burst of 429s counts once); each success
    without throttling adds ``1/limit``, so the limit grows by one per window of successes.
    An unthrottled run therefore never runs below full concurrency.
    """

    __slots__ = ("_decrease_mark", "_started", "_waiters", "in_use", "limit", "maximum")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_use = 0
        self._started = 0
        self._decrease_mark = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> int:
        """Take room under the limit if there is some and nobody waits: a ticket, else 0."""
        if self.in_use < int(self.limit) and not self._waiters:
            self.in_use += 1
            self._started += 1
            return self._started
        return 0

    async def acquire(self) -> int:
        """Wait for room under the limit; return a ticket for ``throttled``/``release``."""
        while self.in_use >= int(self.limit):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Pass the wake-up on, or it would be lost with this waiter.
                if waiter.done() and not waiter.cancelled():
                    self._wake()
                raise
        self.in_use += 1
        self._started += 1
        return self._started

    def throttled(self, ticket: int) -> None:
        """The work holding ``ticket`` met a throttling answer: back off multiplicatively."""
        if ticket > self._decrease_mark:
            self.limit = max(1.0, self.limit / 2)
            self._decrease_mark = self._started

    def release(self, *, success: bool) -> None:
        """Give back a slot; a success grows the limit additively."""
        self.in_use -= 1
        if success and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
        self._wake()

    def _wake(self) -> None:
        room = int(self.limit) - self.in_use
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1


class RatePacer:
    """Spaces sends to one host at least ``1/rate`` seconds apart (client-side ``max_rate``)."""

    __slots__ = ("_interval", "_next_slot")

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next_slot = 0.0

    async def wait_turn(self) -> None:
        """Reserve the next send slot and sleep until it comes."""
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


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
