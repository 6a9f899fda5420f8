"""``sweep-sessions`` and ``sweep-workspaces``: the plan, then exactly the matching set."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_support import (
    TOKEN,
    clean_env,
    cli,
    deletes,
    endpoint_args,
    items,
    records,
    run_on_terminal,
    validate,
    write_token,
)

from asyncdeleter.testing import Emulator

#: What ``--status RUNNING --older-than 2h`` must select in ws-1 (see ``seed``).
MATCHING = frozenset({"r-old-1", "r-old-2", "r-old-3"})
SWEEP = ("sweep-sessions", "--workspace-id", "ws-1", "--status", "RUNNING", "--older-than", "2h")


def iso(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(days_ago: float) -> int:
    return int((time.time() - days_ago * 86400) * 1000)


def seed(emu: Emulator) -> frozenset[str]:
    """Sessions of mixed status and age in ws-1 (and one in ws-2); return ws-1's."""
    for sid in sorted(MATCHING):
        emu.add_sessions("ws-1", [sid], create_time=iso(3))
    emu.add_sessions("ws-1", ["r-new-1"], create_time=iso(0.5))  # too young
    emu.add_sessions("ws-1", ["w-old-1"], status="WAITING", create_time=iso(3))  # not RUNNING
    emu.add_sessions("ws-1", ["r-odd"], create_time="not a time")  # unknown age: never
    emu.add_sessions("ws-1", ["r-none"], create_time=None)  # no age at all: never
    emu.add_sessions("ws-2", ["x-old"], create_time=iso(30))  # another workspace
    return emu.sessions("ws-1")


def closed(emu: Emulator) -> set[str]:
    return {r.path.rsplit("/", 1)[-1] for r in deletes(emu)}


