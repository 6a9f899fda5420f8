"""Shared fixtures: a real emulator on loopback and managers pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import TOKEN as CLI_TOKEN
from cli_support import write_token
from hypothesis import HealthCheck, settings

import asyncdeleter
from asyncdeleter.testing import Emulator

# Property tests judge their results, not the machine's speed: a loaded CI machine (or a
# benchmark beside the suite) must not fail them for slow input generation or a slow example.
settings.register_profile(
    "asyncdeleter", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("asyncdeleter")

TOKEN = "test-token-0123456789"
PROJECT = "proj-1"

#: Retries without waiting: the public switch, so retry tests run in milliseconds.
NO_WAIT = asyncdeleter.RetryPolicy(wait=False)


def our_tasks() -> set[asyncio.Task[Any]]:
    """Live tasks other than the current one and the emulator's own connection handlers."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and not t.done()
        and not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, seed=1234) as emu:
        yield emu


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """The emulator for the command-line tests (the test token, no seed)."""
    async with Emulator(token=CLI_TOKEN) as emulator:
        yield emulator


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A token file with the command-line tests' token, readable by its owner only."""
    return write_token(tmp_path)


@pytest.fixture
def make_manager(emulator: Emulator) -> Callable[..., asyncdeleter.SessionManager]:
    """Build a manager for the emulator; keyword arguments override the defaults."""

    def make(**overrides: Any) -> asyncdeleter.SessionManager:
        options: dict[str, Any] = {
            "endpoints": emulator.endpoints(),
            "project_id": PROJECT,
            "auth": asyncdeleter.TokenAuth(TOKEN),
            "retry": NO_WAIT,
        }
        options.update(overrides)
        return asyncdeleter.SessionManager(**options)

    return make


async def until(condition: Callable[[], bool], *, within: float = 30.0) -> None:
    """Wait until ``condition()`` holds (checked every 10 ms); fail after ``within`` seconds.

    For state the emulator keeps in another task or thread (requests seen, statuses): a
    one-sided wait, generous so a busy machine cannot make a test flaky.
    """
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls another party's state, no event to await
            await asyncio.sleep(0.01)
