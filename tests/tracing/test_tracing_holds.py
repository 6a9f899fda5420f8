"""Tracing never changes what a call does, and every span it starts ends.

The cases an outside review found: a hook that raises past ``Exception``, a span processor
that raises, a call made from a task spawned during another call, an OpenTelemetry API too
old for the histogram's bucket advice, a hook that returns a coroutine, and a server's
hostile request id on a span.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import asyncdeleter
from asyncdeleter import RequestRecord, RetryPolicy, SessionManager
from asyncdeleter.testing import Emulator
from tests.conftest import PROJECT
from tests.raw_server import RawRequest, RawServer, answer

if TYPE_CHECKING:
    from tests.tracing.conftest import Caught

Make = Callable[..., SessionManager]
APP = trace.get_tracer("tests.tracing")


class HookError(BaseException):
    """Not an ``Exception``: a hook's error that the request path does not swallow."""


async def test_a_hook_raising_past_exception_leaves_no_span_open(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1"])

    def refuse(record: RequestRecord) -> None:
        raise HookError

    async with make_manager(on_request=refuse) as manager:
        with APP.start_as_current_span("request") as app:
            with pytest.raises(HookError):
                await manager.close_session("ws-1", "s1")
            assert trace.get_current_span() is app
    assert otel.open_spans() == []
    # The hook ran before any span of the attempt started: none was made, none leaked.
    assert [s.name for s in otel.spans()] == ["DataArtsFabric.CloseSqlSession", "request"]
    assert emulator.requests == []  # and nothing was sent


@pytest.mark.parametrize("where", ["start", "end"])
async def test_a_broken_span_processor_never_changes_what_a_call_does(
    otel: Caught,
    emulator: Emulator,
    make_manager: Make,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2", "s3"])
    otel.break_processor(where)
    with caplog.at_level(logging.DEBUG, logger="asyncdeleter"):
        async with make_manager() as manager:
            await manager.close_session("ws-1", "s1")
            report = await manager.close_sessions([("ws-1", "s2"), ("ws-1", "s3")])
    otel.break_processor(None)
    assert report.succeeded == 2
    assert report.failed == 0
    assert emulator.sessions("ws-1") == frozenset()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said once, then quietly
    assert "OpenTelemetry failed" in warnings[0].getMessage()
    if where == "end":
        # (A processor failing in on_start fails inside the SDK's start_span, before the
        # span is handed to anyone who could end it.)
        assert otel.open_spans() == []


async def test_a_call_from_a_task_spawned_during_another_call_has_spans_of_its_own(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["w1", "w2"])
    spawned: list[asyncio.Task[Any]] = []
    manager_box: list[SessionManager] = []

    def show_the_other(record: RequestRecord) -> None:
        if record.api == "DeleteWorkspace":
            # A task started inside the deletion's call inherits its context.
            spawned.append(asyncio.ensure_future(manager_box[0].show_workspace("w2")))

    async with make_manager(on_response=show_the_other) as manager:
        manager_box.append(manager)
        with APP.start_as_current_span("request"):
            await manager.delete_workspace("w1")
        await asyncio.gather(*spawned)
    show = otel.named("ModelArts.ShowWorkspace")
    assert len(show) == 1
    gets = otel.named("GET /v1/{project_id}/workspaces/{workspace_id}")
    assert len(gets) == 1
    assert gets[0].parent is not None
    assert show[0].context is not None
    assert gets[0].parent.span_id == show[0].context.span_id
    assert otel.open_spans() == []


async def test_an_api_without_bucket_advice_still_measures(
    otel: Caught,
    emulator: Emulator,
    make_manager: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An opentelemetry-api before 1.23 has no ``explicit_bucket_boundaries_advisory``."""
    from asyncdeleter import _otel

    recorded: list[tuple[float, dict[str, Any]]] = []

    class OldHistogram:
        def record(self, amount: float, attributes: dict[str, Any] | None = None) -> None:
            recorded.append((amount, dict(attributes or {})))

    class OldMeter:
        def create_histogram(
            self, name: str, unit: str = "", description: str = ""
        ) -> OldHistogram:
            assert name == "http.client.request.duration"
            assert unit == "s"
            return OldHistogram()

    monkeypatch.setattr(_otel, "_duration", None)
    monkeypatch.setattr(metrics, "get_meter", lambda *args, **kwargs: OldMeter())
    emulator.add_sessions("ws-1", ["s1"])
    async with make_manager() as manager:
        await manager.close_session("ws-1", "s1")
    assert [attributes["http.response.status_code"] for _, attributes in recorded] == [200]


async def test_opentelemetry_that_cannot_be_set_up_turns_tracing_off_not_the_manager(
    otel: Caught,
    emulator: Emulator,
    make_manager: Make,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asyncdeleter import _otel

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a broken OpenTelemetry install")

    monkeypatch.setattr(_otel, "_duration", None)
    monkeypatch.setattr(metrics, "get_meter", broken)
    emulator.add_sessions("ws-1", ["s1"])
    with caplog.at_level(logging.WARNING, logger="asyncdeleter"):
        manager = make_manager()
    assert any("could not be set up" in r.getMessage() for r in caplog.records)
    async with manager:
        await manager.close_session("ws-1", "s1")
    assert emulator.sessions("ws-1") == frozenset()
    assert otel.spans() == []  # tracing is off for this manager


async def test_a_hook_returning_a_coroutine_is_reported_and_the_coroutine_closed(
    emulator: Emulator, make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[RequestRecord] = []

    async def later(record: RequestRecord) -> None:
        ran.append(record)

    emulator.add_sessions("ws-1", ["s1"])
    with caplog.at_level(logging.ERROR, logger="asyncdeleter"):
        # A lambda hides the coroutine function from the check made when building.
        async with make_manager(on_response=lambda record: later(record)) as manager:  # noqa: PLW0108
            await manager.close_session("ws-1", "s1")
    assert emulator.sessions("ws-1") == frozenset()
    assert ran == []  # never run, and closed: no "never awaited" warning (warnings are errors)
    assert any("returned an awaitable" in r.getMessage() for r in caplog.records)


async def test_a_hostile_request_id_is_escaped_and_capped_on_spans(otel: Caught) -> None:
    hostile = "req-\x1b[31mred\x07" + "r" * 8000

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(200, b"{}", {"X-Request-Id": hostile}))

    async with RawServer(script) as server:
        endpoints = asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url)
        async with SessionManager(endpoints=endpoints, retry=RetryPolicy(wait=False)) as manager:
            await manager.close_session("ws-1", "s1")
    kept = [
        value
        for span in otel.spans()
        for key, value in (span.attributes or {}).items()
        if key == "asyncdeleter.request_id"
    ]
    assert len(kept) == 2  # the call's span and the attempt's
    for value in kept:
        assert isinstance(value, str)
        assert value.startswith("req-")
        assert "\x1b" not in value
        assert "\x07" not in value
        assert len(value) < 200


async def test_an_unsampled_trace_is_still_told_to_the_service(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    """The caller's trace is sampled out: no span of ours, but the request carries the
    trace, flagged unsampled, so the service does not start a trace of its own."""
    upstream = SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(0)
    )
    emulator.add_sessions("ws-1", ["s1"])
    async with make_manager() as manager:
        with trace.use_span(NonRecordingSpan(upstream)):
            await manager.close_session("ws-1", "s1")
    assert otel.spans() == []
    (request,) = emulator.requests
    sent = {name.lower(): value for name, value in request.headers.items()}["traceparent"]
    version, trace_id, _, flags = sent.split("-")
    assert (version, int(trace_id, 16), flags) == ("00", 0x1234, "00")
