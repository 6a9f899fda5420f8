"""The command deletes only what was confirmed: scope, confirmation, protected ids, input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest
from cli_support import (
    PIPE,
    TOKEN,
    clean_env,
    cli,
    deletes,
    endpoint_args,
    items,
    records,
    run_on_terminal,
)

from asyncdeleter import __version__
from asyncdeleter.testing import Emulator, Fault

# -- 1. --workspace-id is the scope of the run -------------------------------------------


async def test_workspace_id_refuses_lines_naming_another_workspace(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    emu.add_sessions("ws-prod", ["p2"])
    source = tmp_path / "in.txt"
    source.write_text("a\nws-prod p2\nws-1 b\n")
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", str(source), "--workspace-id", "ws-1", "--yes",
        "--report", str(report), *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "line 2: workspace ws-prod is outside --workspace-id ws-1" in err
    assert emu.sessions("ws-prod") == {"p2"}
    assert emu.sessions("ws-1") == frozenset()
    assert all("ws-prod" not in r.path for r in emu.requests)
    by_line = {r["line"]: r for r in items(report)}
    assert by_line[2]["result"] == "invalid"
    assert by_line[3]["result"] == "succeeded"


async def test_workspace_id_confirmed_on_a_terminal_still_limits_the_run(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    emu.add_sessions("ws-prod", ["p2"])
    source = tmp_path / "in.txt"
    source.write_text("a\nws-prod p2\n")
    args = [
        "close-sessions",
        str(source),
        "--workspace-id",
        "ws-1",
        *endpoint_args(emu, token_file),
    ]
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"ws-1")
    assert code == 2, screen
    assert "Type the workspace id (ws-1) to go on" in screen
    assert "1 line(s) will be refused" in screen
    assert emu.sessions("ws-prod") == {"p2"}
    assert emu.sessions("ws-1") == frozenset()


# -- 2. a report re-runs only against what it was made for -------------------------------


async def _workspace_report(emu: Emulator, token_file: Path, tmp_path: Path) -> Path:
    """A delete-workspaces report against project p-a with one item left to do."""
    emu.add_workspaces("p-a", ["w1", "pw1"])
    emu.forbid("pw1")
    report = tmp_path / "first.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-a", "--yes", "--report", str(report),
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\npw1\n",
    )  # fmt: skip
    assert code == 1, err
    emu.allow("pw1")
    emu.reset_stats()
    return report


async def test_retry_from_refuses_another_project(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    report = await _workspace_report(emu, token_file, tmp_path)
    emu.add_workspaces("prod-project", ["pw1"])
    code, _, err = await cli(
        "delete-workspaces", "--retry-from", str(report), "--project-id", "prod-project",
        "--yes", *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 2, err
    assert "project" in err
    assert "p-a" in err
    assert "prod-project" in err
    assert emu.request_count == 0
    assert emu.workspaces("prod-project") == {"pw1"}


async def test_retry_from_refuses_another_endpoint_or_operation(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    report = await _workspace_report(emu, token_file, tmp_path)
    async with Emulator(token=TOKEN) as other:
        other.add_workspaces("p-a", ["pw1"])
        code, _, err = await cli(
            "delete-workspaces", "--retry-from", str(report), "--project-id", "p-a", "--yes",
            *endpoint_args(other, token_file, modelarts=True),
        )  # fmt: skip
        assert code == 2, err
        assert "endpoint" in err
        assert other.request_count == 0
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert "delete-workspaces" in err
    assert emu.request_count == 0
    # The same target finishes the job.
    code, _, err = await cli(
        "delete-workspaces", "--retry-from", str(report), "--project-id", "p-a", "--yes",
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 0, err
    assert emu.workspaces("p-a") == frozenset()


async def test_a_report_without_header_needs_its_input(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    old = tmp_path / "old.jsonl"  # as written before reports had a header
    old.write_text(
        json.dumps({"line": 1, "target": {"workspace_id": "ws-1", "session_id": "a"},
                    "result": "succeeded"}) + "\n"
        + json.dumps({"line": 2, "target": {"workspace_id": "ws-1", "session_id": "b"},
                      "result": "failed"}) + "\n"
    )  # fmt: skip
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(old), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert "no header" in err
    assert emu.request_count == 0
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\nws-1 b\n")
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(old), str(source), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    assert "cannot be checked" in err
    assert [r.path.rsplit("/", 1)[-1] for r in deletes(emu)] == ["b"]


# -- 3. confirmation: a terminal, or --yes -----------------------------------------------


async def test_a_pipe_without_yes_is_refused_and_nothing_sent(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    code, _, err = await cli(
        "close-sessions", "-", *endpoint_args(emu, token_file), stdin=b"ws-1 a\n"
    )
    assert code == 2
    assert "--yes" in err
    assert "not a terminal" in err
    assert emu.request_count == 0
    assert emu.sessions("ws-1") == {"a"}
    # A dry run needs no confirmation: it sends nothing.
    code, _, err = await cli(
        "close-sessions", "-", "--dry-run", *endpoint_args(emu, token_file), stdin=b"ws-1 a\n"
    )
    assert code == 0, err
    assert emu.request_count == 0


async def test_stderr_redirected_from_a_terminal_is_refused(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1"])
    source = tmp_path / "in.txt"
    source.write_text("w1\n")
    log = tmp_path / "err.log"
    args = [
        "delete-workspaces", str(source), "--project-id", "p-1",
        *endpoint_args(emu, token_file, modelarts=True),
    ]  # fmt: skip
    code, _ = await asyncio.to_thread(run_on_terminal, args, b"p-1", stderr_to=log)
    assert code == 2
    assert "--yes" in log.read_text()
    assert emu.request_count == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--workspace-id", "ws-1"], "Type the workspace id (ws-1) to go on"),
        ([], "Type the Fabric host (HOST) to go on"),
    ],
)
async def test_the_prompt_names_what_to_type(
    emu: Emulator, token_file: Path, tmp_path: Path, extra: list[str], expected: str
) -> None:
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    host = emu.url.split("://", 1)[1]
    args = ["close-sessions", str(source), *extra, *endpoint_args(emu, token_file)]
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"wrong")
    assert code == 2, screen
    assert expected.replace("HOST", host) in screen
    assert emu.request_count == 0
    word = extra[1] if extra else host
    code, screen = await asyncio.to_thread(run_on_terminal, args, word.encode())
    assert code == 0, screen
    assert emu.sessions("ws-1") == frozenset()


async def test_end_of_file_at_the_prompt_is_not_a_yes(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1"])
    source = tmp_path / "in.txt"
    source.write_text("w1\n")
    args = [
        "delete-workspaces", str(source), "--project-id", "p-1",
        *endpoint_args(emu, token_file, modelarts=True),
    ]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, None)
    assert code == 2, screen
    assert "Type the project id (p-1) to go on" in screen
    assert "nothing was sent" in screen
    assert "Traceback" not in screen
    assert emu.request_count == 0


# -- 5. the report never overwrites the input --------------------------------------------


async def test_report_naming_the_input_or_the_old_report_is_refused(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    alias = tmp_path / "alias.txt"
    alias.symlink_to(source)
    for report in (source, alias):
        code, _, err = await cli(
            "close-sessions", str(source), "--yes", "--report", str(report),
            *endpoint_args(emu, token_file),
        )  # fmt: skip
        assert code == 2, err
        assert "--report" in err
        assert source.read_text() == "ws-1 a\n"
    assert emu.request_count == 0
    first = tmp_path / "first.jsonl"
    code, _, err = await cli(
        "close-sessions", "--dry-run", str(source), "--report", str(first),
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 0, err
    kept = first.read_text()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(first), "--report", str(first), "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert first.read_text() == kept
    assert emu.request_count == 0


# -- 5b. the input confirmed is the input used -------------------------------------------


def _private_dir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty directory for the command's temporary files, and the environment naming it."""
    private = tmp_path / "tmpdir"
    private.mkdir()
    return private, clean_env(TMPDIR=str(private))


