"""Retry mechanics without sockets: the waits, Retry-After, the budget and the plan."""

from __future__ import annotations

import email.utils
import itertools

import attrs
import pytest

from asyncdeleter import ConfigurationError, RetryPolicy, ServerError
from asyncdeleter._calls import Call, Failure
from asyncdeleter._config import RETRY_COST, TIMEOUT_RETRY_COST
from asyncdeleter._confirm import poll_waits
from asyncdeleter._retry import RetryBudget, backoff_waits, parse_retry_after, plan_retry
from tests.unit.test_calls import fresh


def test_waits_are_full_jitter_under_a_doubling_capped_ceiling() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=4.0)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    samples = [list(itertools.islice(backoff_waits(policy), 6)) for _ in range(300)]
    for position, ceiling in enumerate(ceilings):
        column = [s[position] for s in samples]
        assert all(0 <= w <= ceiling for w in column)
        # Full jitter spreads over the whole range, not a fixed value.
        assert max(column) > 0.8 * ceiling
        assert min(column) < 0.2 * ceiling


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 7 ", 7.0),
        ("-4", None),  # not delta-seconds: ignored, not "retry now"
        ("-0", None),
        ("1_000", None),  # float() takes it; RFC 9110 does not
        ("\u0663", None),  # an Arabic-Indic digit three
        ("\uff15", None),  # a fullwidth five
        ("1e3", None),
        ("+3", None),
        ("3.", None),
        (".5", None),
        ("inf", None),
        ("soon", None),
        (None, None),
        ("nan", None),
        ("", None),
        ("999999999999", 86_400.0),  # capped at a day
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Only RFC 9110 delta-seconds (ASCII digits) count; anything else is ignored."""
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT",
        "Tue, 99 Feb 2026 25:61:61 GMT",
        "Wed, 21 Oct 2015 07:28:00 +9999",
    ],
)
def test_an_absurd_http_date_is_ignored_not_an_overflow(header: str) -> None:
    """A date no clock can reach is ignored (it used to escape as OverflowError)."""
    result = parse_retry_after(header, now=1_700_000_000.0)
    assert result is None or 0.0 <= result <= 86_400.0


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(12.0, abs=1.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_policy_refuses_never_retried_statuses() -> None:
    with pytest.raises(ConfigurationError, match="404"):
        RetryPolicy(retry_statuses={404, 500})
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_tries=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_time=0)


def test_policy_is_frozen_and_evolves() -> None:
    policy = RetryPolicy()
    assert (policy.max_tries, policy.initial_wait, policy.max_wait, policy.max_time) == (
        5,
        0.5,
        20.0,
        120.0,
    )
    assert policy.max_retry_after == 60.0
    assert policy.retry_statuses == {408, 429, 500, 502, 503, 504}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_tries = 3  # type: ignore[misc]
    assert attrs.evolve(policy, max_tries=3).max_tries == 3


# -- the budget, the plan and the poll waits, directly --------------------------------


def test_the_budget_pays_retries_until_empty_and_successes_refill_it() -> None:
    budget = RetryBudget(20)
    assert budget.spend(timeout=False) == RETRY_COST
    assert budget.spend(timeout=True) == TIMEOUT_RETRY_COST
    left = 20 - RETRY_COST - TIMEOUT_RETRY_COST
    assert budget.level == left
    while budget.level >= RETRY_COST:
        budget.spend(timeout=False)
    assert budget.spend(timeout=False) == 0  # cannot pay: no retry
    before = budget.level
    budget.refill(0)  # a success that needed no retry gives back 1
    assert budget.level == before + 1
    budget.refill(10_000)
    assert budget.level == budget.capacity  # never above its capacity


def test_poll_waits_double_under_equal_jitter_up_to_the_ceiling() -> None:
    policy = RetryPolicy(poll_initial_wait=1.0, poll_max_wait=8.0)
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for _ in range(50):
        waits = list(itertools.islice(poll_waits(policy), len(ceilings)))
        for wait, ceiling in zip(waits, ceilings, strict=True):
            assert ceiling / 2 <= wait <= ceiling


def _call() -> Call:
    made = fresh()  # the one way the unit tests build a call
    made.start_deadline(1000.0, 30.0)
    return made


def _failure(status: int = 503, wait: float | None = None) -> Failure:
    return Failure(ServerError("boom", status=status), wait)


def test_a_plan_past_the_deadline_raises_the_attempts_own_error() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=1.0)
    failure = _failure(wait=60.0)  # Retry-After 60 s, 30 s of max_time
    with pytest.raises(ServerError) as info:
        plan_retry(_call(), failure, policy, None, now=1000.0)
    assert info.value is failure.error


def test_a_plan_spends_the_budget_and_gives_up_when_it_is_empty() -> None:
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.01)
    call = _call()
    budget = RetryBudget(RETRY_COST)
    assert plan_retry(call, _failure(), policy, budget, now=1000.0) <= 0.01
    assert call.budget_spent == RETRY_COST
    failure = _failure()
    with pytest.raises(ServerError):
        plan_retry(call, failure, policy, budget, now=1000.0)
    assert failure.error.retry_budget_exhausted


@pytest.mark.parametrize("retry_after", [0.0, 0.5, 3.0])
def test_retry_after_is_a_floor_over_the_backoff_never_a_replacement(retry_after: float) -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=1.0, max_retry_after=2.0)
    waits = [
        plan_retry(_call(), _failure(wait=retry_after), policy, None, now=1000.0) for _ in range(40)
    ]
    floor = min(retry_after, policy.max_retry_after)
    assert all(floor <= wait <= max(floor, 1.0) for wait in waits)
    if retry_after == 0.0:
        assert max(waits) > 0.0  # "now" still backs off
    assert all(
        plan_retry(_call(), _failure(wait=retry_after), attrs.evolve(policy, wait=False), None,
                   now=1000.0) == 0.0
        for _ in range(3)
    )  # fmt: skip
