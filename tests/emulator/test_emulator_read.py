"""The emulator's read side and workspace deletion lifecycle (docs/api-facts.md, sections 2 and 5).

Driven with plain aiohttp requests, not the client library: these tests pin down the
server the client's tests rely on, including the offset-paging trap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import math
import sys
import threading
import time
from typing import Any

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict

from asyncdeleter.testing import Emulator, Fault, FaultKind

PROJECT = "proj-1"


async def call(
    method: str, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, CIMultiDict[str]]:
    """One request; the body decoded as JSON when there is one."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers) as response,
    ):
        raw = await response.read()
        is_json = response.content_type == "application/json" and raw
        return response.status, json.loads(raw) if is_json else raw, response.headers.copy()


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, body, _ = await call("GET", url, headers)
    return status, body


async def delete(url: str) -> tuple[int, Any]:
    status, body, _ = await call("DELETE", url)
    return status, body


def session_ids(body: dict[str, Any]) -> list[str]:
    return [s["session_id"] for s in body["sessions"]]


def workspace_ids(body: dict[str, Any]) -> list[str]:
    return [w["id"] for w in body["workspaces"]]


async def start_of_a_quota_window() -> None:
    """Sleep to just after a whole second of the loop clock, where quota windows begin."""
    now = asyncio.get_running_loop().time()
    await asyncio.sleep(math.ceil(now) - now + 0.01)


# -- Fabric: ListSqlSessions and ShowSqlSession ------------------------------------------


async def test_sessions_list_in_creation_order_with_default_limit_and_total() -> None:
    """Creation order, not sorted order; limit 10 by default; total counts them all."""
    order = [f"s-{i:02d}" for i in reversed(range(25))]
    async with Emulator() as emu:
        emu.add_sessions("ws", order)
        status, body = await get(f"{emu.url}/v1/workspaces/ws/sessions")
        assert status == 200
        assert (session_ids(body), body["total"]) == (order[:10], 25)
        _, body = await get(f"{emu.url}/v1/workspaces/ws/sessions?limit=10&offset=20")
        assert session_ids(body) == order[20:]
        _, body = await get(f"{emu.url}/v1/workspaces/ws/sessions?limit=100&offset=25")
        assert (body["sessions"], body["total"]) == ([], 25)


async def test_session_filters_and_their_totals() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["r1", "r2", "r3"], extra={"endpoint_id": "ep-a"})
        emu.add_sessions("ws", ["c1", "c2"], status="CLOSED", extra={"endpoint_id": "ep-b"})
        emu.add_sessions("ws", ["w1"], status="WAITING")
        base = f"{emu.url}/v1/workspaces/ws/sessions"
        _, body = await get(f"{base}?status=CLOSED")
        assert (session_ids(body), body["total"]) == (["c1", "c2"], 2)
        _, body = await get(f"{base}?endpoint_id=ep-a&limit=2&offset=1")
        assert (session_ids(body), body["total"]) == (["r2", "r3"], 3)
        _, body = await get(f"{base}?session_id=w1")
        assert (session_ids(body), body["total"]) == (["w1"], 1)
        _, body = await get(f"{base}?status=RUNNING&endpoint_id=ep-b")
        assert (body["sessions"], body["total"]) == ([], 0)
        _, body = await get(f"{base}?limit=100")
        assert body["total"] == 6
        assert body["sessions"][3] == {
            "session_id": "c1",
            "status": "CLOSED",
            "create_time": body["sessions"][3]["create_time"],
            "endpoint_id": "ep-b",
        }
        assert emu.session_status("ws", "c1") == "CLOSED"
        assert emu.session_status("ws", "nope") is None


