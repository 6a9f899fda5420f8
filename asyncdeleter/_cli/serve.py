"""``asyncdeleter emulator``: the emulator as a standalone server."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal

import click

from asyncdeleter._cli.settings import ENV_AK, ENV_SK
from asyncdeleter.testing import Emulator, Fault

__all__ = ["client_url", "parse_fault", "seed", "serve"]

EXIT_USAGE = 2


def parse_fault(text: str) -> Fault:
    """``STATUS:RATE`` as a fault rule, e.g. ``503:0.05``."""
    status, _, rate = text.partition(":")
    try:
        fault = Fault(status=int(status), probability=float(rate) if rate else 1.0)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not STATUS:RATE (like 503:0.05)") from exc
    if not (100 <= fault.status <= 599 and 0.0 <= fault.probability <= 1.0):
        raise click.BadParameter(f"{text!r}: STATUS is 100-599 and RATE 0-1")
    return fault


def seed(emu: Emulator, workspaces: int, sessions: int, project_id: str) -> None:
    """Create Fabric workspaces of ``sessions`` sessions each, and as many ModelArts ones."""
    for w in range(workspaces):
        workspace_id = f"ws-{w:04d}"
        emu.add_sessions(workspace_id, (f"sess-{w:04d}-{s:05d}" for s in range(sessions)))
    emu.add_workspaces(project_id, (f"ws-{w:04d}" for w in range(workspaces)))


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def client_url(host: str, port: int) -> tuple[str, bool]:
    """A URL a client on this machine can use, and whether the CLI needs a flag for it.

    The flag is ``--allow-insecure-http``: plain HTTP to a host that is not loopback.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"http://{host}:{port}", not _loopback(host)
    if address.is_unspecified:  # every interface: this machine reaches it on loopback
        return (
            f"http://[::1]:{port}" if address.version == 6 else f"http://127.0.0.1:{port}"
        ), False
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}", not address.is_loopback


async def serve(
    *,
    host: str,
    port: int,
    token: str | None,
    aksk_from_env: bool = False,
    latency: float,
    faults: tuple[str, ...],
    seed_workspaces: int,
    seed_sessions: int,
    project_id: str,
    stateless: bool = False,
) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status."""
    access_keys = None
    if aksk_from_env:
        ak, sk = os.environ.get(ENV_AK), os.environ.get(ENV_SK)
        if not (ak and sk):
            click.echo(f"error: --aksk-from-env needs {ENV_AK} and {ENV_SK} set", err=True)
            return EXIT_USAGE
        access_keys = {ak: sk}
    emu = Emulator(
        host=host,
        port=port,
        token=token,
        access_keys=access_keys,
        latency=latency / 1000,
        faults=[parse_fault(f) for f in faults],
        record_requests=False,
        stateless=stateless,
    )
    seed(emu, seed_workspaces, seed_sessions, project_id)
    try:
        await emu.start()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        hint = "; pass --port 0 to pick a free port" if "in use" in reason else ""
        click.echo(f"error: cannot listen on {host}:{port}: {reason}{hint}", err=True)
        return 1
    try:
        url, insecure = client_url(host, emu.port)
        click.echo(f"asyncdeleter emulator listening on {url}")
        if not _loopback(host):
            where = "every interface" if host in ("0.0.0.0", "::", "[::]") else host  # noqa: S104
            click.echo(
                f"warning: listening on {where}: anyone who can reach this machine can use the "
                "emulator (plain HTTP); keep it on 127.0.0.1 unless you mean it",
                err=True,
            )
        checks = ", ".join(
            check
            for check, on in (("X-Auth-Token", token), ("AK/SK signatures", access_keys))
            if on
        )
        click.echo(f"  credentials checked: {checks or 'none (any request is accepted)'}", err=True)
        click.echo(
            f"  {emu.session_count:,} sessions, {emu.workspace_count:,} workspaces "
            f"(project {project_id})",
            err=True,
        )
        flag = " --allow-insecure-http" if insecure else ""
        click.echo(
            f"  try: asyncdeleter close-sessions --fabric-endpoint {url}{flag} FILE", err=True
        )
        click.echo("  Ctrl-C to stop", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await emu.stop()
    click.echo(f"served {emu.request_count:,} requests; bye", err=True)
    return 0
