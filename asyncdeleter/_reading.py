"""The read side of ``SessionManager``: show and list both services.

A mixin, so that ``_manager`` keeps the lifecycle and the deletions; each method names an
operation (``_operations``) and hands it to the manager's one request path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from asyncdeleter._calls_for import CallFactory, list_query
from asyncdeleter._config import FABRIC_PAGE_MAX, MODELARTS_PAGE_MAX
from asyncdeleter._errors import ConfigurationError
from asyncdeleter._listing import DeletionWatch, Listing
from asyncdeleter._models import SqlSession, Workspace
from asyncdeleter._operations import (
    CLOSE_SQL_SESSION,
    DELETE_WORKSPACE,
    LIST_SQL_SESSIONS,
    LIST_WORKSPACE,
    SHOW_SQL_SESSION,
    SHOW_WORKSPACE,
    Operation,
)
from asyncdeleter._request import RequestPath
from asyncdeleter._transport import Transport

if TYPE_CHECKING:
    pass

__all__ = ["ReadMethods"]


class ReadMethods:
    """``show_session``, ``show_workspace``, ``list_sessions``, ``list_workspaces``."""

    # Provided by SessionManager.
    _calls: CallFactory
    _path: RequestPath
    _watch: DeletionWatch
    _transport: Transport

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
        _check_page_size(page_size, FABRIC_PAGE_MAX)
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
        _check_page_size(page_size, MODELARTS_PAGE_MAX)
        return aiter(self._workspace_listing(query, page_size, strict=False))

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


def _check_page_size(page_size: object, largest: int) -> None:
    if (
        not isinstance(page_size, int)
        or isinstance(page_size, bool)
        or not (1 <= page_size <= largest)
    ):
        raise ConfigurationError(f"page_size must be an int from 1 to {largest}, got {page_size!r}")
