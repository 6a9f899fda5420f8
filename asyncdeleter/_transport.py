"""The transport seam: the one module of the client that knows aiohttp.

It owns the pool and its lifecycle (the session, opened on first use, bound to one event
loop, closed once: ``Transport.check_usable``), sends one attempt and reads its answer
(``Transport.exchange``), bounds the attempt by the call's deadline, and says what a
failure means: whether the
request may have been sent (``may_have_been_sent``), whether the connection dropped after
sending (``dropped``), and which typed error it becomes (``translate_client_error``, the
only place aiohttp's exceptions are translated; their ``RequestInfo`` holds the request
headers, so they are never chained).
"""

from __future__ import annotations

import asyncio
import re
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
import yarl

from asyncdeleter._config import MAX_BODY_BYTES, Timeouts
from asyncdeleter._errors import (
    RAW_BODY_KEPT,
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    TransportError,
)
from asyncdeleter._redact import redact_cut

__all__ = [
    "MIDDLEWARES",
    "AttemptTimeouts",
    "Expiry",
    "Reply",
    "Transport",
    "check_pool",
    "check_ssl",
    "dropped",
    "may_have_been_sent",
    "translate_client_error",
]

#: A read's answer (a page of up to 1,000 workspaces with their extra fields) may be larger
#: than an error body; past this it is refused, not read into memory.
MAX_RESULT_BYTES: Final = 16 * 1024 * 1024
#: The whole-attempt deadline fires this long after the connect-phase one, so that when the
#: deadline ends an attempt we know which phase it was in: a connect that ran out is
#: reported by aiohttp as ``ConnectionTimeoutError`` (nothing sent), and only an attempt
#: that got past connecting meets the outer deadline. Scheduling noise, no more.
_DEADLINE_GRACE: Final = 0.05
#: How often the sweep looks for attempts past their deadline (its precision).
_SWEEP_EVERY: Final = 0.1
#: aiohttp rounds timeouts above this up to a whole second; a deadline must not move.
_NO_CEILING: Final = 1e12


class _DroppedConnectionError(aiohttp.ClientConnectionError):
    """A connection that dropped after the request may have been sent."""


class _TunnelNeverOpenedError(aiohttp.ClientConnectionError):
    """A proxy dropped the connection during its ``CONNECT``: nothing was sent."""


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
        what = str(exc) or type(exc).__name__
        # A proxy that drops its CONNECT raises what a drop after sending raises; where it
        # was raised (inside the connector's connect) says nothing was sent.
        connecting = _raised_while_connecting(exc)
    # Outside the except block, so the original does not ride along as __context__.
    if connecting:
        raise _TunnelNeverOpenedError(f"the proxy dropped the tunnel before it opened ({what})")
    raise _DroppedConnectionError(what)


MIDDLEWARES: Final = (_own_every_attempt,)


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


#: What aiohttp raises before it writes anything of the request (see ``may_have_been_sent``).
_NOTHING_SENT: Final = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientHttpProxyError,
    _TunnelNeverOpenedError,
)


def may_have_been_sent(exc: BaseException) -> bool:
    """Whether a failed attempt may have put the request on the wire.

    The one place that decides it. aiohttp raises these before writing anything:

    - a refused, unresolvable or TLS-failing connect (``ClientConnectorError`` and its
      subclasses), an unreachable proxy included (``ClientProxyConnectionError``);
    - a connect phase that ran out of time (``ConnectionTimeoutError``; the call's
      deadline is set so the connect phase always meets its own timeout first);
    - a proxy that refused to open the tunnel, answering its ``CONNECT`` with anything
      but 200 (``ClientHttpProxyError``, a ``ClientResponseError``: its status is the
      proxy's, not the service's, and the request never left the client).

    - a proxy that dropped the connection during its ``CONNECT``
      (``_TunnelNeverOpenedError``: the middleware tells it from a drop after sending,
      which raises the same ``ServerDisconnectedError``, by where it was raised).

    Anything else happened with a connection in hand.
    """
    return not isinstance(exc, _NOTHING_SENT)


#: The connector method that hands aiohttp a connection; the request is written after it.
_CONNECTING: Final = (aiohttp.BaseConnector.connect.__code__,)


