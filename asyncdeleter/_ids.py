"""Identifier validation: nothing unvalidated reaches a URL.

Ids in a path, a bulk run's items (``session_target``, ``workspace_target``: public as
``check_session_target`` and ``check_workspace_id``), and a listing's filters
(``list_query``, ``known_status``) are all checked here, before any I/O.

The API reference allows letters, digits and hyphens only. The check deletes every
allowed character and demands nothing be left: ASCII-only by construction (``str.isalnum``
alone would let ``"٣"`` or ``"é"`` through), no anchors to slip a newline past, and no
regular expression to compile at import or run per call.
"""

from __future__ import annotations

import string
from typing import Final

from asyncdeleter._config import check_header_value
from asyncdeleter._errors import InvalidIdentifierError

__all__ = [
    "FABRIC_ID_MAX",
    "MODELARTS_ID_MAX",
    "SESSION_STATUSES",
    "WORKSPACE_STATUSES",
    "known_status",
    "list_query",
    "session_target",
    "validate_id",
    "workspace_target",
]

#: DataArts Fabric workspace and session ids: 1 to 36 characters (seed page).
FABRIC_ID_MAX: Final = 36
#: ModelArts project ids: 1 to 64 characters; workspace ids are treated the same
#: (docs/api-facts.md, section 2).
MODELARTS_ID_MAX: Final = 64

#: The statuses ListSqlSessions filters by (API reference).
SESSION_STATUSES: Final = frozenset({"RUNNING", "CLOSED", "WAITING", "CREATING", "FAIL"})
#: The statuses a workspace can have (docs/api-facts.md, section 5).
WORKSPACE_STATUSES: Final = frozenset({"CREATE_FAILED", "NORMAL", "DELETING", "DELETE_FAILED"})

_ALLOWED_CHARS: Final = string.ascii_letters + string.digits + "-"
_DELETE_ALLOWED: Final = str.maketrans("", "", _ALLOWED_CHARS)


def validate_id(parameter: str, value: object, max_length: int) -> str:
    """Return ``value`` if it is a safe identifier, else raise.

    Args:
        parameter: The parameter's name, for the message.
        value: What the caller passed.
        max_length: The longest value the API accepts.

    Returns:
        ``value`` as a plain ``str`` (a ``str`` subclass is copied to one, so that its own
        ``__format__`` or ``__str__`` can never put something else into a URL).

    Raises:
        InvalidIdentifierError: ``value`` is not a ``str`` of 1 to ``max_length`` letters,
            digits and hyphens.
    """
    if isinstance(value, str):
        text = str.__str__(value)  # an exact str, whatever the subclass overrides
        if 0 < len(text) <= max_length and not text.translate(_DELETE_ALLOWED):
            return text
    raise InvalidIdentifierError(parameter, value, _reason(value, max_length))


def _reason(value: object, max_length: int) -> str:
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    bad = next(ch for ch in value if ch not in _ALLOWED_CHARS)
    return (
        f"only ASCII letters, digits and hyphens are allowed; found {bad!r} "
        f"at position {value.index(bad)}"
    )


def known_status(value: str | None, known: frozenset[str]) -> str | None:
    """Return a status filter if it is one of the ``known`` statuses (or ``None``), else raise.

    Raises:
        InvalidIdentifierError: A status the service does not know.
    """
    if value is not None and value not in known:
        raise InvalidIdentifierError("status", value, f"must be one of {', '.join(sorted(known))}")
    return value


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
