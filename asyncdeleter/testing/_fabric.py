"""The DataArts Fabric state: workspaces holding SQL sessions (docs/api-facts.md, sections 1 and 5).

Sessions keep their creation order, and listing is by record offset over that order, so
closing sessions between two pages really shifts the second one (the paging trap).
Every method takes the lock, and none holds it while anything awaits: test code seeds from
one thread while the emulator serves from another.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping

import attrs

from asyncdeleter.testing._bodies import not_found_body
from asyncdeleter.testing._params import (
    NOW,
    Answer,
    BadParameterError,
    bad_request,
    choice,
    integer,
    iso_now,
    ok,
    text,
)

__all__ = ["SESSION_STATUSES", "FabricState"]

#: The statuses ListSqlSessions filters on.
SESSION_STATUSES = frozenset({"RUNNING", "CLOSED", "WAITING", "CREATING", "FAIL"})
_BAD_PARAMETER = "common.01000001"
_MAX_OFFSET = 1_000_000_000


@attrs.frozen
class _Seed:
    """The attributes of the sessions seeded by one call, shared to keep big seeds small."""

    status: str
    create_time: object
    extra: Mapping[str, object]


class FabricState:
    """Fabric workspaces and their sessions, in creation order.

    Args:
        clock: Unix time, for the default ``create_time`` of seeded sessions.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._workspaces: dict[str, dict[str, _Seed]] = {}

    # -- seeding and inspection --------------------------------------------------------

    def add(
        self,
        workspace_id: str,
        session_ids: Iterable[str],
        *,
        status: str,
        create_time: object,
        extra: Mapping[str, object] | None,
    ) -> None:
        """Create the workspace if needed, and these sessions in it (a known id is updated)."""
        ids = list(session_ids)  # iterate a caller's generator outside the lock
        when = iso_now(self._clock) if create_time is NOW else create_time
        seed = _Seed(status, when, dict(extra or {}))
        with self._lock:
            sessions = self._workspaces.setdefault(workspace_id, {})
            for session_id in ids:
                sessions[session_id] = seed

    def ids(self, workspace_id: str) -> frozenset[str]:
        """The sessions of a workspace (empty if it does not exist)."""
        with self._lock:
            return frozenset(self._workspaces.get(workspace_id, ()))

    def status(self, workspace_id: str, session_id: str) -> str | None:
        """A session's status, or ``None`` if it does not exist."""
        with self._lock:
            seed = self._workspaces.get(workspace_id, {}).get(session_id)
        return None if seed is None else seed.status

    def count(self) -> int:
        """Sessions across every workspace."""
        with self._lock:
            return sum(len(s) for s in self._workspaces.values())

    # -- the API -----------------------------------------------------------------------

    def close(self, workspace_id: str, session_id: str) -> Answer:
        """CloseSqlSession: remove the session; 404 naming what is missing."""
        with self._lock:
            sessions = self._workspaces.get(workspace_id)
            if sessions is None:
                return _workspace_missing(workspace_id)
            if sessions.pop(session_id, None) is None:
                return _session_missing(session_id)
        return 200, b""

    def show(self, workspace_id: str, session_id: str) -> Answer:
        """ShowSqlSession: the session's fields; 404 naming what is missing."""
        with self._lock:
            sessions = self._workspaces.get(workspace_id)
            if sessions is None:
                return _workspace_missing(workspace_id)
            seed = sessions.get(session_id)
        if seed is None:
            return _session_missing(session_id)
        # Only the fields ShowSqlSession documents (docs/api-facts.md, section 5).
        return ok({"session_id": session_id, "status": seed.status})

    def list(self, workspace_id: str, query: Mapping[str, str]) -> Answer:
        """ListSqlSessions: a page by record offset, with filters, and the matching total."""
        try:
            status = choice(query, "status", SESSION_STATUSES)
            endpoint_id = text(query, "endpoint_id", high=36)
            session_id = text(query, "session_id", high=36)
            limit = integer(query, "limit", default=10, low=1, high=100)
            offset = integer(query, "offset", default=0, low=0, high=_MAX_OFFSET)
        except BadParameterError as exc:
            return bad_request(_BAD_PARAMETER, str(exc))
        with self._lock:
            sessions = self._workspaces.get(workspace_id)
            if sessions is None:
                return _workspace_missing(workspace_id)
            if status is None and endpoint_id is None and session_id is None:
                total = len(sessions)
                page = list(itertools.islice(sessions.items(), offset, offset + limit))
            else:
                matching = [
                    (sid, seed)
                    for sid, seed in sessions.items()
                    if (session_id is None or sid == session_id)
                    and (status is None or seed.status == status)
                    and (endpoint_id is None or seed.extra.get("endpoint_id") == endpoint_id)
                ]
                total = len(matching)
                page = matching[offset : offset + limit]
        return ok({"sessions": [_body(sid, seed) for sid, seed in page], "total": total})


def _body(session_id: str, seed: _Seed) -> dict[str, object]:
    # Extra fields cannot hide the standard ones: the filters read those.
    return {
        **seed.extra,
        "session_id": session_id,
        "status": seed.status,
        "create_time": seed.create_time,
    }


def _workspace_missing(workspace_id: str) -> Answer:
    message = f"response status exception, code: 404, workspace {workspace_id} not found"
    return 404, not_found_body("common.01000001", message)


def _session_missing(session_id: str) -> Answer:
    message = f"response status exception, code: 404, session {session_id} not found"
    return 404, not_found_body("common.01000001", message)
