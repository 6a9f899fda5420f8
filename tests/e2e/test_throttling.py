"""Throttling is pushback, not failure: the learned rate, caps, and what a 429 costs.

Integration tests run against the emulator's gateway-like quota (a fixed one-second window
per host and API, 429 ``APIG.0308`` with no ``Retry-After``, as the gateway documents) and
raw servers. None asserts a speed: they pin the semantics with counts and events (no item
fails for being throttled, a 429 storm draws a bounded number of requests, queued calls
obey caps, turns are given back, waiting items hold no worker); the speed targets live in
benchmarks/throttling.py. The learner's own tests, without sockets, are in
tests/unit/test_throttle.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterable, Iterator

import pytest

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter._throttle import RateLimiter
from asyncdeleter.testing import Emulator, Fault
from tests.conftest import PROJECT, TOKEN
from tests.raw_server import RawRequest, RawServer, answer, error_body


def most_in_one_second(times: Iterable[float]) -> int:
    """The largest number of events inside any sliding one-second window."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


# -- no item fails for being throttled ---------------------------------------------------


async def test_a_throttled_bulk_run_fails_nothing_and_spends_no_budget() -> None:
    """Under a quota, with a retry budget that a few failures would empty: all succeed."""
    n = 300
    async with Emulator(token=TOKEN, quota=100, latency=0.005) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(n)])
        policy = RetryPolicy(retry_budget=10, max_tries=2)  # 2 failures would end it
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=64, retry=policy
        ) as manager:
            report = await manager.close_sessions([("ws", f"s{i}") for i in range(n)])
            assert manager._path.retry_budget is not None
            assert manager._path.retry_budget.level == 10  # 429s took nothing from it
        assert emu.session_count == 0
    assert report.succeeded == n
    assert report.failed == 0
    assert report.throttled == emu.status_counts[429] > 0
    assert report.throttled_seconds > 0
    assert report.attempts == n + report.throttled
    assert max(o.throttled for o in report.outcomes) >= 1


async def test_concurrent_single_calls_under_a_quota_all_succeed() -> None:
    """Many single calls at once (no bulk run): the manager learns the quota for them too."""
    n = 250
    async with Emulator(token=TOKEN, quota=100) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(n)])
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=n
        ) as manager:
            results = await asyncio.gather(
                *(manager.close_session("ws", f"s{i}") for i in range(n)), return_exceptions=True
            )
            learned = manager._calls._gates["CloseSqlSession"].learned.good
        assert emu.session_count == 0
    assert [r for r in results if r is not None] == []
    assert learned is not None
    assert 50 <= learned <= 200  # it saw the server accept about 100 a second


async def test_a_429_does_not_count_toward_max_tries() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", ["s"])
        emu.add_fault(Fault(status=429, retry_after="0", times=6))
        policy = RetryPolicy(max_tries=2, wait=False)
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            report = await manager.close_sessions([("ws", "s")])
    outcome = report.outcomes[0]
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.attempts == 7
    assert outcome.throttled == 6


async def test_a_503_with_retry_after_is_a_failure_that_counts() -> None:
    """A 503 that says 'come back later' still spends tries and budget, like any 5xx."""
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", ["s"])
        emu.add_fault(Fault(status=503, retry_after="0"))
        policy = RetryPolicy(max_tries=3, wait=False, retry_budget=100)
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            with pytest.raises(asyncdeleter.ServerError) as info:
                await manager.close_session("ws", "s")
            assert manager._path.retry_budget is not None
            assert manager._path.retry_budget.level == 100 - 2 * 5
    assert info.value.attempts == 3


async def test_without_429_in_retry_statuses_a_throttle_is_a_rate_limit_error() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_fault(Fault(status=429, retry_after="1"))
        policy = RetryPolicy(retry_statuses={500, 502, 503, 504})
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            with pytest.raises(asyncdeleter.RateLimitError) as info:
                await manager.close_session("ws", "s")
    assert info.value.attempts == 1
    assert info.value.retry_after == 1.0


async def test_throttling_never_outlives_max_time() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_fault(Fault(status=429, retry_after="0.1"))
        policy = RetryPolicy(max_time=1.0)
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            started = time.monotonic()
            with pytest.raises(asyncdeleter.RateLimitError) as info:
                await manager.close_session("ws", "s")
    assert time.monotonic() - started < 5
    # Retried (a 429 is pushback), though its jittered backoff leaves room for few sends.
    assert info.value.attempts >= 2


# -- caps and turns ----------------------------------------------------------------------


async def test_calls_queued_on_the_semaphore_obey_max_rate() -> None:
    """Thirty calls queued behind a slot: never more than max_rate sends in any second."""
    async with Emulator(token=TOKEN, latency=0.05) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(30)])
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=2, max_rate=10
        ) as manager:
            await asyncio.gather(*(manager.close_session("ws", f"s{i}") for i in range(30)))
        sends = [r.received_at for r in emu.requests]
    assert len(sends) == 30
    assert most_in_one_second(sends) <= 11  # 10 a second, +1 for where windows fall


