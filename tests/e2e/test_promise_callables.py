"""User callables are checked when a call is built, and their answers at run time.

An ``async def`` predicate returns a coroutine, which is truthy: taken as "yes", it would
select (and delete) everything. An ``async def`` progress callback would never be awaited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import asyncdeleter
from asyncdeleter import SessionManager
from asyncdeleter.testing import Emulator
from tests.conftest import PROJECT

Make = Callable[..., SessionManager]


async def test_an_async_where_is_refused_before_anything_is_deleted(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(5)])

    async def keep_everything(_: object) -> bool:
        return False

    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.ConfigurationError, match="where"):
            manager.sweep_workspaces(where=keep_everything)
        with pytest.raises(asyncdeleter.ConfigurationError, match="where"):
            manager.sweep_sessions("ws-1", where=keep_everything)
    assert emulator.workspaces(PROJECT) == {f"w{i}" for i in range(5)}
    assert not [r for r in emulator.requests if r.method == "DELETE"]


@pytest.mark.parametrize("answer", [None, 1, "yes", [True]])
async def test_a_where_that_answers_anything_but_a_bool_selects_nothing(
    emulator: Emulator, make_manager: Make, answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncdeleter")
    emulator.add_workspaces(PROJECT, [f"w{i}" for i in range(4)])
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(where=lambda _: answer)
    assert report.succeeded == 0
    assert emulator.workspaces(PROJECT) == {f"w{i}" for i in range(4)}
    told = [r for r in caplog.records if "not a bool" in r.getMessage()]
    assert len(told) == 1  # said once, not once per item


async def test_a_where_that_answers_a_bool_still_selects(
    emulator: Emulator, make_manager: Make
) -> None:
    emulator.add_workspaces(PROJECT, ["keep-1", "drop-1", "drop-2"])
    async with make_manager() as manager:
        report = await manager.sweep_workspaces(where=lambda w: (w.name or "").startswith("drop"))
    assert report.succeeded == 2
    assert emulator.workspaces(PROJECT) == {"keep-1"}


async def test_an_async_progress_callback_is_refused_when_the_run_is_built(
    emulator: Emulator, make_manager: Make
) -> None:
    async def progress(done: int, total: int | None, outcome: object) -> None:
        return None

    async with make_manager() as manager:
        with pytest.raises(asyncdeleter.ConfigurationError, match="on_progress"):
            manager.close_sessions([("ws-1", "s-1")], on_progress=progress)
        with pytest.raises(asyncdeleter.ConfigurationError, match="on_progress"):
            manager.delete_workspaces(["w-1"], on_progress=progress)
        with pytest.raises(asyncdeleter.ConfigurationError, match="on_progress"):
            manager.sweep_workspaces(on_progress=progress)
    assert emulator.request_count == 0
