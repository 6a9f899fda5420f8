"""The contenders: the same job (N DeleteWorkspace calls at concurrency C) done four ways.

Each returns a ``Sample``: wall time, the process's CPU time, and per-request latencies
where the contender exposes them. They all hit the same server with the same paths.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import attrs

import asyncdeleter

PROJECT = "proj-bench"
TOKEN = "bench-token"
AK = "BENCHAK0123456789"
SK = "bench-secret-key-0123456789"


@attrs.frozen
class Sample:
    """One contender's run."""

    seconds: float
    cpu_seconds: float
    n: int
    latencies: tuple[float, ...] = ()

    @property
    def per_second(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.n * 1e6

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _pool(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> list[float]:
    """Run ``one(i)`` for i < n with ``concurrency`` workers; return each call's latency."""
    latencies = [0.0] * n
    counter = iter(range(n))
    perf = time.perf_counter

    async def worker() -> None:
        for i in counter:
            started = perf()
            await one(i)
            latencies[i] = perf() - started

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _measure(run: Callable[[], list[float] | None], n: int) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    latencies = run()
    return Sample(time.perf_counter() - wall, time.process_time() - cpu, n, tuple(latencies or ()))


def _manager(base: str, concurrency: int, aksk: bool) -> asyncdeleter.SessionManager:
    return asyncdeleter.SessionManager(
        endpoints=asyncdeleter.Endpoints(fabric=base, modelarts=base),
        project_id=PROJECT,
        auth=asyncdeleter.AkSkAuth(AK, SK) if aksk else asyncdeleter.TokenAuth(TOKEN),
        max_concurrency=concurrency,
    )


def asyncdeleter_single(base: str, n: int, concurrency: int, *, aksk: bool = False) -> Sample:
    """``SessionManager.delete_workspace``, one call per id, C workers."""

    async def main() -> list[float]:
        async with _manager(base, concurrency, aksk) as manager:

            async def one(i: int) -> None:
                await manager.delete_workspace(f"w{i}")

            return await _pool(n, concurrency, one)

    return _measure(lambda: asyncio.run(main()), n)


def asyncdeleter_bulk(base: str, n: int, concurrency: int, *, aksk: bool = False) -> Sample:
    """``SessionManager.delete_workspaces`` over a generator, streamed."""

    async def main() -> None:
        async with _manager(base, concurrency, aksk) as manager:
            async for outcome in manager.delete_workspaces(f"w{i}" for i in range(n)):
                if outcome.kind is not asyncdeleter.OutcomeKind.SUCCEEDED:
                    raise RuntimeError(f"benchmark item failed: {outcome}")

    return _measure(lambda: asyncio.run(main()) and None, n)


def raw_aiohttp(base: str, n: int, concurrency: int) -> Sample:
    """The naive loop: one ClientSession, a semaphore's worth of workers, delete, read."""

    async def main() -> list[float]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        headers = {"X-Auth-Token": TOKEN}
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> None:
                async with session.delete(
                    f"{base}/v1/{PROJECT}/workspaces/w{i}", headers=headers
                ) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"status {r.status}")

            return await _pool(n, concurrency, one)

    return _measure(lambda: asyncio.run(main()), n)


def httpx_async(base: str, n: int, concurrency: int) -> Sample:
    """``httpx.AsyncClient`` with a connection pool of C."""
    import httpx

    async def main() -> list[float]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, headers={"X-Auth-Token": TOKEN}) as client:

            async def one(i: int) -> None:
                response = await client.delete(f"{base}/v1/{PROJECT}/workspaces/w{i}")
                if response.status_code != 200:
                    raise RuntimeError(f"status {response.status_code}")

            return await _pool(n, concurrency, one)

    return _measure(lambda: asyncio.run(main()), n)


def official_sdk_workers() -> int:
    """The official async client's own ceiling: its thread pool's size."""
    from huaweicloudsdkcore.client import Client

    executor = getattr(Client, "_executor", None) or getattr(Client, "executor", None)
    return int(getattr(executor, "_max_workers", 8))


def official_sdk(base: str, n: int, concurrency: int) -> Sample:
    """``huaweicloudsdkmodelarts``' ModelArtsAsyncClient (a thread pool), signing with AK/SK."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkmodelarts.v1 import DeleteWorkspaceRequest, ModelArtsAsyncClient

    client = (
        ModelArtsAsyncClient.new_builder()
        .with_http_config(HttpConfig.get_default_config())
        .with_credentials(BasicCredentials(AK, SK, PROJECT))
        .with_endpoints([base])
        .build()
    )

    def run() -> None:
        futures = [
            client.delete_workspace_async(DeleteWorkspaceRequest(workspace_id=f"w{i}"))
            for i in range(n)
        ]
        for future in futures:
            future.result()

    return _measure(run, n)


def median(samples: list[Sample], key: Callable[[Sample], float]) -> float:
    return statistics.median(key(s) for s in samples)


# -- listing: ListSqlSessions paged through, N sessions in pages of P ------------------------


def raw_aiohttp_listing(base: str, workspace: str, page: int) -> Sample:
    """The naive paging loop: GET offset/limit until a short page, json() each page."""

    async def main() -> int:
        headers = {"X-Auth-Token": TOKEN}
        seen = 0
        async with aiohttp.ClientSession() as session:
            offset = 0
            while True:
                url = f"{base}/v1/workspaces/{workspace}/sessions"
                query = {"limit": str(page), "offset": str(offset)}
                async with session.get(url, params=query, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"status {r.status}")
                    body = await r.json()
                items = body["sessions"]
                seen += len(items)
                offset += len(items)
                if len(items) < page:
                    return seen

    wall, cpu = time.perf_counter(), time.process_time()
    n = asyncio.run(main())
    return Sample(time.perf_counter() - wall, time.process_time() - cpu, n)


def asyncdeleter_listing(base: str, workspace: str, page: int) -> Sample:
    """``SessionManager.list_sessions``: typed models, each item once even under deletion."""

    async def main() -> int:
        seen = 0
        async with _manager(base, 8, False) as manager:
            async for _ in manager.list_sessions(workspace, page_size=page):
                seen += 1
        return seen

    wall, cpu = time.perf_counter(), time.process_time()
    n = asyncio.run(main())
    return Sample(time.perf_counter() - wall, time.process_time() - cpu, n)
