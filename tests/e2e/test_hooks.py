"""``on_request``/``on_response``: one frozen ``RequestRecord`` before and after each attempt.

Each attempt (retries included) is told twice: just before it goes out (the emulator has
not seen it yet) and once it has ended and been judged (the emulator has answered, or
given up). The records name the call, never a header value or a secret; a failing hook is
logged and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest

import asyncdeleter
from asyncdeleter import (
    AkSkAuth,
    RequestRecord,
    RetryPolicy,
    SessionManager,
    Timeouts,
    TokenAuth,
)
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import NO_WAIT, PROJECT, TOKEN, until
from tests.raw_server import RawRequest, RawServer, answer, error_body

Make = Callable[..., SessionManager]

SESSION_TEMPLATE = "/v1/workspaces/{workspace_id}/sessions/{session_id}"
WORKSPACE_TEMPLATE = "/v1/{project_id}/workspaces/{workspace_id}"
SESSION_PATH = "/v1/workspaces/ws-1/sessions/sess-9"
RECORD_FIELDS = {
    "operation",
    "api",
    "target",
    "method",
    "url_template",
    "attempt",
    "status",
    "request_id",
    "elapsed",
    "error_type",
}


class Seen:
    """Both hooks in one list, in the order they were called, with what the server had seen.

    ``received`` is how many requests the emulator had received when the hook ran: the
    proof that ``on_request`` comes before its attempt goes out and ``on_response`` after
    it ended.
    """

    def __init__(self, emulator: Emulator | None = None) -> None:
        self.emulator = emulator
        self.events: list[tuple[str, RequestRecord, int]] = []

    def _received(self) -> int:
        return self.emulator.request_count if self.emulator is not None else -1

    def on_request(self, record: RequestRecord) -> None:
        self.events.append(("request", record, self._received()))

    def on_response(self, record: RequestRecord) -> None:
        self.events.append(("response", record, self._received()))

    @property
    def requests(self) -> list[RequestRecord]:
        return [r for kind, r, _ in self.events if kind == "request"]

    @property
    def responses(self) -> list[RequestRecord]:
        return [r for kind, r, _ in self.events if kind == "response"]

    def hooks(self) -> dict[str, Any]:
        return {"on_request": self.on_request, "on_response": self.on_response}


# -- what each attempt is told ---------------------------------------------------------


async def test_each_attempt_is_told_just_before_it_goes_out_and_once_it_was_judged(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(
        Fault(status=503, path=SESSION_PATH, times=1, headers={"X-Request-Id": "req-503"})
    )
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        await manager.close_session("ws-1", "sess-9")
    assert emulator.sessions("ws-1") == frozenset()
    assert [(kind, r.attempt, received) for kind, r, received in seen.events] == [
        ("request", 1, 0),  # before the first request reached the server
        ("response", 1, 1),  # after it was answered
        ("request", 2, 1),
        ("response", 2, 2),
    ]
    for record in seen.requests + seen.responses:
        assert record.operation == "close_session"
        assert record.api == "CloseSqlSession"
        assert record.target == "ws-1/sess-9"
        assert record.method == "DELETE"
        assert record.url_template == SESSION_TEMPLATE
    for record in seen.requests:
        assert (record.status, record.request_id, record.elapsed, record.error_type) == (
            None,
            None,
            None,
            None,
        )
    failed, succeeded = seen.responses
    assert (failed.status, failed.request_id, failed.error_type) == (503, "req-503", "503")
    assert (succeeded.status, succeeded.error_type) == (200, None)
    assert succeeded.request_id is not None
    assert succeeded.request_id != "req-503"
    assert failed.elapsed is not None
    assert succeeded.elapsed is not None
    assert failed.elapsed >= 0
    assert succeeded.elapsed >= 0


async def test_request_id_is_the_answers_and_elapsed_spans_the_attempt(make_manager: Make) -> None:
    async with Emulator(token=TOKEN, latency=0.1) as emu:
        emu.add_workspaces(PROJECT, ["w1"])
        seen = Seen(emu)
        manager = make_manager(endpoints=emu.endpoints(), **seen.hooks())
        async with manager:
            deleted = await manager.delete_workspace("w1")
    (record,) = seen.responses
    assert record.operation == "delete_workspace"
    assert record.api == "DeleteWorkspace"
    assert record.target == "w1"
    assert record.url_template == WORKSPACE_TEMPLATE
    assert record.status == 200
    assert record.request_id is not None
    assert record.request_id == deleted.request_id
    assert record.elapsed is not None
    assert record.elapsed >= 0.09  # the server took 0.1 s to answer: the attempt did too


async def test_an_error_status_names_itself_and_a_throttle_is_told_too(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(status=429, retry_after="0", path=SESSION_PATH, times=1))
    emulator.add_fault(Fault(status=500, path=SESSION_PATH, times=1))
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        await manager.close_session("ws-1", "sess-9")
    assert [(r.attempt, r.status, r.error_type) for r in seen.responses] == [
        (1, 429, "429"),
        (2, 500, "500"),
        (3, 200, None),
    ]
    assert [r.attempt for r in seen.requests] == [1, 2, 3]


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault(kind=FaultKind.STALL, stall_seconds=30, times=1), "APITimeoutError"),
        (Fault(kind=FaultKind.DROP, times=1), "APIConnectionError"),
    ],
    ids=["stalled", "dropped"],
)
async def test_an_attempt_without_an_answer_is_named_by_its_typed_error(
    emulator: Emulator, make_manager: Make, fault: Fault, error_type: str
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(fault)
    seen = Seen(emulator)
    async with make_manager(timeouts=Timeouts(read=0.2), **seen.hooks()) as manager:
        await manager.close_session("ws-1", "sess-9")
    first, second = seen.responses
    assert (first.attempt, first.status, first.request_id, first.error_type) == (
        1,
        None,
        None,
        error_type,
    )
    assert first.elapsed is not None
    if fault.kind is FaultKind.STALL:
        assert first.elapsed >= 0.15  # it lasted until the read timeout
    assert (second.attempt, second.status, second.error_type) == (2, 200, None)


async def test_a_refused_connection_is_an_attempt_told_without_an_answer() -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    seen = Seen()
    async with SessionManager(
        endpoints=asyncdeleter.Endpoints(fabric=url, modelarts=url),
        auth=TokenAuth(TOKEN),
        retry=RetryPolicy(wait=False, max_tries=2),
        **seen.hooks(),
    ) as manager:
        with pytest.raises(asyncdeleter.APIConnectionError) as info:
            await manager.close_session("ws-1", "sess-9")
    assert [kind for kind, _, _ in seen.events] == ["request", "response"] * 2
    assert [(r.attempt, r.status, r.request_id) for r in seen.responses] == [
        (1, None, None),
        (2, None, None),
    ]
    assert {r.error_type for r in seen.responses} == {type(info.value).__name__}


async def test_an_unreadable_answer_is_named_by_its_typed_error(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(kind=FaultKind.GARBAGE, status=200, api="ShowSqlSession"))
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        with pytest.raises(asyncdeleter.MalformedResponseError):
            await manager.show_session("ws-1", "sess-9")
    (record,) = seen.responses
    assert (record.operation, record.status) == ("show_session", 200)
    assert record.error_type == "MalformedResponseError"  # a 200, yet no usable answer


async def test_a_call_that_gives_up_is_told_with_the_error_it_raises(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=503))
    seen = Seen(emulator)
    policy = RetryPolicy(wait=False, max_tries=2)
    async with make_manager(retry=policy, **seen.hooks()) as manager:
        with pytest.raises(asyncdeleter.ServerError) as info:
            await manager.close_session("ws-1", "sess-9")
    assert info.value.attempts == 2
    assert [(r.attempt, r.status, r.error_type) for r in seen.responses] == [
        (1, 503, "503"),
        (2, 503, "503"),
    ]
    assert seen.responses[-1].request_id == info.value.request_id


# -- the 404s that are not failures ----------------------------------------------------


async def test_a_404_that_missing_ok_accepts_is_no_error_and_one_it_does_not_is(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["other"])  # both containers exist: the 404s count
    emulator.add_default_workspace(PROJECT)
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        await manager.close_session("ws-1", "gone", missing_ok=True)
        gone = await manager.delete_workspace("gone", missing_ok=True)
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.close_session("ws-1", "gone")
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_workspace("gone")
    assert gone.already_gone
    # The reads that showed each container exists are requests too (one each: cached).
    checks = [(r.operation, r.status) for r in seen.responses if r.operation.startswith("list_")]
    assert checks == [("list_sessions", 200), ("list_workspaces", 200)]
    assert [
        (r.operation, r.status, r.error_type)
        for r in seen.responses
        if not r.operation.startswith("list_")
    ] == [
        ("close_session", 404, None),
        ("delete_workspace", 404, None),
        ("close_session", 404, "404"),
        ("show_workspace", 404, "404"),
    ]


async def test_a_404_after_an_attempt_that_took_effect_is_success(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9", "other"])
    emulator.add_fault(Fault(status=500, path=SESSION_PATH, times=1, commit=True))
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        await manager.close_session("ws-1", "sess-9")  # no error: the 500 had done it
    assert [(r.status, r.error_type) for r in seen.responses if r.operation == "close_session"] == [
        (500, "500"),
        (404, None),
    ]


async def test_a_confirming_wait_is_told_as_show_workspace_polls_ending_in_an_accepted_404(
    make_manager: Make,
) -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.15) as emu:
        emu.add_workspaces(PROJECT, ["w1"])
        seen = Seen(emu)
        fast_polls = RetryPolicy(wait=False, poll_initial_wait=0.02, poll_max_wait=0.05)
        manager = make_manager(endpoints=emu.endpoints(), retry=fast_polls, **seen.hooks())
        async with manager:
            deleted = await manager.delete_workspace("w1", wait=True)
    assert deleted.confirmed
    first, *polls = seen.responses
    assert (first.operation, first.api, first.method, first.status, first.error_type) == (
        "delete_workspace",
        "DeleteWorkspace",
        "DELETE",
        200,
        None,
    )
    assert len(polls) >= 2  # at least one DELETING, then the 404
    for poll in polls:
        assert (poll.operation, poll.api, poll.method) == ("show_workspace", "ShowWorkspace", "GET")
        assert poll.target == "w1"
        assert poll.url_template == WORKSPACE_TEMPLATE
        assert poll.attempt == 1  # each poll is a call of its own
    assert [p.status for p in polls[:-1]] == [200] * (len(polls) - 1)
    assert (polls[-1].status, polls[-1].error_type) == (404, None)  # the answer asked for
    assert [r.operation for r in seen.requests] == [r.operation for r in seen.responses]


# -- cancellation ---------------------------------------------------------------------


async def test_a_call_cancelled_mid_attempt_is_told_as_cancelled(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=30))
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        task = asyncio.create_task(manager.close_session("ws-1", "sess-9"))
        await until(lambda: emulator.in_flight == 1, within=10)
        assert len(seen.requests) == 1
        assert seen.responses == []  # still in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (record,) = seen.responses
    assert (record.attempt, record.status, record.request_id, record.error_type) == (
        1,
        None,
        None,
        "cancelled",
    )
    assert record.elapsed is not None
    assert record.elapsed >= 0


# -- every kind of call ----------------------------------------------------------------


async def test_bulk_runs_and_listings_are_told_per_attempt(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2", "s3"])
    emulator.add_fault(Fault(status=502, path="/v1/workspaces/ws-1/sessions/s2", times=1))
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        listed = [s.session_id async for s in manager.list_sessions("ws-1")]
        report = await manager.close_sessions([("ws-1", "s1"), ("ws-1", "s2"), ("ws-1", "s3")])
    assert report.succeeded == 3
    assert len(listed) == 3
    listing = [r for r in seen.responses if r.operation == "list_sessions"]
    assert listing
    for record in listing:
        assert record.api == "ListSqlSessions"
        assert record.method == "GET"
        assert record.url_template == "/v1/workspaces/{workspace_id}/sessions"  # no query
        assert record.target == "ws-1"
    closing = sorted(
        (r.target, r.attempt, r.status) for r in seen.responses if r.operation == "close_session"
    )
    assert closing == [
        ("ws-1/s1", 1, 200),
        ("ws-1/s2", 1, 502),
        ("ws-1/s2", 2, 200),
        ("ws-1/s3", 1, 200),
    ]
    assert len(seen.requests) == len(seen.responses) == emulator.request_count


# -- the record itself -----------------------------------------------------------------


async def test_the_record_is_frozen_and_holds_only_its_documented_fields(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    seen = Seen(emulator)
    async with make_manager(**seen.hooks()) as manager:
        await manager.close_session("ws-1", "sess-9")
    for record in seen.requests + seen.responses:
        assert isinstance(record, RequestRecord)
        assert set(attrs.fields_dict(RequestRecord)) == RECORD_FIELDS
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            record.status = 999  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            record.error_type = None  # type: ignore[misc]
    # A hook may keep records: they are plain values, hashable and comparable.
    assert len({*seen.requests, *seen.responses}) == 2


AK = "AKHOOKS0123456789"
SK = "sk-hooks-secret-0123456789abcdef"
SECURITY_TOKEN = "security-token-hooks-secret"


@pytest.fixture
async def signing_emulator() -> AsyncIterator[Emulator]:
    async with Emulator(access_keys={AK: SK}, security_tokens={AK: SECURITY_TOKEN}) as emu:
        yield emu


async def test_no_record_holds_a_header_value_or_a_secret(signing_emulator: Emulator) -> None:
    emu = signing_emulator
    emu.add_sessions("ws-1", ["sess-9"])
    emu.add_workspaces(PROJECT, ["w1"])
    emu.add_fault(Fault(status=503, path=SESSION_PATH, times=1))
    seen = Seen(emu)
    async with SessionManager(
        endpoints=emu.endpoints(),
        project_id=PROJECT,
        auth=AkSkAuth(AK, SK, SECURITY_TOKEN),
        retry=NO_WAIT,
        **seen.hooks(),
    ) as manager:
        await manager.close_session("ws-1", "sess-9")
        await manager.delete_workspace("w1")
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_workspace("w2")
    assert len(seen.responses) == len(emu.requests) == 4
    sent_values = {
        value
        for request in emu.requests
        for name, value in request.headers.items()
        if name.lower() in {"authorization", "x-sdk-date", "x-security-token", "x-project-id"}
    }
    assert sent_values
    forbidden = {SK, SECURITY_TOKEN, *sent_values}
    for record in seen.requests + seen.responses:
        for value in attrs.astuple(record):
            shown = str(value)
            assert not any(secret in shown for secret in forbidden), (record, shown)


def echoing(status: int) -> Callable[[RawRequest, asyncio.StreamWriter], Any]:
    """A gateway that echoes the request's credential headers back in ``X-Request-Id``."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        echoed = [request.headers.get(name, "") for name in ("x-auth-token", "x-security-token")]
        request_id = "req-" + "-".join(echoed)
        body = error_body("E.1", "boom") if status >= 400 else b""
        writer.write(answer(status, body, {"X-Request-Id": request_id}))

    return script


