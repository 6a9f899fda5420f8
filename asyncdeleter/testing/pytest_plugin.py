"""The pytest plugin: an ``asyncdeleter_emulator`` fixture for users' test suites.

Registered through the ``pytest11`` entry point, so installing asyncdeleter is enough.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asyncdeleter.testing._emulator import Emulator


@pytest.fixture
def asyncdeleter_emulator() -> Iterator[Emulator]:
    """A started, empty emulator on ``127.0.0.1``, served from a background thread.

    It works from any event loop (pytest-asyncio, anyio) because it runs its own. Seed it
    with ``add_sessions``/``add_workspaces``; point a manager at ``emulator.endpoints()``.
    """
    emulator = Emulator()
    with emulator.running_in_thread():
        yield emulator
