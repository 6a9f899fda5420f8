"""Throttling shared by every call to one host: the ``Retry-After`` pause.

The gateway throttles the tenant, not the request (API.md, section 3), so when one call
is told to come back later, every call of the manager to that host waits too instead of
drawing more 429s.
"""

from __future__ import annotations

import asyncio

__all__ = ["HostGate"]


class HostGate:
    """When the next send to one host may start (loop time)."""

    __slots__ = ("paused_until",)

    def __init__(self) -> None:
        self.paused_until = 0.0

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
