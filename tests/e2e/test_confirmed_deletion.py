"""``wait=True``: a deletion reported done only when the workspace is really gone."""

from __future__ import annotations

import asyncio

import pytest

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryPolicy, SessionManager
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, TOKEN, until

#: Polls every few tens of milliseconds, so a test waits for the emulator, not for 1 s polls.
FAST_POLLS = RetryPolicy(wait=False, poll_initial_wait=0.02, poll_max_wait=0.1)


def manager_for(emu: Emulator, **options: object) -> SessionManager:
    settings: dict[str, object] = {
        "endpoints": emu.endpoints(),
        "project_id": PROJECT,
        "auth": asyncdeleter.TokenAuth(TOKEN),
        "retry": FAST_POLLS,
    }
    settings.update(options)
    return SessionManager(**settings)  # type: ignore[arg-type]


def shows(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.api == "ShowWorkspace")


async def test_wait_returns_only_once_the_workspace_is_gone() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.3) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        async with manager_for(emu) as manager:
            gone = await manager.delete_workspace("ws-1", wait=True)
            assert emu.workspace_status(PROJECT, "ws-1") is None  # really gone by now
        assert gone.confirmed
        assert not gone.already_gone
        assert shows(emu) >= 2  # it saw DELETING first, then the 404


async def test_without_wait_the_deletion_is_only_accepted() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=30) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        async with manager_for(emu) as manager:
            accepted = await manager.delete_workspace("ws-1")
            shown = await manager.show_workspace("ws-1")
        assert not accepted.confirmed
        assert shown.status == "DELETING"
        assert shows(emu) == 1


async def test_delete_failed_raises_with_the_reason() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.1) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.fail_deletion("ws-1", reason="the workspace still has running jobs")
        async with manager_for(emu) as manager:
            with pytest.raises(asyncdeleter.DeletionFailedError) as info:
                await manager.delete_workspace("ws-1", wait=True)
        assert info.value.status_info == "the workspace still has running jobs"
        assert "DELETE_FAILED" in str(info.value)
        assert emu.workspace_status(PROJECT, "ws-1") == "DELETE_FAILED"


async def test_still_deleting_at_wait_timeout_raises() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        async with manager_for(emu) as manager:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(asyncdeleter.WaitTimeoutError) as info:
                await manager.delete_workspace("ws-1", wait=True, wait_timeout=0.5)
            took = loop.time() - started
        assert isinstance(info.value, TimeoutError)
        assert info.value.last_status == "DELETING"
        assert took >= 0.5  # one-sided: the wait is kept, never cut short
        assert took < 10.0  # and it ends (generous: a busy machine)


async def test_cancelling_a_wait_sends_no_more_polls() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        async with manager_for(emu) as manager:
            task = asyncio.create_task(manager.delete_workspace("ws-1", wait=True))
            await until(lambda: shows(emu) >= 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            polls = shows(emu)
            await asyncio.sleep(0.3)
            assert shows(emu) == polls


async def test_missing_ok_and_already_gone_is_confirmed_without_polling() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_default_workspace(PROJECT)  # a real project lists its default workspace: it exists
        async with manager_for(emu) as manager:
            gone = await manager.delete_workspace("ws-1", missing_ok=True, wait=True)
        assert gone.already_gone
        assert gone.confirmed
        assert shows(emu) == 0


async def test_a_gateway_404_never_confirms_a_deletion() -> None:
    """A 404 from the gateway (no such API: a wrong endpoint) says nothing of the workspace."""
    body = b'{"error_code": "APIG.0101", "error_msg": "The API does not exist"}'
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_fault(Fault(api="ShowWorkspace", status=404, body=body))
        async with manager_for(emu) as manager:
            with pytest.raises(asyncdeleter.EndpointNotServedError) as info:
                await manager.delete_workspace("ws-1", wait=True)
        assert not isinstance(info.value, asyncdeleter.NotFoundError)
        assert "accepted but not confirmed" in str(info.value)


async def test_a_refused_poll_says_the_deletion_was_accepted() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_fault(Fault(api="ShowWorkspace", status=403))
        async with manager_for(emu) as manager:
            with pytest.raises(asyncdeleter.PermissionDeniedError) as info:
                await manager.delete_workspace("ws-1", wait=True)
        assert "accepted but not confirmed" in str(info.value)


async def test_a_poll_that_fails_transiently_is_polled_again() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.2) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_fault(Fault(api="ShowWorkspace", kind=FaultKind.STATUS, status=502, times=8))
        async with manager_for(emu, retry=RetryPolicy(
            wait=False, max_tries=2, poll_initial_wait=0.02, poll_max_wait=0.05
        )) as manager:  # fmt: skip
            gone = await manager.delete_workspace("ws-1", wait=True)
        assert gone.confirmed


