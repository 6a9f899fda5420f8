"""The two coroutines against the emulator: requests, answers, and every error shape."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import warnings
from collections.abc import Callable

import aiohttp
import attrs
import pytest

import asyncdeleter
from asyncdeleter import (
    APIStatusError,
    ConfigurationError,
    DeletedWorkspace,
    InvalidIdentifierError,
    NotFoundError,
    RetryPolicy,
    SessionManager,
)
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, TOKEN

Make = Callable[..., SessionManager]
ONE_TRY = RetryPolicy(max_tries=1, wait=False)


async def test_close_session_sends_one_delete_and_removes_the_session(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9", "sess-10"])
    async with make_manager() as manager:
        assert await manager.close_session("ws-1", "sess-9") is None  # type: ignore[func-returns-value]
    assert emulator.sessions("ws-1") == {"sess-10"}
    [request] = emulator.requests
    assert (request.method, request.path, request.status) == (
        "DELETE",
        "/v1/workspaces/ws-1/sessions/sess-9",
        200,
    )
    assert request.headers["X-Auth-Token"] == TOKEN
    assert request.headers["User-Agent"] == f"asyncdeleter/{asyncdeleter.__version__}"


async def test_delete_workspace_returns_a_typed_result(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["ccd05d1a553b4e188ea878e7dcb85e47"])
    async with make_manager() as manager:
        gone = await manager.delete_workspace("ccd05d1a553b4e188ea878e7dcb85e47")
    assert isinstance(gone, DeletedWorkspace)
    assert gone.workspace_id == "ccd05d1a553b4e188ea878e7dcb85e47"
    assert gone.already_gone is False
    assert gone.request_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", gone.request_id)
    assert emulator.workspaces(PROJECT) == frozenset()
    assert emulator.requests[0].path == f"/v1/{PROJECT}/workspaces/ccd05d1a553b4e188ea878e7dcb85e47"


async def test_first_attempt_404_raises_not_found_naming_the_session(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["other"])
    async with make_manager() as manager:
        with pytest.raises(NotFoundError) as info:
            await manager.close_session("ws-1", "nope")
    error = info.value
    assert (error.status, error.error_code, error.attempts) == (404, "common.01000001", 1)
    assert error.error_msg is not None
    assert "session nope" in error.error_msg
    assert error.request_id


async def test_404_message_says_when_the_workspace_is_missing(
    emulator: Emulator, make_manager: Make
) -> None:
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.ParentNotFoundError, match="workspace ws-x does not exist"):
            await manager.close_session("ws-x", "s")


async def test_missing_ok_turns_a_first_404_into_already_gone(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["other"])
    emulator.add_default_workspace(PROJECT)
    async with make_manager() as manager:
        assert await manager.close_session("ws-1", "gone", missing_ok=True) is None  # type: ignore[func-returns-value]
        result = await manager.delete_workspace("w-gone", missing_ok=True)
    assert result == DeletedWorkspace(
        workspace_id="w-gone", request_id=result.request_id, already_gone=True
    )
    with pytest.raises(NotFoundError) as info:
        async with make_manager() as manager:
            await manager.delete_workspace("w-gone")
    assert info.value.error_code == "ModelArts.0104"


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, asyncdeleter.BadRequestError, "common.01000001"),
        (401, asyncdeleter.AuthenticationError, "APIG.1002"),
        (403, asyncdeleter.PermissionDeniedError, "403"),
        (404, asyncdeleter.NotFoundError, "common.01000001"),
        (408, asyncdeleter.RequestTimeoutError, "common.00000408"),
        (429, asyncdeleter.RateLimitError, "APIG.0308"),
        (500, asyncdeleter.InternalServerError, "common.00000500"),
        (502, asyncdeleter.ServerError, None),
        (503, asyncdeleter.ServerError, None),
        (504, asyncdeleter.ServerError, None),
        (418, asyncdeleter.APIStatusError, "common.00000418"),
    ],
)
async def test_each_status_maps_to_its_error_class(
    emulator: Emulator, make_manager: Make, status: int, cls: type[APIStatusError], code: str | None
) -> None:
    emulator.add_sessions("ws-1", ["s", "other"])
    emulator.add_fault(Fault(status=status, api="CloseSqlSession"))
    # A 429 is retried for as long as max_time lasts; without 429 among the retried
    # statuses it is a RateLimitError at once.
    once = attrs.evolve(ONE_TRY, retry_statuses=ONE_TRY.retry_statuses - {429})
    async with make_manager(retry=once) as manager:
        with pytest.raises(cls) as info:
            await manager.close_session("ws-1", "s")
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.error_code == code
    assert error.request_id
    assert error.raw_body  # kept for debugging, whatever the shape
    if code is None:  # gateway pages: HTML or plain text, still a well-formed error
        assert error.error_msg is None
        assert str(status) in str(error) or "Unavailable" in str(error)


async def test_forbidden_id_gives_the_nested_403_body(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["w-locked"])
    emulator.forbid("w-locked")
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.PermissionDeniedError) as info:
            await manager.delete_workspace("w-locked")
    assert info.value.error_msg == "X-Auth-Token is invalid in the request"
    assert info.value.error_code == "403"
    assert emulator.workspaces(PROJECT) == {"w-locked"}


async def test_wrong_token_is_refused_once_and_not_retried(
    emulator: Emulator, make_manager: Make
) -> None:
    async with make_manager(
        auth=asyncdeleter.TokenAuth("wrong-token"), retry=RetryPolicy(wait=False)
    ) as manager:
        with pytest.raises(asyncdeleter.AuthenticationError) as info:
            await manager.close_session("ws-1", "s")
    assert info.value.error_code == "APIG.1002"
    assert info.value.attempts == 1
    assert emulator.request_count == 1
    assert "wrong" not in str(info.value)


@pytest.mark.parametrize(
    "bad_call",
    [
        lambda m: m.close_session("ws/1", "s"),
        lambda m: m.close_session("ws-1", "../admin"),
        lambda m: m.close_session("ws-1", "s%2F"),
        lambda m: m.close_session("ws-1", "s\r\nX-Evil: 1"),
        lambda m: m.close_session("ws-1", ""),
        lambda m: m.close_session("ws-1", "s" * 37),
        lambda m: m.delete_workspace("w.1"),
        lambda m: m.delete_workspace("w 1"),
        lambda m: m.delete_workspace("wörk"),
    ],
)
async def test_invalid_ids_never_reach_the_server(
    emulator: Emulator, make_manager: Make, bad_call: Callable[[SessionManager], object]
) -> None:
    async with make_manager() as manager:
        with pytest.raises(InvalidIdentifierError):
            await bad_call(manager)  # type: ignore[misc]
    assert emulator.request_count == 0


async def test_delete_workspace_needs_project_and_credentials_before_any_io(
    emulator: Emulator, make_manager: Make
) -> None:
    async with make_manager(project_id=None) as manager:
        with pytest.raises(ConfigurationError, match="project_id"):
            await manager.delete_workspace("w-1")
    async with make_manager(auth=None) as manager:
        with pytest.raises(ConfigurationError, match="credentials"):
            await manager.delete_workspace("w-1")
    assert emulator.request_count == 0


async def test_close_session_without_credentials_sends_no_token() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws-1", ["s"])
        async with SessionManager(endpoints=emu.endpoints()) as manager:
            await manager.close_session("ws-1", "s")
        assert "X-Auth-Token" not in emu.requests[0].headers
        assert emu.sessions("ws-1") == frozenset()


async def test_a_closed_manager_refuses_calls(make_manager: Make) -> None:
    manager = make_manager()
    async with manager:
        pass
    assert manager.closed
    with pytest.raises(ConfigurationError, match="closed"):
        await manager.close_session("ws-1", "s")
    await manager.aclose()  # idempotent


async def test_manager_works_without_async_with_until_aclose(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    manager = make_manager()
    await manager.close_session("ws-1", "s")
    await manager.aclose()
    assert emulator.sessions("ws-1") == frozenset()


async def test_a_callers_session_is_used_and_left_open(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    async with aiohttp.ClientSession() as session:
        async with make_manager(session=session) as manager:
            await manager.close_session("ws-1", "s")
        assert not session.closed
        async with session.get(f"{emulator.url}/v1/x") as response:  # still usable
            assert response.status == 404


async def test_huge_error_bodies_are_read_only_up_to_the_cap(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=500, body=b"x" * (5 * 1024 * 1024), content_type="text/plain"))
    async with make_manager(retry=ONE_TRY) as manager:
        with pytest.raises(asyncdeleter.InternalServerError) as info:
            await manager.close_session("ws-1", "s")
    assert len(info.value.raw_body) == 2048


async def test_truncated_error_body_is_judged_by_its_status(
    emulator: Emulator, make_manager: Make
) -> None:
    """A 400 whose body is cut short is still a 400: typed, and never retried."""
    emulator.add_fault(Fault(kind=FaultKind.TRUNCATE, status=400))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.BadRequestError) as info:
            await manager.close_session("ws-1", "s")
    assert info.value.attempts == 1
    assert emulator.request_count == 1


async def test_garbage_200_body_still_counts_as_deleted(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["w-1"])
    emulator.add_fault(Fault(kind=FaultKind.GARBAGE, status=200, commit=True))
    async with make_manager(retry=ONE_TRY) as manager:
        gone = await manager.delete_workspace("w-1")
    assert gone.workspace_id == "w-1"
    assert emulator.workspaces(PROJECT) == frozenset()


async def test_truncated_200_body_still_counts_as_deleted(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["w-1"])
    emulator.add_fault(Fault(kind=FaultKind.TRUNCATE, status=200, commit=True))
    async with make_manager(retry=ONE_TRY) as manager:
        assert (await manager.delete_workspace("w-1")).workspace_id == "w-1"


async def test_connection_refused_is_a_typed_connection_error() -> None:
    async with Emulator() as emu:
        endpoints = emu.endpoints()
    # The emulator is stopped: nothing listens on that port any more.
    async with SessionManager(
        endpoints=endpoints, retry=RetryPolicy(max_tries=3, wait=False)
    ) as manager:
        with pytest.raises(asyncdeleter.APIConnectionError) as info:
            await manager.close_session("ws-1", "s")
    assert info.value.attempts == 3
    assert info.value.status is None
    # The cause names what aiohttp raised, redacted (aiohttp's own carries the headers).
    cause = info.value.__cause__
    assert isinstance(cause, asyncdeleter.TransportError)
    assert cause.type_name == "aiohttp.client_exceptions.ClientConnectorError"
    assert "Cannot connect" in str(cause)


async def test_semaphore_bounds_requests_in_flight(emulator: Emulator, make_manager: Make) -> None:
    emulator.latency = 0.02
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(60)])
    async with make_manager(max_concurrency=4) as manager:
        await asyncio.gather(*(manager.close_session("ws-1", f"s{i}") for i in range(60)))
    assert emulator.peak_in_flight == 4  # reached, never passed
    assert emulator.sessions("ws-1") == frozenset()


async def test_debug_log_records_every_attempt_without_the_token(
    emulator: Emulator, make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_sessions("ws-1", ["s"])
    emulator.add_fault(Fault(status=500, times=1))
    with caplog.at_level(logging.DEBUG, logger="asyncdeleter"):
        async with make_manager() as manager:
            await manager.close_session("ws-1", "s")
    text = caplog.text
    assert "close_session ws-1/s: status=500 attempt=1" in text
    assert "close_session ws-1/s: status=200 attempt=2" in text
    assert "retrying after attempt 1" in text
    assert TOKEN not in text


def _session_leak_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "Unclosed" in str(w.message)]


async def _leak_check(body: Callable[[], object]) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with contextlib.suppress(RuntimeError, asyncio.CancelledError):
            await body()  # type: ignore[misc]
        gc.collect()
    return _session_leak_warnings(record)


async def test_the_leak_check_itself_catches_an_unclosed_session() -> None:
    """Control: the harness below does see a leaked aiohttp session."""

    async def leak() -> None:
        session = aiohttp.ClientSession()
        del session

    assert await _leak_check(leak)


async def test_no_unclosed_session_after_normal_exit_exception_or_cancellation(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])

    async def normal() -> None:
        async with make_manager() as manager:
            await manager.close_session("ws-1", "a")

    async def failing() -> None:
        async with make_manager() as manager:
            await manager.close_session("ws-1", "b")
            raise RuntimeError("boom inside async with")

    async def cancelled() -> None:
        emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=30, times=1))

        async def run() -> None:
            async with make_manager() as manager:
                await manager.close_session("ws-1", "c")

        task = asyncio.create_task(run())
        await asyncio.sleep(0.2)
        task.cancel()
        await task

    for body in (normal, failing, cancelled):
        assert await _leak_check(body) == [], body.__name__
