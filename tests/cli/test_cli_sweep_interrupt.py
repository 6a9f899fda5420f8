"""Ctrl-C during a sweep: every item it took is recorded, and a retry or new sweep finishes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_support import (
    PIPE,
    clean_env,
    cli,
    committed_paths,
    deletes,
    endpoint_args,
    items,
    records,
    validate,
)

from asyncdeleter.testing import Emulator

N = 1500
OLD = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
YOUNG = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def until(condition: Callable[[], bool], limit: float = 30) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling another process's effect
            await asyncio.sleep(0.01)


def seed(emu: Emulator) -> None:
    emu.add_sessions("ws-1", [f"s{i:04d}" for i in range(N)], create_time=OLD)
    emu.add_sessions("ws-1", ["young"], create_time=YOUNG)


async def start_sweep(
    emu: Emulator, token_file: Path, report: Path, concurrency: int
) -> tuple[asyncio.subprocess.Process, list[str]]:
    args = ["sweep-sessions", "--workspace-id", "ws-1", "--older-than", "2h", "--apply",
            "--yes", "--concurrency", str(concurrency), "--report", str(report),
            *endpoint_args(emu, token_file)]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", *args, stdout=PIPE, stderr=PIPE, env=clean_env()
    )
    return process, args


def recorded(report: Path) -> dict[str, dict[str, object]]:
    """Item records by session id; each session recorded at most once."""
    found = items(report)
    by_id = {r["target"]["session_id"]: r for r in found}
    assert len(by_id) == len(found)
    return by_id


async def finish(emu: Emulator, args: list[str]) -> None:
    """Running the sweep again closes the rest, and nothing was ever deleted twice."""
    emu.latency = 0.0
    report = Path(args[args.index("--report") + 1])
    again = [str(report.with_name("again.jsonl")) if a == str(report) else a for a in args]
    code, _, err = await cli(*again, limit=120)
    assert code == 0, err
    assert emu.sessions("ws-1") == {"young"}
    counts = committed_paths(emu)
    assert len(counts) == N
    assert set(counts.values()) == {1}


async def test_one_ctrl_c_records_every_item_taken_and_marks_the_listing_incomplete(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.05
    seed(emu)
    report = tmp_path / "r.jsonl"
    process, args = await start_sweep(emu, token_file, report, 8)
    await until(lambda: len(deletes(emu)) > 40)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    assert emu.in_flight == 0
    found = records(report)
    validate(found)
    kinds = [r["record"] for r in found]
    assert kinds[0] == "header"
    assert kinds[-2:] == ["incomplete", "summary"]
    assert found[-1]["interrupted"] is True
    by_id = recorded(report)
    committed = {path.rsplit("/", 1)[-1] for path in committed_paths(emu)}
    succeeded = {sid for sid, r in by_id.items() if r["result"] == "succeeded"}
    assert committed == succeeded  # every delete that happened is recorded, no other
    assert {r["result"] for r in by_id.values()} <= {"succeeded", "skipped"}
    assert "young" not in by_id
    assert len(by_id) < N  # interrupted: the listing was not read to its end
    assert "run the sweep again" in err.decode()
    # Replaying the report finishes what it took; the new sweep finds the rest.
    code, _, err2 = await cli(
        "sweep-sessions", "--retry-from", str(report), "--apply", "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err2
    assert "does not cover the whole listing" in err2
    assert not {f"s{i:04d}" for i in range(N)} & set(by_id) & emu.sessions("ws-1")
    await finish(emu, args)


async def test_a_second_ctrl_c_records_the_requests_it_cuts_off(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.4
    seed(emu)
    report = tmp_path / "r.jsonl"
    process, args = await start_sweep(emu, token_file, report, 32)
    await until(lambda: len(deletes(emu)) > 40)
    process.send_signal(signal.SIGINT)
    await asyncio.sleep(0.1)
    assert emu.in_flight > 0
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    found = records(report)
    validate(found)
    assert found[-1]["record"] == "summary"
    by_id = recorded(report)
    cut_off = {sid for sid, r in by_id.items() if r["result"] == "failed"}
    assert cut_off  # the requests in flight at the second Ctrl-C are recorded, not lost
    assert {by_id[sid]["error_code"] for sid in cut_off} == {"Interrupted"}
    committed = {path.rsplit("/", 1)[-1] for path in committed_paths(emu)}
    succeeded = {sid for sid, r in by_id.items() if r["result"] == "succeeded"}
    assert succeeded <= committed <= succeeded | cut_off  # nothing deleted goes unrecorded
    await finish(emu, args)
