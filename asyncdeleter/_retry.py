"""Retry mechanics: the wait generator, ``Retry-After``, the budget, and the plan.

The waits come from ``backoff``'s own generators (``backoff.expo`` with
``backoff.full_jitter``). ``plan_retry`` turns a decided retry into a wait, or into the
error when the deadline or the shared retry budget says no; the request path
(``_request``) runs the loop, because it must also honour the 404-after-retry rule and the
stop signal, which a decorator cannot see.

A throttled call (429) waits ``max(Retry-After, pacing floor, jittered backoff)``
(``throttle_wait``), and any other retry ``max(Retry-After, jittered backoff)``: the
gateway documents no ``Retry-After``, and one that says ``0`` or names a past date must
never turn into a loop of requests.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Iterator
from typing import Final

import backoff

from asyncdeleter._calls import Call, Failure
from asyncdeleter._config import RETRY_COST, TIMEOUT_RETRY_COST, RetryPolicy
from asyncdeleter._errors import APITimeoutError, raise_error
from asyncdeleter._records import RetryDetails
from asyncdeleter._times import plain_number

__all__ = ["RetryBudget", "backoff_waits", "parse_retry_after", "plan_retry", "throttle_wait"]

_log: Final = logging.getLogger("asyncdeleter")

# The HTTP-date form of Retry-After is absolute; anything past a day is nonsense to us.
_MAX_SANE_RETRY_AFTER: Final = 86_400.0
# A throttled call's backoff ceiling grows no higher than this (Huawei advises retrying a
# throttled call after 2-5 s); the learned rate, not the backoff, paces a quota.
_THROTTLE_MAX_WAIT: Final = 5.0


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


#: A throttled call's last tries before its deadline come at least this far apart (in
#: seconds): nearer the deadline it gives up rather than halving the time left forever.
_LAST_THROTTLED_TRY: Final = 0.25


def plan_retry(
    call: Call, result: Failure, policy: RetryPolicy, budget: RetryBudget | None, now: float
) -> float:
    """How long to wait before ``call``'s next attempt; raises its error when there is none.

    ``decide`` already said to retry; what is left depends on the clock and on state
    shared across calls: the deadline and the retry budget. Tells the ``on_retry`` hooks.
    """
    if result.throttled:
        call.gate.learned.heard(result.error.error_msg)  # the quota it names: a hint
        wait = throttle_wait(call, result.wait, policy)
        # Throttling never fails a call while max_time lasts: the jittered part of the
        # wait gives way to the deadline (half of what is left stays for the attempt).
        left, floor = call.left(now), throttle_floor(call, result.wait, policy)
        if policy.wait and wait >= left and left - floor > _LAST_THROTTLED_TRY:
            wait = floor + (left - floor) / 2
    else:
        if call.waits is None:
            call.waits = backoff_waits(policy)
        wait = next(call.waits)
        if result.wait is not None:
            # Retry-After is a floor, never "now": a 503 saying 0 (or a past date) still
            # waits its jittered backoff, so no answer can turn retries into a loop.
            wait = max(wait, min(result.wait, policy.max_retry_after))
    if not policy.wait:
        wait = 0.0
    if call.ends_before(now + wait):
        # The wait would end past max_time: give up now, with the real error.
        raise_error(result.error)
    if result.throttled:
        if call.tracker is not None:
            call.tracker.throttled_seconds += wait
    elif budget is not None:
        cost = budget.spend(timeout=isinstance(result.error, APITimeoutError))
        if not cost:
            result.error.retry_budget_exhausted = True
            raise_error(result.error)
        call.budget_spent += cost
    _tell_retry_hooks(
        policy,
        RetryDetails(
            operation=call.op.label,
            target=call.target,
            attempt=call.attempts,
            wait=wait,
            cause=result.error,
            status=result.error.status,
        ),
    )
    return wait


def throttle_wait(call: Call, retry_after: float | None, policy: RetryPolicy) -> float:
    """How long a throttled call waits before its retry: the longest of three.

    - the ``Retry-After`` the answer gave, if any (capped by ``max_retry_after``);
    - the pacing floor: one turn at the rate learned for the call's (host, API), unless
      the call ignores it (a bulk run with ``adaptive=False``);
    - a jittered backoff: full jitter under a ceiling that doubles from ``initial_wait``
      with each 429 the call met, capped at ``min(max_wait, 5 s)``.

    So ``Retry-After: 0`` (or a past date) never means "now, in a loop", and with no
    ``Retry-After`` at all (as the gateway documents) throttled calls spread out instead
    of retrying in lockstep. The retry then takes its turn at the learned rate, like any
    send. The 429's message is read for the quota it names (a hint for the learner).
    """
    ceiling = min(
        policy.max_wait,
        _THROTTLE_MAX_WAIT,
        policy.initial_wait * 2.0 ** min(max(call.throttled - 1, 0), 32),
    )
    return max(backoff.full_jitter(ceiling), throttle_floor(call, retry_after, policy))


def throttle_floor(call: Call, retry_after: float | None, policy: RetryPolicy) -> float:
    """The part of a throttled call's wait that may not be cut: Retry-After and pacing."""
    floor = 0.0
    if retry_after is not None:
        floor = min(retry_after, policy.max_retry_after)
    if call.tracker is None or call.tracker.adaptive:
        floor = max(floor, call.gate.learned.floor())
    return floor


def _tell_retry_hooks(policy: RetryPolicy, details: RetryDetails) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s %s: retrying after attempt %d in %.3fs (%s)",
            details.operation,
            details.target,
            details.attempt,
            details.wait,
            details.cause,
        )
    for hook in policy.on_retry:
        try:
            hook(details)
        except Exception:  # noqa: BLE001 - a user's hook must not break the retry
            _log.exception("on_retry hook %r failed; the retry goes on", hook)
