"""The report: one documented record shape, a header, a summary, true line numbers."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from cli_support import (
    clean_env,
    cli,
    endpoint_args,
    items,
    records,
    run_on_terminal,
    validate,
)

from asyncdeleter import __version__
from asyncdeleter.testing import Emulator


async def test_every_record_has_the_documented_shape(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    emu.forbid("b")
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\nws-1 b\nws-1 gone\nnot/valid x\nws-keep c\n# done\n")
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", str(source), "--yes", "--report", str(report),
        *endpoint_args(emu, token_file), env=clean_env(ASYNCDELETER_PROTECTED_IDS="ws-keep"),
    )  # fmt: skip
    assert code == 1, err  # a failure outranks the invalid lines
    found = records(report)
    validate(found)
    header, *body, summary = found
    assert header["record"] == "header"
    assert header["operation"] == "close-sessions"
    assert header["endpoints"] == {"fabric": emu.url}
    assert header["version"] == __version__
    assert header["started"].endswith("Z")
    assert summary["record"] == "summary"
    by_line = {r["line"]: r for r in body}
    assert [by_line[n]["result"] for n in range(1, 6)] == [
        "succeeded", "failed", "already_gone", "invalid", "invalid",
    ]  # fmt: skip
    assert by_line[2]["status"] == 403
    assert by_line[4]["target"] is None
    assert by_line[4]["text"] == "not/valid x"
    assert by_line[5]["target"] == {"workspace_id": "ws-keep", "session_id": "c"}
    assert summary["counts"] == {
        "succeeded": 1, "already_gone": 1, "failed": 1, "invalid": 2, "skipped": 0,
        "planned": 0, "done_before": 0,
    }  # fmt: skip
    assert summary["exit_status"] == 1


async def test_a_dry_run_plans_and_its_plan_can_be_applied(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    plan = tmp_path / "plan.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--dry-run", "--project-id", "p-1", "--report", str(plan),
        "--modelarts-endpoint", emu.url, stdin=b"w1\nw2\n",
    )  # fmt: skip
    assert code == 0, err
    found = records(plan)
    validate(found)
    assert [r["result"] for r in items(plan)] == ["planned", "planned"]
    assert found[0]["dry_run"] is True
    assert emu.request_count == 0
    applied = tmp_path / "applied.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "--retry-from", str(plan), "--project-id", "p-1", "--yes",
        "--report", str(applied), *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 0, err
    assert emu.workspaces("p-1") == frozenset()
    validate(records(applied))
    assert sorted((r["line"], r["result"]) for r in items(applied)) == [
        (1, "succeeded"), (2, "succeeded"),
    ]  # fmt: skip


async def test_retried_items_keep_their_line_numbers_and_done_ones_are_carried(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b", "c"])
    emu.forbid("b")
    source = tmp_path / "in.txt"
    source.write_text("# header comment\nws-1 a\n\nws-1 b\nws-1 c\n")
    first = tmp_path / "first.jsonl"
    code, _, _ = await cli(
        "close-sessions", str(source), "--yes", "--report", str(first),
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 1
    emu.allow("b")
    second = tmp_path / "second.jsonl"
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(first), "--yes", "--report", str(second),
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    found = records(second)
    validate(found)
    assert sorted((r["line"], r["result"]) for r in items(second)) == [
        (2, "done_before"), (4, "succeeded"), (5, "done_before"),
    ]  # fmt: skip
    assert found[0]["retry_from"] == str(first)


@pytest.mark.parametrize("existing", [False, True])
async def test_a_report_is_readable_by_its_owner_only(
    emu: Emulator, token_file: Path, tmp_path: Path, existing: bool
) -> None:
    """It names every resource the run touched: mode 0600, even over a wider old file."""
    emu.add_sessions("ws-1", ["a"])
    report = tmp_path / "r.jsonl"
    if existing:
        report.write_text("old\n")
        report.chmod(0o644)
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--report", str(report), *(["--force"] * existing),
        *endpoint_args(emu, token_file), stdin=b"ws-1 a\n",
    )  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert records(report)[0]["record"] == "header"


@pytest.mark.parametrize(
    "command",
    [
        ["close-sessions", "-", "--yes"],
        ["close-sessions", "-", "--dry-run"],
        ["sweep-sessions", "--workspace-id", "ws-1", "--apply", "--yes"],
        ["sweep-sessions", "--workspace-id", "ws-1"],
    ],
    ids=["close", "close-dry-run", "sweep-apply", "sweep-plan"],
)
async def test_an_existing_report_is_never_overwritten_without_force(
    emu: Emulator, token_file: Path, tmp_path: Path, command: list[str]
) -> None:
    """An earlier report may be the only record of a run: refused before anything is sent."""
    emu.add_sessions("ws-1", ["a"])
    report = tmp_path / "r.jsonl"
    report.write_text("an earlier run's record\n")
    code, out, err = await cli(
        *command, "--report", str(report), *endpoint_args(emu, token_file), stdin=b"ws-1 a\n"
    )
    assert code == 2, err
    assert f"--report {report} exists" in err
    assert "--force" in err
    assert out == ""
    assert report.read_text() == "an earlier run's record\n"
    assert emu.request_count == 0
    code, _, err = await cli(
        *command, "--report", str(report), "--force", *endpoint_args(emu, token_file),
        stdin=b"ws-1 a\n",
    )  # fmt: skip
    assert code == 0, err
    assert records(report)[0]["record"] == "header"


async def test_an_existing_report_is_refused_before_the_prompt(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    report = tmp_path / "r.jsonl"
    report.write_text("kept\n")
    args = ["close-sessions", str(source), "--report", str(report),
            *endpoint_args(emu, token_file)]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"never typed")
    assert code == 2, screen
    assert "--force" in screen
    assert "Type the" not in screen
    assert report.read_text() == "kept\n"
    assert emu.request_count == 0


async def test_force_never_lets_a_report_overwrite_what_the_run_reads(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    first = tmp_path / "first.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--dry-run", "--report", str(first),
        *endpoint_args(emu, token_file), stdin=b"ws-1 a\n",
    )  # fmt: skip
    assert code == 0, err
    kept = first.read_text()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(first), "--report", str(first), "--force",
        "--yes", *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "is --retry-from" in err
    assert first.read_text() == kept
    assert emu.request_count == 0