#: Whether a process's open files can be looked at (Linux).
PROC = os.path.isdir("/proc/self/fd")


def _copies_held(pid: int) -> list[tuple[int, bytes]]:
    """The mode and bytes of each private copy the process holds open (Linux: /proc)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if "asyncdeleter-" in os.readlink(fd) and os.readlink(fd).endswith("(deleted)"):
                found.append((stat.S_IMODE(fd.stat().st_mode), fd.read_bytes()))
    return found


async def test_an_input_rewritten_at_the_prompt_is_not_what_runs(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["keep-me-1", "other-one", "other-two"])
    source = tmp_path / "in.txt"
    source.write_text("keep-me-1\n")
    private, env = _private_dir(tmp_path)
    seen: list[object] = []

    def rewrite(pid: int) -> None:
        # The run reads its own copy, made while the input was counted; it has no name.
        seen.extend([list(private.iterdir()), *_copies_held(pid)])
        source.write_text("other-one\nother-two\n")

    args = ["delete-workspaces", str(source), "--project-id", "p-1",
            *endpoint_args(emu, token_file, modelarts=True)]  # fmt: skip
    code, screen = await asyncio.to_thread(
        run_on_terminal, args, b"p-1", env=env, at_prompt=rewrite
    )
    assert code == 0, screen
    assert "keep-me-1" in screen
    assert [r.path.rsplit("/", 1)[-1] for r in deletes(emu)] == ["keep-me-1"]
    assert emu.workspaces("p-1") == {"other-one", "other-two"}
    if PROC:
        assert seen == [[], (0o600, b"keep-me-1\n")]
    assert list(private.iterdir()) == []


async def test_an_input_removed_at_the_prompt_is_not_a_traceback(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    args = ["close-sessions", str(source), "--workspace-id", "ws-1",
            *endpoint_args(emu, token_file)]  # fmt: skip
    code, screen = await asyncio.to_thread(
        run_on_terminal, args, b"ws-1", at_prompt=lambda _: source.unlink()
    )
    assert code == 0, screen
    assert "Traceback" not in screen
    assert emu.sessions("ws-1") == {"b"}


async def test_a_retry_from_report_rewritten_at_the_prompt_is_not_what_runs(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1", "w2"])
    plan = tmp_path / "plan.jsonl"
    code, _, err = await cli(
        "delete-workspaces", "-", "--dry-run", "--project-id", "p-1", "--report", str(plan),
        "--modelarts-endpoint", emu.url, stdin=b"w1\n",
    )  # fmt: skip
    assert code == 0, err

    def rewrite(_: int) -> None:
        plan.write_text(plan.read_text().replace('"workspace_id": "w1"', '"workspace_id": "w2"'))

    args = ["delete-workspaces", "--retry-from", str(plan), "--project-id", "p-1",
            *endpoint_args(emu, token_file, modelarts=True)]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"p-1", at_prompt=rewrite)
    assert code == 0, screen
    assert emu.workspaces("p-1") == {"w2"}
    # Removed at the prompt: the same, and no traceback.
    emu.add_workspaces("p-1", ["w1"])
    plan.write_text(plan.read_text().replace('"workspace_id": "w2"', '"workspace_id": "w1"'))
    code, screen = await asyncio.to_thread(
        run_on_terminal, args, b"p-1", at_prompt=lambda _: plan.unlink()
    )
    assert code == 0, screen
    assert "Traceback" not in screen
    assert emu.workspaces("p-1") == {"w2"}


async def test_the_private_copy_leaves_nothing_behind_even_when_killed(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_workspaces("p-1", ["w1"])
    source = tmp_path / "in.txt"
    source.write_text("w1\n")
    private, env = _private_dir(tmp_path)
    args = ["delete-workspaces", str(source), "--project-id", "p-1",
            *endpoint_args(emu, token_file, modelarts=True)]  # fmt: skip
    code, screen = await asyncio.to_thread(
        run_on_terminal, args, b"no", env=env, at_prompt=lambda pid: os.kill(pid, 9)
    )
    assert code == -9, screen
    assert list(private.iterdir()) == []
    assert emu.request_count == 0


# -- 6. one record per \n line; a bare CR is not a line break ----------------------------


async def test_a_bare_cr_is_an_invalid_character(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b", "c", "d"])
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--report", str(report), *endpoint_args(emu, token_file),
        stdin=b"ws-1 a\rws-1 b\nws-1 c\r\nws-1 d\n",
    )  # fmt: skip
    assert code == 2, err
    assert "line 1:" in err
    assert "carriage return" in err
    assert "\r" not in err  # the terminal is not made to draw one target over another
    assert emu.sessions("ws-1") == {"a", "b"}
    results = [(r["line"], r["result"]) for r in items(report)]
    assert sorted(results) == [(1, "invalid"), (2, "succeeded"), (3, "succeeded")]


async def test_an_unterminated_last_line_is_not_sent(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "abc"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file), stdin=b"ws-1 a\nws-1 abc"
    )
    assert code == 2, err
    assert "line 2:" in err
    assert emu.sessions("ws-1") == {"abc"}


async def test_unicode_separators_and_control_characters_do_not_split_a_line(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file),
        stdin="ws-1 a\u2028ws-1 b\nws-1\x0bb\n".encode(),
    )  # fmt: skip
    assert code == 2, err
    assert emu.request_count == 0
    assert "\u2028" not in err
    assert "\x0b" not in err


# -- 7. protected ids fail closed, whatever the case -------------------------------------


@pytest.mark.parametrize(
    "value", ["ws-keep;p-prod", '"ws-keep"', "ws keep", ",", "ws-keep,ws/x", "", " "]
)
async def test_malformed_protected_ids_are_an_error(
    emu: Emulator, token_file: Path, value: str
) -> None:
    emu.add_sessions("ws-1", ["a"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file), stdin=b"ws-1 a\n",
        env=clean_env(ASYNCDELETER_PROTECTED_IDS=value),
    )  # fmt: skip
    assert code == 2, err
    assert "ASYNCDELETER_PROTECTED_IDS" in err
    assert emu.request_count == 0


async def test_protected_ids_match_without_case(emu: Emulator, token_file: Path) -> None:
    emu.add_sessions("ws-keep", ["a"])
    emu.add_sessions("ws-1", ["s-keep", "b"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file),
        stdin=b"ws-keep a\nws-1 S-KEEP\nws-1 b\n",
        env=clean_env(ASYNCDELETER_PROTECTED_IDS=" WS-KEEP , s-Keep ,"),
    )  # fmt: skip
    assert code == 2, err
    assert "line 1: protected by ASYNCDELETER_PROTECTED_IDS" in err
    assert "line 2: protected by ASYNCDELETER_PROTECTED_IDS" in err
    assert [r.path for r in deletes(emu)] == ["/v1/workspaces/ws-1/sessions/b"]
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--workspace-id", "Ws-Keep",
        *endpoint_args(emu, token_file), stdin=b"a\n",
        env=clean_env(ASYNCDELETER_PROTECTED_IDS="ws-keep"),
    )  # fmt: skip
    assert code == 2, err
    assert "protected" in err
    assert emu.sessions("ws-keep") == {"a"}


@pytest.mark.parametrize(
    "command",
    [
        ["close-sessions", "-", "--yes"],
        ["close-sessions", "-", "--yes", "--workspace-id", "ws-1"],
        ["sweep-sessions", "--workspace-id", "ws-1", "--apply", "--yes"],
        ["sweep-sessions", "--workspace-id", "ws-1"],  # a dry run lists with the project too
    ],
    ids=["close", "close-scoped", "sweep-apply", "sweep-plan"],
)
@pytest.mark.parametrize("given_by", ["flag", "environment"])
async def test_a_protected_project_stops_the_session_commands(
    emu: Emulator, token_file: Path, command: list[str], given_by: str
) -> None:
    """Session calls carry the project in ``X-Project-Id``: a protected one is never sent."""
    emu.add_sessions("ws-1", ["a", "b"])
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="ws-keep,Prod-Project")
    flags = ["--project-id", "prod-project"]
    if given_by == "environment":
        env["HUAWEICLOUD_SDK_PROJECT_ID"], flags = "prod-project", []
    code, out, err = await cli(
        *command, *flags, *endpoint_args(emu, token_file), stdin=b"ws-1 a\nws-1 b\n", env=env
    )
    assert code == 2, err
    assert "--project-id prod-project is protected by ASYNCDELETER_PROTECTED_IDS" in err
    assert out == ""
    assert emu.request_count == 0
    assert not emu.project_ids_seen
    assert emu.sessions("ws-1") == {"a", "b"}


async def test_a_protected_project_is_refused_before_the_prompt(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    args = ["close-sessions", str(source), "--project-id", "PROD-project",
            *endpoint_args(emu, token_file)]  # fmt: skip
    env = clean_env(ASYNCDELETER_PROTECTED_IDS="prod-project")
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"never typed", env=env)
    assert code == 2, screen
    assert "is protected" in screen
    assert "Type the" not in screen
    assert emu.request_count == 0


# -- 8. a crafted report is validated like input -----------------------------------------


async def _report_with(
    emu: Emulator, token_file: Path, tmp_path: Path, *bodies: str
) -> tuple[int, str]:
    """A dry-run report (as the command writes it) whose item records are ``bodies``, re-run."""
    header = {
        "record": "header", "format": 1, "tool": "asyncdeleter", "version": __version__,
        "operation": "close-sessions", "started": "2026-01-01T00:00:00Z",
        "endpoints": {"fabric": emu.url}, "region": None, "project_id": None,
        "workspace_id": None, "input": "-", "retry_from": None, "dry_run": True,
    }  # fmt: skip
    counts = dict.fromkeys(
        ("succeeded", "already_gone", "failed", "invalid", "skipped", "planned", "done_before"), 0
    )
    summary = {
        "record": "summary", "counts": counts, "ended": "2026-01-01T00:00:01Z", "elapsed": 0.0,
        "attempts": 0, "retries": 0, "interrupted": False, "exit_status": 0,
    }  # fmt: skip
    plan = tmp_path / "plan.jsonl"
    plan.write_text("\n".join([json.dumps(header), *bodies, json.dumps(summary)]) + "\n")
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(plan), "--yes", *endpoint_args(emu, token_file)
    )
    return code, err


async def test_the_crafted_report_template_is_accepted(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["abc"])
    target = {"workspace_id": "ws-1", "session_id": "abc"}
    record = {
        "record": "item", "line": 1, "target": target, "text": None, "result": "planned",
        "status": None, "error_code": None, "error_msg": None, "attempts": 0, "elapsed": 0.0,
        "request_id": None,
    }  # fmt: skip
    body = json.dumps(record)
    code, err = await _report_with(emu, token_file, tmp_path, body)
    assert code == 0, err
    assert emu.sessions("ws-1") == frozenset()


@pytest.mark.parametrize(
    "target",
    [
        {"workspace_id": None, "session_id": "abc"},
        {"workspace_id": 7, "session_id": "abc"},
        {"workspace_id": "ws-1", "session_id": True},
        {"workspace_id": "ws-1", "session_id": "../x"},
        ["ws-1", "abc"],
        "ws-1 abc",
    ],
)
async def test_report_records_with_bad_ids_are_refused(
    emu: Emulator, token_file: Path, tmp_path: Path, target: object
) -> None:
    emu.add_sessions("ws-1", ["abc"])
    body = json.dumps({"record": "item", "line": 1, "target": target, "result": "failed"})
    code, err = await _report_with(emu, token_file, tmp_path, body)
    assert code == 2, err
    assert "report line 2" in err
    assert "Traceback" not in err
    assert emu.request_count == 0


@pytest.mark.parametrize(
    "body",
    [
        '{"record": "item", "line": 1, "target": {"workspace_id": "ws-1", "session_id": "abc"},'
        ' "result": ["failed"]}',
        '{"record": "item", "line": 1, "target": {"workspace_id": "ws-1", "session_id": "abc"},'
        ' "result": {"x": 1}}',
        # An explicit id: pytest puts the test's id in PYTEST_CURRENT_TEST, which the
        # command inherits, and 200,000 characters is more than one variable may hold.
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-200k"),
        '{"record": "item", "line": "1", "target": {"workspace_id": "ws-1", "session_id": "abc"},'
        ' "result": "failed"}',
        '{"record": ["item"]}',
        '"\\ud800"',
    ],
)
async def test_report_records_of_the_wrong_shape_are_a_clear_error(
    emu: Emulator, token_file: Path, tmp_path: Path, body: str
) -> None:
    emu.add_sessions("ws-1", ["abc"])
    code, err = await _report_with(emu, token_file, tmp_path, body)
    assert code == 2, err
    assert "report line 2" in err
    assert "Traceback" not in err
    assert emu.request_count == 0


# -- 9. a hostile X-Request-Id does not break the report ---------------------------------


async def test_a_non_utf8_request_id_is_recorded(token_file: Path, tmp_path: Path) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Request-Id: r\xff\xfe\x1b[31m\r\n"
        b"Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    report = tmp_path / "r.jsonl"
    try:
        code, _, err = await cli(
            "close-sessions", "-", "--yes", "--report", str(report),
            "--fabric-endpoint", f"http://127.0.0.1:{port}", "--token-file", str(token_file),
            stdin=b"".join(b"ws-1 s%d\n" % i for i in range(6)),
        )  # fmt: skip
    finally:
        server.close()
        await server.wait_closed()
    assert code == 0, err
    assert "Traceback" not in err
    done = items(report)
    assert len(done) == 6
    assert {r["result"] for r in done} == {"succeeded"}
    assert all(r["request_id"].startswith("r") for r in done)
    assert "\x1b" not in report.read_text()
    assert records(report)[-1]["record"] == "summary"


# -- what a hurried user might also try ---------------------------------------------------


async def test_retry_from_keeps_the_workspace_scope_it_was_confirmed_with(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    emu.forbid("b")
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--workspace-id", "ws-1", "--yes", "--report", str(report),
        *endpoint_args(emu, token_file), stdin=b"a\nb\n",
    )  # fmt: skip
    assert code == 1, err
    emu.allow("b")
    emu.reset_stats()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--workspace-id", "ws-2", "--yes",
        *endpoint_args(emu, token_file),
    )  # fmt: skip
    assert code == 2, err
    assert "--workspace-id ws-1 (the report) vs ws-2 (this run)" in err
    assert emu.request_count == 0
    # A record edited to name another workspace is refused by the scope the report carries.
    text = report.read_text().replace('"workspace_id": "ws-1", "session_id": "b"',
                                      '"workspace_id": "ws-prod", "session_id": "b"')  # fmt: skip
    report.write_text(text)
    emu.add_sessions("ws-prod", ["b"])
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert "outside --workspace-id ws-1" in err
    assert emu.sessions("ws-prod") == {"b"}
    assert emu.request_count == 0


async def test_a_report_record_naming_another_project_is_refused(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    report = await _workspace_report(emu, token_file, tmp_path)
    edited = report.read_text().replace(
        '"project_id": "p-a", "workspace_id": "pw1"', '"project_id": "prod", "workspace_id": "pw1"'
    )
    report.write_text(edited)
    emu.add_workspaces("prod", ["pw1"])
    code, _, err = await cli(
        "delete-workspaces", "--retry-from", str(report), "--project-id", "p-a", "--yes",
        *endpoint_args(emu, token_file, modelarts=True),
    )  # fmt: skip
    assert code == 2, err
    assert "names project prod" in err
    assert emu.request_count == 0


async def test_the_token_file_as_input_is_refused_and_not_shown(
    emu: Emulator, token_file: Path
) -> None:
    code, _, err = await cli(
        "close-sessions", str(token_file), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 2, err
    assert TOKEN not in err
    assert emu.request_count == 0


#: The first line of the access key file the console hands out (``credentials.csv``).
CONSOLE_HEADER = "User Name,Access Key Id,Secret Access Key"
OTHER_AK, OTHER_SK = "OTHERUSERAK0123456789", "OtherUserSecretKey0123456789abcdefghijkl"
IN_USE_AK, IN_USE_SK = "INUSEAK0123456789ABCD", "InUseSecretKey0123456789abcdefghijklmnop"


@pytest.mark.parametrize("as_stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("command", ["delete-workspaces", "close-sessions"])
async def test_a_console_credentials_csv_is_refused_and_not_echoed(
    emu: Emulator, token_file: Path, tmp_path: Path, as_stdin: bool, command: str
) -> None:
    """Keys that are not even in use are found by the file's header, not by their shape."""
    emu.add_workspaces("p-1", ["w1"])
    emu.add_sessions("ws-1", ["s1"])
    body = f"{CONSOLE_HEADER}\r\nci-bot,{OTHER_AK},{OTHER_SK}\r\n".encode()
    source = tmp_path / "credentials.csv"
    source.write_bytes(body)
    report = tmp_path / "r.jsonl"
    modelarts = command == "delete-workspaces"
    code, out, err = await cli(
        command, "-" if as_stdin else str(source), "--yes", "--report", str(report),
        *(["--project-id", "p-1"] if modelarts else ["--workspace-id", "ws-1"]),
        *endpoint_args(emu, token_file, modelarts=modelarts), stdin=body,
    )  # fmt: skip
    assert code == 2, err
    assert "credentials" in err
    shown = out + err + (report.read_text() if report.exists() else "")
    assert OTHER_SK not in shown
    assert OTHER_AK not in shown
    assert deletes(emu) == []


