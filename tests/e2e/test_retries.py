"""Every retry rule: what is retried, how often, how long it waits, and when a 404 is success."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import RetryDetails, RetryPolicy, SessionManager, Timeouts
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, until

Make = Callable[..., SessionManager]
PATH = "/v1/workspaces/ws-1/sessions/s"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried_until_success(
    emulator: Emulator, make_manager: Make, status: int
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(status=status, times=2))
    seen: list[RetryDetails] = []
    async with make_manager(retry=RetryPolicy(wait=False, on_retry=[seen.append])) as manager:
        await manager.close_session("ws-1", "s")
    assert [r.status for r in emulator.requests] == [status, status, 200]
    assert [d.attempt for d in seen] == [1, 2]
    assert all(d.operation == "close_session" and d.target == "ws-1/s" for d in seen)
    assert isinstance(seen[0].cause, asyncdeleter.APIStatusError)
    assert seen[0].cause.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_never_retried(
    emulator: Emulator, make_manager: Make, status: int
) -> None:
    emulator.add_sessions("ws-1", ["other"])
    emulator.add_fault(Fault(status=status, api="CloseSqlSession"))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.APIStatusError) as info:
            await manager.close_session("ws-1", "s")
    assert info.value.status == status
    assert info.value.attempts == 1
    closes = [r for r in emulator.requests if r.api == "CloseSqlSession"]
    assert len(closes) == 1


async def test_retries_stop_at_max_tries_with_the_attempt_count(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=500))
    async with make_manager(retry=RetryPolicy(max_tries=4, wait=False)) as manager:
        with pytest.raises(asyncdeleter.InternalServerError) as info:
            await manager.close_session("ws-1", "s")
    assert info.value.attempts == 4
    assert emulator.request_count == 4
    assert "attempts=4" in str(info.value)


async def test_a_status_outside_retry_statuses_is_not_retried(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=503))
    policy = RetryPolicy(wait=False, retry_statuses={408, 500})
    async with make_manager(retry=policy) as manager:
        with pytest.raises(asyncdeleter.ServerError):
            await manager.close_session("ws-1", "s")
    assert emulator.request_count == 1


async def test_dropped_connections_are_retried_and_can_be_switched_off(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(kind=FaultKind.DROP, times=2))
    async with make_manager() as manager:
        await manager.close_session("ws-1", "s")
    assert emulator.request_count == 3
    emulator.add_fault(Fault(kind=FaultKind.DROP))
    emulator.reset_stats()
    async with make_manager(
        retry=RetryPolicy(wait=False, retry_connection_errors=False)
    ) as manager:
        with pytest.raises(asyncdeleter.APIConnectionError):
            await manager.close_session("ws-1", "t")
    assert emulator.request_count == 1


async def test_500_after_the_delete_committed_then_404_is_success(
    emulator: Emulator, make_manager: Make
) -> None:
    """A 404 on a retried attempt means an earlier attempt of ours deleted it."""
    emulator.add_workspaces(PROJECT, ["w-1", "w-keep"])
    emulator.add_fault(Fault(status=500, commit=True, times=1))
    async with make_manager() as manager:
        gone = await manager.delete_workspace("w-1")  # missing_ok is False
    assert gone.workspace_id == "w-1"
    assert gone.already_gone is False
    # ...once the listing showed its project exists (the one read after the 404).
    assert [(r.api, r.status) for r in emulator.requests] == [
        ("DeleteWorkspace", 500),
        ("DeleteWorkspace", 404),
        ("ListWorkspace", 200),
    ]


@pytest.mark.parametrize("connection", ["fresh", "reused"])
@pytest.mark.parametrize("session_owner", ["manager", "caller"])
async def test_drop_after_commit_then_404_is_success(
    emulator: Emulator, make_manager: Make, connection: str, session_owner: str
) -> None:
    """Our own session has aiohttp's resend switched off; a caller's gets the middleware."""
    emulator.add_sessions("ws-1", ["warm-up", "s"])
    retries: list[RetryDetails] = []
    async with contextlib.AsyncExitStack() as stack:
        session = None
        if session_owner == "caller":
            session = await stack.enter_async_context(aiohttp.ClientSession())
        policy = RetryPolicy(wait=False, on_retry=[retries.append])
        manager = await stack.enter_async_context(make_manager(retry=policy, session=session))
        if connection == "reused":
            await manager.close_session("ws-1", "warm-up")  # leaves a pooled keep-alive connection
        emulator.add_fault(Fault(kind=FaultKind.DROP, commit=True, path=PATH, times=1))
        await manager.close_session("ws-1", "s")  # missing_ok is False
    to_s = [r for r in emulator.requests if r.path == PATH]
    # Exactly two sends, both ours: the drop (which committed) and the 404 that proves it.
    assert [(r.fault, r.status) for r in to_s] == [(FaultKind.DROP, None), (None, 404)]
    assert len(retries) == 1
    assert isinstance(retries[0].cause, asyncdeleter.APIConnectionError)
    assert "s" not in emulator.sessions("ws-1")


async def test_aiohttp_alone_resends_a_delete_silently(emulator: Emulator) -> None:
    """Why the manager installs its middleware: plain aiohttp hides one resend.

    A reused connection drops after the server committed the delete; aiohttp resends
    by itself and the caller sees only the 404, as if the session had never existed.
    """
    emulator.add_sessions("ws-1", ["warm-up", "s"])
    async with aiohttp.ClientSession() as session:
        async with session.delete(
            f"{emulator.url}/v1/workspaces/ws-1/sessions/warm-up",
            headers={"X-Auth-Token": emulator.token or ""},
        ) as r:
            assert r.status == 200
        emulator.add_fault(Fault(kind=FaultKind.DROP, commit=True, path=PATH, times=1))
        async with session.delete(
            f"{emulator.url}{PATH}", headers={"X-Auth-Token": emulator.token or ""}
        ) as r:
            assert r.status == 404  # one call, yet two requests reached the server
    assert [r.status for r in emulator.requests if r.path == PATH] == [None, 404]


async def test_retry_after_is_honoured(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(status=429, retry_after="1", times=1))
    policy = RetryPolicy(initial_wait=0.0, max_wait=0.0)
    async with make_manager(retry=policy) as manager:
        started = time.monotonic()
        await manager.close_session("ws-1", "s")
        elapsed = time.monotonic() - started
    assert elapsed >= 0.9  # one-sided: a busy machine can only make it longer
    assert emulator.request_count == 2


async def test_retry_after_is_capped_by_max_retry_after(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(status=503, retry_after="3600", times=1))
    waits: list[float] = []
    policy = RetryPolicy(
        max_retry_after=0.05,
        initial_wait=0.0,
        max_wait=0.0,
        on_retry=[lambda details: waits.append(details.wait)],
    )
    async with make_manager(retry=policy) as manager:
        started = time.monotonic()
        await manager.close_session("ws-1", "s")
    assert waits == [0.05]  # the server asked for an hour; the cap decided, exactly
    assert time.monotonic() - started < 30  # generous: nowhere near the hour asked for


async def test_a_retry_after_past_max_time_gives_up_at_once(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=429, retry_after="30"))
    policy = RetryPolicy(max_time=5.0)
    async with make_manager(retry=policy) as manager:
        started = time.monotonic()
        with pytest.raises(asyncdeleter.RateLimitError) as info:
            await manager.close_session("ws-1", "s")
    assert time.monotonic() - started < 5.0
    assert info.value.attempts == 1
    assert info.value.retry_after == 30.0


async def test_read_timeout_is_retried_then_max_time_ends_the_call(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=60))
    policy = RetryPolicy(max_time=1.5, initial_wait=0.0, max_wait=0.0, max_tries=100)
    async with make_manager(retry=policy, timeouts=Timeouts(read=0.4)) as manager:
        started = time.monotonic()
        with pytest.raises(asyncdeleter.APITimeoutError) as info:
            await manager.close_session("ws-1", "s")
        elapsed = time.monotonic() - started
    assert elapsed >= 1.2  # it kept trying until near the deadline...
    assert elapsed < 6.0  # ...and stopped there (generous bound)
    assert 2 <= info.value.attempts <= 5


async def test_one_calls_429_does_not_hold_back_another_call(
    emulator: Emulator, make_manager: Make
) -> None:
    """Retry-After is that call's wait, not a pause of the host: b goes out at once."""
    emulator.add_sessions("ws-1", ["a", "b"])
    emulator.add_fault(
        Fault(status=429, retry_after="2", times=1, path="/v1/workspaces/ws-1/sessions/a")
    )
    policy = RetryPolicy(initial_wait=0.0, max_wait=0.0)
    async with make_manager(retry=policy) as manager:
        first = asyncio.create_task(manager.close_session("ws-1", "a"))
        while emulator.request_count < 1:  # noqa: ASYNC110 - the emulator has no event for it
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await manager.close_session("ws-1", "b")
        waited = time.monotonic() - started
        await first
        first_took = time.monotonic() - started
    assert waited < 1.0  # b did not wait for a's 2 s
    assert first_took >= 1.5  # while a did wait (one-sided)
    assert emulator.sessions("ws-1") == frozenset()


async def test_a_failing_hook_does_not_break_the_retry(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(status=500, times=1))

    calls: list[str] = []

    def bad_hook(details: RetryDetails) -> None:
        calls.append("bad")
        raise RuntimeError("hook bug")

    def good_hook(details: RetryDetails) -> None:
        calls.append("good")

    hooks = [bad_hook, good_hook]
    async with make_manager(retry=RetryPolicy(wait=False, on_retry=hooks)) as manager:
        await manager.close_session("ws-1", "s")
    assert calls == ["bad", "good"]  # the hooks ran, and the failing one stopped nothing
    assert emulator.sessions("ws-1") == frozenset()


async def test_cancellation_releases_the_semaphore(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s", "t"])
    emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=30, path=PATH))
    async with make_manager(max_concurrency=1) as manager:
        stuck = asyncio.create_task(manager.close_session("ws-1", "s"))
        await until(lambda: emulator.in_flight == 1)  # the stalled request holds the slot
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        # With one slot, this would hang if the cancelled call had kept it.
        async with asyncio.timeout(10):
            await manager.close_session("ws-1", "t")
    assert emulator.sessions("ws-1") == {"s"}
