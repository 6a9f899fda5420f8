"""The bulk commands' engine: stream lines into a bulk run, record every line, settle on Ctrl-C.

Every input line ends as exactly one report record, whatever happens:

* a line that must not be sent (malformed, protected, outside ``--workspace-id``) is
  recorded ``invalid`` as it is read; one an earlier report marks done, ``done_before``;
* a line handed to the bulk run is recorded when its outcome arrives;
* Ctrl-C (or SIGTERM) stops new work and lets requests in flight finish; a second one
  cuts them off, and each is recorded ``failed`` (it may have taken effect; re-running it
  is safe); then the rest of a regular file is read, without sending, and recorded
  ``skipped``. A pipe or terminal may never end, so its report gets an ``incomplete``
  record instead, and so does a file whose recording is itself interrupted.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import attrs

from asyncdeleter import APIStatusError, BulkReport, BulkRun, Outcome, OutcomeKind, SessionManager
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.lines import WITHHELD, Line, Target, printable, target_ids
from asyncdeleter._cli.operations import Operation, RunOptions
from asyncdeleter._cli.report import ReportWriter
from asyncdeleter._cli.settings import Protection
from asyncdeleter._cli.source import Source

__all__ = [
    "CUT_OFF",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Job",
    "Prescan",
    "Signals",
    "classify",
    "finish_job",
    "judge",
    "now_iso",
    "prescan",
    "run_job",
    "stop_run",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
_SHOWN_PROBLEMS: Final = 100  # per run; the report has them all
CUT_OFF: Final = (
    "cut off by a second interrupt while in flight: it may have taken effect; safe to re-run"
)


def now_iso() -> str:
    """The current UTC time, ISO 8601 with a ``Z``."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.define
class Job:
    """One bulk command, resolved: what to run, how to judge each line, where to record it."""

    op: Operation
    source: Source
    writer: ReportWriter
    display: Display
    header: dict[str, object]
    scope: str | None = None  # --workspace-id: no other workspace may be named
    protection: Protection = attrs.Factory(Protection)
    dry_run: bool = False
    options: RunOptions = attrs.Factory(RunOptions)
    total: int | None = None  # lines to send, when known beforehand
    confirmed: int | None = None  # at most this many are sent: what the person confirmed
    project_id: str | None = None
    report_path: str | None = None
    input_name: str = "-"
    shown_problems: int = 0
    incomplete: bool = False


def classify(job: Job, line: Line) -> tuple[str, str | None]:
    """``("run", None)``, or the result recorded without sending, and why."""
    target = line.target
    if line.problem is not None or target is None:
        return "invalid", line.problem or "not a target"
    if job.scope is not None and isinstance(target, tuple) and target[0] != job.scope:
        return "invalid", f"workspace {target[0]} is outside --workspace-id {job.scope}"
    if (protected := job.protection.refusal(target_ids(target))) is not None:
        return "invalid", protected
    if (never := job.op.never(target)) is not None:
        return "invalid", never
    if line.done_before:
        return "done_before", None
    return ("planned" if job.dry_run else "run"), None


@attrs.define
class Prescan:
    """What a regular file holds, read once before the confirmation, without sending."""

    to_run: int = 0
    refused: int = 0
    done_before: int = 0
    problems: list[str] = attrs.Factory(list)
    sample: list[Target] = attrs.Factory(list)
    #: The first line that holds credentials (its problem, not its text), if one does.
    withheld: str | None = None


def prescan(job: Job, lines: Iterator[Line]) -> Prescan:
    """Count what the run will send and refuse (for the prompt, the bar, ``--strict``)."""
    found = Prescan()
    for line in lines:
        result, problem = classify(job, line)
        if result == "invalid":
            found.refused += 1
            if line.problem in WITHHELD and found.withheld is None:
                found.withheld = f"line {line.number} {line.problem}"
            if len(found.problems) < _SHOWN_PROBLEMS:
                found.problems.append(f"line {line.number}: {printable(problem or '')}")
        elif result == "done_before":
            found.done_before += 1
        else:
            found.to_run += 1
            if len(found.sample) < 5 and line.target is not None:
                found.sample.append(line.target)
    return found


