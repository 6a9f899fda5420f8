"""The ``http.client.request.duration`` histogram: one measurement per attempt, and its labels.

The SDK's points are cumulative over the process, so each test reads them before and
after and looks at the difference, for its own emulator's port only.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import asyncdeleter
from asyncdeleter import RetryPolicy, SessionManager, Timeouts
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT

if TYPE_CHECKING:
    from tests.tracing.conftest import Caught

Make = Callable[..., SessionManager]

SESSION_TEMPLATE = "/v1/workspaces/{workspace_id}/sessions/{session_id}"
SESSIONS_TEMPLATE = "/v1/workspaces/{workspace_id}/sessions"
WORKSPACE_TEMPLATE = "/v1/{project_id}/workspaces/{workspace_id}"
FAST_POLLS = RetryPolicy(wait=False, poll_initial_wait=0.02, poll_max_wait=0.05)

#: One point's attributes, as a hashable key.
Key = frozenset[tuple[str, object]]


class Snapshot:
    """The histogram's points for one emulator's port: (count, sum) per attribute set."""

    def __init__(self, otel: Caught, port: int) -> None:
        self.points: dict[Key, tuple[int, float]] = {}
        self.units: set[str] = set()
        data = reader(otel).get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "http.client.request.duration":
                        continue
                    for point in metric.data.data_points:
                        labels = dict(point.attributes or {})
                        if labels.get("server.port") != port:
                            continue
                        assert isinstance(point, HistogramDataPoint)
                        self.units.add(metric.unit or "")
                        self.points[frozenset(labels.items())] = (point.count, point.sum)

    def since(self, before: Snapshot) -> dict[Key, tuple[int, float]]:
        """What was recorded after ``before``: (count, sum) per attribute set, none empty."""
        changed: dict[Key, tuple[int, float]] = {}
        for key, (count, total) in self.points.items():
            old_count, old_total = before.points.get(key, (0, 0.0))
            if count != old_count:
                changed[key] = (count - old_count, total - old_total)
        return changed


def reader(otel: Caught) -> InMemoryMetricReader:
    """The in-memory reader the ``otel`` fixture's meter provider was built with."""
    found = sys.modules[type(otel).__module__]._READER
    assert isinstance(found, InMemoryMetricReader)
    return found


def labels(
    emulator: Emulator,
    method: str,
    template: str,
    status: int | None,
    error_type: str | None = None,
) -> Key:
    """The exact attributes of a measurement: nothing per target, nothing per request."""
    found: dict[str, object] = {
        "http.request.method": method,
        "server.address": "127.0.0.1",
        "server.port": emulator.port,
        "url.template": template,
    }
    if status is not None:
        found["http.response.status_code"] = status
    if error_type is not None:
        found["error.type"] = error_type
    return frozenset(found.items())


def counts(recorded: dict[Key, tuple[int, float]]) -> dict[Key, int]:
    return {key: count for key, (count, _) in recorded.items()}


# -- what is recorded ------------------------------------------------------------------------


