"""Sweeps: list, filter, delete — exactly the matching set, each once, never the rest."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import asyncdeleter
from asyncdeleter import OutcomeKind, SessionManager
from asyncdeleter.testing import Emulator
from tests.conftest import PROJECT

Make = Callable[..., SessionManager]
STATUSES = ["RUNNING", "CLOSED", "WAITING", "CREATING", "FAIL"]


def iso(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_sessions(emulator: Emulator, n: int, seed: int = 3) -> set[str]:
    """Sessions of mixed status and age (ages far from 2 h); return those a sweep of
    RUNNING sessions older than 2 h must close."""
    rng = random.Random(seed)
    matching = set()
    for i in range(n):
        sid = f"s-{i:04d}"
        status = rng.choice(STATUSES)
        hours = rng.choice([0.1, 0.5, 1.0, 3.0, 5.0, 30.0])
        emulator.add_sessions("ws-1", [sid], status=status, create_time=iso(hours))
        if status == "RUNNING" and hours > 2:
            matching.add(sid)
    return matching


async def test_a_sweep_closes_exactly_the_matching_sessions(
    emulator: Emulator, make_manager: Make
) -> None:
    matching = seed_sessions(emulator, 1200)
    before = emulator.sessions("ws-1")
    async with make_manager(max_concurrency=16) as manager:
        run = manager.sweep_sessions("ws-1", status="RUNNING", older_than=timedelta(hours=2))
        report = await run
    closed = {o.target[1] for o in report.outcomes if o.kind is OutcomeKind.SUCCEEDED}
    assert closed == matching
    assert report.total == len(matching)
    assert report.failed == report.already_gone == 0
    assert emulator.sessions("ws-1") == before - matching  # the rest untouched


async def test_sessions_created_during_a_sweep_do_not_hide_the_old_ones(
    emulator: Emulator, make_manager: Make
) -> None:
    matching = seed_sessions(emulator, 1200, seed=5)
    created: list[str] = []

    async def create_while_sweeping() -> None:
        for k in range(200):
            sid = f"new-{k:03d}"
            emulator.add_sessions("ws-1", [sid], status="RUNNING", create_time=iso(10))
            created.append(sid)
            await asyncio.sleep(0.001)

    async with make_manager(max_concurrency=16) as manager:
        creator = asyncio.create_task(create_while_sweeping())
        report = await manager.sweep_sessions(
            "ws-1", status="RUNNING", older_than=timedelta(hours=2)
        )
        await creator
    closed = {o.target[1] for o in report.outcomes if o.kind is OutcomeKind.SUCCEEDED}
    assert matching <= closed  # nothing matching that existed at the start is left
    assert closed - matching <= set(created)  # new ones may or may not be taken
    assert not (emulator.sessions("ws-1") & matching)
    assert len(closed) == report.succeeded  # each once


async def test_a_dry_run_sends_no_delete_and_plans_what_the_sweep_then_deletes(
    emulator: Emulator, make_manager: Make
) -> None:
    matching = seed_sessions(emulator, 400, seed=9)
    async with make_manager() as manager:
        plan = await manager.sweep_sessions(
            "ws-1", status="RUNNING", older_than=timedelta(hours=2), dry_run=True
        )
        assert not [r for r in emulator.requests if r.method == "DELETE"]
        planned = {o.target[1] for o in plan.outcomes}
        assert {o.kind for o in plan.outcomes} == {OutcomeKind.PLANNED}
        assert plan.planned == len(planned) == len(matching)
        assert plan.ok
        done = await manager.sweep_sessions("ws-1", status="RUNNING", older_than=timedelta(hours=2))
    assert {o.target[1] for o in done.outcomes if o.kind is OutcomeKind.SUCCEEDED} == planned


@pytest.mark.parametrize("odd", [None, "", "yesterday", "not-a-time", True, [1]])
async def test_unknown_ages_are_never_swept(
    emulator: Emulator, make_manager: Make, odd: object
) -> None:
    emulator.add_sessions("ws-1", ["odd"], create_time=odd)
    emulator.add_sessions("ws-1", ["old"], create_time=iso(48))
    async with make_manager() as manager:
        report = await manager.sweep_sessions("ws-1", older_than=timedelta(hours=1))
    assert [o.target[1] for o in report.outcomes] == ["old"]
    assert "odd" in emulator.sessions("ws-1")


async def test_the_default_workspace_and_protected_ones_survive_a_sweep_without_filters(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_default_workspace(PROJECT)
    emulator.add_workspaces(PROJECT, ["w-keep"], name="Keep-Me")
    emulator.add_workspaces(PROJECT, ["w-prod"], name="prod")
    emulator.add_workspaces(PROJECT, [f"w-{i}" for i in range(30)])
    emulator.add_workspaces(PROJECT, ["w-named-default"], name="DEFAULT")
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(protected=["keep-me", "W-PROD"])
    assert report.succeeded == 30
    assert emulator.workspaces(PROJECT) == {"0", "w-keep", "w-prod", "w-named-default"}


async def test_a_name_prefix_is_matched_exactly(emulator: Emulator, make_manager: Make) -> None:
    """The service's name filter is fuzzy (a substring): only true prefixes go."""
    emulator.add_workspaces(PROJECT, ["a"], name="ci-123")
    emulator.add_workspaces(PROJECT, ["b"], name="xci-123")
    emulator.add_workspaces(PROJECT, ["c"], name="CI-123")
    emulator.add_workspaces(PROJECT, ["d"], name="prod")
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(name="ci-")
    assert [o.target for o in report.outcomes] == ["a"]
    assert emulator.workspaces(PROJECT) == {"b", "c", "d"}


