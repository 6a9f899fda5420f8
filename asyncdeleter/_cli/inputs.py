"""Reading targets from lines, and the JSON Lines report: both streamed, line by line."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from typing import IO, Final

import attrs

from asyncdeleter._bulk import Outcome
from asyncdeleter._errors import APIError

__all__ = [
    "DONE_RESULTS",
    "Line",
    "ReportWriter",
    "SessionTarget",
    "Target",
    "parse_session_line",
    "parse_workspace_line",
    "protected_ids",
    "read_lines",
    "read_report",
]

SessionTarget = tuple[str, str]
Target = SessionTarget | str
#: Results a report marks done: ``--retry-from`` never runs these again.
DONE_RESULTS: Final = frozenset({"succeeded", "already_gone"})
_FIELDS: Final = re.compile(r"[\s,]+")
PROTECTED_ENV: Final = "ASYNCDELETER_PROTECTED_IDS"


@attrs.frozen
class Line:
    """One meaningful input line: its number, and the target or why it is unusable."""

    number: int
    text: str
    target: Target | None
    problem: str | None = None


def read_lines(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` for each line that is not blank or a ``#`` comment."""
    for number, raw in enumerate(stream, 1):
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def parse_session_line(number: int, text: str, workspace_id: str | None) -> Line:
    """``session_id`` (with ``--workspace-id``) or ``workspace_id session_id``."""
    fields = [f for f in _FIELDS.split(text) if f]
    if len(fields) == 2:
        return Line(number, text, (fields[0], fields[1]))
    if len(fields) == 1 and workspace_id is not None:
        return Line(number, text, (workspace_id, fields[0]))
    if len(fields) == 1:
        return Line(number, text, None, "a lone session id needs --workspace-id")
    return Line(number, text, None, f"expected 1 or 2 fields, found {len(fields)}")


def parse_workspace_line(number: int, text: str) -> Line:
    """One workspace id per line."""
    fields = [f for f in _FIELDS.split(text) if f]
    if len(fields) == 1:
        return Line(number, text, fields[0])
    return Line(number, text, None, f"expected one workspace id, found {len(fields)} fields")


def protected_ids(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The ids in ``ASYNCDELETER_PROTECTED_IDS`` (comma-separated): never to be deleted."""
    value = (os.environ if environ is None else environ).get(PROTECTED_ENV, "")
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _target_json(target: object, project_id: str | None) -> object:
    if isinstance(target, tuple) and len(target) == 2:
        return {"workspace_id": target[0], "session_id": target[1]}
    if isinstance(target, str) and project_id is not None:
        return {"project_id": project_id, "workspace_id": target}
    return target if isinstance(target, str) else repr(target)


def _target_key(value: object) -> Target | None:
    if isinstance(value, dict):
        if "session_id" in value:
            return (str(value.get("workspace_id")), str(value["session_id"]))
        if "workspace_id" in value:
            return str(value["workspace_id"])
    return None


class ReportWriter:
    """Writes one JSON object per input item; ``close()`` flushes (Ctrl-C included)."""

    def __init__(self, stream: IO[str] | None, project_id: str | None) -> None:
        self._stream = stream
        self._project_id = project_id

    def outcome(self, line: int | None, outcome: Outcome[Target]) -> None:
        """Record how one item ended."""
        error = outcome.error
        self._write(
            {
                "line": line,
                "target": _target_json(outcome.target, self._project_id),
                "result": str(outcome.kind),
                "error_code": error.error_code if isinstance(error, APIError) else None,
                "error_msg": (
                    (error.error_msg or str(error))
                    if isinstance(error, APIError)
                    else (str(error) if error is not None else None)
                ),
                "status": error.status if isinstance(error, APIError) else None,
                "attempts": outcome.attempts,
                "elapsed": round(outcome.elapsed, 6),
                "request_id": outcome.request_id,
            }
        )

    def unusable(self, line: Line, result: str = "invalid") -> None:
        """Record a line that never became a request (malformed, protected, dry run)."""
        self._write(
            {
                "line": line.number,
                "target": _target_json(line.target, self._project_id)
                if line.target is not None
                else line.text,
                "result": result,
                "error_code": None,
                "error_msg": line.problem,
                "status": None,
                "attempts": 0,
                "elapsed": 0.0,
                "request_id": None,
            }
        )

    def _write(self, record: dict[str, object]) -> None:
        if self._stream is not None:
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Flush and close the report file."""
        if self._stream is not None:
            self._stream.flush()
            self._stream.close()


def read_report(stream: Iterable[str]) -> tuple[set[Target], list[Target]]:
    """Read a previous report: the targets it marks done, and those to run again.

    Returns:
        ``(done, again)``: ``again`` holds the ``failed`` and ``skipped`` targets in the
        report's order, without duplicates and without any target also marked done.

    Raises:
        ValueError: A line is not a JSON object (the message gives its number).
    """
    done: set[Target] = set()
    again: dict[Target, None] = {}
    for number, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"line {number} is not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"line {number} is not a JSON object")  # noqa: TRY004 - bad input, not a bad call
        key = _target_key(record.get("target"))
        if key is None:
            continue
        if record.get("result") in DONE_RESULTS:
            done.add(key)
        elif record.get("result") in ("failed", "skipped"):
            again[key] = None
    return done, [t for t in again if t not in done]
