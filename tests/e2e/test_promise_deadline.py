"""``max_time`` is a hard deadline: no call outlives it after its first send, whatever the server.

Bounds are one-sided and generous (a busy machine cannot make these flaky): the call must
end well before the outer ``asyncio.timeout`` a broken implementation would hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import RetryPolicy, Timeouts
from tests.conftest import until
from tests.e2e.test_promise_sent import FirstLookupHangs, manager_for
from tests.raw_server import RawRequest, RawServer, answer

MAX_TIME = 0.8
#: Far beyond MAX_TIME plus any scheduling noise, far below the outer guard.
LATE = 5.0
GUARD = 30.0


async def drip_status_line(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    """One byte of the status line every 0.05 s: each byte resets a per-read timeout."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)


async def drip_error_body(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    """A 500 status line at once, then its body one byte every 0.05 s."""
    writer.write(answer(500).replace(b"Content-Length: 0", b"Content-Length: 100000"))
    for _byte in range(100000):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def stall_before_answering(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (drip_status_line, asyncdeleter.APITimeoutError),
        (stall_before_answering, asyncdeleter.APITimeoutError),
        # The status line arrived: the status decides (a 500), but no later than max_time.
        (drip_error_body, asyncdeleter.InternalServerError),
    ],
    ids=["dripping-status-line", "stalled", "dripping-body"],
)
@pytest.mark.parametrize(
    "timeouts",
    # Per-attempt timeouts longer than max_time, and shorter ones that add up to less
    # than it: either way each drip arrives within the per-read timeout.
    [Timeouts(read=10), Timeouts(connect=0.1, read=0.3)],
    ids=["long-timeouts", "short-timeouts"],
)
async def test_no_server_behaviour_stretches_a_call_past_max_time(
    script: Any, error: type[Exception], timeouts: Timeouts
) -> None:
    retry = RetryPolicy(max_time=MAX_TIME, wait=False)
    async with (
        RawServer(script) as server,
        manager_for(server.url, retry=retry, timeouts=timeouts) as manager,
    ):
        started = time.monotonic()
        async with asyncio.timeout(GUARD):
            with pytest.raises(error):
                await manager.close_session("ws-1", "s-1")
        elapsed = time.monotonic() - started
    assert elapsed < LATE