#: How a line may wrap a credential (a review found each of these echoed).
WRAPPINGS = ["{}", '"{}"', "SK={}", "ws-1;{}", "{}\f", "{}\u00a0", "ws-1\x00{}", "ws-1\x0b{}"]


@pytest.mark.parametrize("wrapping", WRAPPINGS, ids=ascii)
@pytest.mark.parametrize("credential", ["sk", "ak", "token"])
@pytest.mark.parametrize("as_stdin", [False, True], ids=["file", "stdin"])
async def test_an_input_line_holding_a_credential_in_use_is_refused_and_not_echoed(
    token_file: Path, tmp_path: Path, credential: str, as_stdin: bool, wrapping: str
) -> None:
    value = {"sk": IN_USE_SK, "ak": IN_USE_AK, "token": TOKEN}[credential]
    body = ("s1\n" + wrapping.format(value) + "\n").encode()
    source = tmp_path / "in.txt"
    source.write_bytes(body)
    report = tmp_path / "r.jsonl"
    env = clean_env(HUAWEICLOUD_SDK_AK=IN_USE_AK, HUAWEICLOUD_SDK_SK=IN_USE_SK)
    auth = ["--token-file", str(token_file)] if credential == "token" else []
    async with Emulator(token=TOKEN, access_keys={IN_USE_AK: IN_USE_SK}) as emu:
        emu.add_sessions("ws-1", ["s1", "s2"])
        code, out, err = await cli(
            "close-sessions", "-" if as_stdin else str(source), "--workspace-id", "ws-1",
            "--yes", "--report", str(report), "--fabric-endpoint", emu.url, *auth,
            stdin=body, env=env,
        )  # fmt: skip
    assert code == 2, err
    assert "credential" in err
    shown = out + err + (report.read_text() if report.exists() else "")
    assert value not in shown
    assert all(value not in r.path for r in emu.requests)  # nor sent in a URL
    if not as_stdin:  # a file is read before anything is sent: it is refused whole
        assert emu.request_count == 0
        assert not report.exists()


