"""The rate learner, the gateway's quota hint and a throttled call's wait, without sockets.

``feed`` plays a fixed-window quota (or uncorrelated noise) against an ``AdaptiveRate`` in
simulated time: no test here reads a clock.
"""

from __future__ import annotations

import itertools
import random

import pytest

from asyncdeleter import RetryPolicy
from asyncdeleter._calls import Call, StopSignal, Tracker
from asyncdeleter._operations import CLOSE_SQL_SESSION
from asyncdeleter._retry import throttle_wait
from asyncdeleter._throttle import AdaptiveRate, ApiGate, quota_hint


class Gateway:
    """A fixed-window ``quota`` per ``window`` seconds (``None``: none), and ``noise``: a
    share of requests throttled at random whatever the rate (uncorrelated 429s)."""

    def __init__(
        self, quota: float | None, *, window: float = 1.0, noise: float = 0.0, seed: int = 1
    ) -> None:
        self.quota, self.window, self.noise = quota, window, noise
        self.random = random.Random(seed)
        self.current: int | None = None
        self.used = 0

    def refuses(self, now: float) -> bool:
        current = int(now // self.window)
        if current != self.current:
            self.current, self.used = current, 0
        self.used += 1
        over = self.quota is not None and self.used > self.quota
        return over or (self.noise > 0 and self.random.random() < self.noise)


def play(
    learner: AdaptiveRate, gateway: Gateway, start: float, seconds: float, *, offered: float
) -> tuple[float, float]:
    """Offer ``offered`` requests/s (capped by the learner's limit) to ``gateway``, answers
    coming back at once; return the time reached and the mean sending rate."""
    now, sent = start, 0
    while now < start + seconds:
        rate = learner.limiter.rate
        now += 1.0 / (min(offered, rate) if rate is not None else offered)
        sent += 1
        learner.sending(now)
        learner.record(now, now, throttled=gateway.refuses(now))
    return now, sent / (now - start)


def feed(
    learner: AdaptiveRate,
    start: float,
    seconds: float,
    *,
    offered: float,
    quota: float | None,
    throttle_every: int = 0,
) -> float:
    """Offer ``offered`` requests/s for ``seconds`` (capped by the learner's own limit)
    against a fixed-window ``quota``; return the time reached."""
    now, window, used, sent = start, int(start), 0, 0
    while now < start + seconds:
        rate = learner.limiter.rate
        pace = min(offered, rate) if rate is not None else offered
        now += 1.0 / pace
        if int(now) != window:
            window, used = int(now), 0
        sent += 1
        used += 1
        learner.sending(now)
        throttled = (quota is not None and used > quota) or (
            throttle_every > 0 and sent % throttle_every == 0
        )
        learner.record(now, now, throttled=throttled)
    return now


# -- moved from tests/e2e/test_throttling.py (assertions kept) ---------------------------


def test_an_unthrottled_gate_never_limits() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 5, offered=3000, quota=None)
    assert learner.limiter.rate is None


def test_the_learner_paces_just_under_the_quota_it_meets() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 3, offered=3000, quota=200)
    rate = learner.limiter.rate
    assert rate is not None
    assert 180 <= rate <= 200


def test_occasional_uncorrelated_throttling_does_not_slow_anything() -> None:
    learner = AdaptiveRate()
    feed(learner, 1000.0, 10, offered=1000, quota=None, throttle_every=20)  # 5 %
    assert learner.limiter.rate is None


def test_the_rate_climbs_back_once_throttling_ends() -> None:
    """A quota that was lowered, then lifted: probes win, the rate climbs back up."""
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=200)
    now = feed(learner, now, 3, offered=3000, quota=20)
    low = learner.limiter.rate
    assert low is not None
    assert low <= 25
    for _ in range(80):  # 40 s with no quota and demand pressing on the limit
        learner.limiter.waited = True
        now = feed(learner, now, 0.5, offered=3000, quota=None)
    assert learner.limiter.rate is None or learner.limiter.rate >= 150


def test_a_raised_quota_is_found_by_probing() -> None:
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=200)
    for _ in range(60):  # the quota is now 400; demand keeps pressing on the limit
        learner.limiter.waited = True
        now = feed(learner, now, 0.5, offered=3000, quota=400)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate > 250


def test_a_lowered_quota_is_followed_down() -> None:
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=3000, quota=400)
    feed(learner, now, 3, offered=3000, quota=100)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate <= 110


def test_small_clusters_of_429s_do_not_ratchet_the_rate_down() -> None:
    """7 % of answers throttled, in clusters of seven (one at the very start): no slowing."""
    learner = AdaptiveRate()
    now = 1000.0
    for sent in range(150 * 30):  # 30 s at 150 requests/s
        now += 1 / 150
        learner.sending(now)
        learner.record(now, now, throttled=sent % 100 < 7)
    assert learner.limiter.rate is None


