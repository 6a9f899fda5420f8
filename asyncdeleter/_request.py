"""The one request path: send, judge and retry one call, under every limit of its manager.

Every operation goes through ``RequestPath.send``. The promises it keeps are decided here,
each in one place:

- *Only a sent request can have taken effect*: ``_attempt`` alone decides whether a failed
  attempt may have reached the server (``_transport.may_have_been_sent``); only then does a later
  404 count as success. Once a status line has arrived, the status decides, even when the
  body is cut short.
- *``max_time`` is a hard deadline*: every attempt runs under the call's deadline (name
  resolution, connect, a dripping server, a stalled body), and so does every wait before a
  retry.
- *Stop means stop*: the stop signal and the manager's state are checked after the last
  wait and right before a request goes on the wire, never earlier.
- *Secrets stay secret*: an aiohttp exception (whose ``RequestInfo`` holds the request
  headers) is never chained or kept; errors carry a redacted ``TransportError`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final, NoReturn

import aiohttp

from asyncdeleter._auth import Auth, Credentials, TokenAuth
from asyncdeleter._calls import Answer, Call, Failure, Stopped, Tracker
from asyncdeleter._config import MAX_BODY_BYTES, RetryPolicy, Timeouts
from asyncdeleter._errors import (
    RAW_BODY_KEPT,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    status_error_class,
    translate_client_error,
)
from asyncdeleter._models import parse_error_body
from asyncdeleter._retry import RetryBudget, RetryDetails, backoff_waits, parse_retry_after
from asyncdeleter._throttle import ConcurrencyLimit, RateLimiter
from asyncdeleter._transport import (
    MIDDLEWARES,
    Expiry,
    dropped,
    may_have_been_sent,
    read_capped,
)
from asyncdeleter._version import __version__

__all__ = ["RequestPath", "other_loop_error"]

_log: Final = logging.getLogger("asyncdeleter")

USER_AGENT: Final = f"asyncdeleter/{__version__}"

#: The whole-attempt deadline fires this long after the connect-phase one, so that when the
#: deadline ends an attempt we know which phase it was in: a connect that ran out is
#: reported by aiohttp as ``ConnectionTimeoutError`` (nothing sent), and only an attempt
#: that got past connecting meets the outer deadline. Scheduling noise, no more.
_DEADLINE_GRACE: Final = 0.05
#: How often the manager's sweep looks for attempts past their deadline (its precision).
_SWEEP_EVERY: Final = 0.1
#: aiohttp rounds timeouts above this up to a whole second; a deadline must not move.
_NO_CEILING: Final = 1e12

_NOT_MERGED: Final = object()  # no headers merged yet (None is a valid auth: no credentials)


def _raise(error: APIError) -> NoReturn:
    # The error's __cause__ was set when it was made (a redacted TransportError, or None):
    # raising it "from" that again keeps the chain exactly as built, and nothing else.
    raise error from error.__cause__


async def _take_turn(limiter: RateLimiter, tracker: Tracker | None) -> float:
    """Wait for a turn; a bulk item's wait ends at once (``Stopped``) if its run stops."""
    if tracker is None or limiter.ready():
        return await limiter.turn()
    return await tracker.stop.unless_stopped(limiter.turn())


def other_loop_error() -> ConfigurationError:
    """The error for a manager used from another event loop than the one it started on."""
    return ConfigurationError(
        "this SessionManager belongs to the event loop it was first used on; build one "
        "manager per event loop (an aiohttp session cannot move between loops)"
    )


