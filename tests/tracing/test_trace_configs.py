"""``trace_configs=``: the user's ``aiohttp.TraceConfig``s reach the manager's own session.

Plain callbacks fire for every request (retries included), and OpenTelemetry's aiohttp
client instrumentation, which adds ``traceparent`` after the request was signed, leaves
AK/SK signatures valid.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.trace import SpanKind

import asyncdeleter
from asyncdeleter import AkSkAuth, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter.testing import Emulator, Fault, FaultKind

if TYPE_CHECKING:
    from tests.tracing.conftest import Caught

TOKEN = "trace-token-0123456789"
PROJECT = "proj-1"
AK = "AKTRACE0123456789"
SK = "sk-trace-secret-0123456789abcdef"
NO_WAIT = RetryPolicy(wait=False)
SESSION_PATH = "/v1/workspaces/ws-1/sessions/s1"


class Callbacks:
    """A ``TraceConfig`` that notes which of its callbacks fired, for which request."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_end.append(self._end)
        self.config.on_request_exception.append(self._exception)

    async def _start(
        self,
        _: aiohttp.ClientSession,
        __: types.SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.events.append(("start", params.method, params.url.path))

    async def _end(
        self,
        _: aiohttp.ClientSession,
        __: types.SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        self.events.append((f"end {params.response.status}", params.method, params.url.path))

    async def _exception(
        self,
        _: aiohttp.ClientSession,
        __: types.SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        self.events.append(("exception", params.method, params.url.path))


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as emu:
        yield emu


def manager_for(emu: Emulator, **options: Any) -> SessionManager:
    settings: dict[str, Any] = {
        "endpoints": emu.endpoints(),
        "project_id": PROJECT,
        "auth": TokenAuth(TOKEN),
        "retry": NO_WAIT,
    }
    settings.update(options)
    return SessionManager(**settings)


async def test_trace_config_callbacks_fire_for_every_request(emulator: Emulator) -> None:
    emulator.add_sessions("ws-1", ["s1"])
    emulator.add_workspaces(PROJECT, ["w1"])
    emulator.add_fault(Fault(status=503, path=SESSION_PATH, times=1))
    emulator.add_fault(Fault(kind=FaultKind.DROP, api="ShowWorkspace", times=1))
    first, second = Callbacks(), Callbacks()
    async with manager_for(emulator, trace_configs=[first.config, second.config]) as manager:
        await manager.close_session("ws-1", "s1")
        await manager.delete_workspace("w1")
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_workspace("w1")
    workspace = f"/v1/{PROJECT}/workspaces/w1"
    expected = [
        ("start", "DELETE", SESSION_PATH),
        ("end 503", "DELETE", SESSION_PATH),
        ("start", "DELETE", SESSION_PATH),  # the retry goes through them too
        ("end 200", "DELETE", SESSION_PATH),
        ("start", "DELETE", workspace),
        ("end 200", "DELETE", workspace),
        ("start", "GET", workspace),
        ("exception", "GET", workspace),  # the dropped connection
        ("start", "GET", workspace),
        ("end 404", "GET", workspace),
    ]
    assert first.events == expected
    assert second.events == expected
    assert emulator.request_count == 5


async def test_trace_configs_given_as_a_generator_are_used(emulator: Emulator) -> None:
    emulator.add_sessions("ws-1", ["s1"])
    callbacks = Callbacks()
    manager = manager_for(emulator, trace_configs=(c for c in [callbacks.config]))
    async with manager:
        await manager.close_session("ws-1", "s1")
    assert [kind for kind, _, _ in callbacks.events] == ["start", "end 200"]


async def test_trace_configs_with_a_session_of_your_own_are_refused(emulator: Emulator) -> None:
    emulator.add_sessions("ws-1", ["s1"])
    callbacks = Callbacks()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncdeleter.ConfigurationError, match="trace_configs"):
            manager_for(emulator, session=session, trace_configs=[callbacks.config])
        # Without them, the same session is fine.
        async with manager_for(emulator, session=session) as manager:
            await manager.close_session("ws-1", "s1", missing_ok=True)
        assert not session.closed
    assert callbacks.events == []


def traceparent_ids(value: str) -> tuple[int, int]:
    version, trace_id, span_id, flags = value.split("-")
    assert (version, len(trace_id), len(span_id), len(flags)) == ("00", 32, 16, 2)
    return int(trace_id, 16), int(span_id, 16)


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing-on", "tracing-off"])
async def test_otel_aiohttp_instrumentation_keeps_ak_sk_signatures_valid(
    otel: Caught, tracing: bool
) -> None:
    async with Emulator(access_keys={AK: SK}) as emu:
        emu.add_sessions("ws-1", ["s1", "s2"])
        emu.add_workspaces(PROJECT, ["w1"])
        emu.add_fault(Fault(status=503, path=SESSION_PATH, times=1))
        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=AkSkAuth(AK, SK),
            retry=NO_WAIT,
            trace_configs=[create_trace_config()],
            tracing=tracing,
        ) as manager:
            await manager.close_session("ws-1", "s1")  # a 503, then a freshly signed retry
            await manager.delete_workspace("w1")
            report = await manager.close_sessions([("ws-1", "s2")])
            shown = [w async for w in manager.list_workspaces()]
        # Every request was accepted: the signature held with the header added after it.
        assert [r.status for r in emu.requests] == [503, 200, 200, 200, 200]
        assert report.succeeded == 1
        assert shown == []
        assert emu.sessions("ws-1") == frozenset()
        assert emu.workspaces(PROJECT) == frozenset()
        requests = list(emu.requests)
    instrumented = {
        (span.context.trace_id, span.context.span_id): span
        for span in otel.spans()
        if span.kind is SpanKind.CLIENT
        and span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry.instrumentation.aiohttp_client"
    }
    assert len(instrumented) == len(requests)
    for request in requests:
        assert request.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
        assert "traceparent" not in request.headers["Authorization"]
        # The trace context that went out is the instrumentation's own span for it.
        assert traceparent_ids(request.headers["traceparent"]) in instrumented
    if tracing:
        # With our own spans on, the instrumentation's span of each attempt sits under the
        # attempt's CLIENT span, in the call's trace.
        ours = {
            span.context.span_id
            for span in otel.spans()
            if span.kind is SpanKind.CLIENT
            and span.instrumentation_scope is not None
            and span.instrumentation_scope.name == "asyncdeleter"
        }
        assert len(ours) == len(requests)
        assert {span.parent.span_id for span in instrumented.values() if span.parent} == ours