async def test_closing_sessions_between_pages_shifts_the_next_page() -> None:
    """The paging trap is real: page 2 read after closing page 1 skips a page."""
    ids = [f"s-{i:02d}" for i in range(30)]
    async with Emulator() as emu:
        emu.add_sessions("ws", ids)
        base = f"{emu.url}/v1/workspaces/ws/sessions?limit=10"
        _, first = await get(f"{base}&offset=0")
        assert session_ids(first) == ids[:10]
        for sid in session_ids(first):
            assert (await delete(f"{emu.url}/v1/workspaces/ws/sessions/{sid}"))[0] == 200
        _, second = await get(f"{base}&offset=10")
        assert session_ids(second) == ids[20:]  # ids[10:20] were skipped
        assert second["total"] == 20
        _, again = await get(f"{base}&offset=0")
        assert session_ids(again) == ids[10:20]  # re-reading offset 0 finds them


async def test_session_ids_seeded_during_listing_go_to_the_end() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["b", "a"])
        emu.add_sessions("ws", ["c"])
        emu.add_sessions("ws", ["b"], status="CLOSED")  # a known id keeps its place
        _, body = await get(f"{emu.url}/v1/workspaces/ws/sessions")
        assert session_ids(body) == ["b", "a", "c"]
        assert body["sessions"][0]["status"] == "CLOSED"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=ten",
        "limit=1.5",
        "limit=-3",
        "offset=-1",
        "offset=1000000001",
        "offset=x",
        "status=running",
        "status=DONE",
        "status=",
        "endpoint_id=" + "e" * 37,
    ],
)
async def test_session_listing_refuses_bad_parameters(query: str) -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["s"])
        status, body = await get(f"{emu.url}/v1/workspaces/ws/sessions?{query}")
        assert status == 400
        assert body["error_code"] == "common.01000001"
        assert query.partition("=")[0] in body["error_msg"]


async def test_session_listing_accepts_the_bounds() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["s"])
        url = f"{emu.url}/v1/workspaces/ws/sessions?limit=100&offset=1000000000"
        assert await get(url) == (200, {"sessions": [], "total": 1})
        assert (await get(f"{emu.url}/v1/workspaces/ws/sessions?limit=1"))[0] == 200


async def test_session_reads_of_missing_things_are_404s_that_say_what_is_missing() -> None:
    async with Emulator() as emu:
        emu.add_sessions("empty", [])
        assert await get(f"{emu.url}/v1/workspaces/empty/sessions") == (
            200,
            {"sessions": [], "total": 0},
        )
        status, body = await get(f"{emu.url}/v1/workspaces/nope/sessions")
        assert status == 404
        assert body["error_code"] == "common.01000001"
        assert "workspace nope not found" in body["error_msg"]
        status, body = await get(f"{emu.url}/v1/workspaces/empty/sessions/gone")
        assert (status, "session gone not found" in body["error_msg"]) == (404, True)
        status, body = await get(f"{emu.url}/v1/workspaces/nope/sessions/gone")
        assert (status, "workspace nope not found" in body["error_msg"]) == (404, True)
        status, body = await get(f"{emu.url}/v1/workspaces/bad.id/sessions")
        assert status == 400


@pytest.mark.parametrize(
    "raw", [1_700_000_000, 1_700_000_000_000, "2026-01-01T08:00:00+08:00", "garbage", None]
)
async def test_listed_sessions_carry_raw_create_times_verbatim(raw: object) -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["s"], create_time=raw, extra={"endpoint_id": "ep"})
        status, body, headers = await call("GET", f"{emu.url}/v1/workspaces/ws/sessions")
        assert status == 200
        assert headers["X-Request-Id"]
        assert body["sessions"] == [
            {"session_id": "s", "status": "RUNNING", "create_time": raw, "endpoint_id": "ep"}
        ]
        # ShowSqlSession answers only the fields it documents.
        _, shown = await get(f"{emu.url}/v1/workspaces/ws/sessions/s")
        assert shown == {"session_id": "s", "status": "RUNNING"}


async def test_default_session_create_time_is_iso_utc_from_the_clock() -> None:
    async with Emulator(clock=lambda: 1_800_000_000.0) as emu:
        emu.add_sessions("ws", ["s"])
        _, page = await get(f"{emu.url}/v1/workspaces/ws/sessions")
        body = page["sessions"][0]
        assert body["create_time"] == "2027-01-15T08:00:00Z"
        parsed = dt.datetime.fromisoformat(body["create_time"].replace("Z", "+00:00"))
        assert parsed.timestamp() == 1_800_000_000.0


