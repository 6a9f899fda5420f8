"""``asyncdeleter``: bulk cleanup from a shell, the emulator, and the one-command demo."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import click

from asyncdeleter import __version__
from asyncdeleter._cli.bulk import run_bulk
from asyncdeleter._cli.demo import run_demo
from asyncdeleter._cli.display import Display
from asyncdeleter._cli.operations import (
    CLOSE_SESSIONS,
    DEFAULT_WAIT_TIMEOUT,
    DELETE_WORKSPACES,
    Operation,
)
from asyncdeleter._cli.serve import serve

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asyncdeleter")
def main() -> None:
    """Tear down DataArts Fabric SQL sessions and ModelArts workspaces at scale.

    Credentials come from HUAWEICLOUD_SDK_AK/SK (or --token-file), never from flags.
    """


def _bulk_options(op: Operation) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    service = op.service
    name = {"fabric": "DataArts Fabric", "modelarts": "ModelArts"}[service]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.argument("file", required=False,
                           type=click.Path(exists=True, allow_dash=True, dir_okay=False)),
            click.option("--region", envvar="HUAWEICLOUD_SDK_REGION",
                         help="Region, e.g. cn-north-4 (env HUAWEICLOUD_SDK_REGION)."),
            click.option(f"--{service}-endpoint", help=f"{name} base URL (overrides --region)."),
            click.option("--project-id", envvar="HUAWEICLOUD_SDK_PROJECT_ID",
                         help="The project (env HUAWEICLOUD_SDK_PROJECT_ID)."),
            click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
                         help="Read an IAM token from this file (never pass secrets as flags)."),
            click.option("--concurrency", type=click.IntRange(1, 10_000), default=64,
                         show_default=True),
            click.option("--max-tries", type=click.IntRange(1, 100), default=5,
                         show_default=True),
            click.option("--max-time", type=click.FloatRange(min=0.1), default=120.0,
                         show_default=True, help="Overall deadline of each call, in seconds."),
            click.option("--missing-ok/--no-missing-ok", default=True, show_default=True,
                         help="Count items already gone as done."),
            click.option("--dry-run", is_flag=True,
                         help="Validate, count and report 'planned'; send nothing."),
            click.option("--strict", is_flag=True,
                         help="Validate the whole input first; send nothing if a line is bad."),
            click.option("--report", "report_path",
                         type=click.Path(dir_okay=False, writable=True),
                         help="Write a JSON line per input line here (docs/report.schema.json)."),
            click.option("--retry-from", type=click.Path(exists=True, dir_okay=False),
                         help="Finish what this earlier report did not (with FILE: every line "
                              "of FILE it does not mark done)."),
            click.option("--yes", "-y", is_flag=True,
                         help="Do not ask for confirmation (required when not on a terminal)."),
            click.option("--no-preflight", is_flag=True,
                         help="Skip the one-item listing made before deleting, which checks "
                              "the credentials and the scope."),
            click.option("--quiet", "-q", is_flag=True, help="No progress or summary."),
            click.option("--allow-insecure-http", is_flag=True,
                         help="Allow http:// to a non-loopback host."),
        ]  # fmt: skip
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@main.command("close-sessions")
@click.option(
    "--workspace-id",
    help="Close sessions of this workspace only: lines may hold just a session id, and a "
    "line naming another workspace is refused.",
)
@_bulk_options(CLOSE_SESSIONS)
def close_sessions(**options: Any) -> None:
    """Close the SQL sessions listed in FILE (or stdin), one per line.

    A line is 'workspace_id session_id' (space, tab or comma), or 'session_id' with
    --workspace-id. On a terminal it asks you to type the workspace id (or the Fabric
    host); elsewhere it needs --yes.
    """
    sys.exit(run_bulk(CLOSE_SESSIONS, options))


@main.command("delete-workspaces")
@click.option(
    "--wait",
    is_flag=True,
    help="Count a workspace as succeeded only once the service confirms it gone "
    "(DELETE_FAILED and a wait that runs out are failures).",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait: give up on a workspace not gone this long after its deletion was "
    f"accepted (default {DEFAULT_WAIT_TIMEOUT:g}).",
)
@click.option("--poll-wait", type=click.FloatRange(min=0, min_open=True), hidden=True)
@_bulk_options(DELETE_WORKSPACES)
def delete_workspaces(**options: Any) -> None:
    """Delete the ModelArts workspaces listed in FILE (or stdin), one id per line.

    On a terminal it asks you to type the project id; elsewhere it needs --yes.
    """
    sys.exit(run_bulk(DELETE_WORKSPACES, options))


@main.command("emulator")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback is reachable by others.",
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
