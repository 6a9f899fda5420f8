"""The commands as data: one record each, read wherever two of them differ.

Everything that tells ``close-sessions`` from ``delete-workspaces`` (or a sweep from a
bulk command, or ``list-sessions`` from ``list-workspaces``) lives here: its service,
what its confirmation asks to type, how a line or a report's target becomes a target,
the line format, the library's bulk, sweep or list method, the cheap read made before
deleting. The rest of the command never compares command names. Only the public
``asyncdeleter`` API is used: the same validators, methods and errors a Python caller has.

A sweep is a destructive command whose targets come from a listing instead of an input;
its ``--retry-from`` replays a report as its bulk command would, so a sweep's record is
its bulk command's record with the sweep added (``attrs.evolve``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import attrs
import yarl

from asyncdeleter import (
    InvalidIdentifierError,
    SessionManager,
    check_session_target,
    check_workspace_id,
)
from asyncdeleter._cli.filters import Filters
from asyncdeleter._cli.lines import Line, Target, session_line, target_ids, workspace_line

if TYPE_CHECKING:
    from asyncdeleter import BulkRun, Outcome

__all__ = [
    "BY_COMMAND",
    "CLOSE_SESSIONS",
    "DEFAULT_WORKSPACE",
    "DELETE_WORKSPACES",
    "LIST_SESSIONS",
    "LIST_WORKSPACES",
    "OPERATIONS",
    "SWEEP_SESSIONS",
    "SWEEP_WORKSPACES",
    "Lister",
    "Operation",
    "RunOptions",
    "SweepRequest",
    "check_project_id",
]

#: ModelArts' default workspace: like aws-nuke's built-in filters, never a target.
DEFAULT_WORKSPACE: Final = "0"
#: ``wait_timeout`` of ``delete_workspaces``, in seconds (the library's default too).
DEFAULT_WAIT_TIMEOUT: Final = 600.0

Targets = Iterable[Any] | AsyncIterable[Any]


@attrs.frozen(kw_only=True)
class RunOptions:
    """What a bulk run is asked for beyond its targets (``wait`` applies to workspaces)."""

    missing_ok: bool = True
    wait: bool = False
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT


@attrs.frozen(kw_only=True)
class SweepRequest:
    """What a sweep is asked for: its scope, filters, protected ids, and how to run."""

    scope: str | None
    filters: Filters
    protected: frozenset[str]
    dry_run: bool
    options: RunOptions
    on_progress: Callable[[int, int | None, Outcome[Any]], object] | None = None


@attrs.frozen(kw_only=True)
class Operation:
    """One destructive command.

    Attributes:
        command: The subcommand, and the ``operation`` of its report's header.
        library_calls: How the library's messages name the calls it makes (its errors
            begin ``close_session ws-1/s-1: ...``); the command shows them without.
        service: ``fabric`` or ``modelarts``: the one endpoint (flag) it uses.
        verb: What it does to each target, in messages (``close``).
        noun: What its targets are, counted (``SQL session(s)``).
        project_scoped: The project is its scope: ``--project-id`` is required, is what the
            confirmation asks for, and a ``--retry-from`` report must name the same one.
        parse_line: ``(number, text, problem, --workspace-id)`` to a ``Line``.
        target_from_report: A report's ``target`` object (and ``--project-id``) to a
            target; raises ``ValueError`` saying why it is not one.
        never: Why a valid target is never sent by this command, or ``None``.
        confirmation: ``(endpoint, --project-id, --workspace-id)`` to what the person
            must type and what it is called.
        bulk: Starts the library's bulk run on the targets.
        preflight: The one-item listing made before deleting, given a workspace id when
            the command works within one; ``None`` when it cannot list without one.
        preflight_lists: What that listing lists, for messages.
        line: A target as one line of this command's input (what ``list-*`` prints).
        sweep: Starts the library's sweep (list, filter, delete); ``None`` for a bulk
            command, which reads its targets from an input instead.
    """

    command: str
    library_calls: frozenset[str]
    service: str
    verb: str
    noun: str
    project_scoped: bool
    parse_line: Callable[[int, str, str | None, str | None], Line]
    target_from_report: Callable[[object, str | None], Target]
    never: Callable[[Target], str | None]
    confirmation: Callable[[str, str | None, str | None], tuple[str, str]]
    bulk: Callable[[SessionManager, Targets, RunOptions], BulkRun[Any]]
    preflight: Callable[[SessionManager, str | None], AsyncIterator[object] | None]
    preflight_lists: str
    line: Callable[[Target], str]
    sweep: Callable[[SessionManager, SweepRequest], BulkRun[Any]] | None = None

    @property
    def sweeps(self) -> bool:
        """Its targets come from a listing (``--apply`` deletes), not from an input."""
        return self.sweep is not None


def check_project_id(value: object) -> str:
    """``value`` as a project id (ModelArts' rule: 1-64 letters, digits and hyphens).

    Raises:
        InvalidIdentifierError: Not one; its message names ``project_id``.
    """
    try:
        return check_workspace_id(value)  # the same rule, checked by the public validator
    except InvalidIdentifierError as exc:
        raise InvalidIdentifierError("project_id", value, exc.reason) from None


# -- close-sessions ----------------------------------------------------------------------


def _session_line(number: int, text: str, problem: str | None, scope: str | None) -> Line:
    return session_line(number, text, problem, scope)


def _session_from_report(value: object, project_id: str | None) -> Target:
    if not isinstance(value, dict) or set(value) != {"workspace_id", "session_id"}:
        raise ValueError("target must be an object with workspace_id and session_id")
    try:
        return check_session_target((value["workspace_id"], value["session_id"]))
    except InvalidIdentifierError as exc:
        raise ValueError(str(exc)) from None


def _never_session(target: Target) -> str | None:
    return None


def _scope_word(endpoint: str, project_id: str | None, scope: str | None) -> tuple[str, str]:
    if scope is not None:
        return "workspace id", scope
    url = yarl.URL(endpoint)
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    return "Fabric host", f"{host}:{url.port}" if url.explicit_port else host


def _close_sessions(manager: SessionManager, targets: Targets, options: RunOptions) -> BulkRun[Any]:
    return manager.close_sessions(targets, missing_ok=options.missing_ok)


def _list_sessions(
    manager: SessionManager, workspace_id: str | None
) -> AsyncIterator[object] | None:
    if workspace_id is None:
        return None
    return manager.list_sessions(workspace_id, page_size=1)


CLOSE_SESSIONS: Final = Operation(
    command="close-sessions",
    library_calls=frozenset({"close_session", "list_sessions"}),
    service="fabric",
    verb="close",
    noun="SQL session(s)",
    project_scoped=False,
    parse_line=_session_line,
    target_from_report=_session_from_report,
    never=_never_session,
    confirmation=_scope_word,
    bulk=_close_sessions,
    preflight=_list_sessions,
    preflight_lists="sessions",
    line=lambda target: " ".join(target_ids(target)),
)

# -- delete-workspaces -------------------------------------------------------------------


def _workspace_line(number: int, text: str, problem: str | None, scope: str | None) -> Line:
    return workspace_line(number, text, problem)


def _workspace_from_report(value: object, project_id: str | None) -> Target:
    if not isinstance(value, dict) or set(value) != {"project_id", "workspace_id"}:
        raise ValueError("target must be an object with project_id and workspace_id")
    try:
        project = check_project_id(value["project_id"])
        workspace = check_workspace_id(value["workspace_id"])
    except InvalidIdentifierError as exc:
        raise ValueError(str(exc)) from None
    if project_id is not None and project != project_id:
        raise ValueError(f"names project {project}, not --project-id {project_id}")
    return workspace


def _never_workspace(target: Target) -> str | None:
    if target == DEFAULT_WORKSPACE:
        return "the default workspace (id 0) is never deleted by this command"
    return None


def _project_word(endpoint: str, project_id: str | None, scope: str | None) -> tuple[str, str]:
    return "project id", project_id or ""


def _delete_workspaces(
    manager: SessionManager, targets: Targets, options: RunOptions
) -> BulkRun[Any]:
    return manager.delete_workspaces(
        targets,
        missing_ok=options.missing_ok,
        wait=options.wait,
        wait_timeout=options.wait_timeout,
    )


def _list_workspaces(manager: SessionManager, workspace_id: str | None) -> AsyncIterator[object]:
    return manager.list_workspaces(page_size=1)


DELETE_WORKSPACES: Final = Operation(
    command="delete-workspaces",
    library_calls=frozenset({"delete_workspace", "list_workspaces"}),
    service="modelarts",
    verb="delete",
    noun="workspace(s)",
    project_scoped=True,
    parse_line=_workspace_line,
    target_from_report=_workspace_from_report,
    never=_never_workspace,
    confirmation=_project_word,
    bulk=_delete_workspaces,
    preflight=_list_workspaces,
    preflight_lists="workspaces",
    line=str,
)

# -- sweep-sessions and sweep-workspaces -------------------------------------------------


def _sweep_sessions(manager: SessionManager, request: SweepRequest) -> BulkRun[Any]:
    if request.scope is None:
        raise ValueError("sweep-sessions needs --workspace-id")
    chosen = request.filters
    return manager.sweep_sessions(
        request.scope,
        status=chosen.status,
        older_than=chosen.older_than.delta if chosen.older_than else None,
        protected=request.protected,
        dry_run=request.dry_run,
        on_progress=request.on_progress,
    )


def _sweep_workspaces(manager: SessionManager, request: SweepRequest) -> BulkRun[Any]:
    chosen = request.filters
    return manager.sweep_workspaces(
        name=chosen.name,
        status=chosen.status,
        older_than=chosen.older_than.delta if chosen.older_than else None,
        protected=request.protected,
        dry_run=request.dry_run,
        wait=request.options.wait,
        wait_timeout=request.options.wait_timeout,
        on_progress=request.on_progress,
    )


SWEEP_SESSIONS: Final = attrs.evolve(
    CLOSE_SESSIONS,
    command="sweep-sessions",
    library_calls=frozenset({"close_session", "list_sessions", "sweep_sessions"}),
    sweep=_sweep_sessions,
)
SWEEP_WORKSPACES: Final = attrs.evolve(
    DELETE_WORKSPACES,
    command="sweep-workspaces",
    library_calls=frozenset({"delete_workspace", "list_workspaces", "sweep_workspaces"}),
    sweep=_sweep_workspaces,
)

#: Every destructive command, in the order ``--help`` lists them.
OPERATIONS: Final = (CLOSE_SESSIONS, DELETE_WORKSPACES, SWEEP_SESSIONS, SWEEP_WORKSPACES)
BY_COMMAND: Final = {op.command: op for op in OPERATIONS}

# -- list-sessions and list-workspaces ---------------------------------------------------


@attrs.frozen(kw_only=True)
class Lister:
    """One list command: what it lists, and the command whose input its lines are.

    Attributes:
        command: The subcommand.
        deleter: The command that reads its lines (and whose service, endpoint flag and
            project rules it shares).
        noun: What it lists, counted.
        items: Starts the library's listing, given the workspace (``--workspace-id``)
            and the filters (those the service applies; the rest are applied here).
        target: A listed model as a target of ``deleter``.
        names: The ids (and name) a listed model is known by: any of them protected, and
            ``deleter`` refuses it.
        never: Why ``deleter`` never deletes a listed model whatever is protected (the
            default workspace), or ``None``.
    """

    command: str
    deleter: Operation
    noun: str
    items: Callable[[SessionManager, str | None, Filters], AsyncIterator[Any]]
    target: Callable[[Any], Target]
    names: Callable[[Any], tuple[str | None, ...]]
    never: Callable[[Any], str | None]


def _listed_sessions(
    manager: SessionManager, workspace_id: str | None, filters: Filters
) -> AsyncIterator[Any]:
    if workspace_id is None:
        raise ValueError("list-sessions needs --workspace-id")
    return manager.list_sessions(workspace_id, status=filters.status)


def _listed_workspaces(
    manager: SessionManager, workspace_id: str | None, filters: Filters
) -> AsyncIterator[Any]:
    return manager.list_workspaces(name=filters.name)


def _default_workspace(workspace: Any) -> str | None:
    # The library's rule (a sweep never selects it): the id "0", or the name "default"
    # in any case and spacing.
    if (
        workspace.workspace_id == DEFAULT_WORKSPACE
        or (workspace.name or "").strip().casefold() == "default"
    ):
        return "the default workspace: never deleted"
    return None


LIST_SESSIONS: Final = Lister(
    command="list-sessions",
    deleter=CLOSE_SESSIONS,
    noun="SQL session(s)",
    items=_listed_sessions,
    target=lambda session: (session.workspace_id, session.session_id),
    names=lambda session: target_ids((session.workspace_id, session.session_id)),
    never=lambda session: None,
)
LIST_WORKSPACES: Final = Lister(
    command="list-workspaces",
    deleter=DELETE_WORKSPACES,
    noun="workspace(s)",
    items=_listed_workspaces,
    target=lambda workspace: workspace.workspace_id,
    names=lambda workspace: (workspace.workspace_id, workspace.name),
    never=_default_workspace,
)