# -- ModelArts: ListWorkspace and ShowWorkspace ------------------------------------------


WORKSPACE_FIELDS = {
    "enterprise_project_name",  # the official SDK's WorkspaceResponse has it
    "id",
    "name",
    "description",
    "owner",
    "auth_type",
    "enterprise_project_id",
    "create_time",
    "update_time",
    "status",
    "status_info",
}


async def test_workspace_list_fields_defaults_and_documented_order() -> None:
    """Sorted by name, descending, by default; limit 1000; times are integer ms."""
    async with Emulator(clock=lambda: 1_700_000_000.5) as emu:
        emu.add_workspaces(PROJECT, ["b", "c", "a"])
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        assert status == 200
        assert (body["total_count"], body["count"], workspace_ids(body)) == (3, 3, ["c", "b", "a"])
        first = body["workspaces"][0]
        assert set(first) == WORKSPACE_FIELDS
        assert (first["name"], first["status"], first["status_info"]) == ("c", "NORMAL", "")
        assert first["create_time"] == first["update_time"] == 1_700_000_000_500
        _, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces?order=asc")
        assert workspace_ids(body) == ["a", "b", "c"]


async def test_workspace_list_default_limit_is_1000() -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, [f"w-{i:04d}" for i in range(1200)])
        _, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        assert (body["total_count"], body["count"]) == (1200, 1000)


@pytest.mark.parametrize(("reading", "step"), [("record", 100), ("page", 1)])
async def test_paging_2500_workspaces_under_either_offset_reading(reading: str, step: int) -> None:
    ids = [f"w-{i:04d}" for i in range(2500)]
    async with Emulator(modelarts_offset=reading) as emu:  # type: ignore[arg-type]
        emu.add_workspaces(PROJECT, ids)
        seen: list[str] = []
        async with aiohttp.ClientSession() as session:
            for page in range(26):
                url = f"{emu.url}/v1/{PROJECT}/workspaces?limit=100&order=asc"
                async with session.get(f"{url}&offset={page * step}") as response:
                    body = await response.json()
                assert body["total_count"] == 2500
                assert body["count"] == len(body["workspaces"])
                seen += workspace_ids(body)
        assert seen == ids  # each once, in order; page 26 is empty


async def test_offset_readings_differ_on_the_same_request() -> None:
    ids = [f"w-{i:02d}" for i in range(30)]
    async with Emulator(modelarts_offset="page") as by_page, Emulator() as by_record:
        for emu in (by_page, by_record):
            emu.add_workspaces(PROJECT, ids)
        query = f"/v1/{PROJECT}/workspaces?limit=10&offset=2&order=asc"
        _, paged = await get(by_page.url + query)
        _, recorded = await get(by_record.url + query)
        assert workspace_ids(paged) == ids[20:30]
        assert workspace_ids(recorded) == ids[2:12]


def test_an_unknown_offset_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="modelarts_offset"):
        Emulator(modelarts_offset="cursor")  # type: ignore[arg-type]


async def test_workspace_filters_and_sorting() -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ["w1"], name="Team-Alpha-1", update_time=300)
        emu.add_workspaces(
            PROJECT,
            ["w2"],
            name="alpha-2",
            update_time=100,
            extra={"enterprise_project_id": "ep-9"},
        )
        emu.add_workspaces(PROJECT, ["w3"], name="beta", update_time=200, status="DELETE_FAILED")
        base = f"{emu.url}/v1/{PROJECT}/workspaces"
        _, body = await get(f"{base}?name=ALPHA")
        assert (sorted(workspace_ids(body)), body["total_count"]) == (["w1", "w2"], 2)
        _, body = await get(f"{base}?enterprise_project_id=ep-9")
        assert workspace_ids(body) == ["w2"]
        _, body = await get(f"{base}?sort_by=update_time&order=asc")
        assert workspace_ids(body) == ["w2", "w3", "w1"]
        _, body = await get(f"{base}?sort_by=status&order=desc")
        assert workspace_ids(body)[-1] == "w3"  # DELETE_FAILED < NORMAL
        _, body = await get(f"{base}?name=alpha&limit=1&offset=1&order=asc&filter_accessible=true")
        # Names compare as they are: "Team-Alpha-1" < "alpha-2".
        assert (workspace_ids(body), body["total_count"], body["count"]) == (["w2"], 2, 1)


