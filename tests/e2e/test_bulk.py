"""Bulk runs against the emulator: bounded, lazy, and every item accounted exactly once."""

from __future__ import annotations

import asyncio
import gc
import itertools
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import asyncdeleter
from asyncdeleter import Outcome, OutcomeKind, RetryPolicy, SessionManager
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, our_tasks

Make = Callable[..., SessionManager]


class CountingSource:
    """A lazy generator of (workspace, session) pairs that counts how far it was read."""

    def __init__(self, count: int, workspace: str = "ws-1") -> None:
        self.count = count
        self.workspace = workspace
        self.pulled = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for i in range(self.count):
            self.pulled += 1
            yield (self.workspace, f"s{i}")


@pytest.mark.slow
async def test_ten_thousand_sessions_with_faults_are_each_accounted_once(
    emulator: Emulator, make_manager: Make
) -> None:
    n = 10_000
    emulator.record_requests = False
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(n)])
    for status in (408, 500, 503):
        emulator.add_fault(Fault(status=status, probability=0.034))
    emulator.add_fault(Fault(kind=FaultKind.DROP, probability=0.01))
    emulator.add_fault(Fault(kind=FaultKind.DROP, probability=0.01, commit=True))
    seen: set[int] = set()
    async with make_manager(retry=RetryPolicy(wait=False, max_tries=12)) as manager:
        async for outcome in manager.close_sessions(CountingSource(n)):
            assert outcome.index not in seen
            seen.add(outcome.index)
            assert outcome.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.ALREADY_GONE)
    assert seen == set(range(n))
    assert emulator.session_count == 0  # the emulator agrees: every session is closed
    assert emulator.faults_injected > 800  # the faults really happened


async def test_report_counts_figures_and_state_agree(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(200)])
    emulator.add_fault(Fault(status=500, nth=1, path="/v1/workspaces/ws-1/sessions/s7"))
    targets = [("ws-1", f"s{i}") for i in range(200)] + [("ws-1", "never-existed")]
    progress: list[tuple[int, int | None]] = []
    async with make_manager() as manager:
        report = await manager.close_sessions(
            targets, on_progress=lambda done, total, _: progress.append((done, total))
        )
    assert (report.total, report.succeeded, report.already_gone, report.failed) == (201, 200, 1, 0)
    assert report.attempts == emulator.request_count == 202
    assert report.retries == 1
    assert len(report.outcomes) == 201
    assert report.ok
    p50, p95, p99 = report.latency_p50, report.latency_p95, report.latency_p99
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert 0 < p50 <= p95 <= p99
    assert progress == [(i, 201) for i in range(1, 202)]
    assert emulator.session_count == 0


async def test_invalid_items_are_reported_and_never_sent(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    targets: list[Any] = [
        ("ws-1", "a"),
        ("ws-1", "../b"),
        "not-a-pair",
        ("ws-1", "b"),
        ("ws 1", "x"),
        None,
    ]
    async with make_manager() as manager:
        report = await manager.close_sessions(targets)
    invalid = sorted((o.index, type(o.error).__name__) for o in report.failures)
    assert invalid == [(i, "InvalidIdentifierError") for i in (1, 2, 4, 5)]
    assert (report.succeeded, report.invalid) == (2, 4)
    assert not report.ok
    assert emulator.request_count == 2


async def test_duplicates_get_one_outcome_each_and_never_overlap(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.latency = 0.02
    emulator.add_sessions("ws-1", ["a", "b"])
    targets = [("ws-1", "a"), ("ws-1", "a"), ("ws-1", "b"), ("ws-1", "a"), ("ws-1", "b")]
    async with make_manager() as manager:
        report = await manager.close_sessions(targets)
    kinds = sorted((o.index, o.kind) for o in report.outcomes)
    assert [k for _, k in kinds].count(OutcomeKind.SUCCEEDED) == 2
    assert [k for _, k in kinds].count(OutcomeKind.ALREADY_GONE) == 3
    for path in ("/v1/workspaces/ws-1/sessions/a", "/v1/workspaces/ws-1/sessions/b"):
        spans = sorted((r.received_at, r.answered_at) for r in emulator.requests if r.path == path)
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


async def test_peak_in_flight_never_passes_the_limit(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.latency = 0.005
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(400)])
    async with make_manager(max_concurrency=8) as manager:
        report = await manager.close_sessions(CountingSource(400))
    assert report.succeeded == 400
    assert emulator.peak_in_flight == 8


async def test_async_generator_input_is_read_lazily_with_backpressure(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(300)])
    pulled = 0

    async def source() -> AsyncIterator[tuple[str, str]]:
        nonlocal pulled
        for i in range(300):
            pulled += 1
            yield ("ws-1", f"s{i}")

    consumed = 0
    async with make_manager(max_concurrency=4) as manager:
        async for _ in manager.close_sessions(source()):
            consumed += 1
            await asyncio.sleep(0.002)  # a slow consumer
            assert pulled - consumed <= 2 * 4 + 1
    assert consumed == 300


