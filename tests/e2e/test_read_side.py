"""Show calls, X-Project-Id, and what a read does with odd answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import yarl

import asyncdeleter
from asyncdeleter import AkSkAuth, SessionManager
from asyncdeleter.testing import Emulator, Fault, FaultKind
from tests.conftest import PROJECT, TOKEN

Make = Callable[..., SessionManager]
AK = "QTWAOYTTINDUT2QVKYUC"
SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"


async def test_show_workspace_every_field(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_workspaces(
        PROJECT,
        ["ws-1"],
        name="ci-temp",
        create_time=1795428000000,
        update_time="2026-11-23T10:00:00Z",
        extra={"owner": "alice", "flavor": "x1"},
    )
    async with make_manager() as manager:
        ws = await manager.show_workspace("ws-1")
    assert ws.workspace_id == "ws-1"
    assert ws.name == "ci-temp"
    assert ws.status == "NORMAL"
    assert ws.owner == "alice"
    assert ws.created_at == ws.updated_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert ws.extra == {"flavor": "x1"}
    # ShowWorkspace's grants (ViewWorkspaceResponseGrants), as the service sends them.
    assert ws.grants == ({"user_id": "emulator-user-id", "user_name": "alice", "user_type": "IAM"},)


async def test_show_session_and_its_404(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s-1"], status="WAITING", create_time="not a time")
    async with make_manager() as manager:
        session = await manager.show_session("ws-1", "s-1")
        with pytest.raises(asyncdeleter.NotFoundError):
            await manager.show_session("ws-1", "s-2")
    assert (session.workspace_id, session.session_id, session.status) == ("ws-1", "s-1", "WAITING")
    assert session.created_at is None  # unknown, never guessed


async def test_a_read_404_after_a_500_is_still_not_found(
    emulator: Emulator, make_manager: Make
) -> None:
    """Only a deletion's 404 can mean success; a read's 404 after a retry is "not found"."""
    emulator.add_default_workspace(PROJECT)
    emulator.add_fault(Fault(api="ShowWorkspace", status=500, times=1))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.NotFoundError) as info:
            await manager.show_workspace("ws-1")
    assert info.value.attempts == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>OK</html>", "text/html"),
        (b'{"id": null}', "application/json"),
        (b'{"workspaces": 5}', "application/json"),
        (b"[" * 100_000, "application/json"),
        (b"", "application/json"),
    ],
)
async def test_a_2xx_with_an_unreadable_body_is_a_typed_error(
    emulator: Emulator, make_manager: Make, body: bytes, content_type: str
) -> None:
    emulator.add_fault(Fault(method="GET", status=200, body=body, content_type=content_type))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.MalformedResponseError) as info:
            await manager.show_workspace("ws-1")
        with pytest.raises(asyncdeleter.MalformedResponseError):
            [w async for w in manager.list_workspaces()]
    assert info.value.status == 200


async def test_a_2xx_read_cut_short_is_sent_again(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_workspaces(PROJECT, ["ws-1"])
    emulator.add_fault(Fault(api="ShowWorkspace", kind=FaultKind.TRUNCATE, status=200, times=1))
    async with make_manager() as manager:
        ws = await manager.show_workspace("ws-1")
    assert ws.workspace_id == "ws-1"


async def test_fabric_calls_carry_the_project_id(emulator: Emulator, make_manager: Make) -> None:
    emulator.add_sessions("ws-1", ["s-1", "s-2"])
    async with make_manager() as manager:
        await manager.show_session("ws-1", "s-1")
        [s async for s in manager.list_sessions("ws-1")]
        await manager.close_session("ws-1", "s-1")
        await manager.close_sessions([("ws-1", "s-2")])
    fabric = [r for r in emulator.requests if r.service == "fabric"]
    assert len(fabric) == 4
    assert all(r.headers.get("X-Project-Id") == PROJECT for r in fabric)
    modelarts = [r for r in emulator.requests if r.service == "modelarts"]
    assert all("X-Project-Id" not in r.headers for r in modelarts)


async def test_no_project_id_header_without_a_project(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_sessions("ws-1", ["s-1"])
    async with make_manager(project_id=None) as manager:
        await manager.close_session("ws-1", "s-1")
    assert all("X-Project-Id" not in r.headers for r in emulator.requests)


async def test_the_project_id_is_signed_under_ak_sk() -> None:
    async with Emulator(access_keys={AK: SK}) as emu:
        emu.add_sessions("ws-1", ["s-1", "s-2"])
        async with SessionManager(
            endpoints=emu.endpoints(), project_id=PROJECT, auth=AkSkAuth(AK, SK)
        ) as manager:
            await manager.close_session("ws-1", "s-1")
            listed = [s.session_id async for s in manager.list_sessions("ws-1", status="RUNNING")]
        request = emu.requests[0]
        assert "x-project-id" in request.headers["Authorization"]
        assert listed == ["s-2"]
        assert {r.status for r in emu.requests} == {200}  # the emulator checked each signature


def test_the_official_signer_agrees_with_a_signed_project_id_and_query() -> None:
    signer_module = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    request_module = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    url = yarl.URL(
        "https://fabric.cn-north-4.myhuaweicloud.com/v1/workspaces/ws-1/sessions"
    ).with_query({"status": "RUNNING", "limit": "100", "offset": "0"})
    ours = AkSkAuth(AK, SK).headers_for("GET", url, {"X-Project-Id": PROJECT})

    class Credentials:
        ak = AK
        sk = SK

    theirs = request_module.SdkRequest(
        method="GET",
        schema="https",
        host=ours["Host"],
        resource_path=url.raw_path,
        query_params=list(url.query.items()),
        header_params={
            "X-Sdk-Date": ours["X-Sdk-Date"],
            "Host": ours["Host"],
            "X-Project-Id": PROJECT,
        },
        body="",
    )
    signer_module.Signer(Credentials()).sign(theirs)
    assert ours["Authorization"] == theirs.header_params["Authorization"]
    assert ours["X-Project-Id"] == PROJECT


async def test_an_endpoint_path_prefix_is_kept_even_with_a_percent_in_it() -> None:
    """A gateway prefix (even percent-encoded) stays in front of every operation's path."""
    import asyncio

    from tests.raw_server import RawRequest, RawServer, answer

    async def ok(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = b'{"id": "ws-1"}' if request.method == "GET" else b""
        writer.write(answer(200, body, {"Content-Type": "application/json"}))

    async with RawServer(ok) as server:
        base = f"{server.url}/gw%20x/"
        endpoints = asyncdeleter.Endpoints(fabric=base, modelarts=base)
        async with SessionManager(
            endpoints=endpoints, project_id=PROJECT, auth=asyncdeleter.TokenAuth("test-token")
        ) as manager:
            await manager.close_session("ws-1", "s-1")
            await manager.delete_workspace("ws-1")
            await manager.show_workspace("ws-1")
    assert [r.path for r in server.requests] == [
        "/gw%20x/v1/workspaces/ws-1/sessions/s-1",
        f"/gw%20x/v1/{PROJECT}/workspaces/ws-1",
        f"/gw%20x/v1/{PROJECT}/workspaces/ws-1",
    ]


async def test_a_404_without_the_services_code_is_never_gone(
    emulator: Emulator, make_manager: Make
) -> None:
    """A proxy's HTML 404 (or an empty one) says the route is missing, not the workspace."""
    html = b"<html><body><h1>404 Not Found</h1></body></html>"
    emulator.add_fault(Fault(method="DELETE", status=404, body=html, content_type="text/html"))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.EndpointNotServedError, match=r"endpoints\.modelarts"):
            await manager.delete_workspace("ws-1", missing_ok=True)
        report = await manager.delete_workspaces(["ws-2"], missing_ok=True)
    assert report.already_gone == 0
    assert report.failed == 1
    assert isinstance(report.failures[0].error, asyncdeleter.EndpointNotServedError)


