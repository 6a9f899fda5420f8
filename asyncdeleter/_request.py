"""The one request path: send, judge and retry one call, under every limit of its manager.

Every operation goes through ``RequestPath.send``: admit, send, judge, retry. The promises
it keeps are decided here, each in one place:

- *Admission*: an attempt waits for its credentials, then for its turn at the rates of its
  (host, API) (``_throttle``), and only then for a concurrency slot, so a throttled API
  never sits on slots another API could use and no slot is held while waiting for a turn
  (``RequestPath._wait_for_turn``).
- *Only a sent request can have taken effect*: ``_transport.may_have_been_sent`` alone
  decides whether a failed attempt may have reached the server, and ``_decide.decide``
  alone what follows; only then does a later 404 count as success. Once a status line has
  arrived, the status decides, even when the body is cut short.
- *``max_time`` is a hard deadline*: every attempt runs under the call's deadline (name
  resolution, connect, a dripping server, a stalled body), and so does every wait before a
  retry. A call with an outer deadline (``Call.ends_by``: a confirmation poll's
  ``wait_timeout``) gets at most what is left of it, waits for its first turn included.
  The deadline and the helper every wait goes through live with the call
  (``_calls.within_deadline``).
- *Stop means stop*: the stop signal and the manager's state are checked after the last
  wait and right before a request goes on the wire, never earlier.
- *Secrets stay secret*: an aiohttp exception (whose ``RequestInfo`` holds the request
  headers) is never chained or kept (errors carry a redacted ``TransportError``), and a
  credential a server echoes back is cut out of the error (``status_error``).
- *Typed results and errors whatever the body*: a read's 2xx body becomes its result
  (``parsed_result``), any other answer a typed error (``status_error``), here and
  nowhere else.

aiohttp itself is the transport's business (``_transport``): this module only names its
session type.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from typing import TYPE_CHECKING, Final

from asyncdeleter._auth import Auth, Credentials, TokenAuth
from asyncdeleter._calls import Answer, Call, Failure, Stopped, Tracker, within_deadline
from asyncdeleter._config import RetryPolicy, Timeouts
from asyncdeleter._decide import Attempt, Decision, Step, credentials_refused, decide
from asyncdeleter._errors import (
    RAW_BODY_KEPT,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    EndpointNotServedError,
    MalformedResponseError,
    UnverifiedNotFoundError,
    reclassified,
    status_error_class,
)
from asyncdeleter._evidence import NotFound, gateway_meaning, judge_not_found
from asyncdeleter._models import ErrorBody, parse_error_body
from asyncdeleter._observe import Observer
from asyncdeleter._redact import redact, redact_body, redact_cut
from asyncdeleter._retry import RetryBudget, parse_retry_after, plan_retry
from asyncdeleter._throttle import ConcurrencyLimit, RateLimiter
from asyncdeleter._transport import (
    AttemptTimeouts,
    Reply,
    Transport,
    dropped,
    may_have_been_sent,
    translate_client_error,
)
from asyncdeleter._verify import Prover, Unproven, listing_missing_parent
from asyncdeleter._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp

    from asyncdeleter._otel import CallSpan
    from asyncdeleter._regions import Hosts

__all__ = ["RequestPath", "parsed_result", "status_error"]

_log: Final = logging.getLogger("asyncdeleter")

USER_AGENT: Final = f"asyncdeleter/{__version__}"


class RequestPath:
    """Sends calls for one manager: its transport, limits, credentials, policy and budget.

    The shared ``transport`` keeps the lifecycle (its session, event loop, ``closed``);
    everything else is fixed when the path is built. ``with_options`` makes
    the path of a view: another retry policy and other timeouts over the same everything.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        limit: ConcurrencyLimit,
        retry: RetryPolicy,
        timeouts: Timeouts,
        transport: Transport,
        retry_budget: RetryBudget | None,
        observer: Observer | None = None,
    ) -> None:
        self.credentials = credentials
        self.limit = limit
        self.retry = retry
        self.attempt_timeouts = AttemptTimeouts(timeouts)
        self.transport = transport
        self.retry_budget = retry_budget
        # Hooks and tracing, if any: None is the cheap path (one check per attempt).
        self.observer = observer
        self.telemetry = observer.telemetry if observer is not None else None
        # Headers of a fixed TokenAuth, with the User-Agent, merged once per set of the
        # call's own headers (see _headers).
        self._merged: dict[int, tuple[object, dict[str, str] | None, dict[str, str]]] = {}
        # Set by the manager once its calls can be built: where each service is, how to
        # rebuild a call's URL after a service moved, and the checks a 404 needs.
        self.hosts: Hosts | None = None
        self.readdress: Callable[[Call], None] | None = None
        self.prover: Prover | None = None

    def with_options(self, *, retry: RetryPolicy, timeouts: Timeouts) -> RequestPath:
        """The path of a view: ``retry`` and ``timeouts``, over this path's everything else.

        The transport (session, lifecycle), limits, rate gates, credentials, hooks and
        retry budget are the same objects, so the view's calls count against the same
        limits and budget (whose capacity ``retry.retry_budget`` does not change).
        """
        view = copy.copy(self)
        view.retry = retry
        view.attempt_timeouts = AttemptTimeouts(timeouts)
        return view

    def call_span(self, call: Call) -> CallSpan | contextlib.nullcontext[None]:
        """The traced scope of a public call made of several calls (a confirming wait).

        Its span covers every call sent inside it; without tracing it does nothing.
        """
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.call_span(call)

    async def _send_traced(self, call: Call) -> Answer:
        """``send`` inside the span of its public call (unless already inside one)."""
        assert self.telemetry is not None  # noqa: S101 - only called when tracing
        with self.telemetry.call_span(call) as scope:
            answer = await self.send(call, traced=True)
            scope.answered(answer)
            return answer

    async def send(self, call: Call, *, traced: bool = False) -> Answer:  # noqa: PLR0912, PLR0915
        """Send ``call`` with retries; return how it ended or raise the typed error.

        With tracing on, the call runs inside its public call's span (``traced`` says it
        already does).

        Raises:
            APIError: The call failed, after retries where they apply.
            ConfigurationError: The manager closed, or is used from another event loop.
            Stopped: The call's run was stopped before a request went out.
        """
        telemetry = self.telemetry
        if telemetry is not None and not traced and telemetry.tracing_set():
            return await self._send_traced(call)
        session = self.transport.check_usable()
        loop = asyncio.get_running_loop()
        last: Failure | None = None
        while True:
            if last is None:
                if self._turn_now(call):  # the hot path: no coroutine, no wait
                    auth, generation = self.credentials.fixed, 0
                else:
                    auth, generation = await self._first_turn(call)
            else:
                auth, generation = await self._retry_turn(call, last)
            observer = self.observer
            if observer is not None and not observer.watching():
                observer = None
            watching: object = None
            reply: Reply | None = None
            started: float | None = None  # set once the attempt counts as sent
            if self.hosts is not None and call.generation != self.hosts.generation:
                assert self.readdress is not None  # noqa: S101 - set together with hosts
                self.readdress(call)  # a service moved since the call was built
            try:
                self._check_still_wanted(call, session)
                # One attempt, holding a slot: before (sync), the exchange, then judging
                # (sync). No coroutine of our own around the transport's: this is the
                # per-request hot path.
                started = self._starting(call, loop)
                op = call.op
                headers = self._headers(auth, call)
                if observer is not None:
                    watching, headers = observer.sending(call, headers)
                reply = await self.transport.exchange(
                    session,
                    op.method,
                    call.url,
                    headers,
                    call.deadline,
                    self.attempt_timeouts,
                    want_body=not op.deletes,
                )
                result = self._answered(call, reply, started, loop, generation)
            except BaseException as exc:
                if observer is not None and started is not None:
                    observer.ended(watching, call, reply, exc, loop.time() - started)
                raise
            finally:
                self.limit.release()
            if observer is not None:
                observer.ended(watching, call, reply, result, loop.time() - started)
            if isinstance(result, Unproven):
                # Outside the semaphore: the checks are calls of their own.
                assert self.prover is not None  # noqa: S101 - only made when there is one
                result = await self.prover.settle(call, result)
            if isinstance(result, Answer):
                if self.retry_budget is not None:
                    self.retry_budget.refill(call.budget_spent)
                return result
            last = result
            if call.tracker is not None:
                call.tracker.last_error = result.error  # what a stop from here on reports
            if result.rerouted:
                continue  # never processed by the old host: resend at once, to the new one
            if result.refresh is not None:
                await self._refresh_credentials(call, result, result.refresh)
                continue
            # Outside the semaphore: a waiting call must not hold a slot.
            wait = plan_retry(call, result, self.retry, self.retry_budget, loop.time())
            if call.tracker is None:
                await asyncio.sleep(wait)
            else:
                await call.tracker.stop.sleep(wait)
                if call.tracker.stop.stopped:
                    raise Stopped

    # -- admission: who may send now (credentials, the (host, API)'s rates, then a slot) ---

    def _turn_now(self, call: Call) -> bool:
        """Take a slot at once if nothing stands in the way (fixed credentials, no rate)."""
        return self.credentials.provider is None and call.gate.open() and self.limit.try_acquire()

    async def _first_turn(self, call: Call) -> tuple[Auth | None, int]:
        """``_wait_for_turn`` for a first attempt: unbounded, unless the call has ``ends_by``.

        ``max_time`` starts at the first send; a call with an outer deadline (a
        confirmation poll) must not wait past it for a turn or a slot either.
        """

        def late() -> APITimeoutError:
            return APITimeoutError(
                f"{call.op.label} {call.target}: its time ran out while it waited for its "
                "turn to be sent; nothing was sent",
                attempts=call.attempts,
            )

        return await within_deadline(call, self._wait_for_turn(call), late)

    async def _retry_turn(self, call: Call, last: Failure) -> tuple[Auth | None, int]:
        """``_wait_for_turn`` for a retry: from the first send on, waits count to the deadline.

        Past it, the call ends with the error it would have retried.
        """
        return await within_deadline(call, self._wait_for_turn(call), lambda: last.error)

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
            await _take_turns(call)
            if limit.try_acquire():
                return auth, generation
            queued_at = asyncio.get_running_loop().time()
            await limit.acquire()
            if not _turn_went_stale(call, queued_at):
                return auth, generation
            # The wait for a slot outlasted the turn: give the slot back (no slot is ever
            # held while waiting for a turn) and take a fresh turn first.
            limit.release()

    async def _refresh_credentials(self, call: Call, result: Failure, generation: int) -> None:
        """Ask the provider for new credentials, within the call's deadline.

        If ``max_time`` runs out while fetching them, the call ends with the refusal.
        """
        error = result.error
        await within_deadline(call, self.credentials.refresh(generation), lambda: error)

    # -- sending ---------------------------------------------------------------------------

    def _check_still_wanted(self, call: Call, session: aiohttp.ClientSession) -> None:
        """Right before sending: a stopped run or a closing manager sends nothing more."""
        if call.tracker is not None and call.tracker.stop.stopped:
            raise Stopped
        self.transport.check_still_open(session)

    def _starting(self, call: Call, loop: asyncio.AbstractEventLoop) -> float:
        """An attempt starts: count it, start the deadline on the first; return the time."""
        started = loop.time()
        if call.attempts == 0:
            call.start_deadline(started, self.retry.max_time)
        call.attempts += 1
        if call.tracker is not None:
            call.tracker.attempts += 1
        call.gate.learned.sending(started)
        return started

    def _answered(
        self,
        call: Call,
        reply: Reply,
        started: float,
        loop: asyncio.AbstractEventLoop,
        generation: int,
    ) -> Answer | Failure | Unproven:
        """Judge one attempt's reply: a plain 2xx here, everything else in ``_judge``."""
        if secrets := self.credentials.secrets:
            # Before anything parses or keeps them (a result, an error, an outcome, a hook
            # record, a span): a server may echo a credential back, in its request id or
            # anywhere in a body, a 2xx one included.
            reply.body = redact_body(reply.body, secrets)
            if reply.request_id is not None:
                reply.request_id = redact(reply.request_id, secrets)
        status = reply.status
        if status is not None:
            call.gate.learned.record(loop.time(), started, throttled=status == 429)
            op = call.op
            if 200 <= status < 300 and (reply.complete or op.deletes):
                if _log.isEnabledFor(logging.DEBUG):
                    _log_attempt(call, status, started, loop)
                if op.lists_with is not None and self.prover is not None:
                    self.prover.seen(call)  # its container exists
                if op.parse is None:
                    return Answer(False, call.attempts, reply.request_id)
                result = parsed_result(call, reply, self.credentials.secrets)
                return Answer(False, call.attempts, reply.request_id, result)
        _log_attempt(call, status, started, loop)
        return self._judge(call, reply, generation)

    def _judge(self, call: Call, reply: Reply, generation: int) -> Answer | Failure | Unproven:
        """Everything but a plain 2xx: ask ``decide``, apply what it says.

        Whatever the server said is quoted with every credential this manager has sent
        cut out (``credentials.secrets``): a server may echo them, even an earlier one.
        """
        what = f"{call.op.label} {call.target}"
        secrets = self.credentials.secrets
        status = reply.status
        retry_after: float | None = None
        error: APIError
        verdict: NotFound | None = None
        if status is None:
            exc = reply.failure
            assert exc is not None  # noqa: S101 - a reply without a status has its failure
            sent = may_have_been_sent(exc)
            attempt = Attempt(None, sent=sent, dropped=dropped(exc))
            error = translate_client_error(exc, what=what, attempts=call.attempts, secrets=secrets)
            if not sent and self._moved(call, unserved=False):
                return Failure(error, 0.0, rerouted=True)  # the next host may answer
        elif 200 <= status < 300:
            attempt = Attempt(status, complete=False)
            if reply.failure is not None:
                error = translate_client_error(
                    reply.failure, what=what, attempts=call.attempts, secrets=secrets
                )
            else:
                error = APIConnectionError(
                    f"{what}: the answer's body was cut short", attempts=call.attempts
                )
        else:
            retry_after = parse_retry_after(reply.retry_after)
            body = parse_error_body(reply.body)
            error = status_error(
                call, status, body, reply.body, reply.request_id, retry_after, secrets=secrets
            )
            route_missing = False
            if status == 404:
                judged = self._not_found(call, error, body, complete=reply.complete)
                if isinstance(judged, Failure):
                    return judged
                error, verdict, route_missing = judged
            attempt = Attempt(
                status,
                retry_after=retry_after,
                credentials_refused=credentials_refused(error),
                route_missing=route_missing,
            )
        decision = decide(
            call, attempt, self.retry, can_refresh=self.credentials.provider is not None
        )
        if verdict is not None and self.prover is not None and isinstance(error, APIStatusError):
            # A 404 that ends the call, either way: only with evidence (_verify).
            step = decision.step
            if step is Step.FAIL or step is Step.DONE or step is Step.ALREADY_GONE:
                return Unproven(
                    error,
                    gone=step is not Step.FAIL,
                    already_gone=step is Step.ALREADY_GONE,
                    verdict=verdict,
                )
        return self._apply(call, decision, error, reply.request_id, generation)

    def _not_found(
        self, call: Call, error: APIStatusError, body: ErrorBody, *, complete: bool
    ) -> Failure | tuple[APIStatusError, NotFound | None, bool]:
        """What a 404 says (``_evidence``), and so what to do with it.

        Returns the error to raise, the verdict still to prove (``None``: nothing to
        prove) and whether it says nothing of the resource; or the resend after the
        service moved off a host that does not serve it.
        """
        verdict = judge_not_found(call.op.gone_codes, body, complete=complete)
        if verdict is NotFound.NOT_SERVED:
            if self._moved(call, unserved=True):
                return Failure(error, 0.0, rerouted=True)
            return self._not_served(call, error), None, True
        if verdict is NotFound.CUT_SHORT:
            # Whose 404 it was cannot be read: neither gone nor a wrong endpoint.
            unread = reclassified(
                error,
                UnverifiedNotFoundError,
                f"{call.op.label} {call.target}: HTTP 404 whose body was cut short: it says "
                "nothing of the resource; it may still exist (safe to re-run)",
                reason="the answer's body was cut short",
            )
            return unread, None, True
        if call.op.lists_with is None:
            # A listing's own 404 from the service: its container is missing.
            return listing_missing_parent(error, call), None, False
        return error, verdict, False

    def _moved(self, call: Call, *, unserved: bool) -> bool:
        """Whether the call's service moved off the host that did not serve it (at most once).

        The request was never processed there (the gateway's "no such API", or no
        connection at all), so resending it elsewhere is safe. When the old host's gateway
        serves no such API, an earlier attempt's "may have taken effect" there says nothing
        about the new host; a host that merely stopped connecting may have done it.
        """
        hosts = self.hosts
        if hosts is None or not hosts.move(call.op.service, call.base, unserved=unserved):
            return False
        if hosts.left_unserved(call.op.service):
            call.may_have_taken_effect = False
        call.rerouted += 1
        return True

    def _not_served(self, call: Call, error: APIStatusError) -> EndpointNotServedError:
        service = call.op.service
        setting = f"endpoints.{service}"
        hosts = self.hosts
        if hosts is not None and hosts.region is not None and not hosts.explicit(service):
            setting = "region"
        meaning = error.error_msg or gateway_meaning(error.error_code)
        shown = f" ({meaning})" if meaning else ""
        return reclassified(
            error,
            EndpointNotServedError,
            f"{call.op.label} {call.target}: {call.base} does not serve the {call.op.name} "
            f"API: HTTP 404 {error.error_code or '(no service error code)'}{shown}; the "
            f"request was not processed and nothing is known to be gone. Check {setting}",
            endpoint=call.base,
            setting=setting,
        )

    def _apply(
        self,
        call: Call,
        decision: Decision,
        error: APIError,
        request_id: str | None,
        generation: int,
    ) -> Answer | Failure:
        if decision.took_effect:
            call.may_have_taken_effect = True
        if decision.throttled:
            call.throttled += 1
            if call.tracker is not None:
                call.tracker.throttled += 1
        step = decision.step
        if step is Step.RETRY:
            if decision.resend:
                call.resent_after_drop = True
            return Failure(error, decision.wait, throttled=decision.throttled)
        if step is Step.DONE or step is Step.ALREADY_GONE:
            return Answer(step is Step.ALREADY_GONE, call.attempts, request_id)
        if step is Step.REFRESH:
            call.refreshed = True
            return Failure(error, None, refresh=generation)
        raise error from error.__cause__  # as raise_error: the chain exactly as built

    def _headers(self, auth: Auth | None, call: Call) -> dict[str, str]:
        """The request headers of one attempt: the User-Agent, the call's, the credentials'.

        Passed per request rather than as session defaults, so aiohttp has nothing to
        merge; a TokenAuth's never change, so they are merged once and reused.
        """
        extra = call.headers
        key = id(extra)
        merged = self._merged.get(key)
        if merged is not None and merged[0] is auth and merged[1] is extra:
            return merged[2]
        headers: dict[str, str]
        if auth is None:
            headers = {"User-Agent": USER_AGENT}
        elif isinstance(auth, TokenAuth):
            headers = {"User-Agent": USER_AGENT, **auth.headers_for(call.op.method, call.url)}
        else:
            # Signed afresh per attempt (AK/SK), the call's own headers signed with it.
            headers = auth.headers_for(call.op.method, call.url, extra)
            headers["User-Agent"] = USER_AGENT
            return headers
        if extra is not None:
            headers = {**headers, **extra}
        # The call's own headers are one of a few shared dicts (X-Project-Id): a handful of
        # entries at most.
        self._merged[key] = (auth, extra, headers)
        return headers


