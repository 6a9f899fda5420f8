"""The bulk runs of ``SessionManager``: ``close_sessions`` and ``delete_workspaces``.

A mixin, so that ``_manager`` keeps the lifecycle and the single deletions; each run drives
one single-target operation through ``_bulk.BulkRun``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from asyncdeleter._calls import Answer, Tracker
from asyncdeleter._calls_for import CallFactory, session_target, workspace_target
from asyncdeleter._config import (
    CONFIRMING_PER_SLOT,
    DEFAULT_WAIT_TIMEOUT,
    check_hook,
    check_wait_timeout,
)
from asyncdeleter._models import DeletedWorkspace
from asyncdeleter._operations import CLOSE_SQL_SESSION, DELETE_WORKSPACE
from asyncdeleter._request import RequestPath
from asyncdeleter._transport import Transport

if TYPE_CHECKING:
    from asyncdeleter._bulk import BulkRun, ProgressCallback

__all__ = ["BulkMethods"]

T = TypeVar("T")


class BulkMethods:
    """``close_sessions`` and ``delete_workspaces``."""

    # Provided by SessionManager.
    _calls: CallFactory
    _path: RequestPath
    max_concurrency: int
    _transport: Transport

    async def _delete_workspace(
        self,
        workspace_id: object,
        missing_ok: bool,
        wait: bool,
        wait_timeout: float,
        tracker: Tracker | None,
    ) -> DeletedWorkspace:
        raise NotImplementedError  # SessionManager's

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
            in_progress=self.max_concurrency,
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
            gone = await self._delete_workspace(
                workspace_id, missing_ok, wait, wait_timeout, tracker
            )
            return Answer(gone.already_gone, tracker.attempts, gone.request_id)

        in_progress = self.max_concurrency
        return self._bulk_run(
            workspace_ids,
            validate=workspace_target,
            one=one,
            in_progress=in_progress,
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=adaptive,
        )

    def _bulk_run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        *,
        validate: Callable[[object], T],
        one: Callable[[T, Tracker], Awaitable[Answer]],
        in_progress: int,
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
        adaptive: bool,
    ) -> BulkRun[T]:
        from asyncdeleter._bulk import BulkRun  # noqa: PLC0415 - imported on first use

        if on_progress is not None:
            check_hook("on_progress", on_progress)  # an async def would never be awaited

        # Items waiting (to retry, for a turn, to poll) hold a place of their own, so up to
        # 8 x max_concurrency are in progress and waiting items never hold back sending.
        return BulkRun(
            source,
            validate=validate,
            operation=one,
            concurrency=in_progress,
            waiting=(CONFIRMING_PER_SLOT - 1) * in_progress,
            adaptive=adaptive,
            fail_fast=fail_fast,
            on_progress=on_progress,
        )
