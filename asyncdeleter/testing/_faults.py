"""Faults the emulator injects on demand: what goes wrong, and when."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

__all__ = ["Fault", "FaultKind"]


class FaultKind(enum.StrEnum):
    """What a fault does to the answer."""

    #: Answer ``status`` with the service's body for it (or ``body`` if given).
    STATUS = "status"
    #: Close the connection without answering.
    DROP = "drop"
    #: Answer nothing for ``stall_seconds`` (past any sane read timeout), then normally.
    STALL = "stall"
    #: Promise a longer body than is sent, then close the connection.
    TRUNCATE = "truncate"
    #: Answer ``status`` with random bytes labelled as JSON.
    GARBAGE = "garbage"


def _nth(value: int | Iterable[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return frozenset({value})
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Fault:
    """One rule of misbehaviour. The first rule that matches a request applies.

    Attributes:
        kind: What happens (see ``FaultKind``).
        status: The status answered by ``STATUS``, ``TRUNCATE`` and ``GARBAGE``.
        probability: The chance that a matching request is hit (seeded by the emulator).
        nth: Hit only the n-th request (1-based) to each path, or any of several n.
        path: Only requests to exactly this path.
        service: Only ``"fabric"`` or ``"modelarts"`` requests.
        times: Hit at most this many requests in all, then stay quiet.
        commit: Apply the deletion before misbehaving (a 500 or a drop *after* the work
            was done, which is what makes a retried delete meet a 404).
        retry_after: A ``Retry-After`` header value to send with ``STATUS``.
        body: A body to send instead of the service's usual one.
        content_type: The content type of ``body``.
        stall_seconds: How long ``STALL`` keeps the client waiting.
        headers: Extra response headers for ``STATUS`` and ``GARBAGE`` answers.
    """

    kind: FaultKind = FaultKind.STATUS
    status: int = 500
    probability: float = 1.0
    nth: frozenset[int] | None = attrs.field(default=None, converter=_nth)
    path: str | None = None
    service: str | None = None
    times: int | None = None
    commit: bool = False
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    stall_seconds: float = 3600.0
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
