"""Throttling is pushback, not failure: the learned rate, caps, and what a 429 costs.

Integration tests run against the emulator's gateway-like quota (a fixed one-second window
per host and API). None asserts a speed: they pin the semantics (no item fails for being
throttled, queued calls obey caps, turns are given back, the rate climbs back); the
speed targets live in benchmarks/throttling.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import pytest

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter._throttle import AdaptiveRate, RateLimiter
from asyncdeleter.testing import Emulator, Fault
from tests.conftest import PROJECT, TOKEN


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
    assert info.value.attempts > 2


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


# -- the learner, without sockets ------------------------------------------------------


def feed(
    learner: AdaptiveRate,
    start: float,
    seconds: float,
    *,
    offered: float,
    quota: float | None,
    throttle_every: int = 0,
) -> float:
    """Offer ``offered`` requests/s for ``seconds`` (capped by the learner's own limit)
    against a fixed-window ``quota``; return the time reached."""
    now, window, used, sent = start, int(start), 0, 0
    while now < start + seconds:
        rate = learner.limiter.rate
        pace = min(offered, rate) if rate is not None else offered
        now += 1.0 / pace
        if int(now) != window:
            window, used = int(now), 0
        sent += 1
        used += 1
        learner.sending(now)
        throttled = (quota is not None and used > quota) or (
            throttle_every > 0 and sent % throttle_every == 0
        )
        learner.record(now, now, throttled=throttled)
    return now


def test_an_unthrottled_gate_never_limits() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 5, offered=3000, quota=None)
    assert learner.limiter.rate is None


def test_the_learner_paces_just_under_the_quota_it_meets() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 3, offered=3000, quota=200)
    rate = learner.limiter.rate
    assert rate is not None
    assert 180 <= rate <= 200


def test_occasional_uncorrelated_throttling_does_not_slow_anything() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 10, offered=1000, quota=None, throttle_every=20)  # 5 %
    assert learner.limiter.rate is None


def test_a_storm_where_nothing_passes_teaches_no_rate() -> None:
    """Every answer a 429: there is no accepted rate to pace at; the calls wait instead."""
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=500, quota=0)
    assert learner.limiter.rate is None
    feed(learner, now, 3, offered=3000, quota=None)
    assert learner.limiter.rate is None


def test_the_rate_climbs_back_once_throttling_ends() -> None:
    """A quota that was lowered, then lifted: probes win, the rate climbs back up."""
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=200)
    now = feed(learner, now, 3, offered=3000, quota=20)
    low = learner.limiter.rate
    assert low is not None
    assert low <= 25
    for _ in range(80):  # 40 s with no quota and demand pressing on the limit
        learner.limiter.waited = True
        now = feed(learner, now, 0.5, offered=3000, quota=None)
    assert learner.limiter.rate is None or learner.limiter.rate >= 150


def test_a_raised_quota_is_found_by_probing() -> None:
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=200)
    for _ in range(60):  # the quota is now 400; demand keeps pressing on the limit
        learner.limiter.waited = True
        now = feed(learner, now, 0.5, offered=3000, quota=400)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate > 250


def test_a_lowered_quota_is_followed_down() -> None:
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=400)
    feed(learner, now, 3, offered=3000, quota=100)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate <= 110


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


def test_small_clusters_of_429s_do_not_ratchet_the_rate_down() -> None:
    """7 % of answers throttled, in clusters of seven (one at the very start): no slowing."""
    learner = AdaptiveRate()
    now = 1000.0
    for sent in range(150 * 30):  # 30 s at 150 requests/s
        now += 1 / 150
        learner.sending(now)
        learner.record(now, now, throttled=sent % 100 < 7)
    assert learner.limiter.rate is None


async def test_429s_do_not_use_up_the_tries_a_credentials_refresh_needs() -> None:
    """Four 429s, then a 401 for an expired token: the call still refreshes and succeeds."""
    from tests.raw_server import RawRequest, RawServer, answer

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
