"""``close-sessions`` and ``delete-workspaces``: from flags to a confirmed, recorded run.

The order matters: everything that can be checked is checked before the confirmation
(flags, the protected ids, the report's target, the input, read from a private copy
that the run then reads too: see ``source.private_copy``); then one cheap read checks
the credentials and the scope (``preflight``); the report file is opened only once the
run is confirmed and checked (so a declined or stopped run truncates nothing), and
nothing is deleted before all of it has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from asyncdeleter import __version__
from asyncdeleter._cli.confirm import can_ask, confirm
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.lines import Line, printable, read_lines
from asyncdeleter._cli.operations import DEFAULT_WAIT_TIMEOUT, Operation, RunOptions
from asyncdeleter._cli.preflight import preflight
from asyncdeleter._cli.report import ReportWriter, open_report, overwrite_problem
from asyncdeleter._cli.retry import (
    Opener,
    ReportError,
    Scan,
    header_mismatches,
    report_lines,
    scan,
)
from asyncdeleter._cli.settings import (
    Protection,
    Settings,
    UsageError,
    build_manager,
    resolve,
    scope_problem,
)
from asyncdeleter._cli.source import Source, private_copy
from asyncdeleter._cli.teardown import EXIT_USAGE, Job, Prescan, now_iso, prescan, run_job

__all__ = ["check_report", "refusal_to_ask", "run_bulk"]


def _parse(
    op: Operation, scope: str | None, raw: Iterable[tuple[int, str, str | None]]
) -> Iterator[Line]:
    for number, text, problem in raw:
        yield op.parse_line(number, text, problem, scope)


def _stdin() -> IO[bytes]:
    # Our own reader over a copy of fd 0: the thread that reads a pipe may still be
    # blocked in it at exit, and must not hold the lock of sys.stdin's reader then.
    return open(os.dup(sys.stdin.fileno()), "rb")


def _named(path: str) -> IO[bytes]:
    return open(path, "rb")


def _input_lines(settings: Settings, scope: str | None, source: Opener) -> Iterator[Line]:
    """The parsed lines ``source`` opens (stdin, or a private copy), streamed.

    A line that holds one of the command's credentials is withheld (``read_lines``).
    """
    with source() as stream:
        lines = read_lines(stream, credentials=settings.credentials)
        yield from _parse(settings.op, scope, lines)


def _is_regular(path: str) -> bool:
    try:
        return path != "-" and stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _regular_stat(path: str | None) -> os.stat_result | None:
    """The status of a regular file (``-``: what stdin is redirected from), else ``None``."""
    try:
        if path == "-":
            found = os.fstat(sys.stdin.fileno())
        elif path:
            found = os.stat(path)
        else:
            return None
    except (OSError, ValueError):
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def _same_file(a: str | None, b: str | None) -> bool:
    first, second = _regular_stat(a), _regular_stat(b)
    return first is not None and second is not None and os.path.samestat(first, second)


def _check_files(report: str | None, options: dict[str, Any]) -> None:
    """Refuse a report that would overwrite what the run reads, and a report nowhere."""
    source = options.get("file") or ("-" if options["retry_from"] is None else None)
    if source == "-" and sys.stdin is None:
        # Started with standard input closed (``<&-``): there is nothing to read.
        raise UsageError(
            "standard input is closed: give the input as a FILE argument, or pipe it in"
        )
    check_report(report, {"the input": source, "--retry-from": options["retry_from"],
                          "--token-file": options.get("token_file")},
                 force=bool(options["force"]))  # fmt: skip


def check_report(report: str | None, read: dict[str, str | None], *, force: bool) -> None:
    """Refuse a ``--report`` the run reads, or one that exists without ``--force``.

    ``read``: flag to path of what the run reads (refused even with ``--force``). Checked
    before anything is asked or sent.
    """
    if report is None:
        return
    for flag, other in read.items():
        if _same_file(report, other):
            raise UsageError(f"--report {report} is {flag}: it would be overwritten")
    if (problem := overwrite_problem(report, force=force)) is not None:
        raise UsageError(problem)
    directory = os.path.dirname(os.path.abspath(report))
    target = report if os.path.exists(report) else directory
    if not os.path.isdir(directory) or not os.access(target, os.W_OK):
        raise UsageError(f"--report {report} cannot be written (checked before anything is sent)")


def _marked_done(lines: Iterator[Line], done: set[Any]) -> Iterator[Line]:
    for line in lines:
        if line.target is not None and line.problem is None and line.target in done:
            yield Line(line.number, line.text, line.target, done_before=True)
        else:
            yield line


def _read_report(
    op: Operation,
    settings: Settings,
    path: str,
    display: Display,
    *,
    copy: Opener,
    with_input: bool,
) -> Scan:
    """Check the report named ``path`` (read from its private ``copy``)."""
    try:
        found = scan(copy, op, settings.project_id, collect_done=with_input)
    except ReportError as exc:
        raise UsageError(f"cannot use --retry-from {path}: {exc}") from None
    if found.torn:
        display.message(
            f"warning: the last line of {path} is torn (its writer was killed mid-line) and is "
            "ignored: that item counts as not done"
        )
    finish = f"pass its input as well: --retry-from {path} INPUT"
    if op.sweeps and found.header is not None and (found.incomplete is not None
                                                   or not found.summary):  # fmt: skip
        # A sweep's input is a listing: there is no INPUT to pass. Its records are true;
        # what it never listed, a new sweep finds.
        display.message(
            f"warning: {path} does not cover the whole listing (the sweep was interrupted "
            "or killed): only the items it records are replayed; run the sweep again to "
            "find the rest"
        )
    elif found.header is None:
        if not with_input:
            raise UsageError(f"{path} has no header (written by an older version): {finish}")
        display.message(
            f"warning: {path} has no header (written by an older version): the endpoint and "
            "project it was made for cannot be checked"
        )
    elif not with_input and found.incomplete is not None:
        raise UsageError(f"{path} is incomplete (its input was not read to the end): {finish}")
    elif not with_input and not found.summary:
        raise UsageError(
            f"{path} has no summary record (the run that wrote it was killed?): {finish}"
        )
    return found


def _plan(
    op: Operation,
    settings: Settings,
    options: dict[str, Any],
    display: Display,
    copies: contextlib.ExitStack,
) -> tuple[Job, Iterator[Line] | None]:
    """The job (without its report) and, for a finite input, a second pass to prescan.

    A regular file (the input, the ``--retry-from`` report) is read from a private copy
    kept until ``copies`` closes.
    """
    scope: str | None = options.get("workspace_id")
    if problem := scope_problem(scope):
        raise UsageError(problem)
    if options.get("wait_timeout") is not None and not options.get("wait"):
        raise UsageError("--wait-timeout applies only with --wait")
    file, retry_from = options.get("file"), options["retry_from"]
    header = {"tool": "asyncdeleter", "version": __version__, "operation": op.command,
              "started": now_iso(), **settings.header_fields()}  # fmt: skip
    found: Scan | None = None
    report_copy: Opener = _stdin  # replaced below: read only with --retry-from
    if retry_from is not None:
        report_copy = copies.enter_context(private_copy(retry_from, "--retry-from")).open
        found = _read_report(
            op, settings, retry_from, display, copy=report_copy, with_input=file is not None
        )
        if found.header is not None:
            current = {**header, "workspace_id": scope}
            mismatches = header_mismatches(found.header, current, op)
            if mismatches:
                raise UsageError(
                    f"--retry-from {retry_from} was made for another target: "
                    + "; ".join(printable(m) for m in mismatches)
                )
            old_scope = found.header.get("workspace_id")
            if scope is None and isinstance(old_scope, str):
                scope = old_scope  # the scope confirmed then is the scope now
    job = Job(
        op=op,
        source=Source(iter(()), regular=True, numbered=True),
        writer=ReportWriter(None, settings.project_id),
        display=display,
        header={},
        scope=scope,
        dry_run=bool(options["dry_run"]),
        options=RunOptions(
            missing_ok=bool(options["missing_ok"]),
            wait=bool(options.get("wait")),
            wait_timeout=float(options.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT),
        ),
        project_id=settings.project_id,
        report_path=options["report_path"],
        input_name=file or "-",
    )
    if file is None and retry_from is not None:
        old_input = found.header.get("input") if found and found.header else None
        job.input_name = old_input if isinstance(old_input, str) else "-"

        def from_report() -> Iterator[Line]:
            return report_lines(report_copy, op, settings.project_id)

        job.source = Source(from_report(), regular=True, numbered=False)
        second: Iterator[Line] | None = from_report()
    else:
        path = file or "-"
        regular = _is_regular(path)
        source: Opener = _stdin
        if regular:
            source = copies.enter_context(private_copy(path, "the input")).open
        elif path != "-":  # a pipe by name (``<(...)``): read once, as it comes
            source = functools.partial(_named, path)
        done = found.done if found is not None else set()
        job.source = Source(_marked_done(_input_lines(settings, scope, source), done),
                            regular=regular, numbered=True)  # fmt: skip
        second = _marked_done(_input_lines(settings, scope, source), done) if regular else None
    job.header = {**header, "workspace_id": scope, "input": job.input_name,
                  "retry_from": retry_from, "dry_run": job.dry_run}  # fmt: skip
    return job, second


def refusal_to_ask(op: Operation) -> str:
    """Why a destructive run that cannot ask does not go on, and what to do."""
    check = "run it without --apply to see the plan" if op.sweeps else "--dry-run to check first"
    return (
        f"refusing to {op.verb} without confirmation: stdin or stderr is not a terminal; "
        f"pass --yes to confirm non-interactively (or {check}); nothing was sent"
    )


def _prepare(
    op: Operation, options: dict[str, Any], display: Display, copies: contextlib.ExitStack
) -> tuple[Job, Settings, Prescan | None] | None:
    """Check everything and ask; the job to run, or ``None`` when it was not confirmed.

    Also what the input holds, when it could be read beforehand (a regular file, read
    from a private copy kept until ``copies`` closes).

    Raises:
        UsageError: Something is wrong; nothing was sent and no file was written.
    """
    dry_run = bool(options["dry_run"])
    protection = Protection.from_env(os.environ)
    settings = resolve(op, options, os.environ, dry_run=dry_run)
    for warning in settings.warnings:
        display.message(warning)
    _check_files(options["report_path"], options)
    job, second = _plan(op, settings, options, display, copies)
    job.protection = protection
    protection.check_scope(settings.project_id, job.scope)
    counts: Prescan | None = None
    if second is None and options["strict"]:
        lines = list(job.source)  # --strict on a stream: it has to be read first
        job.source = Source(iter(lines), regular=True, numbered=True)
        second = iter(lines)
    if second is not None:
        counts = prescan(job, second)
        job.total = job.confirmed = counts.to_run
        if counts.withheld is not None:
            # The wrong file, and one whose lines must not be shown or recorded: none is.
            raise UsageError(
                f"the input holds credentials ({counts.withheld}): it is refused whole "
                "(nothing was sent or written)"
            )
        if options["strict"] and counts.refused:
            for problem in counts.problems:
                display.message(problem)
            raise UsageError(
                f"--strict: {counts.refused:,} line(s) would be refused; nothing was sent"
            )
    if not dry_run and not options["yes"] and (counts is None or counts.to_run):
        if not can_ask():
            raise UsageError(refusal_to_ask(op))
        name = "stdin" if job.input_name == "-" else job.input_name
        if not confirm(display, settings, job.scope, counts, name):
            return None
    return job, settings, counts


def run_bulk(op: Operation, options: dict[str, Any]) -> int:
    """Run a destructive command with its parsed flags; return the exit status."""
    with contextlib.ExitStack() as copies:  # the private copies of the files it reads
        return _run_bulk(op, options, copies)


def _run_bulk(op: Operation, options: dict[str, Any], copies: contextlib.ExitStack) -> int:
    display = Display(quiet=bool(options["quiet"]))
    try:
        prepared = _prepare(op, options, display, copies)
        if prepared is None:
            display.message("not confirmed; nothing was sent")
            return EXIT_USAGE
        job, settings, counts = prepared
        manager = None if job.dry_run else build_manager(settings, options)
    except UsageError as exc:
        display.message(f"error: {exc}")
        return EXIT_USAGE

    def start_report() -> bool:
        """Open the report (only now: a run that stops before deleting truncates nothing)."""
        try:
            report = open_report(options["report_path"], force=bool(options["force"]))
            job.writer = ReportWriter(report, settings.project_id)
        except UsageError as exc:
            display.message(f"error: {exc}")
            return False
        return True

    async def go() -> int:
        if manager is None:
            if not start_report():
                return EXIT_USAGE
            try:
                return await run_job(job, None)
            finally:
                job.writer.close()
        async with manager:
            if not options.get("no_preflight"):
                stop = await preflight(job, settings, manager, counts)
                if stop is not None:
                    return stop
            if not start_report():
                return EXIT_USAGE
            try:
                return await run_job(job, manager)
            finally:
                job.writer.close()  # whatever happened, what was recorded reaches the disk

    return asyncio.run(go())
