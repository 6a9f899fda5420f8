"""The two services behind the gateway: their states, how tests seed them, their answers.

``Emulator`` inherits this: it adds the server, the gateway and the faults around it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web

from asyncdeleter.testing._bodies import error_answer
from asyncdeleter.testing._fabric import FabricState
from asyncdeleter.testing._modelarts import (
    DEFAULT_FAILURE_REASON,
    ModelArtsState,
    OffsetReading,
)
from asyncdeleter.testing._params import NOW, Answer
from asyncdeleter.testing._routes import Route

__all__ = ["Backends"]


class Backends:
    """DataArts Fabric and ModelArts state, seeded by tests and read by the server.

    Args:
        clock: Unix time, for the default creation times of what is seeded.
        stateless: Answer every valid delete with success and store nothing.
        deleting_seconds: How long a deleted ModelArts workspace shows ``DELETING``.
        modelarts_offset: How ListWorkspace reads ``offset``: ``"record"`` or ``"page"``.

    Raises:
        ValueError: ``modelarts_offset`` is neither ``"record"`` nor ``"page"``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        stateless: bool,
        deleting_seconds: float,
        modelarts_offset: OffsetReading,
    ) -> None:
        if modelarts_offset not in ("record", "page"):
            message = f"modelarts_offset must be 'record' or 'page', not {modelarts_offset!r}"
            raise ValueError(message)
        self.stateless = stateless
        self.deleting_seconds = deleting_seconds
        self.modelarts_offset: OffsetReading = modelarts_offset
        self._fabric = FabricState(clock)
        self._modelarts = ModelArtsState(clock)

    # -- seeding and inspection --------------------------------------------------------

    def add_sessions(
        self,
        workspace_id: str,
        session_ids: Iterable[str],
        *,
        status: str = "RUNNING",
        create_time: object = NOW,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Create SQL sessions in a Fabric workspace, creating the workspace if needed.

        ``add_sessions("ws", [])`` creates an empty workspace. Seeding a known session
        again replaces its attributes and keeps its place in the listing order.

        Args:
            workspace_id: The Fabric workspace.
            session_ids: The sessions, listed in this order after those already there.
            status: Their status (``RUNNING``, ``CLOSED``, ``WAITING``, ``CREATING``,
                ``FAIL``; anything else is stored and answered as given).
            create_time: The raw ``create_time`` to answer, verbatim (any JSON value,
                ``None`` for null); by default, now as ISO 8601 UTC (``...T10:00:00Z``).
            extra: More fields for their answers (``endpoint_id`` is what that filter
                reads); they cannot replace the fields above.
        """
        self._fabric.add(
            workspace_id, session_ids, status=status, create_time=create_time, extra=extra
        )

    def add_workspaces(
        self,
        project_id: str,
        workspace_ids: Iterable[str],
        *,
        name: str | None = None,
        status: str = "NORMAL",
        create_time: object = NOW,
        update_time: object = NOW,
        status_info: str = "",
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Create ModelArts workspaces in a project, creating the project if needed.

        ``add_workspaces("p", [])`` creates an empty project. Seeding a known workspace
        again replaces it (and forgets any deletion under way).

        Args:
            project_id: The ModelArts project.
            workspace_ids: The workspaces.
            name: Their name; by default, each one's id.
            status: Their status (``NORMAL``, ``CREATE_FAILED``, ``DELETING``,
                ``DELETE_FAILED``). A seeded ``DELETING`` stays so until deleted again.
            create_time: The raw ``create_time`` to answer, verbatim (any JSON value,
                ``None`` for null); by default, now in milliseconds (an integer).
            update_time: The raw ``update_time``; by default, the same as ``create_time``.
            status_info: Their ``status_info``.
            extra: Fields for their answers beyond those above, or replacing the defaults
                of ``description``, ``owner``, ``auth_type`` and ``enterprise_project_id``
                (which that filter reads).
        """
        self._modelarts.add(
            project_id,
            workspace_ids,
            name=name,
            status=status,
            create_time=create_time,
            update_time=update_time,
            status_info=status_info,
            extra=extra,
        )

    def add_default_workspace(self, project_id: str) -> None:
        """Give a project its default workspace: id ``"0"``, named ``default``, ``NORMAL``.

        Deleting it answers 400 ``ModelArts.0102`` and it stays.
        """
        self._modelarts.add_default(project_id)

    def fail_deletion(self, *workspace_ids: str, reason: str = DEFAULT_FAILURE_REASON) -> None:
        """Make deleting these ModelArts workspaces (in any project) fail.

        Their deletion is still accepted (200) and shows ``DELETING``, then ends
        ``DELETE_FAILED`` with ``status_info`` set to ``reason``, and they stay, until
        ``clear_deletion_failures`` lets a new delete succeed.
        """
        self._modelarts.fail_deletion(workspace_ids, reason)

    def clear_deletion_failures(self, *workspace_ids: str) -> None:
        """Undo ``fail_deletion`` for ``workspace_ids``, or for every workspace if none."""
        self._modelarts.clear_deletion_failures(workspace_ids or None)

    def sessions(self, workspace_id: str) -> frozenset[str]:
        """The sessions of a Fabric workspace (any status; closed ones are gone)."""
        return self._fabric.ids(workspace_id)

    def session_status(self, workspace_id: str, session_id: str) -> str | None:
        """A Fabric session's status, or ``None`` if it does not exist."""
        return self._fabric.status(workspace_id, session_id)

    def workspaces(self, project_id: str) -> frozenset[str]:
        """The workspaces of a ModelArts project, ``DELETING`` and ``DELETE_FAILED`` ones too."""
        return self._modelarts.ids(project_id)

    def workspace_status(self, project_id: str, workspace_id: str) -> str | None:
        """A ModelArts workspace's status (``NORMAL``, ``DELETING``...), ``None`` once gone."""
        return self._modelarts.status(project_id, workspace_id)

    @property
    def session_count(self) -> int:
        """Sessions across every Fabric workspace."""
        return self._fabric.count()

    @property
    def workspace_count(self) -> int:
        """Workspaces present across every ModelArts project."""
        return self._modelarts.count()

    # -- answering ---------------------------------------------------------------------

    def _serve(self, route: Route, api: str, request: web.BaseRequest) -> Answer:
        """The backend's answer to a request the gateway let through."""
        if not route.ids_valid():
            return 400, error_answer(400)[1]
        container, item = route.container, route.item or ""
        match api:
            case "CloseSqlSession":
                answer = (200, b"") if self.stateless else self._fabric.close(container, item)
            case "ShowSqlSession":
                answer = self._fabric.show(container, item)
            case "ListSqlSessions":
                answer = self._fabric.list(container, request.query)
            case "DeleteWorkspace" if self.stateless:
                answer = 200, json.dumps({"workspace_id": item}).encode()
            case "DeleteWorkspace":
                answer = self._modelarts.delete(container, item, self.deleting_seconds)
            case "ShowWorkspace":
                answer = self._modelarts.show(container, item)
            case _:
                answer = self._modelarts.list(container, request.query, self.modelarts_offset)
        return answer
