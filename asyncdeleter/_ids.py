"""Identifier validation: nothing unvalidated reaches a URL.

The API reference allows letters, digits and hyphens only. The check deletes every
allowed character and demands nothing be left: ASCII-only by construction (``str.isalnum``
alone would let ``"٣"`` or ``"é"`` through), no anchors to slip a newline past, and no
regular expression to compile at import or run per call.
"""

from __future__ import annotations

import string
from typing import Final

from asyncdeleter._errors import InvalidIdentifierError

__all__ = [
    "FABRIC_ID_MAX",
    "MODELARTS_ID_MAX",
    "known_status",
    "validate_id",
]

#: DataArts Fabric workspace and session ids: 1 to 36 characters (seed page).
FABRIC_ID_MAX: Final = 36
#: ModelArts project ids: 1 to 64 characters; workspace ids are treated the same
#: (docs/api-facts.md, section 2).
MODELARTS_ID_MAX: Final = 64

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