@pytest.mark.parametrize("status", [500, 200])
@pytest.mark.parametrize(
    ("auth", "secret"),
    [(TokenAuth(TOKEN), TOKEN), (AkSkAuth(AK, SK, SECURITY_TOKEN), SECURITY_TOKEN)],
    ids=["token", "security-token"],
)
async def test_an_echoed_credential_in_the_request_id_never_reaches_a_record(
    status: int, auth: TokenAuth | AkSkAuth, secret: str
) -> None:
    """The library cuts an echoed credential out of an error's ``request_id``; the record
    of the same attempt (failed or not) must not hand it to the hook either."""
    seen = Seen()
    async with RawServer(echoing(status)) as server:
        async with SessionManager(
            endpoints=asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url),
            auth=auth,
            retry=RetryPolicy(wait=False, max_tries=1),
            **seen.hooks(),
        ) as manager:
            if status >= 400:
                with pytest.raises(asyncdeleter.InternalServerError) as info:
                    await manager.close_session("ws-1", "sess-9")
                assert info.value.request_id is not None
                assert secret not in info.value.request_id
            else:
                await manager.close_session("ws-1", "sess-9")
        assert secret in server.requests[0].headers.values()  # it was really sent, and echoed
    (record,) = seen.responses
    assert record.status == status
    assert record.request_id is not None
    assert record.request_id.startswith("req-")
    assert secret not in record.request_id