async def _take_turns(call: Call) -> None:
    """Pass the learned rate, then the ``max_rate`` cap, of the call's (host, API).

    The hard cap comes last, closest to the send, so that no turn of it goes stale while
    the call waits on the (possibly slower) learned rate.
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


async def _take_turn(limiter: RateLimiter, tracker: Tracker | None) -> float:
    """Wait for a turn; a bulk item's wait ends at once (``Stopped``) if its run stops."""
    if tracker is None or limiter.ready():
        return await limiter.turn()
    return await tracker.stop.unless_stopped(limiter.turn())


def _turn_went_stale(call: Call, queued_at: float) -> bool:
    """Whether queueing for a slot outlasted a turn of any rate the call must obey."""
    tracker = call.tracker
    fastest = call.gate.fastest(adaptive=tracker is None or tracker.adaptive)
    return fastest is not None and (asyncio.get_running_loop().time() - queued_at > 1.0 / fastest)


def _log_attempt(
    call: Call, status: int | None, started: float, loop: asyncio.AbstractEventLoop
) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s %s: status=%s attempt=%d elapsed=%.3fs",
            call.op.label,
            call.target,
            status if status is not None else "no answer",
            call.attempts,
            loop.time() - started,
        )


# -- reading an answer: a read's 2xx body as its result, any other answer as a typed error

