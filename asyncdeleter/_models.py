"""Typed results and the package's own cattrs ``Converter``.

The global cattrs converter is never configured: users may have their own hooks there.
The read-side models (``Workspace``, ``SqlSession``) are structured by ``converter``:
renamed fields, times in the services' several formats (``_times.parse_time``), and
fields the documentation does not name kept in ``extra``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from asyncdeleter._times import parse_time

__all__ = [
    "DeletedWorkspace",
    "ErrorBody",
    "SessionPage",
    "SqlSession",
    "Workspace",
    "WorkspacePage",
    "converter",
    "parse_error_body",
]

# Both documented ranges end at 4096 characters; a hostile body gets no further.
_MAX_FIELD_CHARS: Final = 4096


@attrs.frozen(kw_only=True)
class DeletedWorkspace:
    """A ModelArts workspace that no longer exists.

    Attributes:
        workspace_id: The id of the deleted workspace.
        request_id: The ``X-Request-Id`` of the answer, for Huawei support.
        already_gone: ``True`` when the workspace was missing before this call
            (a first-attempt 404 with ``missing_ok=True``).
    """

    workspace_id: str
    request_id: str | None = None
    already_gone: bool = False
    confirmed: bool = False


@attrs.frozen(kw_only=True)
class Workspace:
    """A ModelArts workspace, as ListWorkspace and ShowWorkspace describe it.

    Attributes:
        workspace_id: Its id (the answer's ``id``); ``"0"`` is the default workspace.
        name: Its name (``default`` for the default workspace).
        status: ``NORMAL``, ``DELETING``, ``DELETE_FAILED``, ``CREATE_FAILED``, or
            whatever else the service says (kept as sent).
        status_info: Why it is in that status (the reason of a ``DELETE_FAILED``).
        created_at: ``create_time`` as an aware UTC ``datetime``; ``None`` when absent or
            unreadable (an unknown age never matches an age filter).
        updated_at: ``update_time``, likewise.
        description: Its description.
        owner: The user who owns it.
        auth_type: ``PUBLIC``, ``PRIVATE`` or ``INTERNAL``.
        enterprise_project_id: Its enterprise project.
        enterprise_project_name: Its enterprise project's name (the official SDK's
            WorkspaceResponse field).
        grants: The users granted access (ShowWorkspace only), as sent.
        extra: Every field the documentation does not name, as sent.
    """

    workspace_id: str
    name: str | None = None
    status: str | None = None
    status_info: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    description: str | None = None
    owner: str | None = None
    auth_type: str | None = None
    enterprise_project_id: str | None = None
    enterprise_project_name: str | None = None
    grants: tuple[Any, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class SqlSession:
    """A DataArts Fabric SQL session, as ListSqlSessions and ShowSqlSession describe it.

    Attributes:
        workspace_id: The Fabric workspace it belongs to (from the request: the answer
            does not repeat it).
        session_id: Its id.
        status: ``RUNNING``, ``CLOSED``, ``WAITING``, ``CREATING``, ``FAIL``, or whatever
            else the service says (kept as sent).
        created_at: ``create_time`` as an aware UTC ``datetime`` (ISO 8601, or epoch
            seconds or milliseconds); ``None`` when absent or unreadable.
        extra: Every field the documentation does not name, as sent.
    """

    workspace_id: str
    session_id: str
    status: str | None = None
    created_at: datetime | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class WorkspacePage:
    """One page of ListWorkspace (internal to listing)."""

    total: int | None
    items: tuple[Workspace, ...]


@attrs.frozen(kw_only=True)
class SessionPage:
    """One page of ListSqlSessions (internal to listing)."""

    total: int | None
    items: tuple[SqlSession, ...]


class ErrorBody:
    """The fields of an error answer, whichever of the two shapes it came in.

    Internal and built per error answer: a plain slotted class (no attrs class creation
    at import time).

    Attributes:
        error_code: ``common.01000001``, ``APIG.1002``, ``403``, ...; ``None`` if absent.
        error_msg: The message; ``None`` if absent.
        solution_msg: The suggested fix; ``None`` if absent (it usually is).
    """

    __slots__ = ("error_code", "error_msg", "service_shaped", "solution_msg")

    def __init__(
        self,
        *,
        error_code: str | None = None,
        error_msg: str | None = None,
        solution_msg: str | None = None,
        service_shaped: bool = False,
    ) -> None:
        # The services' own shape: a JSON object whose top-level error_code is a string
        # (the gateway's 403 has an integer; a proxy's page has none). Only that shape can
        # say a resource is missing (docs/api-facts.md, section 3).
        self.service_shaped = service_shaped
        self.error_code = error_code
        self.error_msg = error_msg
        self.solution_msg = solution_msg

    def _fields(self) -> tuple[str | None, str | None, str | None]:
        return (self.error_code, self.error_msg, self.solution_msg)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErrorBody):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking: not meant as a key

    def __repr__(self) -> str:
        return "ErrorBody(error_code={!r}, error_msg={!r}, solution_msg={!r})".format(
            *self._fields()
        )


EMPTY_ERROR_BODY: Final = ErrorBody()


def _text(value: object) -> str | None:
    # The 403 shape has an integer error_code; anything else of the wrong type is dropped.
    if isinstance(value, str):
        return value[:_MAX_FIELD_CHARS] or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _structure_error_body(data: Any, _: type[ErrorBody]) -> ErrorBody:
    if not isinstance(data, dict):
        return EMPTY_ERROR_BODY
    nested = data.get("error")
    if not isinstance(nested, dict):
        nested = {}
    code = data.get("error_code")
    return ErrorBody(
        error_code=_text(code) or _text(nested.get("code")),
        service_shaped=isinstance(code, str) and bool(code.strip()),
        error_msg=_text(data.get("error_msg")) or _text(nested.get("message")),
        solution_msg=_text(data.get("solution_msg")),
    )


def _structure_deleted_workspace(data: Any, _: type[DeletedWorkspace]) -> DeletedWorkspace:
    return DeletedWorkspace(
        workspace_id=str(data["workspace_id"]),
        request_id=_text(data.get("request_id")),
        already_gone=bool(data.get("already_gone", False)),
    )


def _structure_deleted_workspace_full(data: Any, cls: type[DeletedWorkspace]) -> DeletedWorkspace:
    result = _structure_deleted_workspace(data, cls)
    return attrs.evolve(result, confirmed=bool(data.get("confirmed", False)))


#: The package's own converter. ``converter.unstructure(obj)`` gives plain dicts (times as
#: ISO 8601 strings); ``converter.structure`` reads the services' JSON into the models.
converter: Final = cattrs.Converter()
converter.register_structure_hook(ErrorBody, _structure_error_body)
converter.register_structure_hook(DeletedWorkspace, _structure_deleted_workspace_full)
converter.register_structure_hook(datetime, lambda value, _: parse_time(value))
# Registered for the optional form too: cattrs' generic Optional dispatch would cost more
# than reading the time itself, once per item of every page.
converter.register_structure_hook(datetime | None, lambda value, _: parse_time(value))
converter.register_unstructure_hook(datetime, datetime.isoformat)


def _text_or_none(value: Any, _: object) -> str | None:
    # Ids, names and statuses: a string as sent; a number becomes its text; anything else
    # (a list, an object) is not one of these, and reads as absent.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _required_text(value: Any, _: object) -> str:
    text = _text_or_none(value, None)
    if text is None:
        raise ValueError(f"expected a string id, got {type(value).__name__}")
    return text


converter.register_structure_hook(str | None, _text_or_none)
converter.register_structure_hook(str, _required_text)


def _as_tuple(value: Any, _: object) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list) else ()


# The answers' names for our fields; every other key of an item goes to ``extra``.
_WORKSPACE_RENAMES: Final = {
    "workspace_id": "id",
    "created_at": "create_time",
    "updated_at": "update_time",
}
_SESSION_RENAMES: Final = {"created_at": "create_time"}


def _with_extra(cls: type[Any], renames: Mapping[str, str], skip: frozenset[str]) -> Any:
    """A structure hook for ``cls`` that renames fields and keeps unknown keys in ``extra``."""
    overrides = {name: override(rename=key) for name, key in renames.items()}
    overrides["extra"] = override(omit=True)
    if "grants" in attrs.fields_dict(cls):
        overrides["grants"] = override(struct_hook=_as_tuple)
    structure = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
    known = (
        frozenset(
            renames.get(field.name, field.name)
            for field in attrs.fields(cls)
            if field.name != "extra"
        )
        | skip
    )

    def hook(data: Any, _: object) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        item = structure(data, cls)
        if known.issuperset(data):
            return item  # the usual case: only documented fields
        extra = {key: value for key, value in data.items() if key not in known}
        return attrs.evolve(item, extra=extra)

    return hook


converter.register_structure_hook(
    Workspace, _with_extra(Workspace, _WORKSPACE_RENAMES, frozenset())
)
converter.register_structure_hook(
    SqlSession, _with_extra(SqlSession, _SESSION_RENAMES, frozenset({"workspace_id"}))
)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # Not JSON (an HTML gateway page, plain text, a truncated or garbage body), or
        # JSON nested deep enough to exhaust the parser: there is no structure to read.
        return None


def parse_error_body(raw: bytes) -> ErrorBody:
    """Read an error answer of either shape; never raises, whatever the bytes."""
    if not raw:
        return EMPTY_ERROR_BODY
    return converter.structure(_loads(raw), ErrorBody)
