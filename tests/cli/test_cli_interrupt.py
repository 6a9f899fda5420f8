"""Nothing lost on interruption: every input line is in the report, and a retry finishes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli_support import (
    PIPE,
    clean_env,
    cli,
    committed_paths,
    deletes,
    endpoint_args,
    items,
    records,
)

from asyncdeleter.testing import Emulator
from tests.raw_server import RawRequest, RawServer, answer

N = 3000


def sessions_file(tmp_path: Path, count: int = N) -> Path:
    source = tmp_path / "in.txt"
    source.write_text("".join(f"ws-1 s{i}\n" for i in range(count)))
    return source


async def start(*args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", *args,
        stdin=stdin, stdout=PIPE, stderr=PIPE, env=clean_env(),
    )  # fmt: skip


async def until(condition: Callable[[], bool], limit: float = 30) -> None:
    """Poll the emulator's counters (they have no event to wait on)."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling another process's effect
            await asyncio.sleep(0.01)


def assert_every_line_once(report: Path, count: int = N) -> list[dict[str, object]]:
    found = items(report)
    assert sorted(r["line"] for r in found) == list(range(1, count + 1))  # type: ignore[type-var]
    return found


def assert_report_agrees(emu: Emulator, found: list[dict[str, object]]) -> None:
    """Items the report marks done are gone; items still held were not marked done."""
    held = emu.sessions("ws-1")
    for record in found:
        session = record["target"]["session_id"]  # type: ignore[index]
        if record["result"] in ("succeeded", "already_gone"):
            assert session not in held, record


async def finish_with_report_alone(emu: Emulator, token_file: Path, report: Path) -> None:
    """``--retry-from REPORT`` alone empties the workspace; nothing is deleted twice."""
    done_before = {
        f"/v1/workspaces/ws-1/sessions/{r['target']['session_id']}"
        for r in items(report)
        if r["result"] in ("succeeded", "already_gone")
    }
    seen = len(emu.requests)
    emu.latency = 0.0
    second = report.with_name("second.jsonl")
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", "--report", str(second),
        *endpoint_args(emu, token_file), limit=120,
    )  # fmt: skip
    assert code == 0, err
    assert emu.sessions("ws-1") == frozenset()
    counts = committed_paths(emu)
    assert len(counts) == N
    assert set(counts.values()) == {1}  # every session deleted, none twice
    assert not done_before & {r.path for r in emu.requests[seen:]}  # done items not re-sent
    assert_every_line_once(second)  # the retry's report covers every line of the input too


async def test_one_ctrl_c_then_retry_from_report_alone_finishes(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.05
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", str(sessions_file(tmp_path)), "--yes", "--report", str(report),
        "--concurrency", "8", *endpoint_args(emu, token_file),
    )  # fmt: skip
    await until(lambda: emu.request_count > 50)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    assert emu.in_flight == 0
    found = assert_every_line_once(report)
    assert_report_agrees(emu, found)
    results = {str(r["result"]) for r in found}
    assert "skipped" in results
    assert "succeeded" in results
    assert records(report)[-1]["record"] == "summary"
    assert "--retry-from" in err.decode()
    await finish_with_report_alone(emu, token_file, report)


async def test_two_ctrl_c_then_retry_from_report_alone_finishes(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.4
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", str(sessions_file(tmp_path)), "--yes", "--report", str(report),
        "--concurrency", "32", *endpoint_args(emu, token_file),
    )  # fmt: skip
    await until(lambda: emu.request_count > 40)
    process.send_signal(signal.SIGINT)
    await asyncio.sleep(0.1)
    assert emu.in_flight > 0
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    found = assert_every_line_once(report)
    assert_report_agrees(emu, found)
    cut_off = [r for r in found if r["result"] == "failed"]
    assert cut_off  # the requests in flight at the second Ctrl-C are recorded, not lost
    assert records(report)[-1]["record"] == "summary"
    await finish_with_report_alone(emu, token_file, report)


async def test_sigterm_is_an_interruption_too(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.05
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", str(sessions_file(tmp_path)), "--yes", "--report", str(report),
        "--concurrency", "8", *endpoint_args(emu, token_file),
    )  # fmt: skip
    await until(lambda: emu.request_count > 20)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 128 + signal.SIGTERM
    assert_report_agrees(emu, assert_every_line_once(report))


async def test_an_interrupted_pipe_ends_incomplete_and_needs_its_input(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.05
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    source = sessions_file(tmp_path)
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", "-", "--yes", "--report", str(report), "--concurrency", "8",
        *endpoint_args(emu, token_file), stdin=PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(source.read_bytes())  # and never closed: a pipe that may never end
    await until(lambda: emu.request_count > 50)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    kinds = [r["record"] for r in records(report)]
    assert "incomplete" in kinds
    assert_report_agrees(emu, items(report))
    code, _, err_text = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2
    assert "incomplete" in err_text
    held = emu.sessions("ws-1")
    emu.latency = 0.0
    code, _, err_text = await cli(
        "close-sessions", "--retry-from", str(report), str(source), "--yes",
        *endpoint_args(emu, token_file), limit=120,
    )  # fmt: skip
    assert code == 0, err_text
    assert emu.sessions("ws-1") == frozenset()
    assert set(committed_paths(emu).values()) == {1}
    assert len(held) < N


async def test_a_killed_run_is_finished_with_its_input(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.05
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    source = sessions_file(tmp_path)
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", str(source), "--yes", "--report", str(report), "--concurrency", "8",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    await until(lambda: emu.request_count > 200)
    process.kill()
    await process.wait()
    await until(lambda: emu.in_flight == 0)
    assert_report_agrees(emu, items(report))  # every record written is true
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2
    assert "summary" in err
    done = {
        f"/v1/workspaces/ws-1/sessions/{r['target']['session_id']}"
        for r in items(report)
        if r["result"] == "succeeded"
    }
    assert done
    seen = len(emu.requests)
    emu.latency = 0.0
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), str(source), "--yes",
        *endpoint_args(emu, token_file), limit=120,
    )  # fmt: skip
    assert code == 0, err
    assert emu.sessions("ws-1") == frozenset()
    assert not done & {r.path for r in emu.requests[seen:]}
    assert set(committed_paths(emu).values()) == {1}


