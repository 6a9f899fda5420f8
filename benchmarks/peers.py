"""The contenders: the same job (N DeleteWorkspace calls at concurrency C) done four ways.

Each returns a ``Sample``: wall time, the process's CPU time, and per-request latencies
where the contender exposes them. They all hit the same server with the same paths.

Run as a script (``python benchmarks/peers.py tracing-child --mode MODE ...``), it is one
round of the tracing comparison in a process of its own: ``asyncdeleter_single`` with
tracing off, on without the ``otel`` extra, on with the API only, on with the SDK set up,
or (``baseline``) whatever ``asyncdeleter`` PYTHONPATH finds, built with its defaults. It
prints the ``Sample`` as JSON. A process each, because a tracer provider can be set only
once per process and no other contender may pay for one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

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


#: What the in-process contenders pass: no tracing, the path of an application without the
#: ``otel`` extra (the benchmark's environment has it, for the tracing comparison, which
#: runs each of its variants in a process of its own).
UNTRACED: dict[str, Any] = {"tracing": False}


def _manager(
    base: str, concurrency: int, aksk: bool, options: dict[str, Any] | None = None
) -> asyncdeleter.SessionManager:
    return asyncdeleter.SessionManager(
        endpoints=asyncdeleter.Endpoints(fabric=base, modelarts=base),
        project_id=PROJECT,
        auth=asyncdeleter.AkSkAuth(AK, SK) if aksk else asyncdeleter.TokenAuth(TOKEN),
        max_concurrency=concurrency,
        **(UNTRACED if options is None else options),
    )


def asyncdeleter_single(
    base: str,
    n: int,
    concurrency: int,
    *,
    aksk: bool = False,
    options: dict[str, Any] | None = None,
    after: Callable[[], object] | None = None,
) -> Sample:
    """``SessionManager.delete_workspace``, one call per id, C workers.

    ``options`` are the manager's other arguments (``UNTRACED`` when ``None``); ``after``
    runs inside the measured time, once the calls are done (flushing a tracer's queue).
    """

    async def main() -> list[float]:
        async with _manager(base, concurrency, aksk, options) as manager:

            async def one(i: int) -> None:
                await manager.delete_workspace(f"w{i}")

            return await _pool(n, concurrency, one)

    def run() -> list[float]:
        latencies = asyncio.run(main())
        if after is not None:
            after()
        return latencies

    return _measure(run, n)


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


# -- the tracing comparison: one round of one variant, in a process of its own ---------------

TRACING_MODES = ("off", "no-extra", "api", "sdk", "baseline")


class _NoOpenTelemetry(importlib.abc.MetaPathFinder):
    """Makes ``opentelemetry`` unimportable: an environment without the ``otel`` extra."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


class _Counted:
    """How many spans the dropping exporter was handed."""

    spans = 0


def _install_sdk() -> Callable[[], None]:
    """OpenTelemetry's SDK as an exporting application has it, minus the export.

    A ``TracerProvider`` with a ``BatchSpanProcessor`` (its defaults) whose exporter drops
    what it is handed, and a ``MeterProvider`` with a periodic reader whose exporter drops
    too. Returns the flush that ends a measured run: every queued span processed, the
    metrics collected once.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            _Counted.spans += len(spans)
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(DropMetrics())])
    metrics.set_meter_provider(meter_provider)

    def flush() -> None:
        tracer_provider.force_flush()
        meter_provider.force_flush()

    return flush


def tracing_child(argv: list[str]) -> int:
    """One measured run of ``asyncdeleter_single`` in one tracing mode; prints JSON."""
    parser = argparse.ArgumentParser(prog="peers.py tracing-child")
    parser.add_argument("--mode", choices=TRACING_MODES, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "off": {"tracing": False},
        "no-extra": {},  # the default, tracing=True, with opentelemetry not importable
        "api": {"tracing": True},
        "sdk": {"tracing": True},
        "baseline": {},  # a build without the feature: its defaults, no such argument
    }[args.mode]
    flush: Callable[[], None] | None = None
    if args.mode == "no-extra":
        sys.meta_path.insert(0, _NoOpenTelemetry())
    elif args.mode == "sdk":
        flush = _install_sdk()

    def run(n: int) -> Sample:
        return asyncdeleter_single(args.base, n, args.concurrency, options=options, after=flush)

    run(args.warmup)  # the interpreter, nginx's connections, the tracer's first spans
    spans_before = _Counted.spans
    sample = run(args.n)
    imported = sorted(
        m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")
    )
    print(
        json.dumps(
            {
                "seconds": sample.seconds,
                "cpu_seconds": sample.cpu_seconds,
                "n": sample.n,
                "p50": sample.percentile(0.50),
                "p99": sample.percentile(0.99),
                "module": asyncdeleter.__file__,
                "otel_imported": bool(imported),
                "spans_per_call": (_Counted.spans - spans_before) / sample.n if flush else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["tracing-child"]:
        raise SystemExit(
            "usage: peers.py tracing-child --mode MODE --base URL --n N --concurrency C"
        )
    raise SystemExit(tracing_child(sys.argv[2:]))
