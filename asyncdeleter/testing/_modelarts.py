"""The ModelArts state: projects holding workspaces (docs/api-facts.md, sections 2 and 5).

A deleted workspace shows ``DELETING`` for ``deleting_seconds``, then vanishes, or ends
``DELETE_FAILED`` (with the reason in ``status_info``) if its id was marked to fail. The
outcome is decided lazily, whenever the state is looked at: no timers. The monotonic
deadlines sit in a heap, so looking costs nothing while nothing is due.

Error codes: ``ModelArts.0104`` ("workspace not exist") is the documented one. The others
are the emulator's own plausible choices, for lack of published ones: ``ModelArts.0101``
for a bad query parameter, ``ModelArts.0102`` for deleting the default workspace and
``ModelArts.0103`` for a project that does not exist.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal

import attrs

from asyncdeleter.testing._bodies import flat_body
from asyncdeleter.testing._params import (
    NOW,
    Answer,
    BadParameterError,
    bad_request,
    choice,
    integer,
    ok,
    sort_key,
    text,
)

__all__ = ["DEFAULT_FAILURE_REASON", "ModelArtsState", "OffsetReading"]

#: How ListWorkspace's ``offset`` is read: records skipped, or a page index.
OffsetReading = Literal["record", "page"]
#: The ``status_info`` of a failed deletion when ``fail_deletion`` is given no reason.
DEFAULT_FAILURE_REASON: Final = "delete workspace failed: resources in it could not be released"
DEFAULT_WORKSPACE_ID: Final = "0"
_BAD_PARAMETER: Final = "ModelArts.0101"
_MAX_OFFSET: Final = 2_147_483_647


@attrs.define
class _Workspace:
    """One workspace: its answer fields, and where it is in its deletion."""

    body: dict[str, object]
    default: bool = False
    #: The monotonic time its deletion ends, while it is ``DELETING``.
    deadline: float | None = None


class ModelArtsState:
    """ModelArts projects and their workspaces.

    Args:
        clock: Unix time, for the default ``create_time`` of seeded workspaces.
        monotonic: The clock deletions are timed by.
    """

    def __init__(
        self, clock: Callable[[], float], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._projects: dict[str, dict[str, _Workspace]] = {}
        self._failing: dict[str, str] = {}
        self._due: list[tuple[float, int, str, str, _Workspace]] = []
        self._order = itertools.count()
        #: The code a missing workspace's 404 carries: ``ModelArts.0104`` is the only one
        #: seen, and it is documented nowhere as a 404 (docs/api-facts.md, section 8), so
        #: tests can make the service answer another.
        self.gone_code = "ModelArts.0104"

    # -- seeding and inspection --------------------------------------------------------

    def add(
        self,
        project_id: str,
        workspace_ids: Iterable[str],
        *,
        name: str | None,
        status: str,
        create_time: object,
        update_time: object,
        status_info: str,
        extra: Mapping[str, object] | None,
        default: bool = False,
    ) -> None:
        """Create the project if needed, and these workspaces in it (a known id is replaced).

        ``default`` marks them as the project's default workspace, which cannot be deleted.
        """
        ids = list(workspace_ids)  # iterate a caller's generator outside the lock
        created = int(self._clock() * 1000) if create_time is NOW else create_time
        updated = created if update_time is NOW else update_time
        with self._lock:
            workspaces = self._projects.setdefault(project_id, {})
            for workspace_id in ids:
                workspaces[workspace_id] = _Workspace(
                    {
                        "description": "",
                        "owner": "emulator-user",
                        "auth_type": "PUBLIC",
                        "enterprise_project_id": "0",
                        # The official SDK's WorkspaceResponse has it (docs/api-facts.md, 5).
                        "enterprise_project_name": "default",
                        **(extra or {}),
                        "id": workspace_id,
                        "name": workspace_id if name is None else name,
                        "create_time": created,
                        "update_time": updated,
                        "status": status,
                        "status_info": status_info,
                    },
                    default=default,
                )

    def add_default(self, project_id: str) -> None:
        """Create the project if needed, with its default workspace (id ``"0"``)."""
        self.add(
            project_id,
            [DEFAULT_WORKSPACE_ID],
            name="default",
            status="NORMAL",
            create_time=NOW,
            update_time=NOW,
            status_info="",
            extra=None,
            default=True,
        )

    def fail_deletion(self, workspace_ids: Iterable[str], reason: str) -> None:
        """Make the deletions of these workspaces (in any project) end ``DELETE_FAILED``."""
        with self._lock:
            self._failing.update(dict.fromkeys(workspace_ids, reason))

    def clear_deletion_failures(self, workspace_ids: Iterable[str] | None) -> None:
        """Undo ``fail_deletion`` for these workspaces, or for all if ``None``."""
        with self._lock:
            if workspace_ids is None:
                self._failing.clear()
            for workspace_id in workspace_ids or ():
                self._failing.pop(workspace_id, None)

    def ids(self, project_id: str) -> frozenset[str]:
        """The workspaces still present in a project, ``DELETING`` and ``DELETE_FAILED`` too."""
        with self._lock:
            self._settle()
            return frozenset(self._projects.get(project_id, ()))

    def status(self, project_id: str, workspace_id: str) -> str | None:
        """A workspace's status, or ``None`` once it is gone."""
        with self._lock:
            self._settle()
            workspace = self._projects.get(project_id, {}).get(workspace_id)
            return None if workspace is None else str(workspace.body["status"])

    def count(self) -> int:
        """Workspaces present across every project."""
        with self._lock:
            self._settle()
            return sum(len(w) for w in self._projects.values())

    # -- the API -----------------------------------------------------------------------

    def delete(self, project_id: str, workspace_id: str, deleting_seconds: float) -> Answer:
        """DeleteWorkspace: accept the deletion (200), which then runs its course."""
        with self._lock:
            self._settle()
            workspace = self._projects.get(project_id, {}).get(workspace_id)
            if workspace is None:
                return _workspace_missing(self.gone_code, workspace_id)
            if workspace.default:
                return 400, flat_body("ModelArts.0102", "the default workspace cannot be deleted")
            if workspace.deadline is None:  # not DELETING yet: start (or restart) it
                workspace.body["status"] = "DELETING"
                workspace.body["status_info"] = ""
                workspace.deadline = self._monotonic() + max(0.0, deleting_seconds)
                entry = (workspace.deadline, next(self._order), project_id, workspace_id)
                heapq.heappush(self._due, (*entry, workspace))
                self._settle()
        return ok({"workspace_id": workspace_id})

    def show(self, project_id: str, workspace_id: str) -> Answer:
        """ShowWorkspace: the workspace's fields plus ``grants``; 404 once it is gone."""
        with self._lock:
            self._settle()
            workspace = self._projects.get(project_id, {}).get(workspace_id)
            if workspace is None:
                return _workspace_missing(self.gone_code, workspace_id)
            body = dict(workspace.body)
        # ShowWorkspace adds grants (ViewWorkspaceResponseGrants: user_id, user_name,
        # user_type); the workspace's owner is granted it.
        body.setdefault(
            "grants",
            [{"user_id": "emulator-user-id", "user_name": body["owner"], "user_type": "IAM"}],
        )
        return ok(body)

    def list(self, project_id: str, query: Mapping[str, str], reading: OffsetReading) -> Answer:
        """ListWorkspace: a filtered, sorted page and the matching total.

        Sorted by ``sort_by`` (default ``name``) in ``order`` (default ``desc``), as the
        service documents; ties keep creation order.
        """
        try:
            limit = integer(query, "limit", default=1000, low=1, high=1000)
            offset = integer(query, "offset", default=0, low=0, high=_MAX_OFFSET)
            name = text(query, "name", high=64)
            sort_by = choice(query, "sort_by", ("name", "update_time", "status"), "name")
            order = choice(query, "order", ("asc", "desc"), "desc")
            enterprise_project_id = text(query, "enterprise_project_id", high=64)
            choice(query, "filter_accessible", ("true", "false", "True", "False"))
        except BadParameterError as exc:
            return bad_request(_BAD_PARAMETER, str(exc))
        start = offset * limit if reading == "page" else offset
        needle = None if name is None else name.lower()
        with self._lock:
            self._settle()
            workspaces = self._projects.get(project_id)
            if workspaces is None:
                return 404, flat_body("ModelArts.0103", f"project {project_id} does not exist")
            matching = [
                w.body
                for w in workspaces.values()
                if (needle is None or needle in str(w.body["name"]).lower())
                and (
                    enterprise_project_id is None
                    or w.body.get("enterprise_project_id") == enterprise_project_id
                )
            ]
            matching.sort(
                key=lambda body: sort_key(body.get(str(sort_by))), reverse=order == "desc"
            )
            page = [dict(body) for body in matching[start : start + limit]]
        return ok({"total_count": len(matching), "count": len(page), "workspaces": page})

    # -- the deletions' course ---------------------------------------------------------

    def _settle(self) -> None:
        """End every deletion that is due (the caller holds the lock)."""
        now = self._monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, project_id, workspace_id, workspace = heapq.heappop(self._due)
            workspaces = self._projects.get(project_id, {})
            if workspace.deadline is None or workspaces.get(workspace_id) is not workspace:
                continue  # replaced by a new seed meanwhile
            workspace.deadline = None
            reason = self._failing.get(workspace_id)
            if reason is None:
                del workspaces[workspace_id]
            else:
                workspace.body["status"] = "DELETE_FAILED"
                workspace.body["status_info"] = reason


def _workspace_missing(code: str, workspace_id: str) -> Answer:
    return 404, flat_body(code, f"workspace {workspace_id} not exist")
