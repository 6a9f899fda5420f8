"""When things are already going wrong: outages, hostile answers, races, deadlines, cancels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryDetails, RetryPolicy, SessionManager, Timeouts
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import our_tasks

Make = Callable[..., SessionManager]


def checked_out(manager: SessionManager) -> int:
    """Connections the manager's pool has handed out and not got back (test-only peek)."""
    session = manager._transport.session
    if session is None or session.connector is None:
        return 0
    return sum(len(c) for c in session.connector._acquired_per_host.values())


# -- retry budget ----------------------------------------------------------------------


async def test_a_full_outage_costs_about_n_requests_not_max_tries_times_n(
    emulator: Emulator, make_manager: Make
) -> None:
    n = 300
    emulator.add_fault(Fault(status=503))
    policy = RetryPolicy(wait=False, max_tries=10)  # without a budget: up to 3,000 requests
    async with make_manager(retry=policy) as manager:
        report = await manager.close_sessions([("ws-1", f"s{i}") for i in range(n)])
    assert report.failed == n
    assert emulator.request_count <= n + 500 // 5 + 1  # first attempts + what the budget buys
    exhausted = [o for o in report.failures if getattr(o.error, "retry_budget_exhausted", False)]
    assert len(exhausted) > n * 0.6
    assert all(o.safe_to_retry for o in report.failures)
    assert "retry budget exhausted" in str(exhausted[0].error)


async def test_successes_refill_the_budget(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(300)] + ["x", "y"])
    policy = RetryPolicy(wait=False, max_tries=3, retry_budget=50)
    async with make_manager(retry=policy, max_concurrency=4) as manager:
        emulator.add_fault(Fault(status=503))  # an outage...
        outage = await manager.close_sessions([("ws-1", f"s{i}") for i in range(100)])
        emulator.clear_faults()
        emulator.add_fault(Fault(status=503, times=1))
        with pytest.raises(asyncdeleter.ServerError) as info:
            await manager.close_session("ws-1", "x")  # the budget is spent: no retry
        assert info.value.retry_budget_exhausted
        assert info.value.attempts == 1
        recovery = await manager.close_sessions([("ws-1", f"s{i}") for i in range(100, 300)])
        emulator.add_fault(Fault(status=503, times=1))
        await manager.close_session("ws-1", "y")  # refilled: retried, and it worked
        again = await manager.close_sessions([o.target for o in outage.failures])
    assert outage.failed == 100
    assert recovery.failed == 0
    assert again.failed == 0  # safe to re-run, and it was
    assert emulator.sessions("ws-1") == {"x"}


# -- hostile responses -----------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.just(b"\xff\xfe\xfa invalid utf-8 \xc3\x28"),
    st.just(b"[" * 50_000 + b"]" * 50_000),
    st.just(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    st.just(b'{"error_code": 12.5, "error_msg": ["x"], "error": "not an object"}'),
    st.just(b'{"error_msg": "' + b"y" * 300_000 + b'"}'),
    JSONISH.map(lambda v: json.dumps(v).encode()),
)
STATUSES = st.integers(200, 599).filter(lambda s: s not in (204, 304))
HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Retry-After", "X-Request-Id", "X-Other"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    max_size=3,
)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[Emulator]:
    emulator = Emulator()
    with emulator.running_in_thread():
        yield emulator


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(status=STATUSES, body=BODIES, headers=HEADERS)
def test_any_answer_gives_a_typed_result_or_a_typed_error(
    hostile_server: Emulator, status: int, body: bytes, headers: dict[str, str]
) -> None:
    hostile_server.clear_faults()
    hostile_server.add_fault(Fault(status=status, body=body, headers=headers))

    async def call() -> asyncdeleter.APIError | None:
        # A 429 is retried until max_time (it is pushback, not failure): keep that short.
        policy = RetryPolicy(max_tries=2, wait=False, max_time=0.5)
        async with SessionManager(endpoints=hostile_server.endpoints(), retry=policy) as manager:
            try:
                await manager.close_session("ws-1", "s")
            except asyncdeleter.APIError as exc:  # anything else escapes and fails the test
                return exc
        return None

    error = asyncio.run(call())
    if error is None:
        assert 200 <= status < 300  # only a 2xx can end in success
    elif isinstance(error, asyncdeleter.APIStatusError):
        assert error.status == status
        assert len(error.raw_body) <= 2048
        for field in (error.error_code, error.error_msg, error.solution_msg):
            assert field is None or isinstance(field, str)
    else:
        # Only a body aiohttp itself cannot frame is a (typed) connection error.
        assert isinstance(error, asyncdeleter.APIConnectionError)


# -- keep-alive races ------------------------------------------------------------------


