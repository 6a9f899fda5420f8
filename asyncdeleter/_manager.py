"""``SessionManager``: every public method, each "build this call, send it".

It owns one ``aiohttp.ClientSession`` over one ``TCPConnector`` (or borrows the caller's),
kept by its transport (``_transport.Transport``: the pool's lifecycle), and one
concurrency limit that every call of this manager goes through. Each public method names
an operation (``_operations``), builds its call (``_calls``) and hands it to the one
request path (``_request.RequestPath``); bulk runs (``_bulk``), listings (``_listing``),
sweeps' selection (``_sweep``) and confirmations (``_confirm``) are engines of their own,
driven from here.
"""

from __future__ import annotations

import copy
import logging
import os
import ssl as ssl_module
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from asyncdeleter._auth import ENV_AK, ENV_SK, AkSkAuth, AuthSource, Credentials
from asyncdeleter._calls import Answer, Call, CallFactory, Tracker
from asyncdeleter._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_WAIT_TIMEOUT,
    FABRIC_PAGE_MAX,
    MODELARTS_PAGE_MAX,
    Endpoints,
    RetryPolicy,
    Timeouts,
    check_hook,
    check_url_security,
    check_wait_timeout,
)
from asyncdeleter._confirm import wait_until_gone
from asyncdeleter._errors import ConfigurationError
from asyncdeleter._ids import (
    MODELARTS_ID_MAX,
    SESSION_STATUSES,
    WORKSPACE_STATUSES,
    known_status,
    list_query,
    session_target,
    validate_id,
    workspace_target,
)
from asyncdeleter._listing import DeletionWatch, Listing, check_page_size
from asyncdeleter._models import DeletedWorkspace, SqlSession, Workspace
from asyncdeleter._observe import Observer, RequestHook
from asyncdeleter._operations import (
    CLOSE_SQL_SESSION,
    DELETE_WORKSPACE,
    LIST_SQL_SESSIONS,
    LIST_WORKSPACE,
    SHOW_SQL_SESSION,
    SHOW_WORKSPACE,
    Operation,
)
from asyncdeleter._regions import Hosts, region_overrides
from asyncdeleter._request import RequestPath
from asyncdeleter._retry import RetryBudget
from asyncdeleter._sweep import (
    SweepFilter,
    planned,
    protected_names,
    select_sessions,
    select_workspaces,
)
from asyncdeleter._throttle import ConcurrencyLimit
from asyncdeleter._transport import Transport, check_pool, check_ssl
from asyncdeleter._verify import Prover

if TYPE_CHECKING:
    import aiohttp

    from asyncdeleter._bulk import BulkRun, ProgressCallback
    from asyncdeleter._otel import Telemetry


__all__ = ["SessionManager"]

T = TypeVar("T")

_log: Final = logging.getLogger("asyncdeleter")

ENV_REGION: Final = "HUAWEICLOUD_SDK_REGION"
ENV_PROJECT_ID: Final = "HUAWEICLOUD_SDK_PROJECT_ID"


