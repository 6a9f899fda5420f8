"""Admission: who may send now. Credentials, the (host, API)'s rates, then a slot.

Every attempt passes here before the request path sends it (``_request``). The order is
the promise: the rate's turn comes before the concurrency slot, so a throttled API never
sits on slots another API could use, and no slot is ever held while waiting for a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import NoReturn

from asyncdeleter._auth import Auth, Credentials
from asyncdeleter._calls import Call, Failure, Tracker
from asyncdeleter._errors import APIError, APITimeoutError
from asyncdeleter._throttle import ConcurrencyLimit, RateLimiter

__all__ = ["Admission", "raise_error"]


def raise_error(error: APIError) -> NoReturn:
    """Raise an error made by the request path, its chain exactly as built.

    Its ``__cause__`` was set when it was made (a redacted ``TransportError``, or None):
    raising it "from" that again keeps the chain, and nothing else.
    """
    raise error from error.__cause__


async def _take_turn(limiter: RateLimiter, tracker: Tracker | None) -> float:
    """Wait for a turn; a bulk item's wait ends at once (``Stopped``) if its run stops."""
    if tracker is None or limiter.ready():
        return await limiter.turn()
    return await tracker.stop.unless_stopped(limiter.turn())


class Admission:
    """The gates one manager's calls pass before each attempt."""

    def __init__(self, credentials: Credentials, limit: ConcurrencyLimit) -> None:
        self.credentials = credentials
        self.limit = limit

    async def wait_for_turn(self, call: Call) -> tuple[Auth | None, int]:
        """Wait for the credentials, the (host, API)'s rate, then a slot; return holding it.

        The rate's turn comes before the slot, so a throttled API never sits on slots that
        another API could use; a call that then queued for a slot longer than one turn
        gives the slot back and takes a fresh turn, so what goes out still obeys the rate
        at the moment of sending.
        """
        credentials = self.credentials
        if credentials.provider is None:
            auth, generation = credentials.fixed, 0
        else:
            # Before taking a slot: a provider's first fetch must not hold one.
            auth, generation = await credentials.current()
        limit = self.limit
        while True:
            await self._take_turns(call)
            if limit.try_acquire():
                return auth, generation
            queued_at = asyncio.get_running_loop().time()
            await limit.acquire()
            if not self._turn_went_stale(call, queued_at):
                return auth, generation
            # The wait for a slot outlasted the turn: give the slot back (no slot is ever
            # held while waiting for a turn) and take a fresh turn first.
            limit.release()

    async def _take_turns(self, call: Call) -> None:
        """Pass the learned rate, then the ``max_rate`` cap, of the call's (host, API).

        The hard cap comes last, closest to the send, so that no turn of it goes stale
        while the call waits on the (possibly slower) learned rate.
        """
        gate = call.gate
        tracker = call.tracker
        learned = gate.learned.limiter
        if learned.rate is not None and (tracker is None or tracker.adaptive):
            waited = await _take_turn(learned, tracker)
            if tracker is not None:
                tracker.throttled_seconds += waited
        if gate.cap is not None:
            await _take_turn(gate.cap, tracker)

    def _turn_went_stale(self, call: Call, queued_at: float) -> bool:
        """Whether queueing for a slot outlasted a turn of any rate the call must obey."""
        gate = call.gate
        rates = [gate.cap.rate if gate.cap is not None else None]
        tracker = call.tracker
        if tracker is None or tracker.adaptive:
            rates.append(gate.learned.limiter.rate)
        fastest = max((rate for rate in rates if rate), default=None)
        return fastest is not None and (
            asyncio.get_running_loop().time() - queued_at > 1.0 / fastest
        )

    async def refresh_credentials(self, call: Call, result: Failure, generation: int) -> None:
        """Ask the provider for new credentials, within the call's deadline."""
        refreshed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(call.deadline):
                await self.credentials.refresh(generation)
                refreshed = True
        if not refreshed:
            raise_error(result.error)  # max_time ran out while fetching credentials

    async def wait_for_first_turn(self, call: Call) -> tuple[Auth | None, int]:
        """``wait_for_turn`` for a first attempt: unbounded, unless the call has ``ends_by``.

        ``max_time`` starts at the first send; a call with an outer deadline (a
        confirmation poll) must not wait past it for a turn or a slot either.
        """
        if call.ends_by is None:
            return await self.wait_for_turn(call)
        late = APITimeoutError(
            f"{call.op.label} {call.target}: its time ran out while it waited for its turn "
            "to be sent; nothing was sent",
            attempts=call.attempts,
        )
        return await self._turn_by(call, call.ends_by, late)

    async def wait_for_retry_turn(self, call: Call, last: Failure) -> tuple[Auth | None, int]:
        """``wait_for_turn`` for a retry: from the first send on, waits count to the deadline."""
        return await self._turn_by(call, call.deadline, last.error)

    async def _turn_by(
        self, call: Call, deadline: float, late: APIError
    ) -> tuple[Auth | None, int]:
        """``wait_for_turn`` until ``deadline`` (loop time); past it, raise ``late``."""
        turn = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                turn = await self.wait_for_turn(call)
        if turn is None:
            raise_error(late)
        return turn

    def turn_now(self, call: Call) -> bool:
        """Take a slot at once if nothing stands in the way (fixed credentials, no rate)."""
        gate = call.gate
        return (
            self.credentials.provider is None
            and gate.cap is None
            and gate.learned.limiter.rate is None
            and self.limit.try_acquire()
        )
