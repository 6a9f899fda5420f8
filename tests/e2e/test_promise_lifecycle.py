"""A manager's life: caller sessions as they come, closing mid-call, and event loops.

Calls on a closing manager, or from a loop the manager does not belong to, end in an
``AsyncDeleterError`` subclass that says why; never a bare ``RuntimeError`` or a
``CancelledError`` nobody asked for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import RetryPolicy, SessionManager, TokenAuth
from asyncdeleter.testing import Emulator, Fault
from tests.conftest import PROJECT, TOKEN


@pytest.mark.parametrize(("status", "error"), [
    (404, asyncdeleter.NotFoundError),
    (400, asyncdeleter.BadRequestError),
    (500, asyncdeleter.InternalServerError),
])  # fmt: skip
async def test_a_caller_session_that_raises_for_status_still_gets_typed_errors(
    emulator: Emulator, status: int, error: type[Exception]
) -> None:
    emulator.add_sessions("ws-1", ["other"])  # the 404's workspace exists
    if status != 404:
        emulator.add_fault(Fault(status=status))
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        SessionManager(
            endpoints=emulator.endpoints(),
            auth=TokenAuth(TOKEN),
            session=session,
            retry=RetryPolicy(wait=False, max_tries=1),
        ) as manager,
    ):
        with pytest.raises(error):
            await manager.close_session("ws-1", "missing")


async def test_closing_while_a_call_waits_to_retry_ends_it_typed_and_sends_nothing(
    emulator: Emulator,
) -> None:
    emulator.add_sessions("ws-1", ["a"])
    emulator.add_fault(Fault(status=503, retry_after="1"))
    manager = SessionManager(
        endpoints=emulator.endpoints(), auth=TokenAuth(TOKEN), retry=RetryPolicy()
    )
    async with manager:
        call = asyncio.create_task(manager.close_session("ws-1", "a"))
        while emulator.request_count < 1:  # noqa: ASYNC110 - the emulator has no event for it
            await asyncio.sleep(0.01)
    # The manager is closed now, while the call sleeps before its retry.
    started = time.monotonic()
    with pytest.raises(asyncdeleter.ConfigurationError, match="closed"):
        await call
    assert time.monotonic() - started < 5
    assert emulator.request_count == 1


async def test_closing_while_a_credentials_refresh_is_shared_ends_calls_typed(
    emulator: Emulator,
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    never = asyncio.Event()

    async def slow_provider() -> TokenAuth:
        await never.wait()
        return TokenAuth(TOKEN)

    manager = SessionManager(endpoints=emulator.endpoints(), auth=slow_provider)
    async with manager:
        calls = [asyncio.create_task(manager.close_session("ws-1", sid)) for sid in ("a", "b")]
        await asyncio.sleep(0.05)  # both wait on the one shared fetch
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, asyncdeleter.ConfigurationError) for r in results), results
    assert emulator.request_count == 0


async def test_a_call_after_close_is_a_configuration_error(emulator: Emulator) -> None:
    manager = SessionManager(endpoints=emulator.endpoints(), auth=TokenAuth(TOKEN))
    async with manager:
        pass
    with pytest.raises(asyncdeleter.ConfigurationError, match="closed"):
        await manager.close_session("ws-1", "a")
    with pytest.raises(asyncdeleter.ConfigurationError, match="closed"):
        manager.close_sessions([("ws-1", "a")])


def test_a_manager_refuses_a_second_event_loop_and_says_why() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:

        async def start() -> tuple[Emulator, SessionManager]:
            emulator = Emulator(token=TOKEN)
            await emulator.start()
            emulator.add_sessions("ws-1", ["a", "b"])
            manager = SessionManager(
                endpoints=emulator.endpoints(), project_id=PROJECT, auth=TokenAuth(TOKEN)
            )
            await manager.close_session("ws-1", "a")
            return emulator, manager

        emulator, manager = first.run_until_complete(start())

        async def use_elsewhere() -> Any:
            with pytest.raises(asyncdeleter.ConfigurationError, match="event loop") as info:
                await manager.close_session("ws-1", "b")
            return info.value

        error = second.run_until_complete(use_elsewhere())
        assert isinstance(error, asyncdeleter.AsyncDeleterError)

        async def finish() -> None:
            await manager.aclose()
            await emulator.stop()

        first.run_until_complete(finish())
        assert emulator.sessions("ws-1") == {"b"}
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("limit", "per_host", "refused"),
    [
        (100, 2, True),  # 2 of 8 would reach the server; the rest time out in the pool
        (100, 7, True),
        (100, 8, False),
        (100, 0, False),  # 0: no per-host limit
        (0, 8, False),  # 0: no total limit
        (4, 0, True),  # the total limit, as before
    ],
)
async def test_a_caller_session_whose_pool_per_host_is_below_max_concurrency_is_refused(
    limit: int, per_host: int, refused: bool
) -> None:
    """Every call of a manager goes to one host per service: its pool must hold them all."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        if refused:
            with pytest.raises(asyncdeleter.ConfigurationError, match="max_concurrency=8"):
                SessionManager(region="cn-north-4", session=session, max_concurrency=8)
        else:
            SessionManager(region="cn-north-4", session=session, max_concurrency=8)
