"""Listings against a server that changes under them: others delete, others create, the
offset counts records or pages. Each item that existed at the start and that nobody else
deleted is yielded once; the listing always ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

import asyncdeleter
from asyncdeleter import SessionManager
from tests.raw_server import RawRequest, RawServer, answer

PROJECT = "p1"
Mutation = Callable[["Listed", int], None]


class Listed:
    """A ListWorkspace that serves ``items`` and lets a test change them between requests."""

    def __init__(
        self, n: int, reading: str, mutate: Mutation | None = None, *, clamp: bool = False
    ) -> None:
        self.clamp = clamp  # a window past the end gets the last page, not a short one
        self.items = [f"w-{i:03d}" for i in range(n)]
        self.initial = list(self.items)
        self.reading = reading
        self.mutate = mutate
        self.requests = 0
        self.deleted_by_others: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            victim = request.match_info["ws"]
            if victim in self.items:
                self.items.remove(victim)
            return web.json_response({"workspace_id": victim})
        self.requests += 1
        if self.mutate is not None:
            self.mutate(self, self.requests)
        limit = int(request.query.get("limit", "1000"))
        offset = int(request.query.get("offset", "0"))
        start = offset * limit if self.reading == "page" else offset
        if self.clamp and start + limit > len(self.items):
            start = max(0, len(self.items) - limit)
        page = self.items[start : start + limit]
        return web.json_response(
            {
                "total_count": len(self.items),
                "count": len(page),
                "workspaces": [{"id": i, "name": i} for i in page],
            }
        )


async def serve(listed: Listed) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", f"/v1/{PROJECT}/workspaces", listed.handle)
    app.router.add_route("*", f"/v1/{PROJECT}/workspaces/{{ws}}", listed.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def listing(listed: Listed, page_size: int, *, delete: bool = False) -> list[str]:
    seen: list[str] = []
    async for url in serve(listed):
        endpoints = asyncdeleter.Endpoints(fabric=url, modelarts=url)
        async with SessionManager(
            endpoints=endpoints, project_id=PROJECT, auth=asyncdeleter.TokenAuth("test-token")
        ) as manager:
            async with asyncio.timeout(30):  # a listing that never ends fails here
                async for ws in manager.list_workspaces(page_size=page_size):
                    seen.append(ws.workspace_id)
                    if delete:
                        await manager.delete_workspace(ws.workspace_id)
    return seen


def check(listed: Listed, seen: list[str]) -> None:
    assert len(seen) == len(set(seen)), "an item was listed twice"
    missing = set(listed.initial) - listed.deleted_by_others - set(seen)
    assert not missing, f"skipped: {sorted(missing)}"


@pytest.mark.parametrize("reading", ["record", "page"])
@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [1, 2, 5, 10, 31])
async def test_small_pages_end_and_list_everything(reading: str, page_size: int, n: int) -> None:
    listed = Listed(n, reading)
    check(listed, await listing(listed, page_size))
    assert listed.requests <= 4 * n + 4  # never a spin


@pytest.mark.parametrize("reading", ["record", "page"])
@pytest.mark.parametrize("page_size", [2, 3, 10])
async def test_deleting_as_we_go_under_small_pages(reading: str, page_size: int) -> None:
    listed = Listed(40, reading)
    check(listed, await listing(listed, page_size, delete=True))
    assert listed.items == []


def others_delete_seen_items(listed: Listed, request: int) -> None:
    """Before every second request, someone else deletes the first item still there."""
    if request % 2 == 0 and listed.items:
        listed.deleted_by_others.add(listed.items.pop(0))


def others_create_at_the_front(count: int, at: set[int]) -> Mutation:
    def mutate(listed: Listed, request: int) -> None:
        if request in at:
            for k in range(count):
                listed.items.insert(0, f"new-{request}-{k}")

    return mutate


@pytest.mark.parametrize("reading", ["record", "page"])
@pytest.mark.parametrize("page_size", [2, 5, 10])
async def test_others_deleting_never_make_us_skip(reading: str, page_size: int) -> None:
    listed = Listed(30, reading, others_delete_seen_items)
    check(listed, await listing(listed, page_size))


@pytest.mark.parametrize("reading", ["record", "page"])
@pytest.mark.parametrize(("page_size", "created"), [(4, 4), (10, 10), (10, 3), (1000, 1)])
async def test_creations_during_the_offset_probe_do_not_fool_it(
    reading: str, page_size: int, created: int
) -> None:
    """The probe that tells records from pages is the second request: change the list there."""
    listed = Listed(max(40, 2 * page_size + 500), reading, others_create_at_the_front(created, {2}))
    check(listed, await listing(listed, page_size))


@pytest.mark.parametrize("reading", ["record", "page"])
async def test_others_deleting_unseen_items_during_the_probe(reading: str) -> None:
    def mutate(listed: Listed, request: int) -> None:
        if request == 2:
            for victim in listed.items[:2]:
                listed.items.remove(victim)
                listed.deleted_by_others.add(victim)

    listed = Listed(6, reading, mutate)
    check(listed, await listing(listed, 2))


async def test_a_service_that_ignores_offset_ends_in_a_typed_error() -> None:
    """A broken service that always answers the first page: no endless loop, a clear error."""
    listed = Listed(50, "record")

    async def first_page_always(request: web.Request) -> web.Response:
        listed.requests += 1
        limit = int(request.query.get("limit", "1000"))
        page = listed.items[:limit]
        return web.json_response({"total_count": 50, "workspaces": [{"id": i} for i in page]})

    listed.handle = first_page_always  # type: ignore[method-assign]
    with pytest.raises(asyncdeleter.MalformedResponseError, match="no progress"):
        await listing(listed, 5)
    assert listed.requests < 200


@pytest.mark.parametrize("reading", ["record", "page"])
async def test_an_item_reordered_behind_us_is_found_by_another_walk(reading: str) -> None:
    """The service moves an unseen item in front of what we have read (an unstable order):
    its count says one is missing, and the listing walks again to find it."""

    def move_last_to_front(listed: Listed, request: int) -> None:
        if request == 3:
            listed.items.insert(0, listed.items.pop())

    listed = Listed(30, reading, move_last_to_front)
    check(listed, await listing(listed, 5))


def clamping_sessions(n: int) -> RawServer:
    """ListSqlSessions over ``n`` sessions that answers a window reaching past the end with
    its last page again (``limit`` items), never with a short or empty page."""
    sessions = [f"s-{i:03d}" for i in range(n)]

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        query = dict(p.split("=", 1) for p in request.path.partition("?")[2].split("&") if p)
        offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
        start = offset if offset + limit <= n else max(0, n - limit)
        page = [{"session_id": s, "status": "RUNNING"} for s in sessions[start : start + limit]]
        writer.write(answer(200, json.dumps({"sessions": page, "total": n}).encode()))

    return RawServer(script)


@pytest.mark.parametrize("page_size", [1, 3, 10])
async def test_a_service_that_answers_its_last_page_again_ends_the_listing_well(
    page_size: int,
) -> None:
    """25 sessions, a request past the end answered with the last page: all 25 once, and
    the listing ends normally (it used to raise MalformedResponseError after 56 requests)."""
    async with clamping_sessions(25) as server:
        endpoints = asyncdeleter.Endpoints(fabric=server.url, modelarts=server.url)
        async with SessionManager(
            endpoints=endpoints, project_id=PROJECT, auth=asyncdeleter.TokenAuth("test-token")
        ) as manager:
            async with asyncio.timeout(30):
                seen = [
                    s.session_id async for s in manager.list_sessions("ws-1", page_size=page_size)
                ]
    assert seen == [f"s-{i:03d}" for i in range(25)]
    assert len(server.requests) <= 25 // max(page_size - 1, 1) + 4  # pages overlap by one


@pytest.mark.parametrize("delete", [False, True], ids=["listing", "deleting"])
@pytest.mark.parametrize("reading", ["record", "page"])
@pytest.mark.parametrize("page_size", [2, 10])
async def test_a_clamping_modelarts_listing_ends_well(
    reading: str, page_size: int, delete: bool
) -> None:
    """The same clamp on ListWorkspace, and deleting as we go (taking effect at once)."""
    listed = Listed(25, reading, clamp=True)
    check(listed, await listing(listed, page_size, delete=delete))
    assert listed.items == ([] if delete else listed.initial)
