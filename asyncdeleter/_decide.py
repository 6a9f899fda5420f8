"""What to do after an attempt: a pure function of the call so far, the attempt and the policy.

``decide`` reads no clock, touches no socket and changes nothing; the request path applies
what it returns (and alone checks the clock-bound rules: the call's deadline, the shared
retry budget). So every rule below (the README's "Retries" and "Already gone" sections) is in one
table-testable place (tests/unit/test_decide.py):

- a deletion's 404 is success after an attempt of ours that may have taken effect,
  ``already_gone`` with ``missing_ok`` on a clean first try, else ``NotFoundError``;
  a read's 404 is "not found", unless the read asked to hear "gone" (``missing_ok``: the
  polls of a confirming wait); the gateway's own 404 (no such API: ``_evidence``) is
  never "gone"; the request path then checks every 404 that ends a call (``_verify``);
- 400, 403, 404 are never retried; 401 (or the 403 that says the token is invalid) is
  retried once, at once, when the credentials provider can supply fresh ones;
- a 429 is pushback: retried while it is in ``retry_statuses`` and the deadline lasts,
  without counting toward ``max_tries`` or spending the budget;
- a 503 (with or without ``Retry-After``) and every other retryable status is a failure:
  it counts toward ``max_tries`` and spends the budget; ``Retry-After`` only sets the wait;
- the service struggling (a 5xx, a 408: ``server_failed``) may have done what it was
  asked; with a 429 these are the transient answers (``transient``), which a later
  request may not meet (a confirming wait polls on through them);
- a connection that dropped after sending is resent once at once (a keep-alive race),
  then backs off like any failure; only a request that may have been sent can have taken
  effect.
"""

from __future__ import annotations

import enum

from asyncdeleter._calls import Call
from asyncdeleter._config import RetryPolicy
from asyncdeleter._errors import APIStatusError

__all__ = [
    "Attempt",
    "Decision",
    "Step",
    "credentials_refused",
    "decide",
    "server_failed",
    "transient",
]


def server_failed(status: int) -> bool:
    """The service struggled (a 5xx, or a 408): it may have done what it was asked."""
    return status >= 500 or status == 408


def transient(status: int) -> bool:
    """An answer a later request may not meet: the service struggling, or throttling (429)."""
    return status == 429 or server_failed(status)


def credentials_refused(error: APIStatusError) -> bool:
    """A 401, or the 403 whose body says the token is invalid (the seed page's example)."""
    if error.status == 401:
        return True
    message = (error.error_msg or "").lower()
    return error.status == 403 and "token" in message and "invalid" in message


class Step(enum.Enum):
    """The next step of a call."""

    DONE = "done"  #: it worked
    ALREADY_GONE = "already_gone"  #: nothing there, and missing_ok accepts that
    RETRY = "retry"  #: wait, then send again
    REFRESH = "refresh"  #: fetch fresh credentials, then send again at once
    FAIL = "fail"  #: raise the attempt's error


class Attempt:
    """What one attempt came to, as far as deciding goes.

    Attributes:
        status: The status line's code, or ``None`` when no answer arrived.
        sent: For an attempt with no answer: whether the request may have gone out.
        dropped: The connection broke after the request may have gone out.
        complete: A 2xx read's body arrived whole.
        retry_after: The answer's ``Retry-After``, in seconds (already parsed).
        credentials_refused: The answer says the credentials are bad or expired.
        route_missing: A 404 that does not speak about the resource: the gateway's "no
            such API" (``_evidence.NotFound.NOT_SERVED``); never gone, never retried.
    """

    __slots__ = (
        "complete",
        "credentials_refused",
        "dropped",
        "retry_after",
        "route_missing",
        "sent",
        "status",
    )

    def __init__(
        self,
        status: int | None,
        *,
        sent: bool = True,
        dropped: bool = False,
        complete: bool = True,
        retry_after: float | None = None,
        credentials_refused: bool = False,
        route_missing: bool = False,
    ) -> None:
        self.status = status
        self.route_missing = route_missing
        self.sent = sent
        self.dropped = dropped
        self.complete = complete
        self.retry_after = retry_after
        self.credentials_refused = credentials_refused


class Decision:
    """``decide``'s answer.

    Attributes:
        step: What to do next.
        wait: For ``RETRY``: the wait already decided (the server's ``Retry-After``, or
            0 for the resend after a drop); ``None`` means back off as the policy says.
        throttled: The attempt was throttled (429): pushback, not failure.
        took_effect: The attempt may have deleted the resource without our seeing it.
        resend: This retry is the one immediate resend after a dropped connection.
    """

    __slots__ = ("resend", "step", "throttled", "took_effect", "wait")

    def __init__(
        self,
        step: Step,
        *,
        wait: float | None = None,
        throttled: bool = False,
        took_effect: bool = False,
        resend: bool = False,
    ) -> None:
        self.step = step
        self.wait = wait
        self.throttled = throttled
        self.took_effect = took_effect
        self.resend = resend

    def __repr__(self) -> str:
        return (
            f"Decision({self.step.name}, wait={self.wait}, throttled={self.throttled}, "
            f"took_effect={self.took_effect}, resend={self.resend})"
        )


def decide(  # noqa: PLR0911 - one return per row of the table above
    call: Call, attempt: Attempt, policy: RetryPolicy, *, can_refresh: bool
) -> Decision:
    """The next step after ``attempt`` of ``call`` (whose counts include this attempt).

    Args:
        call: The call so far: ``attempts`` (this one included), ``throttled`` (429s
            before this one), ``may_have_taken_effect`` (before this one), ``missing_ok``,
            ``refreshed``, ``resent_after_drop`` and its operation.
        attempt: What this attempt came to.
        policy: The retry policy.
        can_refresh: The credentials come from a provider that can be asked again.
    """
    status = attempt.status
    deletes = call.op.deletes
    if status is not None and 200 <= status < 300:
        if deletes or attempt.complete:
            return Decision(Step.DONE)
        # A read whose body was cut short: nothing took effect, send it again.
        status = None
        attempt = Attempt(None, sent=True, dropped=True)
    if status == 404 and not attempt.route_missing:
        if deletes and call.may_have_taken_effect:
            return Decision(Step.DONE)  # an earlier attempt of ours deleted it
        if call.missing_ok:
            # A deletion that found nothing, or a read that wants to hear "gone" (the
            # polls of a confirming wait): the answer asked for, not an error.
            return Decision(Step.ALREADY_GONE)
        return Decision(Step.FAIL)
    tries_left = call.attempts - call.throttled - call.rerouted < policy.max_tries
    if status is None:
        took_effect = deletes and attempt.sent
        if not policy.retry_connection_errors or not tries_left:
            return Decision(Step.FAIL, took_effect=took_effect)
        resend = attempt.dropped and not call.resent_after_drop
        return Decision(
            Step.RETRY, wait=0.0 if resend else None, took_effect=took_effect, resend=resend
        )
    took_effect = deletes and server_failed(status)
    if attempt.credentials_refused and can_refresh and not call.refreshed and tries_left:
        return Decision(Step.REFRESH)
    throttled = status == 429
    if status not in policy.retry_statuses or (not throttled and not tries_left):
        return Decision(Step.FAIL, throttled=throttled, took_effect=took_effect)
    return Decision(
        Step.RETRY, wait=attempt.retry_after, throttled=throttled, took_effect=took_effect
    )
