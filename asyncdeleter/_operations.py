"""One declarative spec per API call: what it is, where it goes, what its answers mean.

The request path (``_request``) sends any of them the same way; the manager's public
methods each name one. Adding an API call is one spec here and one public method.

What the answers mean, by ``deletes``:

- A deletion (``deletes=True``): a 2xx is done (for DeleteWorkspace: accepted), and its
  body is not needed. A 404 on the first attempt is "missing" (``NotFoundError``, or
  ``already_gone`` with ``missing_ok``); a 404 after an attempt of ours that may have
  taken effect means that attempt worked.
- A read (``deletes=False``): a 2xx carries the answer, read whole (up to a cap) and
  structured by ``parse``; a 404 is ``NotFoundError`` ("not found", never "already
  deleted"), and a body cut short is retried like a dropped connection.

Every 404 that would end a call so counts only on evidence: ``gone_codes`` say which of
the service's codes claim the resource is missing (``_evidence``), and ``lists_with`` is
the listing that checks the claim against the resource's container (``_verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from asyncdeleter._evidence import FABRIC_NOT_FOUND_CODES, MODELARTS_GONE_CODES
from asyncdeleter._ids import FABRIC_ID_MAX, MODELARTS_ID_MAX
from asyncdeleter._models import SessionPage, SqlSession, Workspace, WorkspacePage, converter

__all__ = [
    "CLOSE_SQL_SESSION",
    "DELETE_WORKSPACE",
    "FABRIC",
    "LIST_SQL_SESSIONS",
    "LIST_WORKSPACE",
    "MODELARTS",
    "OPERATIONS",
    "SHOW_SQL_SESSION",
    "SHOW_WORKSPACE",
    "Operation",
]

FABRIC: Final = "fabric"
MODELARTS: Final = "modelarts"

#: Turns a 2xx answer's JSON into the result; given the call's path ids (in the order of
#: ``Operation.ids``) for context.
Parse = Callable[[Any, tuple[str, ...]], Any]


@attrs.frozen(kw_only=True)
class Operation:
    """One API call.

    Attributes:
        name: The API's own name (``CloseSqlSession``): the gateway's quota, and so the
            learned send rate, is per API.
        label: The public method that makes it, for messages and hooks.
        method: ``DELETE`` or ``GET``.
        service: ``fabric`` or ``modelarts``: which endpoint it goes to. Fabric calls
            carry ``X-Project-Id`` when the manager knows a project id.
        path: The path under the endpoint; ``{project_id}`` is the manager's.
        ids: The path's other parameters, each with its longest valid length; each is
            validated before anything is built or sent.
        deletes: Whether it deletes (see the module docstring for what that changes).
        parse: For a read, how a 2xx body becomes the result.
        gone_codes: The service's error codes (case-folded) with which a 404 says the
            resource is missing (``_evidence``: still to be checked against its parent).
        lists_with: The listing of this operation's container (its Fabric workspace, or
            the project), read to check a 404 (``_verify``); ``None`` for a listing.
    """

    name: str
    label: str
    method: str
    service: str
    path: str
    ids: tuple[tuple[str, int], ...]
    deletes: bool
    parse: Parse | None = None
    gone_codes: frozenset[str] = frozenset()
    lists_with: Operation | None = None
    #: Whether the path names the manager's project (ModelArts calls): read per call.
    needs_project: bool = attrs.field(init=False)

    @needs_project.default
    def _names_the_project(self) -> bool:
        return "{project_id}" in self.path


def _session(data: Any, ids: tuple[str, ...]) -> SqlSession:
    if not isinstance(data, Mapping):
        raise TypeError("a session is not a JSON object")
    session = converter.structure({**data, "workspace_id": ids[0]}, SqlSession)
    if len(ids) == 2 and session.session_id != ids[1]:  # a show: it must be the one asked
        raise TypeError(f"the answer is about session {session.session_id!r}")
    return session


def _workspace(data: Any, ids: tuple[str, ...]) -> Workspace:
    workspace = converter.structure(data, Workspace)
    if ids and workspace.workspace_id != ids[0]:  # a show: it must be the one asked
        raise TypeError(f"the answer is about workspace {workspace.workspace_id!r}")
    return workspace


def _total(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(data: Any, key: str, total_key: str) -> tuple[list[Any], int | None]:
    """A page's items and its total; a page without its list is empty only if total is 0."""
    if not isinstance(data, Mapping):
        raise TypeError("the page is not a JSON object")
    total = _total(data, total_key)
    items = data.get(key)
    if items is None and total == 0:
        return [], total
    if not isinstance(items, list):
        raise TypeError(f"the page has no {key!r} list")
    return items, total


