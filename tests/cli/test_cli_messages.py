"""The command says why: failure reasons, suspicious runs, flag names, token file modes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_support import clean_env, cli, deletes, endpoint_args, write_token

from asyncdeleter.testing import Emulator
from tests.raw_server import RawRequest, RawServer, answer


def line_with(text: str, needle: str) -> str:
    [line] = [line for line in text.splitlines() if needle in line]
    return line


# -- 11. the summary says why items failed -----------------------------------------------


async def test_the_summary_names_the_commonest_failure_reasons(
    emu: Emulator, token_file: Path
) -> None:
    emu.add_workspaces("p-1", ["w1", "w2", "w3", "w4"])
    emu.forbid("w2", "w3")
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "p-1", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\nw2\nw3\nw4\n",
    )  # fmt: skip
    assert code == 1, err
    reason = line_with(err, "2 x 403")
    assert "403" in reason
    assert "w2" in reason or "w3" in reason  # a sample target
    assert "X-Auth-Token is invalid" in reason


async def test_no_credentials_is_said_before_sending(emu: Emulator) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--fabric-endpoint", emu.url, stdin=b"ws-1 a\nws-1 b\n"
    )
    assert code == 2, err  # the preflight read met the 401: nothing deleted
    assert "no credentials" in err
    assert err.index("no credentials") < err.index("401")
    assert "APIG.1002" in err
    assert deletes(emu) == []
    assert emu.sessions("ws-1") == {"a", "b"}
    sent = emu.request_count
    code, _, err = await cli(
        "delete-workspaces", "-", "--yes", "--project-id", "p-1", "--modelarts-endpoint",
        emu.url, stdin=b"w1\n",
    )  # fmt: skip
    assert code == 2, err
    assert "HUAWEICLOUD_SDK_AK" in err
    assert "--token-file" in err
    assert emu.request_count == sent


async def test_refused_credentials_stop_the_run(emu: Emulator, tmp_path: Path) -> None:
    """Without the preflight read (which would stop it first), the first 401s stop the run."""
    emu.add_sessions("ws-1", [f"s{i}" for i in range(500)])
    wrong = write_token(tmp_path, "not-the-token")
    source = tmp_path / "in.txt"
    source.write_text("".join(f"ws-1 s{i}\n" for i in range(500)))
    code, _, err = await cli(
        "close-sessions", str(source), "--yes", "--concurrency", "4", "--no-preflight",
        *endpoint_args(emu, wrong),
    )  # fmt: skip
    assert code == 1, err
    assert "refused the credentials" in err
    assert emu.request_count < 50
    assert all(r.method == "DELETE" for r in emu.requests)  # --no-preflight: no read
    assert len(emu.sessions("ws-1")) == 500


# -- 12. a run where nearly everything was already gone ----------------------------------


async def test_nearly_everything_already_gone_warns(emu: Emulator, token_file: Path) -> None:
    emu.add_workspaces("right-project", ["w1", "w2"])
    # A mistyped project is no "already gone" at all: even without the preflight read
    # (which would stop the run first), every item fails, naming the project.
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "rigth-project", "--yes", "--no-preflight",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n",
    )  # fmt: skip
    assert code == 1, err
    assert "project rigth-project does not exist" in err
    assert "already_gone       │       0" in err or "already gone" not in err
    assert emu.workspaces("right-project") == {"w1", "w2"}
    # In a project that exists, a run where everything was already gone warns.
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "right-project", "--yes", "--no-preflight",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w-none\n",
    )  # fmt: skip
    assert code == 0, err
    warning = line_with(err, "already gone")
    assert "warning" in warning
    assert "--project-id" in warning
    # A normal run does not warn.
    code, _, err = await cli(
        "delete-workspaces", "-", "--project-id", "right-project", "--yes",
        *endpoint_args(emu, token_file, modelarts=True), stdin=b"w1\n",
    )  # fmt: skip
    assert code == 0, err
    assert "warning" not in err


# -- 13. flags, not Python names; no hard wrapping ---------------------------------------


@pytest.mark.parametrize(
    ("args", "wanted", "unwanted"),
    [
        (["close-sessions", "-"], "--region", "region="),
        (["close-sessions", "-", "--fabric-endpoint", "http://10.0.0.1"],
         "--allow-insecure-http", "allow_insecure_http"),
        (["delete-workspaces", "-", "--modelarts-endpoint", "http://127.0.0.1:9"],
         "--project-id", "project_id"),
        (["close-sessions", "-", "--region", "north"], "--region", " region must"),
        (["delete-workspaces", "-", "--region", "cn-north-4", "--project-id", "p/1"],
         "--project-id", "project_id"),
        (["close-sessions", "-", "--fabric-endpoint", "ftp://x"], "--fabric-endpoint", "fabric "),
    ],
)  # fmt: skip
async def test_configuration_errors_speak_in_flags(
    token_file: Path, args: list[str], wanted: str, unwanted: str
) -> None:
    code, _, err = await cli(*args, "--yes", "--token-file", str(token_file), stdin=b"")
    assert code == 2, err
    assert wanted in err
    assert unwanted not in err
    assert "SessionManager" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variables", "wanted"),
    [
        ({"HUAWEICLOUD_SDK_AK": "AKAKAKAKAKAK", "HUAWEICLOUD_SDK_SK": "has a space"},
         "HUAWEICLOUD_SDK_SK must be visible ASCII characters only"),
        ({"HUAWEICLOUD_SDK_AK": "AKAKAKAKAKAK", "HUAWEICLOUD_SDK_SK": "short"},
         "HUAWEICLOUD_SDK_SK is 5 characters long"),
        ({"HUAWEICLOUD_SDK_AK": "AK\u00e9AKAKAKAK", "HUAWEICLOUD_SDK_SK": "SKSKSKSKSKSK"},
         "HUAWEICLOUD_SDK_AK must be visible ASCII characters only"),
        ({"HUAWEICLOUD_SDK_AK": "AKAKAKAKAKAK", "HUAWEICLOUD_SDK_SK": "SKSKSKSKSKSK",
          "HUAWEICLOUD_SDK_SECURITY_TOKEN": "st\x01stststst"},
         "HUAWEICLOUD_SDK_SECURITY_TOKEN contains a control character"),
    ],
    ids=["sk-space", "sk-short", "ak-non-ascii", "security-token-control"],
)  # fmt: skip
async def test_credential_errors_name_the_variable_not_the_argument(
    variables: dict[str, str], wanted: str
) -> None:
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--fabric-endpoint", "http://127.0.0.1:9",
        stdin=b"ws-1 a\n", env=clean_env(**variables),
    )  # fmt: skip
    assert code == 2, err
    assert f"error: {wanted}" in err
    for python in ("ak", "sk", "security_token"):
        assert f"{python} (" not in err
        assert f"{python} must" not in err
        assert f"{python} is" not in err


@pytest.mark.parametrize(
    ("token", "wanted"),
    [("short", "is 5 characters long: real credentials have at least 8"),
     ("tok\u00e9n-with-accent", "must be visible ASCII characters only")],
    ids=["short", "non-ascii"],
)  # fmt: skip
async def test_a_token_file_error_names_the_flag_and_the_real_reason(
    tmp_path: Path, token: str, wanted: str
) -> None:
    path = write_token(tmp_path, token)
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--fabric-endpoint", "http://127.0.0.1:9",
        "--token-file", str(path), stdin=b"ws-1 a\n",
    )  # fmt: skip
    assert code == 2, err
    assert f"error: the token in --token-file {path} {wanted}" in err
    assert token not in err


async def test_messages_are_not_wrapped_when_not_on_a_terminal(
    emu: Emulator, token_file: Path
) -> None:
    long_id = "w" * 30
    emu.add_sessions("ws-1", [])  # the --workspace-id the preflight read lists
    code, _, err = await cli(
        "close-sessions", "-", "--yes", "--workspace-id", "ws-1",
        *endpoint_args(emu, token_file), stdin=f"{long_id}-other {long_id}\n".encode(),
    )  # fmt: skip
    assert code == 2, err
    message = line_with(err, "line 1:")
    assert f"workspace {long_id}-other is outside --workspace-id ws-1" in message
    assert len(message) > 80


# -- 16. close-sessions does not offer a flag it never uses ------------------------------


async def test_help_lists_only_the_endpoint_each_command_uses() -> None:
    code, out, _ = await cli("close-sessions", "--help")
    assert code == 0
    assert "--fabric-endpoint" in out
    assert "--modelarts-endpoint" not in out
    code, out, _ = await cli("delete-workspaces", "--help")
    assert code == 0
    assert "--modelarts-endpoint" in out
    assert "--fabric-endpoint" not in out


# -- 17. a token file others can read ----------------------------------------------------


async def test_a_token_file_readable_by_others_warns(emu: Emulator, tmp_path: Path) -> None:
    emu.add_sessions("ws-1", ["a", "b"])
    token_file = write_token(tmp_path)
    token_file.chmod(0o644)
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file), stdin=b"ws-1 a\n"
    )
    assert code == 0, err
    warning = line_with(err, "readable")
    assert str(token_file) in warning
    assert "chmod 600" in warning
    token_file.chmod(0o600)
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, token_file), stdin=b"ws-1 b\n"
    )
    assert code == 0, err
    assert "readable" not in err


async def test_an_empty_token_file_is_an_error(emu: Emulator, tmp_path: Path) -> None:
    empty = write_token(tmp_path, "")
    code, _, err = await cli(
        "close-sessions", "-", "--yes", *endpoint_args(emu, empty), stdin=b"ws-1 a\n",
        env=clean_env(),
    )  # fmt: skip
    assert code == 2, err
    assert "empty" in err
    assert emu.request_count == 0


async def test_a_connection_failure_is_summarised_in_words_not_class_names(
    tmp_path: Path,
) -> None:
    """No answer at all: the summary and the report say so without Python names."""
    report = tmp_path / "r.jsonl"
    source = tmp_path / "in.txt"
    source.write_text("ws-1 a\n")
    token = write_token(tmp_path)
    _, out, err = await cli(
        "close-sessions", str(source), "--fabric-endpoint", "http://127.0.0.1:1",
        "--token-file", str(token), "--yes", "--max-tries", "1", "--report", str(report),
    )  # fmt: skip
    shown = out + err + report.read_text()
    assert "APIConnectionError" not in shown
    assert "close_session" not in shown
    assert "no-connection" in shown


# -- 18. a server's words cannot drive the terminal --------------------------------------

#: An error code and message that would recolour, retitle, overwrite and reverse a terminal.
HOSTILE_CODE = "X.1\x1b[2J\x1b[31m\r\nFORGED\u202e"
HOSTILE_MSG = "gone\x1b]0;owned\x07\rline\u202eevil\x00"
CONTROLS = ("\x1b", "\r", "\u202e", "\x07", "\x00")


def hostile(status: int) -> bytes:
    body = json.dumps({"error_code": HOSTILE_CODE, "error_msg": HOSTILE_MSG}).encode()
    return answer(status, body, {"X-Request-Id": "req\x1b[31m-1"})


def assert_inert(text: str) -> None:
    assert not [c for c in CONTROLS if c in text], ascii(text)
    assert not [line for line in text.splitlines() if line.startswith("FORGED")]


@pytest.mark.parametrize(
    ("where", "args"),
    [
        ("summary", ["close-sessions", "-", "--yes", "--workspace-id", "ws-1"]),
        ("preflight 403", ["close-sessions", "-", "--yes", "--workspace-id", "ws-1"]),
        ("preflight 401", ["close-sessions", "-", "--yes", "--workspace-id", "ws-1"]),
        ("run 401", ["close-sessions", "-", "--yes", "--no-preflight"]),
        ("listing", ["list-sessions", "--workspace-id", "ws-1", "--max-tries", "1"]),
        ("sweep count", ["sweep-sessions", "--workspace-id", "ws-1", "--max-tries", "1"]),
    ],
)
async def test_server_strings_are_printed_inert(
    token_file: Path, tmp_path: Path, where: str, args: list[str]
) -> None:
    """Error codes, messages and request ids a server sends reach stderr escaped."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE":
            status = {"summary": 400, "run 401": 401}.get(where)
            writer.write(hostile(status) if status else answer(200))
        else:
            status = {"preflight 403": 403, "preflight 401": 401}.get(where, 500)
            writer.write(hostile(status))
        await writer.drain()

    async with RawServer(script) as server:
        code, out, err = await cli(
            *args, "--fabric-endpoint", server.url, "--token-file", str(token_file),
            stdin=b"".join(b"ws-1 s%d\n" % i for i in range(3)),
        )  # fmt: skip
    assert code != 0 or where == "preflight 403", err
    assert "X.1" in err  # the code is shown...
    assert_inert(err)  # ...escaped
    assert_inert(out)


async def test_a_report_keeps_server_strings_inert_when_shown(
    token_file: Path, tmp_path: Path
) -> None:
    """A report file is shown with `cat` as often as read by a program: a server's bidi
    override or C1 control stays a JSON escape in it, and reads back as the server sent."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(hostile(400) if request.method == "DELETE" else answer(200))
        await writer.drain()

    report = tmp_path / "r.jsonl"
    async with RawServer(script) as server:
        code, _, _ = await cli(
            "close-sessions", "-", "--yes", "--workspace-id", "ws-1", "--no-preflight",
            "--fabric-endpoint", server.url, "--token-file", str(token_file),
            "--report", str(report), stdin=b"ws-1 s1\nws-1 s2\n",
        )  # fmt: skip
    assert code != 0
    raw = report.read_bytes()
    assert raw.isascii(), raw
    assert_inert(raw.decode())
    records = [json.loads(line) for line in raw.decode().splitlines()]
    assert [r["error_code"] for r in records if r["record"] == "item"] == [HOSTILE_CODE] * 2