# -- storms: nothing accepted, everything refused --------------------------------------


def test_a_storm_where_nothing_passes_teaches_a_low_rate_then_climbs_back() -> None:
    """Every answer a 429 (even with Retry-After: 0): the learner slows right down.

    This replaces "a storm teaches no rate": with nothing learned, a gateway answering
    every request 429 with Retry-After: 0 drew 21,591 requests from 8 calls in 3 s.
    """
    learner = AdaptiveRate()
    now = feed(learner, 1000.0, 3, offered=500, quota=0)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate <= 10  # from 500 offered: halved while nothing passed, to a trickle
    feed(learner, now, 3, offered=3000, quota=None)
    assert learner.limiter.rate is None  # answers pass again: back to full speed


def test_a_storm_keeps_halving_while_it_lasts() -> None:
    learner = AdaptiveRate()
    now = 1000.0
    rates = []
    for _ in range(6):
        for _ in range(40):  # 40 refused answers a second, whatever the rate
            now += 1 / 40
            learner.sending(now)
            learner.record(now, now, throttled=True)
        rates.append(learner.limiter.rate)
    assert all(rate is not None for rate in rates)
    assert rates[-1] == 1.0  # the floor: never zero, never a loop
    assert all(a is not None and b is not None and b <= a for a, b in itertools.pairwise(rates))


# -- telling a quota from noise by experiment -------------------------------------------


@pytest.mark.parametrize("share", [0.2, 0.3])
def test_noise_above_the_threshold_is_found_out_and_the_rate_restored(share: float) -> None:
    """Uncorrelated 429s at 20-30 %: slowing down does not lower their share, so the
    learner restores the rate, and the run keeps nearly all of its speed."""
    learner = AdaptiveRate()
    gateway = Gateway(None, noise=share, seed=3)
    now, mean = play(learner, gateway, 1000.0, 60, offered=1000)
    assert mean >= 0.9 * 1000
    play(learner, gateway, now, 2, offered=1000)
    assert learner.limiter.rate is None or learner.limiter.rate >= 0.7 * 1000


@pytest.mark.parametrize("offered", [50, 100, 200, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ten_percent_uncorrelated_429s_keep_nearly_full_speed(offered: int, seed: int) -> None:
    """10 % of answers throttled at random, whatever the rate (issue 21's check): under the
    quota share, and a trial would find it noise; the learner never paces far below what
    ``adaptive=False`` would send (in simulated time: the learner's own state, no clock)."""
    learner = AdaptiveRate()
    now, mean = play(learner, Gateway(None, noise=0.1, seed=seed), 1000.0, 30, offered=offered)
    assert mean >= 0.9 * offered
    play(learner, Gateway(None, noise=0.1, seed=seed + 100), now, 2, offered=offered)
    assert learner.limiter.rate is None or learner.limiter.rate >= 0.7 * offered


def test_a_quota_with_noise_on_top_is_still_a_quota() -> None:
    learner = AdaptiveRate()
    play(learner, Gateway(200, noise=0.05, seed=5), 1000.0, 5, offered=3000)
    assert learner.limiter.rate is not None
    assert learner.good is not None
    assert 150 <= learner.good <= 200  # the estimate (the rate may be probing above it)


def test_noise_found_once_does_not_hide_a_quota_that_comes_later() -> None:
    learner = AdaptiveRate()
    now, _ = play(learner, Gateway(None, noise=0.2, seed=11), 1000.0, 10, offered=1000)
    assert learner.limiter.rate is None
    play(learner, Gateway(100, noise=0.2, seed=12), now, 4, offered=1000)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate <= 110


# -- the gateway's message: a hint, read defensively -------------------------------------

DOCUMENTED = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:1 {}"
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (DOCUMENTED.format(200, "second"), (200.0, 1.0)),
        (DOCUMENTED.format(6000, "minute"), (100.0, 60.0)),
        ("policy user over ratelimit,limit:50,time:10 seconds", (5.0, 10.0)),
        ("LIMIT : 30 , TIME : 1 SECOND", (30.0, 1.0)),
        (DOCUMENTED.format("XX", "second"), None),  # the template itself
        (DOCUMENTED.format(0, "second"), None),
        (DOCUMENTED.format(30, "hour"), None),  # under one a second: not worth pacing to
        (DOCUMENTED.format(10**9, "second"), None),  # past any real quota
        (DOCUMENTED.format("\u0662\u0660\u0660", "second"), None),  # non-ASCII digits
        (DOCUMENTED.format(200, "fortnight"), None),
        ("limit:200,time:1 second".rjust(2000), None),  # past the prefix searched
        ("The request is throttled due to traffic control", None),
        ("", None),
        (None, None),
        (200, None),
    ],
)
def test_the_quota_hint_is_read_from_the_documented_message(
    message: object, expected: tuple[float, float] | None
) -> None:
    assert quota_hint(message) == expected


