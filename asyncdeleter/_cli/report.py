"""The JSON Lines report: a header, one record per input line as it ends, a summary.

The record shapes are documented in ``docs/report.schema.json``. Every string that came
from a server or from the input is made valid UTF-8 first (``X-Request-Id`` may hold any
byte), so writing a record can never fail half-way through a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import IO, Final

import attrs

from asyncdeleter import (
    APIError,
    APITimeoutError,
    DeletionFailedError,
    EndpointNotServedError,
    Outcome,
    ParentNotFoundError,
    UnverifiedNotFoundError,
    WaitTimeoutError,
)
from asyncdeleter._cli.lines import Line, Target, printable
from asyncdeleter._cli.operations import OPERATIONS
from asyncdeleter._cli.settings import UsageError, flag_for

__all__ = [
    "DONE_RESULTS",
    "FORMAT",
    "RESULTS",
    "TO_RUN_RESULTS",
    "Reasons",
    "ReportWriter",
    "clean",
    "describe",
    "open_report",
    "overwrite_problem",
]

#: The version of the record shapes (``format`` in the header).
FORMAT: Final = 1
#: Every ``result`` word, in the order the summary lists them.
RESULTS: Final = (
    "succeeded",
    "already_gone",
    "failed",
    "invalid",
    "skipped",
    "planned",
    "done_before",
)
#: Results ``--retry-from`` counts as done: never sent again.
DONE_RESULTS: Final = frozenset({"succeeded", "already_gone", "done_before"})
#: Results ``--retry-from`` runs again (a dry run's plan included).
TO_RUN_RESULTS: Final = frozenset({"failed", "skipped", "planned"})
#: ``error_code`` of failures that carry no service code (docs/report.schema.json).
DELETE_FAILED: Final = "delete-failed"
WAIT_TIMED_OUT: Final = "wait-timed-out"
TIMED_OUT: Final = "timed-out"
NO_CONNECTION: Final = "no-connection"
#: Codes of failures that are not about an answer that did not come.
_ANSWERED: Final = frozenset({DELETE_FAILED, WAIT_TIMED_OUT})
_MAX_REASONS: Final = 256


def clean(value: str | None, limit: int = 2000) -> str | None:
    """``value`` as valid Unicode, cut at ``limit`` characters.

    Undecodable bytes and lone surrogates become escapes; the cut keeps every record small
    enough for ``--retry-from`` to read back, whatever a server sent.
    """
    if value is None:
        return None
    if len(value) > limit:
        value = value[:limit] + "..."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(
            ch
            if not "\ud800" <= ch <= "\udfff"
            else (f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else ascii(ch)[1:-1])
            for ch in value
        )
    return value


def _target_json(target: Target, project_id: str | None) -> dict[str, str]:
    if isinstance(target, tuple):
        return {"workspace_id": target[0], "session_id": target[1]}
    return {"project_id": project_id or "", "workspace_id": target}


def _shown(target: Target) -> str:
    return "/".join(target) if isinstance(target, tuple) else target


def _without_call(message: str) -> str:
    """An error's text without the leading ``operation target:`` the library puts first."""
    head, separator, rest = message.partition(": ")
    if separator and head.split(" ", 1)[0] in _OPERATION_NAMES:
        return rest
    return message


_OPERATION_NAMES: Final = frozenset(name for op in OPERATIONS for name in op.library_calls)


#: The errors of a 404 that is not evidence about the item (DESIGN.md, "gone only on
#: evidence"): their own explanation is the reason, not the service's message.
_NOT_EVIDENCE: Final = (EndpointNotServedError, ParentNotFoundError, UnverifiedNotFoundError)


def describe(error: BaseException) -> tuple[int | None, str | None, str]:
    """An error as ``(status, error_code, message)``, in words rather than Python names.

    A service error keeps the service's code and message; a failure without one gets a
    word for a code: ``delete-failed`` (the workspace ended ``DELETE_FAILED``; the message
    holds the service's reason), ``wait-timed-out`` (``--wait`` gave up), ``timed-out``
    or ``no-connection`` (no answer).
    """
    if isinstance(error, DeletionFailedError):
        return None, DELETE_FAILED, _without_call(str(error))
    if isinstance(error, WaitTimeoutError):
        message = _without_call(str(error)).replace("wait_timeout=", "--wait-timeout ")
        return None, WAIT_TIMED_OUT, message
    if isinstance(error, _NOT_EVIDENCE):
        # A 404 that proved nothing about the item (a wrong endpoint, a missing workspace or
        # project, one that could not be checked): say which, and keep what the service said.
        code = None if error.error_code is None else str(error.error_code)
        said = f" (the service said: {error.error_msg})" if error.error_msg else ""
        message = _without_call(error.message)
        setting = getattr(error, "setting", "")
        flag = flag_for(setting) if setting else None
        if flag is not None:
            # The library names its argument; the command line speaks in flags.
            message = (
                message.removesuffix(f"check {setting}").removesuffix(f"Check {setting}")
                + f"check {flag}"
            )
        return error.status, code, message + said
    if isinstance(error, APIError):
        code = None if error.error_code is None else str(error.error_code)
        message = error.error_msg or _without_call(str(error))
        if error.status is None:
            # No answer: say what kind of failure in words, not a Python class name.
            code = TIMED_OUT if isinstance(error, APITimeoutError) else NO_CONNECTION
        return error.status, code, message
    return None, type(error).__name__, str(error) or type(error).__name__


@attrs.define
class _Group:
    count: int
    target: str
    message: str


