"""A 404 counts as "gone" only on evidence (docs/api-facts.md, section 8).

Each test makes the service answer the way the real gateway can, and the way our notes
did not expect: a gateway "no such API", a mistyped workspace, an unknown "not found" code,
the session API on another host.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import pytest

import asyncdeleter
from asyncdeleter import Endpoints, SessionManager, TokenAuth
from asyncdeleter.testing import Emulator
from tests.conftest import PROJECT, TOKEN
from tests.raw_server import RawRequest, RawServer, answer

REGION = "cn-north-4"


def manager_at(fabric: str, modelarts: str | None = None, **options: object) -> SessionManager:
    settings: dict[str, object] = {
        "endpoints": Endpoints(fabric=fabric, modelarts=modelarts or fabric),
        "project_id": PROJECT,
        "auth": TokenAuth(TOKEN),
        "retry": asyncdeleter.RetryPolicy(wait=False),
    }
    settings.update(options)
    return SessionManager(**settings)  # type: ignore[arg-type]


def sent(emu: Emulator, api: str) -> int:
    return sum(1 for r in emu.requests if r.api == api)


async def test_a_wrong_fabric_endpoint_never_closes_anything() -> None:
    """The gateway's APIGW.0101 on every session path: no item succeeds or is already gone."""
    async with Emulator(token=TOKEN, separate_session_host=True) as emu:
        emu.add_sessions("ws-1", ["s-1", "s-2", "s-3"])
        async with manager_at(emu.url) as manager:  # the host that does not serve sessions
            with pytest.raises(asyncdeleter.EndpointNotServedError) as info:
                await manager.close_session("ws-1", "s-1", missing_ok=True)
            report = await manager.close_sessions([("ws-1", f"s-{i}") for i in (1, 2, 3)])
            assert manager.endpoints.fabric == emu.url  # an explicit endpoint never moves
    error = info.value
    assert not isinstance(error, asyncdeleter.NotFoundError)
    assert (error.status, error.error_code) == (404, "APIGW.0101")
    assert error.setting == "endpoints.fabric"
    assert "endpoints.fabric" in str(error)
    assert (report.succeeded, report.already_gone, report.failed) == (0, 0, 3)
    assert all(isinstance(o.error, asyncdeleter.EndpointNotServedError) for o in report.failures)
    assert emu.sessions("ws-1") == {"s-1", "s-2", "s-3"}


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": "APIG.0101", "error_msg": "The API does not exist"},
        {"error_code": "APIGW.0101", "error_msg": "The API does not exist"},
        {"error_code": "apigw.0101", "error_msg": "lower case"},
        # The nested shape with an integer code: the gateway's, never the service's.
        {"error": {"code": "404", "message": "Not Found"}, "error_code": 404, "error_msg": "x"},
        {"message": "no error_code at all"},
    ],
)
async def test_a_gateway_shaped_404_from_a_raw_server_is_never_gone(body: object) -> None:
    async def script(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, json.dumps(body).encode()))

    async with RawServer(script, parents=True) as server, manager_at(server.url) as manager:
        report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=True)
        with pytest.raises(asyncdeleter.EndpointNotServedError):
            await manager.delete_workspace("w-1", missing_ok=True)
    assert report.already_gone == 0
    assert report.failed == 1
    assert isinstance(report.failures[0].error, asyncdeleter.EndpointNotServedError)


async def test_a_mistyped_workspace_fails_every_item_and_names_it() -> None:
    """fab-adhco for fab-adhoc: the service says 404 with the session's own code."""
    async with Emulator(token=TOKEN) as emu:
        ids = [f"s-{i}" for i in range(5)]
        emu.add_sessions("fab-adhoc", ids)
        async with manager_at(emu.url) as manager:
            report = await manager.close_sessions([("fab-adhco", s) for s in ids])
            with pytest.raises(asyncdeleter.ParentNotFoundError) as info:
                await manager.close_session("fab-adhco", "s-0", missing_ok=True)
        # One look at the workspace served all five (single-flight, then cached).
        assert sent(emu, "ListSqlSessions") == 1
        assert emu.sessions("fab-adhoc") == frozenset(ids)
    assert (report.succeeded, report.already_gone, report.failed) == (0, 0, 5)
    for outcome in report.failures:
        error = outcome.error
        assert isinstance(error, asyncdeleter.ParentNotFoundError)
        assert not isinstance(error, asyncdeleter.NotFoundError)
        assert (error.parent_kind, error.parent_id, error.setting) == (
            "workspace",
            "fab-adhco",
            "workspace_id",
        )
        # The service's own answer is kept for the report.
        assert (error.status, error.error_code) == (404, "common.01000001")
        assert error.error_msg is not None
        assert "not found" in error.error_msg
        assert outcome.safe_to_retry
    assert "fab-adhco does not exist" in str(info.value)


