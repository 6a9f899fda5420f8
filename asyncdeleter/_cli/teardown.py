"""The bulk commands' engine: stream lines into a bulk run, report every item, settle on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import attrs

from asyncdeleter._bulk import BulkReport, BulkRun, OutcomeKind
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.inputs import Line, ReportWriter, Target
from asyncdeleter._errors import InvalidIdentifierError
from asyncdeleter._manager import SessionManager, _session_target, _workspace_target

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Job", "run_job", "validate"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


@attrs.define
class Job:
    """One bulk command, parsed: what to delete and how to report it."""

    operation: str  # "close-sessions" or "delete-workspaces"
    lines: Iterable[Line]
    total: int | None
    protected: frozenset[str]
    project_id: str | None
    missing_ok: bool
    dry_run: bool
    report: ReportWriter
    display: Display
    malformed: int = 0
    interrupted: bool = False


def validate(operation: str, target: Target) -> str | None:
    """Why ``target`` can never be sent (checked locally), or ``None``."""
    check: Callable[[object], object] = (
        _session_target if operation == "close-sessions" else _workspace_target
    )
    try:
        check(target)
    except InvalidIdentifierError as exc:
        return str(exc)
    return None


def _protected(job: Job, line: Line) -> str | None:
    """Why ``line`` may never be sent because of ``ASYNCDELETER_PROTECTED_IDS``, or ``None``."""
    if line.target is None:
        return None
    ids = line.target if isinstance(line.target, tuple) else (line.target,)
    named = sorted(set(ids) & job.protected)
    return f"protected by ASYNCDELETER_PROTECTED_IDS: {', '.join(named)}" if named else None


def _usable(job: Job, line_numbers: dict[int, int]) -> Iterator[Target]:
    """The targets to run, in input order; unusable lines are reported here, never sent."""
    index = 0
    for line in job.lines:
        problem = line.problem or _protected(job, line)
        if problem is not None or line.target is None:
            job.malformed += 1
            job.report.unusable(attrs.evolve(line, problem=problem))
            job.display.message(f"line {line.number}: {problem}")
            continue
        line_numbers[index] = line.number
        index += 1
        yield line.target


async def run_job(job: Job, manager: SessionManager | None) -> int:
    """Run the job; return the exit status."""
    if job.dry_run or manager is None:
        return _dry_run(job)
    line_numbers: dict[int, int] = {}
    targets = _usable(job, line_numbers)
    start = (
        manager.close_sessions if job.operation == "close-sessions" else manager.delete_workspaces
    )
    run: BulkRun[Any] = start(targets, missing_ok=job.missing_ok)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_interrupt() -> None:
        if job.interrupted and main_task is not None:
            main_task.cancel()  # a second Ctrl-C: stop waiting for in-flight work
            return
        job.interrupted = True
        run.stop()
        job.display.message("interrupted: no new work; letting requests in flight finish...")

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    job.display.start(job.operation, job.total)
    try:
        async for outcome in run:
            number = line_numbers.pop(outcome.index, None)
            job.report.outcome(number, outcome)
            job.display.advance(outcome.kind, outcome.attempts)
            if outcome.kind is OutcomeKind.INVALID:
                job.display.message(f"line {number}: {outcome.error}")
    except asyncio.CancelledError:
        job.interrupted = True
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        job.display.finish()
        job.report.close()
    report: BulkReport[object] = run.report
    job.display.summary(job.operation, report, malformed=job.malformed)
    return _exit_status(job, report)


def _exit_status(job: Job, report: BulkReport[object]) -> int:
    if job.interrupted:
        return EXIT_INTERRUPTED
    if report.failed or report.skipped:
        return EXIT_FAILED
    if report.invalid or job.malformed:
        return EXIT_USAGE
    return EXIT_OK


def _dry_run(job: Job) -> int:
    """Validate and count; send nothing."""
    valid = 0
    for line in job.lines:
        problem = line.problem
        if problem is None and line.target is not None:
            problem = validate(job.operation, line.target) or _protected(job, line)
        if problem is not None:
            job.malformed += 1
            job.report.unusable(attrs.evolve(line, problem=problem))
            job.display.message(f"line {line.number}: {problem}")
        else:
            valid += 1
            job.report.unusable(line, result="dry_run")
    job.report.close()
    job.display.note(f"dry run: {valid:,} valid, {job.malformed:,} invalid; nothing was sent")
    return EXIT_USAGE if job.malformed else EXIT_OK