class SessionManager:
    """Closes DataArts Fabric SQL sessions and deletes ModelArts workspaces, concurrently.

    Use it as ``async with SessionManager(...) as manager:``, or call ``await
    manager.aclose()`` when done. One manager is meant to live as long as the application:
    it keeps one connection pool and one concurrency limit for every call.

    Args:
        region: A region id such as ``cn-north-4``: each service's endpoint is derived from
            it, at the service's first call, from the official SDK's region tables
            (docs/api-facts.md, section 7). A region the tables do not know for a service
            is refused for that service (``ConfigurationError``), and for the manager if
            neither knows it. The Fabric session API is tried at ``fabric-ep.{region}``
            first; if that host answers the gateway's "no such API", the manager moves,
            once, to ``fabric.{region}`` (logged at INFO).
        endpoints: Explicit base URLs, per service; a field given wins over ``region``
            and never moves.
        region_overrides: ``HUAWEICLOUD_SDK_REGION_{SERVICE}_{REGION}`` variables
            (``from_env`` passes them): comma-separated base URLs that replace a region's
            table entry, as in the official SDK (``SERVICE``: ``MODELARTS``, or
            ``DATAARTSFABRICEP`` for the session API). Still region-derived: a Fabric
            list may move to its next URL.
        project_id: The ModelArts project id; every ModelArts call needs it. Fabric calls
            carry it as ``X-Project-Id`` (signed under AK/SK), as the official SDK does.
        auth: ``TokenAuth`` or ``AkSkAuth``; an async callable returning either, for
            credentials that expire (asked again, once per call, when the service refuses
            them); or ``None`` to send no credentials (``close_session`` only).
        max_concurrency: Requests of this manager in flight at once, at most.
        retry: What is retried and for how long.
        timeouts: Per-attempt connect and read timeouts.
        session: An ``aiohttp.ClientSession`` to use instead of creating one; it is not
            closed by the manager. Its client middlewares are not applied to our requests
            (the manager passes its own, see ``_own_every_attempt``). Its connector's
            ``limit`` and ``limit_per_host`` must each be 0 (no limit) or at least
            ``max_concurrency``: every call of a service goes to one host.
        allow_insecure_http: Allow plain ``http://`` endpoints on non-loopback hosts.
        ssl: An ``ssl.SSLContext`` (for a private CA, say); certificates are always verified.
        max_rate: Send at most this many requests per second to each API of each host (a
            client-side cap for users who know their quota); ``None`` for no cap.
        trace_configs: ``aiohttp.TraceConfig``s for the session the manager creates (your
            own request tracing, or opentelemetry-instrumentation-aiohttp-client's).
        on_request: Called with a ``RequestRecord`` just before each attempt goes out.
        on_response: Called with a ``RequestRecord`` once each attempt has ended.
        tracing: Emit OpenTelemetry spans and the ``http.client.request.duration``
            histogram when the ``otel`` extra is installed; ``False`` turns them off (and
            nothing of OpenTelemetry is imported).

    Raises:
        ConfigurationError: Neither ``region`` nor ``endpoints``, an insecure endpoint, a
            bad option value, a ``session`` whose connector pool (``limit`` or
            ``limit_per_host``) is below ``max_concurrency``, or ``trace_configs`` with a
            ``session`` of your own.
        InvalidIdentifierError: ``project_id`` is not a valid id.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoints: Endpoints | None = None,
        region_overrides: Mapping[str, str] | None = None,
        project_id: str | None = None,
        auth: AuthSource = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        max_rate: float | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        on_request: RequestHook | None = None,
        on_response: RequestHook | None = None,
        tracing: bool = True,
    ) -> None:
        if endpoints is None and region is None:
            raise ConfigurationError("pass region= or endpoints=")
        if endpoints is not None and not isinstance(endpoints, Endpoints):
            raise ConfigurationError(f"endpoints must be an Endpoints, got {endpoints!r}")
        given = endpoints or Endpoints()
        self._hosts = Hosts(
            {"fabric": given.fabric, "modelarts": given.modelarts},
            region,
            region_overrides,
            lambda service, url: check_url_security(
                service, url, allow_insecure_http=allow_insecure_http
            ),
        )
        for service in ("fabric", "modelarts"):
            if self._hosts.explicit(service):
                self._hosts.candidates(service)  # an insecure endpoint is refused now
        if region is not None and all(
            self._hosts.known(service) is None for service in ("fabric", "modelarts")
        ):
            # Neither service knows it: a typo, said now rather than at the first call.
            self._hosts.base("modelarts" if given.modelarts is None else "fabric")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency must be an int >= 1, got {max_concurrency!r}"
            )
        if max_rate is not None and not max_rate > 0:
            raise ConfigurationError(f"max_rate must be > 0 requests per second, got {max_rate!r}")
        check_ssl(ssl, session)
        trace_configs = tuple(trace_configs)
        if trace_configs and session is not None:
            raise ConfigurationError(
                "trace_configs= applies to the session the manager creates; add them to "
                "your own session (aiohttp.ClientSession(trace_configs=...)) instead"
            )
        for name, hook in (("on_request", on_request), ("on_response", on_response)):
            if hook is not None:
                check_hook(name, hook)
        check_pool(session, max_concurrency)
        self.region: Final = region
        self.project_id: Final = (
            None if project_id is None else validate_id("project_id", project_id, MODELARTS_ID_MAX)
        )
        self.max_concurrency: int = max_concurrency
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.timeouts: Timeouts = timeouts if timeouts is not None else Timeouts()
        self._credentials = Credentials(auth)
        self._view = False  # a view (with_options) shares the manager's pool, never owns it
        self._transport = Transport(
            session=session,
            pool=max_concurrency,
            ssl=ssl,
            timeouts=self.timeouts,
            trace_configs=trace_configs,
        )
        self._path = RequestPath(
            credentials=self._credentials,
            limit=ConcurrencyLimit(max_concurrency),
            retry=self.retry,
            timeouts=self.timeouts,
            transport=self._transport,
            retry_budget=(
                RetryBudget(self.retry.retry_budget)
                if self.retry.retry_budget is not None
                else None
            ),
            observer=Observer.wanted(on_request, on_response, _telemetry(tracing, region)),
        )
        # Listings that want to hear of this manager's deletions (see _listing).
        self._watch = DeletionWatch()
        self._calls = CallFactory(
            self._hosts, self.project_id, max_rate, self._credentials, self._watch
        )
        self._path.hosts = self._hosts
        self._path.readdress = self._calls.readdress
        self._path.prover = Prover(
            self._read_page,
            self._workspace_listing,
            self.project_id,
        )

    @property
    def endpoints(self) -> Endpoints:
        """The base URL each service's calls go to now (``None``: none usable or known)."""
        return Endpoints(
            fabric=self._hosts.known("fabric"), modelarts=self._hosts.known("modelarts")
        )

    @classmethod
    def from_env(
        cls, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SessionManager:
        """Build a manager from the official SDK's variables; keyword arguments win.

        Reads ``HUAWEICLOUD_SDK_REGION`` (asyncdeleter's name: the official SDK has none),
        ``HUAWEICLOUD_SDK_PROJECT_ID``, the official SDK's endpoint overrides
        ``HUAWEICLOUD_SDK_REGION_{SERVICE}_{REGION}`` (see ``region_overrides``) and, when
        set, ``HUAWEICLOUD_SDK_AK``/``_SK``/``_SECURITY_TOKEN`` (see ``AkSkAuth.from_env``).

        Args:
            environ: Where to read (default ``os.environ``).
            **overrides: Any ``SessionManager`` argument, used instead of the environment.

        Raises:
            ConfigurationError: Only one of the AK and SK is set, or no region or endpoints.
        """
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        if overrides_found := region_overrides(env):
            options["region_overrides"] = overrides_found
        if region := env.get(ENV_REGION):
            options["region"] = region
        if project_id := env.get(ENV_PROJECT_ID):
            options["project_id"] = project_id
        if "auth" not in overrides and (env.get(ENV_AK) or env.get(ENV_SK)):
            options["auth"] = AkSkAuth.from_env(env)
        options.update(overrides)
        return cls(**options)

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else "open"
        view = ", a view" if self._view else ""
        return (
            f"SessionManager(endpoints={self.endpoints!r}, project_id={self.project_id!r}, "
            f"max_concurrency={self.max_concurrency}, {state}{view})"
        )

    def with_options(
        self, *, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> SessionManager:
        """A view of this manager with another retry policy or other timeouts.

        The view is cheap to make (make one per call if you like) and shares everything
        else: the connection pool, the concurrency limit, the rate gates, the credentials,
        the hooks and tracing, and the retry budget (whose capacity is the manager's:
        ``retry.retry_budget`` of a view is not read). Its ``aclose()`` does nothing: the
        manager owns the pool, and closing the manager closes every view.

        ``await manager.with_options(timeouts=Timeouts(read=120)).delete_workspace(ws)``

        Args:
            retry: The view's retry policy (``max_time``, ``max_tries``, ``on_retry``...);
                the manager's when ``None``.
            timeouts: The view's per-attempt timeouts; the manager's when ``None``.

        Raises:
            ConfigurationError: ``retry`` is not a ``RetryPolicy`` or ``timeouts`` not a
                ``Timeouts``.
        """
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise ConfigurationError(f"timeouts must be a Timeouts, got {timeouts!r}")
        view = copy.copy(self)
        view._view = True
        view.retry = retry if retry is not None else self.retry
        view.timeouts = timeouts if timeouts is not None else self.timeouts
        view._path = self._path.with_options(retry=view.retry, timeouts=view.timeouts)
        return view

    # -- the pool's lifecycle (the transport's) --------------------------------------------

    async def __aenter__(self) -> Self:
        self._transport.check_usable()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the session was the caller's). Idempotent.

        Calls still waiting (to retry, for a slot, for credentials) end with a
        ``ConfigurationError``; nothing more is sent. On a view (``with_options``) it does
        nothing: the manager owns the pool.
        """
        if not self._view:
            await self._transport.aclose(self._credentials.aclose)

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` has been called (on the manager that owns the pool)."""
        return self._transport.closed

    # -- deleting one thing ----------------------------------------------------------------

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
            EndpointNotServedError: The endpoint does not serve this API (a gateway 404).
            ParentNotFoundError: Its workspace (or project) does not exist.
            UnverifiedNotFoundError: A 404 that could not be checked (it may still exist).
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
            ConfigurationError: The manager is closed.
        """
        ids = self._calls.ids(CLOSE_SQL_SESSION, (workspace_id, session_id))
        self._transport.check_usable()
        await self._path.send(self._calls.call(CLOSE_SQL_SESSION, ids, missing_ok=missing_ok))

    async def delete_workspace(
        self,
        workspace_id: str,
        *,
        missing_ok: bool = False,
        wait: bool = False,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> DeletedWorkspace:
        """Delete one ModelArts workspace; with ``wait=True``, until it is really gone.

        ``DELETE {modelarts}/v1/{project_id}/workspaces/{workspace_id}``. The service's 200
        means "accepted": the workspace shows ``DELETING``, then vanishes or ends
        ``DELETE_FAILED``. ``wait=True`` polls ShowWorkspace (waits from
        ``retry.poll_initial_wait`` doubling to ``retry.poll_max_wait``, jittered; no
        concurrency slot held between polls) until it answers 404.

        Args:
            workspace_id: The workspace (1-64 letters, digits, hyphens).
            missing_ok: Treat a workspace that was already gone as deleted.
            wait: Return only once the workspace is confirmed gone.
            wait_timeout: Seconds, from the deletion's acceptance, to wait for that: the
                one deadline of the wait (each poll gets at most what is left of it, however
                long ``retry.max_time`` is).

        Returns:
            The deleted workspace, with the answer's request id; ``already_gone`` tells
            whether it was missing before the call, ``confirmed`` whether it was seen gone.

        Raises:
            InvalidIdentifierError: The id is malformed; nothing was sent.
            ConfigurationError: No ``project_id`` or no credentials, or the manager is closed.
            NotFoundError: The workspace did not exist (and ``missing_ok`` is false).
            EndpointNotServedError: The endpoint does not serve this API (a gateway 404).
            ParentNotFoundError: Its workspace (or project) does not exist.
            UnverifiedNotFoundError: A 404 that could not be checked (it may still exist).
            DeletionFailedError: (``wait``) The service marked it ``DELETE_FAILED``.
            WaitTimeoutError: (``wait``) Still not gone at ``wait_timeout``.
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
        """
        call, deleting = self._delete_workspace(workspace_id, missing_ok, wait, wait_timeout, None)
        answer = await deleting
        return DeletedWorkspace(
            workspace_id=call.ids[0],
            request_id=answer.request_id,
            already_gone=answer.already_gone,
            confirmed=wait,
        )

    # -- reading ---------------------------------------------------------------------------

    async def show_session(self, workspace_id: str, session_id: str) -> SqlSession:
        """Show one DataArts Fabric SQL session (ShowSqlSession).

        Raises:
            InvalidIdentifierError: An id is malformed; nothing was sent.
            NotFoundError: No such session (or workspace).
            EndpointNotServedError: The endpoint does not serve this API (a gateway 404).
            ParentNotFoundError: Its workspace (or project) does not exist.
            UnverifiedNotFoundError: A 404 that could not be checked (it may still exist).
            MalformedResponseError: The answer was not the documented JSON.
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
        """
        ids = self._calls.ids(SHOW_SQL_SESSION, (workspace_id, session_id))
        self._transport.check_usable()
        answer = await self._path.send(self._calls.call(SHOW_SQL_SESSION, ids))
        return answer.result  # type: ignore[no-any-return]

    async def show_workspace(self, workspace_id: str) -> Workspace:
        """Show one ModelArts workspace (ShowWorkspace): its status, times, owner, ...

        Raises:
            InvalidIdentifierError: The id is malformed; nothing was sent.
            ConfigurationError: No ``project_id`` or no credentials.
            NotFoundError: No such workspace (or it has been deleted).
            EndpointNotServedError: The endpoint does not serve this API (a gateway 404).
            ParentNotFoundError: Its workspace (or project) does not exist.
            UnverifiedNotFoundError: A 404 that could not be checked (it may still exist).
            MalformedResponseError: The answer was not the documented JSON.
            APIStatusError: Another refusal, after retries where they apply.
            APIConnectionError: No usable answer within the retry policy.
        """
        ids = self._calls.ids(SHOW_WORKSPACE, (workspace_id,))
        self._calls.check(SHOW_WORKSPACE)
        self._transport.check_usable()
        answer = await self._path.send(self._calls.call(SHOW_WORKSPACE, ids))
        return answer.result  # type: ignore[no-any-return]

    def list_sessions(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        endpoint_id: str | None = None,
        page_size: int = FABRIC_PAGE_MAX,
    ) -> AsyncIterator[SqlSession]:
        """List the SQL sessions of a Fabric workspace, lazily, page by page.

        Each session that existed when the listing started (and that nobody else deleted
        meanwhile) is yielded exactly once, even while this manager closes them: paging
        by offset would skip some (see ``_listing``).

        Args:
            workspace_id: The Fabric workspace.
            status: Only sessions in this status (``RUNNING``, ``CLOSED``, ``WAITING``,
                ``CREATING``, ``FAIL``), filtered by the service.
            endpoint_id: Only sessions of this SQL endpoint.
            page_size: Sessions per request, 1 to 100 (a request after the first asks for
                at least 2).

        Raises:
            InvalidIdentifierError: A malformed id or filter; raised here, before any I/O.
            ValueError: ``page_size`` out of range.
        """
        ids = self._calls.ids(LIST_SQL_SESSIONS, (workspace_id,))
        self._calls.check(LIST_SQL_SESSIONS)
        query = list_query(status=status, endpoint_id=endpoint_id)
        check_page_size(page_size, FABRIC_PAGE_MAX)
        return aiter(
            self._listing(
                LIST_SQL_SESSIONS,
                ids,
                query,
                page_size,
                lambda session: session.session_id,
                offset_unit=1,
                scope=(CLOSE_SQL_SESSION.name, ids[0]),
            )
        )

    def list_workspaces(
        self, *, name: str | None = None, page_size: int = MODELARTS_PAGE_MAX
    ) -> AsyncIterator[Workspace]:
        """List the ModelArts workspaces of the project, lazily, page by page.

        Exactly once per workspace, as ``list_sessions``; correct whether the service's
        ``offset`` counts records or pages (its documentation says "start page").

        Args:
            name: The service's fuzzy name filter (it narrows the listing; match exactly
                on your side if you need to).
            page_size: Workspaces per request, 1 to 1000 (a request after the first asks
                for at least 2; with page offsets, up to 16).

        Raises:
            ConfigurationError: No ``project_id`` or no credentials.
            InvalidIdentifierError: A malformed filter; raised here, before any I/O.
            ValueError: ``page_size`` out of range.
        """
        self._calls.check(LIST_WORKSPACE)
        query = list_query(name=name)
        check_page_size(page_size, MODELARTS_PAGE_MAX)
        return aiter(self._workspace_listing(query, page_size, strict=False))

    # -- bulk runs -------------------------------------------------------------------------

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
            adaptive: Pace sends at the rate the gateway was seen to accept (learned per
                host and API, shared with every call of the manager); False ignores the
                learned rate (a hard ``max_rate`` still applies).

        Returns:
            A ``BulkRun``; nothing is sent until it is awaited or iterated.

        Raises:
            ConfigurationError: The manager is closed, or has no Fabric endpoint (a region
                without the session API).
        """
        self._transport.check_open()
        self._calls.check(CLOSE_SQL_SESSION)

        async def one(pair: tuple[str, str], tracker: Tracker) -> Answer:
            ids = pair  # validated by session_target
            self._transport.check_usable()
            call = self._calls.call(CLOSE_SQL_SESSION, ids, missing_ok=missing_ok, tracker=tracker)
            return await self._path.send(call)

        return self._bulk_run(
            targets,
            validate=session_target,
            one=one,
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
        wait: bool = False,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> BulkRun[str]:
        """Delete many ModelArts workspaces: ``await`` for a report or ``async for`` outcomes.

        Takes the same options as ``close_sessions``; ``workspace_ids`` yields plain ids.
        With ``wait=True`` an item ends ``succeeded`` only once the workspace is confirmed
        gone (``failed`` with ``DeletionFailedError`` or ``WaitTimeoutError`` otherwise).
        Up to ``max_concurrency`` requests are in flight, and up to 8 x
        ``max_concurrency`` items in progress (most waiting to poll, to retry or for their
        turn, holding nothing); past that no new input is read.

        Raises:
            ConfigurationError: No ``project_id`` or no credentials, or the manager is
                closed: checked here, before anything is read or sent.
        """
        self._transport.check_open()
        self._calls.check(DELETE_WORKSPACE)
        check_wait_timeout(wait_timeout)

        async def one(workspace_id: str, tracker: Tracker) -> Answer:
            _, deleting = self._delete_workspace(
                workspace_id, missing_ok, wait, wait_timeout, tracker
            )
            return await deleting

        return self._bulk_run(
            workspace_ids,
            validate=workspace_target,
            one=one,
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    # -- sweeps ----------------------------------------------------------------------------

    def sweep_sessions(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        older_than: timedelta | None = None,
        where: Callable[[SqlSession], object] | None = None,
        protected: Iterable[str] = (),
        dry_run: bool = False,
        fail_fast: bool = False,
        on_progress: ProgressCallback[tuple[str, str]] | None = None,
    ) -> BulkRun[tuple[str, str]]:
        """Close every SQL session of a workspace that matches: list, filter, close.

        Each matching session is closed once, even though closing moves the listing's
        pages; the run streams (memory grows with the ids listed, not the outcomes).

        Args:
            workspace_id: The Fabric workspace.
            status: Only sessions in this status (``RUNNING``, ...; the service filters).
            older_than: Only sessions created longer ago than this; a session whose
                creation time is unknown never matches. "Now" is when the sweep starts.
            where: Only sessions for which this returns true.
            protected: Session ids never closed (compared case-insensitively); if it
                names the workspace itself, the sweep is refused.
            dry_run: Close nothing: each matching session ends ``planned``.
            fail_fast: Stop at the first failure.
            on_progress: As for ``close_sessions``.

        Returns:
            A ``BulkRun`` (``await`` it, or ``async for`` its outcomes).

        Raises:
            InvalidIdentifierError: A malformed id or an unknown status.
            ConfigurationError: A bad filter (``older_than``, ``protected``), or the
                manager is closed.
        """
        self._transport.check_open()
        chosen = SweepFilter(
            status=known_status(status, SESSION_STATUSES),
            older_than=older_than,
            where=where,
            protected=protected_names(protected),
        )
        listing = self.list_sessions(workspace_id, status=status)
        workspace = self._calls.ids(LIST_SQL_SESSIONS, (workspace_id,))[0]
        chosen.check_workspace(workspace)
        matching = select_sessions(listing, chosen, workspace)
        if dry_run:
            return self._plan(matching, session_target, fail_fast, on_progress)
        return self.close_sessions(
            matching, missing_ok=True, fail_fast=fail_fast, on_progress=on_progress
        )

    def sweep_workspaces(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        older_than: timedelta | None = None,
        where: Callable[[Workspace], object] | None = None,
        protected: Iterable[str] = (),
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        fail_fast: bool = False,
        on_progress: ProgressCallback[str] | None = None,
    ) -> BulkRun[str]:
        """Delete every workspace of the project that matches: list, filter, delete.

        The default workspace (id ``"0"``, name ``default``) is never selected.

        Args:
            name: Only workspaces whose name starts with this (matched exactly; the
                service's fuzzy ``name`` filter only narrows the listing).
            status: Only workspaces in this status (``NORMAL``, ``DELETE_FAILED``, ...).
            older_than: Only workspaces created longer ago than this; an unknown age
                never matches. "Now" is when the sweep starts.
            where: Only workspaces for which this returns true.
            protected: Workspace ids or names never deleted (case-insensitive).
            dry_run: Delete nothing: each matching workspace ends ``planned``.
            wait: Each ends ``succeeded`` only once confirmed gone (as in
                ``delete_workspaces``).
            wait_timeout: Seconds to wait for that, per workspace.
            fail_fast: Stop at the first failure.
            on_progress: As for ``delete_workspaces``.

        Returns:
            A ``BulkRun`` (``await`` it, or ``async for`` its outcomes).

        Raises:
            ConfigurationError: No ``project_id`` or credentials, a bad filter, or the
                manager is closed.
            InvalidIdentifierError: An unknown status or a malformed name.
        """
        self._transport.check_open()
        chosen = SweepFilter(
            status=known_status(status, WORKSPACE_STATUSES),
            older_than=older_than,
            name_prefix=name,
            where=where,
            protected=protected_names(protected),
        )
        matching = select_workspaces(self.list_workspaces(name=name), chosen)
        if dry_run:
            return self._plan(matching, workspace_target, fail_fast, on_progress)
        return self.delete_workspaces(
            matching,
            missing_ok=True,
            wait=wait,
            wait_timeout=wait_timeout,
            fail_fast=fail_fast,
            on_progress=on_progress,
        )

    # -- the wiring of the public methods --------------------------------------------------

    def _delete_workspace(
        self,
        workspace_id: object,
        missing_ok: bool,
        wait: bool,
        wait_timeout: float,
        tracker: Tracker | None,
    ) -> tuple[Call, Awaitable[Answer]]:
        """The one path of a deletion: its call, and what to await for it.

        Validated, checked and built now (so a bad id or a closed manager raises before
        anything is awaited); without a wait, what to await is the request path's own
        send, with no coroutine of ours around it (the hot path).
        """
        ids = self._calls.ids(DELETE_WORKSPACE, (workspace_id,))
        self._calls.check(DELETE_WORKSPACE)
        if wait:
            check_wait_timeout(wait_timeout)
        self._transport.check_usable()
        call = self._calls.call(DELETE_WORKSPACE, ids, missing_ok=missing_ok, tracker=tracker)
        if not wait:
            return call, self._path.send(call)
        return call, self._delete_and_confirm(call, wait_timeout)

    async def _delete_and_confirm(self, call: Call, wait_timeout: float) -> Answer:
        """Send the deletion, then poll until the workspace is gone (``_confirm``)."""
        tracker = call.tracker
        # One traced scope over the deletion and every poll of its wait.
        with self._path.call_span(call) as scope:
            answer = await self._path.send(call)
            if scope is not None:
                scope.answered(answer)
            if not answer.already_gone:
                show = self._calls.call(SHOW_WORKSPACE, call.ids, tracker=tracker)
                await wait_until_gone(
                    lambda ends_by: self._send_show(show, ends_by),
                    workspace_id=call.ids[0],
                    policy=self.retry,
                    wait_timeout=wait_timeout,
                    tracker=tracker,
                )
        return answer

    async def _send_show(self, template: Any, ends_by: float) -> Workspace | None:
        """One poll of a confirming wait: the workspace, or ``None`` once it is gone.

        A fresh call per poll (its own attempts and retries), over by ``ends_by`` (the end
        of the wait). Its 404 that says "gone" is the answer the wait wants
        (``missing_ok``), not an error.
        """
        self._transport.check_usable()
        call = self._calls.call(
            SHOW_WORKSPACE, template.ids, missing_ok=True, tracker=template.tracker
        )
        call.ends_by = ends_by
        answer = await self._path.send(call)
        return None if answer.already_gone else answer.result

    async def _read_page(
        self, listing: Operation, ids: tuple[str, ...], query: dict[str, str]
    ) -> tuple[Any, int | None, int]:
        """One page of ``listing`` for a 404's check: items, total, requests sent."""
        self._transport.check_usable()
        page = self._calls.call(listing, ids, query=query)
        answer = await self._path.send(page)
        return answer.result.items, answer.result.total, page.attempts

    def _workspace_listing(
        self,
        query: dict[str, str] | None = None,
        page_size: int = MODELARTS_PAGE_MAX,
        *,
        strict: bool = True,
    ) -> Listing[Workspace]:
        """The listing of the project's workspaces; ``strict`` for a 404's second source."""
        return self._listing(
            LIST_WORKSPACE,
            (),
            query or {},
            page_size,
            lambda workspace: workspace.workspace_id,
            offset_unit=None,
            scope=(DELETE_WORKSPACE.name, ""),
            strict=strict,
        )

    def _listing(
        self,
        op: Operation,
        ids: tuple[str, ...],
        query: dict[str, str],
        limit: int,
        key: Any,
        *,
        offset_unit: int | None,
        scope: tuple[str, str],
        strict: bool = False,
    ) -> Listing[Any]:
        async def fetch(offset: int, size: int) -> Any:
            self._transport.check_usable()
            page_query = {**query, "limit": str(size), "offset": str(offset)}
            answer = await self._path.send(self._calls.call(op, ids, query=page_query))
            return answer.result.items, answer.result.total

        return Listing(
            fetch,
            key,
            limit=limit,
            offset_unit=offset_unit,
            watch=self._watch,
            scope=scope,
            largest=FABRIC_PAGE_MAX if offset_unit == 1 else MODELARTS_PAGE_MAX,
            strict=strict,
        )

    def _bulk_run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        *,
        validate: Callable[[object], T],
        one: Callable[[T, Tracker], Awaitable[Answer]],
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
        adaptive: bool,
    ) -> BulkRun[T]:
        """A bulk run of ``one`` over ``source``, bounded by this manager's concurrency."""
        # Loaded on first use: a program that deletes one thing at a time never pays for it.
        from asyncdeleter._bulk import bulk_run  # noqa: PLC0415

        return bulk_run(
            source,
            validate=validate,
            operation=one,
            concurrency=self.max_concurrency,
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    def _plan(
        self,
        matching: AsyncIterator[T],
        validate: Callable[[object], T],
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
    ) -> BulkRun[T]:
        """A dry run: each matching item ends ``planned``; nothing is sent."""
        return self._bulk_run(
            matching,
            validate=validate,
            one=planned,
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=True,
        )


def _telemetry(tracing: bool, region: str | None) -> Telemetry | None:
    """OpenTelemetry for a manager, or ``None`` when it is off or not installed.

    ``opentelemetry`` is imported here, and only here, and only when ``tracing`` is true.
    """
    if not tracing:
        return None
    try:
        from asyncdeleter._otel import Telemetry  # noqa: PLC0415 - optional, on demand
    except ImportError:
        return None
    try:
        return Telemetry(region)
    except Exception:  # noqa: BLE001 - an API too old or broken: no tracing, never no manager
        _log.warning(
            "OpenTelemetry is installed but could not be set up; tracing is off for this "
            "manager (tracing=False silences this)",
            exc_info=True,
        )
        return None