async def test_the_default_workspace_is_never_deleted(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("p-1", ["0", "w1"])
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"0\nw1\n",
    )  # fmt: skip
    assert code == 2, err
    assert "line 1: the default workspace" in err
    assert emu.workspaces("p-1") == {"0"}


async def test_a_report_over_stdins_own_file_is_refused(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    with source.open("rb") as stdin:  # `- < in.txt --report in.txt`
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncdeleter", "close-sessions", "-", "--yes",
            "--report", str(source), *endpoint_args(emu, token_file),
            stdin=stdin, stdout=PIPE, stderr=PIPE, env=clean_env(),
        )  # fmt: skip
        _, err = await process.communicate()
    assert process.returncode == 2, err.decode()
    assert "--report" in err.decode()
    assert source.read_text() == "ws-1 a\n"
    assert emu.request_count == 0


async def test_a_report_that_cannot_be_written_is_refused_before_asking(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    args = [
        "close-sessions", str(source), "--report", str(tmp_path / "no" / "such" / "r.jsonl"),
        *endpoint_args(emu, token_file),
    ]  # fmt: skip
    code, screen = await asyncio.to_thread(run_on_terminal, args, b"never typed")
    assert code == 2, screen
    assert "cannot be written" in screen
    assert "Type the" not in screen
    assert emu.request_count == 0


async def test_a_huge_server_message_keeps_the_report_readable(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    body = json.dumps({"error_code": "X.1", "error_msg": "m" * 500_000}).encode()
    emu.add_fault(Fault(status=400, body=body, path="/v1/workspaces/ws-1/sessions/a"))
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--report", str(report),
        *endpoint_args(emu, token_file), stdin=b"ws-1 a\nws-1 b\n",
    )  # fmt: skip
    assert code == 1, err
    assert max(len(line) for line in report.read_text().splitlines()) < 10_000
    emu.clear_faults()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file)
    )
    assert code == 0, err
    assert emu.sessions("ws-1") == frozenset()


