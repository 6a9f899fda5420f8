"""``with_options``: a cheap view with its own retry policy and timeouts, sharing the rest.

A view is a ``SessionManager`` whose calls go through the manager's session, concurrency
limit, rate gates, credentials, hooks and retry budget; only its calls use its retry policy
and timeouts. Closing a view does nothing; closing the manager ends every view.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import (
    RequestRecord,
    RetryDetails,
    RetryPolicy,
    SessionManager,
    Timeouts,
    TokenAuth,
)
from asyncdeleter.testing import Emulator, Fault
from tests.conftest import PROJECT, TOKEN

Make = Callable[..., SessionManager]


def session_path(session_id: str, workspace_id: str = "ws-1") -> str:
    return f"/v1/workspaces/{workspace_id}/sessions/{session_id}"


def statuses(emulator: Emulator, path: str) -> list[int | None]:
    return [r.status for r in emulator.requests if r.path == path]


# -- the view's policy applies to the view's calls only --------------------------------


async def test_a_view_with_a_longer_read_timeout_succeeds_where_the_manager_times_out(
    make_manager: Make,
) -> None:
    async with Emulator(token=TOKEN, latency=0.6) as emu:
        emu.add_sessions("ws-1", ["s1", "s2", "s3"])
        manager = make_manager(
            endpoints=emu.endpoints(),
            timeouts=Timeouts(read=0.1),
            retry=RetryPolicy(wait=False, max_tries=1),
        )
        async with manager:
            patient = manager.with_options(timeouts=Timeouts(read=5))
            with pytest.raises(asyncdeleter.APITimeoutError):
                await manager.close_session("ws-1", "s1")
            await patient.close_session("ws-1", "s2")
            with pytest.raises(asyncdeleter.APITimeoutError):  # the manager's are unchanged
                await manager.close_session("ws-1", "s3")
            assert manager.timeouts == Timeouts(read=0.1)
            assert patient.timeouts == Timeouts(read=5)
        assert emu.sessions("ws-1") == {"s1", "s3"}  # the stalled ones were answered late


async def test_a_view_with_a_shorter_read_timeout_times_out_where_the_manager_succeeds(
    make_manager: Make,
) -> None:
    async with Emulator(token=TOKEN, latency=0.5) as emu:
        emu.add_sessions("ws-1", ["s1", "s2"])
        async with make_manager(endpoints=emu.endpoints()) as manager:
            hasty = manager.with_options(
                timeouts=Timeouts(read=0.05), retry=RetryPolicy(wait=False, max_tries=1)
            )
            with pytest.raises(asyncdeleter.APITimeoutError):
                await hasty.show_session("ws-1", "s1")
            shown = await manager.show_session("ws-1", "s1")
        assert shown.session_id == "s1"


async def test_a_view_that_does_not_retry_leaves_the_manager_retrying(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2"])
    emulator.add_fault(Fault(status=500, path=session_path("s1"), times=1))
    emulator.add_fault(Fault(status=500, path=session_path("s2"), times=1))
    async with make_manager() as manager:  # max_tries=5
        once = manager.with_options(retry=RetryPolicy(wait=False, max_tries=1))
        with pytest.raises(asyncdeleter.InternalServerError) as info:
            await once.close_session("ws-1", "s1")
        await manager.close_session("ws-1", "s2")
    assert info.value.attempts == 1
    assert statuses(emulator, session_path("s1")) == [500]
    assert statuses(emulator, session_path("s2")) == [500, 200]


async def test_on_retry_hooks_of_a_view_fire_for_its_calls_only(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2"])
    emulator.add_fault(Fault(status=503, path=session_path("s1"), times=1))
    emulator.add_fault(Fault(status=503, path=session_path("s2"), times=1))
    by_manager: list[RetryDetails] = []
    by_view: list[RetryDetails] = []
    async with make_manager(retry=RetryPolicy(wait=False, on_retry=[by_manager.append])) as m:
        view = m.with_options(retry=RetryPolicy(wait=False, on_retry=[by_view.append]))
        await view.close_session("ws-1", "s1")
        assert [d.target for d in by_view] == ["ws-1/s1"]
        assert by_manager == []
        await m.close_session("ws-1", "s2")
    assert [d.target for d in by_view] == ["ws-1/s1"]
    assert [d.target for d in by_manager] == ["ws-1/s2"]


async def test_either_argument_may_be_left_out_and_the_managers_is_used(
    make_manager: Make,
) -> None:
    async with Emulator(token=TOKEN, latency=0.3) as emu:
        emu.add_sessions("ws-1", ["s1", "s2", "s3"])
        emu.add_fault(Fault(status=500, path=session_path("s1"), times=1))
        emu.add_fault(Fault(status=500, path=session_path("s2"), times=1))
        base_retry = RetryPolicy(wait=False, max_tries=1)
        base_timeouts = Timeouts(read=0.05)
        manager = make_manager(endpoints=emu.endpoints(), retry=base_retry, timeouts=base_timeouts)
        async with manager:
            only_timeouts = manager.with_options(timeouts=Timeouts(read=5))
            only_retry = manager.with_options(retry=RetryPolicy(wait=False, max_tries=3))
            neither = manager.with_options()
            assert only_timeouts.retry is base_retry
            assert only_retry.timeouts is base_timeouts
            assert (neither.retry, neither.timeouts) == (base_retry, base_timeouts)
            # The manager's retry (no retries) under the view's long timeouts: the 500 ends it.
            with pytest.raises(asyncdeleter.InternalServerError):
                await only_timeouts.close_session("ws-1", "s1")
            # The view's retries under the manager's short timeouts: every attempt times out.
            with pytest.raises(asyncdeleter.APITimeoutError) as info:
                await only_retry.close_session("ws-1", "s3")
            assert info.value.attempts == 3
    assert statuses(emu, session_path("s1")) == [500]


# -- what a view shares ----------------------------------------------------------------


@pytest.mark.parametrize("own_session", [False, True], ids=["managers-pool", "wide-pool"])
async def test_the_concurrency_limit_is_shared(make_manager: Make, own_session: bool) -> None:
    # The manager's own pool has max_concurrency connections, which alone would cap what
    # is in flight; a session of the caller's with a wide pool leaves only the limit.
    async with (
        Emulator(token=TOKEN, latency=0.05) as emu,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session,
    ):
        ids = [f"s{i}" for i in range(12)]
        emu.add_sessions("ws-1", ids)
        options: dict[str, Any] = {"session": session} if own_session else {}
        async with make_manager(endpoints=emu.endpoints(), max_concurrency=2, **options) as m:
            view = m.with_options(timeouts=Timeouts(read=10))
            view_of_view = view.with_options(retry=RetryPolicy(wait=False, max_tries=2))
            callers = [m, view, view_of_view]
            await asyncio.gather(
                *(callers[i % 3].close_session("ws-1", sid) for i, sid in enumerate(ids))
            )
        assert emu.session_count == 0
        assert emu.peak_in_flight == 2  # reached, never passed, across manager and views


async def test_the_session_and_its_pool_are_the_managers(make_manager: Make) -> None:
    sessions: list[aiohttp.ClientSession] = []
    created = 0

    async def on_request_start(
        session: aiohttp.ClientSession, _: types.SimpleNamespace, __: Any
    ) -> None:
        sessions.append(session)

    async def on_connection_create_end(*_: Any) -> None:
        nonlocal created
        created += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    trace.on_connection_create_end.append(on_connection_create_end)
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws-1", ["s1", "s2", "s3"])
        manager = make_manager(endpoints=emu.endpoints(), trace_configs=[trace])
        # Made before the manager's first use: the view's first call opens the manager's pool.
        view = manager.with_options(timeouts=Timeouts(read=7))
        await view.close_session("ws-1", "s1")
        await manager.close_session("ws-1", "s2")
        await view.with_options().close_session("ws-1", "s3")
        assert not sessions[0].closed
        await manager.aclose()
    assert len(sessions) == 3
    assert all(s is sessions[0] for s in sessions)
    assert created == 1  # one connection, reused by manager and views alike
    assert sessions[0].closed  # the manager's aclose() closed the pool the view used


async def test_max_rate_gates_are_shared(make_manager: Make) -> None:
    async with Emulator(token=TOKEN) as emu:
        ids = [f"s{i}" for i in range(6)]
        emu.add_sessions("ws-1", ids)
        async with make_manager(endpoints=emu.endpoints(), max_rate=10) as manager:
            view = manager.with_options(timeouts=Timeouts(read=9))
            await asyncio.gather(
                *(manager.close_session("ws-1", sid) for sid in ids[:3]),
                *(view.close_session("ws-1", sid) for sid in ids[3:]),
            )
        sent = sorted(r.received_at for r in emu.requests)
    assert len(sent) == 6
    # One gate at 10 a second: six turns span at least 0.5 s (two gates would take 0.2 s).
    assert sent[-1] - sent[0] >= 0.4


async def test_credentials_are_shared(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2", "s3"])
    asked = 0

    async def provider() -> TokenAuth:
        nonlocal asked
        asked += 1
        return TokenAuth(TOKEN)

    async with make_manager(auth=provider) as manager:
        view = manager.with_options(retry=RetryPolicy(wait=False, max_tries=2))
        await manager.close_session("ws-1", "s1")
        await view.close_session("ws-1", "s2")
        await view.with_options(timeouts=Timeouts(read=3)).close_session("ws-1", "s3")
    assert emulator.session_count == 0
    assert asked == 1  # fetched once, for the manager and its views


async def test_hooks_are_shared(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2"])
    told: list[RequestRecord] = []
    async with make_manager(on_response=told.append) as manager:
        view = manager.with_options(timeouts=Timeouts(read=3))
        await view.close_session("ws-1", "s1")
        await manager.close_session("ws-1", "s2")
    assert [(r.target, r.status) for r in told] == [("ws-1/s1", 200), ("ws-1/s2", 200)]


@pytest.mark.parametrize("view_budget", [1000, None])
async def test_the_retry_budget_is_shared_and_its_capacity_is_the_managers(
    emulator: Emulator, make_manager: Make, view_budget: int | None
) -> None:
    emulator.add_fault(Fault(status=503))  # an outage
    # Each retry costs 5: the manager's budget of 10 pays for two.
    manager = make_manager(retry=RetryPolicy(wait=False, max_tries=5, retry_budget=10))
    async with manager:
        view = manager.with_options(
            retry=RetryPolicy(wait=False, max_tries=5, retry_budget=view_budget)
        )
        with pytest.raises(asyncdeleter.ServerError) as by_view:
            await view.close_session("ws-1", "s1")
        with pytest.raises(asyncdeleter.ServerError) as by_manager:
            await manager.close_session("ws-1", "s2")
        with pytest.raises(asyncdeleter.ServerError) as by_view_again:
            await view.close_session("ws-1", "s3")
    assert by_view.value.attempts == 3  # the view's own budget (or none) would allow 5
    assert by_view.value.retry_budget_exhausted
    assert by_manager.value.attempts == 1  # the view spent the manager's budget
    assert by_manager.value.retry_budget_exhausted
    assert by_view_again.value.attempts == 1


async def test_a_view_made_before_the_manager_is_used_shares_its_budget_too(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(status=503))
    manager = make_manager(retry=RetryPolicy(wait=False, max_tries=5, retry_budget=10))
    view = manager.with_options(retry=RetryPolicy(wait=False, max_tries=5, retry_budget=None))
    async with manager:
        with pytest.raises(asyncdeleter.ServerError) as by_manager:
            await manager.close_session("ws-1", "s1")
        with pytest.raises(asyncdeleter.ServerError) as by_view:
            await view.close_session("ws-1", "s2")
    assert by_manager.value.attempts == 3
    assert by_view.value.attempts == 1
    assert by_view.value.retry_budget_exhausted


# -- lifecycle -------------------------------------------------------------------------


async def test_closing_a_view_does_nothing_and_closing_the_manager_ends_every_view(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s1", "s2", "s3", "s4"])
    emulator.add_workspaces(PROJECT, ["w1"])
    manager = make_manager()
    async with manager:
        view = manager.with_options(timeouts=Timeouts(read=4))
        async with view as entered:
            assert entered is view
            await view.close_session("ws-1", "s1")
        await view.aclose()
        await view.aclose()
        assert not view.closed
        assert not manager.closed
        await manager.close_session("ws-1", "s2")  # the pool is still open
        await view.close_session("ws-1", "s3")  # and the view still works
        later_view = manager.with_options(retry=RetryPolicy(wait=False, max_tries=1))
    assert manager.closed
    assert view.closed
    sent = emulator.request_count
    with pytest.raises(asyncdeleter.ConfigurationError):
        await view.close_session("ws-1", "s4")
    with pytest.raises(asyncdeleter.ConfigurationError):
        await later_view.delete_workspace("w1")
    with pytest.raises(asyncdeleter.ConfigurationError):
        await view.show_session("ws-1", "s4")
    with pytest.raises(asyncdeleter.ConfigurationError):
        view.close_sessions([("ws-1", "s4")])
    with pytest.raises(asyncdeleter.ConfigurationError):
        [s async for s in view.list_sessions("ws-1")]
    with pytest.raises(asyncdeleter.ConfigurationError):
        async with view:
            pass
    assert emulator.request_count == sent  # nothing more went out
    assert emulator.sessions("ws-1") == {"s4"}
    assert emulator.workspaces(PROJECT) == {"w1"}


async def test_a_view_made_after_the_manager_closed_sends_nothing(
    emulator: Emulator, make_manager: Make
) -> None:
    manager = make_manager()
    async with manager:
        pass
    view = manager.with_options(timeouts=Timeouts(read=2))
    with pytest.raises(asyncdeleter.ConfigurationError):
        await view.close_session("ws-1", "s1")
    assert emulator.request_count == 0


# -- arguments and repr ----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"retry": Timeouts()},
        {"timeouts": RetryPolicy()},
        {"retry": {"max_tries": 1}},
        {"timeouts": 5},
        {"timeouts": 5.0},
        {"retry": "RetryPolicy()"},
    ],
    ids=repr,
)
def test_bad_argument_types_are_refused(make_manager: Make, options: dict[str, Any]) -> None:
    manager = make_manager()
    with pytest.raises(asyncdeleter.ConfigurationError):
        manager.with_options(**options)


async def test_a_view_is_a_session_manager_and_its_repr_says_it_is_a_view(
    make_manager: Make,
) -> None:
    async with make_manager() as manager:
        view = manager.with_options(timeouts=Timeouts(read=3))
        assert isinstance(view, SessionManager)
        assert view is not manager
        assert "view" in repr(view)
        assert "view" not in repr(manager)
        assert "view" in repr(view.with_options())
        assert view.endpoints == manager.endpoints
        assert view.project_id == manager.project_id
        assert view.max_concurrency == manager.max_concurrency


# -- every kind of call through a view -------------------------------------------------


async def test_bulk_runs_reads_listings_sweeps_and_waits_use_the_views_policy(
    make_manager: Make,
) -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.05) as emu:
        emu.add_sessions("ws-1", ["s1", "s2"])
        emu.add_sessions("ws-2", ["t1", "t2"])
        emu.add_workspaces(PROJECT, ["w1", "w2", "w3"])
        for api in (
            "CloseSqlSession",
            "ShowSqlSession",
            "ListSqlSessions",
            "DeleteWorkspace",
            "ShowWorkspace",
            "ListWorkspace",
        ):
            emu.add_fault(Fault(status=503, api=api, nth=1))  # each path's first request
        by_manager: list[RetryDetails] = []
        by_view: list[RetryDetails] = []
        manager_policy = RetryPolicy(wait=False, on_retry=[by_manager.append])
        view_policy = RetryPolicy(
            wait=False,
            on_retry=[by_view.append],
            poll_initial_wait=0.02,
            poll_max_wait=0.05,
        )
        async with make_manager(endpoints=emu.endpoints(), retry=manager_policy) as manager:
            view = manager.with_options(retry=view_policy)
            report = await view.close_sessions([("ws-1", "s1")])
            assert report.succeeded == 1
            shown = await view.show_session("ws-1", "s2")
            listed = [w.workspace_id async for w in view.list_workspaces()]
            swept = await view.sweep_sessions("ws-2")
            deleted = await view.delete_workspaces(["w1"]).wait()
            confirmed = await view.delete_workspace("w2", wait=True)
            await view.show_workspace("w3")
    assert shown.session_id == "s2"
    assert sorted(listed) == ["w1", "w2", "w3"]
    assert swept.succeeded == 2
    assert deleted.succeeded == 1
    assert confirmed.confirmed
    assert emu.sessions("ws-1") == {"s2"}
    assert emu.sessions("ws-2") == frozenset()
    assert emu.workspaces(PROJECT) == {"w3"}
    assert by_manager == []  # no retry of the view's was the manager's
    retried = {(d.operation, d.target) for d in by_view}
    assert {
        ("close_session", "ws-1/s1"),
        ("show_session", "ws-1/s2"),
        ("list_workspaces", PROJECT),
        ("list_sessions", "ws-2"),
        ("close_session", "ws-2/t1"),
        ("close_session", "ws-2/t2"),
        ("delete_workspace", "w1"),
        ("delete_workspace", "w2"),
        ("show_workspace", "w2"),
        ("show_workspace", "w3"),
    } <= retried
