"""Helpers for the CLI tests: run the real command in a subprocess, on a pipe or a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asyncdeleter.testing import Emulator, RecordedRequest

TOKEN = "cli-token"
PIPE = asyncio.subprocess.PIPE
SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"


def validate(found: list[dict[str, Any]]) -> None:
    """Check report records against docs/report.schema.json."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) checks")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for record in found:
        validator.validate(record)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any credentials or settings of ours."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "ASYNCDELETER_"))
    }
    env["COLUMNS"] = "80"  # what a narrow terminal (or none) would give rich
    env.update(extra)
    return env


async def cli(
    *args: str,
    stdin: bytes | None = b"",
    env: dict[str, str] | None = None,
    limit: float = 60,
) -> tuple[int, str, str]:
    """Run ``python -m asyncdeleter ARGS`` with pipes; return (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", *args,
        stdin=PIPE, stdout=PIPE, stderr=PIPE, env=env if env is not None else clean_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), limit)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def endpoint_args(emu: Emulator, token_file: Path, *, modelarts: bool = False) -> list[str]:
    """Flags pointing the command at the emulator with the test token."""
    flag = "--modelarts-endpoint" if modelarts else "--fabric-endpoint"
    return [flag, emu.url, "--token-file", str(token_file)]


def write_token(tmp_path: Path, token: str = TOKEN) -> Path:
    """A token file readable by its owner only."""
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def records(path: Path) -> list[dict[str, Any]]:
    """Every record of a report."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def items(path: Path) -> list[dict[str, Any]]:
    """The item records of a report."""
    return [r for r in records(path) if r.get("record") == "item"]


def deletes(emu: Emulator) -> list[RecordedRequest]:
    """The DELETE requests the emulator received (a run also reads: its preflight)."""
    return [r for r in emu.requests if r.method == "DELETE"]


def committed_paths(emu: Emulator) -> Counter[str]:
    """How many times the emulator deleted something at each path."""
    return Counter(r.path for r in emu.requests if r.committed)


def run_on_terminal(
    args: list[str],
    answer: bytes | None,
    *,
    env: dict[str, str] | None = None,
    prompt: bytes = b"to go on",
    limit: float = 60,
    stderr_to: Path | None = None,
    at_prompt: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Run the command with stdin, stdout and stderr on a pseudo-terminal.

    Types ``answer`` (and Enter) once ``prompt`` appears; ``None`` types nothing and sends
    end-of-file instead; ``stderr_to`` sends stderr to that file instead of the terminal;
    ``at_prompt`` is called (with the command's process id) while it waits at the prompt,
    before the answer.
    Returns the exit status and everything the terminal showed.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child
        if stderr_to is not None:
            os.dup2(os.open(stderr_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        os.execve(  # noqa: S606
            sys.executable,
            [sys.executable, "-m", "asyncdeleter", *args],
            env if env is not None else clean_env(),
        )
    output = b""
    answered = False
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and prompt in output:
                if at_prompt is not None:
                    at_prompt(pid)
                os.write(fd, (answer + b"\r") if answer is not None else b"\x04")
                answered = True
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
