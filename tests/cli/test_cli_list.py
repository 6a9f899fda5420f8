"""``list-sessions`` and ``list-workspaces``: the delete commands' input, and ``--json``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import PIPE, clean_env, cli, deletes, endpoint_args, items, write_token

from asyncdeleter._cli.filters import parse_age
from asyncdeleter.testing import Emulator

LIST = ("list-sessions", "--workspace-id", "ws-1")


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_ages(emu: Emulator) -> None:
    """RUNNING sessions 2 minutes, 30 minutes, 3 hours and 8 days old, and one not RUNNING."""
    emu.add_sessions("ws-1", ["a-2m"], create_time=ago(minutes=2))
    emu.add_sessions("ws-1", ["b-30m"], create_time=ago(minutes=30))
    emu.add_sessions("ws-1", ["c-3h"], create_time=ago(hours=3))
    emu.add_sessions("ws-1", ["d-8d"], create_time=ago(days=8))
    emu.add_sessions("ws-1", ["e-idle"], status="WAITING", create_time=ago(days=8))
    emu.add_sessions("ws-1", ["f-odd"], create_time="yesterday-ish")


# -- --older-than ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1d", timedelta(days=1)),
    ],
)
def test_older_than_reads_a_number_and_one_unit(text: str, delta: timedelta) -> None:
    age = parse_age(text)
    assert age.delta == delta
    assert age.text == text


@pytest.mark.parametrize(
    "text",
    ["", "2", "h", "0h", "00h", "-2h", "+2h", "1.5h", "2H", "2 h", " 2h", "2h ", "2hours",
     "1h30m", "2w", "2\n", "99999999999d", "40000d"],
)  # fmt: skip
def test_older_than_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"age|hundred years"):
        parse_age(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", {"a-2m", "b-30m", "c-3h", "d-8d"}),
        ("15m", {"b-30m", "c-3h", "d-8d"}),
        ("2h", {"c-3h", "d-8d"}),
        ("7d", {"d-8d"}),
    ],
)
async def test_older_than_selects_by_age_in_sweeps_and_lists_alike(
    emu: Emulator, token_file: Path, value: str, expected: set[str]
) -> None:
    seed_ages(emu)
    wanted = sorted(f"ws-1 {sid}" for sid in expected)
    for command in ("sweep-sessions", "list-sessions"):
        code, out, err = await cli(
            command, "--workspace-id", "ws-1", "--status", "RUNNING", "--older-than", value,
            *endpoint_args(emu, token_file),
        )  # fmt: skip
        assert code == 0, err
        assert sorted(out.splitlines()) == wanted, command
    assert deletes(emu) == []


@pytest.mark.parametrize("value", ["2", "1.5h", "-1d", "0m"])
async def test_a_bad_older_than_is_a_usage_error_naming_the_flag(
    emu: Emulator, token_file: Path, value: str
) -> None:
    seed_ages(emu)
    for command in (["sweep-sessions", "--workspace-id", "ws-1", "--apply", "--yes"],
                    ["list-sessions", "--workspace-id", "ws-1"]):  # fmt: skip
        code, out, err = await cli(*command, "--older-than", value,
                                   *endpoint_args(emu, token_file))  # fmt: skip
        assert code == 2, err
        assert "Invalid value for '--older-than'" in err
        assert out == ""
    assert emu.requests == []


# -- the line format ---------------------------------------------------------------------


async def test_list_then_close_is_a_pipeline(emu: Emulator, token_file: Path) -> None:
    """``list-sessions ... | close-sessions --yes -``: two processes, one pipe."""
    seed_ages(emu)
    emu.add_sessions("ws-2", ["other"])
    read_end, write_end = os.pipe()
    env = clean_env()
    lister = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", *LIST, "--status", "RUNNING",
        "--older-than", "2h", *endpoint_args(emu, token_file),
        stdout=write_end, stderr=PIPE, env=env,
    )  # fmt: skip
    closer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", "close-sessions", "--yes", "-",
        *endpoint_args(emu, token_file), stdin=read_end, stdout=PIPE, stderr=PIPE, env=env,
    )  # fmt: skip
    os.close(read_end)
    os.close(write_end)
    _, list_err = await asyncio.wait_for(lister.communicate(), 60)
    _, close_err = await asyncio.wait_for(closer.communicate(), 60)
    assert lister.returncode == 0, list_err.decode()
    assert closer.returncode == 0, close_err.decode()
    assert sorted(r.path.rsplit("/", 1)[-1] for r in deletes(emu)) == ["c-3h", "d-8d"]
    assert emu.sessions("ws-1") == {"a-2m", "b-30m", "e-idle", "f-odd"}
    assert emu.sessions("ws-2") == {"other"}


async def test_a_saved_plan_is_closed_exactly(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    seed_ages(emu)
    code, out, err = await cli(*LIST, "--older-than", "2h", *endpoint_args(emu, token_file))
    assert code == 0, err
    plan = tmp_path / "plan.txt"
    plan.write_text(out)
    emu.add_sessions("ws-1", ["g-new-old"], create_time=ago(days=1))  # not in the plan
    report = tmp_path / "r.jsonl"
    code, _, err = await cli("close-sessions", str(plan), "--yes", "--report", str(report),
                             *endpoint_args(emu, token_file))  # fmt: skip
    assert code == 0, err
    closed = {r["target"]["session_id"] for r in items(report) if r["result"] == "succeeded"}
    assert closed == {"c-3h", "d-8d", "e-idle"}  # any status: no --status given
    assert "g-new-old" in emu.sessions("ws-1")


async def test_list_workspaces_comments_out_what_delete_workspaces_refuses(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_default_workspace("p-1")
    emu.add_workspaces("p-1", ["w1"], name="ci-1")
    emu.add_workspaces("p-1", ["w-keep"], name="ci-keep")
    emu.add_workspaces("p-1", ["w3"], name="prod-3")
    emu.add_workspaces("p-1", ["w-dflt"], name=" Default")  # the library's rule: never swept
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="W-KEEP")
    flags = ["--project-id", "p-1", *endpoint_args(emu, token_file, modelarts=True)]
    code, out, err = await cli("list-workspaces", *flags, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert sorted(line for line in lines if not line.startswith("#")) == ["w1", "w3"]
    comments = [line for line in lines if line.startswith("#")]
    assert len(comments) == 3
    assert any(c.startswith("# 0 ") and "default" in c for c in comments)
    assert any(c.startswith("# w-dflt ") and "default" in c for c in comments)
    assert any(c.startswith("# w-keep ") and "protected" in c for c in comments)
    code, out, err = await cli("list-workspaces", "--name", "ci-", *flags, env=env)
    assert code == 0, err
    assert [line for line in out.splitlines() if not line.startswith("#")] == ["w1"]
    # The whole listing feeds delete-workspaces: comments are skipped, nothing is refused.
    code, _, err = await cli("delete-workspaces", "--yes", "-", *flags, env=env, stdin=out.encode())
    assert code == 0, err
    assert emu.workspaces("p-1") == {"0", "w-keep", "w3", "w-dflt"}


#: What a hostile server may put in a name or an id: line breaks of every kind, a terminal
#: escape, a right-to-left override, NUL, tabs.
HOSTILE = ("\r", "\n", "\r\n", "\x1b[31m", "\u202e", "\x00", "\t", "\x0b", "\u2028", "\x85")


def _assert_plain(text: str) -> None:
    """Nothing in ``text`` can break a line or drive a terminal."""
    assert all(ch.isprintable() for ch in text.replace("\n", "")), ascii(text)


async def test_list_workspaces_output_reads_back_cleanly_whatever_the_names(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    """Protected or default names padded with hostile characters: the output is still input."""
    emu.add_default_workspace("p-1")
    names = {}
    for i, bad in enumerate(HOSTILE):
        for kind, name in (("keep", f"keep{bad}"), ("dflt", f"{bad}default{bad}"),
                           ("pad", f"{bad}keep"), ("ci", f"ci{bad}x{bad}")):  # fmt: skip
            names[f"w-{kind}-{i}"] = name
            emu.add_workspaces("p-1", [f"w-{kind}-{i}"], name=name)
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="Keep")
    flags = ["--project-id", "p-1", *endpoint_args(emu, token_file, modelarts=True)]
    code, out, err = await cli("list-workspaces", *flags, env=env)
    assert code == 0, err
    _assert_plain(out)
    _assert_plain(err)
    report = tmp_path / "plan.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--dry-run", "--report", str(report), *flags,
        stdin=out.encode(), env=env,
    )  # fmt: skip
    assert code == 0, err  # not one line refused
    planned = sorted(r["target"]["workspace_id"] for r in items(report))
    expected = sorted(
        workspace for workspace, name in names.items()
        if name.strip().casefold() not in ("keep", "default")
    )  # fmt: skip
    assert planned == expected
    assert all(r["result"] == "planned" for r in items(report))


async def test_list_sessions_output_reads_back_cleanly_whatever_the_ids(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    """Ids that are not ids are left out (said safely); the rest reads back as planned."""
    emu.add_sessions("ws-1", ["s-ok", "s-keep", *(f"s{bad}x" for bad in HOSTILE)])
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="S-KEEP")
    code, out, err = await cli(*LIST, *endpoint_args(emu, token_file), env=env)
    assert code == 1, err  # some ids were left out
    assert err.count("warning: left out") == len(HOSTILE)
    _assert_plain(out)
    _assert_plain(err)
    report = tmp_path / "plan.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--dry-run", "--report", str(report),
        *endpoint_args(emu, token_file), stdin=out.encode(), env=env,
    )  # fmt: skip
    assert code == 0, err
    assert [(r["target"]["session_id"], r["result"]) for r in items(report)] == [
        ("s-ok", "planned")
    ]


# -- --json ------------------------------------------------------------------------------


async def test_json_lines_hold_every_field_with_iso_times(emu: Emulator, token_file: Path) -> None:
    emu.add_sessions(
        "ws-1", ["s-1"], status="WAITING", create_time="2026-03-01T08:30:00Z",
        extra={"endpoint_id": "ep-7", "owner": "ci-bot"},
    )  # fmt: skip
    emu.add_sessions("ws-1", ["s-2"], create_time=None)
    code, out, err = await cli(*LIST, "--json", *endpoint_args(emu, token_file))
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == {
        "workspace_id": "ws-1",
        "session_id": "s-1",
        "status": "WAITING",
        "created_at": "2026-03-01T08:30:00+00:00",
        "extra": {"endpoint_id": "ep-7", "owner": "ci-bot"},
    }
    assert second["created_at"] is None
    assert datetime.fromisoformat(first["created_at"]) == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)

    created = int(time.time() - 86400) * 1000
    emu.add_workspaces(
        "p-1", ["w1"], name="ci-1", status="DELETE_FAILED", status_info="disk busy",
        create_time=created, extra={"description": "nightly", "flavor": "big"},
    )  # fmt: skip
    code, out, err = await cli(
        "list-workspaces", "--json", "--project-id", "p-1",
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 0, err
    [workspace] = (json.loads(line) for line in out.splitlines())
    assert {"workspace_id", "name", "status", "status_info", "created_at", "updated_at",
            "description", "owner", "auth_type", "enterprise_project_id", "grants",
            "extra"} <= set(workspace)  # fmt: skip
    assert (workspace["workspace_id"], workspace["name"]) == ("w1", "ci-1")
    assert (workspace["status"], workspace["status_info"]) == ("DELETE_FAILED", "disk busy")
    assert workspace["description"] == "nightly"
    assert workspace["extra"] == {"flavor": "big"}
    parsed = datetime.fromisoformat(workspace["created_at"])
    assert parsed == datetime.fromtimestamp(created / 1000, UTC)
    assert workspace["updated_at"] == workspace["created_at"]


async def test_a_missing_workspace_or_refused_credentials_are_clear_errors(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["s-1"])
    wrong = write_token(tmp_path, "not-the-token")
    code, out, err = await cli(*LIST, *endpoint_args(emu, wrong))
    assert code == 2, err
    assert "refused the credentials (401" in err
    assert out == ""
    right = write_token(tmp_path)
    code, out, err = await cli("list-sessions", "--workspace-id", "ws-x",
                               *endpoint_args(emu, right))  # fmt: skip
    assert code == 2, err
    assert "--workspace-id ws-x: the workspace does not exist" in err
    code, _, err = await cli("list-workspaces", *endpoint_args(emu, right, modelarts=True))
    assert code == 2, err
    assert "list-workspaces needs --project-id" in err