#: What a malformed answer's error says of the problem, at most this long.
_PROBLEM_KEPT: Final = 200


def parsed_result(call: Call, reply: Reply, secrets: tuple[str, ...] = ()) -> object:
    """A read's 2xx body as its result; ``secrets`` are cut out of an error's text.

    Raises:
        MalformedResponseError: The body is too large, not JSON, or not the documented
            structure (an item without an id, say). Not retried: the same answer would
            come back.
    """
    op = call.op
    assert op.parse is not None  # noqa: S101 - only reads get here
    problem: str
    if reply.oversized:
        problem = "the body is larger than asyncdeleter reads"
    else:
        try:
            return op.parse(json.loads(reply.body), call.ids)
        except (ValueError, RecursionError, TypeError, KeyError) as exc:
            problem = _first_line(exc)
        except Exception as exc:  # noqa: BLE001 - cattrs wraps what it met in its own groups
            problem = _first_line(exc)
    # The problem may quote the body (an id that is a credential a server echoed): cut
    # short only once redacted.
    problem = redact_cut(problem, secrets, _PROBLEM_KEPT)
    error = MalformedResponseError(
        f"{op.label} {call.target}: HTTP {reply.status} with an unreadable body ({problem})",
        status=reply.status,
        request_id=reply.request_id,
        attempts=call.attempts,
        raw_body=redact_cut(_decoded(reply.body, secrets), secrets, RAW_BODY_KEPT),
    )
    raise error from None


