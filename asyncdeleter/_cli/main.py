"""``asyncdeleter``: bulk cleanup from a shell, the emulator, and the one-command demo."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from asyncdeleter._auth import TokenAuth
from asyncdeleter._cli.demo import run_demo
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.inputs import (
    Line,
    ReportWriter,
    parse_session_line,
    parse_workspace_line,
    protected_ids,
    read_lines,
    read_report,
)
from asyncdeleter._cli.serve import serve
from asyncdeleter._cli.teardown import EXIT_USAGE, Job, run_job, validate
from asyncdeleter._config import Endpoints, RetryPolicy
from asyncdeleter._errors import AsyncDeleterError
from asyncdeleter._manager import SessionManager
from asyncdeleter._version import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asyncdeleter")
def main() -> None:
    """Tear down DataArts Fabric SQL sessions and ModelArts workspaces at scale.

    Credentials come from HUAWEICLOUD_SDK_AK/SK (or --token-file), never from flags.
    """


def _bulk_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("file", required=False,
                       type=click.Path(exists=True, allow_dash=True, dir_okay=False)),
        click.option("--region", envvar="HUAWEICLOUD_SDK_REGION", help="Region, e.g. cn-north-4."),
        click.option("--fabric-endpoint", help="DataArts Fabric base URL (overrides --region)."),
        click.option("--modelarts-endpoint", help="ModelArts base URL (overrides --region)."),
        click.option("--project-id", envvar="HUAWEICLOUD_SDK_PROJECT_ID", help="Its project."),
        click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
                     help="Read an IAM token from this file (never pass secrets as flags)."),
        click.option("--concurrency", type=click.IntRange(1, 10_000), default=64,
                     show_default=True),
        click.option("--max-tries", type=click.IntRange(1, 100), default=5, show_default=True),
        click.option("--max-time", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
                     help="Overall deadline of each call, in seconds."),
        click.option("--missing-ok/--no-missing-ok", default=True, show_default=True,
                     help="Count items already gone as done."),
        click.option("--dry-run", is_flag=True, help="Validate and count; send nothing."),
        click.option("--strict", is_flag=True, help="Validate the whole input before sending."),
        click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
                     help="Write one JSON line per input item here."),
        click.option("--retry-from", type=click.Path(exists=True, dir_okay=False),
                     help="Re-run what this earlier report did not finish."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
        click.option("--quiet", "-q", is_flag=True, help="No progress or summary."),
        click.option("--allow-insecure-http", is_flag=True, help="Allow http:// to non-loopback."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@main.command("close-sessions")
@click.option("--workspace-id", help="The workspace of lines that hold only a session id.")
@_bulk_options
def close_sessions(**options: Any) -> None:
    """Close the SQL sessions listed in FILE (or stdin), one per line.

    A line is 'session_id' (with --workspace-id) or 'workspace_id session_id'.
    """
    workspace_id = options.pop("workspace_id")
    parse = functools.partial(_parse_sessions, workspace_id=workspace_id)
    sys.exit(_bulk("close-sessions", parse, confirm_word=workspace_id, **options))


@main.command("delete-workspaces")
@_bulk_options
def delete_workspaces(**options: Any) -> None:
    """Delete the ModelArts workspaces listed in FILE (or stdin), one id per line."""
    sys.exit(_bulk("delete-workspaces", _parse_workspaces, confirm_word=None, **options))


def _parse_sessions(lines: Iterable[tuple[int, str]], workspace_id: str | None) -> Iterator[Line]:
    for number, text in lines:
        yield parse_session_line(number, text, workspace_id)


def _parse_workspaces(lines: Iterable[tuple[int, str]]) -> Iterator[Line]:
    for number, text in lines:
        yield parse_workspace_line(number, text)


def _bulk(
    operation: str,
    parse: Callable[[Iterable[tuple[int, str]]], Iterator[Line]],
    *,
    confirm_word: str | None,
    file: str | None,
    report_path: str | None,
    retry_from: str | None,
    quiet: bool,
    dry_run: bool,
    strict: bool,
    yes: bool,
    **options: Any,
) -> int:
    display = Display(quiet=quiet)
    try:
        manager = _manager(operation, options)
    except (AsyncDeleterError, OSError) as exc:
        display.message(f"error: {exc}")
        return EXIT_USAGE
    project_id = manager.project_id
    protected = protected_ids()
    if operation == "delete-workspaces" and project_id in protected:
        display.message(f"error: project {project_id} is protected by ASYNCDELETER_PROTECTED_IDS")
        return EXIT_USAGE

    try:
        lines, total = _input_lines(operation, parse, file, retry_from)
    except (OSError, ValueError) as exc:
        display.message(f"error: cannot read --retry-from report: {exc}")
        return EXIT_USAGE
    if strict:
        lines = list(lines)
        problems = [
            (line, problem) for line in lines if (problem := _line_problem(operation, line))
        ]
        if problems:
            for line, problem in problems:
                display.message(f"line {line.number}: {problem}")
            display.message(f"--strict: {len(problems)} invalid line(s); nothing was sent")
            return EXIT_USAGE
        total = len(lines)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if (
        not (dry_run or yes)
        and interactive
        and not _confirmed(operation, manager, total, confirm_word, display)
    ):
        display.message("not confirmed; nothing was sent")
        return EXIT_USAGE
    report = ReportWriter(
        open(report_path, "w", encoding="utf-8") if report_path else None,  # noqa: SIM115
        project_id if operation == "delete-workspaces" else None,
    )
    job = Job(
        operation=operation,
        lines=lines,
        total=total,
        protected=protected,
        project_id=project_id,
        missing_ok=options["missing_ok"],
        dry_run=dry_run,
        report=report,
        display=display,
    )

    async def go() -> int:
        async with manager:
            return await run_job(job, None if dry_run else manager)

    return asyncio.run(go())


def _line_problem(operation: str, line: Line) -> str | None:
    if line.target is None:
        return line.problem or "unusable line"
    return validate(operation, line.target)


def _manager(operation: str, options: dict[str, Any]) -> SessionManager:
    overrides: dict[str, Any] = {
        "max_concurrency": options["concurrency"],
        "retry": RetryPolicy(max_tries=options["max_tries"], max_time=options["max_time"]),
        "allow_insecure_http": options["allow_insecure_http"],
    }
    fabric, modelarts = options["fabric_endpoint"], options["modelarts_endpoint"]
    if options["region"]:
        overrides["endpoints"] = Endpoints.for_region(
            options["region"], fabric=fabric, modelarts=modelarts
        )
    elif fabric or modelarts:
        overrides["endpoints"] = Endpoints(
            fabric=fabric or modelarts, modelarts=modelarts or fabric
        )
    if options["project_id"]:
        overrides["project_id"] = options["project_id"]
    if options["token_file"]:
        overrides["auth"] = TokenAuth(
            Path(options["token_file"]).read_text(encoding="utf-8").strip()
        )
    manager = SessionManager.from_env(**overrides)
    if operation == "delete-workspaces":
        manager._check_workspace_config()
    return manager


def _input_lines(
    operation: str,
    parse: Callable[[Iterable[tuple[int, str]]], Iterator[Line]],
    file: str | None,
    retry_from: str | None,
) -> tuple[Iterable[Line], int | None]:
    """The input's lines (streamed) and, for a regular file, how many there are."""
    if retry_from is not None:
        with open(retry_from, encoding="utf-8") as stream:
            done, again = read_report(stream)
        if file is None:
            return [Line(0, str(t), t) for t in again], len(again)
        lines = (line for line in parse(read_lines(_open_input(file))) if line.target not in done)
        return lines, None
    source = file or "-"
    total = None
    if source != "-" and os.path.isfile(source):
        with open(source, encoding="utf-8") as stream:
            total = sum(1 for _ in read_lines(stream))
    return parse(read_lines(_open_input(source))), total