# -- hooks that misbehave, hooks that are not hooks ------------------------------------


async def test_a_hook_that_raises_is_logged_and_the_call_goes_on(
    emulator: Emulator, make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2"])
    emulator.add_workspaces(PROJECT, ["w1"])
    emulator.add_fault(Fault(status=503, path="/v1/workspaces/ws-1/sessions/s1", times=1))
    calls: list[str] = []

    def bad_request_hook(record: RequestRecord) -> None:
        calls.append(f"request {record.attempt}")
        raise RuntimeError("request hook broke")

    def bad_response_hook(record: RequestRecord) -> None:
        calls.append(f"response {record.attempt}")
        raise ValueError("response hook broke")

    caplog.set_level(logging.ERROR, logger="asyncdeleter")
    manager = make_manager(
        on_request=bad_request_hook, on_response=bad_response_hook, max_concurrency=1
    )
    async with manager:
        await manager.close_session("ws-1", "s1")  # retried as if no hook were there
        deleted = await manager.delete_workspace("w1")
        with pytest.raises(asyncdeleter.NotFoundError):  # the call's own error, not the hook's
            await manager.close_session("ws-1", "nope")
        # max_concurrency=1: had a raising hook leaked the slot, this would hang.
        async with asyncio.timeout(10):
            await manager.close_session("ws-1", "s2")
    assert emulator.sessions("ws-1") == frozenset()
    assert emulator.workspaces(PROJECT) == frozenset()
    assert not deleted.already_gone
    assert [r.status for r in emulator.requests] == [503, 200, 200, 404, 200]
    assert calls == [
        "request 1",
        "response 1",
        "request 2",
        "response 2",
        *["request 1", "response 1"] * 3,
    ]
    logged = [r for r in caplog.records if r.name == "asyncdeleter" and r.exc_info]
    assert len(logged) == len(calls)
    kinds = {r.exc_info[1].__class__ for r in logged if r.exc_info is not None}
    assert kinds == {RuntimeError, ValueError}


class CallableHook:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def __call__(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("hook_name", ["on_request", "on_response"])
@pytest.mark.parametrize("value", ["print", 42, [print]], ids=repr)
async def test_a_hook_that_is_not_callable_is_refused_at_construction(
    make_manager: Make, hook_name: str, value: object
) -> None:
    with pytest.raises(asyncdeleter.ConfigurationError, match=hook_name):
        make_manager(**{hook_name: value})


class AsyncCallableHook:
    async def __call__(self, record: RequestRecord) -> None:
        pass


async def async_hook(record: RequestRecord) -> None:
    pass


@pytest.mark.parametrize("hook_name", ["on_request", "on_response"])
@pytest.mark.parametrize(
    "value", [async_hook, AsyncCallableHook()], ids=["async-def", "async-call"]
)
async def test_a_coroutine_function_hook_is_refused_at_construction(
    make_manager: Make, hook_name: str, value: object
) -> None:
    # It would be called inline and its coroutine never awaited: the hook would never run.
    with pytest.raises(asyncdeleter.ConfigurationError, match=hook_name):
        make_manager(**{hook_name: value})


async def test_any_callable_is_a_hook_and_none_is_no_hook(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1"])
    hook = CallableHook()
    async with make_manager(on_request=None, on_response=hook) as manager:
        await manager.close_session("ws-1", "s1")
    assert [(r.operation, r.status) for r in hook.records] == [("close_session", 200)]
