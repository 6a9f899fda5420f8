"""Acceptance against a server that is not our emulator: a bare asyncio HTTP responder.

It shares nothing with the emulator (no aiohttp.web), so the client's behaviour is not an
artefact of the fake it was built against.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

import asyncdeleter
from asyncdeleter import Endpoints, RetryPolicy, SessionManager, TokenAuth

FORBIDDEN = json.dumps(
    {
        "error": {
            "code": "403",
            "message": "X-Auth-Token is invalid in the request",
            "title": "Forbidden",
        },
        "error_code": 403,
        "error_msg": "X-Auth-Token is invalid in the request",
        "title": "Forbidden",
    }
).encode()
BAD_REQUEST = b'{"error_code": "common.01000001", "error_msg": "failed to read http request"}'
INTERNAL = b'{"error_code": "common.00000500", "error_msg": "internal error"}'
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}


class ScriptedServer:
    """Answers each request with the next (status, body) of a script; records request lines."""

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.script = list(script)
        self.request_lines: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self.script:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_lines.append(head.split(b"\r\n", 1)[0].decode())
                status, body = self.script.pop(0)
                answer = (
                    f"HTTP/1.1 {status} {REASONS[status]}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    f"X-Request-Id: req-{len(self.request_lines)}\r\n\r\n"
                )
                writer.write(answer.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(script: list[tuple[int, bytes]]) -> tuple[ScriptedServer, SessionManager]:
        scripted = ScriptedServer(script)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        manager = SessionManager(
            endpoints=Endpoints(fabric=url, modelarts=url),
            project_id="p1",
            auth=TokenAuth("test-token"),
            retry=RetryPolicy(wait=False),
        )
        return scripted, manager

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_500_500_200_succeeds_after_three_attempts(serve) -> None:  # type: ignore[no-untyped-def]
    scripted, manager = await serve([(500, INTERNAL), (500, INTERNAL), (200, b"")])
    async with manager:
        assert await manager.close_session("ws-1", "s-1") is None
    assert scripted.request_lines == ["DELETE /v1/workspaces/ws-1/sessions/s-1 HTTP/1.1"] * 3


async def test_400_is_raised_at_once_with_its_error_code(serve) -> None:  # type: ignore[no-untyped-def]
    scripted, manager = await serve([(400, BAD_REQUEST), (200, b"")])
    async with manager:
        with pytest.raises(asyncdeleter.BadRequestError) as info:
            await manager.delete_workspace("w-1")
    assert info.value.error_code == "common.01000001"
    assert info.value.request_id == "req-1"
    assert scripted.request_lines == ["DELETE /v1/p1/workspaces/w-1 HTTP/1.1"]


async def test_nested_403_yields_permission_denied_with_error_msg(serve) -> None:  # type: ignore[no-untyped-def]
    _, manager = await serve([(403, FORBIDDEN)])
    async with manager:
        with pytest.raises(asyncdeleter.PermissionDeniedError) as info:
            await manager.delete_workspace("w-1")
    assert info.value.error_msg == "X-Auth-Token is invalid in the request"
    assert info.value.error_code == "403"
