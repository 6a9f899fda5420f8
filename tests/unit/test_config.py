"""Endpoints, transport security and option validation: all before any I/O."""

from __future__ import annotations

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import ConfigurationError, Endpoints, SessionManager, Timeouts, TokenAuth


def test_endpoints_derive_two_hosts_from_the_region() -> None:
    # The session API's host follows the evidence: the DataArtsFabricEp SDK's fabric-ep.
    e = Endpoints.for_region("cn-north-4")
    assert e.fabric == "https://fabric-ep.cn-north-4.myhuaweicloud.com"
    assert e.modelarts == "https://modelarts.cn-north-4.myhuaweicloud.com"


def test_ap_southeast_1_modelarts_is_served_under_dot_cn() -> None:
    # ...and Fabric's session API is not in ap-southeast-1: no endpoint is made up for it.
    e = Endpoints.for_region("ap-southeast-1")
    assert e.modelarts == "https://modelarts.ap-southeast-1.myhuaweicloud.cn"
    assert e.fabric is None


def test_each_endpoint_can_be_overridden() -> None:
    e = Endpoints.for_region("cn-southwest-2", fabric="https://fabric.example.test/")
    assert e.fabric == "https://fabric.example.test"
    assert str(e.modelarts).startswith("https://modelarts.cn-southwest-2.")


@pytest.mark.parametrize(
    "region", ["", "cn_north_4", "cn-north-4/../x", "CN-NORTH-4", "cn-north-4\n", "cn-nort-4"]
)
def test_bad_regions_are_refused(region: str) -> None:
    with pytest.raises(ConfigurationError, match="region"):
        Endpoints.for_region(region)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.test",
        "fabric.test",
        "https://user:pw@x.test",
        "https://x.test/?a=1",
        "https://x.test\r\nX: 1",
    ],
)
def test_bad_endpoint_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Endpoints(fabric=url, modelarts="https://m.test")


def test_plain_http_only_to_loopback_unless_opted_in() -> None:
    insecure = Endpoints(fabric="http://10.1.2.3:8080", modelarts="https://m.test")
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        SessionManager(endpoints=insecure)
    SessionManager(endpoints=insecure, allow_insecure_http=True)
    for host in ("127.0.0.1", "localhost", "[::1]", "127.9.9.9"):
        SessionManager(endpoints=Endpoints(fabric=f"http://{host}:1", modelarts=f"http://{host}:2"))


@pytest.mark.parametrize("host", ["emulated.localhost", "evil.example.localhost", "localhost.evil"])
def test_a_name_under_localhost_is_not_loopback_without_a_lookup(host: str) -> None:
    """Only literal loopback addresses and the name ``localhost`` count: a resolver (or
    /etc/hosts, or a proxy) may send ``*.localhost`` anywhere, so plain HTTP to it would
    carry the token in clear to wherever that is."""
    endpoints = Endpoints(fabric=f"http://{host}:1", modelarts=f"http://{host}:2")
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        SessionManager(endpoints=endpoints)
    SessionManager(endpoints=endpoints, allow_insecure_http=True)


def test_manager_needs_region_or_endpoints() -> None:
    with pytest.raises(ConfigurationError):
        SessionManager()
    assert SessionManager(region="cn-north-4").endpoints == Endpoints.for_region("cn-north-4")


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        SessionManager(region="cn-north-4", max_concurrency=0)
    with pytest.raises(ConfigurationError):
        Timeouts(connect=0)
    with pytest.raises(asyncdeleter.InvalidIdentifierError):
        SessionManager(region="cn-north-4", project_id="../p")


def test_tokens_with_cr_or_lf_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as info:
        TokenAuth("secret-value\r\nX-Evil: 1")
    assert "secret-value" not in str(info.value)


def test_token_never_shows_in_repr_or_str() -> None:
    auth = TokenAuth("super-secret-token")
    assert "super-secret-token" not in repr(auth)
    assert "super-secret-token" not in str(auth)
    manager = SessionManager(region="cn-north-4", auth=auth)
    assert "super-secret-token" not in repr(manager)


async def test_a_session_with_a_smaller_pool_than_the_semaphore_is_refused() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as session:
        with pytest.raises(ConfigurationError, match="max_concurrency"):
            SessionManager(region="cn-north-4", session=session, max_concurrency=64)
