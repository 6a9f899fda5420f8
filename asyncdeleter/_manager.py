"""``SessionManager``: the one place a request is built, sent, retried and judged.

It owns one ``aiohttp.ClientSession`` over one ``TCPConnector`` (or borrows the caller's)
and one ``asyncio.Semaphore`` that every call of this manager goes through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import aiohttp
import attrs
import yarl

from asyncdeleter._auth import ENV_AK, ENV_SK, AkSkAuth, Auth, AuthSource, Credentials, TokenAuth
from asyncdeleter._config import (
    DEFAULT_MAX_CONCURRENCY,
    MAX_BODY_BYTES,
    Endpoints,
    RetryPolicy,
    Timeouts,
    check_transport_security,
)
from asyncdeleter._errors import (
    RAW_BODY_KEPT,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    InvalidIdentifierError,
    status_error_class,
    translate_client_error,
)
from asyncdeleter._ids import FABRIC_ID_MAX, MODELARTS_ID_MAX, validate_id
from asyncdeleter._models import DeletedWorkspace, deleted_workspace, parse_error_body
from asyncdeleter._retry import RetryBudget, RetryDetails, backoff_waits, parse_retry_after
from asyncdeleter._throttle import ConcurrencyLimit, HostGate
from asyncdeleter._version import __version__

if TYPE_CHECKING:
    from asyncdeleter._bulk import BulkRun, ProgressCallback

__all__ = ["SessionManager"]

T = TypeVar("T")

_log: Final = logging.getLogger("asyncdeleter")

USER_AGENT: Final = f"asyncdeleter/{__version__}"
ENV_REGION: Final = "HUAWEICLOUD_SDK_REGION"
ENV_PROJECT_ID: Final = "HUAWEICLOUD_SDK_PROJECT_ID"


_NOT_MERGED: Final = object()  # no headers merged yet (None is a valid auth: no credentials)


class _DroppedConnectionError(aiohttp.ClientConnectionError):
    """A connection that dropped after the request may have been sent."""


async def _own_every_attempt(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Client middleware: make every resend ours to count.

    Since 3.10 aiohttp silently resends an idempotent request once when a reused
    connection drops. For a DELETE that hides an attempt which may already have deleted
    the resource, so its 404 would look like "was never there". Re-raising the drop as an
    error type aiohttp does not resend on hands the decision (and the count) to our retry
    loop, which knows that a 404 after a dropped attempt means success.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # never connected: nothing was sent, aiohttp does not resend these anyway
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise _DroppedConnectionError(str(exc) or type(exc).__name__) from exc


_MIDDLEWARES: Final = (_own_every_attempt,)


# The three per-call records below are plain slotted classes, not attrs ones: they are
# built on every request, and attrs' class creation would also add to import time.


class _Answer:
    """How a call ended when it did not raise (internal: the bulk runner reads it)."""

    __slots__ = ("already_gone", "attempts", "request_id")

    def __init__(self, already_gone: bool, attempts: int, request_id: str | None) -> None:
        self.already_gone = already_gone
        self.attempts = attempts
        self.request_id = request_id


class _Call:
    """The state of one call across its attempts."""

    __slots__ = (
        "attempts",
        "budget_spent",
        "deadline",
        "gate",
        "may_have_taken_effect",
        "missing_ok",
        "on_throttle",
        "operation",
        "refreshed",
        "resent_after_drop",
        "target",
        "url",
        "waits",
    )

    def __init__(
        self,
        *,
        url: yarl.URL,
        gate: HostGate,
        operation: str,
        target: str,
        missing_ok: bool,
        on_throttle: Callable[[], None] | None,
    ) -> None:
        self.url = url
        self.gate = gate
        self.operation = operation
        self.target = target
        self.missing_ok = missing_ok
        # Told of each throttling answer (429, 503 with Retry-After): the adaptive limit.
        self.on_throttle = on_throttle
        self.attempts = 0
        self.deadline = 0.0
        # Set once an attempt may have deleted the resource without us seeing the answer
        # (dropped connection, timeout, 408, 5xx): a later 404 then means success.
        self.may_have_taken_effect = False
        self.refreshed = False  # the auth provider was asked once already for this call
        self.resent_after_drop = False  # the one immediate resend after a dropped connection
        self.budget_spent = 0  # what this call's retries took from the retry budget
        self.waits: Iterator[float] | None = None  # backoff generator, made on the 1st retry


class _Failure:
    """An attempt that did not succeed: the typed error and whether to try again."""

    __slots__ = ("cause", "error", "refresh", "retryable", "wait")

    def __init__(
        self,
        error: APIError,
        cause: BaseException | None,
        retryable: bool,
        wait: float | None,
        refresh: int | None = None,
    ) -> None:
        self.error = error
        self.cause = cause
        self.retryable = retryable
        # A wait already decided: the server's Retry-After, or 0 for the immediate resend
        # after a dropped connection. None: back off as the policy says.
        self.wait = wait
        # The credentials generation the service refused: refresh past it, then retry.
        self.refresh = refresh


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """Read the body up to ``MAX_BODY_BYTES``; a longer body is cut and its connection closed."""
    length = response.content_length
    if length is not None and length <= MAX_BODY_BYTES:
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    response.close()  # do not drain (or pool) a connection with an unbounded body
    return b"".join(chunks)


class SessionManager:
    """Closes DataArts Fabric SQL sessions and deletes ModelArts workspaces, concurrently.

    Use it as ``async with SessionManager(...) as manager:``, or call ``await
    manager.aclose()`` when done. One manager is meant to live as long as the application:
    it keeps one connection pool and one concurrency limit for every call.

    Args:
        region: A region id such as ``cn-north-4``; both endpoints are derived from it.
        endpoints: Explicit base URLs; win over ``region``.
        project_id: The ModelArts project id; ``delete_workspace`` needs it.
        auth: ``TokenAuth`` or ``AkSkAuth``; an async callable returning either, for
            credentials that expire (asked again, once per call, when the service refuses
            them); or ``None`` to send no credentials (``close_session`` only).
        max_concurrency: Requests of this manager in flight at once, at most.
        retry: What is retried and for how long.
        timeouts: Per-attempt connect and read timeouts.
        session: An ``aiohttp.ClientSession`` to use instead of creating one; it is not
            closed by the manager. Its client middlewares are not applied to our requests
            (the manager passes its own, see ``_own_every_attempt``).
        allow_insecure_http: Allow plain ``http://`` endpoints on non-loopback hosts.
        ssl: An ``ssl.SSLContext`` (for a private CA, say); certificates are always verified.
        max_rate: Send at most this many requests per second to each host (a client-side
            cap for users who know their quota); ``None`` for no cap.

    Raises:
        ConfigurationError: Neither ``region`` nor ``endpoints``, an insecure endpoint, a
            bad option value, or a ``session`` whose connector pool is below
            ``max_concurrency``.
        InvalidIdentifierError: ``project_id`` is not a valid id.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoints: Endpoints | None = None,
        project_id: str | None = None,
        auth: AuthSource = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        max_rate: float | None = None,
    ) -> None:
        if endpoints is None:
            if region is None:
                raise ConfigurationError("pass region= or endpoints=")
            endpoints = Endpoints.for_region(region)
        check_transport_security(endpoints, allow_insecure_http=allow_insecure_http)
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency must be an int >= 1, got {max_concurrency!r}"
            )
        if max_rate is not None and not max_rate > 0:
            raise ConfigurationError(f"max_rate must be > 0 requests per second, got {max_rate!r}")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise ConfigurationError("ssl must be an ssl.SSLContext (verification stays on)")
        if session is not None:
            pool = session.connector.limit if session.connector is not None else 0
            if pool and pool < max_concurrency:
                raise ConfigurationError(
                    f"the session's connector allows {pool} connections, fewer than "
                    f"max_concurrency={max_concurrency}: calls would wait for a pool slot "
                    "while their timeout runs"
                )
        self.endpoints: Final = endpoints
        self.project_id: Final = (
            None if project_id is None else validate_id("project_id", project_id, MODELARTS_ID_MAX)
        )
        self.max_concurrency: Final = max_concurrency
        self.retry: Final = retry if retry is not None else RetryPolicy()
        self.timeouts: Final = timeouts if timeouts is not None else Timeouts()
        self._credentials = Credentials(auth)
        self._retry_budget = (
            RetryBudget(self.retry.retry_budget) if self.retry.retry_budget is not None else None
        )
        self._ssl = ssl
        self._session = session
        self._owns_session = session is None
        # What stops aiohttp's hidden resend (see _own_every_attempt); None once our own
        # session has it switched off directly.
        self._middlewares: tuple[Any, ...] | None = _MIDDLEWARES
        self._closed = False
        self._limit = ConcurrencyLimit(max_concurrency)
        # An attempt with this much time left gets the plain per-attempt timeouts.
        self._full_attempt = self.timeouts.connect + self.timeouts.read
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
        )
        # Built once: a call only appends its ids.
        # Each URL is the endpoint with a new path: with_path() skips re-parsing the whole
        # URL per call. The endpoint's own path (a proxy prefix, say) is kept in front.
        self._fabric_url = yarl.URL(endpoints.fabric)
        self._modelarts_url = yarl.URL(endpoints.modelarts)
        self._sessions_prefix = f"{self._fabric_url.raw_path.rstrip('/')}/v1/workspaces/"
        self._workspaces_prefix = (
            f"{self._modelarts_url.raw_path.rstrip('/')}/v1/{self.project_id}/workspaces/"
        )
        # Headers of a fixed TokenAuth, with the User-Agent, merged once (see _headers).
        self._merged_for: object = _NOT_MERGED
        self._merged_headers: dict[str, str] = {}
        self._fabric_gate = HostGate(max_rate)
        self._modelarts_gate = HostGate(max_rate)

    @classmethod
    def from_env(
        cls, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SessionManager:
        """Build a manager from the official SDK's variables; keyword arguments win.

        Reads ``HUAWEICLOUD_SDK_REGION``, ``HUAWEICLOUD_SDK_PROJECT_ID`` and, when set,
        ``HUAWEICLOUD_SDK_AK``/``_SK``/``_SECURITY_TOKEN`` (see ``AkSkAuth.from_env``).

        Args:
            environ: Where to read (default ``os.environ``).
            **overrides: Any ``SessionManager`` argument, used instead of the environment.

        Raises:
            ConfigurationError: Only one of the AK and SK is set, or no region or endpoints.
        """
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        if region := env.get(ENV_REGION):
            options["region"] = region
        if project_id := env.get(ENV_PROJECT_ID):
            options["project_id"] = project_id
        if "auth" not in overrides and (env.get(ENV_AK) or env.get(ENV_SK)):
            options["auth"] = AkSkAuth.from_env(env)
        options.update(overrides)
        return cls(**options)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"SessionManager(endpoints={self.endpoints!r}, project_id={self.project_id!r}, "
            f"max_concurrency={self.max_concurrency}, {state})"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the session was the caller's). Idempotent."""
        self._closed = True
        await self._credentials.aclose()
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` has been called."""
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this SessionManager is closed")

    def _ensure_session(self) -> aiohttp.ClientSession:
        self._ensure_open()
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                # The pool is never the bottleneck: the semaphore is (DESIGN.md, "Bounded").
                limit=self.max_concurrency,
                limit_per_host=0,
                ssl=self._ssl if self._ssl is not None else True,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._client_timeout,
                # Deletions need no cookies; skipping the jar saves work on every answer.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            if isinstance(getattr(session, "_retry_connection", None), bool):
                # Our own session: switch aiohttp's silent resend off at the source (a
                # private flag, checked for) and spare every request the middleware.
                session._retry_connection = False
                self._middlewares = None
        elif session.closed:
            raise ConfigurationError("the aiohttp session given to this SessionManager is closed")
        return session

    # -- the two operations ------------------------------------------------------------

    async def close_session(
        self, workspace_id: str, session_id: str, *, missing_ok: bool = False
    ) -> None:
        """Close one DataArts Fabric SQL session.

        ``DELETE {fabric}/v1/workspaces/{workspace_id}/sessions/{session_id}``

        Args:
            workspace_id: The Fabric workspace (1-36 letters, digits, hyphens).
            session_id: The SQL session (1-36 letters, digits, hyphens).
            missing_ok: Treat a session that was already gone as closed.

        Raises:
            InvalidIdentifierError: An id is malformed; nothing was sent.
            NotFoundError: The session did not exist (and ``missing_ok`` is false).
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
            ConfigurationError: The manager is closed.
        """
        validate_id("workspace_id", workspace_id, FABRIC_ID_MAX)
        validate_id("session_id", session_id, FABRIC_ID_MAX)
        await self._delete(self._close_call(workspace_id, session_id, missing_ok, None))

    async def delete_workspace(
        self, workspace_id: str, *, missing_ok: bool = False
    ) -> DeletedWorkspace:
        """Delete one ModelArts workspace.

        ``DELETE {modelarts}/v1/{project_id}/workspaces/{workspace_id}``

        Args:
            workspace_id: The workspace (1-64 letters, digits, hyphens).
            missing_ok: Treat a workspace that was already gone as deleted.

        Returns:
            The deleted workspace, with the answer's request id; ``already_gone`` tells
            whether it was missing before the call.

        Raises:
            InvalidIdentifierError: The id is malformed; nothing was sent.
            ConfigurationError: No ``project_id`` or no credentials, or the manager is closed.
            NotFoundError: The workspace did not exist (and ``missing_ok`` is false).
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
        """
        validate_id("workspace_id", workspace_id, MODELARTS_ID_MAX)
        self._check_workspace_config()
        answer = await self._delete(self._workspace_call(workspace_id, missing_ok, None))
        result = deleted_workspace(workspace_id, answer.request_id)
        return attrs.evolve(result, already_gone=True) if answer.already_gone else result

    # -- bulk runs ---------------------------------------------------------------------

    def close_sessions(
        self,
        targets: Iterable[tuple[str, str]] | AsyncIterable[tuple[str, str]],
        *,
        missing_ok: bool = True,
        fail_fast: bool = False,
        on_progress: ProgressCallback[tuple[str, str]] | None = None,
        adaptive: bool = True,
    ) -> BulkRun[tuple[str, str]]:
        """Close many SQL sessions: ``await`` for a report or ``async for`` the outcomes.

        Args:
            targets: ``(workspace_id, session_id)`` pairs: a list, a generator or an async
                generator of any length; it is read lazily.
            missing_ok: Count a first-attempt 404 as ``already_gone`` (else ``failed``).
            fail_fast: Stop starting new work at the first ``failed`` or ``invalid`` item.
            on_progress: Called as ``on_progress(done, total_or_None, outcome)`` per item.
            adaptive: Shrink concurrency on throttling answers and grow it back (AIMD).

        Returns:
            A ``BulkRun``; nothing is sent until it is awaited or iterated.

        Raises:
            ConfigurationError: The manager is closed.
        """
        self._ensure_open()
        return self._bulk_run(
            targets,
            _session_target,
            lambda pair, on_throttle: self._close_call(pair[0], pair[1], missing_ok, on_throttle),
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    def delete_workspaces(
        self,
        workspace_ids: Iterable[str] | AsyncIterable[str],
        *,
        missing_ok: bool = True,
        fail_fast: bool = False,
        on_progress: ProgressCallback[str] | None = None,
        adaptive: bool = True,
    ) -> BulkRun[str]:
        """Delete many ModelArts workspaces: ``await`` for a report or ``async for`` outcomes.

        Takes the same options as ``close_sessions``; ``workspace_ids`` yields plain ids.

        Raises:
            ConfigurationError: No ``project_id`` or no credentials, or the manager is
                closed: checked here, before anything is read or sent.
        """
        self._ensure_open()
        self._check_workspace_config()
        return self._bulk_run(
            workspace_ids,
            _workspace_target,
            lambda workspace_id, on_throttle: self._workspace_call(
                workspace_id, missing_ok, on_throttle
            ),
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    def _bulk_run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        validate: Callable[[object], T],
        make_call: Callable[[T, Callable[[], None] | None], _Call],
        *,
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
        adaptive: bool,
    ) -> BulkRun[T]:
        """A bulk run of one operation: ``make_call`` turns a validated target into a call."""
        from asyncdeleter._bulk import BulkRun  # noqa: PLC0415 - imported on first use

        async def one(
            target: T, on_throttle: Callable[[], None] | None
        ) -> tuple[bool, int, str | None]:
            answer = await self._delete(make_call(target, on_throttle))
            return answer.already_gone, answer.attempts, answer.request_id

        return BulkRun(
            source,
            validate=validate,
            operation=one,
            concurrency=self.max_concurrency,
            adaptive=adaptive,
            fail_fast=fail_fast,
            on_progress=on_progress,
        )

    # -- one target, validated ---------------------------------------------------------

    def _close_call(
        self,
        workspace_id: str,
        session_id: str,
        missing_ok: bool,
        on_throttle: Callable[[], None] | None,
    ) -> _Call:
        """The call state of one CloseSqlSession; the ids are already validated."""
        path = f"{self._sessions_prefix}{workspace_id}/sessions/{session_id}"
        return _Call(
            url=self._fabric_url.with_path(path, encoded=True),
            gate=self._fabric_gate,
            operation="close_session",
            target=f"{workspace_id}/{session_id}",
            missing_ok=missing_ok,
            on_throttle=on_throttle,
        )

    def _workspace_call(
        self, workspace_id: str, missing_ok: bool, on_throttle: Callable[[], None] | None
    ) -> _Call:
        """The call state of one DeleteWorkspace; the id is already validated."""
        return _Call(
            url=self._modelarts_url.with_path(
                f"{self._workspaces_prefix}{workspace_id}", encoded=True
            ),
            gate=self._modelarts_gate,
            operation="delete_workspace",
            target=workspace_id,
            missing_ok=missing_ok,
            on_throttle=on_throttle,
        )

    def _check_workspace_config(self) -> None:
        if self.project_id is None:
            raise ConfigurationError("delete_workspace needs a project_id on the SessionManager")
        if not self._credentials.present:
            raise ConfigurationError(
                "delete_workspace needs credentials: ModelArts requires X-Auth-Token or an "
                "AK/SK signature"
            )

    # -- the request path --------------------------------------------------------------

    async def _delete(self, call: _Call) -> _Answer:
        """Send one DELETE with retries; return how it ended or raise the typed error.

        The ids were validated, so the URL needs no quoting (``encoded=True``).
        """
        session = self._ensure_session()
        gate = call.gate
        policy = self.retry
        loop = asyncio.get_running_loop()
        limit = self._limit
        last: _Failure | None = None
        while True:
            # paused_until is 0.0 unless a Retry-After arrived: skip the clock read then.
            if gate.paused_until and policy.wait and gate.paused_until > loop.time():
                if last is not None and gate.paused_until >= call.deadline:
                    # The host's pause outlasts this call's max_time: give up now.
                    raise last.error from last.cause
                await gate.wait_until_open()
            if gate.pacer is not None:
                await gate.pacer.wait_turn()
            credentials = self._credentials
            if credentials.provider is None:
                auth, generation = credentials.fixed, 0
            else:
                # Before taking a slot: a provider's first fetch must not hold one.
                auth, generation = await credentials.current()
            if not limit.try_acquire():
                await limit.acquire()
            try:
                result = await self._attempt(session, call, loop, auth, generation)
            finally:
                limit.release()
            if isinstance(result, _Answer):
                if self._retry_budget is not None:
                    self._retry_budget.refill(call.budget_spent)
                return result
            # Outside the semaphore: a waiting call must not hold a slot.
            last = result
            if result.refresh is not None and call.attempts < policy.max_tries:
                await self._credentials.refresh(result.refresh)
                continue
            await asyncio.sleep(self._plan_retry(call, result, loop))

    def _plan_retry(self, call: _Call, result: _Failure, loop: asyncio.AbstractEventLoop) -> float:
        """How long to wait before the next attempt; raises the error when there is none."""
        policy = self.retry
        if not result.retryable or call.attempts >= policy.max_tries:
            raise result.error from result.cause
        if result.wait is not None:
            wait = min(result.wait, policy.max_retry_after)
        else:
            if call.waits is None:
                call.waits = backoff_waits(policy)
            wait = next(call.waits)
        if not policy.wait:
            wait = 0.0
        if loop.time() + wait >= call.deadline:
            # The wait would end past max_time: give up now, with the real error.
            raise result.error from result.cause
        budget = self._retry_budget
        if budget is not None:
            cost = budget.spend(timeout=isinstance(result.error, APITimeoutError))
            if not cost:
                result.error.retry_budget_exhausted = True
                raise result.error from result.cause
            call.budget_spent += cost
        self._before_retry(
            RetryDetails(
                operation=call.operation,
                target=call.target,
                attempt=call.attempts,
                wait=wait,
                cause=result.error,
                status=result.error.status,
            )
        )
        return wait

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        call: _Call,
        loop: asyncio.AbstractEventLoop,
        auth: Auth | None,
        generation: int,
    ) -> _Answer | _Failure:
        """Send one attempt (the caller holds a semaphore slot) and judge its answer."""
        started = loop.time()
        if call.attempts == 0:
            # max_time counts from the first send, not from queueing for the semaphore.
            call.deadline = started + self.retry.max_time
        call.attempts += 1
        headers = self._headers(auth, call.url)
        try:
            async with session.request(
                "DELETE",
                call.url,
                headers=headers,
                timeout=self._client_timeout
                if call.deadline - started >= self._full_attempt
                else self._attempt_timeout(call.deadline - started),
                allow_redirects=False,
                middlewares=self._middlewares,
            ) as response:
                status = response.status
                request_id = response.headers.get("X-Request-Id")
                if 200 <= status < 300:
                    # The hot path: the status line says it worked, the body is not needed
                    # but is read (when small) so the connection goes back to the pool.
                    length = response.content_length
                    if length is not None and length <= MAX_BODY_BYTES:
                        try:
                            await response.read()
                        except (TimeoutError, aiohttp.ClientError):
                            response.close()  # a broken body cannot undo the 2xx
                    else:
                        response.close()  # unbounded or huge: drop, do not read
                    if _log.isEnabledFor(logging.DEBUG):
                        _log_attempt(call, status, started, loop)
                    return _Answer(False, call.attempts, request_id)
                raw = await _read_capped(response)
                retry_after_header = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            _log_attempt(call, None, started, loop)
            if not isinstance(exc, aiohttp.ClientConnectorError):
                call.may_have_taken_effect = True  # the request may have gone out
            connection_error = translate_client_error(
                exc, what=f"{call.operation} {call.target}", attempts=call.attempts
            )
            resend_now = None
            if _dropped(exc) and not call.resent_after_drop:
                # Most often a keep-alive race (the server closed an idle connection as we
                # reused it): resend at once, as aiohttp itself would, but counted.
                call.resent_after_drop = True
                resend_now = 0.0
            return _Failure(connection_error, exc, self.retry.retry_connection_errors, resend_now)
        _log_attempt(call, status, started, loop)
        return self._judge(
            call,
            status=status,
            raw=raw,
            request_id=request_id,
            retry_after_header=retry_after_header,
            generation=generation,
        )

    def _headers(self, auth: Auth | None, url: yarl.URL) -> dict[str, str]:
        """The request headers of one attempt: the User-Agent and the credentials'.

        Passed per request rather than as session defaults, so aiohttp has nothing to
        merge; a TokenAuth's never change, so they are merged once and reused.
        """
        if auth is self._merged_for:
            return self._merged_headers
        headers: dict[str, str]
        if auth is None:
            headers = {"User-Agent": USER_AGENT}
        elif isinstance(auth, TokenAuth):
            headers = {"User-Agent": USER_AGENT, **auth.headers_for("DELETE", url)}
        else:
            headers = auth.headers_for("DELETE", url)  # fresh per attempt (AK/SK signing)
            headers["User-Agent"] = USER_AGENT
            return headers
        self._merged_for, self._merged_headers = auth, headers
        return headers

    def _attempt_timeout(self, remaining: float) -> aiohttp.ClientTimeout:
        """The per-attempt timeouts, cut short so no attempt outlives the call's deadline."""
        return aiohttp.ClientTimeout(
            # Never 0 or less: aiohttp would read that as "no total timeout at all".
            total=max(remaining, 0.001),
            sock_connect=self.timeouts.connect,
            sock_read=self.timeouts.read,
        )

    def _judge(
        self,
        call: _Call,
        *,
        status: int,
        raw: bytes,
        request_id: str | None,
        retry_after_header: str | None,
        generation: int,
    ) -> _Answer | _Failure:
        """Judge a non-2xx answer: a 404 may still mean success; else, retry or not."""
        if status == 404 and (call.may_have_taken_effect or call.missing_ok):
            # After an attempt that may have deleted it, a 404 proves that attempt worked.
            return _Answer(not call.may_have_taken_effect, call.attempts, request_id)
        retry_after = parse_retry_after(retry_after_header)
        error = _status_error(call, status, raw, request_id, retry_after)
        refreshable = self._credentials.provider is not None and not call.refreshed
        if refreshable and _credentials_refused(error):
            # Expired or revoked: ask the provider once and try again at once.
            call.refreshed = True
            return _Failure(error, None, retryable=True, wait=None, refresh=generation)
        if status >= 500 or status == 408:
            call.may_have_taken_effect = True
        # Throttling: every 429, and a 503 that says when to come back. A bare 503 is a
        # failing backend, not pushback, and must not shrink a bulk run's concurrency.
        if status == 429 or (status == 503 and retry_after is not None):
            if call.on_throttle is not None:
                call.on_throttle()
            if retry_after is not None:
                # The gateway throttles the tenant: pause every send to this host.
                call.gate.pause_for(min(retry_after, self.retry.max_retry_after))
        return _Failure(error, None, status in self.retry.retry_statuses, retry_after)

    def _before_retry(self, details: RetryDetails) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "%s %s: retrying after attempt %d in %.3fs (%s)",
                details.operation,
                details.target,
                details.attempt,
                details.wait,
                details.cause,
            )
        for hook in self.retry.on_retry:
            try:
                hook(details)
            except Exception:  # noqa: BLE001 - a user's hook must not break the retry
                _log.exception("on_retry hook %r failed; the retry goes on", hook)


def _dropped(exc: BaseException) -> bool:
    """A connection that broke after the request may have gone out (not a failed connect)."""
    if isinstance(exc, _DroppedConnectionError | aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and not isinstance(
        exc, aiohttp.ClientConnectorError
    )


def _log_attempt(
    call: _Call, status: int | None, started: float, loop: asyncio.AbstractEventLoop
) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s %s: status=%s attempt=%d elapsed=%.3fs",
            call.operation,
            call.target,
            status if status is not None else "no answer",
            call.attempts,
            loop.time() - started,
        )


def _status_error(
    call: _Call, status: int, raw: bytes, request_id: str | None, retry_after: float | None
) -> APIStatusError:
    body = parse_error_body(raw)
    detail = body.error_msg or raw[:200].decode("utf-8", "replace").strip() or "(no body)"
    code = f" {body.error_code}" if body.error_code else ""
    return status_error_class(status)(
        f"{call.operation} {call.target}: HTTP {status}{code}: {detail}",
        status=status,
        error_code=body.error_code,
        error_msg=body.error_msg,
        solution_msg=body.solution_msg,
        request_id=request_id,
        attempts=call.attempts,
        raw_body=raw[: RAW_BODY_KEPT * 4].decode("utf-8", "replace"),
        retry_after=retry_after,
    )


def _session_target(item: object) -> tuple[str, str]:
    """Validate one ``close_sessions`` input item: a ``(workspace_id, session_id)`` pair."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InvalidIdentifierError("target", item, "must be a (workspace_id, session_id) pair")
    workspace_id, session_id = item
    return (
        validate_id("workspace_id", workspace_id, FABRIC_ID_MAX),
        validate_id("session_id", session_id, FABRIC_ID_MAX),
    )


def _workspace_target(item: object) -> str:
    """Validate one ``delete_workspaces`` input item: a workspace id."""
    return validate_id("workspace_id", item, MODELARTS_ID_MAX)


def _credentials_refused(error: APIStatusError) -> bool:
    """A 401, or the 403 whose body says the token is invalid (the seed page's example)."""
    if error.status == 401:
        return True
    message = (error.error_msg or "").lower()
    return error.status == 403 and "token" in message and "invalid" in message