@pytest.mark.parametrize("stdin_input", [True, False], ids=["input-on-stdin", "input-file"])
async def test_a_closed_stdin_is_a_clean_refusal(
    emu: Emulator, token_file: Path, tmp_path: Path, stdin_input: bool
) -> None:
    """Started with standard input closed (``<&-``): exit 2 with a reason, no traceback."""
    emu.add_sessions("ws-1", ["a"])
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    args = [
        sys.executable, "-m", "asyncdeleter", "close-sessions",
        "-" if stdin_input else str(source),
        *endpoint_args(emu, token_file),
    ]  # fmt: skip
    command = " ".join(shlex.quote(a) for a in args) + " <&-"
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", command, stdout=PIPE, stderr=PIPE, env=clean_env()
    )
    _, raw_err = await asyncio.wait_for(process.communicate(), 60)
    err = raw_err.decode()
    assert process.returncode == 2, err
    assert "Traceback" not in err
    assert ("standard input is closed" if stdin_input else "not a terminal") in err
    assert emu.sessions("ws-1") == {"a"}


async def test_retry_from_never_drops_the_project_the_report_was_made_for(
    emu: Emulator, token_file: Path, tmp_path: Path
) -> None:
    """Session calls carry the project too (X-Project-Id): a report made for a protected
    project, re-run with no --project-id, was sent without one, protection unchecked."""
    emu.add_sessions("ws-1", ["a", "b"])
    emu.forbid("b")
    report = tmp_path / "r.jsonl"
    code, _, err = await cli(
        "close-sessions", "-", "--workspace-id", "ws-1", "--project-id", "p-1", "--yes",
        "--report", str(report), *endpoint_args(emu, token_file), stdin=b"a\nb\n",
    )  # fmt: skip
    assert code == 1, err
    emu.allow("b")
    emu.reset_stats()
    code, _, err = await cli(
        "close-sessions", "--retry-from", str(report), "--yes", *endpoint_args(emu, token_file),
        env=clean_env(ASYNCDELETER_PROTECTED_IDS="p-1"),
    )  # fmt: skip
    assert code == 2, err
    assert "--project-id p-1 (the report) vs None (this run)" in err
    assert emu.request_count == 0
