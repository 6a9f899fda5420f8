"""``SessionManager``: the lifecycle of a manager and its public methods.

It owns one ``aiohttp.ClientSession`` over one ``TCPConnector`` (or borrows the caller's)
and one concurrency limit that every call of this manager goes through. Each public
method validates its input, names the call, and hands it to the one request path
(``_request.RequestPath``).
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import aiohttp
import attrs
import yarl

from asyncdeleter._auth import ENV_AK, ENV_SK, AkSkAuth, AuthSource, Credentials
from asyncdeleter._calls import Answer, Call, Tracker
from asyncdeleter._config import (
    DEFAULT_MAX_CONCURRENCY,
    Endpoints,
    RetryPolicy,
    Timeouts,
    check_transport_security,
)
from asyncdeleter._errors import ConfigurationError, InvalidIdentifierError
from asyncdeleter._ids import FABRIC_ID_MAX, MODELARTS_ID_MAX, validate_id
from asyncdeleter._models import DeletedWorkspace, deleted_workspace
from asyncdeleter._request import RequestPath, other_loop_error
from asyncdeleter._retry import RetryBudget
from asyncdeleter._throttle import ApiGate, ConcurrencyLimit

if TYPE_CHECKING:
    from asyncdeleter._bulk import BulkRun, ProgressCallback

__all__ = ["SessionManager"]

T = TypeVar("T")

ENV_REGION: Final = "HUAWEICLOUD_SDK_REGION"
ENV_PROJECT_ID: Final = "HUAWEICLOUD_SDK_PROJECT_ID"


def _check_ssl(ssl: ssl_module.SSLContext | None, session: aiohttp.ClientSession | None) -> None:
    """Certificates are always verified: refuse a context, or a caller's connector, that won't."""
    if ssl is not None:
        if not isinstance(ssl, ssl_module.SSLContext):
            raise ConfigurationError("ssl must be an ssl.SSLContext (verification stays on)")
        if ssl.verify_mode != ssl_module.CERT_REQUIRED or not ssl.check_hostname:
            raise ConfigurationError(
                "ssl must verify certificates and host names (verify_mode=CERT_REQUIRED, "
                "check_hostname=True); load a private CA into it instead of turning checks off"
            )
    connector = session.connector if session is not None else None
    if connector is not None:
        # aiohttp keeps the connector's choice here: False (or an unverifying context)
        # would turn verification off for every request on that session.
        chosen = getattr(connector, "_ssl", True)
        if chosen is False or (
            isinstance(chosen, ssl_module.SSLContext)
            and (chosen.verify_mode != ssl_module.CERT_REQUIRED or not chosen.check_hostname)
        ):
            raise ConfigurationError(
                "the session's connector does not verify certificates (ssl=False or an "
                "unverifying context); asyncdeleter always verifies them"
            )


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
        _check_ssl(ssl, session)
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
        self._ssl = ssl
        self._session = session
        self._owns_session = session is None
        self._path = RequestPath(
            credentials=self._credentials,
            limit=ConcurrencyLimit(max_concurrency),
            retry=self.retry,
            timeouts=self.timeouts,
            retry_budget=(
                RetryBudget(self.retry.retry_budget)
                if self.retry.retry_budget is not None
                else None
            ),
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
        # One gate per (host, API): the gateway's quota is per API, so is the learned rate.
        self._close_gate = ApiGate(max_rate)
        self._delete_gate = ApiGate(max_rate)

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
        state = "closed" if self._path.closed else "open"
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
        """Close the connection pool (unless the session was the caller's). Idempotent.

        Calls still waiting (to retry, for a slot, for credentials) end with a
        ``ConfigurationError``; nothing more is sent.
        """
        path = self._path
        path.closed = True
        await self._credentials.aclose()
        session, self._session = self._session, None
        path.session = None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` has been called."""
        return self._path.closed

    def _ensure_open(self) -> None:
        if self._path.closed:
            raise ConfigurationError("this SessionManager is closed")

    def _ensure_session(self) -> aiohttp.ClientSession:
        """The session (created on first use), bound to the running event loop."""
        self._ensure_open()
        path = self._path
        loop = asyncio.get_running_loop()
        if path.loop is None:
            path.loop = loop
        elif path.loop is not loop:
            raise other_loop_error()
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
                timeout=path.client_timeout,
                # Deletions need no cookies; skipping the jar saves work on every answer.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            if isinstance(getattr(session, "_retry_connection", None), bool):
                # Our own session: switch aiohttp's silent resend off at the source (a
                # private flag, checked for) and spare every request the middleware.
                session._retry_connection = False
                path.middlewares = None
        elif session.closed:
            raise ConfigurationError("the aiohttp session given to this SessionManager is closed")
        else:
            path.borrowed = not self._owns_session
        path.session = session
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
        workspace_id = validate_id("workspace_id", workspace_id, FABRIC_ID_MAX)
        session_id = validate_id("session_id", session_id, FABRIC_ID_MAX)
        self._ensure_session()
        await self._path.send(self._close_call(workspace_id, session_id, missing_ok, None))

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
        workspace_id = validate_id("workspace_id", workspace_id, MODELARTS_ID_MAX)
        self._check_workspace_config()
        self._ensure_session()
        answer = await self._path.send(self._workspace_call(workspace_id, missing_ok, None))
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
            adaptive: Pace sends at the rate the gateway was seen to accept (learned per
                host and API, shared with every call of the manager); False ignores the
                learned rate (a hard ``max_rate`` still applies).

        Returns:
            A ``BulkRun``; nothing is sent until it is awaited or iterated.

        Raises:
            ConfigurationError: The manager is closed.
        """
        self._ensure_open()
        return self._bulk_run(
            targets,
            _session_target,
            lambda pair, tracker: self._close_call(pair[0], pair[1], missing_ok, tracker),
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
            lambda workspace_id, tracker: self._workspace_call(workspace_id, missing_ok, tracker),
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    def _bulk_run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        validate: Callable[[object], T],
        make_call: Callable[[T, Tracker], Call],
        *,
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
        adaptive: bool,
    ) -> BulkRun[T]:
        """A bulk run of one operation: ``make_call`` turns a validated target into a call."""
        from asyncdeleter._bulk import BulkRun  # noqa: PLC0415 - imported on first use

        async def one(target: T, tracker: Tracker) -> Answer:
            self._ensure_session()
            return await self._path.send(make_call(target, tracker))

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
        tracker: Tracker | None,
    ) -> Call:
        """The call state of one CloseSqlSession; the ids are already validated."""
        path = f"{self._sessions_prefix}{workspace_id}/sessions/{session_id}"
        return Call(
            method="DELETE",
            url=self._fabric_url.with_path(path, encoded=True),
            gate=self._close_gate,
            operation="close_session",
            target=f"{workspace_id}/{session_id}",
            missing_ok=missing_ok,
            tracker=tracker,
        )

    def _workspace_call(self, workspace_id: str, missing_ok: bool, tracker: Tracker | None) -> Call:
        """The call state of one DeleteWorkspace; the id is already validated."""
        return Call(
            method="DELETE",
            url=self._modelarts_url.with_path(
                f"{self._workspaces_prefix}{workspace_id}", encoded=True
            ),
            gate=self._delete_gate,
            operation="delete_workspace",
            target=workspace_id,
            missing_ok=missing_ok,
            tracker=tracker,
        )

    def _check_workspace_config(self) -> None:
        if self.project_id is None:
            raise ConfigurationError("delete_workspace needs a project_id on the SessionManager")
        if not self._credentials.present:
            raise ConfigurationError(
                "delete_workspace needs credentials: ModelArts requires X-Auth-Token or an "
                "AK/SK signature"
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