def _decoded(raw: bytes, secrets: tuple[str, ...]) -> str:
    """The start of a body as text, long enough for ``redact_cut``.

    Enough to keep ``RAW_BODY_KEPT * 4`` characters and still see whole any credential
    that begins within them.
    """
    longest = max((len(secret) for secret in secrets), default=0)
    return raw[: (RAW_BODY_KEPT * 4 + longest) * 4].decode("utf-8", "replace")


def _first_line(exc: BaseException) -> str:
    causes = getattr(exc, "exceptions", None)
    if causes:  # a cattrs ClassValidationError: say what was wrong inside
        return _first_line(causes[0])
    return (str(exc) or type(exc).__name__).splitlines()[0]


def status_error(  # noqa: PLR0917 - the parts of one answer, always given together
    call: Call,
    status: int,
    body: ErrorBody,
    raw: bytes,
    request_id: str | None,
    retry_after: float | None,
    *,
    secrets: tuple[str, ...] = (),
) -> APIStatusError:
    """The typed error of a non-2xx answer whose body parsed as ``body``.

    ``body``, ``raw`` and ``request_id`` come already redacted (the request path cuts
    every credential out of a reply before reading it); ``secrets`` are what the raw
    body's cut must still not split (``redact_cut``).
    """
    raw_text = redact_cut(_decoded(raw, secrets), secrets, RAW_BODY_KEPT * 4)
    error_msg, error_code = body.error_msg, body.error_code
    detail = error_msg or raw_text[:200].strip() or "(no body)"
    code = f" {error_code}" if error_code else ""
    return status_error_class(status)(
        f"{call.op.label} {call.target}: HTTP {status}{code}: {detail}",
        status=status,
        error_code=error_code,
        error_msg=error_msg,
        solution_msg=body.solution_msg,
        request_id=request_id,
        attempts=call.attempts,
        raw_body=raw_text,
        retry_after=retry_after,
    )
