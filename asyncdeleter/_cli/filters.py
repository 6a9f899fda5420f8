"""What the list and sweep commands select: ``--status``, ``--older-than``, ``--name``.

``--older-than`` takes a positive whole number and one unit (``90s``, ``15m``, ``2h``,
``7d``) and nothing else: a typo must be a usage error, never a silently different age.
The list commands apply the filters here; the sweeps hand them to the library, whose
rules these mirror (an unknown age never matches; ``--name`` is a prefix, matched
exactly; "now" is fixed once, when the command starts).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs
import click

__all__ = ["SESSION_STATUSES", "WORKSPACE_STATUSES", "Age", "AgeType", "Filters", "parse_age"]

#: The statuses the services document (API.md); ``--status`` takes one of them.
SESSION_STATUSES: Final = ("RUNNING", "WAITING", "CREATING", "CLOSED", "FAIL")
WORKSPACE_STATUSES: Final = ("NORMAL", "DELETING", "DELETE_FAILED", "CREATE_FAILED")
_AGE: Final = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_WORDS: Final = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_LONGEST: Final = timedelta(days=100 * 365)


@attrs.frozen
class Age:
    """An ``--older-than`` value: as typed (for messages and reports) and as a duration."""

    text: str
    delta: timedelta

    def words(self) -> str:
        """``2h`` as ``2 hours``."""
        number, unit = self.text[:-1], self.text[-1]
        return f"{number} {_WORDS[unit]}{'' if number == '1' else 's'}"


def parse_age(text: str) -> Age:
    """``90s``, ``15m``, ``2h`` or ``7d`` as an ``Age``.

    Raises:
        ValueError: Anything else (no sign, no spaces, no fractions, one unit), or an age
            past a hundred years.
    """
    found = _AGE.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not an age: give a positive whole number and one unit, "
            "s, m, h or d (90s, 15m, 2h, 7d)"
        )
    delta = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if delta > _LONGEST:
        raise ValueError(f"{text!r} is longer than a hundred years")
    return Age(text, delta)


if TYPE_CHECKING:
    _AgeParam = click.ParamType[Age]
else:  # click before 8.2 has no generic ParamType
    _AgeParam = click.ParamType


class AgeType(_AgeParam):
    """``--older-than``: a usage error (exit 2) naming the flag for a malformed age."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Age:
        if isinstance(value, Age):
            return value
        try:
            return parse_age(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@attrs.frozen(kw_only=True)
class Filters:
    """What to select: every item that passes all the filters given."""

    status: str | None = None
    older_than: Age | None = None
    name: str | None = None

    def flags(self) -> str:
        """The filters as flags, for messages (``--status RUNNING --older-than 2h``)."""
        parts = [
            f"--{flag} {value}"
            for flag, value in (
                ("name", self.name),
                ("status", self.status),
                ("older-than", self.older_than.text if self.older_than else None),
            )
            if value is not None
        ]
        return " ".join(parts) or "no filter"

    def record(self) -> dict[str, str | None]:
        """The filters as a report header records them."""
        return {
            "name": self.name,
            "status": self.status,
            "older_than": self.older_than.text if self.older_than else None,
        }

    def matches(self, item: Any, now: datetime) -> bool:
        """Whether a listed ``SqlSession`` or ``Workspace`` passes (an unknown age never does)."""
        if self.status is not None and item.status != self.status:
            return False
        if self.older_than is not None and (
            item.created_at is None or now - item.created_at <= self.older_than.delta
        ):
            return False
        return self.name is None or (getattr(item, "name", None) or "").startswith(self.name)
