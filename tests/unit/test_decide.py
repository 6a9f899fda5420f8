"""The retry decision as a table: ``decide`` is pure, so every rule is one row, no sockets."""

from __future__ import annotations

import pytest
import yarl

from asyncdeleter import RetryPolicy
from asyncdeleter._calls import Call
from asyncdeleter._decide import (
    Attempt,
    Step,
    credentials_refused,
    decide,
    server_failed,
    transient,
)
from asyncdeleter._errors import status_error_class
from asyncdeleter._operations import CLOSE_SQL_SESSION, SHOW_WORKSPACE, Operation
from asyncdeleter._throttle import ApiGate

POLICY = RetryPolicy(max_tries=3)


def call(
    op: Operation = CLOSE_SQL_SESSION,
    *,
    attempts: int = 1,
    throttled: int = 0,
    took_effect: bool = False,
    missing_ok: bool = False,
    refreshed: bool = False,
    resent: bool = False,
) -> Call:
    made = Call(
        op=op,
        url=yarl.URL("http://127.0.0.1/x"),
        gate=ApiGate(None),
        ids=(),
        target="t",
        missing_ok=missing_ok,
    )
    made.attempts = attempts
    made.throttled = throttled
    made.may_have_taken_effect = took_effect
    made.refreshed = refreshed
    made.resent_after_drop = resent
    return made


# (case, the call so far, the attempt, expected step, expected wait, took_effect, throttled)
ROWS = [
    ("delete 200", call(), Attempt(200), Step.DONE, None, False, False),
    ("delete 404 first try", call(), Attempt(404), Step.FAIL, None, False, False),
    ("delete 404 missing_ok", call(missing_ok=True), Attempt(404), Step.ALREADY_GONE, None, False, False),
    ("delete 404 after a 500", call(attempts=2, took_effect=True), Attempt(404), Step.DONE, None, False, False),
    ("delete 404 after a 500, missing_ok", call(attempts=2, took_effect=True, missing_ok=True), Attempt(404), Step.DONE, None, False, False),
    ("gateway 404 is no resource 404", call(missing_ok=True), Attempt(404, route_missing=True), Step.FAIL, None, False, False),
    ("gateway 404 after a 500 is no success", call(attempts=2, took_effect=True), Attempt(404, route_missing=True), Step.FAIL, None, False, False),
    ("read 404 is not found", call(SHOW_WORKSPACE), Attempt(404), Step.FAIL, None, False, False),
    ("read 404 asked for (a confirming poll) is gone", call(SHOW_WORKSPACE, missing_ok=True), Attempt(404), Step.ALREADY_GONE, None, False, False),
    ("gateway 404 on a read that asks for gone is no gone", call(SHOW_WORKSPACE, missing_ok=True), Attempt(404, route_missing=True), Step.FAIL, None, False, False),
    ("read 404 after a 500 is still not found", call(SHOW_WORKSPACE, attempts=2, took_effect=True), Attempt(404), Step.FAIL, None, False, False),
    ("read 200 whole", call(SHOW_WORKSPACE), Attempt(200), Step.DONE, None, False, False),
    ("read 200 cut short: resent at once", call(SHOW_WORKSPACE), Attempt(200, complete=False), Step.RETRY, 0.0, False, False),
    ("400 never retried", call(), Attempt(400), Step.FAIL, None, False, False),
    ("403 never retried", call(), Attempt(403), Step.FAIL, None, False, False),
    ("401 without a provider", call(), Attempt(401, credentials_refused=True), Step.FAIL, None, False, False),
    ("500 backs off, may have deleted", call(), Attempt(500), Step.RETRY, None, True, False),
    ("500 on a read took no effect", call(SHOW_WORKSPACE), Attempt(500), Step.RETRY, None, False, False),
    ("500 with Retry-After", call(), Attempt(500, retry_after=2.0), Step.RETRY, 2.0, True, False),
    ("503 with Retry-After counts toward max_tries", call(attempts=3), Attempt(503, retry_after=1.0), Step.FAIL, None, True, False),
    ("408 may have deleted", call(), Attempt(408), Step.RETRY, None, True, False),
    ("429 is pushback", call(), Attempt(429, retry_after=1.0), Step.RETRY, 1.0, False, True),
    ("429 past max_tries still retried", call(attempts=9, throttled=8), Attempt(429), Step.RETRY, None, False, True),
    ("429s do not use up tries", call(attempts=5, throttled=3), Attempt(500), Step.RETRY, None, True, False),
    ("tries used up", call(attempts=3), Attempt(500), Step.FAIL, None, True, False),
    ("refused connect: nothing sent", call(), Attempt(None, sent=False), Step.RETRY, None, False, False),
    ("dropped after sending: resend at once", call(), Attempt(None, dropped=True), Step.RETRY, 0.0, True, False),
    ("dropped again: back off", call(attempts=2, resent=True), Attempt(None, dropped=True), Step.RETRY, None, True, False),
    ("timeout after sending", call(), Attempt(None), Step.RETRY, None, True, False),
    ("connection tries used up", call(attempts=3), Attempt(None), Step.FAIL, None, True, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "state", "attempt", "step", "wait", "took_effect", "throttled"),
    ROWS,
    ids=[row[0] for row in ROWS],
)
def test_decide(
    case: str,
    state: Call,
    attempt: Attempt,
    step: Step,
    wait: float | None,
    took_effect: bool,
    throttled: bool,
) -> None:
    decision = decide(state, attempt, POLICY, can_refresh=False)
    assert decision.step is step, case
    if step is Step.RETRY:
        assert decision.wait == wait, case
    assert decision.took_effect is took_effect, case
    assert decision.throttled is throttled, case


