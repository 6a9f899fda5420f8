"""Listing against the emulator: lazy pages, each item exactly once, even under deletion."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

import asyncdeleter
from asyncdeleter import SessionManager
from asyncdeleter.testing import Emulator
from tests.conftest import NO_WAIT, PROJECT, TOKEN

Make = Callable[..., SessionManager]


def manager_for(emu: Emulator, **options: object) -> SessionManager:
    return SessionManager(
        endpoints=emu.endpoints(),
        project_id=PROJECT,
        auth=asyncdeleter.TokenAuth(TOKEN),
        retry=NO_WAIT,
        **options,  # type: ignore[arg-type]
    )


def list_requests(emu: Emulator, api: str) -> int:
    return sum(1 for r in emu.requests if r.api == api)


async def test_listing_1200_sessions_yields_each_once(
    emulator: Emulator, make_manager: Make
) -> None:
    ids = [f"s-{i:04d}" for i in range(1200)]
    emulator.add_sessions("ws-1", ids)
    async with make_manager() as manager:
        seen = [s.session_id async for s in manager.list_sessions("ws-1")]
    assert sorted(seen) == ids
    assert list_requests(emulator, "ListSqlSessions") <= 14  # 12 pages of 100, about


async def test_closing_every_session_while_listing_skips_none(
    emulator: Emulator, make_manager: Make
) -> None:
    """The offset-paging trap: close each page as it arrives; the next page must not skip."""
    ids = [f"s-{i:04d}" for i in range(1200)]
    emulator.add_sessions("ws-1", ids)
    async with make_manager() as manager:
        seen = []
        async for session in manager.list_sessions("ws-1", page_size=50):
            seen.append(session.session_id)
            await manager.close_session("ws-1", session.session_id)
    assert sorted(seen) == ids
    assert len(seen) == len(set(seen))
    assert emulator.sessions("ws-1") == frozenset()
    plain_pages = 1200 / 50
    assert list_requests(emulator, "ListSqlSessions") <= 2 * plain_pages + 2


async def test_a_bulk_close_fed_by_a_listing_closes_each_once(
    emulator: Emulator, make_manager: Make
) -> None:
    """Deletions lag the listing (in flight on other tasks): still each item once."""
    ids = [f"s-{i:04d}" for i in range(1200)]
    emulator.add_sessions("ws-1", ids)
    async with make_manager(max_concurrency=16) as manager:
        pairs = (("ws-1", s.session_id) async for s in manager.list_sessions("ws-1", page_size=40))
        report = await manager.close_sessions(pairs, missing_ok=False)
    assert report.succeeded == 1200, report
    assert report.failed == report.already_gone == 0
    assert emulator.sessions("ws-1") == frozenset()


async def test_someone_else_deleting_seen_items_does_not_make_us_skip(
    emulator: Emulator, make_manager: Make
) -> None:
    """Another client closes what we already listed: the listing steps back, skips nothing."""
    ids = [f"s-{i:04d}" for i in range(600)]
    emulator.add_sessions("ws-1", ids)
    async with make_manager() as manager, manager_for(emulator) as other:
        seen: list[str] = []
        async for session in manager.list_sessions("ws-1", page_size=30):
            seen.append(session.session_id)
            if len(seen) % 30 == 0:  # at each page boundary, the other closes the page
                for sid in seen[-30:]:
                    await other.close_session("ws-1", sid)
    assert sorted(seen) == ids


async def test_listing_filters_by_status_on_the_server(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["a", "b"], status="RUNNING")
    emulator.add_sessions("ws-1", ["c"], status="CLOSED")
    async with make_manager() as manager:
        running = [s.session_id async for s in manager.list_sessions("ws-1", status="RUNNING")]
        with pytest.raises(asyncdeleter.InvalidIdentifierError):
            manager.list_sessions("ws-1", status="running; drop")
        with pytest.raises(asyncdeleter.InvalidIdentifierError):
            manager.list_sessions("ws/1")
        with pytest.raises(ValueError, match="page_size"):
            manager.list_sessions("ws-1", page_size=101)
    assert sorted(running) == ["a", "b"]
    assert all("status=RUNNING" in r.query for r in emulator.requests if r.api == "ListSqlSessions")


@pytest.mark.parametrize("reading", ["record", "page"])
async def test_2500_workspaces_under_either_offset_reading(reading: str) -> None:
    async with Emulator(token=TOKEN, modelarts_offset=reading) as emu:  # type: ignore[arg-type]
        ids = [f"w-{i:04d}" for i in range(2500)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu) as manager:
            seen = [w.workspace_id async for w in manager.list_workspaces(page_size=300)]
    assert sorted(seen) == ids
    assert len(seen) == 2500


@pytest.mark.parametrize("reading", ["record", "page"])
async def test_deleting_workspaces_while_listing_under_either_reading(reading: str) -> None:
    async with Emulator(token=TOKEN, modelarts_offset=reading) as emu:  # type: ignore[arg-type]
        ids = [f"w-{i:04d}" for i in range(2500)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu, max_concurrency=32) as manager:
            listing = (w.workspace_id async for w in manager.list_workspaces(page_size=200))
            report = await manager.delete_workspaces(listing, missing_ok=False)
        assert report.succeeded == 2500, report
        assert emu.workspaces(PROJECT) == frozenset()


async def test_workspaces_that_stay_deleting_are_listed_once() -> None:
    """Deleted workspaces stay in the listing (DELETING) for a while: no repeats, no loop."""
    async with Emulator(token=TOKEN, deleting_seconds=30.0) as emu:
        ids = [f"w-{i:04d}" for i in range(900)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu) as manager:
            seen = []
            async for ws in manager.list_workspaces(page_size=100):
                seen.append(ws.workspace_id)
                await manager.delete_workspace(ws.workspace_id)
        assert sorted(seen) == ids
        assert {emu.workspace_status(PROJECT, w) for w in ids} == {"DELETING"}


async def test_random_deletions_by_us_and_others_never_skip_or_repeat() -> None:
    rng = random.Random(7)
    async with Emulator(token=TOKEN) as emu:
        ids = [f"s-{i:04d}" for i in range(800)]
        emu.add_sessions("ws-1", ids)
        async with manager_for(emu) as manager, manager_for(emu) as other:
            seen: list[str] = []
            async for session in manager.list_sessions("ws-1", page_size=25):
                seen.append(session.session_id)
                roll = rng.random()
                if roll < 0.5:
                    await manager.close_session("ws-1", session.session_id)
                elif roll < 0.6 and len(seen) > 3:
                    # Someone else closes an item we have already listed.
                    victim = rng.choice(seen[:-1])
                    await other.close_session("ws-1", victim, missing_ok=True)
        assert len(seen) == len(set(seen))
        assert sorted(seen) == ids


async def test_an_abandoned_listing_stops_fetching(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", [f"s-{i}" for i in range(500)])
    async with make_manager() as manager:
        async for _ in manager.list_sessions("ws-1", page_size=10):
            break
        await asyncio.sleep(0.05)
    assert list_requests(emulator, "ListSqlSessions") == 1


async def test_a_listing_of_a_missing_workspace_is_not_found(
    emulator: Emulator, make_manager: Make
) -> None:
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.ParentNotFoundError) as info:
            [s async for s in manager.list_sessions("nope")]
    assert "nope" in str(info.value)
    assert (info.value.parent_kind, info.value.parent_id) == ("workspace", "nope")


@pytest.mark.parametrize("page_size", [2, 4])
async def test_workspaces_that_vanish_later_never_stall_a_small_page_listing(
    page_size: int,
) -> None:
    """ModelArts keeps a deleted workspace listed while DELETING, then drops it: the list
    moves long after our DELETE. Small pages must still list everything once, and end."""
    async with Emulator(token=TOKEN, deleting_seconds=0.2) as emu:
        ids = [f"w-{i:04d}" for i in range(200)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu, max_concurrency=16) as manager:
            pending: set[asyncio.Task[object]] = set()
            seen = []
            async for ws in manager.list_workspaces(page_size=page_size):
                seen.append(ws.workspace_id)
                task = asyncio.create_task(manager.delete_workspace(ws.workspace_id))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
    assert sorted(seen) == ids