async def test_a_workspace_that_refuses_to_go_is_one_failure_not_a_loop(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, [f"w-{i}" for i in range(20)])
    emulator.forbid("w-7")
    async with make_manager() as manager:
        report = await manager.sweep_workspaces()
    assert report.total == 20
    assert report.failed == 1
    assert report.failures[0].target == "w-7"
    assert isinstance(report.failures[0].error, asyncdeleter.PermissionDeniedError)


async def test_a_sweep_with_wait_confirms_each_and_reports_failed_deletions() -> None:
    async with Emulator(deleting_seconds=0.1) as emu:
        emu.add_workspaces(PROJECT, [f"w-{i}" for i in range(12)], status="NORMAL")
        emu.fail_deletion("w-3", reason="still bound")
        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=asyncdeleter.TokenAuth("test-token"),
            retry=asyncdeleter.RetryPolicy(poll_initial_wait=0.02, poll_max_wait=0.1),
        ) as manager:
            report = await manager.sweep_workspaces(status="NORMAL", wait=True)
        assert report.succeeded == 11
        assert [o.target for o in report.failures] == ["w-3"]
        assert emu.workspaces(PROJECT) == {"w-3"}


async def test_where_and_status_on_workspaces(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_workspaces(PROJECT, ["n1", "n2"], status="NORMAL", extra={"owner": "ci-bot"})
    emulator.add_workspaces(PROJECT, ["n3"], status="NORMAL", extra={"owner": "alice"})
    emulator.add_workspaces(PROJECT, ["f1"], status="DELETE_FAILED", extra={"owner": "ci-bot"})
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(
            status="NORMAL", where=lambda w: w.owner == "ci-bot"
        )
    assert sorted(o.target for o in report.outcomes) == ["n1", "n2"]


def test_bad_sweep_filters_are_refused_before_any_io() -> None:
    manager = SessionManager(
        endpoints=asyncdeleter.Endpoints(
            fabric="http://127.0.0.1:9", modelarts="http://127.0.0.1:9"
        ),
        project_id=PROJECT,
        auth=asyncdeleter.TokenAuth("test-token"),
    )
    with pytest.raises(asyncdeleter.ConfigurationError):
        manager.sweep_workspaces(protected="w-1")  # one str: its letters would be protected
    with pytest.raises(asyncdeleter.ConfigurationError):
        manager.sweep_sessions("ws-1", older_than=timedelta(hours=-1))
    with pytest.raises(asyncdeleter.InvalidIdentifierError):
        manager.sweep_workspaces(status="GONE")
    with pytest.raises(asyncdeleter.InvalidIdentifierError):
        manager.sweep_sessions("ws/1")


async def test_protected_and_default_names_match_whatever_their_spacing_and_case(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["w-1"], name=" keep ")
    emulator.add_workspaces(PROJECT, ["w-2"], name="Default ")
    emulator.add_workspaces(PROJECT, ["w-3"], name="ci-1")
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(protected=["KEEP"])
    assert [o.target for o in report.outcomes] == ["w-3"]


async def test_a_protected_workspace_refuses_a_session_sweep(make_manager: Make) -> None:
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.ConfigurationError, match="protected"):
            manager.sweep_sessions("ws-keep", protected=["WS-KEEP"])


async def test_an_absurd_time_is_unknown_not_fatal(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["huge"], create_time=10**400)
    emulator.add_sessions("ws-1", ["old"], create_time=iso(48))
    async with make_manager() as manager:
        report = await manager.sweep_sessions("ws-1", older_than=timedelta(hours=1))
    assert [o.target[1] for o in report.outcomes] == ["old"]
