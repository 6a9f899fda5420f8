"""The emulator itself: it must behave like the services, or tests against it prove nothing."""

from __future__ import annotations

import json

import aiohttp
import pytest

from asyncdeleter.testing import Emulator, Fault, FaultKind


async def delete(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session, session.delete(url, headers=headers) as response:
        return response.status, await response.read(), response.headers


async def test_states_are_separate_per_service() -> None:
    async with Emulator() as emu:
        emu.add_sessions("shared-id", ["s"])
        emu.add_workspaces("p", ["shared-id"])
        status, body, headers = await delete(f"{emu.url}/v1/p/workspaces/shared-id")
        assert (status, json.loads(body)) == (200, {"workspace_id": "shared-id"})
        assert headers["X-Request-Id"]
        assert emu.sessions("shared-id") == {"s"}  # Fabric untouched
        status, body, _ = await delete(f"{emu.url}/v1/workspaces/shared-id/sessions/s")
        assert (status, body) == (200, b"")
        status, body, _ = await delete(f"{emu.url}/v1/workspaces/shared-id/sessions/s")
        assert status == 404  # a second close is a 404
        assert (emu.session_count, emu.workspace_count) == (0, 0)


async def test_token_checking_answers_apig_1002() -> None:
    async with Emulator(token="good") as emu:
        emu.add_sessions("w", ["s"])
        status, body, _ = await delete(
            f"{emu.url}/v1/workspaces/w/sessions/s", {"X-Auth-Token": "bad"}
        )
        assert status == 401
        assert json.loads(body)["error_code"] == "APIG.1002"
        status, _, _ = await delete(
            f"{emu.url}/v1/workspaces/w/sessions/s", {"X-Auth-Token": "good"}
        )
        assert status == 200


async def test_malformed_ids_and_unknown_paths() -> None:
    async with Emulator() as emu:
        status, body, _ = await delete(f"{emu.url}/v1/workspaces/w/sessions/{'x' * 37}")
        assert (status, json.loads(body)["error_code"]) == (400, "common.01000001")
        status, body, _ = await delete(f"{emu.url}/v2/whatever")
        assert (status, json.loads(body)["error_code"]) == (404, "APIGW.0101")


async def test_nth_and_times_faults_and_records() -> None:
    async with Emulator(faults=[Fault(status=503, nth={2, 3})]) as emu:
        emu.add_sessions("w", ["a"])
        url = f"{emu.url}/v1/workspaces/w/sessions/a"
        statuses = [(await delete(url))[0] for _ in range(4)]
        assert statuses == [200, 503, 503, 404]
        assert [r.fault for r in emu.requests] == [None, FaultKind.STATUS, FaultKind.STATUS, None]
        assert emu.faults_injected == 2


async def test_probability_faults_are_seeded_and_roughly_right() -> None:
    async with Emulator(seed=7, faults=[Fault(status=500, probability=0.3)]) as emu:
        url = f"{emu.url}/v1/workspaces/w/sessions/a"
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(300):
                async with session.delete(url) as r:
                    statuses.append(r.status)
        assert 50 < statuses.count(500) < 130


async def test_throttle_answers_429_with_retry_after() -> None:
    async with Emulator(throttle_rps=5, throttle_retry_after="2") as emu:
        url = f"{emu.url}/v1/workspaces/w/sessions/a"
        results = [await delete(url) for _ in range(12)]
        throttled = [r for r in results if r[0] == 429]
        assert throttled
        assert throttled[0][2]["Retry-After"] == "2"
        assert json.loads(throttled[0][1])["error_code"] == "APIG.0308"


def test_pytest_fixture_serves_from_a_thread(asyncdeleter_emulator: Emulator) -> None:
    """The pytest11 plugin: a sync test can use the emulator with a loop of its own."""
    import asyncio

    asyncdeleter_emulator.add_sessions("w", ["s"])
    status, _, _ = asyncio.run(delete(f"{asyncdeleter_emulator.url}/v1/workspaces/w/sessions/s"))
    assert status == 200
    assert asyncdeleter_emulator.sessions("w") == frozenset()


async def test_url_is_loopback_and_unavailable_when_stopped() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        _ = emu.url
    async with emu:
        assert emu.url.startswith("http://127.0.0.1:")
        assert emu.port != 0
