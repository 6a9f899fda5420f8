"""The read before deleting: refused credentials or a missing scope stop the run unsent."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from cli_support import (
    PIPE,
    TOKEN,
    clean_env,
    cli,
    deletes,
    endpoint_args,
    items,
    records,
    write_token,
)

from asyncdeleter.testing import Emulator, Fault, FaultKind

OLD_REPORT = '{"an earlier report": "left as it was"}\n'


async def test_refused_credentials_stop_before_any_delete(emu: Emulator, tmp_path: Path) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    wrong = write_token(tmp_path, "not-the-token")
    report = tmp_path / "r.jsonl"
    report.write_text(OLD_REPORT)
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes", "--report", str(report),
        "--force", *endpoint_args(emu, wrong, modelarts=True), stdin=b"w1\nw2\n",
    )  # fmt: skip
    assert code == 2, err
    assert "refused the credentials (401 APIG.1002" in err
    assert "--token-file" in err
    assert "nothing was deleted" in err
    assert "Traceback" not in err
    assert deletes(emu) == []
    [read] = emu.requests  # one listing of one item, then nothing
    assert (read.method, read.api) == ("GET", "ListWorkspace")
    assert "limit=1" in read.query
    assert emu.workspaces("p-1") == {"w1", "w2"}
    assert report.read_text() == OLD_REPORT  # as for a refused confirmation: not written


async def test_a_project_that_does_not_exist_stops_the_run(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1"])
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "proj-x", "--yes", "--report", str(report),
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n",
    )  # fmt: skip
    assert code == 2, err
    assert (
        "--project-id proj-x: the project does not exist or is not visible to these credentials"
        in err
    )
    assert "ModelArts.0103" in err
    assert "project_id" not in err  # flags, not Python names
    assert deletes(emu) == []
    assert not report.exists()


async def test_a_workspace_id_that_does_not_exist_stops_the_run(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    code, _, err = await cli(
        "close-sessions", "-", "--workspace-id", "ws-gone", "--yes",
        *endpoint_args(emu, token_file), stdin=b"a\n",
    )  # fmt: skip
    assert code == 2, err
    assert "--workspace-id ws-gone: the workspace does not exist" in err
    assert deletes(emu) == []
    [read] = emu.requests
    assert (read.api, read.path) == ("ListSqlSessions", "/v1/workspaces/ws-gone/sessions")


async def test_a_missing_first_workspace_without_the_flag_only_warns(
    emu: Emulator, token_file: Path
) -> None:
    """No flag named it: other lines may name workspaces that exist (and those still run)."""
    emu.add_sessions("ws-1", ["b"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file),
        stdin=b"ws-gone a\nws-1 b\n",
    )  # fmt: skip
    # ...but a line in a workspace that does not exist is no "already gone": it fails.
    assert code == 1, err
    assert "workspace ws-gone does not exist" in err
    assert "warning: cannot list sessions of workspace ws-gone" in err
    assert "going on" in err
    assert emu.requests[0].api == "ListSqlSessions"
    assert len(deletes(emu)) == 2
    assert emu.sessions("ws-1") == frozenset()


async def test_a_role_that_cannot_list_warns_and_deletes(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    emu.add_fault(Fault(api="ListWorkspace", status=403))
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\nw2\n",
    )  # fmt: skip
    assert code == 0, err
    warning = next(line for line in err.splitlines() if "cannot list" in line)
    assert warning.startswith("warning: cannot list workspaces of --project-id p-1 (403")
    assert "a role may delete without listing: going on" in warning
    assert len(deletes(emu)) == 2
    assert emu.workspaces("p-1") == frozenset()


async def test_a_server_error_on_the_read_warns_and_deletes(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    emu.add_fault(Fault(api="ListSqlSessions", status=503))
    code, _, err = await cli(
        "close-sessions", "-", "--workspace-id", "ws-1", "--yes", "--max-tries", "2",
        *endpoint_args(emu, token_file), stdin=b"a\n",
    )  # fmt: skip
    assert code == 0, err
    assert "warning: the check before deleting" in err
    assert "503" in err
    assert emu.sessions("ws-1") == frozenset()


async def test_no_preflight_sends_no_read(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n",
    )  # fmt: skip
    assert code == 0, err
    # The read comes first (ModelArts' listing may probe a second page: still a read).
    assert emu.requests[0].api == "ListWorkspace"
    assert [r.method for r in emu.requests][-1:] == ["DELETE"]
    assert {r.api for r in emu.requests if r.method == "GET"} == {"ListWorkspace"}
    emu.reset_stats()
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes", "--no-preflight",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w2\n",
    )  # fmt: skip
    assert code == 0, err
    assert [r.method for r in emu.requests] == ["DELETE"]


async def test_a_stream_is_read_ahead_to_its_first_target_and_loses_no_line(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    """Without --workspace-id, the first line to run names the workspace listed."""
    emu.add_sessions("ws-1", ["a", "b"])
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--report", str(report), *endpoint_args(emu, token_file),
        stdin=b"not/a-target\nws-1 a\nws-1 b\n",
    )  # fmt: skip
    assert code == 2, err  # the invalid line
    assert emu.requests[0].path == "/v1/workspaces/ws-1/sessions"
    found = {r["line"]: r["result"] for r in items(report)}
    assert found == {1: "invalid", 2: "succeeded", 3: "succeeded"}
    assert emu.sessions("ws-1") == frozenset()


async def test_nothing_to_delete_reads_nothing(emu: Emulator, token_file: Path) -> None:
    code, _, err = await cli("close-sessions", "-", "--yes", *endpoint_args(emu, token_file))
    assert code == 0, err
    source = Path(token_file).with_name("in.txt")
    source.write_text("0\n")  # the default workspace: refused, never sent
    code, _, err = await cli(
        "delete-workspaces", str(source), "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 2, err
    assert emu.request_count == 0


async def test_ctrl_c_during_the_read_stops_cleanly(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-1", ["w1"])
    emu.add_fault(Fault(kind=FaultKind.STALL, api="ListWorkspace", stall_seconds=30))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", "delete-workspaces", "-", "--project-id", "p-1",
        "--yes", *endpoint_args(emu, token_file, modelarts=True),
        stdin=PIPE, stdout=PIPE, stderr=PIPE, env=clean_env(),
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(b"w1\n")
    process.stdin.close()
    async with asyncio.timeout(30):
        while emu.request_count == 0:  # noqa: ASYNC110 - polling another process's effect
            await asyncio.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err_bytes = await asyncio.wait_for(process.communicate(), 30)
    err = err_bytes.decode()
    assert process.returncode == 130, err
    assert "interrupted before anything was deleted" in err
    assert "Traceback" not in err
    assert deletes(emu) == []
    assert emu.workspaces("p-1") == {"w1"}


async def test_the_session_api_moves_to_the_host_that_serves_it_and_says_so(
    token_file: Path, tmp_path: Path
) -> None:
    """--region: the first documented host answers 'no such API'; the run moves, once."""
    async with Emulator(token=TOKEN, separate_session_host=True) as emu:
        emu.add_sessions("ws-1", ["a", "b", "c"])
        env = clean_env(
            HUAWEICLOUD_SDK_REGION_DATAARTSFABRICEP_CN_NORTH_4=f"{emu.url},{emu.session_url}"
        )
        report = tmp_path / "r.jsonl"
        code, _, err = await cli(
            "close-sessions", "-", "--yes", "--region", "cn-north-4",
            "--token-file", str(token_file), "--report", str(report),
            stdin=b"ws-1 a\nws-1 b\nws-1 c\n", env=env,
        )  # fmt: skip
        assert code == 0, err
        assert f"fabric API at {emu.session_url} (not {emu.url}" in err
        assert emu.sessions("ws-1") == frozenset()
        header = records(report)[0]
        assert header["served_by"] == emu.session_url
        assert header["region"] == "cn-north-4"


async def test_an_endpoint_that_does_not_serve_the_api_stops_the_run(
    token_file: Path,
) -> None:
    async with Emulator(token=TOKEN, separate_session_host=True) as emu:
        emu.add_sessions("ws-1", ["a"])
        code, _, err = await cli(
            "close-sessions", "-", "--yes", "--fabric-endpoint", emu.url,
            "--token-file", str(token_file), stdin=b"ws-1 a\n",
        )  # fmt: skip
        assert code == 2, err
        assert f"{emu.url} does not serve the fabric API" in err
        assert "--fabric-endpoint" in err
        assert "nothing was deleted" in err
        assert emu.sessions("ws-1") == {"a"}