class RequestPath:
    """Sends calls for one manager: its session, limits, credentials, policy and budget.

    The manager owns the lifecycle and sets ``session``, ``middlewares``, ``loop`` and
    ``closed``; everything else is fixed when it is built.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        limit: ConcurrencyLimit,
        retry: RetryPolicy,
        timeouts: Timeouts,
        retry_budget: RetryBudget | None,
    ) -> None:
        self.credentials = credentials
        self.limit = limit
        self.retry = retry
        self.timeouts = timeouts
        self.retry_budget = retry_budget
        self.session: aiohttp.ClientSession | None = None
        # What stops aiohttp's hidden resend on a caller's session (see _own_every_attempt);
        # None on our own session, where it is switched off directly.
        self.middlewares: tuple[Any, ...] | None = MIDDLEWARES
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.borrowed = False  # the session is the caller's: it may close behind our back
        # Attempts in flight, each with its deadline: one sweep a tenth of a second fires
        # the expired ones (a timer per attempt would cost more than the rest of our path).
        self._watched: dict[Expiry, None] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # The connect phase of an attempt with at least this much time left gets the
        # plain connect timeout; a shorter one gets what is left of the call's deadline.
        self._connect = timeouts.connect
        self.client_timeout = self._timeout(timeouts.connect)
        # Headers of a fixed TokenAuth, with the User-Agent, merged once (see _headers).
        self._merged_for: object = _NOT_MERGED
        self._merged_headers: dict[str, str] = {}

    def _timeout(self, connect: float) -> aiohttp.ClientTimeout:
        # ``connect`` bounds the whole connect phase: name resolution, TCP and TLS.
        return aiohttp.ClientTimeout(
            total=None,
            connect=connect,
            sock_read=self.timeouts.read,
            ceil_threshold=_NO_CEILING,
        )

    def check_usable(self) -> aiohttp.ClientSession:
        """The session to send on, or the reason no request may go out now.

        Raises:
            ConfigurationError: The manager is closed, its (or the caller's) session is
                closed, or it is used from another event loop than its first.
        """
        if self.closed:
            raise ConfigurationError("this SessionManager is closed")
        session = self.session
        if session is None or session.closed:
            raise ConfigurationError("the aiohttp session of this SessionManager is closed")
        if asyncio.get_running_loop() is not self.loop:
            raise other_loop_error()
        return session

    async def send(self, call: Call) -> Answer:
        """Send ``call`` with retries; return how it ended or raise the typed error.

        Raises:
            APIError: The call failed, after retries where they apply.
            ConfigurationError: The manager closed, or is used from another event loop.
            Stopped: The call's run was stopped before a request went out.
        """
        session = self.check_usable()
        loop = asyncio.get_running_loop()
        last: Failure | None = None
        while True:
            if last is None:
                if self._turn_now(call):  # the hot path: no coroutine, no wait
                    auth, generation = self.credentials.fixed, 0
                else:
                    auth, generation = await self._wait_for_turn(call)
            else:
                auth, generation = await self._wait_for_retry_turn(call, last)
            try:
                self._check_still_wanted(call, last, session)
                result = await self._attempt(session, call, loop, auth, generation)
            finally:
                self.limit.release()
            if isinstance(result, Answer):
                if self.retry_budget is not None:
                    self.retry_budget.refill(call.budget_spent)
                return result
            last = result
            if result.refresh is not None and call.attempts - call.throttled < self.retry.max_tries:
                await self._refresh_credentials(call, result, result.refresh)
                continue
            # Outside the semaphore: a waiting call must not hold a slot.
            wait = self._plan_retry(call, result, loop)
            if call.tracker is None:
                await asyncio.sleep(wait)
            else:
                await call.tracker.stop.sleep(wait)
                if call.tracker.stop.stopped:
                    raise Stopped(result.error)

    async def _wait_for_turn(self, call: Call) -> tuple[Auth | None, int]:
        """Wait for the credentials, the (host, API)'s rate, then a slot; return holding it.

        The rate's turn comes before the slot, so a throttled API never sits on slots that
        another API could use; a call that then queued for a slot longer than one turn
        gives the slot back and takes a fresh turn, so what goes out still obeys the rate
        at the moment of sending.
        """
        credentials = self.credentials
        if credentials.provider is None:
            auth, generation = credentials.fixed, 0
        else:
            # Before taking a slot: a provider's first fetch must not hold one.
            auth, generation = await credentials.current()
        limit = self.limit
        while True:
            await self._take_turns(call)
            if limit.try_acquire():
                return auth, generation
            queued_at = asyncio.get_running_loop().time()
            await limit.acquire()
            if not self._turn_went_stale(call, queued_at):
                return auth, generation
            # The wait for a slot outlasted the turn: give the slot back (no slot is ever
            # held while waiting for a turn) and take a fresh turn first.
            limit.release()

    async def _take_turns(self, call: Call) -> None:
        """Pass the learned rate, then the ``max_rate`` cap, of the call's (host, API).

        The hard cap comes last, closest to the send, so that no turn of it goes stale
        while the call waits on the (possibly slower) learned rate.
        """
        gate = call.gate
        tracker = call.tracker
        learned = gate.learned.limiter
        if learned.rate is not None and (tracker is None or tracker.adaptive):
            waited = await _take_turn(learned, tracker)
            if tracker is not None:
                tracker.throttled_seconds += waited
        if gate.cap is not None:
            await _take_turn(gate.cap, tracker)

    def _turn_went_stale(self, call: Call, queued_at: float) -> bool:
        """Whether queueing for a slot outlasted a turn of any rate the call must obey."""
        gate = call.gate
        rates = [gate.cap.rate if gate.cap is not None else None]
        tracker = call.tracker
        if tracker is None or tracker.adaptive:
            rates.append(gate.learned.limiter.rate)
        fastest = max((rate for rate in rates if rate), default=None)
        return fastest is not None and (
            asyncio.get_running_loop().time() - queued_at > 1.0 / fastest
        )

    async def _refresh_credentials(self, call: Call, result: Failure, generation: int) -> None:
        """Ask the provider for new credentials, within the call's deadline."""
        refreshed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(call.deadline):
                await self.credentials.refresh(generation)
                refreshed = True
        if not refreshed:
            _raise(result.error)  # max_time ran out while fetching credentials

    async def _wait_for_retry_turn(self, call: Call, last: Failure) -> tuple[Auth | None, int]:
        """``_wait_for_turn`` for a retry: from the first send on, waits count to the deadline."""
        turn = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(call.deadline):
                turn = await self._wait_for_turn(call)
        if turn is None:
            _raise(last.error)
        return turn

    def _turn_now(self, call: Call) -> bool:
        """Take a slot at once if nothing stands in the way (fixed credentials, no rate)."""
        gate = call.gate
        return (
            self.credentials.provider is None
            and gate.cap is None
            and gate.learned.limiter.rate is None
            and self.limit.try_acquire()
        )

    def _check_still_wanted(
        self, call: Call, last: Failure | None, session: aiohttp.ClientSession
    ) -> None:
        """Right before sending: a stopped run or a closing manager sends nothing more."""
        if call.tracker is not None and call.tracker.stop.stopped:
            raise Stopped(last.error if last is not None else None)
        if self.closed or (self.borrowed and session.closed):
            raise ConfigurationError(
                "the SessionManager (or its aiohttp session) was closed while this call "
                "waited; nothing more was sent"
            )

    def _plan_retry(self, call: Call, result: Failure, loop: asyncio.AbstractEventLoop) -> float:
        """How long to wait before the next attempt; raises the error when there is none."""
        policy = self.retry
        if not result.retryable or (
            not result.throttled and call.attempts - call.throttled >= policy.max_tries
        ):
            _raise(result.error)
        if result.wait is not None:
            wait = min(result.wait, policy.max_retry_after)
        else:
            if call.waits is None:
                call.waits = backoff_waits(policy)
            wait = next(call.waits)
        if not policy.wait:
            wait = 0.0
        if loop.time() + wait >= call.deadline:
            # The wait would end past max_time: give up now, with the real error.
            _raise(result.error)
        budget = self.retry_budget
        if result.throttled:
            if call.tracker is not None:
                call.tracker.throttled_seconds += wait
        elif budget is not None:
            cost = budget.spend(timeout=isinstance(result.error, APITimeoutError))
            if not cost:
                result.error.retry_budget_exhausted = True
                _raise(result.error)
            call.budget_spent += cost
        self._before_retry(
            RetryDetails(
                operation=call.operation,
                target=call.target,
                attempt=call.attempts,
                wait=wait,
                cause=result.error,
                status=result.error.status,
            )
        )
        return wait

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        call: Call,
        loop: asyncio.AbstractEventLoop,
        auth: Auth | None,
        generation: int,
    ) -> Answer | Failure:
        """Send one attempt (the caller holds a semaphore slot) and judge its answer."""
        started = loop.time()
        if call.attempts == 0:
            # max_time counts from the first send, not from queueing for the semaphore.
            call.deadline = started + self.retry.max_time
        call.attempts += 1
        if call.tracker is not None:
            call.tracker.attempts += 1
        call.gate.learned.sending(started)
        left = call.deadline - started
        status: int | None = None
        request_id: str | None = None
        retry_after_header: str | None = None
        chunks: list[bytes] = []
        # The call's deadline bounds the whole attempt: the manager's sweep cancels this
        # task once it is past. The sweep runs only between the task's steps, and the
        # attempt leaves the watch synchronously on its way out, so a late expiry cannot
        # reach anything else the task does.
        expiry = Expiry(asyncio.current_task(), call.deadline + _DEADLINE_GRACE)
        self._watched[expiry] = None
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_EVERY, self._sweep)
        try:
            async with session.request(
                call.method,
                call.url,
                headers=self._headers(auth, call),
                timeout=self.client_timeout
                if left >= self._connect
                else self._timeout(max(left, 0.001)),
                allow_redirects=False,
                raise_for_status=False,
                middlewares=self.middlewares,
            ) as response:
                status = response.status
                request_id = response.headers.get("X-Request-Id")
                call.gate.learned.record(loop.time(), started, throttled=status == 429)
                if 200 <= status < 300:
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
                    if _log.isEnabledFor(logging.DEBUG):
                        _log_attempt(call, status, started, loop)
                    return Answer(False, call.attempts, request_id)
                retry_after_header = response.headers.get("Retry-After")
                await read_capped(response, chunks)
        except BaseException as exc:  # noqa: BLE001 - sorted here, re-raised if not ours
            failure = expiry.judge(exc)  # the deadline's cancellation becomes a TimeoutError
            if status is None:
                _log_attempt(call, None, started, loop)
                return self._connection_failure(call, failure)
            # The status line arrived and the body was cut short: the status decides.
            if 200 <= status < 300:
                return Answer(False, call.attempts, request_id)
        finally:
            del self._watched[expiry]
        _log_attempt(call, status, started, loop)
        return self._judge(
            call,
            status=status,
            raw=b"".join(chunks),
            request_id=request_id,
            retry_after_header=retry_after_header,
            generation=generation,
        )

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

    def _connection_failure(self, call: Call, exc: BaseException) -> Failure:
        """An attempt that got no status line: timed out, refused, dropped."""
        if may_have_been_sent(exc):
            call.may_have_taken_effect = True
        error = translate_client_error(
            exc, what=f"{call.operation} {call.target}", attempts=call.attempts
        )
        resend_now = None
        if dropped(exc) and not call.resent_after_drop:
            # Most often a keep-alive race (the server closed an idle connection as we
            # reused it): resend at once, as aiohttp itself would, but counted.
            call.resent_after_drop = True
            resend_now = 0.0
        return Failure(error, self.retry.retry_connection_errors, resend_now)

    def _headers(self, auth: Auth | None, call: Call) -> dict[str, str]:
        """The request headers of one attempt: the User-Agent and the credentials'.

        Passed per request rather than as session defaults, so aiohttp has nothing to
        merge; a TokenAuth's never change, so they are merged once and reused.
        """
        if auth is self._merged_for:
            return self._merged_headers
        headers: dict[str, str]
        if auth is None:
            headers = {"User-Agent": USER_AGENT}
        elif isinstance(auth, TokenAuth):
            headers = {"User-Agent": USER_AGENT, **auth.headers_for(call.method, call.url)}
        else:
            headers = auth.headers_for(call.method, call.url)  # fresh per attempt (AK/SK)
            headers["User-Agent"] = USER_AGENT
            return headers
        self._merged_for, self._merged_headers = auth, headers
        return headers

    def _judge(
        self,
        call: Call,
        *,
        status: int,
        raw: bytes,
        request_id: str | None,
        retry_after_header: str | None,
        generation: int,
    ) -> Answer | Failure:
        """Judge a non-2xx answer: a 404 may still mean success; else, retry or not."""
        if status == 404 and (call.may_have_taken_effect or call.missing_ok):
            # After an attempt that may have deleted it, a 404 proves that attempt worked.
            return Answer(not call.may_have_taken_effect, call.attempts, request_id)
        retry_after = parse_retry_after(retry_after_header)
        error = _status_error(call, status, raw, request_id, retry_after)
        refreshable = self.credentials.provider is not None and not call.refreshed
        if refreshable and _credentials_refused(error):
            # Expired or revoked: ask the provider once and try again at once.
            call.refreshed = True
            return Failure(error, retryable=True, wait=None, refresh=generation)
        if status >= 500 or status == 408:
            call.may_have_taken_effect = True
        throttled = status == 429
        if throttled:
            # The gateway's pushback: the call waits (Retry-After, or backoff) and tries
            # again, for as long as max_time lasts; the (host, API)'s rate learned of it in
            # _attempt. A 503 is a failure even with Retry-After: it only sets the wait.
            call.throttled += 1
            if call.tracker is not None:
                call.tracker.throttled += 1
        retryable = status in self.retry.retry_statuses
        return Failure(error, retryable, retry_after, throttled=throttled)

    def _before_retry(self, details: RetryDetails) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "%s %s: retrying after attempt %d in %.3fs (%s)",
                details.operation,
                details.target,
                details.attempt,
                details.wait,
                details.cause,
            )
        for hook in self.retry.on_retry:
            try:
                hook(details)
            except Exception:  # noqa: BLE001 - a user's hook must not break the retry
                _log.exception("on_retry hook %r failed; the retry goes on", hook)


