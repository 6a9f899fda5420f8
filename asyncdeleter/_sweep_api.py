"""Sweeps on ``SessionManager``: list, filter and delete in one streamed bulk run.

A mixin over the read side and the bulk runs: a sweep is a bulk run whose input is a
listing filtered by ``_sweep.SweepFilter``. The listing hears of the run's deletions (the
manager's deletion watch), so each matching item is met once even though deleting moves
the pages; a dry run yields ``planned`` outcomes and sends no DELETE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from asyncdeleter._bulk_api import BulkMethods
from asyncdeleter._calls import Answer, Tracker
from asyncdeleter._calls_for import SESSION_STATUSES, session_target, workspace_target
from asyncdeleter._config import DEFAULT_WAIT_TIMEOUT
from asyncdeleter._errors import ConfigurationError, InvalidIdentifierError
from asyncdeleter._models import SqlSession, Workspace
from asyncdeleter._operations import LIST_SQL_SESSIONS
from asyncdeleter._reading import ReadMethods
from asyncdeleter._sweep import WORKSPACE_STATUSES, SweepFilter, protected_names

if TYPE_CHECKING:
    from asyncdeleter._bulk import BulkRun, ProgressCallback

__all__ = ["SweepMethods"]

T = TypeVar("T")


async def _planned(_: object, __: Tracker) -> Answer:
    """A dry run's item: nothing is sent."""
    return Answer(False, 0, None, planned=True)


def _status(value: str | None, known: frozenset[str]) -> str | None:
    if value is not None and value not in known:
        raise InvalidIdentifierError("status", value, f"must be one of {', '.join(sorted(known))}")
    return value


class SweepMethods(ReadMethods, BulkMethods):
    """``sweep_sessions`` and ``sweep_workspaces``."""

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
            one=_planned,
            in_progress=self.max_concurrency,
            fail_fast=fail_fast,
            on_progress=on_progress,
            adaptive=True,
        )

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
            status=_status(status, SESSION_STATUSES),
            older_than=older_than,
            where=where,
            protected=protected_names(protected),
        )
        listing = self.list_sessions(workspace_id, status=status)
        workspace = self._calls.ids(LIST_SQL_SESSIONS, (workspace_id,))[0]
        if workspace.casefold() in chosen.protected:
            raise ConfigurationError(
                f"workspace {workspace} is protected: a sweep never touches its sessions"
            )

        async def matching() -> AsyncIterator[tuple[str, str]]:
            now = datetime.now(UTC)
            async for session in listing:
                if chosen.session(session, now):
                    yield (workspace, session.session_id)

        if dry_run:
            return self._plan(matching(), session_target, fail_fast, on_progress)
        return self.close_sessions(
            matching(), missing_ok=True, fail_fast=fail_fast, on_progress=on_progress
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
            status=_status(status, WORKSPACE_STATUSES),
            older_than=older_than,
            name_prefix=name,
            where=where,
            protected=protected_names(protected),
        )
        listing = self.list_workspaces(name=name)

        async def matching() -> AsyncIterator[str]:
            now = datetime.now(UTC)
            async for workspace in listing:
                if chosen.workspace(workspace, now):
                    yield workspace.workspace_id

        if dry_run:
            return self._plan(matching(), workspace_target, fail_fast, on_progress)
        return self.delete_workspaces(
            matching(),
            missing_ok=True,
            wait=wait,
            wait_timeout=wait_timeout,
            fail_fast=fail_fast,
            on_progress=on_progress,
        )
