"""``asyncdeleter emulator``: the emulator as a standalone server."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket

import attrs
import click

from asyncdeleter import ConfigurationError
from asyncdeleter._cli.settings import ENV_AK, ENV_SK
from asyncdeleter._config import check_url_security
from asyncdeleter.testing import Emulator, Fault

__all__ = ["Listening", "listening", "parse_fault", "seed", "serve"]

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


@attrs.frozen
class Listening:
    """Where ``--host`` makes the emulator listen, and how every message names it.

    Attributes:
        bind: The address the server binds.
        wildcard: It is every interface (``''``, ``0``, ``0.0.0.0``, ``::``...).
        where: The place, in words: ``all interfaces``, or the host as given.
        client_host: A host a client on this machine reaches it by, for its URL.
        loopback: Only this machine can reach it.
    """

    bind: str
    wildcard: bool
    where: str
    client_host: str
    loopback: bool

    def url(self, port: int) -> str:
        """The URL a client on this machine uses."""
        return f"http://{self.client_host}:{port}"


def listening(host: str) -> Listening:
    """What ``--host host`` means: the one place that tells a wildcard from an address.

    Any spelling of "any address" (``''``, ``*``, ``0``, ``0.0.0.0``, ``::``) is every
    interface, and a client here reaches it on loopback. One address is bound, of one
    family (IPv4 first), so there is one port: ``''`` or ``localhost`` would otherwise
    bind IPv4 and IPv6 apart, on two ports with ``--port 0``.
    """
    name = host.strip().strip("[]")
    if name in ("", "*"):
        name = "0.0.0.0"  # noqa: S104 - every interface, as asked
    try:
        found = sorted(
            {
                ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            },
            key=lambda address: (address.version, str(address)),
        )
    except (OSError, ValueError):
        found = []
    if not found:  # not resolvable: binding it fails and says so
        return Listening(name, wildcard=False, where=host, client_host=name, loopback=False)
    address = found[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    if address.is_unspecified:
        loopback = "[::1]" if address.version == 6 else "127.0.0.1"
        return Listening(
            str(address), wildcard=True, where="all interfaces", client_host=loopback,
            loopback=False,
        )  # fmt: skip
    return Listening(
        str(address), wildcard=False, where=host, client_host=shown,
        loopback=address.is_loopback,
    )  # fmt: skip


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
    place = listening(host)
    emu = Emulator(
        host=place.bind,
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
        click.echo(
            f"error: cannot listen on {place.where} ({place.bind}:{port}): {reason}{hint}",
            err=True,
        )
        return 1
    try:
        url = place.url(emu.port)
        shown = f"{place.where}, at {url}" if place.wildcard else url
        click.echo(f"asyncdeleter emulator listening on {shown}")
        if not place.loopback:
            click.echo(
                f"warning: listening on {place.where}: anyone who can reach this machine can "
                "use the emulator (plain HTTP); keep it on 127.0.0.1 unless you mean it",
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
        try:  # the command's own rule for plain HTTP
            check_url_security("fabric", url, allow_insecure_http=False)
            flag = ""
        except ConfigurationError:
            flag = " --allow-insecure-http"
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
