"""``asyncdeleter demo``: the main job, end to end, with no cloud account.

An emulator with realistic latency and a few injected faults runs in this process; the demo
creates the resources, tears every one down through the SDK's bulk API with the progress
bar, prints the summary, and checks that the emulator is empty at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from asyncdeleter import BulkReport, BulkRun, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.operations import CLOSE_SESSIONS, DELETE_WORKSPACES
from asyncdeleter._cli.teardown import EXIT_FAILED, EXIT_OK
from asyncdeleter.testing import Emulator, Fault, FaultKind

__all__ = ["run_demo"]

DEMO_TOKEN = "demo-token"  # noqa: S105 - the in-process emulator's throwaway credential
PROJECT = "demo-project"
SESSIONS_PER_WORKSPACE = 100


def _faults() -> list[Fault]:
    return [
        Fault(status=500, probability=0.01),
        Fault(status=503, probability=0.005),
        Fault(status=500, probability=0.002, commit=True),  # deleted, then an error
        Fault(kind=FaultKind.DROP, probability=0.002, commit=True),  # deleted, then hung up
        Fault(status=429, retry_after="1", times=1),  # one throttling pause, honoured
    ]


def _session_targets(count: int) -> Iterator[tuple[str, str]]:
    for i in range(count):
        yield (f"demo-ws-{i // SESSIONS_PER_WORKSPACE:04d}", f"sess-{i:06d}")


async def run_demo(sessions: int, workspaces: int, concurrency: int, display: Display) -> int:
    """Run the demo; return 0 when every resource is gone, 1 otherwise."""
    emu = Emulator(
        token=DEMO_TOKEN,
        latency=0.015,
        latency_jitter=0.02,
        faults=_faults(),
        seed=2026,
        record_requests=False,
    )
    for workspace_id, session_id in _session_targets(sessions):
        emu.add_sessions(workspace_id, (session_id,))
    emu.add_workspaces(PROJECT, (f"demo-w-{i:05d}" for i in range(workspaces)))
    async with emu:
        display.note(
            f"emulator on {emu.url}: {emu.session_count:,} SQL sessions, "
            f"{emu.workspace_count:,} workspaces; ~15-35 ms latency, ~2% injected faults"
        )
        policy = RetryPolicy(max_tries=8, initial_wait=0.05, max_wait=2.0)
        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=TokenAuth(DEMO_TOKEN),
            max_concurrency=concurrency,
            retry=policy,
        ) as manager:
            sessions_report = await _teardown(
                display,
                CLOSE_SESSIONS.command,
                sessions,
                manager.close_sessions(_session_targets(sessions)),
            )
            workspaces_report = await _teardown(
                display,
                DELETE_WORKSPACES.command,
                workspaces,
                manager.delete_workspaces(f"demo-w-{i:05d}" for i in range(workspaces)),
            )
        left = (emu.session_count, emu.workspace_count)
        display.note(
            f"emulator answered {emu.request_count:,} requests, "
            f"{emu.faults_injected:,} faults injected"
        )
    if left == (0, 0) and sessions_report.ok and workspaces_report.ok:
        display.message(
            f"emulator is empty: all {sessions:,} sessions and {workspaces:,} workspaces are gone"
        )
        return EXIT_OK
    display.message(f"NOT empty: {left[0]:,} sessions and {left[1]:,} workspaces remain")
    return EXIT_FAILED


async def _teardown(
    display: Display, label: str, total: int, run: BulkRun[Any]
) -> BulkReport[object]:
    display.start(label, total)
    started = time.monotonic()
    async for outcome in run:
        display.advance(outcome.kind, outcome.attempts)
    display.finish()
    report: BulkReport[object] = run.report
    counts = {
        "succeeded": report.succeeded,
        "already_gone": report.already_gone,
        "failed": report.failed,
        "invalid": report.invalid,
        "skipped": report.skipped,
    }
    display.summary(f"{label} ({time.monotonic() - started:.1f} s)", counts, report)
    return report