def _log_attempt(
    call: Call, status: int | None, started: float, loop: asyncio.AbstractEventLoop
) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s %s: status=%s attempt=%d elapsed=%.3fs",
            call.operation,
            call.target,
            status if status is not None else "no answer",
            call.attempts,
            loop.time() - started,
        )


def _status_error(
    call: Call, status: int, raw: bytes, request_id: str | None, retry_after: float | None
) -> APIStatusError:
    body = parse_error_body(raw)
    detail = body.error_msg or raw[:200].decode("utf-8", "replace").strip() or "(no body)"
    code = f" {body.error_code}" if body.error_code else ""
    return status_error_class(status)(
        f"{call.operation} {call.target}: HTTP {status}{code}: {detail}",
        status=status,
        error_code=body.error_code,
        error_msg=body.error_msg,
        solution_msg=body.solution_msg,
        request_id=request_id,
        attempts=call.attempts,
        raw_body=raw[: RAW_BODY_KEPT * 4].decode("utf-8", "replace"),
        retry_after=retry_after,
    )


def _credentials_refused(error: APIStatusError) -> bool:
    """A 401, or the 403 whose body says the token is invalid (the seed page's example)."""
    if error.status == 401:
        return True
    message = (error.error_msg or "").lower()
    return error.status == 403 and "token" in message and "invalid" in message
