"""A call's one deadline: where it comes from, and how a wait is held to it."""

from __future__ import annotations

import asyncio

import pytest
import yarl

from asyncdeleter import APITimeoutError
from asyncdeleter._calls import Call, within_deadline
from asyncdeleter._operations import CLOSE_SQL_SESSION
from asyncdeleter._throttle import ApiGate


def fresh(ends_by: float | None = None) -> Call:
    made = Call(
        op=CLOSE_SQL_SESSION,
        url=yarl.URL("http://127.0.0.1/x"),
        gate=ApiGate(None),
        ids=("ws", "s"),
        target="ws/s",
    )
    made.ends_by = ends_by
    return made


def test_the_deadline_is_max_time_from_the_first_send_unless_ends_by_comes_first() -> None:
    """``max_time`` starts at the first send; an outer ``ends_by`` can only shorten it."""
    call = fresh()
    call.start_deadline(100.0, 30.0)
    assert call.deadline == 130.0
    sooner = fresh(ends_by=110.0)
    sooner.start_deadline(100.0, 30.0)
    assert sooner.deadline == 110.0
    later = fresh(ends_by=200.0)
    later.start_deadline(100.0, 30.0)
    assert later.deadline == 130.0
    assert later.left(120.0) == 10.0
    assert later.ends_before(130.0)
    assert not later.ends_before(129.0)


def test_before_its_first_send_only_ends_by_bounds_a_call() -> None:
    """No deadline of its own yet: a first turn waits unbounded, or until ``ends_by``."""
    assert fresh().ends_at is None
    assert fresh(ends_by=5.0).ends_at == 5.0
    sent = fresh(ends_by=500.0)
    sent.start_deadline(100.0, 30.0)
    sent.attempts = 1
    assert sent.ends_at == 130.0


async def test_a_wait_past_the_deadline_ends_with_the_error_it_names() -> None:
    """The wait is cut off at the deadline and the call ends with ``late()``, chain as built."""
    call = fresh()
    loop = asyncio.get_running_loop()
    call.start_deadline(loop.time(), 0.05)
    call.attempts = 1
    cause = RuntimeError("redacted cause")
    error = APITimeoutError("ran out", attempts=1)
    error.__cause__ = cause
    with pytest.raises(APITimeoutError) as info:
        await within_deadline(call, asyncio.sleep(10, result="late"), lambda: error)
    assert info.value is error
    assert info.value.__cause__ is cause


async def test_a_wait_within_the_deadline_returns_what_it_waited_for() -> None:
    """A wait that ends in time (or a call with no bound yet) gives its result back."""
    call = fresh()
    assert await within_deadline(call, asyncio.sleep(0, result="unbounded"), _never) == "unbounded"
    call.start_deadline(asyncio.get_running_loop().time(), 10.0)
    call.attempts = 1
    assert await within_deadline(call, asyncio.sleep(0, result="in time"), _never) == "in time"


def _never() -> APITimeoutError:
    raise AssertionError("the deadline was not reached")
