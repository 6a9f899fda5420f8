r"""Input lines: one record per ``\\n``-terminated line, parsed into targets, never trusted.

The input is read as bytes and split on ``\\n`` only, so a bare CR (or a Unicode line
separator) can never act as a line break; a CR right before the ``\\n`` is the one
exception (a file saved on Windows). Fields are separated by spaces, tabs or commas; any
other character must belong to an identifier and is then refused by its validation.

A line that holds a credential this command was given (anywhere in it, however it is
wrapped), and the header of the console's access key file with every line after it, are
refused and *withheld*: their text is never shown, recorded or sent. Only the credentials
in use and that header count; nothing is guessed from a line's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import IO, Final

import attrs

from asyncdeleter import InvalidIdentifierError, check_session_target, check_workspace_id
from asyncdeleter._errors import escape_control

__all__ = [
    "CONSOLE_CREDENTIALS_HEADER",
    "MAX_LINE_BYTES",
    "WITHHELD",
    "Line",
    "SessionTarget",
    "Target",
    "printable",
    "read_lines",
    "session_line",
    "target_ids",
    "workspace_line",
]

SessionTarget = tuple[str, str]
Target = SessionTarget | str
#: A longer line is refused (and skipped to its end) rather than read into memory.
MAX_LINE_BYTES: Final = 64 * 1024
_SEPARATORS: Final = re.compile(r"[ \t,]+")
_BOM: Final = "\ufeff"
#: The header of ``credentials.csv``, the access key file the Huawei Cloud console hands
#: out, field by field (matched ignoring case, spaces and quotes around a field).
CONSOLE_CREDENTIALS_HEADER: Final = ("user name", "access key id", "secret access key")
_IN_USE: Final = "holds a credential this command was given; its text is not shown"
_CONSOLE_HEADER: Final = (
    "is the header of the console's access key file (credentials.csv); its text is not shown"
)
_AFTER_HEADER: Final = "follows the header of an access key file; its text is not shown"
#: The problems of lines whose text is withheld: it holds, or may hold, credentials.
WITHHELD: Final = frozenset({_IN_USE, _CONSOLE_HEADER, _AFTER_HEADER})


@attrs.frozen
class Line:
    r"""One meaningful line of input (or one item of an earlier report).

    Attributes:
        number: Its line number in the original input, from 1.
        text: The line as read (undecodable bytes shown as ``\\xNN``).
        target: The validated target, or ``None`` when the line cannot be one.
        problem: Why it must not be sent, or ``None``.
        done_before: An earlier report marks it done: it is recorded, never sent.
    """

    number: int
    text: str
    target: Target | None
    problem: str | None = None
    done_before: bool = False


def printable(text: str, limit: int | None = 200) -> str:
    r"""``text`` safe to show on a terminal: control and invisible characters escaped.

    The one escaping of what the command prints (the library's own, as its exceptions
    use): ``Display.message`` and the prompt pass every line through it, so no server
    string (an error code, a message, a name) can move the cursor, recolour, retitle or
    reverse the terminal, or forge a line. ``limit``: cut to that many characters
    (``...`` says so); ``None``: never cut.
    """
    if limit is None or len(text) <= limit:
        return escape_control(text)
    return escape_control(text[:limit]) + "..."


def _credential(text: str, credentials: Collection[str]) -> str | None:
    """Why ``text`` must be withheld (see the module docstring), or ``None``."""
    header = [field.strip(' \t"').casefold() for field in text.split(",")]
    if header[: len(CONSOLE_CREDENTIALS_HEADER)] == list(CONSOLE_CREDENTIALS_HEADER):
        return _CONSOLE_HEADER
    # Anywhere in the line, in whatever it is wrapped in ("SK", SK=, a NUL or a form feed
    # before it): a credential is at least 8 characters, so holding one is no accident.
    if any(credential in text for credential in credentials):
        return _IN_USE
    return None


def _decoded(raw: bytes, number: int) -> tuple[str, str | None, bool]:
    """A line's bytes as ``(text, problem, unterminated)``, its line break taken off."""
    problem = None
    unterminated = not raw.endswith(b"\n")
    raw = raw if unterminated else raw[:-1].removesuffix(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text, problem = raw.decode("utf-8", "backslashreplace"), "not valid UTF-8"
    if number == 1:
        text = text.removeprefix(_BOM)
    if "\r" in text:
        problem = "contains a carriage return (CR), which is not a line break here"
    return text.strip(" \t"), problem, unterminated


def read_lines(
    stream: IO[bytes], first: int = 1, *, credentials: Collection[str] = ()
) -> Iterator[tuple[int, str, str | None]]:
    r"""Yield ``(number, text, problem)`` for each line that is not blank or a ``#`` comment.

    ``problem`` says why the line cannot be a record (not UTF-8, a CR inside it, too long,
    or the last line without its ``\\n``, which may have been cut short). A line that
    holds one of ``credentials`` (the credentials the command was given), the header of
    the console's access key file and every line after it are withheld: their text is
    ``""`` and their problem one of ``WITHHELD``.
    """
    after_header = False
    number = first - 1
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        too_long = len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n")
        if too_long:
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            raw = raw[:80] + b"\n"  # all that is ever shown of it
        text, problem, unterminated = _decoded(raw, number)
        if after_header and not text:
            continue
        withheld = _AFTER_HEADER if after_header else _credential(text, credentials)
        if withheld is not None:
            after_header = after_header or withheld == _CONSOLE_HEADER
            yield number, "", withheld
            continue
        if too_long:
            yield number, text, f"longer than {MAX_LINE_BYTES:,} bytes"
            continue
        if problem is None and (not text or text.startswith("#")):
            continue  # blank or a comment, even when unterminated
        if unterminated and problem is None:
            problem = "the last line has no line break: it may have been cut short"
        yield number, text, problem


def _fields(text: str) -> list[str]:
    return [field for field in _SEPARATORS.split(text) if field]


def _problem(check: Callable[[object], object], value: object) -> str | None:
    """Why ``check`` (one of the library's public validators) refuses ``value``, or ``None``."""
    try:
        check(value)
    except InvalidIdentifierError as exc:
        return str(exc)
    return None


def session_line(number: int, text: str, problem: str | None, scope: str | None) -> Line:
    """``session_id`` (with ``--workspace-id``) or ``workspace_id session_id``."""
    if problem is not None:
        return Line(number, text, None, problem)
    fields = _fields(text)
    if len(fields) == 1 and scope is not None:
        fields = [scope, fields[0]]
    if len(fields) != 2:
        if len(fields) == 1:
            return Line(number, text, None, "a lone session id needs --workspace-id")
        return Line(number, text, None, f"expected 1 or 2 fields, found {len(fields)}")
    workspace_id, session_id = fields
    problem = _problem(check_session_target, (workspace_id, session_id))
    if problem is not None:
        return Line(number, text, None, problem)
    return Line(number, text, (workspace_id, session_id))


def workspace_line(number: int, text: str, problem: str | None) -> Line:
    """One workspace id per line."""
    if problem is not None:
        return Line(number, text, None, problem)
    fields = _fields(text)
    if len(fields) != 1:
        return Line(number, text, None, f"expected one workspace id, found {len(fields)} fields")
    problem = _problem(check_workspace_id, fields[0])
    if problem is not None:
        return Line(number, text, None, problem)
    return Line(number, text, fields[0])


def target_ids(target: Target) -> tuple[str, ...]:
    """The ids a target names (a protected id among them refuses it)."""
    return target if isinstance(target, tuple) else (target,)