def _settle_locally(job: Job, line: Line, rest: str | None = None) -> bool:
    """Record ``line`` if it is not to be sent; ``rest`` is the result of lines to run."""
    result, problem = classify(job, line)
    if result == "run":
        if rest is None:
            return False
        result, problem = rest, None
    job.writer.item(line, result, error_msg=problem)
    if problem is not None:
        job.shown_problems += 1
        if job.shown_problems <= _SHOWN_PROBLEMS:
            job.display.message(f"line {line.number}: {printable(problem)}")
        elif job.shown_problems == _SHOWN_PROBLEMS + 1:
            job.display.message("more lines will not be sent; the report lists every one")
    return True


class Signals:
    """Ctrl-C and SIGTERM: the first stops new work, the second cuts off what is in flight."""

    def __init__(self, job: Job, run: BulkRun[Any] | None) -> None:
        self.job = job
        self.run = run
        self.task = asyncio.current_task()
        self.first: int | None = None
        self.cut_off = False
        self.running = False  # the bulk run is being consumed: a cancel lands there
        self.recording = False  # reading the rest of the input, sending nothing
        self.stop_recording = False
        self.loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self._handle, signum)

    def _handle(self, signum: int) -> None:
        message = self.job.display.message
        if self.recording:
            self.stop_recording = True
            self.job.source.stop()
            return
        if self.first is None:
            self.first = signum
            if self.run is not None:
                self.run.stop()
                if not self.job.source.regular:
                    self.job.source.stop()  # a silent pipe must not hold the run open
                message(
                    "interrupted: no new requests; letting those in flight finish "
                    "(interrupt again to cut them off)"
                )
            return
        if not self.cut_off and self.running and self.task is not None:
            self.cut_off = True
            message("interrupted again: cutting off the requests in flight")
            self.task.cancel()

    def close(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.remove_signal_handler(signum)


async def _record_rest(job: Job, signals: Signals, result: str) -> None:
    """Read the rest of the input without sending; lines that would run get ``result``."""
    signals.recording = True
    reason = "interrupted while the rest of the input was being recorded"
    async for line in job.source.each():
        if signals.stop_recording:
            job.incomplete = True
            job.writer.incomplete(line.number if job.source.next_line else None, reason)
            return
        _settle_locally(job, line, rest=result)
        if job.writer.error is not None:
            return
    if signals.stop_recording and not job.source.exhausted:
        job.incomplete = True
        job.writer.incomplete(job.source.next_line, reason)


async def run_job(job: Job, manager: SessionManager | None) -> int:
    """Run the job (``manager`` is ``None`` for a dry run); return the exit status."""
    job.writer.header(job.header)
    if manager is None:
        signals = Signals(job, None)
        try:
            await _record_rest(job, signals, "planned")
            return finish_job(job, None, signals.first, stopped=False)
        finally:
            signals.close()
    pending: dict[int, Line] = {}
    counter = itertools.count()
    sent = 0

    def admit(line: Line) -> Target | None:
        """The target to send for ``line``, or ``None`` once it is recorded unsent."""
        nonlocal sent
        if _settle_locally(job, line):
            return None
        if job.confirmed is not None and sent >= job.confirmed:
            job.writer.item(line, "invalid", error_msg="not in the input as confirmed")
            return None
        sent += 1
        pending[next(counter)] = line
        return line.target

    def targets() -> Iterator[Target]:  # a file: read on the loop, it never blocks
        for line in job.source:
            if (target := admit(line)) is not None:
                yield target

    async def stream_targets() -> AsyncIterator[Target]:  # a pipe: read by a thread
        async for line in job.source.each():
            if (target := admit(line)) is not None:
                yield target

    source = targets() if job.source.regular else stream_targets()
    run: BulkRun[Any] = job.op.bulk(manager, source, job.options)
    if job.options.wait:
        job.display.retries_label = "retries+polls"  # each confirmation poll is a request
    signals = Signals(job, run)
    try:
        stopped = await _consume(job, run, pending, signals)
        for index in sorted(pending):
            job.writer.item(pending.pop(index), "failed", error_code="Interrupted",
                            error_msg=CUT_OFF)  # fmt: skip
        if signals.first is not None or stopped:
            await _account_for_the_rest(job, signals)
        # Still ours while the summary is written: a late Ctrl-C waits for the loop.
        return finish_job(job, run.report, signals.first, stopped=stopped)
    finally:
        signals.close()


async def _consume(job: Job, run: BulkRun[Any], pending: dict[int, Line], signals: Signals) -> bool:
    """Record each outcome as it arrives; return whether the run had to stop by itself."""
    stopped = False
    job.display.start(job.op.command, job.total)
    signals.running = True
    try:
        async for outcome in run:
            job.writer.outcome(pending.pop(outcome.index), outcome)
            job.display.advance(outcome.kind, outcome.attempts)
            stopped = judge(job, run, outcome, stopped=stopped)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not signals.cut_off or task is None:
            raise
        task.uncancel()  # our own second interrupt: the report is still to be written
    finally:
        signals.running = False
        job.display.finish()
    return stopped


def judge(job: Job, run: BulkRun[Any], outcome: Outcome[Any], *, stopped: bool) -> bool:
    """After an outcome is recorded: stop the run if it must; whether it is stopped."""
    if stopped:
        return True
    if job.writer.error is not None:
        # Deleting on without a record would lose track of what was done.
        stop_run(job, run, f"error: cannot write the report ({job.writer.error})")
        return True
    error = outcome.error
    if (
        outcome.kind is OutcomeKind.FAILED
        and isinstance(error, APIStatusError)
        and error.status == 401
    ):
        # Every other request would be refused the same way: stop asking.
        stop_run(
            job,
            run,
            f"error: the service refused the credentials ({error.status} "
            f"{printable(str(error.error_code or ''))})",
        )
        return True
    return False


def stop_run(job: Job, run: BulkRun[Any], why: str) -> None:
    """Stop the run from within: no new requests; those in flight finish."""
    run.stop()
    if not job.source.regular:
        job.source.stop()
    job.display.message(f"{why}: no new requests are sent")


async def _account_for_the_rest(job: Job, signals: Signals) -> None:
    """After a stop: record the rest of a file as skipped, or mark a stream incomplete."""
    if job.source.regular:
        job.display.message(
            "recording the lines not started as skipped (interrupt again to stop reading: "
            "the report then needs its input to finish the job)"
        )
        await _record_rest(job, signals, "skipped")
    else:
        job.incomplete = True
        job.writer.incomplete(job.source.next_line, "interrupted while reading a pipe or terminal")


def finish_job(
    job: Job, report: BulkReport[Any] | None, interrupted: int | None, *, stopped: bool
) -> int:
    """Write the summary record, show the summary; the exit status.

    ``interrupted``: the signal that stopped the run, if one did; ``stopped``: the run
    stopped by itself (a refused credential, a report that cannot be written, a listing
    that failed).
    """
    counts = job.writer.counts
    if interrupted is not None:
        status = 128 + interrupted
    elif job.writer.error is not None or counts["failed"] or counts["skipped"]:
        status = EXIT_FAILED
    elif counts["invalid"]:
        status = EXIT_USAGE
    else:
        status = EXIT_OK
    job.writer.summary(
        {
            "ended": now_iso(),
            "elapsed": round(report.elapsed, 3) if report is not None else 0.0,
            "attempts": report.attempts if report is not None else 0,
            "retries": report.retries if report is not None else 0,
            "interrupted": interrupted is not None,
            "exit_status": status,
        }
    )
    job.writer.close()
    if job.writer.error is not None:
        job.display.message(
            f"error: cannot write the report ({job.writer.error}): it is incomplete; finish "
            "with --retry-from REPORT INPUT once the report can be written"
        )
        status = EXIT_FAILED
    title = job.op.command
    if job.options.wait and not job.dry_run:
        title += " (--wait: succeeded = confirmed gone)"
    shown = None if job.dry_run else report  # a dry run has no figures to show
    job.display.summary(title, counts, shown, job.writer.reasons)
    if job.dry_run and job.op.sweeps:
        job.display.note(
            f"dry run: {counts['planned']:,} {job.op.noun} to {job.op.verb}; nothing was "
            f"deleted (add --apply to {job.op.verb} them)"
        )
    elif job.dry_run:
        job.display.note(
            f"dry run: {counts['planned']:,} to send, {counts['invalid']:,} refused; "
            "nothing was sent"
        )
    job.display.already_gone_warning(job.op, counts, job.project_id)
    if (interrupted is not None or stopped) and job.writer.error is None:
        left = sum(job.writer.counts[r] for r in ("failed", "skipped"))
        job.display.resume_hint(job.op, left, job.report_path, incomplete=job.incomplete)
    return status
