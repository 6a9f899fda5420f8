"""A bare asyncio HTTP/1.1 responder for tests that need a server to misbehave precisely.

It shares nothing with the emulator (no aiohttp.web): each connection's requests go to a
script function that writes whatever bytes it likes, so a test can drip, stall, truncate
or drop exactly where it wants.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

#: ``script(request, writer)`` answers one request; ``request.number`` counts from 1.
Script = Callable[["RawRequest", asyncio.StreamWriter], Awaitable[None]]


class RawRequest:
    """One request as it arrived: the request line, the headers, its number, its connection."""

    def __init__(self, line: str, headers: dict[str, str], number: int, connection: int) -> None:
        self.line = line
        self.method, self.path = line.split(" ")[:2]
        self.headers = headers
        self.number = number
        self.connection = connection


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of a complete answer."""
    head = [f"HTTP/1.1 {status} Status", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "error_msg": message}).encode()


#: The one-item listings a client reads to check that a 404's container exists
#: (asyncdeleter._verify): a Fabric workspace's sessions, a ModelArts project's workspaces.
PARENT_PAGES = {
    "sessions": {"sessions": [{"session_id": "s-other", "status": "RUNNING"}], "total": 1},
    "workspaces": {
        "workspaces": [{"id": "0", "name": "default", "status": "NORMAL"}],
        "total_count": 1,
        "count": 1,
    },
}


def parent_page(request: RawRequest) -> bytes | None:
    """The answer to a one-item listing of a container, or ``None`` for any other request."""
    path, _, query = request.path.partition("?")
    params = query.split("&")
    if request.method != "GET":
        return None
    kind = path.rstrip("/").rsplit("/", 1)[-1]
    if kind == "sessions" and any(p.startswith("session_id=") for p in params):
        # The lookup of one session: it is not listed.
        return answer(200, json.dumps({"sessions": [], "total": 0}).encode())
    page = PARENT_PAGES.get(kind) if "limit=1" in params else None
    return None if page is None else answer(200, json.dumps(page).encode())


class RawServer:
    """``async with RawServer(script) as server:`` then ``server.url``.

    With ``parents=True`` the server also shows that every container exists: a one-item
    listing (``limit=1``) is answered with one item, and a session looked up by id
    (``session_id=``) is not listed; these are answered apart from ``script`` and counted
    in ``parent_reads`` rather than ``requests`` (a 404 counts only once its container is
    known to exist).
    """

    def __init__(
        self, script: Script, *, tls: ssl.SSLContext | None = None, parents: bool = False
    ) -> None:
        self.script = script
        self.parents = parents
        self.parent_reads = 0
        self.requests: list[RawRequest] = []
        self.connections = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        connection = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for raw in lines[1:]:
                    if ":" in raw:
                        name, _, value = raw.partition(":")
                        headers[name.strip().lower()] = value.strip()
                request = RawRequest(lines[0], headers, len(self.requests) + 1, connection)
                shown = parent_page(request) if self.parents else None
                if shown is not None:
                    self.parent_reads += 1
                    writer.write(shown)
                    continue
                self.requests.append(request)
                await self.script(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


async def drop(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    """Read the request, then close the connection without a word."""
    writer.close()