async def test_sorting_raw_times_of_mixed_types_does_not_crash() -> None:
    async with Emulator() as emu:
        for wid, raw in [("a", None), ("b", "garbage"), ("c", 5), ("d", 1.7e12), ("e", "2026")]:
            emu.add_workspaces(PROJECT, [wid], update_time=raw)
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces?sort_by=update_time&order=asc")
        assert status == 200
        assert workspace_ids(body) == ["c", "d", "e", "b", "a"]
        assert [w["update_time"] for w in body["workspaces"]][:2] == [5, 1.7e12]


async def test_deleting_workspaces_between_pages_shifts_the_next_page() -> None:
    ids = [f"w-{i:02d}" for i in range(30)]
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ids)
        base = f"{emu.url}/v1/{PROJECT}/workspaces?limit=10&order=asc"
        _, first = await get(f"{base}&offset=0")
        for wid in workspace_ids(first):
            assert (await delete(f"{emu.url}/v1/{PROJECT}/workspaces/{wid}"))[0] == 200
        _, second = await get(f"{base}&offset=10")
        assert workspace_ids(second) == ids[20:]
        assert second["total_count"] == 20


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "offset=2147483648",
        "sort_by=create_time",
        "order=up",
        "filter_accessible=maybe",
        "name=" + "n" * 65,
    ],
)
async def test_workspace_listing_refuses_bad_parameters(query: str) -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ["w"])
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces?{query}")
        assert (status, body["error_code"]) == (400, "ModelArts.0101")


async def test_workspace_reads_of_missing_things() -> None:
    async with Emulator() as emu:
        emu.add_workspaces("empty", [])
        assert await get(f"{emu.url}/v1/empty/workspaces") == (
            200,
            {"total_count": 0, "count": 0, "workspaces": []},
        )
        status, body = await get(f"{emu.url}/v1/nope/workspaces")
        assert (status, body["error_code"]) == (404, "ModelArts.0103")
        assert "project nope does not exist" in body["error_msg"]
        status, body = await get(f"{emu.url}/v1/empty/workspaces/w9")
        assert (status, body) == (
            404,
            {"error_code": "ModelArts.0104", "error_msg": "workspace w9 not exist"},
        )


async def test_show_workspace_has_the_list_fields_plus_grants() -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ["w"], name="nice", create_time="2026-01-01", extra={"x": 1})
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces/w")
        assert status == 200
        assert set(body) == WORKSPACE_FIELDS | {"grants", "x"}
        grant = {"user_id": "emulator-user-id", "user_name": "emulator-user", "user_type": "IAM"}
        assert (body["name"], body["grants"], body["create_time"]) == (
            "nice",
            [grant],
            "2026-01-01",
        )
        assert body["update_time"] == "2026-01-01"


# -- the deletion lifecycle ------------------------------------------------------------


async def test_by_default_a_deleted_workspace_vanishes_at_once() -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ["w"])
        assert await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w") == (200, {"workspace_id": "w"})
        assert emu.workspaces(PROJECT) == frozenset()
        assert emu.workspace_status(PROJECT, "w") is None
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0] == 404
        status, body = await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w")
        assert (status, body["error_code"]) == (404, "ModelArts.0104")


