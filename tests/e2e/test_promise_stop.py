"""Stop means stop: after ``break``, ``stop()``, ``fail_fast`` or cancellation, nothing new is sent.

Sends are counted on the client side (an aiohttp ``TraceConfig`` on a caller session), at
the moment each request starts, so a request still in transit cannot hide from the count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter._calls import Stopped
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, TOKEN, until


class Sends:
    """Counts requests as they start, and which paths they were for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._started)
        self._changed = asyncio.Event()

    async def _started(self, _: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        self.paths.append(params.url.path)
        self._changed.set()

    async def reach(self, count: int) -> None:
        """Wait until at least ``count`` requests have started."""
        while len(self.paths) < count:
            self._changed.clear()
            await self._changed.wait()

    def __len__(self) -> int:
        return len(self.paths)


@pytest.fixture
async def counted(emulator: Emulator) -> AsyncIterator[Any]:
    """``make(**options)`` -> (manager, sends): a manager whose every send is counted."""
    sessions: list[aiohttp.ClientSession] = []

    def make(**options: Any) -> tuple[SessionManager, Sends]:
        sends = Sends()
        session = aiohttp.ClientSession(trace_configs=[sends.config])
        sessions.append(session)
        options.setdefault("retry", RetryPolicy(wait=False))
        manager = SessionManager(
            endpoints=emulator.endpoints(),
            project_id=PROJECT,
            auth=TokenAuth(TOKEN),
            session=session,
            **options,
        )
        return manager, sends

    yield make
    for session in sessions:
        await session.close()


def pairs(n: int, prefix: str = "s") -> list[tuple[str, str]]:
    return [("ws-1", f"{prefix}{i}") for i in range(n)]


@pytest.mark.parametrize("adaptive", [True, False])
async def test_break_sends_nothing_more(emulator: Emulator, counted: Any, adaptive: bool) -> None:
    """The outcome in hand, then ``break``: not one more request leaves."""
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(200)])
    emulator.latency = 0.02
    manager, sends = counted(max_concurrency=8)
    async with manager:
        run = manager.close_sessions(pairs(200), adaptive=adaptive)
        async for _ in run:
            sent_at_break = len(sends)
            break
        await asyncio.sleep(0.3)  # time enough for any straggler to go out
        assert len(sends) == sent_at_break
    report = run.report
    assert report.total == 200, "a list is sized: every item is accounted for"
    assert report.succeeded + report.failed == sent_at_break, "sent means succeeded or failed"
    assert report.skipped == 200 - sent_at_break
    assert report.unread_from is None
    gone = 200 - len(emulator.sessions("ws-1"))
    assert gone <= sent_at_break, "an item deleted on the server was reported as never sent"


async def test_stop_does_not_send_calls_queued_on_the_semaphore(
    emulator: Emulator, counted: Any
) -> None:
    """A run's item waiting for a slot (held by another call) is never sent after stop()."""
    emulator.add_sessions("ws-1", ["slow", "a", "b", "c"])
    manager, sends = counted(max_concurrency=1)
    async with manager:
        emulator.latency = 0.3
        holder = asyncio.create_task(manager.close_session("ws-1", "slow"))
        await until(lambda: emulator.in_flight == 1)  # the single slot is now held
        run = manager.close_sessions([("ws-1", "a"), ("ws-1", "b"), ("ws-1", "c")])
        collecting = asyncio.create_task(run.wait())
        await asyncio.sleep(0.05)  # the run's worker is queued on the slot
        run.stop()
        await holder
        report = await collecting
    assert sends.paths == ["/v1/workspaces/ws-1/sessions/slow"]
    assert report.skipped == 3
    assert report.total == 3
    assert emulator.sessions("ws-1") == {"a", "b", "c"}


async def test_fail_fast_does_not_send_what_is_queued(emulator: Emulator, counted: Any) -> None:
    """The first failure stops the run: items queued behind another call never go out."""
    emulator.add_sessions("ws-1", ["slow", *(f"s{i}" for i in range(1, 6))])
    manager, sends = counted(max_concurrency=2)
    async with manager:
        emulator.latency = 0.3
        holder = asyncio.create_task(manager.close_session("ws-1", "slow"))
        await asyncio.sleep(0.05)
        emulator.latency = 0.0
        emulator.add_fault(Fault(status=400, path="/v1/workspaces/ws-1/sessions/s0"))
        # s0 fails at once; s1 is queued on the slot the slow call holds.
        report = await manager.close_sessions(pairs(6), fail_fast=True)
        await holder
    sent = [p.rsplit("/", 1)[1] for p in sends.paths]
    assert sorted(sent) == ["s0", "slow"]
    assert report.failed == 1
    assert report.skipped == 5
    assert report.total == 6