def _raised_while_connecting(exc: BaseException) -> bool:
    """Whether ``exc`` came up through the connector's ``connect`` (its traceback says)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in _CONNECTING:
            return True
        tb = tb.tb_next
    return False


def dropped(exc: BaseException) -> bool:
    """A connection that broke after the request may have gone out (not a failed connect)."""
    if isinstance(exc, _DroppedConnectionError | aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and not isinstance(
        exc, aiohttp.ClientConnectorError
    )


async def _read_capped(
    response: aiohttp.ClientResponse, cap: int, chunks: list[bytes]
) -> tuple[bytes, bool]:
    """Read the body up to ``cap`` bytes; return it and whether it ended within the cap.

    A body cut short raises, leaving what arrived in ``chunks``; one past the cap is
    dropped unread (its connection is closed, not drained or pooled).
    """
    size = 0
    while size <= cap:
        chunk = await response.content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    response.close()
    return b"".join(chunks)[:cap], False


class Reply:
    """What one attempt came to.

    Attributes:
        status: The status line's code, or ``None`` when no answer arrived.
        request_id: The ``X-Request-Id`` header.
        retry_after: The raw ``Retry-After`` header of a non-2xx answer.
        body: The body read (a 2xx deletion's body is not kept).
        complete: The body arrived whole and within its cap.
        oversized: The body was longer than its cap.
        failure: What ended the attempt early: with no status, the transport's exception
            (or the deadline's ``TimeoutError``); with one, what cut the body short. For
            ``translate_client_error`` and the predicates.
    """

    __slots__ = ("body", "complete", "failure", "oversized", "request_id", "retry_after", "status")

    def __init__(
        self,
        status: int | None,
        request_id: str | None = None,
        *,
        body: bytes = b"",
        complete: bool = True,
        oversized: bool = False,
        retry_after: str | None = None,
        failure: BaseException | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.body = body
        self.complete = complete
        self.oversized = oversized
        self.retry_after = retry_after
        self.failure = failure


def check_ssl(ssl: ssl_module.SSLContext | None, session: aiohttp.ClientSession | None) -> None:
    """Certificates are always verified: refuse a context, or a caller's connector, that won't."""
    if ssl is not None:
        if not isinstance(ssl, ssl_module.SSLContext):
            raise ConfigurationError("ssl must be an ssl.SSLContext (verification stays on)")
        if ssl.verify_mode != ssl_module.CERT_REQUIRED or not ssl.check_hostname:
            raise ConfigurationError(
                "ssl must verify certificates and host names (verify_mode=CERT_REQUIRED, "
                "check_hostname=True); load a private CA into it instead of turning checks off"
            )
    if session is not None and session.connector is not None:
        # aiohttp keeps the connector's choice here: False (or an unverifying context)
        # would turn verification off for every request on that session.
        chosen = getattr(session.connector, "_ssl", True)
        if chosen is False or (
            isinstance(chosen, ssl_module.SSLContext)
            and (chosen.verify_mode != ssl_module.CERT_REQUIRED or not chosen.check_hostname)
        ):
            raise ConfigurationError(
                "the session's connector does not verify certificates (ssl=False or an "
                "unverifying context); asyncdeleter always verifies them"
            )


def check_pool(session: aiohttp.ClientSession | None, max_concurrency: int) -> None:
    """A caller's connector must hold every call the manager lets through at once.

    Its total ``limit`` and its ``limit_per_host`` alike (0 means no limit, for either):
    every call to a service goes to one host, so a per-host pool below
    ``max_concurrency`` makes the calls past it wait for a socket while their timeouts
    run, and healthy calls fail with ``APITimeoutError``.
    """
    connector = session.connector if session is not None else None
    if connector is None:
        return
    for name, pool in (("limit", connector.limit), ("limit_per_host", connector.limit_per_host)):
        if pool and pool < max_concurrency:
            raise ConfigurationError(
                f"the session's connector allows {pool} connections ({name}={pool}), fewer "
                f"than max_concurrency={max_concurrency}: calls would wait for a pool slot "
                "while their timeout runs"
            )


class AttemptTimeouts:
    """The aiohttp timeouts of one ``Timeouts``, built once (a manager and each of its views).

    ``connect`` bounds the whole connect phase: name resolution, TCP and TLS.
    """

    __slots__ = ("client_timeout", "connect", "read")

    def __init__(self, timeouts: Timeouts) -> None:
        self.connect = timeouts.connect
        self.read = timeouts.read
        self.client_timeout = self._timeout(timeouts.connect)

    def _timeout(self, connect: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=connect, sock_read=self.read, ceil_threshold=_NO_CEILING
        )

    def within(self, left: float) -> aiohttp.ClientTimeout:
        """The timeouts of an attempt with ``left`` seconds to its call's deadline.

        The connect phase of an attempt with at least the plain connect timeout left gets
        it; a shorter one gets what is left of the deadline.
        """
        if left >= self.connect:
            return self.client_timeout
        return self._timeout(max(left, 0.001))


class Transport:
    """The pool of one manager, shared by its views: the session, its lifecycle, deadlines.

    It holds the session every call is sent on: the manager's own, opened on first use
    over one connector of ``pool`` connections, or the caller's (never closed here). The
    session belongs to the event loop it was first used on, and once ``aclose()`` has run
    nothing more is sent: ``check_usable`` is the one place that says so. A view
    (``SessionManager.with_options``) shares the transport, so it sees the same state.

    Args:
        session: The caller's ``aiohttp.ClientSession``, or ``None`` for our own.
        pool: The connections of our own session (the manager's ``max_concurrency``).
        ssl: The context for our own connector (``None``: the default, verifying).
        timeouts: The manager's timeouts: our own session's defaults.
        trace_configs: The caller's ``aiohttp.TraceConfig``s, for our own session (their
            own tracing, or opentelemetry-instrumentation-aiohttp-client's), as given.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        pool: int = 1,
        ssl: ssl_module.SSLContext | None = None,
        timeouts: Timeouts | None = None,
        trace_configs: tuple[aiohttp.TraceConfig, ...] = (),
    ) -> None:
        self.session = session
        # The session is the caller's: it may close behind our back, and is never ours to.
        self.borrowed = session is not None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._pool = pool
        self._ssl = ssl
        self._timeouts = timeouts if timeouts is not None else Timeouts()
        self._trace_configs = trace_configs
        # What stops aiohttp's hidden resend on a caller's session (see _own_every_attempt);
        # None on our own session, where it is switched off directly.
        self.middlewares: tuple[Any, ...] | None = MIDDLEWARES
        # Attempts in flight, each with its deadline: one sweep a tenth of a second fires
        # the expired ones (a timer per attempt would cost more than the rest of our path).
        self._watched: dict[Expiry, None] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    # -- the lifecycle ---------------------------------------------------------------------

    def check_open(self) -> None:
        """Refuse anything more once the manager is closed.

        Raises:
            ConfigurationError: ``aclose()`` has run.
        """
        if self.closed:
            raise ConfigurationError("this SessionManager is closed")

    def check_usable(self) -> aiohttp.ClientSession:
        """The session to send on (our own opened now, on first use), or why nothing may go out.

        The first use binds the pool to the running event loop: an aiohttp session cannot
        move between loops.

        Raises:
            ConfigurationError: The manager is closed, the caller's session is closed, or
                it is used from another event loop than its first.
        """
        self.check_open()
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        elif self.loop is not loop:
            raise ConfigurationError(
                "this SessionManager belongs to the event loop it was first used on; build "
                "one manager per event loop (an aiohttp session cannot move between loops)"
            )
        session = self.session
        if session is None:
            session = self.session = self._open_session()
        elif session.closed:
            raise ConfigurationError("the aiohttp session given to this SessionManager is closed")
        return session

    def check_still_open(self, session: aiohttp.ClientSession) -> None:
        """Right before sending, after a call's waits: closed meanwhile, nothing more goes out.

        Raises:
            ConfigurationError: The manager, or the caller's session, closed meanwhile.
        """
        if self.closed or (self.borrowed and session.closed):
            raise ConfigurationError(
                "the SessionManager (or its aiohttp session) was closed while this call "
                "waited; nothing more was sent"
            )

    async def aclose(self, closing_too: Callable[[], Awaitable[None]]) -> None:
        """Close: refuse every call from now on, then ``closing_too``, then our own session.

        ``closing_too`` is what must stop before the pool goes (the credentials' refresh),
        so calls waiting on it end saying the manager closed. Idempotent; a caller's
        session is left open.
        """
        self.closed = True
        await closing_too()
        session, self.session = self.session, None
        if session is not None and not self.borrowed and not session.closed:
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        """Create the manager's own session over one connector of ``pool`` connections."""
        connector = aiohttp.TCPConnector(
            # The pool is never the bottleneck: the manager's concurrency limit is.
            limit=self._pool,
            limit_per_host=0,
            ssl=self._ssl if self._ssl is not None else True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=AttemptTimeouts(self._timeouts).client_timeout,
            # Deletions need no cookies; skipping the jar saves work on every answer.
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=list(self._trace_configs) or None,
        )
        if isinstance(getattr(session, "_retry_connection", None), bool):
            # Our own session: switch aiohttp's silent resend off at the source (a private
            # flag, checked for) and spare every request the middleware.
            session._retry_connection = False
            self.middlewares = None
        return session

    # -- one attempt -----------------------------------------------------------------------

    async def exchange(  # noqa: PLR0917 - the hot path: positional, no keyword packing
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        deadline: float,
        timeouts: AttemptTimeouts,
        *,
        want_body: bool,
    ) -> Reply:
        """Send one attempt and read its answer, within ``deadline`` (loop time).

        Never raises for what the network or the server did: that is in the ``Reply``.

        Raises:
            asyncio.CancelledError: The caller's own cancellation (not the deadline's).
        """
        loop = asyncio.get_running_loop()
        left = deadline - loop.time()
        status: int | None = None
        request_id: str | None = None
        chunks: list[bytes] = []
        # The deadline bounds the whole attempt: the sweep cancels this task once it is
        # past. The sweep runs only between the task's steps, and the attempt leaves the
        # watch synchronously on its way out, so a late expiry cannot reach anything else.
        expiry = Expiry(asyncio.current_task(), deadline + _DEADLINE_GRACE)
        self._watched[expiry] = None
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_EVERY, self._sweep)
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                timeout=timeouts.within(left),
                allow_redirects=False,
                raise_for_status=False,
                middlewares=self.middlewares,
            ) as response:
                status = response.status
                request_id = response.headers.get("X-Request-Id")
                if 200 <= status < 300:
                    if want_body:
                        body, within = await _read_capped(response, MAX_RESULT_BYTES, chunks)
                        return Reply(status, request_id, body=body, oversized=not within)
                    # The hot path: the status line says it worked, the body is not
                    # needed but is read (when small) so the connection is reused.
                    length = response.content_length
                    if length is not None and length <= MAX_BODY_BYTES:
                        try:
                            await response.read()
                        except (TimeoutError, aiohttp.ClientError):
                            response.close()  # a broken body cannot undo the 2xx
                    else:
                        response.close()  # unbounded or huge: drop, do not read
                    return Reply(status, request_id)
                retry_after = response.headers.get("Retry-After")
                body, _ = await _read_capped(response, MAX_BODY_BYTES, chunks)
                return Reply(status, request_id, body=body, retry_after=retry_after)
        except BaseException as exc:  # noqa: BLE001 - sorted here, re-raised if not ours
            failure = expiry.judge(exc)  # the deadline's cancellation becomes a TimeoutError
            if status is None:
                return Reply(None, failure=failure)
            # The status line arrived and the body was cut short: the status decides
            # (a read's 2xx is incomplete, and is sent again).
            return Reply(status, request_id, body=b"".join(chunks), complete=False, failure=failure)
        finally:
            del self._watched[expiry]

    def _sweep(self) -> None:
        """Fire the expiry of every attempt past its deadline; come back while any are watched."""
        self._sweeper = None
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for expiry in list(self._watched):
            if expiry.deadline <= now and not expiry.fired:
                expiry.fire()
        self._sweeper = loop.call_later(_SWEEP_EVERY, self._sweep)