async def test_a_session_404_in_a_workspace_that_lists_nothing_is_not_gone() -> None:
    """An empty listing proves neither that the workspace exists nor that it does not."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "GET":
            writer.write(answer(200, b'{"sessions": [], "total": 0}'))
        else:
            writer.write(answer(404, b'{"error_code": "common.01000001", "error_msg": "x"}'))

    async with RawServer(script) as server, manager_at(server.url) as manager:
        report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=True)
    assert report.already_gone == 0
    error = report.failures[0].error
    assert isinstance(error, asyncdeleter.UnverifiedNotFoundError)
    assert "empty listing" in str(error)


async def test_a_session_404_counts_once_its_workspace_is_shown_to_exist() -> None:
    async with Emulator(token=TOKEN) as emu:
        emu.add_sessions("ws-1", ["s-1", "keep"])
        async with manager_at(emu.url) as manager:
            report = await manager.close_sessions([("ws-1", "s-1"), ("ws-1", "s-1")])
    assert (report.succeeded, report.already_gone) == (1, 1)
    # The first close's 200 showed the workspace exists: the duplicate's 404 needed no read.
    assert sent(emu, "ListSqlSessions") == 0


async def test_an_unknown_workspace_not_found_code_is_resolved_by_the_listing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncdeleter")
    async with Emulator(token=TOKEN, workspace_gone_code="ModelArts.9404") as emu:
        emu.add_workspaces(PROJECT, ["w-1", "w-2", "keep"])
        async with manager_at(emu.url) as manager:
            # Absent from a complete listing: already gone, with evidence.
            gone = await manager.delete_workspace("w-none", missing_ok=True)
            # Deleted (at once here), and confirmed by the listing rather than the code.
            done = await manager.delete_workspace("w-1", wait=True, wait_timeout=30)
            report = await manager.delete_workspaces(["w-2", "w-x", "w-y"], wait=True)
    assert gone.already_gone
    assert done.confirmed
    assert (report.succeeded, report.already_gone, report.failed) == (1, 2, 0)
    warnings = [r for r in caplog.records if "ModelArts.9404" in r.getMessage()]
    assert len(warnings) == 2  # once per API that answered it (DeleteWorkspace, ShowWorkspace)


async def test_the_session_api_moves_once_to_the_other_documented_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A region-derived Fabric endpoint that answers 'no such API' is swapped, once."""
    caplog.set_level(logging.INFO, logger="asyncdeleter")
    async with Emulator(token=TOKEN, separate_session_host=True) as emu:
        emu.add_sessions("ws-1", [f"s-{i}" for i in range(20)])
        environ = {
            "HUAWEICLOUD_SDK_REGION": REGION,
            "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT,
            # The first candidate does not serve the session API; the second does.
            "HUAWEICLOUD_SDK_REGION_DATAARTSFABRICEP_CN_NORTH_4": f"{emu.url},{emu.session_url}",
            "HUAWEICLOUD_SDK_REGION_MODELARTS_CN_NORTH_4": emu.url,
        }
        async with SessionManager.from_env(
            environ=environ, auth=TokenAuth(TOKEN), max_concurrency=8
        ) as manager:
            assert manager.endpoints.fabric == emu.url
            report = await manager.close_sessions([("ws-1", f"s-{i}") for i in range(20)])
            assert manager.endpoints.fabric == emu.session_url
        not_served = [r for r in emu.requests if r.status == 404]
    assert (report.succeeded, report.failed) == (20, 0)
    assert emu.sessions("ws-1") == frozenset()
    # At most the first wave went to the wrong host; it was never processed there.
    assert 1 <= len(not_served) <= 8
    assert all(o.attempts in {1, 2} for o in report.outcomes)
    moves = [r for r in caplog.records if "does not serve its API" in r.getMessage()]
    assert len(moves) == 1


async def test_a_session_api_that_no_candidate_serves_fails_clearly() -> None:
    async with Emulator(token=TOKEN, separate_session_host=True) as emu:
        environ = {
            "HUAWEICLOUD_SDK_REGION": REGION,
            "HUAWEICLOUD_SDK_REGION_DATAARTSFABRICEP_CN_NORTH_4": f"{emu.url},{emu.url}/x",
        }
        async with SessionManager.from_env(environ=environ, auth=TokenAuth(TOKEN)) as manager:
            report = await manager.close_sessions([("ws-1", "s-1")])
    assert report.failed == 1
    error = report.failures[0].error
    assert isinstance(error, asyncdeleter.EndpointNotServedError)
    assert error.setting == "region"


def test_an_unknown_region_is_refused_naming_it() -> None:
    with pytest.raises(asyncdeleter.ConfigurationError, match="cn-nort-4") as info:
        SessionManager(region="cn-nort-4")
    assert "Endpoints" in str(info.value)