def _session_page(data: Any, ids: tuple[str, ...]) -> SessionPage:
    items, total = _items(data, "sessions", "total")
    return SessionPage(total=total, items=tuple(_session(item, ids) for item in items))


def _workspace_page(data: Any, ids: tuple[str, ...]) -> WorkspacePage:
    items, total = _items(data, "workspaces", "total_count")
    return WorkspacePage(total=total, items=tuple(_workspace(item, ()) for item in items))


_SESSION_PATH: Final = "/v1/workspaces/{workspace_id}/sessions/{session_id}"
_WORKSPACE_PATH: Final = "/v1/{project_id}/workspaces/{workspace_id}"
_SESSION_IDS: Final = (("workspace_id", FABRIC_ID_MAX), ("session_id", FABRIC_ID_MAX))
_WORKSPACE_IDS: Final = (("workspace_id", MODELARTS_ID_MAX),)

LIST_SQL_SESSIONS: Final = Operation(
    name="ListSqlSessions",
    label="list_sessions",
    method="GET",
    service=FABRIC,
    path="/v1/workspaces/{workspace_id}/sessions",
    ids=(("workspace_id", FABRIC_ID_MAX),),
    deletes=False,
    parse=_session_page,
)
LIST_WORKSPACE: Final = Operation(
    name="ListWorkspace",
    label="list_workspaces",
    method="GET",
    service=MODELARTS,
    path="/v1/{project_id}/workspaces",
    ids=(),
    deletes=False,
    parse=_workspace_page,
)
CLOSE_SQL_SESSION: Final = Operation(
    name="CloseSqlSession",
    label="close_session",
    method="DELETE",
    service=FABRIC,
    path=_SESSION_PATH,
    ids=_SESSION_IDS,
    deletes=True,
    gone_codes=FABRIC_NOT_FOUND_CODES,
    lists_with=LIST_SQL_SESSIONS,
)
SHOW_SQL_SESSION: Final = Operation(
    name="ShowSqlSession",
    label="show_session",
    method="GET",
    service=FABRIC,
    path=_SESSION_PATH,
    ids=_SESSION_IDS,
    deletes=False,
    parse=_session,
    gone_codes=FABRIC_NOT_FOUND_CODES,
    lists_with=LIST_SQL_SESSIONS,
)
DELETE_WORKSPACE: Final = Operation(
    name="DeleteWorkspace",
    label="delete_workspace",
    method="DELETE",
    service=MODELARTS,
    path=_WORKSPACE_PATH,
    ids=_WORKSPACE_IDS,
    deletes=True,
    gone_codes=MODELARTS_GONE_CODES,
    lists_with=LIST_WORKSPACE,
)
SHOW_WORKSPACE: Final = Operation(
    name="ShowWorkspace",
    label="show_workspace",
    method="GET",
    service=MODELARTS,
    path=_WORKSPACE_PATH,
    ids=_WORKSPACE_IDS,
    deletes=False,
    parse=_workspace,
    gone_codes=MODELARTS_GONE_CODES,
    lists_with=LIST_WORKSPACE,
)

#: Every operation: the manager keeps one rate gate per entry (per host and API).
OPERATIONS: Final = (
    CLOSE_SQL_SESSION,
    SHOW_SQL_SESSION,
    LIST_SQL_SESSIONS,
    DELETE_WORKSPACE,
    SHOW_WORKSPACE,
    LIST_WORKSPACE,
)