async def test_max_rate_is_per_api() -> None:
    """The cap is per (host, API): closing sessions does not use up deleting's turns."""
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(5)])
        emu.add_workspaces(PROJECT, [f"w{i}" for i in range(5)])
        async with SessionManager(
            endpoints=emu.endpoints(), project_id=PROJECT, auth=TokenAuth(TOKEN), max_rate=5
        ) as manager:
            started = time.monotonic()
            await asyncio.gather(
                manager.close_sessions([("ws", f"s{i}") for i in range(5)]).wait(),
                manager.delete_workspaces([f"w{i}" for i in range(5)]).wait(),
            )
            elapsed = time.monotonic() - started
    assert elapsed < 1.9  # 5 + 5 at one shared 5/s would take about 2 s


async def test_cancelled_waiters_give_their_turns_back() -> None:
    """A hundred callers gave up waiting for their turn: the next one is not held back."""
    limiter = RateLimiter(rate=10)
    await limiter.turn()  # the first turn goes at once
    waiters = [asyncio.create_task(limiter.turn()) for _ in range(100)]
    await asyncio.sleep(0.02)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    started = time.monotonic()
    waited = await limiter.turn()
    assert time.monotonic() - started < 1.0  # not the 10 s a hundred turns would take
    assert waited < 1.0


async def test_a_waiter_cancelled_as_its_turn_came_hands_it_on() -> None:
    limiter = RateLimiter(rate=5)
    await limiter.turn()
    first = asyncio.create_task(limiter.turn())
    second = asyncio.create_task(limiter.turn())
    await asyncio.sleep(0.25)  # first's turn (0.2 s) has been granted, not yet taken up
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    started = time.monotonic()
    await second
    assert time.monotonic() - started < 0.3  # second got first's turn, not one 0.2 s later


async def test_turns_are_first_come_first_served() -> None:
    limiter = RateLimiter(rate=50)
    order: list[int] = []

    async def take(i: int) -> None:
        await limiter.turn()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(20)))
    assert order == list(range(20))


async def test_an_api_waiting_for_its_turns_holds_no_slot_another_api_needs() -> None:
    """Close calls queued on a slow rate must not keep a workspace delete from a slot."""
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(12)])
        emu.add_workspaces(PROJECT, ["w1"])
        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=TokenAuth(TOKEN),
            max_concurrency=4,
            max_rate=1,
        ) as manager:
            closing = asyncio.gather(*(manager.close_session("ws", f"s{i}") for i in range(12)))
            await asyncio.sleep(0.2)  # the close calls now wait for their turns, 1 a second
            started = time.monotonic()
            await manager.delete_workspace("w1")  # its API's first turn is free at once
            took = time.monotonic() - started
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
    assert emu.workspaces(PROJECT) == frozenset()
    assert took < 0.5  # not queued behind close calls sitting on every slot


async def test_429s_do_not_use_up_the_tries_a_credentials_refresh_needs() -> None:
    """Four 429s, then a 401 for an expired token: the call still refreshes and succeeds."""
    tokens = iter(["old-token", "fresh-token"])

    async def provider() -> TokenAuth:
        return TokenAuth(next(tokens))

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.number <= 4:
            writer.write(answer(429, b"", {"Retry-After": "0"}))
        elif request.headers.get("x-auth-token") != "fresh-token":
            writer.write(answer(401))
        else:
            writer.write(answer(200))

    async with RawServer(script) as server:
        url = server.url
        async with SessionManager(
            endpoints=asyncdeleter.Endpoints(fabric=url, modelarts=url),
            auth=provider,
            retry=RetryPolicy(max_tries=5, wait=False),
        ) as manager:
            await manager.close_session("ws", "s")
    assert len(server.requests) == 6


# -- the gateway's documented answer: 429 APIG.0308, no Retry-After ----------------------

DOCUMENTED_429 = error_body(
    "APIG.0308",
    "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 second",
)


@pytest.mark.parametrize(
    "retry_after",
    ["0", email.utils.formatdate(time.time() - 3600, usegmt=True)],
    ids=["zero", "a-past-date"],
)
async def test_a_429_storm_saying_retry_after_0_draws_a_bounded_number_of_requests(
    retry_after: str,
) -> None:
    """Every request answered 429 with 'come back now': not a loop, and the learner learns.

    Measured before: 8 calls with max_time=3 sent 21,591 requests in 3 s, and the learned
    rate stayed unset.
    """
    async with Emulator(token=TOKEN, record_requests=False) as emu:
        emu.add_fault(Fault(status=429, retry_after=retry_after, body=DOCUMENTED_429))
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=RetryPolicy(max_time=3)
        ) as manager:
            results = await asyncio.gather(
                *(manager.close_session("ws", f"s{i}") for i in range(8)), return_exceptions=True
            )
            learned = manager._calls._gates["CloseSqlSession"].learned.limiter.rate
    assert all(isinstance(r, asyncdeleter.RateLimitError) for r in results)
    assert all(r.attempts > 1 for r in results if isinstance(r, asyncdeleter.APIError))
    assert emu.request_count <= 8 * 25  # a few per call and second, not thousands
    assert learned is not None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