async def test_a_dry_run_prints_the_plan_sends_no_delete_and_apply_deletes_exactly_it(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    before = seed(emu)
    plan = tmp_path / "plan.jsonl"
    code, out, err = await cli(*SWEEP, "--report", str(plan), *endpoint_args(emu, token_file))
    assert code == 0, err
    assert deletes(emu) == []
    assert emu.sessions("ws-1") == before
    assert sorted(out.splitlines()) == sorted(f"ws-1 {sid}" for sid in MATCHING)  # input lines
    assert "dry run: 3 SQL session(s) to close; nothing was deleted (add --apply" in err
    found = records(plan)
    validate(found)
    header = found[0]
    assert header["operation"] == "sweep-sessions"
    assert header["dry_run"] is True
    assert header["workspace_id"] == "ws-1"
    assert header["endpoints"] == {"fabric": emu.url}
    assert header["filters"] == {"name": None, "status": "RUNNING", "older_than": "2h"}
    planned = {r["target"]["session_id"] for r in items(plan) if r["result"] == "planned"}
    assert planned == MATCHING
    assert len(items(plan)) == len(MATCHING)
    assert sorted(r["line"] for r in items(plan)) == [1, 2, 3]

    report = tmp_path / "apply.jsonl"
    code, out, err = await cli(
        *SWEEP, "--apply", "--yes", "--report", str(report), *endpoint_args(emu, token_file)
    )
    assert code == 0, err
    assert out == ""  # only a dry run prints the plan
    assert closed(emu) == planned  # exactly the plan, each once
    assert len(deletes(emu)) == len(planned)
    assert emu.sessions("ws-1") == before - MATCHING  # the emulator agrees
    assert emu.sessions("ws-2") == {"x-old"}  # the scope held
    found = records(report)
    validate(found)
    assert found[0]["dry_run"] is False
    assert {r["target"]["session_id"] for r in items(report)} == MATCHING
    assert {r["result"] for r in items(report)} == {"succeeded"}
    assert found[-1]["record"] == "summary"
    assert found[-1]["exit_status"] == 0


async def test_apply_off_a_terminal_without_yes_refuses_and_sends_nothing(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    before = seed(emu)
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        *SWEEP, "--apply", "--report", str(report), *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert "refusing to close without confirmation" in err
    assert "--yes" in err
    assert emu.requests == []  # not even the listing
    assert emu.sessions("ws-1") == before
    assert not report.exists()
    emu.add_workspaces("p-1", ["w1"])
    code, _, err = await cli(
        "sweep-workspaces", "--apply", "--project-id", "p-1",
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 2, err
    assert emu.requests == []
    assert emu.workspaces("p-1") == {"w1"}


async def test_on_a_terminal_it_counts_then_asks_for_the_workspace_id(
    emu: Emulator, token_file: Path
) -> None:
    before = seed(emu)
    args = [*SWEEP, "--apply", *endpoint_args(emu, token_file)]
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"ws-2")
    assert code == 2, screen
    assert "About to close 3 SQL session(s)" in screen
    assert "--status RUNNING --older-than 2h" in screen
    assert "Type the workspace id (ws-1) to go on" in screen
    assert "not confirmed" in screen
    assert deletes(emu) == []
    assert emu.sessions("ws-1") == before
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"ws-1")
    assert code == 0, screen
    assert emu.sessions("ws-1") == before - MATCHING


async def test_on_a_terminal_sweep_workspaces_asks_for_the_project_id(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_workspaces("p-1", ["w-old"], name="ci-old", create_time=ms(3))
    emu.add_workspaces("p-1", ["w-new"], name="ci-new", create_time=ms(0.1))
    args = [
        "sweep-workspaces", "--name", "ci-", "--older-than", "1d", "--apply",
        "--project-id", "p-1", *endpoint_args(emu, token_file, modelarts=True),
    ]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"p-1")
    assert code == 0, screen
    assert "About to delete 1 workspace(s)" in screen
    assert "Type the project id (p-1) to go on" in screen
    assert emu.workspaces("p-1") == {"w-new"}


async def test_protected_ids_survive_in_any_letter_case(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    before = seed(emu)
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="R-OLD-2, keep-me")
    code, out, err = await cli(*SWEEP, *endpoint_args(emu, token_file), env=env)
    assert code == 0, err
    assert "r-old-2" not in out
    assert len(out.splitlines()) == 2
    code, _, err = await cli(*SWEEP, "--apply", "--yes", *endpoint_args(emu, token_file), env=env)
    assert code == 0, err
    assert emu.sessions("ws-1") == (before - MATCHING) | {"r-old-2"}
    assert "r-old-2" not in closed(emu)
    # A protected --workspace-id is refused outright; a protection that cannot be read
    # fails closed.
    for value in ("ws-1", "ws 1;"):
        code, _, err = await cli(
            *SWEEP, "--apply", "--yes", *endpoint_args(emu, token_file),
            env=clean_env(ASYNCDELETER_PROTECTED_IDS=value),
        )  # fmt: skip
        assert code == 2, err
        assert "ASYNCDELETER_PROTECTED_IDS" in err
    assert emu.sessions("ws-1") == (before - MATCHING) | {"r-old-2"}


async def test_sweep_workspaces_with_no_filter_never_deletes_the_default_workspace(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_default_workspace("p-1")
    emu.add_workspaces("p-1", ["w1", "w2"])
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "sweep-workspaces", "--apply", "--yes", "--project-id", "p-1", "--report", str(report),
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 0, err
    assert emu.workspaces("p-1") == {"0"}
    assert sorted(r.path for r in deletes(emu)) == [
        "/v1/p-1/workspaces/w1",
        "/v1/p-1/workspaces/w2",
    ]
    found = items(report)
    validate(records(report))
    assert {r["target"]["workspace_id"] for r in found} == {"w1", "w2"}
    assert all(r["target"]["project_id"] == "p-1" for r in found)


async def test_sweep_workspaces_name_is_an_exact_prefix_and_age_counts(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_workspaces("p-1", ["w-a"], name="ci-a", create_time=ms(3))
    emu.add_workspaces("p-1", ["w-b"], name="ci-b", create_time=ms(0.1))  # too young
    emu.add_workspaces("p-1", ["w-c"], name="xci-c", create_time=ms(3))  # "ci-" inside only
    emu.add_workspaces("p-1", ["w-d"], name="CI-d", create_time=ms(3))  # another case
    emu.add_workspaces("p-1", ["w-e"], name="ci-e", create_time="garbage")  # unknown age
    emu.add_workspaces("p-1", ["w-f"], name="ci-f", status="DELETE_FAILED", create_time=ms(3))
    args = ["sweep-workspaces", "--name", "ci-", "--older-than", "1d", "--project-id", "p-1",
            *endpoint_args(emu, token_file, modelarts=True)]  # fmt: skip
    code, out, err = await cli(*args)
    assert code == 0, err
    assert sorted(out.splitlines()) == ["w-a", "w-f"]
    code, out, err = await cli(*args, "--status", "DELETE_FAILED")
    assert code == 0, err
    assert out.splitlines() == ["w-f"]
    code, _, err = await cli(*args, "--status", "NORMAL", "--apply", "--yes")
    assert code == 0, err
    assert emu.workspaces("p-1") == {"w-b", "w-c", "w-d", "w-e", "w-f"}


async def test_refused_credentials_or_a_missing_scope_stop_before_any_delete(
    emu: Emulator, tmp_path: Path
) -> None:
    before = seed(emu)
    wrong = write_token(tmp_path, "not-the-token")
    report = tmp_path / "r.jsonl"
    for apply in ((), ("--apply", "--yes")):
        code, out, err = await cli(*SWEEP, *apply, "--report", str(report),
                                   *endpoint_args(emu, wrong))  # fmt: skip
        assert code == 2, err
        assert "refused the credentials (401" in err
        assert "nothing was deleted" in err
        assert out == ""
        assert not report.exists()
    token = write_token(tmp_path)
    code, _, err = await cli(
        "sweep-sessions", "--workspace-id", "ws-nope", "--apply", "--yes",
        *endpoint_args(emu, token),
    )  # fmt: skip
    assert code == 2, err
    assert "--workspace-id ws-nope: the workspace does not exist" in err
    emu.add_workspaces("p-1", ["w1"])
    code, _, err = await cli(
        "sweep-workspaces", "--apply", "--yes", "--project-id", "p-x",
        *endpoint_args(emu, token, modelarts=True),
    )  # fmt: skip
    assert code == 2, err
    assert "--project-id p-x: the project does not exist" in err
    assert deletes(emu) == []
    assert emu.sessions("ws-1") == before
    assert emu.workspaces("p-1") == {"w1"}


async def test_retry_from_replays_the_unfinished_items_without_listing_again(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    before = seed(emu)
    emu.forbid("r-old-2")
    first = tmp_path / "first.jsonl"
    code, _, err = await cli(
        *SWEEP, "--apply", "--yes", "--report", str(first), *endpoint_args(emu, token_file)
    )
    assert code == 1, err
    by_id = {r["target"]["session_id"]: r for r in items(first)}
    assert by_id["r-old-2"]["result"] == "failed"
    assert by_id["r-old-2"]["status"] == 403
    assert "1 x 403, e.g. ws-1/r-old-2" in err
    emu.allow("r-old-2")
    emu.add_sessions("ws-1", ["r-old-4"], create_time=iso(3))  # a new sweep would find it
    seen = len(emu.requests)
    second = tmp_path / "second.jsonl"
    code, _, err = await cli(
        "sweep-sessions", "--retry-from", str(first), "--apply", "--yes",
        "--report", str(second), *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    sent = emu.requests[seen:]
    assert [r.path for r in sent if r.method == "DELETE"] == [
        "/v1/workspaces/ws-1/sessions/r-old-2"
    ]
    assert all("limit=1" in r.query for r in sent if r.method == "GET")  # the check, no listing
    assert emu.sessions("ws-1") == (before - MATCHING) | {"r-old-4"}
    found = records(second)
    validate(found)
    assert found[0]["operation"] == "sweep-sessions"
    assert found[0]["retry_from"] == str(first)
    assert found[0]["workspace_id"] == "ws-1"  # taken from the report
    results = {r["target"]["session_id"]: r["result"] for r in items(second)}
    assert results == {"r-old-1": "done_before", "r-old-2": "succeeded", "r-old-3": "done_before"}


async def test_a_reviewed_dry_run_report_is_applied_exactly(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    before = seed(emu)
    plan = tmp_path / "plan.jsonl"
    code, _, err = await cli(*SWEEP, "--report", str(plan), *endpoint_args(emu, token_file))
    assert code == 0, err
    emu.add_sessions("ws-1", ["r-old-4"], create_time=iso(3))  # matches, but not planned
    # Without --apply the replay is a dry run too.
    code, _, err = await cli("sweep-sessions", "--retry-from", str(plan),
                             *endpoint_args(emu, token_file))  # fmt: skip
    assert code == 0, err
    assert deletes(emu) == []
    code, _, err = await cli("sweep-sessions", "--retry-from", str(plan), "--apply", "--yes",
                             *endpoint_args(emu, token_file))  # fmt: skip
    assert code == 0, err
    assert closed(emu) == MATCHING
    assert emu.sessions("ws-1") == (before - MATCHING) | {"r-old-4"}


async def test_retry_from_refuses_filters_and_another_scope(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    seed(emu)
    plan = tmp_path / "plan.jsonl"
    code, _, err = await cli(*SWEEP, "--report", str(plan), *endpoint_args(emu, token_file))
    assert code == 0, err
    seen = len(emu.requests)
    code, _, err = await cli(
        "sweep-sessions", "--retry-from", str(plan), "--older-than", "1h", "--apply", "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "does not list again: drop --older-than" in err
    code, _, err = await cli(
        "sweep-sessions", "--retry-from", str(plan), "--workspace-id", "ws-2", "--apply",
        "--yes", *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "--workspace-id ws-1 (the report) vs ws-2 (this run)" in err
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(plan), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert "the report is of sweep-sessions, not close-sessions" in err
    assert len(emu.requests) == seen  # nothing sent by any of them


async def test_missing_workspace_id_and_a_bad_status_are_usage_errors(
    emu: Emulator, token_file: Path
) -> None:
    seed(emu)
    code, _, err = await cli("sweep-sessions", "--apply", "--yes", *endpoint_args(emu, token_file))
    assert code == 2, err
    assert "--workspace-id" in err
    code, _, err = await cli(
        "sweep-sessions", "--workspace-id", "ws-1", "--status", "ZOMBIE", "--apply", "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "--status" in err
    assert emu.requests == []


async def test_a_finished_sweep_report_has_no_incomplete_record(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    """A listing read to its end: header, one item per planned session, summary."""
    seed(emu)
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(*SWEEP, "--report", str(report), *endpoint_args(emu, token_file))
    assert code == 0, err
    lines = report.read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert [json.loads(line)["record"] for line in lines] == [
        "header", "item", "item", "item", "summary",
    ]  # fmt: skip


async def test_sweep_workspaces_wait_confirms_each_deletion(
    token_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.jsonl"
    async with Emulator(token=TOKEN, deleting_seconds=0.2) as emu:
        emu.add_workspaces("p-1", ["w-1", "w-2"], name="ci", create_time=ms(2))
        emu.add_workspaces("p-1", ["w-3"], name="prod", create_time=ms(2))
        emu.fail_deletion("w-2", reason="bound")
        args = ["sweep-workspaces", "--name", "ci", "--project-id", "p-1",
                *endpoint_args(emu, token_file, modelarts=True)]  # fmt: skip
        code, _, err = await cli(*args, "--wait-timeout", "5", "--apply", "--yes")
        assert code == 2, err
        assert "--wait-timeout applies only with --wait" in err
        assert emu.requests == []
        code, _, err = await cli(
            *args, "--wait", "--poll-wait", "0.05", "--apply", "--yes", "--report", str(report)
        )
        assert code == 1, err
        found = {r["target"]["workspace_id"]: r for r in items(report)}
        assert {w: r["result"] for w, r in found.items()} == {"w-1": "succeeded", "w-2": "failed"}
        assert found["w-2"]["error_code"] == "delete-failed"
        assert emu.workspace_status("p-1", "w-1") is None  # gone, not merely DELETING
        assert emu.workspace_status("p-1", "w-3") == "NORMAL"
        assert "succeeded = confirmed gone" in err


async def test_on_a_terminal_nothing_to_sweep_asks_nothing_and_sends_no_delete(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["young"], create_time=iso(0.1))
    report = tmp_path / "r.jsonl"
    args = [*SWEEP, "--apply", "--report", str(report), *endpoint_args(emu, token_file)]
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"ws-1")
    assert code == 0, screen
    assert "nothing matches" in screen
    assert "Type the workspace id" not in screen
    assert deletes(emu) == []
    assert emu.sessions("ws-1") == {"young"}
    found = records(report)
    validate(found)
    assert [r["record"] for r in found] == ["header", "summary"]