async def test_a_deleted_workspace_shows_deleting_then_vanishes() -> None:
    async with Emulator(deleting_seconds=0.4) as emu:
        emu.add_workspaces(PROJECT, ["w", "keep"])
        url = f"{emu.url}/v1/{PROJECT}/workspaces/w"
        assert await delete(url) == (200, {"workspace_id": "w"})
        _, shown = await get(url)
        assert shown["status"] == "DELETING"
        _, listed = await get(f"{emu.url}/v1/{PROJECT}/workspaces?order=asc")
        assert [w["status"] for w in listed["workspaces"]] == ["NORMAL", "DELETING"]
        assert emu.workspaces(PROJECT) == {"w", "keep"}
        assert emu.workspace_status(PROJECT, "w") == "DELETING"
        assert await delete(url) == (200, {"workspace_id": "w"})  # accepted again
        assert [r.committed for r in emu.requests if r.method == "DELETE"] == [True, True]
        await asyncio.sleep(0.6)
        status, body = await get(url)
        assert (status, body["error_code"]) == (404, "ModelArts.0104")
        assert emu.workspace_status(PROJECT, "w") is None
        assert (emu.workspaces(PROJECT), emu.workspace_count) == (frozenset({"keep"}), 1)


async def test_a_deletion_marked_to_fail_ends_delete_failed_with_the_reason() -> None:
    async with Emulator(deleting_seconds=0.3) as emu:
        emu.add_workspaces(PROJECT, ["w"])
        emu.fail_deletion("w", reason="resources are still bound")
        url = f"{emu.url}/v1/{PROJECT}/workspaces/w"
        assert (await delete(url))[0] == 200
        assert emu.workspace_status(PROJECT, "w") == "DELETING"
        await asyncio.sleep(0.45)
        _, body = await get(url)
        assert (body["status"], body["status_info"]) == (
            "DELETE_FAILED",
            "resources are still bound",
        )
        _, listed = await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        assert listed["workspaces"][0]["status"] == "DELETE_FAILED"
        assert emu.workspaces(PROJECT) == {"w"}
        # A new delete starts over: DELETING (reason cleared), and fails again while marked.
        assert (await delete(url))[0] == 200
        _, body = await get(url)
        assert (body["status"], body["status_info"]) == ("DELETING", "")
        await asyncio.sleep(0.45)
        assert emu.workspace_status(PROJECT, "w") == "DELETE_FAILED"
        emu.clear_deletion_failures("w")
        assert (await delete(url))[0] == 200
        await asyncio.sleep(0.45)
        assert emu.workspace_status(PROJECT, "w") is None


async def test_a_failing_deletion_with_no_delay_fails_at_once() -> None:
    async with Emulator() as emu:
        emu.add_workspaces(PROJECT, ["w", "v"])
        emu.fail_deletion("w")
        assert (await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0] == 200
        assert (await delete(f"{emu.url}/v1/{PROJECT}/workspaces/v"))[0] == 200
        _, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces/w")
        assert body["status"] == "DELETE_FAILED"
        assert body["status_info"]  # a default reason
        assert emu.workspaces(PROJECT) == {"w"}


async def test_the_default_workspace_cannot_be_deleted() -> None:
    async with Emulator() as emu:
        emu.add_default_workspace(PROJECT)
        _, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        assert [(w["id"], w["name"], w["status"]) for w in body["workspaces"]] == [
            ("0", "default", "NORMAL")
        ]
        status, body = await delete(f"{emu.url}/v1/{PROJECT}/workspaces/0")
        assert status == 400
        assert body["error_code"] == "ModelArts.0102"
        assert "default workspace cannot be deleted" in body["error_msg"]
        assert emu.workspaces(PROJECT) == {"0"}
        assert emu.workspace_status(PROJECT, "0") == "NORMAL"
        # An ordinary workspace that happens to be called "0" elsewhere is deletable.
        emu.add_workspaces("other", ["0"])
        assert (await delete(f"{emu.url}/v1/other/workspaces/0"))[0] == 200


# -- the gateway on reads --------------------------------------------------------------


