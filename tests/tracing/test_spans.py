"""OpenTelemetry spans: one per public call, one per attempt under it, and what they carry.

Every test runs real aiohttp against the emulator on loopback, with the SDK's in-memory
exporter (the ``otel`` fixture), inside an application span of its own so that the
nesting under the caller's span is checked too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import asyncdeleter
from asyncdeleter import AkSkAuth, RequestRecord, RetryPolicy, SessionManager, Timeouts, TokenAuth
from asyncdeleter.testing import Emulator, Fault, FaultKind, RecordedRequest
from tests.conftest import PROJECT

if TYPE_CHECKING:
    from tests.tracing.conftest import Caught

Make = Callable[..., SessionManager]

APP = trace.get_tracer("tests.tracing")

SESSION_TEMPLATE = "/v1/workspaces/{workspace_id}/sessions/{session_id}"
SESSIONS_TEMPLATE = "/v1/workspaces/{workspace_id}/sessions"
WORKSPACE_TEMPLATE = "/v1/{project_id}/workspaces/{workspace_id}"
WORKSPACES_TEMPLATE = "/v1/{project_id}/workspaces"

#: Polls a few tens of milliseconds apart, no backoff waits: a confirming wait in ~0.1 s.
FAST_POLLS = RetryPolicy(wait=False, poll_initial_wait=0.02, poll_max_wait=0.05)

#: What an attempt span may carry, and a public call's span: nothing else.
ATTEMPT_KEYS = {
    "http.request.method",
    "server.address",
    "server.port",
    "url.full",
    "url.template",
    "http.response.status_code",
    "error.type",
    "http.request.resend_count",
    "asyncdeleter.request_id",
}
PUBLIC_KEYS = {
    "asyncdeleter.operation",
    "asyncdeleter.api",
    "asyncdeleter.target",
    "cloud.provider",
    "cloud.region",
    "asyncdeleter.attempts",
    "asyncdeleter.request_id",
    "asyncdeleter.already_gone",
    "error.type",
}


# -- helpers -------------------------------------------------------------------------------


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def children(otel: Caught, parent: ReadableSpan) -> list[ReadableSpan]:
    """The spans whose parent is ``parent``, in the order they started."""
    found = [
        s for s in otel.spans() if s.parent is not None and s.parent.span_id == span_id(parent)
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def only(otel: Caught, name: str) -> ReadableSpan:
    spans = otel.named(name)
    assert len(spans) == 1, [s.name for s in otel.spans()]
    return spans[0]


def app_span(otel: Caught) -> ReadableSpan:
    return only(otel, "request")


def traceparent(request: RecordedRequest) -> str | None:
    for name, value in request.headers.items():
        if name.lower() == "traceparent":
            return value
    return None


def expected_traceparent(span: ReadableSpan) -> str:
    """The W3C header for ``span``'s context: sampled (bit 0), whatever other flags it has."""
    assert span.context is not None
    flags = int(span.context.trace_flags)
    assert flags & 1
    return f"00-{trace_id(span):032x}-{span_id(span):016x}-{flags:02x}"


def assert_ok(span: ReadableSpan) -> None:
    """Not an error: no error.type, status UNSET, no exception event."""
    assert "error.type" not in attrs(span)
    assert span.status.status_code is StatusCode.UNSET
    assert not [e for e in span.events if e.name == "exception"]


def assert_attempt(
    span: ReadableSpan,
    emulator: Emulator,
    *,
    method: str,
    template: str,
    path: str,
    status: int | None,
    error_type: str | None,
    resend_count: int | None,
) -> None:
    """One CLIENT span of one attempt: its name, kind and every attribute."""
    assert span.name == f"{method} {template}"
    assert span.kind is SpanKind.CLIENT
    a = attrs(span)
    assert set(a) <= ATTEMPT_KEYS, set(a) - ATTEMPT_KEYS
    assert a["http.request.method"] == method
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == emulator.port
    assert a["url.full"] == f"{emulator.url}{path}"
    assert a["url.template"] == template
    if status is None:
        assert "http.response.status_code" not in a
    else:
        assert a["http.response.status_code"] == status
    if resend_count is None:
        assert "http.request.resend_count" not in a
    else:
        assert a["http.request.resend_count"] == resend_count
    if error_type is None:
        assert_ok(span)
    else:
        assert a["error.type"] == error_type
        assert span.status.status_code is StatusCode.ERROR


