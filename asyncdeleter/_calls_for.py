"""Turning an operation and its ids into a ``Call``: validated, addressed, gated.

One ``CallFactory`` per manager. It validates every id before anything is built (nothing
unvalidated reaches a URL), checks what the operation needs (a project id, credentials),
keeps one rate gate per (host, API), adds ``X-Project-Id`` to every call when the manager
has a project id (signed under AK/SK, as the official SDK does: docs/api-facts.md,
section 4), and tells the manager's listings of each deletion it builds. Where each
service is comes from ``_regions.Hosts``, asked at a service's first call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import yarl

from asyncdeleter._auth import Credentials
from asyncdeleter._calls import Call, Tracker
from asyncdeleter._config import check_header_value
from asyncdeleter._errors import ConfigurationError, InvalidIdentifierError
from asyncdeleter._ids import FABRIC_ID_MAX, MODELARTS_ID_MAX, known_status, validate_id
from asyncdeleter._listing import DeletionWatch
from asyncdeleter._operations import OPERATIONS, Operation
from asyncdeleter._regions import Hosts
from asyncdeleter._throttle import ApiGate

__all__ = ["CallFactory", "list_query", "session_target", "workspace_target"]

PROJECT_HEADER: Final = "X-Project-Id"
_PLACEHOLDER: Final = re.compile(r"\{[a-z_]+\}")


class CallFactory:
    """Builds the calls of one manager."""

    def __init__(
        self,
        hosts: Hosts,
        project_id: str | None,
        max_rate: float | None,
        credentials: Credentials,
        watch: DeletionWatch,
    ) -> None:
        self.project_id = project_id
        self.hosts = hosts
        self._credentials = credentials
        self._watch = watch
        # One gate per (host, API): the gateway's quota is per API, so is the learned rate.
        self._gates = {op.name: ApiGate(max_rate) for op in OPERATIONS}
        self._project_headers = {PROJECT_HEADER: project_id} if project_id is not None else None
        # Per service, resolved at its first call and again after it moves: its base URL
        # (parsed once), and each operation's path under it as a %-template of its ids.
        self._bases: dict[str, tuple[int, str, yarl.URL]] = {}
        self._paths: dict[str, str] = {}

    def _base(self, service: str) -> tuple[int, str, yarl.URL]:
        """The service's (generation, base URL, parsed URL), resolved now if it changed.

        Raises:
            ConfigurationError: The service has no usable endpoint (an unknown region).
        """
        found = self._bases.get(service)
        generation = self.hosts.generation
        if found is not None and found[0] == generation:
            return found
        base = self.hosts.base(service)
        url = yarl.URL(base)
        # Each URL is the endpoint with a new path: with_path() skips re-parsing the whole
        # URL per call. The endpoint's own path (a proxy prefix, say) is kept in front, a %
        # in it escaped, and the project filled in once: building a URL is then one % and
        # one with_path().
        prefix = url.raw_path.rstrip("/").replace("%", "%%")
        project = self.project_id or "{project_id}"
        for op in OPERATIONS:
            if op.service == service:
                self._paths[op.name] = _PLACEHOLDER.sub(
                    "%s", prefix + op.path.replace("{project_id}", project)
                )
        found = (generation, base, url)
        self._bases[service] = found
        return found

    def check(self, op: Operation) -> None:
        """Refuse, before anything is read or sent, an operation this manager cannot make.

        Raises:
            ConfigurationError: No usable endpoint for its service (a region without it),
                or a ModelArts call without a project id or credentials.
        """
        self._base(op.service)
        if op.needs_project:
            if self.project_id is None:
                raise ConfigurationError(
                    f"{op.label} needs a project_id on the SessionManager (--project-id)"
                )
            if not self._credentials.present:
                raise ConfigurationError(
                    f"{op.label} needs credentials: ModelArts requires X-Auth-Token or an "
                    "AK/SK signature"
                )

    def ids(self, op: Operation, values: tuple[object, ...]) -> tuple[str, ...]:
        """Validate the path ids of ``op``, given in the order of ``op.ids``.

        Raises:
            InvalidIdentifierError: An id is malformed.
        """
        specs = op.ids
        if len(specs) == 1 and len(values) == 1:  # the common case, without the loop
            name, longest = specs[0]
            return (validate_id(name, values[0], longest),)
        return tuple(
            [
                validate_id(name, value, longest)
                for (name, longest), value in zip(specs, values, strict=True)
            ]
        )

    def call(
        self,
        op: Operation,
        ids: tuple[str, ...],
        *,
        missing_ok: bool = False,
        tracker: Tracker | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Call:
        """The call of ``op`` on validated ``ids``.

        Raises:
            ConfigurationError: ``op``'s service has no usable endpoint (an unknown region).
        """
        generation, base, parsed = self._base(op.service)
        url = parsed.with_path(self._paths[op.name] % ids, encoded=True)
        if query:
            url = url.with_query(query)
        if op.deletes and self._watch.listings:
            self._watch.removing((op.name, ids[0] if len(ids) > 1 else ""), ids[-1])
        return Call(
            op=op,
            url=url,
            gate=self._gates[op.name],
            ids=ids,
            target="/".join(ids) if ids else str(self.project_id),
            missing_ok=missing_ok,
            headers=self._project_headers,
            tracker=tracker,
            base=base,
            generation=generation,
        )

    def readdress(self, call: Call) -> None:
        """Point ``call`` at its service's current host (after the service moved)."""
        generation, base, parsed = self._base(call.op.service)
        old = call.url
        call.url = parsed.with_path(self._paths[call.op.name] % call.ids, encoded=True)
        if old.raw_query_string:
            call.url = call.url.with_query(old.query)
        call.base, call.generation = base, generation
        if self.hosts.left_unserved(call.op.service):
            # The old host's gateway serves no such API: whatever an attempt there seemed
            # to do (a 500 of that gateway's) says nothing of the new host's 404. (A host
            # that stopped connecting may have done what it was asked: that stays known.)
            call.may_have_taken_effect = False


