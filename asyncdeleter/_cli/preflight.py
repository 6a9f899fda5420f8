"""The cheap read before a destructive run: are these credentials and this scope real?

One listing of one item, made after the confirmation and before anything is deleted:

* 401 (the credentials are refused), or 404 for the project or ``--workspace-id`` (it does
  not exist, or these credentials cannot see it): the run stops, nothing deleted, exit 2,
  no report written (as for a refused confirmation);
* 403: a role may be allowed to delete without being allowed to list: warn, go on;
* anything else (a timeout, a 5xx after retries): the read proves nothing either way:
  warn, go on.

``--no-preflight`` skips it; a dry run never makes it (it sends nothing).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from asyncdeleter import (
    AsyncDeleterError,
    AuthenticationError,
    EndpointNotServedError,
    NotFoundError,
    ParentNotFoundError,
    PermissionDeniedError,
    SessionManager,
)
from asyncdeleter._cli.lines import Line, printable
from asyncdeleter._cli.operations import Operation
from asyncdeleter._cli.report import describe
from asyncdeleter._cli.settings import ENV_AK, ENV_SK, Settings
from asyncdeleter._cli.teardown import EXIT_USAGE, Job, Prescan, classify

T = TypeVar("T")

__all__ = ["preflight", "refusal", "said"]

#: Lines of a stream read ahead to find the first one to run (they are all still run).
_PEEK_LINES: Final = 100


def said(error: BaseException) -> str:
    """What the service said, for a message: ``status code: message``, escaped."""
    status, code, message = describe(error)
    head = " ".join(str(part) for part in (status, code) if part is not None)
    return f"{head}: {printable(message, 160)}" if head else printable(message, 160)


#: What a listing of a missing project or workspace raises.
_MISSING = (NotFoundError, ParentNotFoundError)


def refusal(
    op: Operation, settings: Settings, scope: str | None, error: BaseException
) -> str | None:
    """Why a failed listing means the flags are wrong, or ``None``.

    A 401 (the credentials), or a 404 for the project (a project-scoped command) or for
    ``scope``, the workspace a flag named.
    """
    endpoint = f"--{op.service}-endpoint"
    if isinstance(error, AuthenticationError):
        return (
            f"the service refused the credentials ({said(error)}): check {ENV_AK}/{ENV_SK} or "
            f"--token-file, and --region or {endpoint}"
        )
    if isinstance(error, EndpointNotServedError):
        return (
            f"{error.endpoint} does not serve the {op.service} API ({said(error)}): nothing "
            f"was sent there that could delete anything; check --region or {endpoint}"
        )
    if isinstance(error, _MISSING) and op.project_scoped:
        return (
            f"--project-id {settings.project_id}: the project does not exist or is not "
            f"visible to these credentials ({said(error)}); check --project-id, and "
            f"--region or {endpoint}"
        )
    if isinstance(error, _MISSING) and scope is not None:
        return (
            f"--workspace-id {scope}: the workspace does not exist or is not visible "
            f"to these credentials ({said(error)}); check --workspace-id, --project-id, "
            f"and --region or {endpoint}"
        )
    return None


async def _first_workspace(job: Job, counts: Prescan | None) -> str | None:
    """The workspace of the first line to run (``None``: there is none)."""
    if counts is not None:
        sample = counts.sample[0] if counts.sample else None
    else:

        def runs(line: Line) -> bool:
            return classify(job, line)[0] == "run"

        first = await job.source.peek(runs, _PEEK_LINES)
        sample = first.target if first is not None else None
    return sample[0] if isinstance(sample, tuple) else None


async def _read_one(job: Job, manager: SessionManager, workspace_id: str | None) -> None:
    listing = job.op.preflight(manager, workspace_id)
    if listing is None:
        return
    try:
        await anext(listing, None)
    finally:
        close = getattr(listing, "aclose", None)
        if close is not None:
            await close()


async def _check(
    job: Job, settings: Settings, manager: SessionManager, counts: Prescan | None
) -> str | None:
    """Make the read; return why the run must stop, or ``None`` to go on."""
    op, display = job.op, job.display
    endpoint = f"--{op.service}-endpoint"
    workspace_id: str | None = None
    flagged = True  # the scope listed is one a flag named
    if op.project_scoped:
        where = f"--project-id {settings.project_id}"
    elif job.scope is not None:
        workspace_id, where = job.scope, f"--workspace-id {job.scope}"
    else:
        workspace_id = await _first_workspace(job, counts)
        if workspace_id is None:
            return None  # nothing to close: nothing to check
        flagged = False
        where = f"workspace {workspace_id} (the first in the input)"
    try:
        await _read_one(job, manager, workspace_id)
    except EndpointNotServedError as exc:
        return refusal(op, settings, job.scope, exc)
    except _MISSING as exc:
        if flagged:
            return refusal(op, settings, job.scope, exc)
        # Only the data named it: other lines may name workspaces that do exist.
        display.message(
            f"warning: cannot list {op.preflight_lists} of {where}: not found ({said(exc)}); "
            f"if every workspace looks gone, check --region or {endpoint}: going on"
        )
    except PermissionDeniedError as exc:
        if op.sweeps:
            return (
                f"cannot list {op.preflight_lists} of {where} ({said(exc)}): a sweep "
                f"{op.verb}s only what it can list; check what these credentials may do"
            )
        display.message(
            f"warning: cannot list {op.preflight_lists} of {where} ({said(exc)}); a role may "
            "delete without listing: going on"
        )
    except AsyncDeleterError as exc:
        if (why := refusal(op, settings, job.scope, exc)) is not None:
            return why
        display.message(
            f"warning: the check before deleting (listing {op.preflight_lists} of {where}) "
            f"failed ({said(exc)}): going on"
        )
    return None


#: Loop turns after the work in which a signal it met is still delivered to it.
_SIGNAL_TURNS = 3


async def until_interrupted(job: Job, work: Callable[[], Awaitable[T]]) -> T | int:
    """``await work()`` (before anything is deleted); Ctrl-C or SIGTERM ends it: 128+N.

    The one place the reads before a destructive run (the preflight, a sweep's count)
    take signals: it says that nothing was deleted. A signal that arrives during the work
    reaches its callback a loop turn or two later (through asyncio's wake-up pipe), so the
    work's end waits those turns out, and a callback that is later still does nothing:
    it can never cancel the run that follows.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted: list[int] = []
    working = [True]

    def interrupt(signum: int) -> None:
        if working[0] and not interrupted and task is not None:
            interrupted.append(signum)
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, signum)
    try:
        result = await work()
        for _ in range(_SIGNAL_TURNS):
            await asyncio.sleep(0)
    except asyncio.CancelledError:
        if not interrupted or task is None:
            raise
        task.uncancel()
        job.display.message(f"interrupted before anything was deleted{_no_report(job)}")
        return 128 + interrupted[0]
    finally:
        working[0] = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return result


async def preflight(
    job: Job, settings: Settings, manager: SessionManager, counts: Prescan | None
) -> int | None:
    """Check the credentials and the scope; the exit status to stop with, or ``None``.

    When it stops, it has said why; nothing was deleted and no report was written. Ctrl-C
    (or SIGTERM) while it waits (for a stream's first line, say) stops the same way.
    """
    if counts is not None and not counts.to_run:
        return None  # nothing will be deleted
    why = await until_interrupted(job, lambda: _check(job, settings, manager, counts))
    if isinstance(why, int):
        return why
    if why is None:
        _served(job, settings, manager)
        return None
    job.display.message(f"error: {why}; nothing was deleted{_no_report(job)}")
    return EXIT_USAGE


def _served(job: Job, settings: Settings, manager: SessionManager) -> None:
    """Say (and record in the report's header) which host answered the check."""
    served = getattr(manager.endpoints, job.op.service)
    if served is None:
        return
    job.header["served_by"] = served
    moved = (
        f" (not {settings.endpoint}, which does not serve it)"
        if served != settings.endpoint
        else ""
    )
    job.display.message(f"{job.op.service} API at {served}{moved}")


def _no_report(job: Job) -> str:
    return f" (--report {job.report_path} was not written)" if job.report_path else ""