async def test_keep_alive_races_are_retried_and_every_attempt_is_counted() -> None:
    """The server drops idle connections right as the client reuses them.

    Every such drop is an attempt of ours (aiohttp's silent resend is replaced), retried
    at once the first time; a call never sends more than max_tries requests.
    """
    async with Emulator(keepalive_timeout=0.05) as emu:
        emu.add_sessions("ws-1", [f"s{i}" for i in range(40)])
        retries: list[RetryDetails] = []
        policy = RetryPolicy(max_tries=3, wait=False, on_retry=[retries.append])
        async with SessionManager(endpoints=emu.endpoints(), retry=policy, max_concurrency=1) as m:
            for i in range(40):
                await m.close_session("ws-1", f"s{i}")
                await asyncio.sleep(0.05)  # just as the server times the connection out
        assert emu.session_count == 0
        assert retries  # the race really happened
        # Every request that reached the server is one we counted (drops on a closed
        # connection never reach it), and no call went past max_tries.
        assert 40 <= emu.request_count <= 40 + len(retries)
        assert all(r.attempt < 3 for r in retries)


# -- deadlines -------------------------------------------------------------------------


async def test_a_bulk_run_against_a_stalled_server_ends_on_time_with_every_item_failed(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(kind=FaultKind.STALL, stall_seconds=60))
    policy = RetryPolicy(max_time=0.8, initial_wait=0.0, max_wait=0.0, max_tries=50)
    started = time.monotonic()
    async with make_manager(retry=policy, timeouts=Timeouts(read=0.3), max_concurrency=4) as m:
        report = await m.close_sessions([("ws-1", f"s{i}") for i in range(8)])
    elapsed = time.monotonic() - started
    assert report.failed == 8
    assert all(isinstance(o.error, asyncdeleter.APITimeoutError) for o in report.failures)
    assert all(0.5 <= o.elapsed < 5 for o in report.outcomes)  # each item near its deadline
    assert elapsed < 10  # generous: two waves of 8 items at max_time=0.8 s


# -- cancellation torture --------------------------------------------------------------


async def test_cancelling_at_random_points_leaves_everything_whole(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.latency = 0.003
    emulator.latency_jitter = 0.004
    emulator.record_requests = False
    emulator.add_fault(Fault(status=503, probability=0.1))
    emulator.add_fault(Fault(kind=FaultKind.DROP, probability=0.02))
    rng = random.Random(7)
    limit = 6
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with make_manager(
            max_concurrency=limit, retry=RetryPolicy(max_tries=3, initial_wait=0.002, max_wait=0.01)
        ) as manager:
            for run in range(500):
                emulator.add_sessions("ws-1", [f"s{run}-{i}" for i in range(20)])
                shape = run % 4
                if shape == 0:
                    job: Any = manager.close_session("ws-1", f"s{run}-0")
                elif shape == 1:
                    job = manager.close_sessions([("ws-1", f"s{run}-{i}") for i in range(20)])
                elif shape == 2:

                    async def grouped(run: int = run) -> None:
                        async with asyncio.TaskGroup() as group:
                            group.create_task(
                                _consume(
                                    manager.close_sessions(
                                        [("ws-1", f"s{run}-{i}") for i in range(10)]
                                    )
                                )
                            )
                            group.create_task(manager.close_session("ws-1", f"s{run}-15"))

                    job = grouped()
                else:

                    async def timed(run: int = run) -> None:
                        async with asyncio.timeout(rng.uniform(0, 0.02)):
                            await manager.close_sessions(
                                [("ws-1", f"s{run}-{i}") for i in range(20)]
                            )

                    job = timed()
                task = asyncio.ensure_future(job)
                await asyncio.sleep(rng.uniform(0, 0.015))
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await task
            await asyncio.sleep(0.05)
            assert our_tasks() == set()
            assert checked_out(manager) == 0
            # The semaphore is whole: `limit` calls can be in flight at once again.
            emulator.clear_faults()
            emulator.latency = 0.05
            emulator.reset_stats()
            emulator.add_sessions("ws-2", [f"t{i}" for i in range(limit)])
            await asyncio.gather(*(manager.close_session("ws-2", f"t{i}") for i in range(limit)))
            assert emulator.peak_in_flight == limit
    assert [str(w.message) for w in record] == []


async def _consume(run: asyncdeleter.BulkRun[Any]) -> None:
    async for _ in run:
        pass


# -- event-loop health -----------------------------------------------------------------


async def test_the_event_loop_stays_responsive_during_a_big_run(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.record_requests = False
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(10_000)])
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    beat = asyncio.create_task(heartbeat())
    async with make_manager() as manager:
        report = await manager.close_sessions(("ws-1", f"s{i}") for i in range(10_000))
    stop.set()
    await beat
    assert report.succeeded == 10_000
    assert len(lags) > 10
    assert max(lags) < 0.5  # generous: nothing blocks the loop for long
    assert sorted(lags)[len(lags) // 2] < 0.1


def test_outcome_kinds_cover_the_design() -> None:
    assert {k.value for k in OutcomeKind} == {
        "succeeded",
        "already_gone",
        "failed",
        "invalid",
        "skipped",
        "planned",
    }
