"""Only a sent request can have taken effect; once the status line arrived, the status decides.

Against raw asyncio servers that fail at exactly one point of an attempt.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp.abc import AbstractResolver, ResolveResult

import asyncdeleter
from asyncdeleter import Endpoints, RetryPolicy, SessionManager, Timeouts, TokenAuth
from asyncdeleter._transport import may_have_been_sent
from tests.raw_server import RawRequest, RawServer, answer, drop, error_body

NOT_FOUND = error_body("common.01000001", "session not found")


def manager_for(url: str, **options: Any) -> SessionManager:
    options.setdefault("retry", RetryPolicy(wait=False))
    return SessionManager(
        endpoints=Endpoints(fabric=url, modelarts=url),
        project_id="p1",
        auth=TokenAuth("test-token"),
        **options,
    )


class FirstLookupHangs(AbstractResolver):
    """Resolves every name to 127.0.0.1, except that the first lookup never answers."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        if self.lookups == 1:
            await asyncio.sleep(3600)
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def test_a_connect_phase_timeout_never_turns_a_later_404_into_success() -> None:
    """Name resolution that ran out of time sent nothing: the 404 after it is NotFoundError."""

    async def not_found(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, NOT_FOUND))

    resolver = FirstLookupHangs()
    async with RawServer(not_found, parents=True) as server:
        # A *.localhost name: our resolver answers it, so nothing asks a real DNS server.
        # Such a name is not loopback by itself (a resolver may send it anywhere): plain
        # HTTP to it is asked for.
        url = f"http://emulated.localhost:{server.port}"
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            manager = manager_for(
                url, session=session, timeouts=Timeouts(connect=0.3), allow_insecure_http=True
            )
            async with manager, asyncio.timeout(20):
                with pytest.raises(asyncdeleter.NotFoundError) as info:
                    await manager.close_session("ws-1", "s-1")
    assert info.value.attempts == 2
    assert len(server.requests) == 1


async def test_a_tls_failure_never_turns_a_later_404_into_success(tmp_path: Any) -> None:
    """A handshake that failed sent nothing; the retry's 404 is a real 'not found'."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    untrusted = ssl.create_default_context()  # trusts nothing of ours: the handshake fails

    async def not_found(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, NOT_FOUND))

    async with RawServer(not_found, tls=server_tls, parents=True) as server:
        async with manager_for(server.url, ssl=untrusted) as manager:
            with pytest.raises(asyncdeleter.APIConnectionError) as failed:
                await manager.close_session("ws-1", "s-1", missing_ok=True)
        assert not isinstance(failed.value, asyncdeleter.APIStatusError)
        async with manager_for(server.url, ssl=client_tls) as manager:
            with pytest.raises(asyncdeleter.NotFoundError):
                await manager.close_session("ws-1", "s-1")
    assert len(server.requests) == 1


@pytest.fixture
async def cut_short() -> AsyncIterator[Any]:
    """A server whose first answer has the given status and a body cut off mid-way."""
    servers: list[RawServer] = []

    async def start(status: int, *, stall: bool = False) -> RawServer:
        async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
            if request.number > 1:
                writer.write(answer(404, NOT_FOUND))
                return
            head = answer(status, b"", {"Content-Type": "application/json"})
            head = head.replace(b"Content-Length: 0", b"Content-Length: 500")
            writer.write(head + b'{"error_code": "common.0')
            await writer.drain()
            if stall:
                await asyncio.sleep(3600)
            writer.close()

        server = RawServer(script, parents=True)
        await server.__aenter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.__aexit__(None, None, None)


@pytest.mark.parametrize("stall", [False, True], ids=["closed", "stalled"])
@pytest.mark.parametrize(
    ("status", "error", "sent"),
    [
        # A 404 whose body never arrived whole: not retried, and no evidence of anything
        # (neither "not found" nor "gone": its code could not be read).
        (404, asyncdeleter.UnverifiedNotFoundError, 1),
        (400, asyncdeleter.BadRequestError, 1),
        (403, asyncdeleter.PermissionDeniedError, 1),
        (401, asyncdeleter.AuthenticationError, 1),
    ],
)
async def test_a_status_whose_body_is_cut_short_is_judged_by_its_status(
    cut_short: Any, status: int, error: type[asyncdeleter.APIError], sent: int, stall: bool
) -> None:
    """Truncated or stalled: a 404 is unverified, a 400/401/403 is never retried."""
    server = await cut_short(status, stall=stall)
    async with manager_for(server.url, timeouts=Timeouts(read=0.3)) as manager:
        with pytest.raises(error) as info:
            await manager.close_session("ws-1", "s-1")
    assert info.value.attempts == sent
    assert len(server.requests) == sent


async def test_a_cut_short_500_may_have_taken_effect_so_the_retry_404_is_success(
    cut_short: Any,
) -> None:
    """The status decides both ways: a 500 is retried, and the 404 after it means done."""
    server = await cut_short(500)
    async with manager_for(server.url) as manager:
        await manager.close_session("ws-1", "s-1")  # no NotFoundError
    assert len(server.requests) == 2


async def test_a_connection_dropped_after_sending_makes_the_404_a_success() -> None:
    """The counterpart: a request that reached the server, then lost its answer."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.number == 1:
            await drop(request, writer)
        else:
            writer.write(answer(404, NOT_FOUND))

    async with RawServer(script, parents=True) as server, manager_for(server.url) as manager:
        report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=False)
    assert report.succeeded == 1
    # The DELETE twice, and the read that showed its workspace exists (it counts too).
    assert (report.outcomes[0].attempts, server.parent_reads) == (3, 1)