def test_the_hint_bounds_what_a_straddled_second_would_teach() -> None:
    """A trailing second can straddle two windows (up to twice the quota accepted): the
    gateway's own limit keeps the estimate at the quota."""
    learner = AdaptiveRate()
    learner.heard(DOCUMENTED.format(200, "second"))
    feed(learner, 1000.0, 3, offered=3000, quota=200)
    assert learner.good is not None
    assert learner.good <= 200


def test_a_hint_the_answers_contradict_is_ignored() -> None:
    """limit:5 while 200 a second are accepted: server text, not a reason to crawl."""
    learner = AdaptiveRate()
    learner.heard(DOCUMENTED.format(5, "second"))
    feed(learner, 1000.0, 3, offered=3000, quota=200)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate >= 150


def test_a_hint_never_slows_an_unthrottled_gate() -> None:
    learner = AdaptiveRate()
    learner.heard(DOCUMENTED.format(5, "second"))
    feed(learner, 1000.0, 3, offered=3000, quota=None)
    assert learner.limiter.rate is None


def test_a_per_minute_quota_is_paced_at_its_minute_rate_after_the_storm() -> None:
    """limit:600,time:1 minute: a burst spends the window, the rest of the minute is a
    storm; the learner then paces near 10 a second instead of bursting again."""
    learner = AdaptiveRate()
    learner.heard(DOCUMENTED.format(600, "minute"))
    play(learner, Gateway(600, window=60.0), 60_000.0, 70, offered=3000)
    rate = learner.limiter.rate
    assert rate is not None
    assert rate <= 10.0


# -- a throttled call's wait: max(Retry-After, pacing floor, jittered backoff) -----------


def throttled_call(*, adaptive: bool = True, rate: float | None = None, throttled: int = 1) -> Call:
    import yarl

    gate = ApiGate()
    gate.learned.limiter.rate = rate
    call = Call(
        op=CLOSE_SQL_SESSION,
        url=yarl.URL("http://127.0.0.1/v1/workspaces/ws/sessions/s"),
        gate=gate,
        ids=("ws", "s"),
        target="ws/s",
        tracker=Tracker(StopSignal(), adaptive=adaptive),
    )
    call.throttled = throttled
    return call


@pytest.mark.parametrize("retry_after", [None, 0.0])
def test_a_throttled_wait_is_jittered_backoff_without_a_useful_retry_after(
    retry_after: float | None,
) -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=20.0)
    waits = [throttle_wait(throttled_call(), retry_after, policy) for _ in range(300)]
    assert all(0.0 <= w <= 0.5 for w in waits)
    assert len({round(w, 3) for w in waits}) > 100  # spread out, not a lockstep
    assert max(waits) > 0.4


def test_a_throttled_wait_is_at_least_the_retry_after_and_the_pacing_floor() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=20.0, max_retry_after=60.0)
    assert throttle_wait(throttled_call(), 3.0, policy) >= 3.0
    assert throttle_wait(throttled_call(), 600.0, policy) == 60.0  # max_retry_after
    assert throttle_wait(throttled_call(rate=2.0), 0.0, policy) >= 0.5  # one turn at 2/s
    # adaptive=False ignores the learned rate, as it does for turns.
    unpaced = [
        throttle_wait(throttled_call(rate=0.5, adaptive=False), 0.0, policy) for _ in range(50)
    ]
    assert min(unpaced) < 2.0


def test_a_throttled_backoff_grows_with_each_429_up_to_five_seconds() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=20.0)
    for throttled, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (40, 5.0)]:
        waits = [
            throttle_wait(throttled_call(throttled=throttled), None, policy) for _ in range(200)
        ]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.7 * ceiling


def test_a_gate_names_the_fastest_rate_a_send_must_obey() -> None:
    """The cap always counts; the learned rate only for a send that follows it (adaptive)."""
    gate = ApiGate(max_rate=5.0)
    assert not gate.open()
    assert gate.fastest(adaptive=True) == 5.0
    gate.learned.limiter.set_rate(20.0)
    assert gate.fastest(adaptive=True) == 20.0
    assert gate.fastest(adaptive=False) == 5.0
    free = ApiGate()
    assert free.open()
    assert free.fastest(adaptive=True) is None
