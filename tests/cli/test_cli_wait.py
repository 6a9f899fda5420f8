"""``delete-workspaces --wait``: succeeded means confirmed gone; the rest say why not."""

from __future__ import annotations

from pathlib import Path

from cli_support import TOKEN, cli, endpoint_args, items, validate

from asyncdeleter.testing import Emulator

POLL = ("--poll-wait", "0.05")  # hidden: poll every 50 ms instead of about 1 s


async def test_wait_confirms_each_deletion_and_names_why_one_failed(
    token_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(token=TOKEN, deleting_seconds=0.2) as emu:
        emu.add_workspaces("p-1", ["w-1", "w-2", "w-3"])
        emu.fail_deletion("w-2", reason="bound")
        code, _, err = await cli(
            "delete-workspaces", "-", "--project-id", "p-1", "--wait", "--yes", *POLL,
            "--report", str(report), *endpoint_args(emu, token_file, modelarts=True),
            stdin=b"w-1\nw-2\nw-3\n",
        )  # fmt: skip
        assert code == 1, err
        found = {r["target"]["workspace_id"]: r for r in items(report)}
        assert {w: r["result"] for w, r in found.items()} == {
            "w-1": "succeeded",
            "w-2": "failed",
            "w-3": "succeeded",
        }
        assert found["w-2"]["error_code"] == "delete-failed"
        assert "DELETE_FAILED: bound" in found["w-2"]["error_msg"]
        assert emu.workspace_status("p-1", "w-1") is None  # gone, not merely DELETING
        assert emu.workspace_status("p-1", "w-3") is None
        assert emu.workspace_status("p-1", "w-2") == "DELETE_FAILED"
        assert any(r.api == "ShowWorkspace" for r in emu.requests)
    assert "succeeded = confirmed gone" in err
    assert "requests (retries+polls)" in err  # polls are requests, not retries
    reason = next(line for line in err.splitlines() if "delete-failed" in line)
    assert "1 x delete-failed, e.g. w-2" in reason
    assert "bound" in reason
    assert "no answer" not in reason
    validate(items(report))


async def test_a_wait_that_runs_out_is_a_failure_safe_to_retry(
    token_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(token=TOKEN, deleting_seconds=30) as emu:
        emu.add_workspaces("p-1", ["w-1"])
        code, _, err = await cli(
            "delete-workspaces", "-", "--project-id", "p-1", "--wait", "--wait-timeout", "0.3",
            *POLL, "--yes", "--report", str(report),
            *endpoint_args(emu, token_file, modelarts=True), stdin=b"w-1\n",
        )  # fmt: skip
        assert code == 1, err
        [record] = items(report)
        assert record["result"] == "failed"
        assert record["error_code"] == "wait-timed-out"
        assert "--wait-timeout 0.3" in record["error_msg"]  # flags, not wait_timeout=
        assert "DELETING" in record["error_msg"]
        assert emu.workspace_status("p-1", "w-1") == "DELETING"
    assert "wait-timed-out" in err
    validate([record])


async def test_without_wait_succeeded_means_accepted(token_file: Path) -> None:
    async with Emulator(token=TOKEN, deleting_seconds=30) as emu:
        emu.add_workspaces("p-1", ["w-1"])
        code, _, err = await cli(
            "delete-workspaces", "-", "--project-id", "p-1", "--yes",
            *endpoint_args(emu, token_file, modelarts=True), stdin=b"w-1\n",
        )  # fmt: skip
        assert code == 0, err
        assert emu.workspace_status("p-1", "w-1") == "DELETING"
        assert not any(r.api == "ShowWorkspace" for r in emu.requests)
    assert "confirmed gone" not in err


async def test_wait_timeout_without_wait_is_a_usage_error(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-1", ["w-1"])
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--wait-timeout", "5", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w-1\n",
    )  # fmt: skip
    assert code == 2, err
    assert "--wait-timeout applies only with --wait" in err
    assert emu.request_count == 0
    code, out, _ = await cli("delete-workspaces", "--help")
    assert "--wait-timeout SECONDS" in out
    assert "--poll-wait" not in out  # a test hook, hidden
