"""``sweep-sessions`` and ``sweep-workspaces``: list, filter and (with ``--apply``) delete.

Without ``--apply`` a sweep is a dry run: the library's sweep lists and filters, and each
item it would delete is printed on stdout as the bulk command's input line (so the plan
can be saved, reviewed and fed to ``close-sessions``/``delete-workspaces``) and recorded
``planned``; nothing is deleted.

With ``--apply``, in this order:

1. everything that can be checked is (flags, filters, protected ids, the report path),
   and a run that would have to ask but cannot (no terminal, no ``--yes``) is refused:
   nothing is sent, not even a read;
2. on a terminal without ``--yes``: the cheap read before deleting (``preflight``), then
   a dry-run pass counts what matches; the count and the first few are shown and the
   scope word is asked for (the prompt runs outside the event loop, so Ctrl-C at it is
   a plain "no");
3. the real sweep lists and filters afresh and deletes as it goes. Each item it selects
   is recorded as it ends, through the run's progress callback, which also hears of the
   items a second Ctrl-C cuts off. A listing not read to its end (Ctrl-C, a stop, a
   failed page) gets an ``incomplete`` record: running the sweep again finds the rest.

``--retry-from REPORT`` replays the report's unfinished items as the bulk command does
(``run_bulk``): it does not list again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Final, TypeVar

import attrs

from asyncdeleter import (
    AsyncDeleterError,
    ConfigurationError,
    InvalidIdentifierError,
    Outcome,
    OutcomeKind,
    SessionManager,
    __version__,
)
from asyncdeleter._cli.bulk import check_report, refusal_to_ask, run_bulk
from asyncdeleter._cli.confirm import can_ask, confirm
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.filters import Filters
from asyncdeleter._cli.lines import Line, printable
from asyncdeleter._cli.operations import DEFAULT_WAIT_TIMEOUT, Operation, RunOptions, SweepRequest
from asyncdeleter._cli.preflight import preflight, refusal, said, until_interrupted
from asyncdeleter._cli.report import ReportWriter, open_report
from asyncdeleter._cli.settings import (
    Protection,
    Settings,
    UsageError,
    build_manager,
    in_flags,
    resolve,
    scope_problem,
)
from asyncdeleter._cli.source import Source
from asyncdeleter._cli.teardown import (
    CUT_OFF,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Job,
    Prescan,
    Signals,
    finish_job,
    judge,
    now_iso,
)

__all__ = ["LISTING", "run_sweep"]

#: A sweep report's ``input``: its targets came from a listing, not a file.
LISTING: Final = "(listing)"
_SAMPLE: Final = 5
_FILTER_FLAGS: Final = (("--name", "name"), ("--status", "status"), ("--older-than", "older_than"))

T = TypeVar("T")


@attrs.define
class _Plan:
    """A sweep, checked: what to run, against what, and how to make its managers."""

    job: Job
    settings: Settings
    request: SweepRequest
    options: dict[str, Any]
    counted: int | None = None  # what matched when the person confirmed
    stdout_open: bool = True

    def manager(self) -> SessionManager:
        """A manager for one event loop (the count and the sweep run in two)."""
        return build_manager(self.settings, self.options)

    def start(self, manager: SessionManager, **changes: Any) -> Any:
        """The library's sweep on ``manager`` (a ``BulkRun``), with ``changes`` to the request."""
        assert self.job.op.sweep is not None  # noqa: S101 - a sweep's record has one
        return self.job.op.sweep(manager, attrs.evolve(self.request, **changes))


