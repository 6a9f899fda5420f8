"""The chaos soak, short form (5,000 sessions); `python tests/soak.py` runs the long one."""

from __future__ import annotations

import asyncio

import pytest

from tests.soak import run_soak


@pytest.mark.slow
async def test_chaos_soak_accounts_for_every_item_and_matches_the_server() -> None:
    result = await run_soak(5_000, seed=3)
    assert result.accounted == result.items  # every input line, once
    assert result.lost == 0  # nothing reported done is still there
    assert result.kinds.get("failed", 0) == 0  # 12 tries outlast this much chaos
    assert result.failed_but_gone == 0
    assert result.faults_injected > 0.15 * result.items  # the chaos was real
    # A repeat finds its target gone (already_gone), or, if its own first attempt met a
    # fault, reports success by the 404-after-retry rule; either way it is done.
    assert result.kinds["succeeded"] + result.kinds["already_gone"] == result.items
    assert result.warnings == []
    assert [
        t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
    ] == []