async def test_requests_record_their_api() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["s"])
        emu.add_workspaces(PROJECT, ["w"])
        await get(f"{emu.url}/v1/workspaces/ws/sessions")
        await get(f"{emu.url}/v1/workspaces/ws/sessions/s")
        await delete(f"{emu.url}/v1/workspaces/ws/sessions/s")
        await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        await get(f"{emu.url}/v1/{PROJECT}/workspaces/w")
        await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w")
        await get(f"{emu.url}/v2/whatever")
        status, _, _ = await call("POST", f"{emu.url}/v1/{PROJECT}/workspaces/w")
        assert status == 405
        assert (await delete(f"{emu.url}/v1/{PROJECT}/workspaces"))[0] == 405
        assert [r.api for r in emu.requests] == [
            "ListSqlSessions",
            "ShowSqlSession",
            "CloseSqlSession",
            "ListWorkspace",
            "ShowWorkspace",
            "DeleteWorkspace",
            None,
            None,
            None,
        ]
        assert [r.committed for r in emu.requests][:6] == [False, False, True, False, False, True]


async def test_quota_windows_are_per_api_not_per_method() -> None:
    """ListWorkspace and ShowWorkspace are both GETs on ModelArts, yet counted apart."""
    async with Emulator(quota=3) as emu:
        emu.add_workspaces(PROJECT, ["w"])
        emu.add_sessions("ws", ["s"])
        await start_of_a_quota_window()
        lists = [(await get(f"{emu.url}/v1/{PROJECT}/workspaces"))[0] for _ in range(4)]
        show = (await get(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0]
        sessions = (await get(f"{emu.url}/v1/workspaces/ws/sessions"))[0]
        status, body, headers = await call("GET", f"{emu.url}/v1/{PROJECT}/workspaces")
    assert lists == [200, 200, 200, 429]
    assert (show, sessions, status) == (200, 200, 429)
    # The gateway's documented answer: its quota in the message, and no Retry-After.
    assert body["error_code"] == "APIG.0308"
    assert "limit:3,time:1 second" in body["error_msg"]
    assert "Retry-After" not in headers


async def test_faults_filtered_by_api_and_method() -> None:
    faults = [
        Fault(api="ShowWorkspace", status=500),
        Fault(method="get", service="fabric", kind=FaultKind.STATUS, status=503),
    ]
    async with Emulator(faults=faults) as emu:
        emu.add_workspaces(PROJECT, ["w"])
        emu.add_sessions("ws", ["s"])
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0] == 500
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces"))[0] == 200
        assert (await get(f"{emu.url}/v1/workspaces/ws/sessions"))[0] == 503
        assert (await get(f"{emu.url}/v1/workspaces/ws/sessions/s"))[0] == 503
        assert (await delete(f"{emu.url}/v1/workspaces/ws/sessions/s"))[0] == 200
        assert (await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0] == 200
        assert [r.fault for r in emu.requests] == [FaultKind.STATUS, None] + [
            FaultKind.STATUS
        ] * 2 + [None, None]
        assert emu.faults_injected == 3


async def test_nth_counts_requests_per_method_on_a_path() -> None:
    """A confirming GET does not use up the n-th DELETE a test aimed a fault at."""
    async with Emulator(faults=[Fault(status=503, nth=2, method="DELETE")]) as emu:
        emu.add_workspaces(PROJECT, ["w"])
        url = f"{emu.url}/v1/{PROJECT}/workspaces/w"
        assert (await delete(url))[0] == 200
        assert (await get(url))[0] == 404
        assert (await delete(url))[0] == 503


async def test_credentials_and_forbid_apply_to_reads() -> None:
    async with Emulator(token="good") as emu:
        emu.add_workspaces(PROJECT, ["w", "secret"])
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces")
        assert (status, body["error_code"]) == (401, "APIG.1002")
        ok = {"X-Auth-Token": "good"}
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces", ok))[0] == 200
        emu.forbid("secret")
        status, body = await get(f"{emu.url}/v1/{PROJECT}/workspaces/secret", ok)
        assert (status, body["error_code"]) == (403, 403)
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces/w", ok))[0] == 200


