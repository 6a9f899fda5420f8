"""Reading the services' timestamps: one function, and it never guesses an age.

The formats met (docs/api-facts.md, section 5): ModelArts sends integers (epoch milliseconds; older
answers epoch seconds), Fabric's ``create_time`` is an undocumented string, seen as ISO
8601 and as epoch seconds or milliseconds in text. Anything else is unknown, and an unknown
time is ``None``, so that an age filter, which fails closed, never matches it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_time", "plain_number"]

#: Epoch values above this are milliseconds (1e11 seconds is the year 5138).
_MILLISECONDS_ABOVE: Final = 1e11
#: Nothing the services made can predate this (2000-01-01) or lie past 9999.
_EARLIEST: Final = 946_684_800.0
_LATEST: Final = 253_402_300_799.0
_EARLIEST_YEAR: Final = 2000


def parse_time(value: object) -> datetime | None:  # noqa: PLR0911 - one return per format
    """Return ``value`` as an aware UTC ``datetime``, or ``None`` if it is not a time we read.

    Accepted: an int or float of epoch seconds or milliseconds (values above 1e11 are
    milliseconds), the same as a string of ASCII digits, and ISO 8601 text (``Z`` or an
    offset; a time without one is taken as UTC, the services' zone). Booleans, NaN,
    infinities, times before 2000 or after 9999, and any other text are unknown.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if plain_number(text):
        return _from_epoch(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elif parsed.tzinfo is not UTC:
        try:
            parsed = parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
    # The same bounds as for epoch values: 2000 to 9999.
    return parsed if parsed.year >= _EARLIEST_YEAR else None


def plain_number(text: str) -> bool:
    """ASCII digits, with at most one decimal point between digits (``"3"``, ``"2.5"``).

    The one reading of a number in text: epoch times here, ``Retry-After`` in ``_retry``.
    """
    whole, dot, fraction = text.partition(".")
    return (
        whole.isascii()
        and whole.isdigit()
        and (not dot or (fraction.isascii() and fraction.isdigit()))
    )


def _from_epoch(value: float | int | str) -> datetime | None:
    try:
        seconds = float(value)
    except OverflowError:  # an int (or digits) too large for a float: no time of ours
        return None
    if not math.isfinite(seconds):
        return None
    if seconds > _MILLISECONDS_ABOVE:
        seconds /= 1000.0
    if not _EARLIEST <= seconds <= _LATEST:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)
