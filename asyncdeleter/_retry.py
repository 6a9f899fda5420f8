"""Retry decisions: the wait generator, ``Retry-After``, and the record handed to hooks.

The waits come from ``backoff``'s own generators (``backoff.expo`` with
``backoff.full_jitter``); the loop that uses them lives in ``_manager`` because it must
also honour ``Retry-After``, the overall deadline and the 404-after-retry rule, which a
decorator cannot see.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator
from typing import Final

import backoff

from asyncdeleter._config import RETRY_COST, TIMEOUT_RETRY_COST, RetryPolicy
from asyncdeleter._times import plain_number

__all__ = ["RetryBudget", "backoff_waits", "parse_retry_after"]

# The HTTP-date form of Retry-After is absolute; anything past a day is nonsense to us.
_MAX_SANE_RETRY_AFTER: Final = 86_400.0


class RetryBudget:
    """A manager-wide token bucket of retries (botocore's "retry quota").

    Retries spend from it, successes refill it. In an outage every call's first attempt
    still goes out, but retries stop once the budget is spent, so the outage is not
    multiplied by ``max_tries``.
    """

    __slots__ = ("capacity", "level")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.level = capacity

    def spend(self, *, timeout: bool) -> int:
        """Take the cost of one retry; return it, or 0 if the budget cannot pay."""
        cost = TIMEOUT_RETRY_COST if timeout else RETRY_COST
        if self.level < cost:
            return 0
        self.level -= cost
        return cost

    def refill(self, spent: int) -> None:
        """A call succeeded: give back what its retries spent, or 1 if it needed none."""
        self.level = min(self.capacity, self.level + (spent or 1))


def backoff_waits(policy: RetryPolicy) -> Iterator[float]:
    """Yield the jittered backoff waits of ``policy``, one per retry.

    Each ceiling doubles from ``initial_wait`` up to ``max_wait``; the wait is drawn
    uniformly below it ("full jitter"), so a crowd of failing calls spreads out instead of
    retrying in lockstep.
    """
    ceilings = backoff.expo(base=2, factor=policy.initial_wait, max_value=policy.max_wait)
    next(ceilings)  # backoff's generators are primed with one next() (their first yield)
    for ceiling in ceilings:
        yield backoff.full_jitter(ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds, or ``None``.

    Args:
        value: The header: delta-seconds (``"3"``, also ``"2.5"``) or an HTTP date.
        now: The current Unix time, for the HTTP-date form (tests inject it).

    Returns:
        A non-negative number of seconds, or ``None`` for a missing or unreadable value
        (a negative number, ``"1_000"``, non-ASCII digits, an impossible date). A date in
        the past means "now": 0.
    """
    if value is None:
        return None
    value = value.strip()
    if plain_number(value):
        return min(float(value), _MAX_SANE_RETRY_AFTER)
    if value[:1].isdigit() or value[:1] in "+-.":
        return None  # a number float() might take, but not one RFC 9110 allows
    seconds = _seconds_until(value, time.time() if now is None else now)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_SANE_RETRY_AFTER)


def _seconds_until(http_date: str, now: float) -> float | None:
    """Seconds from ``now`` to an HTTP date; ``None`` if it is no date we can use."""
    try:
        when = email.utils.parsedate_to_datetime(http_date)
        if when.tzinfo is None:
            return None
        return when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