async def test_stop_ends_a_call_waiting_to_retry_at_once(emulator: Emulator, counted: Any) -> None:
    """A call sleeping before its retry ends when the run stops: failed, safe to re-run."""
    emulator.add_sessions("ws-1", ["a"])
    emulator.add_fault(Fault(status=503, retry_after="30"))
    manager, sends = counted(retry=RetryPolicy())
    async with manager:
        run = manager.close_sessions([("ws-1", "a")])
        collecting = asyncio.create_task(run.wait())
        await sends.reach(1)
        await asyncio.sleep(0.05)
        run.stop()
        async with asyncio.timeout(5):  # not the 30 s the server asked for
            report = await collecting
    assert len(sends) == 1
    outcome = report.outcomes[0]
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.safe_to_retry
    assert outcome.attempts == 1
    assert getattr(outcome.error, "status", None) == 503


async def test_a_second_cancellation_during_shutdown_keeps_the_accounting(
    emulator: Emulator, counted: Any
) -> None:
    """Cancelled, then cancelled again while shutting down: every item still accounted."""
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(8)])
    emulator.latency = 5.0
    manager, sends = counted(max_concurrency=8)
    async with manager:
        run = manager.close_sessions(pairs(8))
        task = asyncio.create_task(run.wait())
        await sends.reach(8)
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    report = run.report
    assert report.total == 8
    assert report.failed == 8
    assert all(o.safe_to_retry for o in report.failures) or report.failures == ()


async def test_items_cancelled_while_queued_were_never_sent_so_skipped(
    emulator: Emulator, counted: Any
) -> None:
    """Cancelled while waiting for a slot: nothing was sent, so the item is skipped."""
    emulator.add_sessions("ws-1", ["slow", "a"])
    manager, sends = counted(max_concurrency=1)
    async with manager:
        emulator.latency = 0.5
        holder = asyncio.create_task(manager.close_session("ws-1", "slow"))
        await asyncio.sleep(0.05)
        run = manager.close_sessions([("ws-1", "a")])
        task = asyncio.create_task(run.wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await holder
    report = run.report
    assert report.skipped == 1
    assert report.failed == 0
    assert len(sends) == 1


async def test_a_cancelled_duplicate_waiter_leaves_the_first_worker_unharmed(
    emulator: Emulator, counted: Any
) -> None:
    """The later of two equal targets waits for the first; cancelling it hurts nobody."""
    emulator.add_sessions("ws-1", ["a"])
    emulator.latency = 0.5
    manager, _ = counted(max_concurrency=4)
    async with manager:
        run = manager.close_sessions([("ws-1", "a"), ("ws-1", "a")])
        task = asyncio.create_task(run.wait())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    problems = [
        w.exception() for w in run._workers if not w.cancelled() and w.exception() is not None
    ]
    assert problems == []
    assert run.report.total == 2


@pytest.mark.parametrize("how", ["break", "stop", "fail_fast"])
async def test_a_generator_input_is_closed_when_the_run_ends_early(
    emulator: Emulator, counted: Any, how: str
) -> None:
    """A plain generator's own clean-up runs when the run ends, not at garbage collection."""
    closed = []
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(100)])
    if how == "fail_fast":
        emulator.add_fault(Fault(status=400))

    def targets() -> Iterator[tuple[str, str]]:
        try:
            yield from pairs(100)
        finally:
            closed.append(True)

    manager, _ = counted(max_concurrency=2)
    async with manager:
        run = manager.close_sessions(targets(), fail_fast=how == "fail_fast")
        if how == "break":
            async with contextlib.aclosing(aiter(run)) as outcomes:
                async for _ in outcomes:
                    break
        elif how == "stop":
            async for _ in run:
                run.stop()
        else:
            await run
    assert closed == [True]


# -- found by review: stops that waited, inputs that hung or raised ----------------------


