"""Test against DataArts Fabric and ModelArts without a cloud account.

``Emulator`` serves both services on loopback: deletes, lists and shows (with the
services' paging, filters and the workspace deletion lifecycle), their exact error bodies,
credential checks, the gateway's quota and fault injection::

    async with Emulator(token="test-token") as emu:
        emu.add_sessions("ws-1", ["sess-1"])
        async with SessionManager(endpoints=emu.endpoints(), auth=TokenAuth("test-token")) as m:
            await m.close_session("ws-1", "sess-1")

With pytest, the ``asyncdeleter_emulator`` fixture (registered through a ``pytest11``
entry point) gives a started emulator served from a background thread.
"""

from asyncdeleter.testing._emulator import Emulator, RecordedRequest
from asyncdeleter.testing._faults import Fault, FaultKind

__all__ = ["Emulator", "Fault", "FaultKind", "RecordedRequest"]