def session_target(item: object) -> tuple[str, str]:
    """Validate one ``close_sessions`` item: a ``(workspace_id, session_id)`` pair.

    Public as ``asyncdeleter.check_session_target``: the same check a bulk run makes, for
    callers (the command line) that validate input before a run.

    Raises:
        InvalidIdentifierError: Not a pair, or an id that is not 1-36 letters, digits and
            hyphens.
    """
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InvalidIdentifierError("target", item, "must be a (workspace_id, session_id) pair")
    workspace_id, session_id = item
    return (
        validate_id("workspace_id", workspace_id, FABRIC_ID_MAX),
        validate_id("session_id", session_id, FABRIC_ID_MAX),
    )


def workspace_target(item: object) -> str:
    """Validate one ``delete_workspaces`` item: a workspace id (1-64 letters, digits, hyphens).

    Public as ``asyncdeleter.check_workspace_id``.

    Raises:
        InvalidIdentifierError: Not a valid workspace id.
    """
    return validate_id("workspace_id", item, MODELARTS_ID_MAX)


def query_text(parameter: str, value: object, longest: int) -> str:
    """A free-text query value (a name filter): 1 to ``longest`` printable characters.

    Raises:
        InvalidIdentifierError: Not a str, empty, too long, or with control characters.
    """
    if not isinstance(value, str) or not 0 < len(value) <= longest or not value.isprintable():
        raise InvalidIdentifierError(
            parameter, value, f"must be 1 to {longest} printable characters"
        )
    check_header_value(parameter, value)
    return str.__str__(value)


#: The statuses ListSqlSessions filters by (API reference).
SESSION_STATUSES: Final = frozenset({"RUNNING", "CLOSED", "WAITING", "CREATING", "FAIL"})


def list_query(
    *, status: str | None = None, endpoint_id: str | None = None, name: str | None = None
) -> dict[str, str]:
    """The filters of a listing, validated, as query parameters.

    Raises:
        InvalidIdentifierError: A status the service does not know, a malformed
            endpoint id, or a name that is not 1-64 printable characters.
    """
    query: dict[str, str] = {}
    if status is not None:
        query["status"] = str.__str__(known_status(status, SESSION_STATUSES))
    if endpoint_id is not None:
        query["endpoint_id"] = validate_id("endpoint_id", endpoint_id, FABRIC_ID_MAX)
    if name is not None:
        query["name"] = query_text("name", name, MODELARTS_ID_MAX)
    return query