async def test_a_region_fabric_does_not_serve_refuses_only_fabric_calls() -> None:
    """ap-southeast-1 has ModelArts but no session API: a ModelArts user is not blocked."""
    manager = SessionManager(region="ap-southeast-1", project_id=PROJECT, auth=TokenAuth(TOKEN))
    async with manager:
        assert manager.endpoints.fabric is None
        assert manager.endpoints.modelarts == "https://modelarts.ap-southeast-1.myhuaweicloud.cn"
        with pytest.raises(asyncdeleter.ConfigurationError, match="ap-southeast-1"):
            await manager.close_session("ws-1", "s-1")  # refused before any I/O


async def test_x_project_id_is_sent_and_signed_on_modelarts_calls_too() -> None:
    ak, sk = "AKTESTAKTEST0123", "SKTESTSKTESTSKTESTSKTEST0123"
    async with Emulator(access_keys={ak: sk}) as emu:
        emu.add_workspaces(PROJECT, ["w-1", "keep"])
        emu.add_sessions("ws-1", ["s-1"])
        async with manager_at(emu.url, auth=asyncdeleter.AkSkAuth(ak, sk)) as manager:
            await manager.delete_workspace("w-1")
            await manager.close_session("ws-1", "s-1")
    for request in emu.requests:
        assert request.headers["X-Project-Id"] == PROJECT
        assert "x-project-id" in request.headers["Authorization"]
    # The signatures (X-Project-Id among the signed headers) verified.
    assert [(r.api, r.status) for r in emu.requests] == [
        ("DeleteWorkspace", 200),
        ("CloseSqlSession", 200),
    ]


async def test_a_bulk_run_in_a_region_without_the_service_is_refused_when_built() -> None:
    """Not a run of silently skipped items: the error names the region, before any I/O."""
    async with SessionManager(region="ap-southeast-1", auth=TokenAuth(TOKEN)) as manager:
        with pytest.raises(asyncdeleter.ConfigurationError, match="ap-southeast-1"):
            manager.close_sessions([("ws-1", "s-1")])
        with pytest.raises(asyncdeleter.ConfigurationError, match="ap-southeast-1"):
            manager.list_sessions("ws-1")


async def test_a_500_on_a_host_that_moved_away_never_makes_the_next_host_s_404_a_success() -> None:
    """Host A: 500 on one DELETE, 'no such API' on the rest; host B never had the session."""
    gateway_404 = json.dumps({"error_code": "APIG.0101", "error_msg": "no such API"}).encode()
    first_500 = asyncio.Event()

    async def host_a(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE" and request.path.endswith("/sx"):
            writer.write(answer(500, b'{"error_code": "common.00000500", "error_msg": "x"}'))
            first_500.set()
        else:
            await first_500.wait()  # the other call's move comes after sx's 500
            writer.write(answer(404, gateway_404))

    async def host_b(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, b'{"error_code": "common.01000001", "error_msg": "no"}'))

    async with (
        RawServer(host_a) as a,
        RawServer(host_b, parents=True) as b,
        SessionManager.from_env(
            environ={
                "HUAWEICLOUD_SDK_REGION": REGION,
                "HUAWEICLOUD_SDK_REGION_DATAARTSFABRICEP_CN_NORTH_4": f"{a.url},{b.url}",
            },
            auth=TokenAuth(TOKEN),
            retry=asyncdeleter.RetryPolicy(wait=False),
        ) as manager,
    ):
        results = await asyncio.gather(
            manager.close_session("ws1", "sx"),
            manager.close_session("ws1", "sy"),
            return_exceptions=True,
        )
    assert all(isinstance(r, asyncdeleter.NotFoundError) for r in results), results


NAMES_300 = [f"w{i:04d}" for i in range(300)]


def capped_modelarts(*, total_echoes_page: bool) -> Callable[..., Awaitable[None]]:
    """ModelArts serving 300 workspaces, 100 a page whatever is asked; every other
    request a 404 with a code asyncdeleter does not know. ``total_echoes_page``: the
    count given is the page's own (a plausible bug), not the 300.
    """

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        path, _, query = request.path.partition("?")
        if request.method == "GET" and path.endswith("/workspaces"):
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 1000))
            page = NAMES_300[offset : offset + min(limit, 100)]
            body = {
                "workspaces": [{"id": n, "name": n, "status": "NORMAL"} for n in page],
                "total_count": len(page) if total_echoes_page else len(NAMES_300),
                "count": len(page),
            }
            writer.write(answer(200, json.dumps(body).encode()))
        else:
            writer.write(answer(404, b'{"error_code": "ModelArts.9999", "error_msg": "no"}'))

    return script


