"""Sweeps: which listed items a sweep selects. Filters that fail closed, in one place.

A sweep lists, filters and acts in one streamed bulk run (``SessionManager.sweep_*``);
this module decides, for each listed item, whether it is selected:

- ``protected`` ids and names (compared case-insensitively) are never selected, nor is
  the default ModelArts workspace (id ``"0"``, name ``default``), whatever the filters;
- ``status`` must equal the item's status;
- ``older_than`` needs a known creation time: an item whose age is unknown (no time, or
  one we cannot read) never matches; ``now`` is fixed once, when the sweep starts;
- ``name`` is a prefix of the workspace's name, matched exactly here (the service's own
  ``name`` filter is fuzzy and only narrows the listing);
- ``where`` is the caller's predicate on the model, asked last: a plain callable (an
  ``async def`` is refused when the sweep is built), and only ``True`` selects (any other
  answer, a coroutine, ``None`` or a count, selects nothing, and is reported once);
- a session sweep in a workspace that is itself protected is refused outright.

The listing hears of the run's deletions (the manager's deletion watch), so each matching
item is met once even though deleting moves the pages; a dry run yields ``planned``
outcomes (``planned``) and sends nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from asyncdeleter._calls import Answer, Tracker
from asyncdeleter._config import check_hook
from asyncdeleter._errors import ConfigurationError
from asyncdeleter._models import SqlSession, Workspace

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "SweepFilter",
    "planned",
    "protected_names",
    "select_sessions",
    "select_workspaces",
]

_log: Final = logging.getLogger("asyncdeleter")

#: The default ModelArts workspace: never swept.
DEFAULT_WORKSPACE_ID: Final = "0"
DEFAULT_WORKSPACE_NAME: Final = "default"


def protected_names(protected: Iterable[str]) -> frozenset[str]:
    """Protected ids and names, case-folded for comparison.

    Raises:
        ConfigurationError: ``protected`` is a single string (a common slip: it would
            protect its characters) or holds something that is not a non-empty string.
    """
    if isinstance(protected, str):
        raise ConfigurationError("protected must be a collection of ids or names, not one str")
    names = []
    for name in protected:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"protected ids and names must be non-empty str, got {name!r}")
        names.append(name.strip().casefold())
    return frozenset(names)


@attrs.frozen(kw_only=True)
class SweepFilter:
    """What a sweep selects (see the module docstring for each rule).

    Attributes:
        status: Only items in this status.
        older_than: Only items created longer ago than this.
        name_prefix: Only workspaces whose name starts with this.
        where: Only items for which this returns true.
        protected: Ids and names never selected, case-folded.
    """

    status: str | None = None
    older_than: timedelta | None = attrs.field(default=None)
    name_prefix: str | None = None
    where: Callable[[Any], object] | None = attrs.field(default=None)
    protected: frozenset[str] = frozenset()
    # Whether a non-bool answer of ``where`` was reported yet (once per filter).
    _told: list[bool] = attrs.field(factory=list, init=False, eq=False, repr=False)

    @where.validator
    def _check_where(self, _: object, value: Callable[[Any], object] | None) -> None:
        # An async def would return a coroutine, which is truthy: it would select everything.
        if value is not None:
            check_hook("where", value)

    @older_than.validator
    def _check_age(self, _: object, value: timedelta | None) -> None:
        if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
            raise ConfigurationError(f"older_than must be a timedelta >= 0, got {value!r}")

    def _common(self, item: SqlSession | Workspace, now: datetime) -> bool:
        if self.status is not None and item.status != self.status:
            return False
        if self.older_than is not None and (
            item.created_at is None or now - item.created_at <= self.older_than
        ):
            return False  # an unknown age never matches: fail closed
        if self.where is None:
            return True
        chosen = self.where(item)
        if isinstance(chosen, bool):
            return chosen
        # Fail closed: anything but a bool (a coroutine, None, a count) selects nothing.
        if not self._told:
            self._told.append(True)
            _log.warning(
                "the sweep's where= returned %s, not a bool: the item is not selected "
                "(return True or False)",
                type(chosen).__name__,
            )
        if inspect.iscoroutine(chosen):
            chosen.close()  # never awaited: closed, so no "never awaited" warning
        return False

    def check_workspace(self, workspace_id: str) -> None:
        """Refuse a session sweep in a workspace that is itself protected.

        Raises:
            ConfigurationError: ``protected`` names the workspace.
        """
        if workspace_id.casefold() in self.protected:
            raise ConfigurationError(
                f"workspace {workspace_id} is protected: a sweep never touches its sessions"
            )

    def session(self, session: SqlSession, now: datetime) -> bool:
        """Whether a sweep selects ``session``."""
        if session.session_id.strip().casefold() in self.protected:
            return False
        return self._common(session, now)

    def workspace(self, workspace: Workspace, now: datetime) -> bool:
        """Whether a sweep selects ``workspace``; never the default one."""
        # Compared as protected entries are: stripped and case-folded.
        name = (workspace.name or "").strip().casefold()
        if (
            workspace.workspace_id == DEFAULT_WORKSPACE_ID
            or name == DEFAULT_WORKSPACE_NAME
            or workspace.workspace_id.strip().casefold() in self.protected
            or (name and name in self.protected)
        ):
            return False
        if self.name_prefix is not None and not (workspace.name or "").startswith(self.name_prefix):
            return False
        return self._common(workspace, now)


async def select_sessions(
    listing: AsyncIterator[SqlSession], chosen: SweepFilter, workspace_id: str
) -> AsyncIterator[tuple[str, str]]:
    """The ``(workspace_id, session_id)`` of each listed session ``chosen`` selects.

    "Now" is fixed once, when the run starts reading.
    """
    now = datetime.now(UTC)
    async for session in listing:
        if chosen.session(session, now):
            yield (workspace_id, session.session_id)


async def select_workspaces(
    listing: AsyncIterator[Workspace], chosen: SweepFilter
) -> AsyncIterator[str]:
    """The id of each listed workspace ``chosen`` selects; "now" as for ``select_sessions``."""
    now = datetime.now(UTC)
    async for workspace in listing:
        if chosen.workspace(workspace, now):
            yield workspace.workspace_id


async def planned(_: object, __: Tracker) -> Answer:
    """A dry run's item: it would have been acted on, and nothing is sent."""
    return Answer(False, 0, None, planned=True)
