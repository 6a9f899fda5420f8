"""``asyncdeleter emulator`` from a shell: ports, interfaces, and explicit AK/SK checking."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from cli_support import PIPE, clean_env, cli

AK, SK = "EMULATORTESTAK", "emulator-test-secret-key"


@asynccontextmanager
async def emulator_process(
    *args: str, env: dict[str, str] | None = None, pids: list[int] | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """Start ``asyncdeleter emulator ARGS``; yield its URL and the lines it wrote.

    The lines are its first line on stdout, then what it wrote to stderr before serving;
    ``pids`` gets its process id.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncdeleter", "emulator", "--port", "0", *args,
        stdout=PIPE, stderr=PIPE, env=env if env is not None else clean_env(),
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    if pids is not None:
        pids.append(process.pid)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "listening on" in line, line
        url = line.rsplit(" ", 1)[-1].strip()
        notes: list[str] = [line]
        while True:  # what it says on stderr before serving, up to its "Ctrl-C" line
            note = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            notes.append(note)
            if "Ctrl-C" in note or not note:
                break
        yield url, notes
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0


async def status_of(url: str, headers: Sequence[tuple[str, str]] = ()) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{url}/v1/workspaces/ws-0000/sessions/sess-0000-00000",
                       headers=dict(headers)) as response,
    ):  # fmt: skip
        return response.status


async def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await cli("emulator", "--port", str(port), limit=30)
    assert code != 0
    assert "Traceback" not in err
    assert f"127.0.0.1:{port}" in err
    assert "in use" in err
    assert "--port 0" in err


async def test_every_interface_warns_and_the_hint_is_a_url_the_cli_accepts(
    tmp_path: Path,
) -> None:
    every = "0.0.0.0"  # noqa: S104 - the case under test
    async with emulator_process(
        "--host", every, "--seed-workspaces", "1", "--seed-sessions", "1"
    ) as (url, notes):
        text = "".join(notes)
        assert "warning" in text
        assert "all interfaces" in text
        assert url.startswith("http://127.0.0.1:")
        [hint] = [n for n in notes if "try:" in n]
        assert url in hint
        source = tmp_path / "in.txt"
        source.write_text("ws-0000 sess-0000-00000\n")
        code, _, err = await cli(
            "close-sessions", str(source), "--yes", "--fabric-endpoint", url, limit=30
        )
        assert code == 0, err


async def test_aksk_from_the_environment_is_checked_only_when_asked() -> None:
    env = clean_env(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
    async with emulator_process("--seed-workspaces", "1", "--seed-sessions", "1", env=env) as (
        url,
        notes,
    ):
        assert await status_of(url) == 200  # the exported keys were not taken up
        assert "AK/SK" not in "".join(notes)
    async with emulator_process(
        "--aksk-from-env", "--seed-workspaces", "1", "--seed-sessions", "1", env=env
    ) as (url, notes):
        assert "AK/SK" in "".join(notes)
        assert await status_of(url) == 401
        code, _, err = await cli(
            "close-sessions", "-", "--yes", "--fabric-endpoint", url, env=env,
            stdin=b"ws-0000 sess-0000-00000\n",
        )  # fmt: skip
        assert code == 0, err
    code, _, err = await cli("emulator", "--port", "0", "--aksk-from-env", limit=30)
    assert code == 2
    assert "HUAWEICLOUD_SDK_AK" in err


#: Whether a process's sockets can be looked at (Linux).
PROC = os.path.isdir("/proc/self/fd")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (Linux: /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize(
    ("host", "client"),
    [("", "127.0.0.1"), ("0", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "[::1]")],  # noqa: S104
    ids=["empty", "zero", "ipv4-any", "ipv6-any"],
)
async def test_a_wildcard_host_is_named_as_such_and_its_url_works(
    tmp_path: Path, host: str, client: str
) -> None:
    """Every spelling of "any address" says "all interfaces" and prints a URL that works."""
    pids: list[int] = []
    async with emulator_process(
        "--host", host, "--seed-workspaces", "1", "--seed-sessions", "1", pids=pids
    ) as (url, notes):
        text = "".join(notes)
        assert "listening on all interfaces" in text
        assert f"listening on {host}:" not in text
        assert url.startswith(f"http://{client}:"), url
        port = int(url.rsplit(":", 1)[1])
        if PROC:
            assert listening_ports(pids[0]) == {port}  # one port, the one printed
        [hint] = [n for n in notes if "try:" in n]
        assert "--allow-insecure-http" not in hint
        source = tmp_path / "in.txt"
        source.write_text("ws-0000 sess-0000-00000\n")
        code, _, err = await cli(
            "close-sessions", str(source), "--yes", "--fabric-endpoint", url, limit=30
        )
        assert code == 0, err