def _prepare(op: Operation, options: dict[str, Any], display: Display) -> _Plan:
    """Check everything that can be checked before anything is sent.

    Raises:
        UsageError: What is wrong, in flags; nothing was sent and no file was written.
    """
    protection = Protection.from_env(os.environ)
    settings = resolve(op, options, os.environ, dry_run=False)  # a listing needs credentials
    for warning in settings.warnings:
        display.message(warning)
    scope: str | None = options.get("workspace_id")
    if problem := scope_problem(scope):
        raise UsageError(problem)
    if options.get("wait_timeout") is not None and not options.get("wait"):
        raise UsageError("--wait-timeout applies only with --wait")
    report = options["report_path"]
    check_report(report, {"--token-file": options.get("token_file")}, force=bool(options["force"]))
    apply = bool(options["apply"])
    filters = Filters(
        status=options.get("status"), older_than=options.get("older_than"), name=options.get("name")
    )
    header = {"tool": "asyncdeleter", "version": __version__, "operation": op.command,
              "started": now_iso(), **settings.header_fields(), "workspace_id": scope,
              "input": LISTING, "retry_from": None, "dry_run": not apply,
              "filters": filters.record()}  # fmt: skip
    job = Job(
        op=op,
        source=Source(iter(()), regular=True, numbered=False),
        writer=ReportWriter(None, settings.project_id),
        display=display,
        header=header,
        scope=scope,
        protection=protection,
        dry_run=not apply,
        options=RunOptions(
            missing_ok=True,
            wait=bool(options.get("wait")),
            wait_timeout=float(options.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT),
        ),
        project_id=settings.project_id,
        report_path=report,
        input_name=LISTING,
    )
    protection.check_scope(settings.project_id, scope)
    if apply and not options["yes"] and not can_ask():
        raise UsageError(refusal_to_ask(op))
    request = SweepRequest(
        scope=scope,
        filters=filters,
        protected=protection.ids,
        dry_run=not apply,
        options=job.options,
    )
    plan = _Plan(job=job, settings=settings, request=request, options=options)
    try:
        plan.start(plan.manager())  # the library checks the filters; never run
    except InvalidIdentifierError as exc:
        flag = f"--{exc.parameter.replace('_', '-')}"
        raise UsageError(f"{flag} {printable(str(exc.value))!r}: {exc.reason}") from None
    except ConfigurationError as exc:
        raise UsageError(in_flags(exc)) from None
    return plan


async def _count(plan: _Plan) -> Prescan | int:
    """The check before deleting, then a dry-run pass: what matches now (or an exit status)."""
    job, op = plan.job, plan.job.op
    async with plan.manager() as manager:
        if not plan.options["no_preflight"]:
            stop = await preflight(job, plan.settings, manager, None)
            if stop is not None:
                return stop
        job.display.note(f"counting the {op.noun} that match {plan.request.filters.flags()}...")

        async def count() -> Prescan | int:
            found = Prescan()
            try:
                async for outcome in plan.start(manager, dry_run=True):
                    if outcome.kind is OutcomeKind.PLANNED:
                        found.to_run += 1
                        if len(found.sample) < _SAMPLE:
                            found.sample.append(outcome.target)
                    else:
                        found.refused += 1
            except AsyncDeleterError as exc:
                why = refusal(op, plan.settings, job.scope, exc)
                shown = why or f"listing {op.preflight_lists} failed ({said(exc)})"
                job.display.message(f"error: {shown}; nothing was deleted")
                return EXIT_USAGE if why else EXIT_FAILED
            return found

        return await until_interrupted(job, count)


def _record(plan: _Plan, outcome: Outcome[Any]) -> None:
    """Record one item the sweep selected (and print it, in a dry run): its progress callback."""
    job = plan.job
    number, target = outcome.index + 1, outcome.target
    if outcome.kind is OutcomeKind.INVALID:  # the server listed an id that is not one
        parts = target if isinstance(target, tuple) else (target,)
        problem = str(outcome.error) if outcome.error is not None else "not a valid target"
        job.writer.item(Line(number, " ".join(map(str, parts)), None, problem), "invalid",
                        error_msg=problem)  # fmt: skip
        job.display.message(f"item {number}: {printable(problem)}")
        return
    line = Line(number, job.op.line(target), target)
    if isinstance(outcome.error, asyncio.CancelledError):  # cut off by a second Ctrl-C
        job.writer.item(line, "failed", error_code="Interrupted", error_msg=CUT_OFF,
                        attempts=outcome.attempts, elapsed=outcome.elapsed)  # fmt: skip
    else:
        job.writer.outcome(line, outcome)
    if outcome.kind is OutcomeKind.PLANNED and plan.stdout_open:
        try:
            sys.stdout.write(line.text + "\n")
            sys.stdout.flush()
        except OSError:  # the reader went away (``| head``): the report still has it all
            plan.stdout_open = False


async def _consume(
    plan: _Plan, run: Any, signals: Signals
) -> tuple[bool, AsyncDeleterError | None]:
    """Drive the run (its callback records the items).

    Returns whether it stopped by itself, and why the listing failed, if it did.
    """
    job = plan.job
    stopped = False
    failure: AsyncDeleterError | None = None
    job.display.start(job.op.command, None)
    signals.running = True
    try:
        async for outcome in run:
            job.display.advance(outcome.kind, outcome.attempts)
            stopped = judge(job, run, outcome, stopped=stopped)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not signals.cut_off or task is None:
            raise
        task.uncancel()  # our own second interrupt: the report is still to be written
    except AsyncDeleterError as exc:
        failure = exc
    finally:
        signals.running = False
        job.display.finish()
    return stopped, failure