def assert_failed(span: ReadableSpan, exc: BaseException, kind: str) -> None:
    """A public call's span that failed with ``exc``: ERROR, error.type, one event, no trace."""
    assert type(exc).__name__ == kind
    assert attrs(span)["error.type"] == kind
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(exc)[:500]
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    event = dict(events[0].attributes or {})
    assert event["exception.type"] == kind
    assert event["exception.message"] == str(exc)[:500]
    assert "exception.stacktrace" not in event


def request_ids() -> tuple[list[str | None], Callable[[RequestRecord], None]]:
    """An ``on_response`` hook that keeps each attempt's X-Request-Id, in order."""
    seen: list[str | None] = []

    def hook(record: RequestRecord) -> None:
        seen.append(record.request_id)

    return seen, hook


@contextmanager
def in_app_span() -> Iterator[None]:
    with APP.start_as_current_span("request"):
        yield


# -- the two levels ------------------------------------------------------------------------


async def test_a_call_is_one_span_under_the_app_span_and_one_attempt_under_it(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    ids, hook = request_ids()
    async with make_manager(on_response=hook) as manager:
        with in_app_span():
            await manager.close_session("ws-1", "sess-9")

    app = app_span(otel)
    public = only(otel, "DataArtsFabric.CloseSqlSession")
    assert len(otel.spans()) == 3
    assert public.kind is SpanKind.INTERNAL
    assert public.parent is not None
    assert public.parent.span_id == span_id(app)
    assert trace_id(public) == trace_id(app)
    request_id = ids[0]
    assert request_id  # the emulator sends one with every answer
    assert attrs(public) == {
        "asyncdeleter.operation": "close_session",
        "asyncdeleter.api": "CloseSqlSession",
        "asyncdeleter.target": "ws-1/sess-9",
        "cloud.provider": "huawei_cloud",
        "asyncdeleter.attempts": 1,
        "asyncdeleter.request_id": request_id,
        "asyncdeleter.already_gone": False,
    }
    assert_ok(public)

    [attempt] = children(otel, public)
    assert trace_id(attempt) == trace_id(app)
    assert_attempt(
        attempt,
        emulator,
        method="DELETE",
        template=SESSION_TEMPLATE,
        path="/v1/workspaces/ws-1/sessions/sess-9",
        status=200,
        error_type=None,
        resend_count=None,
    )
    assert attrs(attempt)["asyncdeleter.request_id"] == request_id
    assert children(otel, attempt) == []
    # The trace context that went out is the attempt span's.
    [sent] = emulator.requests
    assert traceparent(sent) == expected_traceparent(attempt)


async def test_cloud_region_only_when_the_manager_has_a_region(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    async with make_manager(region="cn-north-4") as with_region, make_manager() as without:
        with in_app_span():
            await with_region.close_session("ws-1", "a")
            await without.close_session("ws-1", "b")
    spans = {
        attrs(s)["asyncdeleter.target"]: s for s in otel.named("DataArtsFabric.CloseSqlSession")
    }
    assert attrs(spans["ws-1/a"])["cloud.region"] == "cn-north-4"
    assert "cloud.region" not in attrs(spans["ws-1/b"])
    for public in spans.values():
        [attempt] = children(otel, public)
        assert "cloud.region" not in attrs(attempt)


Call = Callable[[SessionManager], Awaitable[object]]

#: (public span, operation, api, target, method, template, path, the call)
CALLS: dict[str, tuple[str, str, str, str, str, str, str, Call]] = {
    "close_session": (
        "DataArtsFabric.CloseSqlSession",
        "close_session",
        "CloseSqlSession",
        "ws-1/sess-9",
        "DELETE",
        SESSION_TEMPLATE,
        "/v1/workspaces/ws-1/sessions/sess-9",
        lambda m: m.close_session("ws-1", "sess-9"),
    ),
    "show_session": (
        "DataArtsFabric.ShowSqlSession",
        "show_session",
        "ShowSqlSession",
        "ws-1/sess-9",
        "GET",
        SESSION_TEMPLATE,
        "/v1/workspaces/ws-1/sessions/sess-9",
        lambda m: m.show_session("ws-1", "sess-9"),
    ),
    "delete_workspace": (
        "ModelArts.DeleteWorkspace",
        "delete_workspace",
        "DeleteWorkspace",
        "wsp-7",
        "DELETE",
        WORKSPACE_TEMPLATE,
        f"/v1/{PROJECT}/workspaces/wsp-7",
        lambda m: m.delete_workspace("wsp-7"),
    ),
    "show_workspace": (
        "ModelArts.ShowWorkspace",
        "show_workspace",
        "ShowWorkspace",
        "wsp-7",
        "GET",
        WORKSPACE_TEMPLATE,
        f"/v1/{PROJECT}/workspaces/wsp-7",
        lambda m: m.show_workspace("wsp-7"),
    ),
}


@pytest.mark.parametrize("case", CALLS.values(), ids=CALLS.keys())
async def test_each_public_call_is_named_for_its_service_and_api(
    otel: Caught,
    emulator: Emulator,
    make_manager: Make,
    case: tuple[str, str, str, str, str, str, str, Call],
) -> None:
    name, operation, api, target, method, template, path, call = case
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    async with make_manager() as manager:
        with in_app_span():
            await call(manager)
    public = only(otel, name)
    assert public.parent is not None
    assert public.parent.span_id == span_id(app_span(otel))
    a = attrs(public)
    assert set(a) <= PUBLIC_KEYS
    assert a["asyncdeleter.operation"] == operation
    assert a["asyncdeleter.api"] == api
    assert a["asyncdeleter.target"] == target
    assert a["cloud.provider"] == "huawei_cloud"
    assert a["asyncdeleter.attempts"] == 1
    assert isinstance(a["asyncdeleter.request_id"], str)
    assert a["asyncdeleter.request_id"]
    if method == "DELETE":
        assert a["asyncdeleter.already_gone"] is False
    else:
        assert "asyncdeleter.already_gone" not in a  # only deletions say it
    assert_ok(public)
    [attempt] = children(otel, public)
    assert_attempt(
        attempt,
        emulator,
        method=method,
        template=template,
        path=path,
        status=200,
        error_type=None,
        resend_count=None,
    )
    for span in otel.spans():  # never a raw id in a span's name
        for raw in ("ws-1", "sess-9", "wsp-7", PROJECT):
            assert raw not in span.name


# -- outcomes --------------------------------------------------------------------------------


async def test_a_404_that_missing_ok_accepts_is_no_error_on_either_span(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["other"])  # each 404's container exists, and lists it
    emulator.add_default_workspace(PROJECT)
    async with make_manager() as manager:
        with in_app_span():
            await manager.close_session("ws-1", "gone", missing_ok=True)
            gone = await manager.delete_workspace("wsp-gone", missing_ok=True)
    assert gone.already_gone
    for name, method, template, path, listing in (
        (
            "DataArtsFabric.CloseSqlSession",
            "DELETE",
            SESSION_TEMPLATE,
            "/v1/workspaces/ws-1/sessions/gone",
            "DataArtsFabric.ListSqlSessions",
        ),
        (
            "ModelArts.DeleteWorkspace",
            "DELETE",
            WORKSPACE_TEMPLATE,
            f"/v1/{PROJECT}/workspaces/wsp-gone",
            "ModelArts.ListWorkspace",
        ),
    ):
        public = only(otel, name)
        assert attrs(public)["asyncdeleter.already_gone"] is True
        assert attrs(public)["asyncdeleter.attempts"] == 1  # requests directly under it
        assert_ok(public)
        # The DELETE's attempt, and the read that showed its container exists: a span of
        # its own, under the call's.
        attempt, check = children(otel, public)
        assert check.name == listing
        assert_ok(check)
        assert_attempt(
            attempt,
            emulator,
            method=method,
            template=template,
            path=path,
            status=404,
            error_type=None,
            resend_count=None,
        )


async def test_a_404_without_missing_ok_is_not_found_on_both_spans(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["other"])
    async with make_manager() as manager:
        with in_app_span(), pytest.raises(asyncdeleter.NotFoundError) as info:
            await manager.close_session("ws-1", "gone")
    public = only(otel, "DataArtsFabric.CloseSqlSession")
    assert_failed(public, info.value, "NotFoundError")
    assert attrs(public)["asyncdeleter.attempts"] == 1
    assert "asyncdeleter.already_gone" not in attrs(public)  # set only on success
    attempt, check = children(otel, public)  # the DELETE, then the read of its workspace
    assert check.name == "DataArtsFabric.ListSqlSessions"
    assert_attempt(
        attempt,
        emulator,
        method="DELETE",
        template=SESSION_TEMPLATE,
        path="/v1/workspaces/ws-1/sessions/gone",
        status=404,
        error_type="404",
        resend_count=None,
    )
    assert attempt.status.description == "404"


async def test_a_read_404_is_not_found(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_default_workspace(PROJECT)
    async with make_manager() as manager:
        with in_app_span(), pytest.raises(asyncdeleter.NotFoundError) as info:
            await manager.show_workspace("wsp-gone")
    public = only(otel, "ModelArts.ShowWorkspace")
    assert_failed(public, info.value, "NotFoundError")
    attempt, _check = children(otel, public)
    assert attrs(attempt)["error.type"] == "404"
    assert attempt.status.status_code is StatusCode.ERROR


async def test_a_429_then_success_is_two_attempts_and_no_error(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(status=429, retry_after="0", times=1))
    ids, hook = request_ids()
    async with make_manager(on_response=hook) as manager:
        with in_app_span():
            await manager.close_session("ws-1", "sess-9")
    public = only(otel, "DataArtsFabric.CloseSqlSession")
    assert_ok(public)
    assert attrs(public)["asyncdeleter.attempts"] == 2
    assert attrs(public)["asyncdeleter.request_id"] == ids[1]  # the answer that counted
    first, second = children(otel, public)
    path = "/v1/workspaces/ws-1/sessions/sess-9"
    assert_attempt(
        first,
        emulator,
        method="DELETE",
        template=SESSION_TEMPLATE,
        path=path,
        status=429,
        error_type="429",
        resend_count=None,
    )
    assert_attempt(
        second,
        emulator,
        method="DELETE",
        template=SESSION_TEMPLATE,
        path=path,
        status=200,
        error_type=None,
        resend_count=1,
    )
    assert attrs(first)["asyncdeleter.request_id"] == ids[0]
    assert attrs(second)["asyncdeleter.request_id"] == ids[1]
    # Each request carried its own attempt's span as its trace context.
    assert [r.status for r in emulator.requests] == [429, 200]
    assert [traceparent(r) for r in emulator.requests] == [
        expected_traceparent(first),
        expected_traceparent(second),
    ]


async def test_500s_that_exhaust_the_retries(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    emulator.add_fault(Fault(status=500))
    async with make_manager(retry=RetryPolicy(wait=False, max_tries=3)) as manager:
        with in_app_span(), pytest.raises(asyncdeleter.InternalServerError) as info:
            await manager.delete_workspace("wsp-7")
    public = only(otel, "ModelArts.DeleteWorkspace")
    assert_failed(public, info.value, "InternalServerError")
    assert attrs(public)["asyncdeleter.attempts"] == 3
    attempts = children(otel, public)
    assert len(attempts) == 3
    for index, attempt in enumerate(attempts):
        assert_attempt(
            attempt,
            emulator,
            method="DELETE",
            template=WORKSPACE_TEMPLATE,
            path=f"/v1/{PROJECT}/workspaces/wsp-7",
            status=500,
            error_type="500",
            resend_count=index or None,
        )
    assert [traceparent(r) for r in emulator.requests] == [
        expected_traceparent(a) for a in attempts
    ]


async def test_dropped_connections_name_the_error_class_and_no_status(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(kind=FaultKind.DROP))
    async with make_manager(retry=RetryPolicy(wait=False, max_tries=2)) as manager:
        with in_app_span(), pytest.raises(asyncdeleter.APIConnectionError) as info:
            await manager.show_session("ws-1", "sess-9")
    public = only(otel, "DataArtsFabric.ShowSqlSession")
    assert_failed(public, info.value, "APIConnectionError")
    attempts = children(otel, public)
    assert len(attempts) == info.value.attempts == attrs(public)["asyncdeleter.attempts"]
    assert len(attempts) >= 2
    for index, attempt in enumerate(attempts):
        assert_attempt(
            attempt,
            emulator,
            method="GET",
            template=SESSION_TEMPLATE,
            path="/v1/workspaces/ws-1/sessions/sess-9",
            status=None,
            error_type="APIConnectionError",
            resend_count=index or None,
        )
        assert "asyncdeleter.request_id" not in attrs(attempt)


async def test_a_timeout_names_the_error_class_and_no_status(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=30))
    async with make_manager(
        retry=RetryPolicy(wait=False, max_tries=2), timeouts=Timeouts(read=0.15)
    ) as manager:
        with in_app_span(), pytest.raises(asyncdeleter.APITimeoutError) as info:
            await manager.close_session("ws-1", "sess-9")
    public = only(otel, "DataArtsFabric.CloseSqlSession")
    assert_failed(public, info.value, "APITimeoutError")
    attempts = children(otel, public)
    assert len(attempts) == 2
    for index, attempt in enumerate(attempts):
        assert_attempt(
            attempt,
            emulator,
            method="DELETE",
            template=SESSION_TEMPLATE,
            path="/v1/workspaces/ws-1/sessions/sess-9",
            status=None,
            error_type="APITimeoutError",
            resend_count=index or None,
        )


GATEWAY_404S = {
    "html-page": (b"<html><body><h1>404 Not Found</h1></body></html>", "text/html"),
    "apig-unknown-api": (
        json.dumps({"error_code": "APIG.0101", "error_msg": "The API does not exist"}).encode(),
        "application/json",
    ),
    "empty": (b"", "application/json"),
}


@pytest.mark.parametrize("body", GATEWAY_404S.values(), ids=GATEWAY_404S.keys())
async def test_a_gateway_404_is_an_error_even_with_missing_ok(
    otel: Caught, emulator: Emulator, make_manager: Make, body: tuple[bytes, str]
) -> None:
    content, content_type = body
    emulator.add_sessions("ws-1", ["sess-9"])
    emulator.add_fault(Fault(status=404, body=content, content_type=content_type))
    async with make_manager() as manager:
        with in_app_span(), pytest.raises(asyncdeleter.EndpointNotServedError) as info:
            await manager.close_session("ws-1", "sess-9", missing_ok=True)
    public = only(otel, "DataArtsFabric.CloseSqlSession")
    assert_failed(public, info.value, "EndpointNotServedError")
    [attempt] = children(otel, public)
    assert attrs(attempt)["http.response.status_code"] == 404
    assert attrs(attempt)["error.type"] == "404"
    assert attempt.status.status_code is StatusCode.ERROR


# -- a confirming wait -----------------------------------------------------------------------


async def test_a_confirming_wait_is_one_span_over_the_delete_and_every_poll(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.deleting_seconds = 0.3  # long enough to be seen DELETING first
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    async with make_manager(retry=FAST_POLLS) as manager:
        with in_app_span():
            gone = await manager.delete_workspace("wsp-7", wait=True)
    assert gone.confirmed
    public = only(otel, "ModelArts.DeleteWorkspace")
    assert otel.named("ModelArts.ShowWorkspace") == []  # the polls make no span of their own
    assert public.parent is not None
    assert public.parent.span_id == span_id(app_span(otel))
    assert_ok(public)
    a = attrs(public)
    assert a["asyncdeleter.operation"] == "delete_workspace"
    assert a["asyncdeleter.target"] == "wsp-7"
    assert a["asyncdeleter.already_gone"] is False
    attempts = children(otel, public)
    apis = [r.api for r in emulator.requests]
    # Every request under the span: the DELETE and each poll.
    assert a["asyncdeleter.attempts"] == len(apis) == len(attempts)
    assert apis[0] == "DeleteWorkspace"
    assert apis[1:] == ["ShowWorkspace"] * (len(apis) - 1)
    assert len(apis) >= 3  # DELETING was seen at least once before the 404
    assert len(attempts) == len(emulator.requests)
    path = f"/v1/{PROJECT}/workspaces/wsp-7"
    assert_attempt(
        attempts[0],
        emulator,
        method="DELETE",
        template=WORKSPACE_TEMPLATE,
        path=path,
        status=200,
        error_type=None,
        resend_count=None,
    )
    for poll in attempts[1:-1]:
        assert_attempt(
            poll,
            emulator,
            method="GET",
            template=WORKSPACE_TEMPLATE,
            path=path,
            status=200,
            error_type=None,
            resend_count=None,
        )
    # The 404 that confirms the deletion is the answer asked for, not an error.
    assert_attempt(
        attempts[-1],
        emulator,
        method="GET",
        template=WORKSPACE_TEMPLATE,
        path=path,
        status=404,
        error_type=None,
        resend_count=None,
    )
    assert [traceparent(r) for r in emulator.requests] == [
        expected_traceparent(s) for s in attempts
    ]
    # Nothing else: the app span, the public call's, and its attempts.
    assert len(otel.spans()) == 2 + len(attempts)


async def test_delete_failed_during_a_wait_fails_the_one_span(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.deleting_seconds = 0.05
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    emulator.fail_deletion("wsp-7", reason="bound to a pool")
    async with make_manager(retry=FAST_POLLS) as manager:
        with in_app_span(), pytest.raises(asyncdeleter.DeletionFailedError) as info:
            await manager.delete_workspace("wsp-7", wait=True)
    public = only(otel, "ModelArts.DeleteWorkspace")
    assert otel.named("ModelArts.ShowWorkspace") == []
    assert_failed(public, info.value, "DeletionFailedError")
    assert "bound to a pool" in (public.status.description or "")
    attempts = children(otel, public)
    assert len(attempts) == len(emulator.requests) >= 2
    assert [attrs(s)["http.request.method"] for s in attempts] == ["DELETE"] + ["GET"] * (
        len(attempts) - 1
    )
    for attempt in attempts:  # every answer was a 200: the failure is the service's verdict
        assert attrs(attempt)["http.response.status_code"] == 200
        assert_ok(attempt)


async def test_a_wait_with_missing_ok_on_a_missing_workspace_polls_nothing(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_default_workspace(PROJECT)
    async with make_manager(retry=FAST_POLLS) as manager:
        with in_app_span():
            await manager.delete_workspace("wsp-gone", missing_ok=True, wait=True)
    public = only(otel, "ModelArts.DeleteWorkspace")
    assert_ok(public)
    assert attrs(public)["asyncdeleter.already_gone"] is True
    attempt, check = children(otel, public)  # no poll: only the read of the project
    assert check.name == "ModelArts.ListWorkspace"
    assert attrs(attempt)["http.response.status_code"] == 404
    assert_ok(attempt)


# -- listings and bulk runs ------------------------------------------------------------------


async def test_a_session_listing_is_one_span_per_page(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(5)])
    async with make_manager() as manager:
        with in_app_span():
            listed = [s.session_id async for s in manager.list_sessions("ws-1", page_size=2)]
    assert sorted(listed) == [f"s{i}" for i in range(5)]
    pages = sorted(otel.named("DataArtsFabric.ListSqlSessions"), key=lambda s: s.start_time or 0)
    assert len(pages) == len(emulator.requests) >= 3
    app = app_span(otel)
    for page, sent in zip(pages, emulator.requests, strict=True):
        assert page.parent is not None
        assert page.parent.span_id == span_id(app)
        a = attrs(page)
        assert a["asyncdeleter.operation"] == "list_sessions"
        assert a["asyncdeleter.api"] == "ListSqlSessions"
        assert a["asyncdeleter.target"] == "ws-1"
        assert "asyncdeleter.already_gone" not in a
        assert_ok(page)
        [attempt] = children(otel, page)
        assert_attempt(
            attempt,
            emulator,
            method="GET",
            template=SESSIONS_TEMPLATE,
            path=f"{sent.path}?{sent.query}",
            status=200,
            error_type=None,
            resend_count=None,
        )
        assert traceparent(sent) == expected_traceparent(attempt)


async def test_a_workspace_listing_is_one_span_per_page(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(5)])
    async with make_manager() as manager:
        with in_app_span():
            listed = [w.workspace_id async for w in manager.list_workspaces(page_size=2)]
    assert sorted(listed) == [f"w{i}" for i in range(5)]
    pages = otel.named("ModelArts.ListWorkspace")
    assert len(pages) == len(emulator.requests) >= 3
    for page in pages:
        assert attrs(page)["asyncdeleter.operation"] == "list_workspaces"
        assert attrs(page)["asyncdeleter.target"] == PROJECT
        [attempt] = children(otel, page)
        assert attempt.name == f"GET {WORKSPACES_TEMPLATE}"
        assert attrs(attempt)["url.template"] == WORKSPACES_TEMPLATE


async def test_a_bulk_run_is_one_span_per_item_under_the_span_it_runs_in(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b", "c"])
    async with make_manager(max_concurrency=2) as manager:
        run = manager.close_sessions(
            [("ws-1", "a"), ("ws-1", "b"), ("ws-1", "c"), ("ws-1", "d")], missing_ok=False
        )  # made outside any span: what counts is where it runs
        with in_app_span():
            report = await run
    assert report.succeeded == 3
    assert report.failed == 1
    app = app_span(otel)
    items = otel.named("DataArtsFabric.CloseSqlSession")
    by_target = {attrs(s)["asyncdeleter.target"]: s for s in items}
    assert sorted(by_target) == ["ws-1/a", "ws-1/b", "ws-1/c", "ws-1/d"]
    assert len(items) == 4
    for target, item in by_target.items():
        assert item.parent is not None
        assert item.parent.span_id == span_id(app)
        assert trace_id(item) == trace_id(app)
        assert attrs(item)["asyncdeleter.operation"] == "close_session"
        [attempt] = children(otel, item)
        workspace, session = target.split("/")
        assert attrs(attempt)["url.full"].endswith(f"/v1/workspaces/{workspace}/sessions/{session}")
        if target == "ws-1/d":
            assert attrs(item)["error.type"] == "NotFoundError"
            assert item.status.status_code is StatusCode.ERROR
            assert attrs(attempt)["error.type"] == "404"
        else:
            assert_ok(item)
            assert_ok(attempt)


async def test_an_iterated_bulk_run_nests_under_the_span_it_is_iterated_in(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.deleting_seconds = 0.05
    emulator.add_workspaces(PROJECT, ["w1", "w2"])
    async with make_manager(retry=FAST_POLLS) as manager:
        with APP.start_as_current_span("made-here"):
            run = manager.delete_workspaces(["w1", "w2"], wait=True)
        with in_app_span():
            outcomes = [o async for o in run]
    assert [o.kind for o in outcomes] == [asyncdeleter.OutcomeKind.SUCCEEDED] * 2
    app = app_span(otel)
    items = otel.named("ModelArts.DeleteWorkspace")
    assert len(items) == 2
    assert otel.named("ModelArts.ShowWorkspace") == []
    for item in items:
        assert item.parent is not None
        assert item.parent.span_id == span_id(app)
        assert_ok(item)
        attempts = children(otel, item)
        assert [attrs(s)["http.request.method"] for s in attempts] == ["DELETE"] + ["GET"] * (
            len(attempts) - 1
        )
        assert attrs(attempts[-1])["http.response.status_code"] == 404
        assert_ok(attempts[-1])
    # Every request the emulator saw is one of those attempts, in its own span's context.
    sent = {traceparent(r) for r in emulator.requests}
    made = {expected_traceparent(s) for i in items for s in children(otel, i)}
    assert sent == made
    assert len(made) == len(emulator.requests)


# -- secrets ---------------------------------------------------------------------------------

SECRET_TOKEN = "tok-SECRET-0123456789"
AK = "AK-PUBLIC-0001"
SK = "SK-SECRET-abcdefghijklmnop"
SECURITY_TOKEN = "STS-SECRET-zyxwvutsrqponm"


def every_string(spans: Sequence[ReadableSpan]) -> list[str]:
    """Each name, attribute value, event name and attribute, and status description."""
    texts: list[str] = []

    def add(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, Sequence):
            for item in value:
                add(item)
        else:
            texts.append(str(value))

    for span in spans:
        texts.append(span.name)
        texts.append(span.status.description or "")
        for key, value in (span.attributes or {}).items():
            texts.append(key)
            add(value)
        for event in span.events:
            texts.append(event.name)
            for key, value in (event.attributes or {}).items():
                texts.append(key)
                add(value)
        for link in span.links:
            for value in (link.attributes or {}).values():
                add(value)
    return texts


def echoing(*secrets: str) -> list[Fault]:
    """Faults whose answers echo ``secrets`` in their bodies' text, one API each, once each."""
    echoed = " ".join(secrets)
    body = json.dumps(
        {"error_code": "APIG.1002", "error_msg": f"bad header X-Auth-Token: {echoed}"}
    ).encode()
    return [
        # a refusal that is not retried
        Fault(api="CloseSqlSession", status=400, body=body, times=1),
        # a retried failure, then success
        Fault(api="ShowSqlSession", status=500, body=body, times=1),
        # a page that is not JSON, every time
        Fault(
            api="ShowWorkspace",
            status=502,
            body=f"<html>{echoed}</html>".encode(),
            content_type="text/html",
        ),
    ]


async def exercise_failures(manager: SessionManager) -> None:
    with in_app_span():
        with pytest.raises(asyncdeleter.BadRequestError):
            await manager.close_session("ws-1", "sess-9")
        await manager.show_session("ws-1", "sess-9")
        with pytest.raises(asyncdeleter.ServerError):
            await manager.show_workspace("wsp-7")
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_session("ws-1", "nope")
        await manager.delete_workspace("wsp-7")


def assert_no_secret(otel: Caught, secrets: Sequence[str]) -> None:
    spans = otel.spans()
    texts = every_string(spans)
    assert len(spans) > 8  # the calls above really were traced
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert leaks == [], f"{secret!r} is in {leaks}"


def token_manager(emu: Emulator) -> SessionManager:
    return SessionManager(
        endpoints=emu.endpoints(),
        project_id=PROJECT,
        auth=TokenAuth(SECRET_TOKEN),
        retry=RetryPolicy(wait=False, max_tries=2),
    )


async def test_no_span_holds_the_token_even_when_the_server_echoes_it(otel: Caught) -> None:
    async with Emulator(token=SECRET_TOKEN, faults=echoing(SECRET_TOKEN)) as emu:
        emu.add_sessions("ws-1", ["sess-9"])
        emu.add_workspaces(PROJECT, ["wsp-7"])
        async with token_manager(emu) as manager:
            await exercise_failures(manager)
    # The failing spans are there, and their messages were kept (redacted).
    failed = [s for s in otel.spans() if s.status.status_code is StatusCode.ERROR]
    assert any("[redacted]" in (s.status.description or "") for s in failed)
    assert_no_secret(otel, [SECRET_TOKEN])


async def test_no_span_holds_the_secret_key_or_security_token(otel: Caught) -> None:
    async with Emulator(
        access_keys={AK: SK},
        security_tokens={AK: SECURITY_TOKEN},
        faults=echoing(SK, SECURITY_TOKEN),
    ) as emu:
        emu.add_sessions("ws-1", ["sess-9"])
        emu.add_workspaces(PROJECT, ["wsp-7"])
        manager = SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=AkSkAuth(AK, SK, SECURITY_TOKEN),
            retry=RetryPolicy(wait=False, max_tries=2),
        )
        async with manager:
            await exercise_failures(manager)
        # Signed requests passed the gateway: these spans are of real answers.
        assert 200 in emu.status_counts
        assert 401 not in emu.status_counts
    assert_no_secret(otel, [SK, SECURITY_TOKEN])


async def test_no_span_holds_a_token_echoed_in_the_error_code(otel: Caught) -> None:
    """The error body's ``error_code`` is server text too: redacted in the span's status."""
    body = json.dumps({"error_code": f"APIG.1002 {SECRET_TOKEN}", "error_msg": "bad"}).encode()
    async with Emulator(token=SECRET_TOKEN, faults=[Fault(status=400, body=body)]) as emu:
        emu.add_sessions("ws-1", ["sess-9"])
        async with token_manager(emu) as manager:
            with in_app_span(), pytest.raises(asyncdeleter.BadRequestError) as info:
                await manager.close_session("ws-1", "sess-9")
    assert SECRET_TOKEN not in str(info.value.error_code)  # the attribute is redacted
    assert len(otel.spans()) == 3
    leaks = [t for t in every_string(otel.spans()) if SECRET_TOKEN in t]
    assert leaks == []


@pytest.mark.parametrize("status", [400, 200])
async def test_no_span_holds_a_token_echoed_in_the_request_id(otel: Caught, status: int) -> None:
    """A gateway that puts the token into X-Request-Id must not get it into a span.

    The typed error redacts its ``request_id``; the spans must not keep the raw header,
    on a refusal or on a success.
    """
    async with Emulator(
        token=SECRET_TOKEN,
        faults=[Fault(status=status, headers={"X-Request-Id": f"req-{SECRET_TOKEN}"})],
    ) as emu:
        emu.add_sessions("ws-1", ["sess-9"])
        async with token_manager(emu) as manager:
            with in_app_span():
                if status == 400:
                    with pytest.raises(asyncdeleter.BadRequestError) as info:
                        await manager.close_session("ws-1", "sess-9")
                    assert SECRET_TOKEN not in str(info.value.request_id)  # the error is clean
                else:
                    await manager.close_session("ws-1", "sess-9")
    assert len(otel.spans()) == 3
    leaks = [t for t in every_string(otel.spans()) if SECRET_TOKEN in t]
    assert leaks == []


# -- off -------------------------------------------------------------------------------------


async def test_tracing_off_emits_no_span_and_sends_no_trace_context(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9", "s2"])
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    emulator.add_fault(Fault(status=429, retry_after="0", times=1))
    async with make_manager(tracing=False, retry=FAST_POLLS) as manager:
        with in_app_span():
            await manager.close_session("ws-1", "sess-9")
            await manager.show_session("ws-1", "s2")
            await manager.delete_workspace("wsp-7", wait=True)
            [s async for s in manager.list_sessions("ws-1")]
            await manager.close_sessions([("ws-1", "s2")])
    assert [s.name for s in otel.spans()] == ["request"]
    assert len(emulator.requests) >= 6
    assert all(traceparent(r) is None for r in emulator.requests)


async def test_without_a_recording_parent_no_attempt_span_is_made(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["sess-9"])
    unsampled = NonRecordingSpan(
        SpanContext(
            trace_id=0x1234,
            span_id=0x5678,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
    emulator.add_fault(Fault(status=500, times=1))
    async with make_manager() as manager:
        with trace.use_span(unsampled):
            await manager.close_session("ws-1", "sess-9")
    assert otel.spans() == []
    assert len(emulator.requests) == 2  # the calls were made, retry and all
