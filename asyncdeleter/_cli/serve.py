"""``asyncdeleter emulator``: the emulator as a standalone server."""

from __future__ import annotations

import asyncio
import os
import signal

import click

from asyncdeleter.testing import Emulator, Fault

__all__ = ["parse_fault", "seed", "serve"]


def parse_fault(text: str) -> Fault:
    """``STATUS:RATE`` as a fault rule, e.g. ``503:0.05``."""
    status, _, rate = text.partition(":")
    try:
        return Fault(status=int(status), probability=float(rate) if rate else 1.0)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not STATUS:RATE (like 503:0.05)") from exc


def seed(emu: Emulator, workspaces: int, sessions: int, project_id: str) -> None:
    """Create Fabric workspaces of ``sessions`` sessions each, and as many ModelArts ones."""
    for w in range(workspaces):
        workspace_id = f"ws-{w:04d}"
        emu.add_sessions(workspace_id, (f"sess-{w:04d}-{s:05d}" for s in range(sessions)))
    emu.add_workspaces(project_id, (f"ws-{w:04d}" for w in range(workspaces)))


async def serve(
    *,
    host: str,
    port: int,
    token: str | None,
    latency: float,
    faults: tuple[str, ...],
    seed_workspaces: int,
    seed_sessions: int,
    project_id: str,
    stateless: bool = False,
) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status."""
    ak, sk = os.environ.get("HUAWEICLOUD_SDK_AK"), os.environ.get("HUAWEICLOUD_SDK_SK")
    emu = Emulator(
        host=host,
        port=port,
        token=token,
        access_keys={ak: sk} if ak and sk else None,
        latency=latency / 1000,
        faults=[parse_fault(f) for f in faults],
        record_requests=False,
        stateless=stateless,
    )
    seed(emu, seed_workspaces, seed_sessions, project_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with emu:
        click.echo(f"asyncdeleter emulator listening on {emu.url}", err=False)
        click.echo(
            f"  {emu.session_count:,} sessions, {emu.workspace_count:,} workspaces "
            f"(project {project_id}); Ctrl-C to stop",
            err=True,
        )
        click.echo(f"  try: asyncdeleter close-sessions --fabric-endpoint {emu.url} FILE", err=True)
        await stop.wait()
    click.echo(f"served {emu.request_count:,} requests; bye", err=True)
    return 0