def test_429_left_out_of_retry_statuses_fails_at_once() -> None:
    policy = RetryPolicy(retry_statuses={500})
    assert decide(call(), Attempt(429), policy, can_refresh=False).step is Step.FAIL


def test_connection_errors_not_retried_when_switched_off() -> None:
    policy = RetryPolicy(retry_connection_errors=False)
    assert decide(call(), Attempt(None, dropped=True), policy, can_refresh=False).step is Step.FAIL


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_refresh_once_with_a_provider(status: int) -> None:
    attempt = Attempt(status, credentials_refused=True)
    assert decide(call(), attempt, POLICY, can_refresh=True).step is Step.REFRESH
    assert decide(call(refreshed=True), attempt, POLICY, can_refresh=True).step is Step.FAIL
    assert decide(call(attempts=3), attempt, POLICY, can_refresh=True).step is Step.FAIL


def test_decide_changes_nothing() -> None:
    state = call()
    before = (state.attempts, state.throttled, state.may_have_taken_effect, state.refreshed)
    decide(state, Attempt(500), POLICY, can_refresh=True)
    decide(state, Attempt(429), POLICY, can_refresh=True)
    decide(state, Attempt(401, credentials_refused=True), POLICY, can_refresh=True)
    assert (state.attempts, state.throttled, state.may_have_taken_effect, state.refreshed) == before


@pytest.mark.parametrize(
    ("status", "struggled", "passing"),
    [(500, True, True), (503, True, True), (408, True, True), (429, False, True),
     (400, False, False), (403, False, False), (404, False, False)],
)  # fmt: skip
def test_the_one_set_of_transient_statuses(status: int, struggled: bool, passing: bool) -> None:
    """The service struggling may have acted; with throttling, a later request may not meet it."""
    assert server_failed(status) is struggled
    assert transient(status) is passing


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [(401, None, True), (403, "The token is invalid", True), (403, "Forbidden", False),
     (400, "token invalid", False)],
)  # fmt: skip
def test_which_answers_refuse_the_credentials(
    status: int, message: str | None, refused: bool
) -> None:
    """A 401, or the 403 that says the token is invalid: nothing else."""
    error = status_error_class(status)("x", status=status, error_msg=message)
    assert credentials_refused(error) is refused
