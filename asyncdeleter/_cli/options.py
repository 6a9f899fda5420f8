"""The flags the commands share, in groups: where to send, how hard to try, what to record.

Every command that calls a service takes the same endpoint and credential flags, so a
``list-*`` and the delete command it feeds are pointed at the same place the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from asyncdeleter._cli.filters import AgeType
from asyncdeleter._cli.operations import DEFAULT_WAIT_TIMEOUT

__all__ = [
    "Decorator",
    "apply",
    "call_options",
    "destructive_options",
    "endpoint_options",
    "filter_options",
    "trailing_options",
    "wait_options",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
_SERVICE_NAMES = {"fabric": "DataArts Fabric", "modelarts": "ModelArts"}


def apply(options: Sequence[Decorator]) -> Decorator:
    """One decorator for ``options``, listed by ``--help`` in the order given."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def endpoint_options(service: str) -> list[Decorator]:
    """Where the command sends, as whom: region, endpoint, project, token file."""
    name = _SERVICE_NAMES[service]
    return [
        click.option("--region", envvar="HUAWEICLOUD_SDK_REGION",
                     help="Region, e.g. cn-north-4 (env HUAWEICLOUD_SDK_REGION)."),
        click.option(f"--{service}-endpoint", help=f"{name} base URL (overrides --region)."),
        click.option("--project-id", envvar="HUAWEICLOUD_SDK_PROJECT_ID",
                     help="The project (env HUAWEICLOUD_SDK_PROJECT_ID)."),
        click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
                     help="Read an IAM token from this file (never pass secrets as flags)."),
    ]  # fmt: skip


def call_options(*, concurrency: bool = True) -> list[Decorator]:
    """How hard each call tries (and, for a destructive run, how many at once)."""
    options: list[Decorator] = [
        click.option("--concurrency", type=click.IntRange(1, 10_000), default=64,
                     show_default=True),
        click.option("--max-tries", type=click.IntRange(1, 100), default=5, show_default=True),
        click.option("--max-time", type=click.FloatRange(min=0.1), default=120.0,
                     show_default=True, help="Overall deadline of each call, in seconds."),
    ]  # fmt: skip
    return options if concurrency else options[1:]


def destructive_options(*, sweep: bool = False) -> list[Decorator]:
    """The report, its re-runs, the confirmation and the check before deleting."""
    retry_help = (
        "Replay the items this earlier report of the same command did not finish (a dry "
        "run's plan included), as a plain delete run: it does not list again."
        if sweep
        else "Finish what this earlier report did not (with FILE: every line of FILE it "
        "does not mark done)."
    )
    return [
        click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
                     help="Write a JSON line per item here (docs/report.schema.json); an "
                          "existing file is refused unless --force."),
        click.option("--force", is_flag=True,
                     help="Let --report overwrite an existing file (never one the run reads)."),
        click.option("--retry-from", type=click.Path(exists=True, dir_okay=False),
                     help=retry_help),
        click.option("--yes", "-y", is_flag=True,
                     help="Do not ask for confirmation (required when not on a terminal)."),
        click.option("--no-preflight", is_flag=True,
                     help="Skip the one-item listing made before deleting, which checks "
                          "the credentials and the scope."),
    ]  # fmt: skip


def trailing_options() -> list[Decorator]:
    """``--quiet`` and ``--allow-insecure-http``, last in every ``--help``."""
    return [
        click.option("--quiet", "-q", is_flag=True, help="No progress or summary."),
        click.option("--allow-insecure-http", is_flag=True,
                     help="Allow http:// to a non-loopback host."),
    ]  # fmt: skip


def filter_options(statuses: Sequence[str], *, name: bool) -> list[Decorator]:
    """``--status``, ``--older-than`` and (for workspaces) ``--name``."""
    options: list[Decorator] = [
        click.option("--status", type=click.Choice(statuses, case_sensitive=False),
                     metavar="STATUS",
                     help=f"Only items in this status: {', '.join(statuses)}."),
        click.option("--older-than", type=AgeType(),
                     help="Only items created longer ago than this: a whole number and one "
                          "unit, s, m, h or d (90s, 15m, 2h, 7d). An unknown age never "
                          "matches."),
    ]  # fmt: skip
    if name:
        options.insert(
            0,
            click.option(
                "--name",
                metavar="PREFIX",
                help="Only workspaces whose name starts with PREFIX (exactly; case counts).",
            ),
        )
    return options


def wait_options() -> list[Decorator]:
    """``--wait`` and ``--wait-timeout``: a workspace counts as deleted once it is gone."""
    return [
        click.option(
            "--wait",
            is_flag=True,
            help="Count a workspace as succeeded only once the service confirms it gone "
            "(DELETE_FAILED and a wait that runs out are failures).",
        ),
        click.option(
            "--wait-timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="With --wait: give up on a workspace not gone this long after its deletion "
            f"was accepted (default {DEFAULT_WAIT_TIMEOUT:g}).",
        ),
        click.option("--poll-wait", type=click.FloatRange(min=0, min_open=True), hidden=True),
    ]
