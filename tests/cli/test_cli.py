"""The real `asyncdeleter` command, run in a subprocess against the emulator on loopback."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
from cli_support import (
    TOKEN,
    clean_env,
    cli,
    deletes,
    endpoint_args,
    items,
    run_on_terminal,
)

from asyncdeleter.testing import Emulator, Fault


async def test_lines_are_parsed_and_bad_lines_reported_with_their_numbers(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b", "c", "d"])
    emu.add_sessions("ws-2", ["e"])
    source = tmp_path / "targets.txt"
    source.write_text(
        "# sessions to close\n"
        "ws-1 a\n"
        "\n"
        "ws-1,b\n"
        "ws-1\tc\n"
        "d\n"  # a lone id: takes --workspace-id
        "ws-2 e extra\n"  # line 7: three fields
        "ws-1 bad/id\n"  # line 8: an invalid id
    )
    report = tmp_path / "report.jsonl"
    code, _, err = await cli(
        "close-sessions", str(source), "--workspace-id", "ws-1", "--report", str(report),
        "--yes", *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err  # invalid lines, nothing failed
    assert "line 7: expected 1 or 2 fields, found 3" in err
    assert "line 8:" in err
    assert "bad/id" in err
    assert emu.sessions("ws-1") == frozenset()
    assert emu.sessions("ws-2") == {"e"}
    records = items(report)
    assert sorted(r["line"] for r in records) == [2, 4, 5, 6, 7, 8]  # one per input item
    by_line = {r["line"]: r for r in records}
    assert by_line[2]["result"] == "succeeded"
    assert by_line[2]["target"] == {"workspace_id": "ws-1", "session_id": "a"}
    assert by_line[7]["result"] == "invalid"
    assert by_line[8]["result"] == "invalid"
    assert by_line[2]["attempts"] == 1


async def test_exit_status_is_0_when_all_done_and_1_when_any_failed(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\nw-gone\n",
    )  # fmt: skip
    assert code == 0, err  # already gone counts as done
    emu.forbid("w2")
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--report", str(report), "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w2\n",
    )  # fmt: skip
    assert code == 1, err
    [record] = items(report)
    assert record["result"] == "failed"
    assert record["status"] == 403
    assert record["error_code"] == "403"
    assert record["target"] == {"project_id": "p-1", "workspace_id": "w2"}


async def test_dry_run_sends_nothing(emu: Emulator, token_file: Path, tmp_path: Path) -> None:
    emu.add_sessions("ws-1", ["a"])
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "--dry-run", "--report", str(report), *endpoint_args(emu, token_file),
        stdin=b"ws-1 a\nws-1 b\n",
    )  # fmt: skip
    assert code == 0, err
    assert "dry run: 2 to send, 0 refused" in err
    assert emu.request_count == 0
    assert [r["result"] for r in items(report)] == ["planned", "planned"]
    code, _, _ = await cli(
        "close-sessions", "--dry-run", *endpoint_args(emu, token_file), stdin=b"ws-1 a/b\n"
    )
    assert code == 2
    assert emu.request_count == 0


async def test_strict_validates_everything_before_sending(emu: Emulator, token_file: Path) -> None:
    emu.add_sessions("ws-1", ["a"])
    code, _, err = await cli(
        "close-sessions", "--strict", "--yes", *endpoint_args(emu, token_file),
        stdin=b"ws-1 a\nws-1 %%\n",
    )  # fmt: skip
    assert code == 2
    assert "line 2" in err
    assert emu.request_count == 0  # not even the valid first line went out


async def test_retry_from_runs_only_what_was_not_done(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b", "c"])
    emu.forbid("b")
    first = tmp_path / "first.jsonl"
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\nws-1 b\nws-1 c\n")
    code, _, _ = await cli(
        "close-sessions", str(source), "--report", str(first), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 1
    emu.allow("b")
    emu.reset_stats()
    second = tmp_path / "second.jsonl"
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(first), "--report", str(second), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    sent = [r["target"] for r in items(second) if r["result"] != "done_before"]
    assert sent == [{"workspace_id": "ws-1", "session_id": "b"}]
    assert [r.path for r in deletes(emu)] == ["/v1/workspaces/ws-1/sessions/b"]
    # With the input beside it: every input item the report does not mark done.
    # (keep: the workspace still lists something, so b's 404 can count as done.)
    emu.add_sessions("ws-1", ["d", "keep"])
    source.write_text("ws-1 a\nws-1 b\nws-1 c\nws-1 d\n")
    emu.reset_stats()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(first), str(source), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    assert sorted(r.path.rsplit("/", 1)[-1] for r in deletes(emu)) == ["b", "d"]


async def test_protected_ids_are_refused(emu: Emulator, token_file: Path) -> None:
    emu.add_sessions("ws-keep", ["a"])
    emu.add_sessions("ws-1", ["a"])
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="ws-keep, p-prod")
    code, _, err = await cli(
        "close-sessions", "--yes", *endpoint_args(emu, token_file), stdin=b"ws-keep a\nws-1 a\n",
        env=env,
    )  # fmt: skip
    assert code == 2
    assert "line 1: protected" in err
    assert emu.sessions("ws-keep") == {"a"}
    assert emu.sessions("ws-1") == frozenset()
    code, _, err = await cli(
        "delete-workspaces", "--project-id", "p-prod", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n", env=env,
    )  # fmt: skip
    assert code == 2
    assert "protected" in err


async def test_flags_win_over_the_environment(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-flag", ["w1"])
    env = clean_env(HUAWEICLOUD_SDK_PROJECT_ID="p-env", HUAWEICLOUD_SDK_REGION="cn-north-4")
    code, _, err = await cli(
        "delete-workspaces", "--project-id", "p-flag", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n", env=env,
    )  # fmt: skip
    assert code == 0, err
    [delete] = deletes(emu)
    assert delete.path == "/v1/p-flag/workspaces/w1"
    assert delete.headers["X-Auth-Token"] == TOKEN


async def test_demo_runs_end_to_end_and_empties_the_emulator() -> None:
    code, out, err = await cli("demo", "--sessions", "2000", "--workspaces", "20", limit=120)
    assert code == 0, err
    assert "emulator is empty: all 2,000 sessions and 20 workspaces are gone" in out + err
    assert "throughput" in out + err


async def test_emulator_command_serves_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", "emulator", "--port", "0", "--token", "t",
        "--seed-workspaces", "2", "--seed-sessions", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    url = line.rsplit(" ", 1)[-1].strip()
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session:
        async with session.delete(
            f"{url}/v1/workspaces/ws-0001/sessions/sess-0001-00002", headers={"X-Auth-Token": "t"}
        ) as r:
            assert r.status == 200
        async with session.delete(
            f"{url}/v1/demo-project/workspaces/ws-0000", headers={"X-Auth-Token": "t"}
        ) as r:
            assert r.status == 200
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0


async def test_a_terminal_user_must_type_the_project_id(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1"])
    source = tmp_path / "in.txt"
    source.write_text("w1\n")
    args = [
        "delete-workspaces", str(source), "--project-id", "p-1",
        *endpoint_args(emu, token_file, modelarts=True),
    ]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"p-wrong")
    assert code == 2, screen
    assert f"About to delete 1 workspace(s) at {emu.url}" in screen
    assert "in project p-1" in screen
    assert "w1" in screen  # what is about to go
    assert "not confirmed" in screen
    assert emu.request_count == 0
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"p-1")
    assert code == 0, screen
    assert emu.workspaces("p-1") == frozenset()


async def test_retries_and_faults_show_in_the_report(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    emu.add_fault(Fault(status=500, times=1, method="DELETE"))
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "--report", str(report), "--max-tries", "3", "--yes",
        *endpoint_args(emu, token_file), stdin=b"ws-1 a\n",
    )  # fmt: skip
    assert code == 0, err
    [record] = items(report)
    assert record["attempts"] == 2


async def test_a_missing_input_or_a_broken_report_is_a_usage_error(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    code, _, err = await cli(
        "close-sessions", str(tmp_path / "nope.txt"), *endpoint_args(emu, token_file)
    )
    assert code == 2
    assert "does not exist" in err
    broken = tmp_path / "report.jsonl"
    broken.write_text(
        '{"line": 1, "target": {"workspace_id": "ws-1", "session_id": "a"}, "result": "failed"}\n'
        "not json at all\n"
    )
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(broken), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2
    assert "report line 2 is not JSON" in err
    assert "Traceback" not in err
    assert emu.request_count == 0
