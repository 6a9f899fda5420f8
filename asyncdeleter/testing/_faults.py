"""Faults the emulator injects on demand: what goes wrong, when, and how it is done."""

from __future__ import annotations

import asyncio
import enum
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping

import attrs
from aiohttp import web

from asyncdeleter.testing._bodies import JSON, error_answer

__all__ = ["Fault", "FaultKind", "FaultRules", "misbehave"]


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


def _upper(method: str | None) -> str | None:
    return None if method is None else method.upper()


def _headers(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class Fault:
    """One rule of misbehaviour. The first rule that matches a request applies.

    Attributes:
        kind: What happens (see ``FaultKind``).
        status: The status answered by ``STATUS``, ``TRUNCATE`` and ``GARBAGE``.
        probability: The chance that a matching request is hit (seeded by the emulator).
        nth: Hit only the n-th request (1-based) with this method to each path, or any of
            several n.
        path: Only requests to exactly this path (without the query string).
        service: Only ``"fabric"`` or ``"modelarts"`` requests.
        api: Only requests to this API: ``"CloseSqlSession"``, ``"ListSqlSessions"``,
            ``"ShowSqlSession"``, ``"DeleteWorkspace"``, ``"ListWorkspace"`` or
            ``"ShowWorkspace"``.
        method: Only requests with this HTTP method, such as ``"GET"``.
        times: Hit at most this many requests in all, then stay quiet.
        commit: Apply the deletion before misbehaving (a 500 or a drop *after* the work
            was done, which is what makes a retried delete meet a 404). No effect on reads.
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
    api: str | None = None
    method: str | None = attrs.field(default=None, converter=_upper)
    times: int | None = None
    commit: bool = False
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    stall_seconds: float = 3600.0
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)


class FaultRules:
    """The rules in force, and how often each has hit; picks the rule for a request.

    Args:
        faults: The rules, in order.
        rng: The emulator's seeded random source.
    """

    def __init__(self, faults: Iterable[Fault], rng: random.Random) -> None:
        self.rules: list[Fault] = list(faults)
        self._random = rng
        self._hits: dict[int, int] = defaultdict(int)
        self._path_hits: dict[tuple[str, str], int] = defaultdict(int)

    def clear(self) -> None:
        """Drop every rule and its count."""
        self.rules.clear()
        self._hits.clear()

    def forget_paths(self) -> None:
        """Restart the per-path counts ``nth`` is judged by."""
        self._path_hits.clear()

    def pick(self, service: str | None, api: str | None, method: str, path: str) -> Fault | None:
        """The first rule that hits this request, or ``None``."""
        if not self.rules:
            return None
        nth = 0
        if any(f.nth is not None for f in self.rules):
            self._path_hits[method, path] += 1
            nth = self._path_hits[method, path]
        for index, fault in enumerate(self.rules):
            if (
                (fault.service is not None and fault.service != service)
                or (fault.api is not None and fault.api != api)
                or (fault.method is not None and fault.method != method)
                or (fault.path is not None and fault.path != path)
                or (fault.nth is not None and nth not in fault.nth)
                or (fault.times is not None and self._hits[index] >= fault.times)
            ):
                continue
            if fault.probability < 1.0 and self._random.random() >= fault.probability:
                continue
            self._hits[index] += 1
            return fault
        return None


async def misbehave(
    fault: Fault, request: web.BaseRequest, rng: random.Random
) -> tuple[int | None, web.StreamResponse]:
    """Carry out ``fault``; return the status sent (``None``: none) and the response.

    A response this prepares itself is returned prepared; aiohttp then sends nothing
    more. After an abort, the returned response goes nowhere.
    """
    transport = request.transport
    if fault.kind is FaultKind.DROP:
        if transport is not None:
            transport.abort()
        return None, web.Response()
    if fault.kind is FaultKind.STALL:
        await asyncio.sleep(fault.stall_seconds)
        if transport is not None:
            transport.abort()
        return None, web.Response()
    if fault.kind is FaultKind.STATUS:
        content_type, body = error_answer(fault.status)
        if fault.body is not None:
            content_type, body = fault.content_type, fault.body
        return fault.status, _answer_with(fault, body, content_type)
    if fault.kind is FaultKind.GARBAGE:
        body = fault.body if fault.body is not None else rng.randbytes(64)
        return fault.status, _answer_with(fault, body, JSON)
    # TRUNCATE: promise more than is sent, then hang up.
    content_type, body = error_answer(fault.status)
    stream = web.StreamResponse(status=fault.status, headers={"X-Request-Id": uuid.uuid4().hex})
    stream.content_type = content_type
    stream.content_length = len(body) + 100
    await stream.prepare(request)
    await stream.write(body[: max(1, len(body) // 2)])
    if transport is not None:
        transport.abort()
    return fault.status, stream


def _answer_with(fault: Fault, body: bytes, content_type: str) -> web.Response:
    """A fault's answer: its status and body, ``Retry-After`` and any extra headers."""
    headers = {"X-Request-Id": uuid.uuid4().hex, "Content-Type": content_type}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    for name, value in fault.headers.items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    return web.Response(status=fault.status, body=body, headers=headers)
