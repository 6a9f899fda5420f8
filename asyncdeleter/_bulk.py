"""Bulk runs: stream any (async) iterable through one single-target operation, bounded.

A run keeps ``concurrency + waiting`` worker tasks, whatever the input's size. Each worker
pulls the next item only when there is room for its outcome, so the input is read lazily
and a slow consumer holds the run back instead of letting outcomes pile up. An item that
starts to wait (for a retry, a turn of the rate limiter, or a poll) gives its room to new
work while one of ``waiting`` places is free: so up to ``concurrency`` items are on their
way to be sent and up to ``concurrency + waiting`` in progress, and waiting items never
hold back the ones that could be sent. Every input item read ends
as exactly one ``Outcome`` (and, for a ``Sequence``, every item not read as a ``skipped``
one); ``report.unread_from`` says where an input that was not read to its end resumes.

The input is read lazily, by one worker at a time, and never past a stop (``BulkInput``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from typing import Any, Final, Generic, TypeVar

from asyncdeleter._calls import Answer, Stopped, StopSignal, Tracker
from asyncdeleter._config import CONFIRMING_PER_SLOT, check_hook
from asyncdeleter._errors import ConfigurationError, InvalidIdentifierError
from asyncdeleter._outcomes import (
    STOPPING_KINDS,
    BulkReport,
    Outcome,
    OutcomeKind,
    ProgressCallback,
    Tally,
)
from asyncdeleter._throttle import ConcurrencyLimit

__all__ = ["BulkReport", "BulkRun", "Outcome", "OutcomeKind", "ProgressCallback", "bulk_run"]

_log: Final = logging.getLogger("asyncdeleter")

T = TypeVar("T")


#: What a run does to one item (a single-target call, or a dry run's nothing); the tracker
#: carries the run's stop signal and throttle hook in, and the item's request count out.
ItemAction = Callable[[T, Tracker], Awaitable[Answer]]
#: Checks and normalises one input item, raising ``InvalidIdentifierError``.
Validator = Callable[[object], T]


def bulk_run(
    source: Iterable[T] | AsyncIterable[T],
    *,
    validate: Validator[T],
    operation: ItemAction[T],
    concurrency: int,
    fail_fast: bool,
    on_progress: ProgressCallback[T] | None,
    adaptive: bool,
) -> BulkRun[T]:
    """The run of a manager that lets ``concurrency`` requests out at once.

    Items waiting (to retry, for a turn, to poll) hold a place of their own, so up to
    ``CONFIRMING_PER_SLOT`` x ``concurrency`` are in progress and waiting items never
    hold back sending.

    Raises:
        ConfigurationError: ``on_progress`` is not a plain callable (an ``async def``
            would never be awaited).
    """
    if on_progress is not None:
        check_hook("on_progress", on_progress)
    return BulkRun(
        source,
        validate=validate,
        operation=operation,
        concurrency=concurrency,
        waiting=(CONFIRMING_PER_SLOT - 1) * concurrency,
        adaptive=adaptive,
        fail_fast=fail_fast,
        on_progress=on_progress,
    )


class BulkRun(Generic[T]):
    """A bulk run: ``await`` it for a ``BulkReport``, or ``async for`` its outcomes.

    Nothing starts until it is awaited or iterated, and it can be consumed once. With
    ``async for``, outcomes arrive in completion order; leaving the loop early (``break``)
    stops the run and cancels its in-flight work. ``report`` gives the figures at any time,
    including after cancellation, so the caller can learn what completed.

    Stop means stop: after ``break``, ``stop()``, ``fail_fast``'s first failure or
    cancellation, no new request is sent (no new item, no retry). ``stop()`` and
    ``fail_fast`` let requests already on the wire finish; a call waiting to retry ends
    ``failed`` (safe to re-run). ``break`` and cancellation cancel calls in flight (they
    end ``failed``, safe to re-run). Items never sent end ``skipped``.

    When a run ends early, a sized input (a ``Sequence``) reports each item not started
    as ``skipped``; any other input is read no further (an endless generator stays
    endless), and ``report.unread_from`` says where it resumes. ``await run.wait()`` after
    a ``break`` (or while someone else consumes the run) waits for the run to end and
    returns its final report.
    """

    def __init__(
        self,
        source: Iterable[object] | AsyncIterable[object],
        *,
        validate: Validator[T],
        operation: ItemAction[T],
        concurrency: int,
        adaptive: bool,
        fail_fast: bool,
        on_progress: ProgressCallback[T] | None,
        waiting: int = 0,
    ) -> None:
        self._validate = validate
        self._operation = operation
        self._concurrency = concurrency + waiting  # worker tasks
        self._adaptive = adaptive
        self._fail_fast = fail_fast
        self._tally: Tally[T] = Tally(
            on_progress, len(source) if isinstance(source, Sized) else None
        )
        self._claimed = False
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._cancelled = False
        # Run state, all O(concurrency):
        self._input = BulkInput(source)
        self._stop = _RunSignal(self._park)
        self._stopped_by_caller = False
        self._workers: list[asyncio.Task[None]] = []
        self._ended = asyncio.Event()
        self._source_error: BaseException | None = None  # what the input raised
        self._in_flight: dict[T, asyncio.Future[None]] = {}
        # index -> (item, its tracker once it is on its way to be sent)
        self._unsettled: dict[int, tuple[object, Tracker | None]] = {}
        # Delivered outcomes (None: a worker ended), and the consumer's wake-up call.
        self._ready: collections.deque[Outcome[T] | None] = collections.deque()
        self._ready_waiter: asyncio.Future[None] | None = None
        self._room = ConcurrencyLimit(concurrency)
        # Places for waiting items, which hold them instead of room; the items holding one,
        # and which item each worker task is working on.
        self._waiting = ConcurrencyLimit(waiting) if waiting else None
        self._parked: set[int] = set()
        self._working_on: dict[asyncio.Task[None] | None, int] = {}

    # -- the two ways to consume a run -------------------------------------------------

    def __await__(self) -> Generator[object, None, BulkReport[T]]:
        return self._collect().__await__()

    def __aiter__(self) -> AsyncIterator[Outcome[T]]:
        return _Stream(self, self._stream())

    async def wait(self) -> BulkReport[T]:
        """Run to the end and return the report: the same as ``await run``, as a coroutine.

        A ``BulkRun`` is awaitable but is not itself a coroutine, so
        ``task_group.create_task(run)`` is refused; ``create_task(run.wait())`` works. On
        a run already being consumed (or left with ``break``), it waits for the run's end
        and returns the final report.
        """
        if self._claimed:
            await self._ended.wait()
            return self.report
        return await self._collect()

    async def _collect(self) -> BulkReport[T]:
        self._tally.keep_outcomes = True
        async with contextlib.aclosing(self._stream()) as stream:
            async for _ in stream:
                pass
        return self.report

    def stop(self) -> None:
        """Start no new work; calls in flight finish and the run then ends (say, on Ctrl-C).

        Calls waiting to retry end at once (``failed``, safe to re-run). Unlike
        ``fail_fast``, the rest of the input is not read (a ``Sequence``'s remaining items
        are still reported ``skipped``); ``report.unread_from`` says where it resumes, and
        ``report.cancelled`` is true.
        """
        self._stopped_by_caller = True
        self._stop_sending()

    def _stop_sending(self) -> None:
        """Start nothing more; a worker waiting on an async input stops waiting for it."""
        self._stop.set()
        self._input.interrupt()

    def _halt(self) -> None:
        """The consumer left the loop (``break``): send nothing more, cancel what is in flight.

        Called synchronously when the iterator is dropped, before the generator's own
        clean-up is scheduled, so no worker can send in between.
        """
        self._stop.set()
        for worker in self._workers:
            worker.cancel()

    @property
    def report(self) -> BulkReport[T]:
        """The figures so far (final once the run has ended)."""
        loop_time = _now()
        started = self._started_at if self._started_at is not None else loop_time
        ended = self._ended_at if self._ended_at is not None else loop_time
        return self._tally.report(
            elapsed=ended - started,
            cancelled=self._cancelled,
            unread_from=None if self._input.exhausted else self._input.pulled,
        )

    # -- the engine --------------------------------------------------------------------

    async def _stream(self) -> AsyncGenerator[Outcome[T], None]:
        if self._claimed:
            raise RuntimeError("a bulk run can be awaited or iterated only once")
        self._claimed = True
        self._started_at = _now()
        self._input.open()
        loop = asyncio.get_running_loop()
        workers = self._workers = [
            loop.create_task(self._worker()) for _ in range(self._concurrency)
        ]
        live = len(workers)
        completed = False
        try:
            ready = self._ready
            while live:
                if not ready:
                    # Sleep until a worker delivers; then take everything delivered meanwhile.
                    self._ready_waiter = loop.create_future()
                    try:
                        await self._ready_waiter
                    finally:
                        self._ready_waiter = None
                    continue
                outcome = ready.popleft()
                if outcome is None:
                    live -= 1
                    continue
                self._account(outcome)
                yield outcome
                # The consumer asks for the next outcome: only now is there room for new
                # work, so a ``break`` right after an outcome leaves nothing new on the wire.
                self._release(outcome.index)
            if self._source_error is not None:
                raise self._source_error
            # Ended early (fail_fast, stop()): a sized input accounts for each item not started.
            for index, item in self._input.unread():
                skipped = Outcome[T](
                    target=item,  # type: ignore[arg-type]
                    index=index,
                    kind=OutcomeKind.SKIPPED,
                    safe_to_retry=True,
                )
                self._account(skipped)
                yield skipped
                if index % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a huge list must not freeze the loop
            completed = True
        finally:
            await self._shut_down(workers, completed=completed)

    async def _shut_down(self, workers: list[asyncio.Task[None]], *, completed: bool) -> None:
        self._stop_sending()  # first: no worker may send from here on
        for worker in workers:
            worker.cancel()
        # Wait for the cancelled workers so none outlives the run (and no warning fires),
        # even through further cancellations: the accounting below must happen.
        cancelled_again = False
        while pending := [worker for worker in workers if not worker.done()]:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled_again = True
        # Outcomes that were ready but never consumed still happened.
        while self._ready:
            outcome = self._ready.popleft()
            if outcome is not None:
                self._account(outcome)
        # Work cut off mid-way: an item sent may or may not have taken effect.
        for index, (item, tracker) in sorted(self._unsettled.items()):
            sent = tracker is not None and tracker.attempts > 0
            self._account(
                Outcome[T](
                    target=item,  # type: ignore[arg-type]
                    index=index,
                    kind=OutcomeKind.FAILED if sent else OutcomeKind.SKIPPED,
                    error=asyncio.CancelledError("the bulk run was cancelled") if sent else None,
                    attempts=tracker.attempts if tracker is not None else 0,
                    throttled=tracker.throttled if tracker is not None else 0,
                    throttled_seconds=tracker.throttled_seconds if tracker is not None else 0.0,
                    safe_to_retry=True,
                )
            )
        self._unsettled.clear()
        cancelled_again = await self._skip_unread_sequence() or cancelled_again
        self._cancelled = not completed or self._stopped_by_caller
        self._ended_at = _now()
        try:
            await self._input.close()
        except asyncio.CancelledError:
            # Cancelled again during the input's own clean-up: that clean-up is cut short
            # (the caller insists), but the run has ended and its report is final.
            cancelled_again = True
        finally:
            self._ended.set()  # however the clean-up ended: wait() must not hang
        if cancelled_again:
            raise asyncio.CancelledError

    async def _skip_unread_sequence(self) -> bool:
        """A sized input cut short (``break``, cancellation): its unread items are skipped.

        Returns whether the task was cancelled (again) meanwhile: the accounting finishes
        regardless, yielding to the loop now and then.
        """
        cancelled = False
        for index, item in self._input.unread():
            self._account(
                Outcome[T](
                    target=item,  # type: ignore[arg-type]
                    index=index,
                    kind=OutcomeKind.SKIPPED,
                    safe_to_retry=True,
                )
            )
            if index % _YIELD_EVERY == 0:
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    cancelled = True
        return cancelled

    async def _pull(self) -> tuple[int, object] | None:
        """The next input item with its index; it is unsettled until its outcome is in."""
        pulled = await self._input.pull(self._stop)
        if pulled is not None:
            self._unsettled[pulled[0]] = (pulled[1], None)
        return pulled

    async def _worker(self) -> None:
        stop = self._stop
        try:
            while not stop.stopped:
                # Room for one more outcome: a slow consumer holds the run back here.
                if not self._room.try_acquire():
                    await self._room.acquire()
                if stop.stopped:
                    self._room.release()
                    return
                try:
                    pulled = await self._pull()
                except asyncio.CancelledError:
                    self._room.release()
                    if stop.stopped:
                        return  # the run stopped while this worker waited on the input
                    # The input itself raised it (it awaited something that was cancelled).
                    self._source_error = RuntimeError("the bulk run's input was cancelled")
                    self._stop_sending()
                    return
                except BaseException as exc:  # noqa: BLE001 - the input's failure ends the run
                    self._source_error = exc
                    self._stop_sending()
                    self._room.release()
                    return
                if pulled is None:
                    self._room.release()
                    return
                task = asyncio.current_task()
                self._working_on[task] = pulled[0]
                try:
                    outcome = await self._process(*pulled)
                finally:
                    del self._working_on[task]
                del self._unsettled[outcome.index]
                if self._fail_fast and outcome.kind in STOPPING_KINDS:
                    self._stop_sending()
                self._deliver(outcome)
        finally:
            self._deliver(None)  # this worker is done

    def _park(self) -> None:
        """The current task's item starts to wait: it gives its room to new work, if it can.

        It holds a waiting place instead until its outcome is consumed, so the room it left
        can go to an item that has something to send.
        """
        waiting = self._waiting
        if waiting is None:
            return
        index = self._working_on.get(asyncio.current_task())
        if index is None or index in self._parked or not waiting.try_acquire():
            return
        self._parked.add(index)
        self._room.release()

    def _release(self, index: int) -> None:
        """An outcome was consumed: free the room (or the waiting place) its item held."""
        if index in self._parked:
            self._parked.discard(index)
            assert self._waiting is not None  # noqa: S101 - parked only with places
            self._waiting.release()
        else:
            self._room.release()

    def _deliver(self, outcome: Outcome[T] | None) -> None:
        """Hand an outcome (or a worker's end, ``None``) to the consumer, waking it if asleep."""
        self._ready.append(outcome)
        waiter = self._ready_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _process(self, index: int, item: object) -> Outcome[T]:
        try:
            target = self._validate(item)
        except InvalidIdentifierError as exc:
            return Outcome(target=item, index=index, kind=OutcomeKind.INVALID, error=exc)  # type: ignore[arg-type]
        # The same target is never in flight twice: a duplicate waits for the first.
        # Shielded: a waiter's cancellation must not cancel the first one's future.
        while (busy := self._in_flight.get(target)) is not None:
            await asyncio.shield(busy)
        if self._stop.stopped:
            return Outcome(target=target, index=index, kind=OutcomeKind.SKIPPED, safe_to_retry=True)
        done = asyncio.get_running_loop().create_future()
        self._in_flight[target] = done
        try:
            return await self._send(index, item, target)
        finally:
            del self._in_flight[target]
            done.set_result(None)

    async def _send(self, index: int, item: object, target: T) -> Outcome[T]:
        tracker = Tracker(self._stop, adaptive=self._adaptive)
        self._unsettled[index] = (item, tracker)
        started = _now()

        def ended(
            kind: OutcomeKind, error: BaseException | None = None, request_id: str | None = None
        ) -> Outcome[T]:
            if kind is OutcomeKind.FAILED and tracker.attempts == 0 and not _counts(error):
                kind = OutcomeKind.SKIPPED  # cut off before anything was sent
            return Outcome(
                target=target,
                index=index,
                kind=kind,
                error=None if kind is OutcomeKind.SKIPPED else error,
                attempts=tracker.attempts,
                throttled=tracker.throttled,
                throttled_seconds=tracker.throttled_seconds,
                elapsed=_now() - started if tracker.attempts else 0.0,
                request_id=request_id or getattr(error, "request_id", None),
                safe_to_retry=kind in (OutcomeKind.FAILED, OutcomeKind.SKIPPED),
            )

        try:
            answer = await self._operation(target, tracker)
        except Stopped:
            # The run stopped before this item's next request: never sent (skipped), or
            # cut off before a retry or a poll (it may have taken effect: failed, safe to
            # re-run), with the error its tracker says.
            return ended(OutcomeKind.FAILED, tracker.stopped_error())
        except ConfigurationError as exc:
            # The manager closed (or is used from another loop): nothing more can be sent.
            self._stop_sending()
            return ended(OutcomeKind.FAILED, exc)
        except InvalidIdentifierError as exc:
            return ended(OutcomeKind.INVALID, exc)
        except Exception as exc:  # noqa: BLE001 - one item's failure must not end the run
            # Our own typed errors, and anything a user's credentials provider raised: the
            # item fails, the worker lives on, the run accounts for it.
            return ended(OutcomeKind.FAILED, exc)
        if answer.planned:
            kind = OutcomeKind.PLANNED
        elif answer.already_gone:
            kind = OutcomeKind.ALREADY_GONE
        else:
            kind = OutcomeKind.SUCCEEDED
        return ended(kind, request_id=answer.request_id)

    def _account(self, outcome: Outcome[T]) -> None:
        self._tally.add(outcome)


class BulkInput:
    """Any iterable or async iterable, read one item at a time.

    Attributes:
        exhausted: Everything was read (or accounted for).
        pulled: Items read so far: the index of the next one.
        puller: The worker waiting on an async input right now, if any.
    """

    def __init__(self, source: Iterable[object] | AsyncIterable[object]) -> None:
        self.source = source
        self._sync_items: Iterator[object] | None = None
        self._async_items: AsyncIterator[object] | None = None
        self._lock = asyncio.Lock()
        self.exhausted = False
        self.pulled = 0
        self.puller: asyncio.Task[object] | None = None

    def open(self) -> None:
        """Start reading (when the run starts, not when it is built)."""
        if isinstance(self.source, AsyncIterable):
            self._async_items = aiter(self.source)
        else:
            self._sync_items = iter(self.source)

    def interrupt(self) -> None:
        """A worker waiting on an async input stops waiting for it (the run stopped)."""
        puller = self.puller
        if puller is not None and puller is not asyncio.current_task():
            puller.cancel()

    async def pull(self, stop: StopSignal) -> tuple[int, object] | None:
        """The next item with its index, or ``None`` once the input is exhausted or stopped."""
        if self.exhausted:
            return None
        if self._sync_items is not None:
            try:
                item = next(self._sync_items)
            except StopIteration:
                self.exhausted = True
                return None
        else:
            assert self._async_items is not None  # noqa: S101 - set in open()
            # An async generator cannot be advanced by two workers at once.
            async with self._lock:
                if self.exhausted or stop.stopped:
                    return None
                self.puller = asyncio.current_task()
                try:
                    item = await anext(self._async_items)
                except StopAsyncIteration:
                    self.exhausted = True
                    return None
                finally:
                    self.puller = None
        index = self.pulled
        self.pulled += 1
        return index, item

    def unread(self) -> Iterator[tuple[int, object]]:
        """A sized input (a ``Sequence``) cut short: each item never read, with its index.

        Other inputs yield nothing: they are read no further (an endless generator stays
        endless), and ``pulled`` says where they resume.
        """
        source = self.source
        if self.exhausted or not isinstance(source, Sequence):
            return
        for index in range(self.pulled, len(source)):
            self.pulled = index + 1
            yield index, source[index]
        self.exhausted = True

    async def close(self) -> None:
        """Let a generator input run its own clean-up now, not at garbage collection."""
        items = self._async_items if self._async_items is not None else self._sync_items
        try:
            if isinstance(items, AsyncGenerator):
                await items.aclose()
            elif isinstance(items, Generator):
                items.close()
        except Exception:  # noqa: BLE001 - the input's clean-up must not hide the run's end
            _log.exception("closing the bulk run's input failed")


class _RunSignal(StopSignal):
    """The run's stop signal; it also tells the run when an item starts to wait on it.

    Every wait of a bulk item (before a retry, for a turn of the rate limiter, before a
    confirmation poll) goes through ``sleep`` or ``unless_stopped``.
    """

    __slots__ = ("_on_wait",)

    def __init__(self, on_wait: Callable[[], None]) -> None:
        super().__init__()
        self._on_wait = on_wait

    async def unless_stopped(self, waiting: Coroutine[Any, Any, float]) -> float:
        self._on_wait()
        return await super().unless_stopped(waiting)

    async def sleep(self, seconds: float) -> None:
        self._on_wait()
        await super().sleep(seconds)


def _counts(error: BaseException | None) -> bool:
    """Whether an item that sent nothing still failed: its own error, not a stop or a close."""
    return error is not None and not isinstance(error, ConfigurationError)


#: While accounting for a huge input's unread items, yield to the loop this often.
_YIELD_EVERY: Final = 512


class _Stream(Generic[T]):
    """The iterator ``async for`` gets: the run's generator, plus a ``break`` detector.

    When the consumer leaves the loop early, CPython drops this object at once; the
    generator's own clean-up only runs later, as a task. ``__del__`` tells the run in
    between, so no worker sends anything after the ``break``.
    """

    __slots__ = ("_generator", "_run")

    def __init__(self, run: BulkRun[T], generator: AsyncGenerator[Outcome[T], None]) -> None:
        self._run = run
        self._generator = generator

    def __aiter__(self) -> _Stream[T]:
        return self

    def __anext__(self) -> Awaitable[Outcome[T]]:
        return self._generator.__anext__()

    async def aclose(self) -> None:
        """Stop the run and wait until it has shut down (as ``contextlib.aclosing`` does)."""
        await self._generator.aclose()

    def __del__(self) -> None:
        run = self._run
        if run._workers and run._ended_at is None:  # started and not shut down yet
            run._halt()


_now: Final = time.monotonic
