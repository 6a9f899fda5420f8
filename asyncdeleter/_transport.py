"""The transport seam: what the request path needs to know about aiohttp, in one place.

The middleware that owns aiohttp's silent resend, the capped body read, the one predicate
that says whether a failed attempt may have been sent, and the deadline of an attempt.
(Errors are translated into the package's tree in ``_errors.translate_client_error``.)
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiohttp

from asyncdeleter._config import MAX_BODY_BYTES

__all__ = ["MIDDLEWARES", "Expiry", "dropped", "may_have_been_sent", "read_capped"]


class _DroppedConnectionError(aiohttp.ClientConnectionError):
    """A connection that dropped after the request may have been sent."""


async def _own_every_attempt(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Client middleware: make every resend ours to count.

    Since 3.10 aiohttp silently resends an idempotent request once when a reused
    connection drops. For a DELETE that hides an attempt which may already have deleted
    the resource, so its 404 would look like "was never there". Re-raising the drop as an
    error type aiohttp does not resend on hands the decision (and the count) to our retry
    loop, which knows that a 404 after a dropped attempt means success.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # never connected: nothing was sent, aiohttp does not resend these anyway
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        dropped = str(exc) or type(exc).__name__
    # Outside the except block, so the original does not ride along as __context__.
    raise _DroppedConnectionError(dropped)


MIDDLEWARES: Final = (_own_every_attempt,)


async def read_capped(response: aiohttp.ClientResponse, chunks: list[bytes]) -> None:
    """Read the body into ``chunks`` up to ``MAX_BODY_BYTES``, keeping what arrived if cut."""
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES - size)
        if not chunk:
            return
        chunks.append(chunk)
        size += len(chunk)
    response.close()  # do not drain (or pool) a connection with an unbounded body


class Expiry:
    """The deadline of one attempt: cancels its task, and tells that cancellation apart."""

    __slots__ = ("cancelling", "deadline", "fired", "task")

    def __init__(self, task: asyncio.Task[Any] | None, deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False
        # Cancellations already requested when the attempt began (asyncio.timeout's rule):
        # one that arrives on top of the deadline's is the caller's, and is not swallowed.
        self.cancelling = task.cancelling() if task is not None else 0

    def fire(self) -> None:
        self.fired = True
        if self.task is not None:
            self.task.cancel()

    def judge(self, exc: BaseException) -> BaseException:
        """What an attempt's exception means: a transport failure to judge, or re-raised.

        Raises:
            BaseException: ``exc`` itself, when it is not a transport failure or the
                deadline (a real cancellation, a bug).
        """
        if isinstance(exc, asyncio.CancelledError):
            if not self.fired or self.task is None or self.task.uncancel() > self.cancelling:
                raise exc
            return TimeoutError("the call's max_time ran out")
        if isinstance(exc, TimeoutError | aiohttp.ClientError | OSError):
            return exc
        raise exc


def may_have_been_sent(exc: BaseException) -> bool:
    """Whether a failed attempt may have put the request on the wire.

    The one place that decides it. aiohttp raises these before writing anything: a
    refused, unresolvable or TLS-failing connect (``ClientConnectorError`` and its
    subclasses) and a connect phase that ran out of time (``ConnectionTimeoutError``;
    the call's deadline is set so the connect phase always meets its own timeout first).
    Anything else happened with a connection in hand.
    """
    return not isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def dropped(exc: BaseException) -> bool:
    """A connection that broke after the request may have gone out (not a failed connect)."""
    if isinstance(exc, _DroppedConnectionError | aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and not isinstance(
        exc, aiohttp.ClientConnectorError
    )
