"""The wait generator and Retry-After parsing, as pure functions."""

from __future__ import annotations

import email.utils
import itertools

import attrs
import pytest

from asyncdeleter import ConfigurationError, RetryPolicy
from asyncdeleter._retry import backoff_waits, parse_retry_after


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
