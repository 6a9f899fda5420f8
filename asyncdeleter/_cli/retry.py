"""Reading an earlier report for ``--retry-from``: validated as strictly as input.

A report is read twice, streamed, from the private copy the command made of it
(``source.private_copy``): ``scan`` checks every record (and, given the input
too, collects the targets it marks done), then ``report_lines`` turns its item records
back into ``Line`` objects for the new run. Nothing is trusted: ids must be strings of
the documented pattern, every field has its documented type, and a record of any other
shape stops the command before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Final

import attrs
import yarl

from asyncdeleter._cli.lines import Line, Target
from asyncdeleter._cli.operations import BY_COMMAND, Operation
from asyncdeleter._cli.report import DONE_RESULTS, FORMAT, RESULTS

__all__ = [
    "Opener",
    "ReportError",
    "Scan",
    "endpoint_key",
    "header_mismatches",
    "report_lines",
    "scan",
]

#: Opens the report from its first byte (``PrivateCopy.open``).
Opener = Callable[[], IO[bytes]]

MAX_RECORD_BYTES: Final = 64 * 1024
_KINDS: Final = frozenset({"header", "item", "incomplete", "summary"})
# Reports written before the header existed said "dry_run" for what is now "planned".
_LEGACY_RESULTS: Final = {**{r: r for r in RESULTS}, "dry_run": "planned"}


class ReportError(ValueError):
    """The ``--retry-from`` report cannot be used; the message says where and why."""


@attrs.define
class Scan:
    """What the first pass over a report found.

    Attributes:
        header: The header record, or ``None`` (a report from before headers existed).
        summary: The report ends with a summary record (the run ended in an orderly way).
        incomplete: ``next_line`` of an ``incomplete`` record: the input was not read to
            its end.
        torn: The last line was cut short (the writer was killed) and is ignored.
        to_run: Item records to run again.
        done: The targets marked done, when asked for (``--retry-from REPORT INPUT``).
    """

    header: dict[str, object] | None = None
    summary: bool = False
    incomplete: int | None = None
    torn: bool = False
    to_run: int = 0
    done: set[Target] = attrs.Factory(set)


def endpoint_key(url: str) -> str:
    """An endpoint URL in the form two reports are compared in."""
    try:
        return str(yarl.URL(url)).rstrip("/")
    except (TypeError, ValueError):
        return url


def _records(report: Opener) -> Iterator[tuple[int, dict[str, object] | None]]:
    """``(line number, record)``; ``None`` for a torn last line. Raises ``ReportError``."""
    with report() as stream:
        number = 0
        while raw := stream.readline(MAX_RECORD_BYTES + 1):
            number += 1
            last = not raw.endswith(b"\n")
            if not raw.strip():
                continue
            if len(raw) > MAX_RECORD_BYTES and last:
                raise ReportError(f"report line {number} is longer than {MAX_RECORD_BYTES:,} bytes")
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                if last:
                    yield number, None
                    return
                reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
                raise ReportError(f"report line {number} is not JSON ({reason})") from None
            if not isinstance(data, dict):
                if last:
                    yield number, None
                    return
                raise ReportError(f"report line {number} is not a JSON object")
            yield number, data


def _target(number: int, op: Operation, value: object, project_id: str | None) -> Target:
    """The target of an item record, validated like an input line."""
    try:
        return op.target_from_report(value, project_id)
    except ValueError as exc:
        raise ReportError(f"report line {number}: {exc}") from None


def _item(
    number: int, record: dict[str, object], op: Operation, project_id: str | None, legacy: bool
) -> Line:
    result = record.get("result")
    if not isinstance(result, str) or result not in (_LEGACY_RESULTS if legacy else RESULTS):
        raise ReportError(f"report line {number}: result must be one of {', '.join(RESULTS)}")
    result = _LEGACY_RESULTS[result]
    line = record.get("line")
    if type(line) is not int or line < (0 if legacy else 1):
        if not (legacy and line is None):
            raise ReportError(f"report line {number}: line must be a whole number >= 1")
        line = 0
    value = record.get("target")
    if result == "invalid" and (value is None or (legacy and isinstance(value, str))):
        text = record.get("text") if value is None else value
        message = record.get("error_msg")
        return Line(
            line,
            text if isinstance(text, str) else "",
            None,
            message if isinstance(message, str) else "invalid in the earlier report",
        )
    target = _target(number, op, value, project_id)
    text = " ".join(target) if isinstance(target, tuple) else target
    if result == "invalid":
        message = record.get("error_msg")
        problem = message if isinstance(message, str) else "invalid in the earlier report"
        return Line(line, text, target, problem)
    return Line(line, text, target, done_before=result in DONE_RESULTS)


def _header(number: int, record: dict[str, object]) -> dict[str, object]:
    if number != 1:
        raise ReportError(f"report line {number}: a header may only be the first record")
    if type(record.get("format")) is not int or record["format"] != FORMAT:
        raise ReportError(
            f"report line {number}: format {record.get('format')!r} is not {FORMAT} "
            "(written by another version of asyncdeleter?)"
        )
    if record.get("operation") not in BY_COMMAND:
        raise ReportError(f"report line {number}: unknown operation {record.get('operation')!r}")
    endpoints = record.get("endpoints")
    if not isinstance(endpoints, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items()
    ):
        raise ReportError(f"report line {number}: endpoints must map names to URLs")
    for name in ("project_id", "region", "workspace_id"):
        if record.get(name) is not None and not isinstance(record.get(name), str):
            raise ReportError(f"report line {number}: {name} must be a string or null")
    return record


def _take(
    found: Scan,
    number: int,
    kind: str,
    record: dict[str, object],
    *,
    op: Operation,
    project_id: str | None,
    legacy: bool,
    collect_done: bool,
) -> None:
    """Check one record of a known kind and add what it says to ``found``."""
    if kind == "header":
        found.header = _header(number, record)
        if found.header["operation"] != op.command:
            raise ReportError(f"the report is of {found.header['operation']}, not {op.command}")
    elif kind == "item":
        line = _item(number, record, op, project_id, legacy)
        if line.done_before:
            if collect_done and line.target is not None:
                found.done.add(line.target)
        elif line.problem is None:
            found.to_run += 1
    elif kind == "incomplete":
        next_line = record.get("next_line")
        if next_line is not None and (type(next_line) is not int or next_line < 1):
            raise ReportError(f"report line {number}: next_line must be a number >= 1 or null")
        found.incomplete = next_line if isinstance(next_line, int) else 0
    else:
        found.summary = True


def scan(report: Opener, op: Operation, project_id: str | None, *, collect_done: bool) -> Scan:
    """Check every record of ``report``; see ``Scan`` for what is returned.

    Raises:
        ReportError: A record is not of a documented shape, or the file cannot be read.
    """
    found = Scan()
    legacy: bool | None = None
    try:
        for number, record in _records(report):
            if record is None:
                found.torn = True
                break
            if found.summary:
                raise ReportError(f"report line {number}: nothing may follow the summary")
            has_kind = "record" in record
            if legacy is None:
                legacy = not has_kind
            if legacy == has_kind:
                raise ReportError(f"report line {number}: mixes old and new record shapes")
            kind = record["record"] if has_kind else "item"
            if not isinstance(kind, str) or kind not in _KINDS:
                raise ReportError(f"report line {number}: unknown record {record.get('record')!r}")
            _take(
                found,
                number,
                kind,
                record,
                op=op,
                project_id=project_id,
                legacy=bool(legacy),
                collect_done=collect_done,
            )
    except OSError as exc:
        raise ReportError(f"cannot read the report: {exc.strerror or exc}") from None
    return found


def report_lines(report: Opener, op: Operation, project_id: str | None) -> Iterator[Line]:
    """The report's item records as lines of a new run (``scan`` has checked them)."""
    for number, record in _records(report):
        if record is None or record.get("record") != "item":
            continue
        try:
            yield _item(number, record, op, project_id, legacy=False)
        except ReportError as exc:  # the file changed since it was scanned
            yield Line(number, "", None, str(exc))


def header_mismatches(
    header: dict[str, object], current: dict[str, object], op: Operation
) -> list[str]:
    """How the run the report was made for differs from this one (empty: the same)."""
    problems = []
    old_endpoints = header.get("endpoints")
    new_endpoints = current["endpoints"]
    assert isinstance(old_endpoints, dict)  # noqa: S101 - checked by _header
    assert isinstance(new_endpoints, dict)  # noqa: S101 - built by the command
    for service, url in new_endpoints.items():
        old = old_endpoints.get(service)
        if not isinstance(old, str) or endpoint_key(old) != endpoint_key(url):
            problems.append(f"{service} endpoint {old} (the report) vs {url} (this run)")
    for name, flag in (("project_id", "--project-id"), ("region", "--region"),
                       ("workspace_id", "--workspace-id")):  # fmt: skip
        old, new = header.get(name), current.get(name)
        if old == new or (new is None and name == "workspace_id"):
            continue
        # The project is sent on every call (X-Project-Id for sessions too): a report made
        # for one is never re-run for none, or the other way round. (A protected project
        # named only in the report would otherwise go unchecked.)
        if (old is None or new is None) and name != "project_id":
            continue
        problems.append(f"{flag} {old} (the report) vs {new} (this run)")
    return problems
