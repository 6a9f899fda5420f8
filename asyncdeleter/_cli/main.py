"""``asyncdeleter``: bulk cleanup from a shell, the emulator, and the one-command demo."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from asyncdeleter import __version__
from asyncdeleter._cli.bulk import run_bulk
from asyncdeleter._cli.demo import run_demo
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.filters import SESSION_STATUSES, WORKSPACE_STATUSES
from asyncdeleter._cli.listing import run_list
from asyncdeleter._cli.operations import (
    CLOSE_SESSIONS,
    DELETE_WORKSPACES,
    LIST_SESSIONS,
    LIST_WORKSPACES,
    SWEEP_SESSIONS,
    SWEEP_WORKSPACES,
    Operation,
)
from asyncdeleter._cli.options import (
    Decorator,
    apply,
    call_options,
    destructive_options,
    endpoint_options,
    filter_options,
    trailing_options,
    wait_options,
)
from asyncdeleter._cli.serve import serve
from asyncdeleter._cli.sweep import run_sweep

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asyncdeleter")
def main() -> None:
    """Tear down DataArts Fabric SQL sessions and ModelArts workspaces at scale.

    Credentials come from HUAWEICLOUD_SDK_AK/SK (or --token-file), never from flags.
    """


def _bulk_options(op: Operation) -> Decorator:
    return apply([
        click.argument("file", required=False,
                       type=click.Path(exists=True, allow_dash=True, dir_okay=False)),
        *endpoint_options(op.service),
        *call_options(),
        click.option("--missing-ok/--no-missing-ok", default=True, show_default=True,
                     help="Count items already gone as done."),
        click.option("--dry-run", is_flag=True,
                     help="Validate, count and report 'planned'; send nothing."),
        click.option("--strict", is_flag=True,
                     help="Validate the whole input first; send nothing if a line is bad."),
        *destructive_options(),
        *trailing_options(),
    ])  # fmt: skip


def _sweep_options(op: Operation, statuses: tuple[str, ...], *, name: bool) -> Decorator:
    return apply([
        *filter_options(statuses, name=name),
        click.option("--apply", is_flag=True,
                     help=f"Really {op.verb} what matches (it asks first); without it, the "
                          "plan is printed and nothing is sent but reads."),
        *endpoint_options(op.service),
        *call_options(),
        *destructive_options(sweep=True),
        *trailing_options(),
    ])  # fmt: skip


def _list_options(service: str, statuses: tuple[str, ...], *, name: bool) -> Decorator:
    return apply([
        *filter_options(statuses, name=name),
        click.option("--json", "as_json", is_flag=True,
                     help="One JSON object per line with every field (times in ISO 8601)."),
        *endpoint_options(service),
        *call_options(concurrency=False),
        *trailing_options(),
    ])  # fmt: skip


_WORKSPACE_SCOPE = click.option(
    "--workspace-id",
    help="Close sessions of this workspace only: lines may hold just a session id, and a "
    "line naming another workspace is refused.",
)


@main.command("close-sessions")
@_WORKSPACE_SCOPE
@_bulk_options(CLOSE_SESSIONS)
def close_sessions(**options: Any) -> None:
    """Close the SQL sessions listed in FILE (or stdin), one per line.

    A line is 'workspace_id session_id' (space, tab or comma), or 'session_id' with
    --workspace-id. On a terminal it asks you to type the workspace id (or the Fabric
    host); elsewhere it needs --yes.
    """
    sys.exit(run_bulk(CLOSE_SESSIONS, options))


@main.command("delete-workspaces")
@apply(wait_options())
@_bulk_options(DELETE_WORKSPACES)
def delete_workspaces(**options: Any) -> None:
    """Delete the ModelArts workspaces listed in FILE (or stdin), one id per line.

    On a terminal it asks you to type the project id; elsewhere it needs --yes.
    """
    sys.exit(run_bulk(DELETE_WORKSPACES, options))


@main.command("list-sessions")
@click.option("--workspace-id", required=True, help="The Fabric workspace whose sessions to list.")
@_list_options("fabric", SESSION_STATUSES, name=False)
def list_sessions(**options: Any) -> None:
    """Print the SQL sessions of a workspace, one 'workspace_id session_id' line each.

    The lines are close-sessions' input: save them, review them, then
    'close-sessions FILE'. Sessions close-sessions would refuse (protected) are printed
    as '#' comments. --json prints every field instead.
    """
    sys.exit(run_list(LIST_SESSIONS, options))


@main.command("list-workspaces")
@_list_options("modelarts", WORKSPACE_STATUSES, name=True)
def list_workspaces(**options: Any) -> None:
    """Print the ModelArts workspaces of the project, one id per line.

    The lines are delete-workspaces' input. The default workspace and protected ones
    are printed as '#' comments. --json prints every field instead.
    """
    sys.exit(run_list(LIST_WORKSPACES, options))


@main.command("sweep-sessions")
@click.option(
    "--workspace-id",
    help="The Fabric workspace to sweep (required, except with --retry-from, whose "
    "report names it).",
)
@_sweep_options(SWEEP_SESSIONS, SESSION_STATUSES, name=False)
def sweep_sessions(**options: Any) -> None:
    """Close the SQL sessions of a workspace that match the filters: list, filter, close.

    Without --apply it prints the plan (close-sessions' input lines) and closes nothing.
    With --apply it counts what matches, asks you to type the workspace id (elsewhere
    it needs --yes), then lists afresh and closes what matches.
    """
    if options["workspace_id"] is None and options["retry_from"] is None:
        raise click.UsageError("Missing option '--workspace-id' (the workspace to sweep).")
    sys.exit(run_sweep(SWEEP_SESSIONS, options))


@main.command("sweep-workspaces")
@apply(wait_options())
@_sweep_options(SWEEP_WORKSPACES, WORKSPACE_STATUSES, name=True)
def sweep_workspaces(**options: Any) -> None:
    """Delete the ModelArts workspaces of the project that match the filters.

    The default workspace is never deleted. Without --apply it prints the plan
    (delete-workspaces' input lines) and deletes nothing. With --apply it counts what
    matches, asks you to type the project id (elsewhere it needs --yes), then lists
    afresh and deletes what matches.
    """
    sys.exit(run_sweep(SWEEP_WORKSPACES, options))


@main.command("emulator")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on ('', 0, 0.0.0.0 or :: mean all interfaces); anything but "
    "loopback is reachable by others.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0 picks a free port.",
)
@click.option("--token", help="Require this X-Auth-Token (a test credential, not a secret).")
@click.option(
    "--aksk-from-env",
    is_flag=True,
    help="Check AK/SK signatures against HUAWEICLOUD_SDK_AK/SK from the environment.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Milliseconds added to each answer.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="STATUS:RATE",
    help="Answer STATUS with probability RATE, e.g. 503:0.05 (repeatable).",
)
@click.option(
    "--seed-workspaces", type=click.IntRange(0), default=0, help="Create this many workspaces..."
)
@click.option(
    "--seed-sessions", type=click.IntRange(0), default=0, help="...each with this many sessions."
)
@click.option("--project-id", default="demo-project", show_default=True)
@click.option("--stateless", is_flag=True, help="Answer every valid delete 200; store nothing.")
def emulator(**options: Any) -> None:  # fmt: skip
    """Serve the DataArts Fabric and ModelArts emulator until Ctrl-C.

    It accepts any request unless --token or --aksk-from-env asks for credentials.
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
    """Tear down thousands of resources in an in-process emulator, with faults: the main job.

    It needs no confirmation: it deletes only from its own emulator.
    """
    sys.exit(asyncio.run(run_demo(sessions, workspaces, concurrency, Display(quiet=quiet))))
