"""``asyncdeleter demo``: the main job, end to end, with no cloud account.

An emulator with realistic latency and a few injected faults runs in this process; the demo
creates the resources, tears every one down through the SDK's bulk API with the progress
bar, prints the summary, and checks that the emulator is empty at the end. Then a sweep:
sessions of mixed status and age, of which only the RUNNING ones older than two hours
are closed, and a check that exactly the others are left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from asyncdeleter import BulkReport, BulkRun, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.operations import CLOSE_SESSIONS, DELETE_WORKSPACES, SWEEP_SESSIONS
from asyncdeleter._cli.teardown import EXIT_FAILED, EXIT_OK
from asyncdeleter.testing import Emulator, Fault, FaultKind

__all__ = ["run_demo"]

DEMO_TOKEN = "demo-token"  # noqa: S105 - the in-process emulator's throwaway credential
PROJECT = "demo-project"
SESSIONS_PER_WORKSPACE = 100
SWEPT_WORKSPACE: Final = "demo-sweep"
#: The sweep's sessions: (status, age in hours, how many). It closes RUNNING ones > 2 h old.
SWEEP_SEED: Final = (
    ("RUNNING", 26.0, 15),
    ("RUNNING", 3.0, 25),
    ("RUNNING", 0.5, 30),
    ("WAITING", 3.0, 20),
    ("FAIL", 26.0, 10),
)
SWEEP_AGE: Final = timedelta(hours=2)


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
            emptied = left == (0, 0) and sessions_report.ok and workspaces_report.ok
            if emptied:
                display.message(
                    f"emulator is empty: all {sessions:,} sessions and {workspaces:,} "
                    "workspaces are gone"
                )
            else:
                display.message(
                    f"NOT empty: {left[0]:,} sessions and {left[1]:,} workspaces remain"
                )
            swept = await _sweep(emu, manager, display)
        display.note(
            f"emulator answered {emu.request_count:,} requests, "
            f"{emu.faults_injected:,} faults injected"
        )
    return EXIT_OK if emptied and swept else EXIT_FAILED


def _seed_sweep(emu: Emulator) -> frozenset[str]:
    """Sessions of mixed status and age; return those the sweep must leave."""
    now = datetime.now(UTC)
    kept = set()
    for status, hours, count in SWEEP_SEED:
        created = (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ids = [f"{status.lower()}-{hours:g}h-{i:02d}" for i in range(count)]
        emu.add_sessions(SWEPT_WORKSPACE, ids, status=status, create_time=created)
        if not (status == "RUNNING" and timedelta(hours=hours) > SWEEP_AGE):
            kept.update(ids)
    return frozenset(kept)


async def _sweep(emu: Emulator, manager: SessionManager, display: Display) -> bool:
    """Sweep the old RUNNING sessions; whether exactly the others survived."""
    kept = _seed_sweep(emu)
    seeded = len(emu.sessions(SWEPT_WORKSPACE))
    report = await manager.sweep_sessions(SWEPT_WORKSPACE, status="RUNNING", older_than=SWEEP_AGE)
    left = emu.sessions(SWEPT_WORKSPACE)
    young = sum(n for status, hours, n in SWEEP_SEED if status == "RUNNING" and hours < 2)
    display.message(
        f"{SWEEP_SESSIONS.command} {SWEPT_WORKSPACE} --status RUNNING --older-than 2h: "
        f"closed {report.succeeded + report.already_gone:,} of {seeded:,}; "
        f"{len(left):,} left ({young:,} RUNNING but younger, "
        f"{len(left) - young:,} in other statuses)"
    )
    if left == kept and report.ok:
        return True
    display.message(f"NOT as planned: {len(left ^ kept):,} sessions closed or left by mistake")
    return False


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