async def test_a_million_item_generator_cancelled_early_pulled_little(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.record_requests = False
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(6000)])
    source = CountingSource(1_000_000)
    concurrency = 16
    task: asyncio.Task[asyncdeleter.BulkReport[tuple[str, str]]] | None = None

    def stop_at_5000(done: int, total: int | None, outcome: Outcome[tuple[str, str]]) -> None:
        assert total is None  # a generator has no length
        if done == 5000 and task is not None:
            task.cancel()

    async with make_manager(max_concurrency=concurrency) as manager:
        run = manager.close_sessions(source, on_progress=stop_at_5000)
        task = asyncio.create_task(_await(run))
        with pytest.raises(asyncio.CancelledError):
            await task
    report = run.report
    assert report.cancelled
    assert report.succeeded + report.already_gone >= 5000
    assert source.pulled <= 5000 + 2 * concurrency + 1
    assert report.total == source.pulled  # every pulled item accounted, even the cut-off ones
    assert our_tasks() == set()


async def test_fail_fast_stops_new_work_and_skips_the_rest_of_a_list(
    emulator: Emulator, make_manager: Make
) -> None:
    """A sized input accounts for every item: the ones not started are skipped."""
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(50)])
    emulator.forbid("w3")
    async with make_manager(max_concurrency=2) as manager:
        report = await manager.delete_workspaces([f"w{i}" for i in range(50)], fail_fast=True)
    assert report.total == 50
    assert report.failed == 1
    assert isinstance(report.failures[0].error, asyncdeleter.PermissionDeniedError)
    assert report.skipped >= 40
    assert report.unread_from is None
    assert all(o.safe_to_retry for o in report.outcomes if o.kind is OutcomeKind.SKIPPED)
    assert emulator.request_count == report.succeeded + 1
    assert len(emulator.workspaces(PROJECT)) == 50 - report.succeeded


async def test_fail_fast_reads_no_further_into_a_generator(
    emulator: Emulator, make_manager: Make
) -> None:
    """An unsized input may be endless: it is not read on, and unread_from says where."""
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(50)])
    emulator.forbid("w3")

    def endless() -> Iterator[str]:
        i = 0
        while True:
            yield f"w{i % 50}"
            i += 1

    async with make_manager(max_concurrency=2) as manager:
        async with asyncio.timeout(20):
            report = await manager.delete_workspaces(endless(), fail_fast=True)
    assert report.failed == 1
    assert report.unread_from == report.total
    assert report.total < 50
    assert emulator.request_count == report.succeeded + 1


async def test_without_fail_fast_one_failure_does_not_stop_the_others(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(20)])
    emulator.forbid("w3")
    async with make_manager(max_concurrency=2) as manager:
        report = await manager.delete_workspaces([f"w{i}" for i in range(20)])
    assert (report.succeeded, report.failed, report.skipped) == (19, 1, 0)
    assert emulator.workspaces(PROJECT) == {"w3"}


async def test_cancellation_inside_a_task_group_leaves_nothing_behind(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.latency = 0.01
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(5000)])
    source = CountingSource(5000)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with make_manager(max_concurrency=8) as manager:
            run = manager.close_sessions(source)

            async def boom() -> None:
                await asyncio.sleep(0.3)
                raise RuntimeError("a sibling task failed")

            async def run_in_a_group() -> None:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_await(run))
                    group.create_task(boom())

            with pytest.raises(ExceptionGroup):
                await run_in_a_group()
        assert our_tasks() == set()
        gc.collect()
    assert [str(w.message) for w in record] == []
    report = run.report
    assert report.cancelled
    assert report.total == source.pulled
    closed = 5000 - emulator.session_count
    # Items reported done really are done; cut-off sends may have landed too.
    assert report.succeeded <= closed <= report.succeeded + report.failed