def _sign(url: str, ak: str, sk: str) -> dict[str, str]:
    """A bare SDK-HMAC-SHA256 signature of a GET (ASCII query, no repeated keys)."""
    parsed = yarl.URL(url)
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    host = f"{parsed.host}:{parsed.port}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parsed.query.items()))
    canonical = "\n".join(
        [
            "GET",
            parsed.raw_path + "/",
            query,
            f"host:{host}\nx-sdk-date:{date}\n",
            "host;x-sdk-date",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "X-Sdk-Date": date,
        "Authorization": (
            f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders=host;x-sdk-date, Signature={signature}"
        ),
    }


async def test_signatures_on_reads_cover_the_query_string() -> None:
    async with Emulator(access_keys={"AK1": "SK1"}) as emu:
        emu.add_sessions("ws", ["s"])
        url = f"{emu.url}/v1/workspaces/ws/sessions?limit=5&status=RUNNING"
        assert (await get(url, _sign(url, "AK1", "SK1")))[0] == 200
        tampered = url.replace("limit=5", "limit=6")
        status, body = await get(tampered, _sign(url, "AK1", "SK1"))
        assert (status, body["error_code"]) == (401, "APIG.0301")


async def test_project_ids_seen_on_fabric_calls() -> None:
    async with Emulator() as emu:
        emu.add_sessions("ws", ["s"])
        emu.add_workspaces(PROJECT, ["w"])
        header = {"X-Project-Id": PROJECT}
        await get(f"{emu.url}/v1/workspaces/ws/sessions", header)
        await get(f"{emu.url}/v1/workspaces/ws/sessions/s", header)
        await get(f"{emu.url}/v1/workspaces/ws/sessions")
        await get(f"{emu.url}/v1/{PROJECT}/workspaces", header)  # ModelArts: not counted
        assert emu.project_ids_seen == {PROJECT: 2}
        assert emu.requests[0].headers["X-Project-Id"] == PROJECT
        emu.reset_stats()
        assert not emu.project_ids_seen


async def test_stateless_reads_do_not_crash() -> None:
    async with Emulator(stateless=True) as emu:
        assert (await get(f"{emu.url}/v1/workspaces/ws/sessions"))[0] == 404
        assert (await get(f"{emu.url}/v1/{PROJECT}/workspaces/w"))[0] == 404
        assert await delete(f"{emu.url}/v1/{PROJECT}/workspaces/w") == (200, {"workspace_id": "w"})


# -- threads ---------------------------------------------------------------------------


def test_seeding_from_another_thread_while_listing() -> None:
    """The fixture's shape: serve from a thread, seed from another, read meanwhile."""
    emu = Emulator()
    emu.add_sessions("ws", [])
    emu.add_workspaces(PROJECT, [])
    stop = threading.Event()

    def seed() -> None:
        for i in range(50_000):
            emu.add_sessions("ws", [f"s-{i}"], status="RUNNING" if i % 2 else "CLOSED")
            emu.add_workspaces(PROJECT, [f"w-{i}"])
            if stop.is_set():
                return

    async def read(url: str) -> list[int]:
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            while seeder.is_alive() and len(statuses) < 5000:
                for path in (
                    "/v1/workspaces/ws/sessions?status=RUNNING&limit=100&offset=50",
                    "/v1/workspaces/ws/sessions?limit=100&offset=5000",
                    f"/v1/{PROJECT}/workspaces?name=w-1&limit=100",
                ):
                    async with session.get(url + path) as response:
                        statuses.append(response.status)
                        assert response.status == 200, await response.text()
        return statuses

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so an unguarded dict shows it
    with emu.running_in_thread():
        seeder = threading.Thread(target=seed)
        seeder.start()
        try:
            statuses = asyncio.run(read(emu.url))
        finally:
            sys.setswitchinterval(interval)
            stop.set()
            seeder.join()
        added = emu.session_count
        _, body = asyncio.run(get(f"{emu.url}/v1/workspaces/ws/sessions"))
    assert statuses
    assert set(statuses) == {200}
    assert body["total"] == added == len(emu.sessions("ws"))
    assert emu.workspace_count in (added - 1, added)