async def test_a_bulk_wait_succeeds_only_for_confirmed_workspaces() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=0.2) as emu:
        ids = [f"w-{i}" for i in range(60)]
        emu.add_workspaces(PROJECT, ids)
        emu.fail_deletion("w-7", "w-8", reason="bound to a pool")
        async with manager_for(emu, max_concurrency=8) as manager:
            report = await manager.delete_workspaces(ids, wait=True)
        assert report.succeeded == 58
        assert report.failed == 2
        failed = {o.target: o.error for o in report.failures}
        assert set(failed) == {"w-7", "w-8"}
        assert all(isinstance(e, asyncdeleter.DeletionFailedError) for e in failed.values())
        assert emu.workspaces(PROJECT) == {"w-7", "w-8"}


async def test_polls_never_hold_a_slot_and_confirmations_stay_bounded() -> None:
    """Thousands waiting: in flight stays within max_concurrency; at most 8 x C in progress."""
    concurrency = 10
    async with Emulator(token=TOKEN, deleting_seconds=0.5) as emu:
        ids = [f"w-{i:04d}" for i in range(2000)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu, max_concurrency=concurrency) as manager:
            run = manager.delete_workspaces(ids, wait=True)
            peak_pending = 0

            async def watch() -> None:
                nonlocal peak_pending
                while True:
                    deleting = sum(
                        1 for w in ids[::1] if emu.workspace_status(PROJECT, w) == "DELETING"
                    )
                    peak_pending = max(peak_pending, deleting)
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            report = await run
            watcher.cancel()
        assert report.succeeded == 2000, report
        assert emu.peak_in_flight <= concurrency
        assert 0 < peak_pending <= 8 * concurrency
        assert emu.workspaces(PROJECT) == frozenset()


async def test_stop_during_a_bulk_wait_sends_no_more_polls() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        ids = [f"w-{i}" for i in range(20)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu, max_concurrency=4) as manager:
            run = manager.delete_workspaces(ids, wait=True)
            task = asyncio.create_task(run.wait())
            await until(lambda: shows(emu) >= 4)
            run.stop()
            report = await task
            polls = shows(emu)
            await asyncio.sleep(0.3)
            assert shows(emu) == polls
        assert report.succeeded == 0
        assert report.failed + report.skipped == 20
        assert all(o.safe_to_retry for o in report.failures)
        assert {o.kind for o in report.outcomes} <= {OutcomeKind.FAILED, OutcomeKind.SKIPPED}


@pytest.mark.parametrize(
    "body",
    [
        b'{"error_code": "ModelArts.0103", "error_msg": "project p does not exist"}',
        b'{"error_code": "common.01000001", "error_msg": "not found"}',
    ],
)
async def test_only_the_workspace_gone_code_confirms(body: bytes) -> None:
    """A 404 with another code (the project's, say) proves nothing: the listing decides."""
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_fault(Fault(api="ShowWorkspace", status=404, body=body))
        async with manager_for(emu) as manager:
            # The listing still shows ws-1 DELETING: not confirmed, whatever the poll said.
            with pytest.raises(asyncdeleter.WaitTimeoutError) as info:
                await manager.delete_workspace("ws-1", wait=True, wait_timeout=1)
            assert info.value.last_status == "DELETING"
            # A DELETE's 404 with such a code: "already gone" only if the listing agrees...
            emu.add_fault(Fault(api="DeleteWorkspace", status=404, body=body))
            gone = await manager.delete_workspace("ws-2", missing_ok=True)
            assert gone.already_gone
            # ...and never while the listing still shows the workspace.
            with pytest.raises(asyncdeleter.UnverifiedNotFoundError, match="still shows"):
                await manager.delete_workspace("ws-1", missing_ok=True)
        assert emu.workspace_status(PROJECT, "ws-1") == "DELETING"


async def test_a_stop_during_confirmation_says_the_deletion_was_accepted() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        ids = [f"w-{i}" for i in range(6)]
        emu.add_workspaces(PROJECT, ids)
        async with manager_for(emu, max_concurrency=6) as manager:
            run = manager.delete_workspaces(ids, wait=True)
            task = asyncio.create_task(run.wait())
            await until(lambda: shows(emu) >= 6)
            run.stop()
            report = await task
    assert report.failed == 6
    for outcome in report.failures:
        assert isinstance(outcome.error, asyncdeleter.WaitTimeoutError)
        assert outcome.error.stopped
        assert "accepted" in str(outcome.error)
        assert outcome.attempts >= 2  # the DELETE and at least one poll went out
        assert outcome.safe_to_retry