async def _await(run: asyncdeleter.BulkRun[Any]) -> asyncdeleter.BulkReport[Any]:
    return await run


async def test_asyncio_timeout_stops_a_run_promptly(emulator: Emulator, make_manager: Make) -> None:
    emulator.latency = 0.01
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(5000)])
    async with make_manager(max_concurrency=4) as manager:
        run = manager.close_sessions(CountingSource(5000))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await run
        assert loop.time() - started < 5
        assert our_tasks() == set()
    assert run.report.cancelled
    assert 0 < run.report.succeeded < 5000


async def test_breaking_out_of_async_for_stops_the_run(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(1000)])
    source = CountingSource(1000)
    async with make_manager(max_concurrency=4) as manager:
        run = manager.close_sessions(source)
        async for outcome in run:
            if outcome.index >= 10:
                break
        await asyncio.sleep(0.05)  # the generator's cleanup runs when it is dropped
        assert our_tasks() == set()
    assert source.pulled < 100
    assert run.report.cancelled


async def test_a_failing_input_ends_the_run_with_its_error(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(10)])

    def source() -> Iterator[tuple[str, str]]:
        for i in range(10):
            yield ("ws-1", f"s{i}")
        raise ValueError("the input file is corrupt")

    async with make_manager(max_concurrency=3) as manager:
        run = manager.close_sessions(source())
        with pytest.raises(ValueError, match="corrupt"):
            await run
    assert run.report.succeeded == 10
    assert emulator.session_count == 0


async def test_a_run_is_consumed_once_and_checks_config_up_front(
    emulator: Emulator, make_manager: Make
) -> None:
    async with make_manager() as manager:
        run = manager.close_sessions([])
        assert (await run).total == 0
        with pytest.raises(RuntimeError, match="once"):
            await run
    async with make_manager(project_id=None) as manager:
        with pytest.raises(asyncdeleter.ConfigurationError):
            manager.delete_workspaces(["w1"])
    with pytest.raises(asyncdeleter.ConfigurationError, match="closed"):
        manager.close_sessions([])


async def test_missing_ok_false_turns_404s_into_failures(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_default_workspace(PROJECT)
    async with make_manager() as manager:
        report = await manager.delete_workspaces(["w-none"], missing_ok=False)
    assert report.failed == 1
    assert isinstance(report.failures[0].error, asyncdeleter.NotFoundError)
    assert report.failures[0].safe_to_retry


async def test_max_rate_keeps_a_run_under_a_known_quota() -> None:
    async with Emulator(throttle_rps=100, throttle_burst=5, throttle_retry_after="1") as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(60)])
        async with SessionManager(endpoints=emu.endpoints(), max_rate=80) as manager:
            loop = asyncio.get_running_loop()
            started = loop.time()
            report = await manager.close_sessions([("ws", f"s{i}") for i in range(60)])
            elapsed = loop.time() - started
        assert report.succeeded == 60
        assert emu.status_counts[429] == 0
        assert elapsed >= 0.6  # 60 sends at 80/s cannot take less than ~0.74 s


async def test_a_failing_credentials_provider_fails_items_not_the_run(emulator: Emulator) -> None:
    async def broken_provider() -> asyncdeleter.TokenAuth:
        raise RuntimeError("IAM is down")

    emulator.add_sessions("ws-1", ["a", "b", "c"])
    async with SessionManager(endpoints=emulator.endpoints(), auth=broken_provider) as manager:
        report = await manager.close_sessions([("ws-1", "a"), ("ws-1", "b"), ("ws-1", "c")])
    assert report.failed == 3
    assert not report.cancelled
    assert all(isinstance(o.error, RuntimeError) for o in report.failures)
    assert all(o.safe_to_retry for o in report.failures)
    assert emulator.request_count == 0