@pytest.mark.parametrize(
    "retry_after",
    ["0", email.utils.formatdate(time.time() - 3600, usegmt=True)],
    ids=["zero", "a-past-date"],
)
async def test_a_retried_status_saying_retry_after_0_still_backs_off(
    status: int, retry_after: str
) -> None:
    """Retry-After is a floor for every retried status, never "now": measured before, 5
    calls to a 503 saying 0 sent 25 requests in 10 ms (and a bulk run about 2,500/s)."""
    async with Emulator(token=TOKEN, record_requests=False) as emu:
        emu.add_fault(Fault(status=status, retry_after=retry_after))
        policy = RetryPolicy(max_tries=50, max_time=1.0, initial_wait=0.2, retry_budget=None)
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            results = await asyncio.gather(
                *(manager.close_session("ws", f"s{i}") for i in range(5)), return_exceptions=True
            )
    assert all(isinstance(r, asyncdeleter.APIError) for r in results)
    # Backoff from 0.2 s within 1 s: a handful of tries per call, never 50.
    assert emu.request_count <= 5 * 10


async def test_without_retry_after_throttled_retries_spread_out() -> None:
    """The documented 429 has no Retry-After: the retries are jittered, not a lockstep."""
    first_try: set[str] = set()
    retried_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.path not in first_try:
            first_try.add(request.path)
            writer.write(answer(429, DOCUMENTED_429, {"Content-Type": "application/json"}))
        else:
            retried_at.append(loop.time())
            writer.write(answer(200))

    async with (
        RawServer(script) as server,
        SessionManager(
            endpoints=asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url),
            retry=RetryPolicy(initial_wait=0.5),
        ) as manager,
    ):
        await asyncio.gather(*(manager.close_session("ws", f"s{i}") for i in range(20)))
    assert len(retried_at) == 20
    assert max(retried_at) - min(retried_at) > 0.1  # not all at once, 1 s later


async def test_a_bulk_run_under_the_documented_429_fails_nothing() -> None:
    n = 300
    async with Emulator(token=TOKEN, quota=100, latency=0.005) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(n)])
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=64
        ) as manager:
            report = await manager.close_sessions([("ws", f"s{i}") for i in range(n)])
            learned = manager._calls._gates["CloseSqlSession"].learned
        retry_afters = [r for r in emu.requests if r.status == 429]
    assert report.succeeded == n
    assert report.throttled == len(retry_afters) > 0
    assert learned.good is not None
    assert learned.good <= 100  # the quota named in the gateway's message bounds it


async def test_a_429_never_spends_a_try_or_the_budget_and_max_time_still_bounds_it() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", ["s"])
        emu.add_fault(Fault(status=429, body=DOCUMENTED_429, times=4))
        policy = RetryPolicy(max_tries=1, retry_budget=0, initial_wait=0.01)
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), retry=policy
        ) as manager:
            await manager.close_session("ws", "s")  # 4 throttles, then it goes through
    assert emu.request_count == 5


# -- a bulk run: C sending, up to 8 x C waiting -------------------------------------------


async def test_items_waiting_to_retry_hold_no_worker_of_the_run() -> None:
    """Sixteen items told to come back in 5 s: the rest of the run goes on meanwhile.

    With C=4, a run that held one of its C places per waiting item would stand still
    until they came back; the run keeps up to 8 x C items in progress instead, and never
    more than C requests in flight.
    """
    n, concurrency = 200, 4
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(n)])
        emu.add_fault(Fault(status=429, retry_after="5", body=DOCUMENTED_429, times=16))
        done_before_any_retry = None
        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=concurrency
        ) as manager:
            succeeded = 0
            async for outcome in manager.close_sessions(
                [("ws", f"s{i}") for i in range(n)], adaptive=False
            ):
                if outcome.throttled and done_before_any_retry is None:
                    done_before_any_retry = succeeded
                succeeded += outcome.kind is OutcomeKind.SUCCEEDED
        assert emu.peak_in_flight <= concurrency
    assert succeeded == n
    assert done_before_any_retry is not None
    assert done_before_any_retry >= n - 16 - 8 * concurrency  # they did not wait 5 s with them


async def test_a_bulk_run_keeps_at_most_8_x_c_items_waiting() -> None:
    n, concurrency = 200, 2
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(n)])
        emu.add_fault(Fault(status=429, retry_after="1", body=DOCUMENTED_429, times=n))
        pulled = 0

        def source() -> Iterator[tuple[str, str]]:
            nonlocal pulled
            for i in range(n):
                pulled += 1
                yield ("ws", f"s{i}")

        async with SessionManager(
            endpoints=emu.endpoints(), auth=TokenAuth(TOKEN), max_concurrency=concurrency
        ) as manager:
            run = manager.close_sessions(source(), adaptive=False)
            task = asyncio.create_task(run.wait())
            await asyncio.sleep(0.5)  # everything sent so far was told to wait 1 s
            pulled_while_waiting = pulled
            run.stop()
            await task
    assert pulled_while_waiting <= 8 * concurrency + 1
