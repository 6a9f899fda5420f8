"""What a bulk run reports: one ``Outcome`` per input item, and the run's ``BulkReport``."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Final, Generic, TypeVar

import attrs

from asyncdeleter._histogram import LatencyHistogram

__all__ = ["STOPPING_KINDS", "BulkReport", "Outcome", "OutcomeKind", "ProgressCallback", "Tally"]

_log: Final = logging.getLogger("asyncdeleter")

T = TypeVar("T")


class OutcomeKind(enum.StrEnum):
    """How one input item of a bulk run ended (the CLI report uses the same words)."""

    SUCCEEDED = "succeeded"  #: deleted or closed by this run
    ALREADY_GONE = "already_gone"  #: a first-attempt 404 with ``missing_ok``
    FAILED = "failed"  #: the call raised; ``Outcome.error`` says why
    INVALID = "invalid"  #: failed local validation; never sent
    SKIPPED = "skipped"  #: never sent (``fail_fast``, ``stop()``, ``break``, cancellation)
    PLANNED = "planned"  #: a sweep's dry run: would be deleted; nothing was sent


@attrs.frozen(kw_only=True, slots=True)
class Outcome(Generic[T]):
    """What happened to one input item.

    Attributes:
        target: The item as given: ``(workspace_id, session_id)`` or a workspace id (for
            an ``invalid`` item, whatever object was in the input).
        index: The item's position in the input, from 0.
        kind: How it ended.
        error: The typed error of a ``failed`` or ``invalid`` item (``CancelledError`` for
            work cut off by cancelling the run).
        attempts: Requests sent for it (throttled ones included).
        throttled: Throttling answers (429) it met: pushback, not failure.
        throttled_seconds: Time it spent waiting because of throttling.
        elapsed: Seconds from its first send to its end (0 if never sent).
        request_id: The ``X-Request-Id`` of the last answer, if any.
        safe_to_retry: Running the item again cannot do harm and may succeed (every
            ``failed`` or ``skipped`` item of an idempotent delete is).
    """

    target: T
    index: int
    kind: OutcomeKind
    error: BaseException | None = None
    attempts: int = 0
    throttled: int = 0
    throttled_seconds: float = 0.0
    elapsed: float = 0.0
    request_id: str | None = None
    safe_to_retry: bool = False


#: ``on_progress(done, total_or_None, last_outcome)``, called once per item, in order.
ProgressCallback = Callable[[int, int | None, Outcome[T]], object]


@attrs.frozen(kw_only=True)
class BulkReport(Generic[T]):
    """The figures of a bulk run, complete or so far.

    Attributes:
        total: Items accounted for (each input item once).
        succeeded: Items this run deleted.
        already_gone: Items that were missing before the run.
        failed: Items whose call raised.
        invalid: Items that failed validation and were never sent.
        skipped: Items never started.
        planned: Items a dry-run sweep would delete (nothing was sent).
        attempts: Requests sent, in all.
        retries: Requests beyond each item's first.
        throttled: Throttling answers (429) met, in all.
        throttled_seconds: Time items spent waiting because of throttling, summed over items.
        elapsed: Seconds from the start of the run to its end (or to now).
        latency_p50: Median item latency in seconds (``None`` if nothing was sent).
        latency_p95: 95th percentile item latency.
        latency_p99: 99th percentile item latency.
        cancelled: The run was cancelled or stopped, or its consumer stopped early.
        unread_from: The index of the first input item never read (``None`` when the
            whole input was read): re-run the input from there to finish the job.
        failures: The ``failed`` and ``invalid`` outcomes (awaited form only).
        outcomes: Every outcome in completion order (awaited form only: O(N)).
    """

    total: int
    succeeded: int
    already_gone: int
    failed: int
    invalid: int
    skipped: int
    attempts: int
    retries: int
    throttled: int
    throttled_seconds: float
    elapsed: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    cancelled: bool
    unread_from: int | None = None
    planned: int = 0
    failures: tuple[Outcome[T], ...] = ()
    outcomes: tuple[Outcome[T], ...] = ()

    @property
    def ok(self) -> bool:
        """Every item succeeded, was already gone, or (in a dry run) was planned."""
        return self.failed == self.invalid == self.skipped == 0 and not self.cancelled


#: The kinds that stop a ``fail_fast`` run, and that ``BulkReport.failures`` keeps.
STOPPING_KINDS: Final = frozenset({OutcomeKind.FAILED, OutcomeKind.INVALID})


class Tally(Generic[T]):
    """The running figures of a bulk run: O(1) state, unless outcomes are kept.

    Args:
        on_progress: Called once per outcome, in the order they are counted.
        total_hint: The input's length when it has one (for ``on_progress``).
    """

    def __init__(self, on_progress: ProgressCallback[T] | None, total_hint: int | None) -> None:
        self._on_progress = on_progress
        self._total_hint = total_hint
        self.keep_outcomes = False  # the awaited form keeps them: O(N) by nature
        self._outcomes: list[Outcome[T]] = []
        self._failures: list[Outcome[T]] = []
        self._counts = dict.fromkeys(OutcomeKind, 0)
        self._attempts = 0
        self._throttled = 0
        self._throttled_seconds = 0.0
        self._histogram = LatencyHistogram()

    def add(self, outcome: Outcome[T]) -> None:
        """Count one outcome, and tell the progress callback."""
        self._counts[outcome.kind] += 1
        if outcome.attempts:
            self._attempts += outcome.attempts
            self._throttled += outcome.throttled
            self._throttled_seconds += outcome.throttled_seconds
            self._histogram.add(outcome.elapsed)
        if self.keep_outcomes:
            self._outcomes.append(outcome)
            if outcome.kind in STOPPING_KINDS:
                self._failures.append(outcome)
        if self._on_progress is not None:
            done = sum(self._counts.values())
            try:
                self._on_progress(done, self._total_hint, outcome)
            except Exception:  # noqa: BLE001 - a progress display must not break the run
                _log.exception("on_progress callback failed; the run goes on")

    def report(self, *, elapsed: float, cancelled: bool, unread_from: int | None) -> BulkReport[T]:
        """The figures so far as a ``BulkReport``."""
        counts = self._counts
        sent = self._histogram
        return BulkReport(
            total=sum(counts.values()),
            succeeded=counts[OutcomeKind.SUCCEEDED],
            already_gone=counts[OutcomeKind.ALREADY_GONE],
            failed=counts[OutcomeKind.FAILED],
            invalid=counts[OutcomeKind.INVALID],
            skipped=counts[OutcomeKind.SKIPPED],
            attempts=self._attempts,
            retries=self._attempts - sent.count,
            throttled=self._throttled,
            throttled_seconds=self._throttled_seconds,
            elapsed=elapsed,
            latency_p50=sent.percentile(0.50),
            latency_p95=sent.percentile(0.95),
            latency_p99=sent.percentile(0.99),
            cancelled=cancelled,
            unread_from=unread_from,
            planned=counts[OutcomeKind.PLANNED],
            failures=tuple(self._failures),
            outcomes=tuple(self._outcomes),
        )
