"""Which API a request names: the emulator's own reading of the two services' paths."""

from __future__ import annotations

import re
from typing import Final

import attrs

from asyncdeleter.testing._faults import FaultKind

__all__ = [
    "APIS",
    "DELETE_APIS",
    "FABRIC",
    "MODELARTS",
    "RecordedRequest",
    "Route",
    "parse_route",
]

FABRIC: Final = "fabric"
MODELARTS: Final = "modelarts"
#: The APIs the emulator serves.
APIS: Final = frozenset(
    {
        "CloseSqlSession",
        "ListSqlSessions",
        "ShowSqlSession",
        "DeleteWorkspace",
        "ListWorkspace",
        "ShowWorkspace",
    }
)
#: The APIs that delete something.
DELETE_APIS: Final = frozenset({"CloseSqlSession", "DeleteWorkspace"})
# The server side of the id rules, written out again on purpose (see the package docstring).
_FABRIC_ID: Final = re.compile(r"[A-Za-z0-9-]{1,36}")
_MODELARTS_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
# (service, names an item, method) -> API
_API_BY_ROUTE: Final = {
    (FABRIC, True, "DELETE"): "CloseSqlSession",
    (FABRIC, True, "GET"): "ShowSqlSession",
    (FABRIC, False, "GET"): "ListSqlSessions",
    (MODELARTS, True, "DELETE"): "DeleteWorkspace",
    (MODELARTS, True, "GET"): "ShowWorkspace",
    (MODELARTS, False, "GET"): "ListWorkspace",
}


@attrs.frozen
class Route:
    """A path of one of the two services.

    Attributes:
        service: ``"fabric"`` or ``"modelarts"``.
        container: The Fabric workspace id, or the ModelArts project id.
        item: The session or workspace id; ``None`` for a listing.
    """

    service: str
    container: str
    item: str | None

    def api(self, method: str) -> str | None:
        """The API this path serves with ``method``, or ``None`` (a 405)."""
        return _API_BY_ROUTE.get((self.service, self.item is not None, method))

    def ids_valid(self) -> bool:
        """Whether every id in the path keeps to the service's rules (else a 400)."""
        pattern = _FABRIC_ID if self.service == FABRIC else _MODELARTS_ID
        return pattern.fullmatch(self.container) is not None and (
            self.item is None or pattern.fullmatch(self.item) is not None
        )

    def names(self, ids: set[str]) -> bool:
        """Whether the path names one of ``ids``."""
        return self.container in ids or (self.item is not None and self.item in ids)


def parse_route(path: str) -> Route | None:
    """Map a raw path to its ``Route``, or ``None`` for a path neither service has.

    The one path both could claim, ``/v1/workspaces/{ws}/sessions``, is Fabric's (the real
    services are on different hosts; the emulator serves both on one).
    """
    parts = path.split("/")
    if parts[:2] != ["", "v1"]:
        return None
    # /v1/workspaces/{ws}/sessions[/{sid}]
    if len(parts) in (5, 6) and parts[2] == "workspaces" and parts[4] == "sessions":
        return Route(FABRIC, parts[3], parts[5] if len(parts) == 6 else None)
    # /v1/{project_id}/workspaces[/{workspace_id}]
    if len(parts) in (4, 5) and parts[3] == "workspaces":
        return Route(MODELARTS, parts[2], parts[4] if len(parts) == 5 else None)
    return None


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the emulator received, and what it did about it.

    Attributes:
        method: The HTTP method.
        path: The raw (still percent-encoded) path.
        query: The raw query string.
        headers: The request headers (the last value of each name).
        service: ``"fabric"``, ``"modelarts"``, or ``None`` for an unknown path.
        api: The API called (``"CloseSqlSession"``, ``"ListSqlSessions"``,
            ``"ShowSqlSession"``, ``"DeleteWorkspace"``, ``"ListWorkspace"`` or
            ``"ShowWorkspace"``), or ``None`` for an unknown path or a method the path
            does not serve.
        status: The status answered, or ``None`` when the connection was dropped or stalled.
        fault: The ``FaultKind`` injected, if any.
        committed: Whether the request deleted something (for a workspace: the deletion
            was accepted).
        received_at: Loop time when the request arrived.
        answered_at: Loop time when the answer was decided.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    service: str | None
    api: str | None = None
    status: int | None
    fault: FaultKind | None
    committed: bool
    received_at: float
    answered_at: float
