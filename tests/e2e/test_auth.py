"""Credentials end to end: AK/SK against the verifying emulator, providers, TLS, secrecy."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme

import asyncdeleter
from asyncdeleter import AkSkAuth, RetryPolicy, SessionManager, TokenAuth
from asyncdeleter.testing import Emulator, Fault

AK = "AKEXAMPLE0123456789"
SK = "sk-super-secret-0123456789abcdef"
TEMP_TOKEN = "security-token-secret-xyz"
NO_WAIT = RetryPolicy(wait=False)


@pytest.fixture
async def signing_emulator() -> AsyncIterator[Emulator]:
    async with Emulator(
        access_keys={AK: SK, "AKTEMPORARY0001": SK}, security_tokens={"AKTEMPORARY0001": TEMP_TOKEN}
    ) as emu:
        emu.add_sessions("ws-1", ["s1", "s2"])
        emu.add_workspaces("p1", ["w1"])
        yield emu


async def test_signed_requests_to_both_services_are_accepted(signing_emulator: Emulator) -> None:
    async with SessionManager(
        endpoints=signing_emulator.endpoints(), project_id="p1", auth=AkSkAuth(AK, SK)
    ) as m:
        await m.close_session("ws-1", "s1")
        await m.delete_workspace("w1")
    assert signing_emulator.sessions("ws-1") == {"s2"}
    assert signing_emulator.workspaces("p1") == frozenset()
    first = signing_emulator.requests[0]
    assert first.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
    assert (
        first.headers["Host"] == f"127.0.0.1:{signing_emulator.port}"
    )  # a non-default port is kept
    assert "X-Auth-Token" not in first.headers


async def test_a_wrong_secret_is_refused_and_never_leaks(
    signing_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-secret-value-987654"
    with caplog.at_level(logging.DEBUG):
        async with SessionManager(
            endpoints=signing_emulator.endpoints(), auth=AkSkAuth(AK, wrong), retry=NO_WAIT
        ) as m:
            with pytest.raises(asyncdeleter.AuthenticationError) as info:
                await m.close_session("ws-1", "s1")
    error = info.value
    assert error.error_code == "APIG.0301"
    assert error.attempts == 1  # a fixed credential is not retried
    for text in (str(error), repr(error), error.raw_body, caplog.text):
        assert wrong not in text
        assert SK not in text


async def test_temporary_credentials_carry_the_security_token(signing_emulator: Emulator) -> None:
    endpoints = signing_emulator.endpoints()
    async with SessionManager(
        endpoints=endpoints, auth=AkSkAuth("AKTEMPORARY0001", SK, TEMP_TOKEN)
    ) as m:
        await m.close_session("ws-1", "s1")
    assert signing_emulator.requests[-1].headers["X-Security-Token"] == TEMP_TOKEN
    async with SessionManager(
        endpoints=endpoints, auth=AkSkAuth("AKTEMPORARY0001", SK), retry=NO_WAIT
    ) as m:
        with pytest.raises(asyncdeleter.AuthenticationError, match="security token"):
            await m.close_session("ws-1", "s2")


async def test_a_skewed_clock_is_refused() -> None:
    emu = Emulator(access_keys={AK: SK}, clock=lambda: time.time() + 16 * 60)
    async with emu:
        manager = SessionManager(endpoints=emu.endpoints(), auth=AkSkAuth(AK, SK), retry=NO_WAIT)
        async with manager:
            with pytest.raises(asyncdeleter.AuthenticationError, match="15 minutes"):
                await manager.close_session("ws-1", "s1")


async def test_every_attempt_is_signed_afresh(signing_emulator: Emulator) -> None:
    signing_emulator.add_fault(Fault(status=503, retry_after="1.2", times=1))
    policy = RetryPolicy(initial_wait=0.0, max_wait=0.0)
    async with SessionManager(
        endpoints=signing_emulator.endpoints(), auth=AkSkAuth(AK, SK), retry=policy
    ) as m:
        await m.close_session("ws-1", "s1")
    first, second = signing_emulator.requests
    assert (first.status, second.status) == (503, 200)
    assert first.headers["X-Sdk-Date"] != second.headers["X-Sdk-Date"]
    assert first.headers["Authorization"] != second.headers["Authorization"]


class RotatingTokens:
    """A credentials provider: hands out the emulator's current token, counting calls."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.calls = 0

    async def __call__(self) -> TokenAuth:
        self.calls += 1
        await asyncio.sleep(0.01)  # as if asking IAM
        assert self.emulator.token is not None
        return TokenAuth(self.emulator.token)