async def test_a_capped_listing_never_hides_a_workspace_from_the_check() -> None:
    """The service serves 100 a page whatever is asked: the listing still sees all 300."""
    names = NAMES_300
    capped = capped_modelarts(total_echoes_page=False)

    async with RawServer(capped) as server, manager_at(server.url) as manager:
        with pytest.raises(asyncdeleter.UnverifiedNotFoundError, match="still shows"):
            await manager.delete_workspace("w0150", missing_ok=True)
        listed = [w.workspace_id async for w in manager.list_workspaces()]
        gone = await manager.delete_workspace("w-none", missing_ok=True)
    assert listed == names
    assert gone.already_gone  # absent from a listing that saw all 300


async def test_an_empty_session_lookup_whose_count_disagrees_proves_nothing() -> None:
    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE":
            writer.write(answer(404, b'{"error_code": "DLI.0404", "error_msg": "no"}'))
        elif "session_id=" in request.path:
            writer.write(answer(200, b'{"sessions": [], "total": 57}'))  # not filtered
        else:
            writer.write(answer(200, b'{"sessions": [{"session_id": "o"}], "total": 1}'))

    async with RawServer(script) as server, manager_at(server.url) as manager:
        report = await manager.close_sessions([("ws-1", "s-1")], missing_ok=True)
    assert report.already_gone == 0
    assert isinstance(report.failures[0].error, asyncdeleter.UnverifiedNotFoundError)


async def test_the_reads_that_check_a_404_count_in_every_item_s_attempts() -> None:
    async with Emulator(token=TOKEN, workspace_gone_code="ModelArts.9404") as emu:
        emu.add_workspaces(PROJECT, ["keep"])
        async with manager_at(emu.url) as manager:
            report = await manager.delete_workspaces(["w-1", "w-2", "w-3"])
        walks = sum(1 for r in emu.requests if r.api == "ListWorkspace")
    assert report.already_gone == 3
    assert walks >= 1
    # Each item: its DELETE, plus the walk it waited for (shared, so counted for each).
    assert all(o.attempts >= 2 for o in report.outcomes), [o.attempts for o in report.outcomes]


async def test_a_check_walk_never_trusts_a_count_that_echoes_a_capped_page() -> None:
    """100 a page, and total_count equal to each page's count: the walk asks once more."""
    echoing = capped_modelarts(total_echoes_page=True)

    async with RawServer(echoing) as server, manager_at(server.url) as manager:
        with pytest.raises(asyncdeleter.UnverifiedNotFoundError):
            await manager.delete_workspace("w0150", missing_ok=True)


async def test_a_move_after_a_host_stopped_connecting_keeps_what_the_call_did_there() -> None:
    """Host A closed the session, lost the answer, then refused connections: the move to
    B (same service) must not turn the call's own success into 'not found'."""
    closed: set[str] = set()
    a_server: RawServer | None = None

    async def host_a(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        closed.add(request.path.rsplit("/", 1)[-1])  # done, but the answer never comes
        assert a_server is not None
        assert a_server._server is not None
        a_server._server.close()  # later connects are refused
        writer.close()

    async def host_b(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        sid = request.path.rsplit("/", 1)[-1]
        body = b'{"error_code": "common.01000001", "error_msg": "no"}'
        writer.write(answer(404, body) if sid in closed else answer(200))

    async with RawServer(host_a) as a, RawServer(host_b, parents=True) as b:
        a_server = a
        environ = {
            "HUAWEICLOUD_SDK_REGION": REGION,
            "HUAWEICLOUD_SDK_REGION_DATAARTSFABRICEP_CN_NORTH_4": f"{a.url},{b.url}",
        }
        async with SessionManager.from_env(
            environ=environ,
            auth=TokenAuth(TOKEN),
            retry=asyncdeleter.RetryPolicy(initial_wait=0.05, max_time=10),
        ) as manager:
            await manager.close_session("ws-1", "s-1")  # no NotFoundError: it worked on A
            assert manager.endpoints.fabric == b.url


async def test_a_mistyped_workspace_against_a_raw_server_is_never_gone() -> None:
    """A raw service that answers every 404 with the same code, workspace or session alike."""
    not_found = b'{"error_code": "common.01000001", "error_msg": "response status exception"}'

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(404, not_found))  # the listing of the workspace too

    async with RawServer(script) as server, manager_at(server.url) as manager:
        report = await manager.close_sessions([("fab-adhco", f"s-{i}") for i in range(3)])
        lookups = sum(1 for r in server.requests if r.method == "GET")
    assert (report.succeeded, report.already_gone, report.failed) == (0, 0, 3)
    assert all(isinstance(o.error, asyncdeleter.ParentNotFoundError) for o in report.failures)
    assert lookups == 1  # one look served all three