async def test_stop_on_a_huge_list_accounts_for_it_without_freezing_the_loop(
    emulator: Emulator, counted: Any
) -> None:
    """The unread items of a sized input are reported skipped, cooperatively."""
    n = 100_000
    manager, _ = counted(max_concurrency=2)
    gaps: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    async with manager:
        watch = asyncio.create_task(ticker())
        run = manager.close_sessions([("ws-1", f"s{i}") for i in range(n)])
        async for _ in run:
            run.stop()
        watch.cancel()
    report = run.report
    assert report.total == n
    assert report.skipped >= n - 10
    assert report.unread_from is None
    assert max(gaps) < 1.0  # generous: the loop kept turning while 100k were accounted


@pytest.mark.parametrize("how", ["stop", "fail_fast"])
async def test_a_hanging_async_input_does_not_hold_a_stopped_run(
    emulator: Emulator, counted: Any, how: str
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"])
    if how == "fail_fast":
        emulator.add_fault(Fault(status=400))

    async def slow_source() -> AsyncIterator[tuple[str, str]]:
        yield ("ws-1", "a")
        yield ("ws-1", "b")
        await asyncio.Event().wait()  # a producer that never produces again
        yield ("ws-1", "never")

    manager, sends = counted(max_concurrency=2)
    async with manager:
        run = manager.close_sessions(slow_source(), fail_fast=how == "fail_fast")
        async with asyncio.timeout(5):
            async for _ in run:
                if how == "stop":
                    run.stop()
    report = run.report
    assert report.total == 2
    assert report.unread_from == 2
    assert all("never" not in path for path in sends.paths)


async def test_an_input_that_raises_cancelled_error_is_not_silently_short(
    emulator: Emulator, counted: Any
) -> None:
    """An input that awaited something cancelled must not look like a complete run."""
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(3)])

    async def source() -> AsyncIterator[tuple[str, str]]:
        for i in range(3):
            yield ("ws-1", f"s{i}")
        dead = asyncio.get_running_loop().create_future()
        dead.cancel()
        await dead  # raises CancelledError inside the input

    manager, _ = counted(max_concurrency=2)
    async with manager:
        run = manager.close_sessions(source())
        with pytest.raises(RuntimeError, match="input was cancelled"):
            await run
    assert run.report.total == 3
    assert run.report.unread_from == 3


async def test_stop_ends_a_call_waiting_for_its_turn_under_a_rate(
    emulator: Emulator, counted: Any
) -> None:
    """Calls queued on max_rate's turns end at stop(), not when their turn comes."""
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(4)])
    manager, sends = counted(max_concurrency=4, max_rate=0.5)  # one send every 2 s
    async with manager:
        run = manager.close_sessions(pairs(4))
        started = asyncio.get_running_loop().time()
        async for _ in run:
            run.stop()
        elapsed = asyncio.get_running_loop().time() - started
    assert len(sends) == 1
    assert run.report.skipped == 3
    assert elapsed < 1.5  # not the 2 s each further turn would take


async def test_closing_the_manager_mid_run_skips_what_was_never_sent(
    emulator: Emulator, counted: Any
) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(10)])
    emulator.latency = 0.2
    manager, sends = counted(max_concurrency=2)
    async with manager:
        run = manager.close_sessions(pairs(10))
        async for _ in run:
            await manager.aclose()
    report = run.report
    assert report.total == 10
    never_sent = [o for o in report.outcomes if o.attempts == 0] if report.outcomes else []
    assert all(o.kind is OutcomeKind.SKIPPED for o in never_sent)
    assert report.skipped >= 10 - len(sends)
    assert report.failed == 0


async def test_wait_after_break_returns_the_final_report(emulator: Emulator, counted: Any) -> None:
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(20)])
    emulator.latency = 0.05
    manager, _ = counted(max_concurrency=4)
    async with manager:
        run = manager.close_sessions(iter(pairs(20)))
        async for _ in run:
            break
        async with asyncio.timeout(5):
            report = await run.wait()
    assert report.cancelled
    assert report.unread_from is not None
    assert report.total == report.unread_from  # every item read is accounted for


async def test_wait_ends_when_the_consumer_is_cancelled_twice_while_the_input_closes(
    emulator: Emulator, counted: Any
) -> None:
    """A second cancellation lands in the async input's own clean-up: ``wait()`` still ends."""
    emulator.add_sessions("ws-1", [f"s{i}" for i in range(100)])
    emulator.latency = 0.05
    cleaning = asyncio.Event()

    async def source() -> AsyncIterator[tuple[str, str]]:
        try:
            for pair in pairs(100):
                yield pair
        finally:
            cleaning.set()
            await asyncio.sleep(0.5)  # the input's clean-up awaits something

    async def consume(run: Any) -> None:
        async for _ in run:
            pass

    manager, _ = counted(max_concurrency=2)
    async with manager:
        run = manager.close_sessions(source())
        consumer = asyncio.create_task(consume(run))
        waiter = asyncio.create_task(run.wait())
        await until(lambda: run.report.total >= 2)
        consumer.cancel()
        await cleaning.wait()
        consumer.cancel()  # again, while the run closes its input
        with pytest.raises(asyncio.CancelledError):
            await consumer
        async with asyncio.timeout(10):  # the test's own limit: wait() must not hang
            report = await waiter
    assert report.cancelled
    assert report.total == report.unread_from, "every item read is accounted for"


