"""An in-process emulator of the two services, served over HTTP by ``aiohttp.web``.

It shares no code with the client's request path: it parses paths, checks ids and
credentials with its own code, so a bug on one side cannot hide the same bug on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from ssl import SSLContext
from types import TracebackType
from typing import Final, Self

import attrs
from aiohttp import web

# The one piece of the client the emulator uses: a plain config class, not the request path.
from asyncdeleter._config import Endpoints
from asyncdeleter.testing._bodies import JSON, error_answer, forbidden_body, not_found_body
from asyncdeleter.testing._faults import Fault, FaultKind
from asyncdeleter.testing._signature import SignatureVerifier

__all__ = ["Emulator", "RecordedRequest"]

FABRIC: Final = "fabric"
MODELARTS: Final = "modelarts"
# The server side of the id rules, written out again on purpose (see module docstring).
_FABRIC_ID: Final = re.compile(r"[A-Za-z0-9-]{1,36}")
_MODELARTS_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_UNKNOWN_API: Final = json.dumps(
    {
        "error_code": "APIG.0101",
        "error_msg": "The API does not exist or has not been published in the environment",
    }
).encode()


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the emulator received, and what it did about it.

    Attributes:
        method: The HTTP method.
        path: The raw (still percent-encoded) path.
        query: The raw query string.
        headers: The request headers (the last value of each name).
        service: ``"fabric"``, ``"modelarts"``, or ``None`` for an unknown path.
        status: The status answered, or ``None`` when the connection was dropped or stalled.
        fault: The ``FaultKind`` injected, if any.
        committed: Whether the request deleted something.
        received_at: Loop time when the request arrived.
        answered_at: Loop time when the answer was decided.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    service: str | None
    status: int | None
    fault: FaultKind | None
    committed: bool
    received_at: float
    answered_at: float


class Emulator:
    """DataArts Fabric and ModelArts, as far as deleting goes, on one loopback port.

    Both services answer on ``url`` (their paths cannot collide); their states are apart,
    as in reality: Fabric workspaces hold sessions, ModelArts projects hold workspaces.

    Args:
        host: The address to listen on (keep it on loopback).
        port: The port; 0 picks a free one.
        token: If set, every request must carry ``X-Auth-Token: <token>`` (else 401
            ``APIG.1002``), or a valid signature when ``access_keys`` is set too.
        access_keys: Access key id to secret key: requests signed with ``SDK-HMAC-SHA256``
            by one of these are accepted, others get 401 ``APIG.0303``.
        security_tokens: Access key id to the ``X-Security-Token`` it must send.
        clock: The emulator's Unix time, for the 15-minute ``X-Sdk-Date`` check.
        ssl: Serve HTTPS with this server-side context (``url`` then says ``https``).
        latency: Seconds added before every answer.
        latency_jitter: Up to this many seconds more, drawn at random per request.
        faults: Fault rules; the first matching rule applies to a request.
        seed: Seeds the random choices (fault probabilities, jitter, garbage).
        record_requests: Keep a ``RecordedRequest`` per request (turn off for huge runs).
        quota: The gateway's quota: at most this many requests per fixed one-second window
            (aligned to whole seconds of the emulator's clock) per host and API, answering
            429 ``APIG.0308`` past it. May be changed while serving (a quota that changes
            mid-run).
        throttle_rps: Answer 429 (``APIG.0308``) above this many requests per second,
            measured by a token bucket (smoother than the gateway's fixed window).
        throttle_retry_after: The ``Retry-After`` sent with those 429s (``None``: none).
        throttle_burst: Requests the throttle lets through at once after a quiet spell
            (its bucket size); by default one second's worth, ``throttle_rps``.
        stateless: Answer every valid delete with success and store nothing, so a
            benchmark of millions of deletions measures the client, not the emulator's sets.
        keepalive_timeout: Seconds an idle keep-alive connection stays open (aiohttp's
            default is 75); a small value provokes keep-alive races.
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
        throttle_retry_after: str | None = "1",
        throttle_burst: float | None = None,
        stateless: bool = False,
        keepalive_timeout: float = 75.0,
    ) -> None:
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
        # (service, method) -> (window, requests in it): the gateway's fixed windows.
        self._quota_windows: dict[tuple[str, str], tuple[int, int]] = {}
        self.stateless = stateless
        self.keepalive_timeout = keepalive_timeout
        self._random = random.Random(seed)
        self._faults: list[Fault] = list(faults)
        self._fault_hits: dict[int, int] = defaultdict(int)
        self._path_hits: dict[str, int] = defaultdict(int)
        self._fabric: dict[str, set[str]] = defaultdict(set)
        self._modelarts: dict[str, set[str]] = defaultdict(set)
        self._forbidden: set[str] = set()
        self._throttle_tokens = 0.0
        self._throttle_at = 0.0
        self.requests: list[RecordedRequest] = []
        #: Answers by status (``None``: dropped or stalled), kept even without recording.
        self.status_counts: Counter[int | None] = Counter()
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

    def endpoints(self) -> Endpoints:
        """``Endpoints`` for a ``SessionManager``: both services at ``url``."""
        return Endpoints(fabric=self.url, modelarts=self.url)

    # -- state -------------------------------------------------------------------------

    def add_sessions(self, workspace_id: str, session_ids: Iterable[str]) -> None:
        """Create SQL sessions in a Fabric workspace."""
        self._fabric[workspace_id].update(session_ids)

    def add_workspaces(self, project_id: str, workspace_ids: Iterable[str]) -> None:
        """Create ModelArts workspaces in a project."""
        self._modelarts[project_id].update(workspace_ids)

    def sessions(self, workspace_id: str) -> frozenset[str]:
        """The open sessions of a Fabric workspace."""
        return frozenset(self._fabric.get(workspace_id, ()))

    def workspaces(self, project_id: str) -> frozenset[str]:
        """The workspaces of a ModelArts project."""
        return frozenset(self._modelarts.get(project_id, ()))

    @property
    def session_count(self) -> int:
        """Open sessions across every Fabric workspace."""
        return sum(len(s) for s in self._fabric.values())

    @property
    def workspace_count(self) -> int:
        """Workspaces across every ModelArts project."""
        return sum(len(w) for w in self._modelarts.values())

    def forbid(self, *ids: str) -> None:
        """Answer 403 (the nested body) to any request whose path names one of ``ids``."""
        self._forbidden.update(ids)

    def allow(self, *ids: str) -> None:
        """Undo ``forbid`` for ``ids``."""
        self._forbidden.difference_update(ids)

    def add_fault(self, fault: Fault) -> None:
        """Add a fault rule after the existing ones."""
        self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()
        self._fault_hits.clear()

    def reset_stats(self) -> None:
        """Forget recorded requests and counters (state and faults stay)."""
        self.requests.clear()
        self.status_counts.clear()
        self.request_count = 0
        self.peak_in_flight = self.in_flight
        self.faults_injected = 0
        self._path_hits.clear()

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
        route = _route(path)
        service = route[0] if route else None
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
                        service=service,
                        status=status,
                        fault=fault,
                        committed=committed,
                        received_at=received_at,
                        answered_at=loop.time(),
                    )
                )

        if route is None:
            done(404)
            return _json(404, _UNKNOWN_API)
        if request.method != "DELETE":
            done(405)
            return _json(
                405,
                json.dumps({"error_code": "APIG.0102", "error_msg": "Method not allowed"}).encode(),
            )
        # The gateway answers these at once; only what passes it pays the backend latency.
        body = await request.read()
        refusal = self._refuse(request, route, body)
        if refusal is not None:
            done(refusal.status)
            return refusal
        if self.latency or self.latency_jitter:
            await asyncio.sleep(self.latency + self._random.uniform(0, self.latency_jitter))

        fault = self._pick_fault(service, path)
        committed = False
        if fault is not None:
            self.faults_injected += 1
            if fault.commit:
                committed = self._commit(route) == 200
            status, response = await self._misbehave(fault, request)
            done(status, fault.kind, committed)
            return response

        answer = self._delete(route)
        done(answer.status, None, answer.status == 200)
        return answer

    def _refuse(
        self, request: web.BaseRequest, route: tuple[str, str, str], body: bytes
    ) -> web.Response | None:
        """Gateway checks, in the gateway's order: credentials, throttling, permissions."""
        refusal = self._check_credentials(request, body)
        if refusal is not None:
            return refusal
        if (self.quota is not None and not self._within_quota(route[0], request.method)) or (
            self.throttle_rps is not None and not self._take_throttle_token(self.throttle_rps)
        ):
            content_type, body = error_answer(429)
            headers = {"X-Request-Id": uuid.uuid4().hex}
            if self.throttle_retry_after is not None:
                headers["Retry-After"] = self.throttle_retry_after
            return web.Response(status=429, body=body, content_type=content_type, headers=headers)
        if self._forbidden and (route[1] in self._forbidden or route[2] in self._forbidden):
            return _json(403, forbidden_body())
        return None

    def _check_credentials(self, request: web.BaseRequest, body: bytes) -> web.Response | None:
        if self.verifier is not None and "Authorization" in request.headers:
            problem = self.verifier.problem(request.method, request.raw_path, request.headers, body)
            if problem is None:
                return None
            return _json(
                401,
                json.dumps(
                    {
                        "error_code": "APIG.0303",
                        "error_msg": f"Incorrect app authentication information: {problem}",
                    }
                ).encode(),
            )
        if self.token is None and self.verifier is None:
            return None
        if self.token is not None and request.headers.get("X-Auth-Token") == self.token:
            return None
        return _error(401)

    def _within_quota(self, service: str, method: str) -> bool:
        """Count the request in its API's current one-second window; False past the quota."""
        assert self.quota is not None  # noqa: S101 - only called with a quota
        window = int(asyncio.get_running_loop().time())
        key = (service, method)
        seen_window, count = self._quota_windows.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        self._quota_windows[key] = (window, count)
        return count <= self.quota

    def _take_throttle_token(self, rate: float) -> bool:
        now = asyncio.get_running_loop().time()
        burst = self.throttle_burst if self.throttle_burst is not None else rate
        self._throttle_tokens = min(burst, self._throttle_tokens + (now - self._throttle_at) * rate)
        if self._throttle_at == 0.0:
            self._throttle_tokens = burst  # a fresh bucket is full
        self._throttle_at = now
        if self._throttle_tokens < 1.0:
            return False
        self._throttle_tokens -= 1.0
        return True

    def _pick_fault(self, service: str | None, path: str) -> Fault | None:
        if not self._faults:
            return None
        nth = 0
        if any(f.nth is not None for f in self._faults):
            self._path_hits[path] += 1
            nth = self._path_hits[path]
        for index, fault in enumerate(self._faults):
            if fault.service is not None and fault.service != service:
                continue
            if fault.path is not None and fault.path != path:
                continue
            if fault.nth is not None and nth not in fault.nth:
                continue
            if fault.times is not None and self._fault_hits[index] >= fault.times:
                continue
            if fault.probability < 1.0 and self._random.random() >= fault.probability:
                continue
            self._fault_hits[index] += 1
            return fault
        return None

    def _commit(self, route: tuple[str, str, str]) -> int:
        """Apply a valid deletion; return 200, 404, or 400 for a malformed id."""
        service, first, second = route
        pattern = _FABRIC_ID if service == FABRIC else _MODELARTS_ID
        if not (pattern.fullmatch(first) and pattern.fullmatch(second)):
            return 400
        if self.stateless:
            return 200
        container = (self._fabric if service == FABRIC else self._modelarts).get(first)
        if container is None or second not in container:
            return 404
        container.discard(second)
        return 200

    def _delete(self, route: tuple[str, str, str]) -> web.Response:
        status = self._commit(route)
        service, first, second = route
        if status == 200:
            if service == FABRIC:
                return web.Response(status=200, headers={"X-Request-Id": uuid.uuid4().hex})
            return _json(200, json.dumps({"workspace_id": second}).encode())
        if status == 400:
            return _error(400)
        if service == MODELARTS:
            return _json(404, not_found_body("ModelArts.0104", f"workspace {second} not exist"))
        if first not in self._fabric:
            message = f"response status exception, code: 404, workspace {first} not found"
        else:
            message = f"response status exception, code: 404, session {second} not found"
        return _json(404, not_found_body("common.01000001", message))

    async def _misbehave(
        self, fault: Fault, request: web.BaseRequest
    ) -> tuple[int | None, web.StreamResponse]:
        """Carry out ``fault``; return the status sent (``None``: none) and the response.

        A response this prepares itself is returned prepared; aiohttp then sends nothing
        more. After an abort, the returned response goes nowhere.
        """
        transport = request.transport
        if fault.kind is FaultKind.DROP:
            if transport is not None:
                transport.abort()
            return None, web.Response()
        if fault.kind is FaultKind.STALL:
            await asyncio.sleep(fault.stall_seconds)
            if transport is not None:
                transport.abort()
            return None, web.Response()
        if fault.kind is FaultKind.STATUS:
            content_type, body = error_answer(fault.status)
            if fault.body is not None:
                content_type, body = fault.content_type, fault.body
            return fault.status, _answer_with(fault, body, content_type)
        if fault.kind is FaultKind.GARBAGE:
            body = fault.body if fault.body is not None else self._random.randbytes(64)
            return fault.status, _answer_with(fault, body, JSON)
        # TRUNCATE: promise more than is sent, then hang up.
        content_type, body = error_answer(fault.status)
        stream = web.StreamResponse(status=fault.status, headers={"X-Request-Id": uuid.uuid4().hex})
        stream.content_type = content_type
        stream.content_length = len(body) + 100
        await stream.prepare(request)
        await stream.write(body[: max(1, len(body) // 2)])
        if transport is not None:
            transport.abort()
        return fault.status, stream


def _answer_with(fault: Fault, body: bytes, content_type: str) -> web.Response:
    """A fault's answer: its status and body, ``Retry-After`` and any extra headers."""
    headers = {"X-Request-Id": uuid.uuid4().hex, "Content-Type": content_type}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    for name, value in fault.headers.items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    return web.Response(status=fault.status, body=body, headers=headers)


def _route(path: str) -> tuple[str, str, str] | None:
    """Map a raw path to ``(service, container id, item id)``, or ``None``."""
    parts = path.split("/")
    # /v1/workspaces/{ws}/sessions/{sid}
    if len(parts) == 6 and parts[1] == "v1" and parts[2] == "workspaces" and parts[4] == "sessions":
        return (FABRIC, parts[3], parts[5])
    # /v1/{project_id}/workspaces/{workspace_id}
    if len(parts) == 5 and parts[1] == "v1" and parts[3] == "workspaces":
        return (MODELARTS, parts[2], parts[4])
    return None


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(
        status=status, body=body, content_type=JSON, headers={"X-Request-Id": uuid.uuid4().hex}
    )


def _error(status: int) -> web.Response:
    content_type, body = error_answer(status)
    return web.Response(
        status=status,
        body=body,
        content_type=content_type,
        headers={"X-Request-Id": uuid.uuid4().hex},
    )