async def _run(plan: _Plan, manager: SessionManager) -> int:
    job = plan.job
    job.writer.header(job.header)
    if job.options.wait and not job.dry_run:
        job.display.retries_label = "retries+polls"  # each confirmation poll is a request
    run = plan.start(manager, on_progress=lambda _, __, outcome: _record(plan, outcome))
    signals = Signals(job, run)
    try:
        stopped, failure = await _consume(plan, run, signals)
        report = run.report
        if failure is not None:
            why = refusal(job.op, plan.settings, job.scope, failure)
            job.display.message(
                f"error: {why or f'listing {job.op.preflight_lists} failed ({said(failure)})'}"
                ": the sweep stopped"
            )
        if failure is not None or report.unread_from is not None:
            job.incomplete = True
            reason = (
                f"the listing failed: {said(failure)}"
                if failure is not None
                else "the sweep stopped before its listing was read to the end"
            )
            job.writer.incomplete(None, reason + "; a new sweep finds what was never listed")
        status = finish_job(job, report, signals.first, stopped=stopped or failure is not None)
    finally:
        signals.close()
    done = sum(job.writer.counts.values())
    if plan.counted is not None and done != plan.counted and signals.first is None:
        job.display.note(
            f"note: {plan.counted:,} matched when counted, {done:,} when it ran "
            "(the sweep lists afresh)"
        )
    if failure is not None and status in (EXIT_OK, EXIT_USAGE):
        status = EXIT_FAILED  # the listing was not read to its end: not everything was done
    return status


async def _sweep(plan: _Plan, *, check_first: bool) -> int:
    job = plan.job
    async with plan.manager() as manager:
        if check_first:
            stop = await preflight(job, plan.settings, manager, None)
            if stop is not None:
                return stop
        try:  # opened only now: a run that stops before deleting truncates nothing
            job.writer = ReportWriter(
                open_report(job.report_path, force=bool(plan.options["force"])),
                plan.settings.project_id,
            )
        except UsageError as exc:
            job.display.message(f"error: {exc}")
            return EXIT_USAGE
        try:
            return await _run(plan, manager)
        finally:
            job.writer.close()  # whatever happened, what was recorded reaches the disk


def _nothing_matches(plan: _Plan) -> int:
    """The count found nothing: write the report (header and summary) and send nothing."""
    job = plan.job
    job.display.message(f"nothing matches: no {job.op.noun} to {job.op.verb}; nothing was sent")
    try:
        job.writer = ReportWriter(
            open_report(job.report_path, force=bool(plan.options["force"])),
            plan.settings.project_id,
        )
    except UsageError as exc:
        job.display.message(f"error: {exc}")
        return EXIT_USAGE
    job.writer.header(job.header)
    job.display.quiet = True  # the summary of nothing is the line above
    return finish_job(job, None, None, stopped=False)


def _replay(op: Operation, options: dict[str, Any]) -> int:
    """``--retry-from``: the report's unfinished items, as a plain delete run."""
    given = [flag for flag, key in _FILTER_FLAGS if options.get(key) is not None]
    if given:
        raise UsageError(
            f"--retry-from replays the report's items and does not list again: drop "
            f"{', '.join(given)}"
        )
    return run_bulk(
        op,
        {**options, "file": None, "dry_run": not options["apply"], "strict": False,
         "missing_ok": True},
    )  # fmt: skip


def run_sweep(op: Operation, options: dict[str, Any]) -> int:
    """Run a sweep command with its parsed flags; return the exit status."""
    display = Display(quiet=bool(options["quiet"]))
    try:
        if options["retry_from"] is not None:
            return _replay(op, options)
        plan = _prepare(op, options, display)
    except UsageError as exc:
        display.message(f"error: {exc}")
        return EXIT_USAGE
    asked = bool(options["apply"]) and not options["yes"]
    if asked:
        counted = asyncio.run(_count(plan))
        if isinstance(counted, int):
            return counted
        if not counted.to_run:
            return _nothing_matches(plan)
        filters = plan.request.filters
        notes = (
            f"matching {filters.flags()}; when it runs, it lists afresh and {op.verb}s what "
            "matches then",
        )
        if not confirm(display, plan.settings, plan.job.scope, counted, "the listing", notes=notes):
            display.message("not confirmed; nothing was deleted")
            return EXIT_USAGE
        plan.counted = counted.to_run
    check_first = not asked and not options["no_preflight"]
    return asyncio.run(_sweep(plan, check_first=check_first))
