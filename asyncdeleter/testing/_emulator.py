"""An in-process emulator of the two services, served over HTTP by ``aiohttp.web``.

It shares no code with the client's request path: it parses paths, checks ids and
credentials with its own code, so a bug on one side cannot hide the same bug on the other.
This module runs the server and dispatches; the services behind it are in ``_backends``
(their states in ``_fabric`` and ``_modelarts``), the gateway's refusals in ``_gateway``,
faults in ``_faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from ssl import SSLContext
from types import TracebackType
from typing import Self

from aiohttp import web

# The one piece of the client the emulator uses: a plain config class, not the request path.
from asyncdeleter._config import Endpoints
from asyncdeleter.testing._backends import Backends
from asyncdeleter.testing._bodies import forbidden_body, json_response, respond
from asyncdeleter.testing._faults import Fault, FaultKind, FaultRules, misbehave
from asyncdeleter.testing._gateway import (
    QuotaWindows,
    TokenBucket,
    check_credentials,
    method_not_allowed,
    throttled,
    unknown_api,
)
from asyncdeleter.testing._modelarts import OffsetReading
from asyncdeleter.testing._routes import (
    DELETE_APIS,
    FABRIC,
    RecordedRequest,
    Route,
    parse_route,
)
from asyncdeleter.testing._signature import SignatureVerifier

__all__ = ["Emulator", "RecordedRequest"]


class Emulator(Backends):
    """DataArts Fabric and ModelArts, as far as deleting and checking go, on one port.

    Both services answer on ``url``; their states are apart, as in reality: Fabric
    workspaces hold sessions, ModelArts projects hold workspaces. Each serves its delete,
    list and show APIs (docs/api-facts.md, sections 1, 2 and 5); seeding and inspecting the state
    is inherited from ``Backends``. State methods may be called from any thread.

    Args:
        host: The address to listen on (keep it on loopback).
        port: The port; 0 picks a free one.
        token: If set, every request must carry ``X-Auth-Token: <token>`` (else 401
            ``APIG.1002``), or a valid signature when ``access_keys`` is set too.
        access_keys: Access key id to secret key: requests signed with ``SDK-HMAC-SHA256``
            by one of these are accepted, others get 401 ``APIG.0301``.
        security_tokens: Access key id to the ``X-Security-Token`` it must send.
        clock: The emulator's Unix time, for the 15-minute ``X-Sdk-Date`` check and the
            default creation times of seeded sessions and workspaces.
        ssl: Serve HTTPS with this server-side context (``url`` then says ``https``).
        latency: Seconds added before every answer.
        latency_jitter: Up to this many seconds more, drawn at random per request.
        faults: Fault rules; the first matching rule applies to a request.
        seed: Seeds the random choices (fault probabilities, jitter, garbage).
        record_requests: Keep a ``RecordedRequest`` per request (turn off for huge runs).
        quota: The gateway's quota: at most this many requests per fixed one-second window
            (aligned to whole seconds of the loop's clock) per API, answering 429
            ``APIG.0308`` past it. May be changed while serving (a quota that changes
            mid-run).
        throttle_rps: Answer 429 (``APIG.0308``) above this many requests per second,
            measured by a token bucket (smoother than the gateway's fixed window).
        throttle_retry_after: The ``Retry-After`` sent with the 429s of ``quota`` and
            ``throttle_rps``; ``None`` (the default, as the gateway documents) sends none.
        throttle_burst: Requests the throttle lets through at once after a quiet spell
            (its bucket size); by default one second's worth, ``throttle_rps``.
        stateless: Answer every valid delete with success and store nothing, so a
            benchmark of millions of deletions measures the client, not the emulator's sets.
            Reads then see only what was seeded.
        keepalive_timeout: Seconds an idle keep-alive connection stays open (aiohttp's
            default is 75); a small value provokes keep-alive races.
        deleting_seconds: How long a deleted ModelArts workspace shows ``DELETING`` before
            it vanishes (or ends ``DELETE_FAILED``, see ``fail_deletion``); 0 ends it at
            once. May be changed while serving.
        modelarts_offset: How ListWorkspace reads ``offset``: ``"record"``, records
            skipped, or ``"page"``, a page index (``offset * limit`` records skipped); the
            documentation allows either.
        workspace_gone_code: The error code of a missing ModelArts workspace's 404
            (``ModelArts.0104``, the only one seen but documented nowhere as a 404). May be
            changed while serving, as ``emu.workspace_gone_code``.
        separate_session_host: Serve the Fabric session API on a second port only
            (``session_url``), as the real service serves it on one host of two: ``url``
            then answers the gateway's ``404 APIGW.0101`` to every session path.

    Raises:
        ValueError: ``modelarts_offset`` is neither ``"record"`` nor ``"page"``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        access_keys: Mapping[str, str] | None = None,
        security_tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        ssl: SSLContext | None = None,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        faults: Iterable[Fault] = (),
        seed: int | None = None,
        record_requests: bool = True,
        quota: int | None = None,
        throttle_rps: float | None = None,
        throttle_retry_after: str | None = None,
        throttle_burst: float | None = None,
        stateless: bool = False,
        keepalive_timeout: float = 75.0,
        deleting_seconds: float = 0.0,
        modelarts_offset: OffsetReading = "record",
        workspace_gone_code: str = "ModelArts.0104",
        separate_session_host: bool = False,
    ) -> None:
        super().__init__(
            clock=clock,
            stateless=stateless,
            deleting_seconds=deleting_seconds,
            modelarts_offset=modelarts_offset,
        )
        self.host = host
        self.port = port
        self.token = token
        self.verifier = (
            SignatureVerifier(access_keys, security_tokens or {}, clock)
            if access_keys is not None
            else None
        )
        self.ssl = ssl
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.record_requests = record_requests
        self.throttle_rps = throttle_rps
        self.throttle_retry_after = throttle_retry_after
        self.throttle_burst = throttle_burst
        self.quota = quota
        self.keepalive_timeout = keepalive_timeout
        self.workspace_gone_code = workspace_gone_code
        self.separate_session_host = separate_session_host
        self.session_port: int | None = None
        self._random = random.Random(seed)
        self._faults = FaultRules(faults, self._random)
        self._quota_windows = QuotaWindows()
        self._throttle = TokenBucket()
        self._forbidden: set[str] = set()
        self.requests: list[RecordedRequest] = []
        #: Answers by status (``None``: dropped or stalled), kept even without recording.
        self.status_counts: Counter[int | None] = Counter()
        #: ``X-Project-Id`` values received on Fabric calls, with how often each came.
        self.project_ids_seen: Counter[str] = Counter()
        self.request_count = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.faults_injected = 0
        self._runner: web.ServerRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; ``url`` is valid afterwards."""
        # handler_cancellation: a stalled answer stops when the client gives up on it.
        server = web.Server(
            self._handle,
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=self.keepalive_timeout,
        )
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, ssl_context=self.ssl)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        if self.separate_session_host:
            sessions = web.TCPSite(runner, self.host, 0, backlog=1024, ssl_context=self.ssl)
            await sessions.start()
            self.session_port = runner.addresses[1][1]

    async def stop(self) -> None:
        """Stop serving and drop every open connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[Self]:
        """Serve from a background thread with its own event loop, for sync test code.

        The pytest fixture uses this, so a test on any event loop (or none) can use it.
        State methods may be called from the calling thread meanwhile.
        """
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="asyncdeleter-emulator", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=30)
            yield self
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()

    @property
    def url(self) -> str:
        """The base URL of both services, such as ``http://127.0.0.1:41234``."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def session_url(self) -> str:
        """Where the Fabric session API answers: ``url``, or its own port when separate."""
        if self.session_port is None:
            return self.url
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{host}:{self.session_port}"

    @property
    def workspace_gone_code(self) -> str:
        """The error code of a missing ModelArts workspace's 404."""
        return self._modelarts.gone_code

    @workspace_gone_code.setter
    def workspace_gone_code(self, code: str) -> None:
        self._modelarts.gone_code = code

    def endpoints(self) -> Endpoints:
        """``Endpoints`` for a ``SessionManager``: ModelArts at ``url``, Fabric at ``session_url``.

        With ``separate_session_host``, explicit endpoints never move: to test the move,
        give the manager a region with a ``region_overrides`` list instead.
        """
        return Endpoints(fabric=self.session_url, modelarts=self.url)

    # -- gateway and faults ------------------------------------------------------------

    def forbid(self, *ids: str) -> None:
        """Answer 403 (the nested body) to any request whose path names one of ``ids``."""
        self._forbidden.update(ids)

    def allow(self, *ids: str) -> None:
        """Undo ``forbid`` for ``ids``."""
        self._forbidden.difference_update(ids)

    def add_fault(self, fault: Fault) -> None:
        """Add a fault rule after the existing ones."""
        self._faults.rules.append(fault)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    def reset_stats(self) -> None:
        """Forget recorded requests and counters (state and faults stay)."""
        self.requests.clear()
        self.status_counts.clear()
        self.project_ids_seen.clear()
        self.request_count = 0
        self.peak_in_flight = self.in_flight
        self.faults_injected = 0
        self._faults.forget_paths()

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.request_count += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.in_flight, self.peak_in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        route = parse_route(path)
        api = route.api(request.method) if route is not None else None
        loop = asyncio.get_running_loop()
        received_at = loop.time()

        def done(
            status: int | None, fault: FaultKind | None = None, committed: bool = False
        ) -> None:
            self.status_counts[status] += 1
            if self.record_requests:
                self.requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=path,
                        query=request.query_string,
                        headers=dict(request.headers),
                        service=route.service if route is not None else None,
                        api=api,
                        status=status,
                        fault=fault,
                        committed=committed,
                        received_at=received_at,
                        answered_at=loop.time(),
                    )
                )

        if route is None or (
            self.session_port is not None
            and route.service == FABRIC
            and _local_port(request) != self.session_port
        ):
            done(404)
            return unknown_api()
        if route.service == FABRIC and "X-Project-Id" in request.headers:
            self.project_ids_seen[request.headers["X-Project-Id"]] += 1
        if api is None:
            done(405)
            return method_not_allowed()
        # The gateway answers these at once; only what passes it pays the backend latency.
        body = await request.read()
        refusal = self._refuse(request, route, api, body)
        if refusal is not None:
            done(refusal.status)
            return refusal
        if self.latency or self.latency_jitter:
            await asyncio.sleep(self.latency + self._random.uniform(0, self.latency_jitter))

        fault = self._faults.pick(route.service, api, request.method, path)
        if fault is not None:
            self.faults_injected += 1
            committed = False
            if fault.commit and api in DELETE_APIS:
                committed = self._serve(route, api, request)[0] == 200
            status, response = await misbehave(fault, request, self._random)
            done(status, fault.kind, committed)
            return response

        status, payload = self._serve(route, api, request)
        done(status, None, api in DELETE_APIS and status == 200)
        return respond(status, payload)

    def _refuse(
        self, request: web.BaseRequest, route: Route, api: str, body: bytes
    ) -> web.Response | None:
        """Gateway checks, in the gateway's order: credentials, throttling, permissions."""
        refusal = check_credentials(request, body, self.token, self.verifier)
        if refusal is not None:
            return refusal
        now = asyncio.get_running_loop().time()
        if self.quota is not None and not self._quota_windows.admit(api, self.quota, now):
            return throttled(self.throttle_retry_after, self.quota)
        if self.throttle_rps is not None and not self._throttle.take(
            self.throttle_rps, self.throttle_burst, now
        ):
            return throttled(self.throttle_retry_after, self.throttle_rps)
        if self._forbidden and route.names(self._forbidden):
            return json_response(403, forbidden_body())
        return None


def _local_port(request: web.BaseRequest) -> int | None:
    """The port of ours the request arrived on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[1] if sockname else None