async def test_one_measurement_per_attempt_labelled_by_outcome(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    emulator.add_fault(Fault(path="/v1/workspaces/ws-1/sessions/a", status=429, times=1))
    before = Snapshot(otel, emulator.port)
    async with make_manager() as manager:
        await manager.close_session("ws-1", "a")  # a 429, then a 200
        await manager.close_session("ws-1", "b")  # a 200
        await manager.close_session("ws-1", "gone", missing_ok=True)  # an accepted 404
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_session("ws-1", "gone")  # a 404 that is an error
    recorded = Snapshot(otel, emulator.port).since(before)
    assert counts(recorded) == {
        labels(emulator, "DELETE", SESSION_TEMPLATE, 429, "429"): 1,
        labels(emulator, "DELETE", SESSION_TEMPLATE, 200): 2,
        labels(emulator, "DELETE", SESSION_TEMPLATE, 404): 1,
        labels(emulator, "GET", SESSION_TEMPLATE, 404, "404"): 1,
    }
    assert sum(counts(recorded).values()) == len(emulator.requests)


async def test_every_failed_attempt_of_an_exhausted_call_is_measured(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    emulator.add_fault(Fault(status=503))
    before = Snapshot(otel, emulator.port)
    async with make_manager(retry=RetryPolicy(wait=False, max_tries=3)) as manager:
        with pytest.raises(asyncdeleter.ServerError):
            await manager.delete_workspace("wsp-7")
    recorded = Snapshot(otel, emulator.port).since(before)
    assert counts(recorded) == {labels(emulator, "DELETE", WORKSPACE_TEMPLATE, 503, "503"): 3}


async def test_attempts_without_an_answer_are_named_by_error_class_in_seconds(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    emulator.add_fault(
        Fault(path="/v1/workspaces/ws-1/sessions/a", kind=FaultKind.STALL, stall_seconds=30)
    )
    emulator.add_fault(Fault(path="/v1/workspaces/ws-1/sessions/b", kind=FaultKind.DROP))
    before = Snapshot(otel, emulator.port)
    read = 0.15
    async with make_manager(
        retry=RetryPolicy(wait=False, max_tries=2), timeouts=Timeouts(read=read)
    ) as manager:
        with pytest.raises(asyncdeleter.APITimeoutError) as timed_out:
            await manager.show_session("ws-1", "a")
        with pytest.raises(asyncdeleter.APIConnectionError) as dropped:
            await manager.show_session("ws-1", "b")
    after = Snapshot(otel, emulator.port)
    recorded = after.since(before)
    timeouts = labels(emulator, "GET", SESSION_TEMPLATE, None, "APITimeoutError")
    drops = labels(emulator, "GET", SESSION_TEMPLATE, None, "APIConnectionError")
    assert counts(recorded) == {
        timeouts: timed_out.value.attempts,
        drops: dropped.value.attempts,
    }
    assert timed_out.value.attempts == 2
    # In seconds: each timed-out attempt waited at least the read timeout (one-sided),
    # and seconds, not milliseconds (generous: a busy machine).
    count, total = recorded[timeouts]
    assert total >= count * read * 0.9
    assert total < 30.0
    assert after.units == {"s"}


async def test_a_confirming_wait_measures_the_delete_and_each_poll(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.deleting_seconds = 0.3  # long enough to be seen DELETING first
    emulator.add_workspaces(PROJECT, ["wsp-7"])
    before = Snapshot(otel, emulator.port)
    async with make_manager(retry=FAST_POLLS) as manager:
        await manager.delete_workspace("wsp-7", wait=True)
    recorded = Snapshot(otel, emulator.port).since(before)
    polls_deleting = sum(
        1 for r in emulator.requests if r.api == "ShowWorkspace" and r.status == 200
    )
    assert polls_deleting >= 1
    assert counts(recorded) == {
        labels(emulator, "DELETE", WORKSPACE_TEMPLATE, 200): 1,
        labels(emulator, "GET", WORKSPACE_TEMPLATE, 200): polls_deleting,
        # The 404 that confirms the deletion is no failure: no error.type.
        labels(emulator, "GET", WORKSPACE_TEMPLATE, 404): 1,
    }


async def test_each_page_of_a_listing_is_measured(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(5)])
    before = Snapshot(otel, emulator.port)
    async with make_manager() as manager:
        listed = [s async for s in manager.list_sessions("ws-1", page_size=2)]
    assert len(listed) == 5
    recorded = Snapshot(otel, emulator.port).since(before)
    assert counts(recorded) == {
        labels(emulator, "GET", SESSIONS_TEMPLATE, 200): len(emulator.requests),
    }
    assert len(emulator.requests) >= 3


async def test_a_bulk_run_measures_every_attempt_of_every_item(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(6)])
    emulator.add_fault(Fault(status=500, times=2))
    before = Snapshot(otel, emulator.port)
    async with make_manager(max_concurrency=3) as manager:
        report = await manager.close_sessions([("ws-1", f"s{i}") for i in range(8)])
    assert report.succeeded == 6
    assert report.already_gone == 2
    recorded = Snapshot(otel, emulator.port).since(before)
    by_status = Counter(
        {dict(key)["http.response.status_code"]: n for key, n in counts(recorded).items()}
    )
    seen = Counter(r.status for r in emulator.requests)
    assert by_status == seen
    assert counts(recorded)[labels(emulator, "DELETE", SESSION_TEMPLATE, 500, "500")] == 2


# -- with tracing off, and without a sampled span ------------------------------------------


async def test_tracing_off_records_nothing(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a"])
    emulator.add_fault(Fault(status=500, times=1))
    before = Snapshot(otel, emulator.port)
    async with make_manager(tracing=False) as manager:
        await manager.close_session("ws-1", "a")
        await manager.close_session("ws-1", "a", missing_ok=True)
    assert len(emulator.requests) == 3
    assert Snapshot(otel, emulator.port).since(before) == {}


async def test_attempts_are_measured_when_no_span_records(
    otel: Caught, emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a"])
    emulator.add_fault(Fault(status=500, times=1))
    unsampled = NonRecordingSpan(
        SpanContext(
            trace_id=0xABC,
            span_id=0xDEF,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
    before = Snapshot(otel, emulator.port)
    async with make_manager() as manager:
        with trace.use_span(unsampled):
            await manager.close_session("ws-1", "a")
    assert otel.spans() == []  # sampled out: no span at all
    recorded = Snapshot(otel, emulator.port).since(before)
    assert counts(recorded) == {
        labels(emulator, "DELETE", SESSION_TEMPLATE, 500, "500"): 1,
        labels(emulator, "DELETE", SESSION_TEMPLATE, 200): 1,
    }