async def test_slow_name_resolution_is_bounded_by_max_time() -> None:
    """Resolution is part of the attempt: a resolver that never answers cannot hold a call."""
    async with RawServer(stall_before_answering) as server:
        url = f"http://emulated.localhost:{server.port}"
        connector = aiohttp.TCPConnector(resolver=FirstLookupHangs(), use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            retry = RetryPolicy(max_time=MAX_TIME, wait=False, max_tries=1)
            # A connect timeout that bounds the socket connect alone would not bound this.
            timeouts = Timeouts(connect=0.1, read=0.3)
            manager = manager_for(
                url, session=session, retry=retry, timeouts=timeouts, allow_insecure_http=True
            )
            started = time.monotonic()
            async with manager, asyncio.timeout(GUARD):
                with pytest.raises(asyncdeleter.APITimeoutError):
                    await manager.close_session("ws-1", "s-1")
    assert time.monotonic() - started < LATE
    assert server.requests == []


async def test_the_deadline_counts_across_retries_and_waits_in_a_bulk_run() -> None:
    """Each attempt is cut short and the retries share one deadline, in bulk runs too."""
    async with RawServer(drip_status_line) as server:
        retry = RetryPolicy(max_time=MAX_TIME, max_tries=50, initial_wait=0.1, max_wait=0.1)
        timeouts = Timeouts(connect=0.1, read=0.3)
        async with manager_for(server.url, retry=retry, timeouts=timeouts) as manager:
            started = time.monotonic()
            async with asyncio.timeout(GUARD):
                report = await manager.close_sessions([("ws-1", f"s-{i}") for i in range(3)])
    assert time.monotonic() - started < LATE
    assert report.failed == 3
    assert all(isinstance(o.error, asyncdeleter.APITimeoutError) for o in report.outcomes)


async def test_a_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    """A 503 asking for 30 s, with 0.8 s left: the call ends now, with the 503."""

    async def unavailable(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(503, b"busy", {"Retry-After": "30"}))

    retry = RetryPolicy(max_time=MAX_TIME)
    async with RawServer(unavailable) as server, manager_for(server.url, retry=retry) as manager:
        started = time.monotonic()
        with pytest.raises(asyncdeleter.ServerError):
            await manager.close_session("ws-1", "s-1")
    assert time.monotonic() - started < LATE
    assert len(server.requests) == 1


async def test_a_credentials_refresh_after_a_401_is_under_the_deadline() -> None:
    """The provider asked again after a 401 takes 30 s: the call still ends at max_time."""
    calls = 0

    async def provider() -> asyncdeleter.TokenAuth:
        nonlocal calls
        calls += 1
        if calls > 1:
            await asyncio.sleep(30)
        return asyncdeleter.TokenAuth("test-token")

    async def refuse(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(401))

    async with RawServer(refuse) as server:
        url = server.url
        async with asyncdeleter.SessionManager(
            endpoints=asyncdeleter.Endpoints(fabric=url, modelarts=url),
            auth=provider,
            retry=RetryPolicy(max_time=MAX_TIME),
        ) as manager:
            started = time.monotonic()
            with pytest.raises(asyncdeleter.AuthenticationError):
                await manager.close_session("ws-1", "s-1")
    assert time.monotonic() - started < LATE


async def test_a_stalled_confirmation_poll_ends_at_wait_timeout_not_max_time() -> None:
    """ShowWorkspace accepts the poll and never answers: the wait ends near wait_timeout.

    One deadline: each poll, its retries and its waits get at most what is left of
    ``wait_timeout``, not a fresh ``max_time`` (30 s here) of their own.
    """

    async def accept_then_stall(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE":
            writer.write(answer(200, b"{}"))
            return
        await asyncio.sleep(3600)  # the poll: connected, read, never answered

    retry = RetryPolicy(max_time=30.0, poll_initial_wait=0.1, poll_max_wait=0.2)
    async with (
        RawServer(accept_then_stall) as server,
        manager_for(server.url, retry=retry) as manager,
    ):
        started = time.monotonic()
        async with asyncio.timeout(GUARD + 30):
            with pytest.raises(asyncdeleter.WaitTimeoutError) as info:
                await manager.delete_workspace("ws-1", wait=True, wait_timeout=1.0)
        elapsed = time.monotonic() - started
    assert not info.value.stopped
    assert any(r.method == "GET" for r in server.requests), "a poll went out and stalled"
    assert elapsed < 1.0 + 3.0


async def test_a_confirmation_poll_waiting_for_a_slot_ends_at_wait_timeout() -> None:
    """The only slot is held by a stalled call: the poll's wait for it ends with the wait."""

    async def accept_workspace_stall_session(
        request: RawRequest, writer: asyncio.StreamWriter
    ) -> None:
        if "/sessions/" in request.path:
            await asyncio.sleep(3600)  # holds the manager's only slot for its max_time
        writer.write(answer(200, b"{}"))

    retry = RetryPolicy(max_time=30.0, poll_initial_wait=0.3, poll_max_wait=0.3)
    async with (
        RawServer(accept_workspace_stall_session) as server,
        manager_for(server.url, retry=retry, max_concurrency=1) as manager,
    ):
        started = time.monotonic()
        deleting = asyncio.create_task(
            manager.delete_workspace("ws-1", wait=True, wait_timeout=1.0)
        )
        await until(lambda: len(server.requests) == 1)  # the DELETE was answered
        holder = asyncio.create_task(manager.close_session("ws-1", "s-1"))
        async with asyncio.timeout(GUARD + 30):
            with pytest.raises(asyncdeleter.WaitTimeoutError):
                await deleting
        elapsed = time.monotonic() - started
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
    assert [r.method for r in server.requests] == ["DELETE", "DELETE"], "no poll got a slot"
    assert elapsed < 1.0 + 3.0