def whole_records(path: Path) -> list[dict[str, Any]]:
    """The records a reader sees now (a line still being written is not one yet)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


async def test_a_killed_run_has_recorded_every_answer_it_read(
    token_file: Path, tmp_path: Path
) -> None:
    """Each record reaches the file as its item ends, not in batches: kill -9 loses none.

    The server answers the first ``answered`` DELETEs and never the rest, so the run can
    end no other item: once quiet, its report must hold exactly those, and a SIGKILL then
    must not take any away.
    """
    answered, concurrency = 7, 4
    paths: list[str] = []

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE" and len(paths) < answered:
            paths.append(request.path)
            writer.write(answer(200))
            await writer.drain()
            return
        await asyncio.Event().wait()  # in flight for ever: the run cannot end it

    report = tmp_path / "r.jsonl"
    async with RawServer(script) as server:
        process = await start(
            "close-sessions", str(sessions_file(tmp_path, 100)), "--yes", "--report",
            str(report), "--concurrency", str(concurrency), "--no-preflight",
            "--fabric-endpoint", server.url, "--token-file", str(token_file),
        )  # fmt: skip
        try:
            await until(lambda: len(server.requests) == answered + concurrency)
            # Nothing else will happen in this run: what it read must be on disk already.
            await until(
                lambda: len([r for r in whole_records(report) if r["record"] == "item"]) == answered
            )
        finally:
            process.kill()
            await process.wait()
    found = records(report)
    assert found[0]["record"] == "header"
    done = [r for r in found if r["record"] == "item"]
    assert len(done) == answered
    assert {r["result"] for r in done} == {"succeeded"}
    recorded = {f"/v1/workspaces/ws-1/sessions/{r['target']['session_id']}" for r in done}
    assert recorded == set(paths)


async def test_a_torn_last_line_is_ignored_with_a_warning(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["s0", "s1"])
    source = sessions_file(tmp_path, 2)
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", str(source), "--dry-run", "--report", str(report),
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    header, first, _second, _summary = report.read_text().splitlines()
    report.write_text(f"{header}\n{first}\n{first[:25]}")  # killed mid-write
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), str(source), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    assert "torn" in err
    assert emu.sessions("ws-1") == frozenset()


async def test_ctrl_c_while_recording_the_rest_of_a_file_ends_incomplete(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    count = 400_000
    emu.latency = 0.05
    emu.add_sessions("ws-1", [f"s{i}" for i in range(100)])
    source = sessions_file(tmp_path, count)
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", str(source), "--yes", "--report", str(report), "--concurrency", "8",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert process.stderr is not None
    await until(lambda: emu.request_count > 10)
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        while b"recording the lines not started" not in await process.stderr.readline():
            pass
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err.decode()
    found = records(report)
    [incomplete] = [r for r in found if r["record"] == "incomplete"]
    lines = sorted(r["line"] for r in found if r["record"] == "item")
    assert lines == list(range(1, incomplete["next_line"]))
    assert incomplete["next_line"] <= count
    code, _, err_text = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2
    assert "incomplete" in err_text


async def test_ctrl_c_works_while_a_pipe_sends_nothing(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["s0", "s1", "s2"])
    report = tmp_path / "r.jsonl"
    process = await start(
        "close-sessions", "-", "--yes", "--report", str(report),
        *endpoint_args(emu, token_file), stdin=PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(b"ws-1 s0\nws-1 s1\n")  # then a producer that has nothing more yet
    await process.stdin.drain()
    await until(lambda: len(deletes(emu)) == 2)  # after the preflight read
    await asyncio.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 10)  # not blocked in a read
    assert process.returncode == 130, err.decode()
    found = records(report)
    assert sorted(r["line"] for r in found if r["record"] == "item") == [1, 2]
    [incomplete] = [r for r in found if r["record"] == "incomplete"]
    assert incomplete["next_line"] == 3
    assert emu.sessions("ws-1") == {"s2"}


async def test_a_report_that_cannot_be_written_stops_the_run(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.latency = 0.02
    emu.add_sessions("ws-1", [f"s{i}" for i in range(N)])
    code, _, err = await cli(
        "close-sessions", str(sessions_file(tmp_path)), "--yes", "--report", "/dev/full",
        "--concurrency", "8", *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 1, err
    assert "Traceback" not in err
    assert "cannot write the report" in err
    assert emu.request_count < N  # it stopped instead of deleting without a record
