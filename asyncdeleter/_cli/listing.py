"""``list-sessions`` and ``list-workspaces``: what is there, as the delete commands' input.

Every line is printed only after it has been read back through the delete command's own
input reader and parser (``_reads_back``): a plain line into the same target, so
``list-sessions ... | close-sessions --yes -`` (or a saved, reviewed ``plan.txt``) can
never name something the listing did not; a comment into nothing at all, whatever a
server put in a name it quotes. An id the server sent that is not a valid id is left
out, with a warning on stderr. What the delete command would refuse (the default
workspace, a protected id) is printed as a ``#`` comment, which it skips. ``--json``
prints every field of every item instead.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

import attrs

from asyncdeleter import AsyncDeleterError, InvalidIdentifierError
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.filters import Filters
from asyncdeleter._cli.lines import Line, Target, printable, read_lines
from asyncdeleter._cli.operations import Lister, Operation
from asyncdeleter._cli.preflight import refusal, said
from asyncdeleter._cli.settings import (
    Protection,
    Settings,
    UsageError,
    build_manager,
    resolve,
    scope_problem,
)
from asyncdeleter._cli.teardown import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = ["as_json", "run_list"]

_FLUSH_EVERY: Final = 0.2  # seconds: a pipeline downstream sees lines as they come
_LIST_CONCURRENCY: Final = 4  # a listing is one request at a time


def _plain(_: object, __: object, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping) and not isinstance(value, dict):
        return dict(value)
    return value


def as_json(item: Any) -> str:
    """A listed model as one JSON line: every field, times in ISO 8601, ``extra`` too."""
    data = attrs.asdict(item, value_serializer=_plain)
    # ASCII only: whatever a server put in a field cannot drive the terminal.
    return json.dumps(data, default=str, sort_keys=False)


class _Out:
    """Lines to stdout, flushed often enough for a pipeline; a closed pipe ends the listing."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.flushed = time.monotonic()

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")
        now = time.monotonic()
        if now - self.flushed >= _FLUSH_EVERY:
            self.flushed = now
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


@attrs.define
class _Counts:
    listed: int = 0
    matched: int = 0
    comments: int = 0
    left_out: int = 0


def _reads_back(op: Operation, line: str, target: Target | None) -> str | None:
    """Why ``op``'s input reader would not read ``line`` back as ``target``, or ``None``.

    ``target`` ``None``: ``line`` must be a comment, which the reader skips.
    """
    read: list[Line] = [
        op.parse_line(number, text, problem, None)
        for number, text, problem in read_lines(io.BytesIO(line.encode("utf-8") + b"\n"))
    ]
    if target is None:
        return None if not read else "not read back as a comment"
    if len(read) != 1:
        return f"read back as {len(read)} lines"
    if read[0].problem is not None:
        return read[0].problem
    return None if read[0].target == target else "not a valid id"


def _render(
    lister: Lister, item: Any, protection: Protection, counts: _Counts, display: Display
) -> str | None:
    """The line for ``item``, exactly as the delete command reads it back; ``None``: none."""
    op = lister.deleter
    target = lister.target(item)
    try:
        text = op.line(target)
    except TypeError:
        text = ""
    problem = _reads_back(op, text, target) if text else "not a valid id"
    if problem is not None:
        counts.left_out += 1
        parts = target if isinstance(target, tuple) else (target,)
        shown = printable(" ".join(str(part) for part in parts))
        display.message(f"warning: left out {shown}: {printable(problem)}")
        return None
    why = lister.never(item) or protection.refusal(lister.names(item))
    if why is None:
        return text
    counts.comments += 1
    comment = f"# {text}  ({why})"
    # The reason quotes what the server named; a comment is still only a comment.
    return comment if _reads_back(op, comment, None) is None else f"# {text}"


def _filters(options: Mapping[str, Any]) -> Filters:
    return Filters(
        status=options.get("status"),
        older_than=options.get("older_than"),
        name=options.get("name"),
    )


def _flag_problem(exc: InvalidIdentifierError) -> str:
    return f"--{exc.parameter.replace('_', '-')} {printable(str(exc.value))!r}: {exc.reason}"


async def _list(
    lister: Lister,
    settings: Settings,
    options: Mapping[str, Any],
    protection: Protection,
    display: Display,
) -> int:
    scope: str | None = options.get("workspace_id")
    filters = _filters(options)
    as_lines = not options["as_json"]
    out = _Out(sys.stdout)
    counts = _Counts()
    manager = build_manager(settings, {**options, "concurrency": _LIST_CONCURRENCY})
    async with manager:
        try:
            listing = lister.items(manager, scope, filters)
        except InvalidIdentifierError as exc:
            raise UsageError(_flag_problem(exc)) from None
        now = datetime.now(UTC)  # fixed once, as a sweep fixes it
        try:
            async for item in listing:
                counts.listed += 1
                if not filters.matches(item, now):
                    continue
                counts.matched += 1
                line = (
                    _render(lister, item, protection, counts, display)
                    if as_lines
                    else as_json(item)
                )
                if line is not None:
                    out.write(line)
        except AsyncDeleterError as exc:
            out.close()
            why = refusal(lister.deleter, settings, scope, exc)
            if why is not None:
                display.message(f"error: {why}")
                return EXIT_USAGE
            display.message(
                f"error: listing failed after {counts.listed:,} {lister.noun} ({said(exc)}): "
                "the output is incomplete"
            )
            return EXIT_FAILED
        out.close()
    where = f"workspace {scope}" if scope else f"project {settings.project_id}"
    shown = f"; {counts.matched:,} match {filters.flags()}" if filters != Filters() else ""
    comments = (
        f"; {counts.comments:,} printed as # comments (refused by {lister.deleter.command})"
        if counts.comments
        else ""
    )
    display.note(f"{counts.listed:,} {lister.noun} in {where}{shown}{comments}")
    return EXIT_FAILED if counts.left_out else EXIT_OK


def run_list(lister: Lister, options: dict[str, Any]) -> int:
    """Run a list command with its parsed flags; return the exit status."""
    display = Display(quiet=bool(options["quiet"]))
    try:
        protection = Protection.from_env(os.environ)
        settings = resolve(
            lister.deleter, options, os.environ, dry_run=False, command=lister.command
        )
        if problem := scope_problem(options.get("workspace_id")):
            display.message(f"error: {problem}")
            return EXIT_USAGE
        return asyncio.run(_list(lister, settings, options, protection, display))
    except UsageError as exc:
        display.message(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        display.message("interrupted: the output is incomplete")
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing more on a closed stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