class Reasons:
    """Why items failed, grouped by status and error code (bounded: at most 256 groups)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str | None], _Group] = {}

    def add(self, status: int | None, code: str | None, message: str, target: str) -> None:
        """Count one failure."""
        label = str(status) if status is not None else code if code in _ANSWERED else "no answer"
        key = (label, code)
        if key not in self._groups and len(self._groups) >= _MAX_REASONS:
            key = ("other reasons", None)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(1, target, message)
        else:
            group.count += 1

    def commonest(self, count: int = 5) -> list[str]:
        """The ``count`` commonest reasons, one line each, with a sample target."""
        ranked = sorted(self._groups.items(), key=lambda kv: -kv[1].count)
        return [
            f"{group.count:,} x {status}{' ' + code if code and code != status else ''}, "
            f"e.g. {group.target}: {printable(group.message, 160)}"
            for (status, code), group in ranked[:count]
        ]


def _special(path: str) -> bool:
    """``path`` is a device, a pipe or a socket (``/dev/stdout``): nothing to overwrite."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # missing, or a link to nowhere: creating it would be refused


def overwrite_problem(path: str | None, *, force: bool) -> str | None:
    """Why ``--report path`` may not be written as asked, or ``None``.

    It exists and ``--force`` is not given: an earlier report may be the only record of
    what a run did. A device or a pipe (``/dev/stdout``) has nothing to lose.
    """
    if path is None or force or not os.path.lexists(path) or _special(path):
        return None
    return f"--report {path} exists: pass --force to overwrite it, or name another file"


def open_report(path: str | None, *, force: bool) -> IO[str] | None:
    """Create ``--report`` (``force``: or truncate it), readable by its owner only (0600).

    A report names every resource a run touched: like a token file, it is nobody else's
    business. An existing file is refused unless ``force`` (``overwrite_problem``, checked
    again here, when the file is created: it may have appeared since); one overwritten
    keeps its place but loses any wider mode. ``None``: no report asked for.

    Raises:
        UsageError: The file exists (without ``force``), or cannot be created or written.
    """
    if path is None:
        return None
    if (problem := overwrite_problem(path, force=force)) is not None:
        raise UsageError(problem)
    flags = os.O_WRONLY | os.O_CREAT
    if force:
        flags |= os.O_TRUNC
    elif not _special(path):
        flags |= os.O_EXCL  # created by this call, or refused
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(str(overwrite_problem(path, force=False))) from None
    except OSError as exc:
        raise UsageError(f"cannot write --report {path}: {exc.strerror or exc}") from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        return open(fd, "w", encoding="utf-8", errors="backslashreplace")
    except BaseException:
        os.close(fd)
        raise


class ReportWriter:
    """Writes the report (when there is a file) and keeps the counts and reasons (always).

    Each record is handed to the operating system as its item ends, in one write (no
    fsync: a process killed outright, even by SIGKILL, loses nothing the kernel has; a
    machine that loses power may), so a killed run's report holds a true record for every
    item the run saw end.
    """

    def __init__(self, stream: IO[str] | None, project_id: str | None) -> None:
        self._stream = stream
        self._project_id = project_id
        self.counts = dict.fromkeys(RESULTS, 0)
        self.reasons = Reasons()
        #: Why the report could not be written (the run must then stop), or ``None``.
        self.error: str | None = None

    def header(self, fields: dict[str, object]) -> None:
        """The first record: what this run is, and against what."""
        self._write({"record": "header", "format": FORMAT, **fields})

    def item(
        self,
        line: Line,
        result: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        attempts: int = 0,
        elapsed: float = 0.0,
        request_id: str | None = None,
    ) -> None:
        """Record how one input line ended."""
        self.counts[result] += 1
        if result == "failed":
            target = _shown(line.target) if line.target is not None else f"line {line.number}"
            self.reasons.add(status, error_code, error_msg or "", target)
        self._write(
            {
                "record": "item",
                "line": line.number,
                "target": None
                if line.target is None
                else _target_json(line.target, self._project_id),
                "text": clean(line.text) if line.target is None else None,
                "result": result,
                "status": status,
                "error_code": clean(error_code, 200),
                "error_msg": clean(error_msg),
                "attempts": attempts,
                "elapsed": round(elapsed, 6),
                "request_id": clean(request_id, 200),
            }
        )

    def outcome(self, line: Line, outcome: Outcome[Target]) -> None:
        """Record a bulk run's outcome for ``line``."""
        error = outcome.error
        status = code = message = None
        if error is not None:
            status, code, message = describe(error)
        self.item(
            line,
            str(outcome.kind),
            status=status,
            error_code=code,
            error_msg=message,
            attempts=outcome.attempts,
            elapsed=outcome.elapsed,
            request_id=outcome.request_id,
        )

    def incomplete(self, next_line: int | None, reason: str) -> None:
        """Lines from ``next_line`` on were never read: this report cannot finish the job alone."""
        self._write({"record": "incomplete", "next_line": next_line, "reason": reason})

    def summary(self, fields: dict[str, object]) -> None:
        """The last record: the counts, and that the run ended in an orderly way."""
        self._write({"record": "summary", "counts": dict(self.counts), **fields})

    def _write(self, record: dict[str, object]) -> None:
        if self._stream is None:
            return
        try:
            # ASCII only: a server's bidi override or C1 control (in an error_code, a
            # name, a request id) is kept as a \u escape, inert when the file is shown.
            self._stream.write(json.dumps(record) + "\n")
            self._stream.flush()  # the whole record, now: one write
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Writing failed (a full disk, say): remember why and write nothing more."""
        self.error = exc.strerror or str(exc)
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

    def close(self) -> None:
        """Flush and close the report file."""
        if self._stream is not None:
            try:
                self._stream.flush()
                self._stream.close()
            except OSError as exc:
                self._fail(exc)
            self._stream = None