#: A bytes literal as aiohttp quotes what its parser refused (``b'...'``), closed or cut.
_QUOTED_BYTES: Final = re.compile(
    r"""(?<!\w)b'(?:[^'\\]|\\.)*(?:'|$)"""  # b'...' (or cut before its closing quote)
    r"""|(?<!\w)b"(?:[^"\\]|\\.)*(?:"|$)""",  # b"..."
    re.DOTALL,
)


def _server_text(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """What of ``exc``'s text may be kept: no bytes aiohttp quoted from the answer, no secret.

    aiohttp's parser quotes the bytes it refused (a status line, a header, a chunk size),
    cut at about 100 with ``...``: a server may have echoed a credential there, and a cut
    one could not be recognised. The quote goes, the parser's reason stays.
    """
    message = str(exc) if isinstance(exc, aiohttp.ClientError | OSError) else ""
    return redact_cut(_QUOTED_BYTES.sub("b'…'", message), secrets, RAW_BODY_KEPT)


def _redacted(exc: BaseException, secrets: tuple[str, ...]) -> TransportError:
    kind = type(exc)
    return TransportError(f"{kind.__module__}.{kind.__qualname__}", _server_text(exc, secrets))


def translate_client_error(
    exc: BaseException, *, what: str, attempts: int, secrets: tuple[str, ...] = ()
) -> APIConnectionError:
    """Map an aiohttp or socket failure to our tree (the only place that knows aiohttp's).

    Args:
        exc: What aiohttp (or the socket under it) raised.
        what: The operation and target, for the message.
        attempts: How many requests the call has sent so far.
        secrets: Credentials to cut out of what is quoted from ``exc``.

    Returns:
        The error to raise, its ``__cause__`` already set to a redacted ``TransportError``
        (never ``exc`` itself, whose request info holds the request headers).
    """
    error: APIConnectionError
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        error = APITimeoutError(f"{what}: timed out ({type(exc).__name__})", attempts=attempts)
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        # Its status is the proxy's answer to CONNECT, not the service's: say whose it is.
        reason = redact_cut(str(exc.message), secrets, RAW_BODY_KEPT)
        error = APIConnectionError(
            f"{what}: connection failed: the proxy refused to open a tunnel "
            f"(HTTP {exc.status} {reason}); the request was not sent",
            attempts=attempts,
        )
    else:
        detail = _server_text(exc, secrets) or type(exc).__name__
        error = APIConnectionError(f"{what}: connection failed: {detail}", attempts=attempts)
    error.__cause__ = _redacted(exc, secrets)
    return error
