"""Throttling: the send rate per (host, API), learned from the gateway's answers, and caps.

The gateway's quota is per API per tenant (about 200 requests/s, a fixed one-second
window; some services count per minute), so the manager keeps one ``ApiGate`` per (host,
API). Every send passes it at the moment it goes out (after the concurrency slot), so
calls queued on the semaphore obey it.

``AdaptiveRate`` learns the quota. A 429 is pushback, not failure: it paces at the rate the
server was seen to accept in the trailing second (not a fraction of it, as botocore's
CUBIC does), and only when throttling is a real share of the answers (at least
``_QUOTA_SHARE`` of them, and ``_QUOTA_MIN_THROTTLED``). It then tells a quota from noise
by experiment: the slower rate is a trial, and if the share of 429s does not fall under
it, the throttling was noise and the rate it had is restored (and the next trial needs a
clearly larger share). A storm, where nothing at all is accepted, halves the rate every
second down to ``_FLOOR``: a gateway that refuses everything (even with ``Retry-After:
0``) is never answered with a loop. After a throttle-free spell it climbs back fast,
exponentially, to the last rate the server accepted; past that it probes, each failed
probe doubling the time to the next, so a raised quota is found and a fixed one costs few
429s. The gateway's message names its quota (``limit:200,time:1 second``): a hint, read
defensively, that bounds what is learned but never slows an unthrottled gate. An
unthrottled gate has no limit at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import re
from typing import Final

__all__ = ["AdaptiveRate", "ApiGate", "ConcurrencyLimit", "RateLimiter", "quota_hint"]

#: The learner's memory: the trailing second, in ten buckets of 100 ms.
_BUCKETS: Final = 10
#: Pace this far below the accepted rate, so that a fixed window never sees one too many.
_MARGIN: Final = 0.98
#: Throttling counts as the quota binding only when it is at least this share of the
#: trailing second's answers, and at least this many answers.
_QUOTA_SHARE: Final = 0.15
_QUOTA_MIN_THROTTLED: Final = 20
#: A storm: nothing accepted in the trailing second, at least this many 429s, and at least
#: this share of what was sent (the rest may be accepted answers still on their way).
_STORM_MIN: Final = 8
_STORM_SHARE: Final = 0.5
#: After a decrease, the 429s of the same episode are not news: requests already on their
#: way, retries bunched by one Retry-After, and everything sent for the rest of a fixed
#: window the burst already spent (at most one window: requests sent up to _EPISODE after
#: the decrease). The next decrease needs a trailing second clear of them.
_EPISODE: Final = 1.0
#: A decrease is a trial, judged on the answers to requests sent under it once the window
#: it spent is over (_EPISODE after it), over a whole window more and at least
#: _TRIAL_ANSWERS of them; a trial that never sees enough answers by _TRIAL_LONGEST is kept.
_TRIAL_ANSWERS: Final = 20
_TRIAL_LONGEST: Final = 6.0
#: The trial found a quota when the share of 429s changed (fell, or rose as a quota
#: tightened), by this many standard errors of the difference of the two shares (the share
#: that set it off is a high draw, taken over as little as a fraction of a second: it
#: needs a clear change). A share at or above
#: _STILL_REFUSED is no noise either: the rate is still far above a quota, and the next
#: episode slows down again.
_FELL: Final = 4.0
_STILL_REFUSED: Final = 0.9
#: A trial is an experiment only if it paces below this share of what was sent before it.
_SLOWER: Final = 0.9
#: Noise found by a trial is remembered this long: the next trial needs this multiple of
#: its share.
_NOISE_MEMORY: Final = 30.0
_NOISE_ABOVE: Final = 1.5
#: Probes won in a row after which the quota is taken to be gone: the limit is dropped.
_WINS_TO_UNLIMITED: Final = 3
#: Throttle-free time before each climb step, and the climb factor back to the last good rate.
_SPELL: Final = 0.5
_CLIMB: Final = 4.0
#: A probe sends this much above the last good rate; the first probe waits _FIRST_PROBE.
_PROBE: Final = 1.5
_FIRST_PROBE: Final = 10.0
#: A probe that ran this many windows of the gateway (one second each unless its message
#: says otherwise) without a 429 has won: the quota was raised.
_PROBE_JUDGED: Final = 1.5
#: The slowest the learner paces (an outage where nothing is accepted), and the rate above
#: which a limit that nobody waits for is dropped altogether.
_FLOOR: Final = 1.0
_UNLIMITED: Final = 100_000.0

#: The gateway's 429 message (docs/api-facts.md, section 3): "The throttling threshold has
#: been reached: policy user over ratelimit,limit:200,time:1 second". Server text: ASCII
#: digits only, bounded lengths, searched in a bounded prefix.
_HINT: Final = re.compile(
    r"limit\s{0,3}:\s{0,3}([0-9]{1,9})\s{0,3},\s{0,3}time\s{0,3}:\s{0,3}([0-9]{1,6})\s{0,3}"
    r"(second|minute|hour|day)",
    re.ASCII | re.IGNORECASE,
)
_HINT_SEARCHED: Final = 1000
_UNIT_SECONDS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def quota_hint(message: object) -> tuple[float, float] | None:
    """The quota a gateway's 429 message names: ``(requests per second, window seconds)``.

    ``"...limit:200,time:1 second"`` gives ``(200.0, 1.0)``, ``"limit:6000,time:1 minute"``
    ``(100.0, 60.0)``. Anything else (no message, ``limit:XX``, a zero, a rate under
    ``_FLOOR`` or past ``_UNLIMITED``) gives ``None``: it is server text, used only as a hint.
    """
    if not isinstance(message, str):
        return None
    match = _HINT.search(message[:_HINT_SEARCHED])
    if match is None:
        return None
    limit, count = int(match[1]), int(match[2])
    window = count * _UNIT_SECONDS[match[3].lower()]
    if not limit or not window:
        return None
    rate = limit / window
    if not _FLOOR <= rate <= _UNLIMITED:
        return None
    return rate, window


class RateLimiter:
    """At most ``rate`` sends per second, first come first served (``None``: no limit).

    Turns sit on a grid ``1/rate`` apart; a waiter that is cancelled before its turn gives
    it to the next, and one cancelled as its turn came hands the turn back.
    """

    __slots__ = ("_last", "_next", "_timer", "_waiters", "rate", "waited")

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self._next = 0.0  # loop time of the next free turn
        self._last = float("-inf")  # loop time of the last turn granted
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self.waited = False  # someone had to wait since the owner last looked

    def ready(self) -> bool:
        """Whether a turn taken now would not wait (``turn()`` then returns at once)."""
        return self.rate is None or (
            not self._waiters and asyncio.get_running_loop().time() >= self._next
        )

    def set_rate(self, rate: float | None) -> None:
        """Change the rate; the next turn comes ``1/rate`` after the last one granted."""
        if rate == self.rate:
            return
        self.rate = rate
        if rate is not None:
            self._next = self._last + 1.0 / rate
        if self._waiters:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._dispatch()

    async def turn(self) -> float:
        """Wait for this caller's turn; return how long it waited, in seconds."""
        rate = self.rate
        if rate is None:
            return 0.0
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters and now >= self._next:
            self._take(now, rate)
            return 0.0
        self.waited = True
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._timer is None:
            self._timer = loop.call_at(self._next, self._dispatch)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Granted as we were cancelled: hand the turn back to whoever is next.
                self._next = min(self._next, loop.time())
                if self._timer is None and self._waiters:
                    self._dispatch()
            raise
        return loop.time() - now

    def _take(self, now: float, rate: float) -> None:
        self._last = now
        interval = 1.0 / rate
        if now - self._next >= interval:
            self._next = now + interval  # after an idle spell: a fresh grid, nothing banked
        else:
            # On the grid: a turn served a little late (a busy loop) does not push the next
            # one back, and no two turns ever share one interval of the grid.
            self._next += interval

    def _dispatch(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiters:
            rate = self.rate
            if rate is not None and now < self._next:
                self._timer = loop.call_at(self._next, self._dispatch)
                return
            waiter = self._waiters.popleft()
            if waiter.done():
                continue  # cancelled while queued: its turn goes to the next
            waiter.set_result(None)
            if rate is not None:
                self._take(now, rate)


class AdaptiveRate:
    """Learns the rate a (host, API) accepts from its answers, and paces sends to it.

    A decrease happens at once, from what the trailing second shows; the estimate then
    settles half a second later, once the accepted answers still in flight at the time
    (they pay the backend's latency, 429s do not) have arrived. The decrease is a trial:
    if the share of 429s among the answers to requests sent under it does not fall, the
    429s were noise and the rate before it comes back. Only a probe that survives a whole
    window of the gateway at its higher rate raises the estimate.
    """

    __slots__ = (
        "_accepted",
        "_bucket",
        "_ceiling",
        "_climbed_at",
        "_decreased_at",
        "_heard",
        "_hint",
        "_noise",
        "_noise_until",
        "_peak",
        "_probe_every",
        "_probing_since",
        "_sent",
        "_settling",
        "_started",
        "_throttled",
        "_trial",
        "_window",
        "_wins",
        "good",
        "limiter",
    )

    def __init__(self) -> None:
        self.limiter = RateLimiter()
        self._sent = [0] * _BUCKETS
        self._accepted = [0] * (2 * _BUCKETS)  # two seconds (see _typical_second)
        self._throttled = [0] * _BUCKETS
        self._bucket = 0
        #: The rate the server was seen to accept while throttling (requests/s).
        self.good: float | None = None
        self._ceiling: float | None = None  # what good was before the decrease settling now
        self._settling = False
        self._peak = 0  # the most accepted in a trailing second while settling
        self._decreased_at = float("-inf")
        self._climbed_at = float("-inf")
        self._probe_every = _FIRST_PROBE
        self._probing_since: float | None = None
        self._wins = 0  # probes won in a row
        self._trial: _Trial | None = None
        self._noise = 0.0  # the share of 429s a trial found to be noise
        self._noise_until = float("-inf")
        self._heard: str | None = None  # the last 429 message read for a hint
        self._hint: float | None = None  # the rate the gateway's message names
        self._window = 1.0  # the gateway's window, as its message names it
        self._started: float | None = None  # when the first request went out

    def sending(self, now: float) -> None:
        """A request to this (host, API) is going out now."""
        bucket = int(now * _BUCKETS)
        if bucket != self._bucket:
            if self._started is None:
                self._started = now
            self._roll(bucket)
        self._sent[bucket % _BUCKETS] += 1

    def heard(self, message: object) -> None:
        """A 429's message (``error_msg``): the quota it names, if any, is a hint."""
        if not isinstance(message, str) or message == self._heard:
            return
        self._heard = message
        hint = quota_hint(message)
        if hint is not None:
            self._hint, self._window = hint

    def floor(self) -> float:
        """The pacing floor of a throttled call's wait: one turn at the learned rate."""
        rate = self.limiter.rate
        return 1.0 / rate if rate else 0.0

    def record(self, now: float, sent_at: float, *, throttled: bool) -> None:
        """One answer that passed the gateway (``throttled``: it was a 429)."""
        bucket = int(now * _BUCKETS)
        if bucket != self._bucket:
            self._roll(bucket)
        trial = self._trial
        if trial is not None and sent_at >= trial.since + _EPISODE:
            trial.answers += 1
            trial.throttled += throttled
            if trial.answers >= _TRIAL_ANSWERS and now - trial.since >= 2 * _EPISODE:
                self._judge(now, trial)  # a whole window's answers after the spent one
        if trial is not None and now - trial.since >= _TRIAL_LONGEST:
            self._trial = None  # too few answers to judge: the decrease stays
        if throttled:
            self._throttled[bucket % _BUCKETS] += 1
            # Answers to requests sent before the last decrease, or in the window it
            # spent, say nothing about it.
            if sent_at >= self._decreased_at + _EPISODE:
                self._on_throttle(now)
            return
        self._accepted[bucket % (2 * _BUCKETS)] += 1
        if self._settling:
            # Bursty traffic (retries bunched by one Retry-After) lands at the start of the
            # gateway's windows: the trailing second may straddle them, so keep its peak.
            self._peak = max(self._peak, self._last_second())
        if (
            self.limiter.rate is not None
            and now - self._climbed_at >= _SPELL
            and now - self._decreased_at >= _SPELL
        ):
            self._climb(now)

    def _roll(self, bucket: int) -> None:
        """Forget the buckets that fell out of the trailing second."""
        for stale in range(max(self._bucket + 1, bucket - 2 * _BUCKETS + 1), bucket + 1):
            self._accepted[stale % (2 * _BUCKETS)] = 0
            if stale > bucket - _BUCKETS:
                self._sent[stale % _BUCKETS] = 0
                self._throttled[stale % _BUCKETS] = 0
        self._bucket = bucket

    def _last_second(self) -> int:
        """Answers accepted in the trailing second."""
        kept = self._accepted
        return sum(
            kept[b % (2 * _BUCKETS)] for b in range(self._bucket - _BUCKETS + 1, self._bucket + 1)
        )

    def _typical_second(self) -> int:
        """The median of the answers accepted per second over the trailing two seconds.

        A fixed window lets its quota through at its start, in a burst: a one-second span
        may hold one burst, parts of two, or most of neither, but most spans hold exactly
        one. Only spans that began after the first request count.
        """
        kept = self._accepted
        first = self._bucket - 2 * _BUCKETS + 1
        if self._started is not None:
            first = max(first, int(self._started * _BUCKETS))
        counts = [kept[b % (2 * _BUCKETS)] for b in range(first, self._bucket + 1)]
        if len(counts) <= _BUCKETS:
            return sum(counts)
        running = sum(counts[:_BUCKETS])
        seconds = [running]
        for leaving, coming in zip(counts, counts[_BUCKETS:], strict=False):
            running += coming - leaving
            seconds.append(running)
        seconds.sort()
        return seconds[len(seconds) // 2]

    def _on_throttle(self, now: float) -> None:
        # Whether throttling is a real share is judged against what was *sent* in the
        # trailing second: 429s come back at once, accepted answers only after the
        # backend's latency, so answers alone would make a run's first 429s look like a
        # flood. The rate is set from the accepted answers (low while some are still on
        # their way) and settles half a second later, once they have all arrived.
        throttled = sum(self._throttled)
        accepted = self._last_second()
        sent = sum(self._sent)
        if self._probing_since is not None:
            # The probe found the quota where it was: back to the good rate, and probe
            # less often. The estimate stays: a probe's answers prove nothing lower, and
            # the 429s of the window it overfilled are its own, not news.
            self._probing_since = None
            self._probe_every *= 2
            self._wins = 0
            rate = _MARGIN * self.good if self.good else _FLOOR
        elif now - self._decreased_at < 2 * _EPISODE:
            return  # the trailing second still holds the last episode's 429s
        elif not accepted:
            if throttled >= _STORM_MIN and throttled >= _STORM_SHARE * sent:
                self._storm(now, sent)
            # Else a flood whose accepted answers are still on their way: no rate to
            # learn from yet; the throttled calls wait their turn.
            return
        elif throttled < _QUOTA_MIN_THROTTLED or throttled < self._share_needed(now) * sent:
            return  # occasional throttling: pushback for that call, not a quota
        else:
            trial = self._trial
            if trial is None or now - trial.since >= _TRIAL_LONGEST:
                sample = max(sent, throttled + accepted)
                # What was sent, per second (the trailing second may not be full yet).
                seen = min(1.0, max(now - (self._started or now), 1 / _BUCKETS))
                self._trial = _Trial(
                    now, (throttled, sample, sample / seen), self.limiter.rate, self.good
                )
            else:
                trial.restart(now)  # slower still: judged afresh, restored as before
            if not self._settling:
                self._ceiling = self.good
            # Never above what was good before: the trailing second can straddle two of
            # the gateway's windows; only a probe that wins raises the estimate.
            ceiling = self._ceiling
            typical = self._typical_second()
            good = min(float(typical), ceiling) if ceiling else float(typical)
            self.good = self._bounded_by_hint(good, typical)
            self._settling = True
            self._peak = accepted
            rate = _MARGIN * self.good
        self.limiter.set_rate(max(rate, _FLOOR))
        self._decreased_at = self._climbed_at = now

    def _bounded_by_hint(self, good: float, accepted: int) -> float:
        """``good``, but never above the quota the gateway's message names.

        A hint the answers contradict (the trailing second saw more than twice the quota
        it names accepted) is ignored: it is only server text.
        """
        hint = self._hint
        if hint is None or accepted > 2 * hint * self._window:
            return good
        return min(good, hint)

    def _storm(self, now: float, sent: int) -> None:
        """Nothing accepted, everything refused: halve the rate (from what was sent)."""
        rate = self.limiter.rate
        halved = (rate if rate is not None else float(sent)) / 2
        hint = self._hint
        if hint is not None:
            halved = min(halved, hint)
            if self.good is None:
                self.good = hint  # the rate to climb back to once answers are accepted
        self._settling = False
        self._probing_since = None
        self.limiter.set_rate(max(halved, _FLOOR))
        self._decreased_at = self._climbed_at = now

    def _share_needed(self, now: float) -> float:
        """The share of 429s that makes a trial: more than the noise a trial last found."""
        if now >= self._noise_until:
            return _QUOTA_SHARE
        return max(_QUOTA_SHARE, min(_NOISE_ABOVE * self._noise, _STILL_REFUSED))

    def _judge(self, now: float, trial: _Trial) -> None:
        """The trial has run: keep the slower rate (a quota) or restore the old one (noise)."""
        self._trial = None
        rate = self.limiter.rate
        if rate is not None and rate >= _SLOWER * trial.before_rate:
            # Hardly slower than what was sent before: no experiment, nothing learned (the
            # next episode may come at once: its trailing second is after this decrease).
            self._restore(trial)
            return
        share = trial.throttled / trial.answers
        before = trial.before_throttled / trial.before_sample
        pooled = (trial.before_throttled + trial.throttled) / (trial.before_sample + trial.answers)
        error = math.sqrt(pooled * (1 - pooled) * (1 / trial.before_sample + 1 / trial.answers))
        if abs(before - share) >= _FELL * error or share >= _STILL_REFUSED:
            # The share fell (a quota), or rose (a tighter one), or nearly everything is
            # still refused: keep it; the next episode may slow down more.
            return
        # Slower, and as many 429s as before: they did not come from our rate.
        self._noise, self._noise_until = pooled, now + _NOISE_MEMORY
        self._restore(trial)
        self._decreased_at = self._climbed_at = now  # the next episode: at the rate restored

    def _restore(self, trial: _Trial) -> None:
        """Back to the rate (and the estimate) before the trial."""
        self._settling = False
        self.good = trial.good
        self.limiter.set_rate(trial.rate)

    def _climb(self, now: float) -> None:
        self._climbed_at = now
        limiter = self.limiter
        rate = limiter.rate
        assert rate is not None  # noqa: S101 - only called with a limit set
        binding, limiter.waited = limiter.waited, False
        accepted = float(self._last_second())
        if self._settling:
            # The accepted answers in flight at the decrease have arrived: count them, but
            # never above what was good before (only a probe may raise that).
            self._settling = False
            settled = max(self.good or 0.0, accepted, float(self._peak))
            if not settled:
                # Nothing was accepted after all (a storm): nothing learned, no limit.
                self.good = self._ceiling
                limiter.set_rate(_MARGIN * self.good if self.good else None)
                return
            good = min(settled, self._ceiling) if self._ceiling else settled
            self.good = self._bounded_by_hint(good, int(accepted))
        if self._probing_since is not None:
            if now - self._probing_since < _PROBE_JUDGED * self._window:
                return  # a fixed window fills before it refuses: not judged yet
            # A whole window at the probe rate without a 429: the quota was raised.
            self._probing_since = None
            self._wins += 1
            if self._wins >= _WINS_TO_UNLIMITED:
                # Again and again more was accepted: the quota is gone (or far above us).
                self.good, self._wins = None, 0
                self._probe_every = _FIRST_PROBE
                limiter.set_rate(None)
                return
            # What the probe sent went through: that rate is good now.
            self.good = max(self.good or 0.0, accepted, rate / _PROBE * 1.25)
            self._probe_every = _SPELL
        target = _MARGIN * self.good if self.good else None
        if target is None or rate >= _UNLIMITED:
            # Nothing known to hold on to: climb until the limit no longer binds.
            limiter.set_rate(None if not binding or rate >= _UNLIMITED else rate * _CLIMB)
        elif rate < target:
            limiter.set_rate(min(rate * _CLIMB, target))
        elif binding and now - self._decreased_at >= self._probe_every and self.good:
            self._probing_since = now
            limiter.set_rate(self.good * _PROBE)


class _Trial:
    """A decrease on trial: the share of 429s before it, and the answers sent under it."""

    __slots__ = (
        "answers",
        "before_rate",
        "before_sample",
        "before_throttled",
        "good",
        "rate",
        "since",
        "throttled",
    )

    def __init__(
        self,
        since: float,
        before: tuple[int, int, float],
        rate: float | None,
        good: float | None,
    ) -> None:
        self.since = since
        # The 429s that made the decrease, out of what was sent in the trailing second,
        # and the rate that was sent at.
        self.before_throttled, self.before_sample, self.before_rate = before
        self.rate = rate  # the limiter's rate before it, restored if it was noise
        self.good = good  # the estimate before it, restored with the rate
        self.answers = 0
        self.throttled = 0

    def restart(self, since: float) -> None:
        """A further decrease: judge it afresh (restoring still goes back to the start)."""
        self.since = since
        self.answers = self.throttled = 0


class ApiGate:
    """What a send to one (host, API) passes: the learned rate, then the ``max_rate`` cap."""

    __slots__ = ("cap", "learned")

    def __init__(self, max_rate: float | None = None) -> None:
        self.learned = AdaptiveRate()
        self.cap = RateLimiter(max_rate) if max_rate is not None else None

    def open(self) -> bool:
        """Whether any send passes at once: no cap, and no rate learned."""
        return self.cap is None and self.learned.limiter.rate is None

    def fastest(self, *, adaptive: bool) -> float | None:
        """The fastest rate a send must obey (the learned one only if it is ``adaptive``).

        One turn of it is how long a send may queue for a slot before its turn goes stale.
        """
        rates = [self.cap.rate if self.cap is not None else None]
        if adaptive:
            rates.append(self.learned.limiter.rate)
        return max((rate for rate in rates if rate), default=None)


class ConcurrencyLimit:
    """The manager's semaphore: at most ``limit`` requests in flight.

    Behaves like ``asyncio.Semaphore`` (FIFO, cancellation-safe) but the uncontended
    acquire is a plain method call: on the request hot path that saves two coroutine
    frames per call, which is most of the distance to a raw aiohttp loop.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued; never waits."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot, in arrival order."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