# -- the stop signal is internal: what a stopped item reports is a real error -------------

#: Every place a bulk item can wait when the run stops: for a slot, a rate turn, or a
#: retry of its DELETE; for a confirmation poll's slot, turn or retry, or between polls.
WAITING_PLACES = [
    "retry-slot",
    "retry-turn",
    "retry-wait",
    "poll-slot",
    "poll-turn",
    "poll-retry-wait",
    "poll-wait",
]


@pytest.mark.parametrize("place", WAITING_PLACES)
async def test_the_stop_signal_never_reaches_an_outcome(place: str) -> None:
    """Wherever an item waits when the run stops, its outcome holds a real error."""
    outcome = await _stopped_while_waiting(place)
    assert not isinstance(outcome.error, Stopped), outcome.error
    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.safe_to_retry
    if place.startswith("poll"):
        # Accepted, then stopped while confirming: said so, never "stopped before sending".
        assert isinstance(outcome.error, asyncdeleter.WaitTimeoutError), outcome
        assert outcome.error.stopped
    else:
        # The last real error of the attempt it would have retried.
        assert isinstance(outcome.error, asyncdeleter.ServerError), outcome
        assert outcome.error.status == 503


async def _stopped_while_waiting(place: str) -> Any:
    """Run one item into ``place``, stop the run there; return its outcome."""
    poll = place.startswith("poll")
    # A call that holds the only slot for a while (a slot is waited for, stopped or not).
    faults = [
        Fault(kind=FaultKind.STALL, path="/v1/workspaces/ws-slow/sessions/hold", stall_seconds=1.5)
    ]
    # The DELETE's 503 asks for a wait: short where the retry must then queue for a slot,
    # long where it must still be sleeping at stop(); none where it queues for a turn.
    retry_after = {"retry-slot": "0.2", "retry-wait": "30"}.get(place)
    if place.startswith("retry"):
        faults.append(Fault(status=503, api="DeleteWorkspace", times=1, retry_after=retry_after))
    if place == "poll-retry-wait":
        faults.append(Fault(status=503, api="ShowWorkspace", retry_after="30"))
    # The first poll comes late enough for the slot to be taken first, or at once.
    first_poll = {"poll-slot": 0.3, "poll-wait": 30.0}.get(place, 0.02)
    options: dict[str, Any] = {"max_concurrency": 4}
    if place in ("retry-slot", "poll-slot"):
        options["max_concurrency"] = 1
    if place in ("retry-turn", "poll-turn"):
        options["max_rate"] = 0.2  # one send every 5 s per API
    async with Emulator(token=TOKEN, deleting_seconds=60, faults=faults) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_sessions("ws-slow", ["hold"])

        def sent(api: str) -> int:
            return sum(1 for r in emu.requests if r.api == api)

        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=TokenAuth(TOKEN),
            retry=RetryPolicy(
                initial_wait=0.01,
                poll_initial_wait=first_poll,
                poll_max_wait=max(first_poll, 0.05),
            ),
            **options,
        ) as manager:
            run = manager.delete_workspaces(["ws-1"], wait=poll)
            collecting = asyncio.create_task(run.wait())
            await until(lambda: sent("DeleteWorkspace") >= 1)
            holder = None
            if place in ("retry-slot", "poll-slot"):
                # The only slot goes to a stalled call before the item needs it again.
                holder = asyncio.create_task(manager.close_session("ws-slow", "hold"))
                await until(lambda: emu.in_flight >= 1)
            if place in ("poll-turn", "poll-retry-wait"):
                await until(lambda: sent("ShowWorkspace") >= 1)  # the next poll waits
            await asyncio.sleep(0.5)  # the item is now waiting where the place says
            run.stop()
            async with asyncio.timeout(10):
                report = await collecting
            if holder is not None:
                holder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await holder
    (outcome,) = report.outcomes
    return outcome