async def test_a_refused_connect_then_404_is_not_found_in_a_bulk_run_too() -> None:
    """Bulk runs follow the same rule: nothing was sent, so the 404 means 'was not there'."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there yet: the first connect is refused

    async def not_found(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, NOT_FOUND))

    server = RawServer(not_found, parents=True)

    async def listen_after_the_first_refusal() -> None:
        await asyncio.sleep(0.2)
        server._server = await asyncio.start_server(server._handle, "127.0.0.1", port)

    retry = RetryPolicy(initial_wait=0.6, max_wait=0.6)
    async with manager_for(f"http://127.0.0.1:{port}", retry=retry) as manager:
        listening = asyncio.create_task(listen_after_the_first_refusal())
        report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=False)
        await listening
    await server.__aexit__(None, None, None)
    assert len(server.requests) >= 1, "the retry reached the server"
    assert report.failed == 1
    assert isinstance(report.outcomes[0].error, asyncdeleter.NotFoundError)


# -- through a proxy: a tunnel that was never opened sent nothing -------------------------


class TunnelProxy:
    """A bare HTTP proxy on 127.0.0.1 that tunnels ``CONNECT``, refusing the first ones.

    ``refusals`` holds the status line answered to each of the first CONNECTs (then the
    connection is closed; an empty one: closed unanswered); every later CONNECT is
    tunnelled to the host and port it names.
    """

    def __init__(self, refusals: list[bytes]) -> None:
        self.refusals = list(refusals)
        self.connects: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> TunnelProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target = head.split(" ")[:2]
            assert method == "CONNECT", head
            self.connects.append(target)
            if self.refusals:
                refusal = self.refusals.pop(0)
                if refusal:  # else dropped, unanswered
                    writer.write(refusal + b"\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                return
            host, _, port = target.rpartition(":")
            far_reader, upstream = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream), _pipe(far_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if upstream is not None:
                upstream.close()
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


def tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context that trusts it."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    return server_tls, client_tls


@pytest.mark.parametrize("how", ["single", "bulk"])
@pytest.mark.parametrize(
    "refusal",
    [b"HTTP/1.1 502 Bad Gateway", b"HTTP/1.1 403 Forbidden", b""],
    ids=["502", "403", "dropped-unanswered"],
)
async def test_a_refused_proxy_tunnel_never_turns_a_later_404_into_success(
    refusal: bytes, how: str
) -> None:
    """The proxy refused (or dropped) the CONNECT, so the DELETE never left: the retry's
    404 is 'not found'. A dropped CONNECT raises what a drop after sending raises; only
    where it was raised (inside the connector's connect) tells them apart."""
    server_tls, client_tls = tls_pair()

    async def not_found(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, NOT_FOUND))

    async with (
        RawServer(not_found, tls=server_tls, parents=True) as server,
        TunnelProxy([refusal]) as proxy,
        aiohttp.ClientSession(
            proxy=proxy.url, connector=aiohttp.TCPConnector(ssl=client_tls)
        ) as session,
        manager_for(server.url, session=session) as manager,
    ):
        if how == "single":
            with pytest.raises(asyncdeleter.NotFoundError) as info:
                await manager.close_session("ws-1", "s-1")
            attempts = info.value.attempts
        else:
            report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=True)
            outcome = report.outcomes[0]
            # Nothing was sent before the 404: at best it was already gone, never "deleted".
            assert outcome.kind is asyncdeleter.OutcomeKind.ALREADY_GONE, outcome
            attempts = outcome.attempts
    assert len(proxy.connects) >= 2, "the first CONNECT was refused, a later one tunnelled"
    assert attempts >= 2
    assert [r.method for r in server.requests] == ["DELETE"]
    assert server.parent_reads == 1, "the 404 was judged by the evidence rules all the same"


@pytest.mark.parametrize("proxy_state", ["refuses-connect", "unreachable"])
async def test_what_aiohttp_raises_for_a_tunnel_never_opened_is_judged_not_sent(
    proxy_state: str,
) -> None:
    """The judge, fed what aiohttp really raises: a refused CONNECT, a proxy not listening."""
    _, client_tls = tls_pair()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    async with TunnelProxy([b"HTTP/1.1 502 Bad Gateway"]) as proxy:
        proxy_url = (
            proxy.url if proxy_state == "refuses-connect" else f"http://127.0.0.1:{closed_port}"
        )
        connector = aiohttp.TCPConnector(ssl=client_tls)
        async with aiohttp.ClientSession(proxy=proxy_url, connector=connector) as session:
            with pytest.raises(aiohttp.ClientError) as info:
                await session.delete(f"https://127.0.0.1:{closed_port}/v1/x")
    assert not may_have_been_sent(info.value), type(info.value)


async def test_a_proxy_that_refuses_every_tunnel_is_a_connection_error_naming_the_proxy() -> None:
    """Its 502 is the proxy's, not the service's: no ServerError, and the message says so."""
    server_tls, client_tls = tls_pair()

    async def never(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(500))

    async with (
        RawServer(never, tls=server_tls) as server,
        TunnelProxy([b"HTTP/1.1 502 Bad Gateway"] * 3) as proxy,
        aiohttp.ClientSession(
            proxy=proxy.url, connector=aiohttp.TCPConnector(ssl=client_tls)
        ) as session,
        manager_for(
            server.url, session=session, retry=RetryPolicy(wait=False, max_tries=3)
        ) as manager,
    ):
        with pytest.raises(asyncdeleter.APIConnectionError) as info:
            await manager.close_session("ws-1", "s-1")
    assert not isinstance(info.value, asyncdeleter.APIStatusError)
    assert "proxy refused" in str(info.value)
    assert "502" in str(info.value)
    assert server.requests == []
