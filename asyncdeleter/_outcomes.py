"""What a bulk run reports: one ``Outcome`` per input item, and the run's ``BulkReport``."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

__all__ = ["BulkReport", "Outcome", "OutcomeKind", "ProgressCallback"]

T = TypeVar("T")


class OutcomeKind(enum.StrEnum):
    """How one input item of a bulk run ended (the CLI report uses the same words)."""

    SUCCEEDED = "succeeded"  #: deleted or closed by this run
    ALREADY_GONE = "already_gone"  #: a first-attempt 404 with ``missing_ok``
    FAILED = "failed"  #: the call raised; ``Outcome.error`` says why
    INVALID = "invalid"  #: failed local validation; never sent
    SKIPPED = "skipped"  #: never sent (``fail_fast``, ``stop()``, ``break``, cancellation)


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
    failures: tuple[Outcome[T], ...] = ()
    outcomes: tuple[Outcome[T], ...] = ()

    @property
    def ok(self) -> bool:
        """Every item succeeded or was already gone."""
        return self.failed == self.invalid == self.skipped == 0 and not self.cancelled
