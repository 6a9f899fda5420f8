"""Typed results and the package's own cattrs ``Converter``.

The global cattrs converter is never configured: users may have their own hooks there.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs
import cattrs

__all__ = [
    "DeletedWorkspace",
    "ErrorBody",
    "converter",
    "deleted_workspace",
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


class ErrorBody:
    """The fields of an error answer, whichever of the two shapes it came in.

    Internal and built per error answer: a plain slotted class (no attrs class creation
    at import time).

    Attributes:
        error_code: ``common.01000001``, ``APIG.1002``, ``403``, ...; ``None`` if absent.
        error_msg: The message; ``None`` if absent.
        solution_msg: The suggested fix; ``None`` if absent (it usually is).
    """

    __slots__ = ("error_code", "error_msg", "solution_msg")

    def __init__(
        self,
        *,
        error_code: str | None = None,
        error_msg: str | None = None,
        solution_msg: str | None = None,
    ) -> None:
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
    return ErrorBody(
        error_code=_text(data.get("error_code")) or _text(nested.get("code")),
        error_msg=_text(data.get("error_msg")) or _text(nested.get("message")),
        solution_msg=_text(data.get("solution_msg")),
    )


def _structure_deleted_workspace(data: Any, _: type[DeletedWorkspace]) -> DeletedWorkspace:
    return DeletedWorkspace(
        workspace_id=str(data["workspace_id"]),
        request_id=_text(data.get("request_id")),
        already_gone=bool(data.get("already_gone", False)),
    )


#: The package's own converter. ``converter.unstructure(obj)`` gives plain dicts.
converter: Final = cattrs.Converter()
converter.register_structure_hook(ErrorBody, _structure_error_body)
converter.register_structure_hook(DeletedWorkspace, _structure_deleted_workspace)


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


def deleted_workspace(requested_id: str, request_id: str | None) -> DeletedWorkspace:
    """Build the result of a successful ``DeleteWorkspace``.

    A 200 means the workspace is gone whatever the body says (the documented body only
    echoes the id), so the result names the id that was requested and the body is not
    parsed: an unreadable, truncated or odd body cannot turn a success into an error.
    Built directly (this is the success hot path); ``converter`` structures and
    unstructures ``DeletedWorkspace`` for callers who serialise results.
    """
    return DeletedWorkspace(workspace_id=requested_id, request_id=request_id)
