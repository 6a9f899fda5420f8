"""What the two services' states share: query parameters, answers, default times.

Written apart from the client on purpose, like the rest of the emulator: the server reads
the query string with its own rules, so a client that sends something else is caught.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Final, TypeAlias

from asyncdeleter.testing._bodies import flat_body

__all__ = [
    "NOW",
    "Answer",
    "BadParameterError",
    "Default",
    "bad_request",
    "choice",
    "integer",
    "iso_now",
    "ok",
    "sort_key",
    "text",
]

#: ``(status, body)``: the body is JSON, or empty for an answer without one.
Answer: TypeAlias = tuple[int, bytes]

_DIGITS: Final = re.compile(r"[0-9]{1,19}")


class Default(enum.Enum):
    """A default the emulator fills in when seeding, told apart from any raw value."""

    #: The emulator's current time, in the service's usual format.
    NOW = "now"

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


#: Seed with the current time (any other value, ``None`` included, is answered verbatim).
NOW: Final = Default.NOW


class BadParameterError(ValueError):
    """A query parameter the service refuses with a 400."""


def integer(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    """The integer parameter ``name``, from ``low`` to ``high``, or ``default`` if absent.

    Raises:
        BadParameterError: It is not a plain decimal integer, or out of range.
    """
    raw = query.get(name)
    if raw is None:
        return default
    if _DIGITS.fullmatch(raw) is None or not low <= int(raw) <= high:
        raise BadParameterError(f"parameter {name} must be an integer from {low} to {high}")
    return int(raw)


def choice(
    query: Mapping[str, str], name: str, choices: Collection[str], default: str | None = None
) -> str | None:
    """The parameter ``name``, which must be one of ``choices``; ``default`` if absent.

    Raises:
        BadParameterError: It is present but not one of ``choices``.
    """
    raw = query.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise BadParameterError(f"parameter {name} must be one of {', '.join(sorted(choices))}")
    return raw


def text(query: Mapping[str, str], name: str, *, high: int) -> str | None:
    """The string parameter ``name``, 1 to ``high`` characters, or ``None`` if absent.

    Raises:
        BadParameterError: It is empty or longer than ``high``.
    """
    raw = query.get(name)
    if raw is not None and not 1 <= len(raw) <= high:
        raise BadParameterError(f"parameter {name} must be 1 to {high} characters long")
    return raw


def ok(payload: object) -> Answer:
    """A 200 with ``payload`` as JSON (raw seeded values that are not JSON become strings)."""
    return 200, json.dumps(payload, default=str).encode()


def bad_request(error_code: str, message: str) -> Answer:
    """A 400 in the flat shape."""
    return 400, flat_body(error_code, message)


def iso_now(clock: Callable[[], float]) -> str:
    """``clock``'s time as ISO 8601 UTC to the second, such as ``2026-11-23T10:00:00Z``."""
    return dt.datetime.fromtimestamp(clock(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sort_key(value: object) -> tuple[int, float, str]:
    """Order raw values of any type without comparing across types.

    Numbers come first by value, then strings, then anything else (``None`` included).
    """
    if isinstance(value, bool):
        return (2, 0.0, repr(value))
    if isinstance(value, int | float):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value)
    return (2, 0.0, repr(value))