def _open_input(source: str) -> IO[str]:
    if source == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    return open(source, encoding="utf-8", errors="replace")


def _confirmed(
    operation: str,
    manager: SessionManager,
    total: int | None,
    confirm_word: str | None,
    display: Display,
) -> bool:
    """Show what is about to happen and make the person type the project or workspace id."""
    if operation == "delete-workspaces":
        host, scope, expected = manager.endpoints.modelarts, "project", manager.project_id
    else:
        host, scope = manager.endpoints.fabric, "workspace"
        expected = confirm_word or host.split("://", 1)[-1]
        if confirm_word is None:
            scope = "endpoint host"
    count = "an unknown number of" if total is None else f"{total:,}"
    display.message(f"About to {operation.replace('-', ' ')}: {count} item(s) at {host}")
    if operation == "delete-workspaces":
        display.message(f"in project {manager.project_id}. This cannot be undone.")
    answer = click.prompt(f"Type the {scope} ({expected}) to go on", err=True, default="",
                          show_default=False)  # fmt: skip
    return answer.strip() == expected


@main.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--token", help="Require this X-Auth-Token (a test credential, not a secret).")
@click.option("--latency", type=float, default=0.0, help="Milliseconds added to each answer.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="STATUS:RATE",
    help="Answer STATUS with probability RATE, e.g. 503:0.05 (repeatable).",
)
@click.option("--seed-workspaces", type=int, default=0, help="Create this many workspaces...")
@click.option("--seed-sessions", type=int, default=0, help="...each with this many sessions.")
@click.option("--project-id", default="demo-project", show_default=True)
@click.option("--stateless", is_flag=True, help="Answer every valid delete 200; store nothing.")
def emulator(**options: Any) -> None:
    """Serve the DataArts Fabric and ModelArts emulator until Ctrl-C.

    AK/SK checking is on when HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK are set.
    """
    try:
        sys.exit(asyncio.run(serve(**options)))
    except KeyboardInterrupt:
        sys.exit(0)


@main.command("demo")
@click.option("--sessions", type=click.IntRange(0), default=20_000, show_default=True)
@click.option("--workspaces", type=click.IntRange(0), default=200, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=64, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def demo(sessions: int, workspaces: int, concurrency: int, quiet: bool) -> None:
    """Tear down thousands of resources in an in-process emulator, with faults: the main job."""
    sys.exit(asyncio.run(run_demo(sessions, workspaces, concurrency, Display(quiet=quiet))))