async def test_an_empty_404_never_confirms_a_deletion() -> None:
    async with Emulator(token=TOKEN, deleting_seconds=60) as emu:
        emu.add_workspaces(PROJECT, ["ws-1"])
        emu.add_fault(Fault(api="ShowWorkspace", status=404, body=b""))
        async with SessionManager(
            endpoints=emu.endpoints(),
            project_id=PROJECT,
            auth=asyncdeleter.TokenAuth(TOKEN),
            retry=asyncdeleter.RetryPolicy(poll_initial_wait=0.02),
        ) as manager:
            with pytest.raises(asyncdeleter.EndpointNotServedError) as info:
                await manager.delete_workspace("ws-1", wait=True)
    assert "accepted but not confirmed" in str(info.value)


async def test_a_show_answered_with_another_workspace_is_refused(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_fault(Fault(api="ShowWorkspace", status=200, body=b'{"id": "ws-other"}'))
    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.MalformedResponseError, match="ws-other"):
            await manager.show_workspace("ws-1")


async def test_an_echoed_credential_never_reaches_the_error() -> None:
    """A gateway that quotes the request headers back: the token is cut out of the error."""
    import asyncio

    from tests.raw_server import RawRequest, RawServer, answer

    secret = "SECRET-token-0123456789abcdef"

    async def echo(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        quoted = f"bad request headers: {request.headers}".replace('"', "'")
        body = ('{"error_code": "APIG.1002", "error_msg": "' + quoted + '"}').encode()
        writer.write(answer(401, body, {"X-Request-Id": secret}))

    async with RawServer(echo) as server:
        endpoints = asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url)
        async with SessionManager(
            endpoints=endpoints, project_id=PROJECT, auth=asyncdeleter.TokenAuth(secret)
        ) as manager:
            with pytest.raises(asyncdeleter.AuthenticationError) as info:
                await manager.show_workspace("ws-1")
    error = info.value
    shown = [str(error), repr(error), *map(str, vars(error).values())]
    assert all(secret not in text for text in shown)
    assert "[redacted]" in (error.error_msg or "")


async def test_a_read_body_dripping_past_max_time_is_a_timeout() -> None:
    import asyncio

    from tests.raw_server import RawRequest, RawServer

    async def drip(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{")
        for _byte in range(100000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with RawServer(drip) as server:
        endpoints = asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url)
        async with SessionManager(
            endpoints=endpoints,
            project_id=PROJECT,
            auth=asyncdeleter.TokenAuth("test-token"),
            retry=asyncdeleter.RetryPolicy(max_time=0.5, wait=False),
        ) as manager:
            async with asyncio.timeout(30):
                with pytest.raises(asyncdeleter.APITimeoutError):
                    await manager.show_workspace("ws-1")