async def test_a_provider_refreshes_once_for_many_concurrent_refusals() -> None:
    async with Emulator(token="rotating-token-1") as emu:
        emu.add_sessions("ws-1", [f"s{i}" for i in range(40)])
        provider = RotatingTokens(emu)
        async with SessionManager(endpoints=emu.endpoints(), auth=provider, retry=NO_WAIT) as m:
            await m.close_session("ws-1", "s0")
            assert provider.calls == 1
            emu.token = "rotating-token-2"  # the old token is revoked
            await asyncio.gather(*(m.close_session("ws-1", f"s{i}") for i in range(1, 40)))
        assert provider.calls == 2  # one shared refresh, not one per refused call
        assert emu.session_count == 0


async def test_a_provider_is_asked_once_per_call_not_forever() -> None:
    async with Emulator(token="real-token") as emu:
        calls = 0

        async def stale() -> TokenAuth:
            nonlocal calls
            calls += 1
            return TokenAuth("stale-token")

        async with SessionManager(endpoints=emu.endpoints(), auth=stale, retry=NO_WAIT) as m:
            with pytest.raises(asyncdeleter.AuthenticationError) as info:
                await m.close_session("ws-1", "s")
        assert info.value.attempts == 2
        assert calls == 2


async def test_the_invalid_token_403_also_triggers_a_refresh() -> None:
    async with Emulator(token="test-token", faults=[Fault(status=403, times=1)]) as emu:
        emu.add_sessions("ws-1", ["s"])
        provider = RotatingTokens(emu)
        async with SessionManager(endpoints=emu.endpoints(), auth=provider, retry=NO_WAIT) as m:
            await m.close_session("ws-1", "s")
        assert provider.calls == 2
        assert emu.sessions("ws-1") == frozenset()


async def test_a_plain_403_is_not_refreshed() -> None:
    async with Emulator(token="test-token") as emu:
        emu.add_fault(
            Fault(status=403, body=b'{"error_code": "APIG.1005", "error_msg": "No permissions"}')
        )
        provider = RotatingTokens(emu)
        async with SessionManager(endpoints=emu.endpoints(), auth=provider, retry=NO_WAIT) as m:
            with pytest.raises(asyncdeleter.PermissionDeniedError):
                await m.close_session("ws-1", "s")
        assert provider.calls == 1


def test_session_manager_from_env_uses_the_official_names_and_overrides_win() -> None:
    env = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_REGION": "cn-southwest-2",
        "HUAWEICLOUD_SDK_PROJECT_ID": "proj-env",
    }
    manager = SessionManager.from_env(environ=env)
    assert manager.endpoints.fabric == "https://fabric-ep.cn-southwest-2.myhuaweicloud.com"
    assert manager.project_id == "proj-env"
    assert SK not in repr(manager)
    other = SessionManager.from_env(environ=env, project_id="proj-flag", region="cn-north-4")
    assert other.project_id == "proj-flag"
    assert "cn-north-4" in str(other.endpoints.modelarts)
    with pytest.raises(asyncdeleter.ConfigurationError):
        SessionManager.from_env(
            environ={"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_REGION": "cn-north-4"}
        )


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_is_verified_by_default_and_a_private_ca_can_be_supplied(
    certificate_authority: trustme.CA,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with Emulator(ssl=server_context) as emu:
        emu.add_sessions("ws-1", ["s"])
        assert emu.url.startswith("https://")
        async with SessionManager(endpoints=emu.endpoints(), retry=RetryPolicy(max_tries=1)) as m:
            with pytest.raises(asyncdeleter.APIConnectionError) as info:
                await m.close_session("ws-1", "s")
        assert "certificate" in str(info.value).lower()
        assert emu.request_count == 0  # refused before any request was sent
        client_context = ssl.create_default_context()
        certificate_authority.configure_trust(client_context)
        async with SessionManager(endpoints=emu.endpoints(), ssl=client_context) as m:
            await m.close_session("ws-1", "s")
        assert emu.sessions("ws-1") == frozenset()
