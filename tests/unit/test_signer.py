"""The SDK-HMAC-SHA256 signer as a pure function, checked three ways.

1. The published vector from Huawei's signing guide, byte for byte.
2. Property tests: the emulator's independently written verifier accepts our signature for
   paths and queries full of unicode, spaces, reserved characters and repeated keys, and
   rejects it once anything signed is tampered with.
3. The official huaweicloudsdkcore signer computes the same Authorization (skipped only if
   that package is absent; the test extra installs it).
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse

import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdeleter import AkSkAuth, ConfigurationError
from asyncdeleter._signer import (
    EMPTY_BODY_SHA256,
    authorization,
    canonical_query,
    canonical_request,
    canonical_uri,
    sdk_date,
)
from asyncdeleter.testing._signature import SignatureVerifier

AK = "QTWAOYTTINDUT2QVKYUC"
SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_PATH = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
VECTOR_QUERY = [("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")]
VECTOR_HEADERS = {
    "Content-Type": "application/json",
    "X-Sdk-Date": "20191115T033655Z",
    "Host": "service.region.example.com",
}


def test_published_vector_canonical_request_hash() -> None:
    request, signed = canonical_request(
        "GET", VECTOR_PATH, VECTOR_QUERY, VECTOR_HEADERS, EMPTY_BODY_SHA256
    )
    assert signed == "content-type;host;x-sdk-date"
    expected = "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    assert hashlib.sha256(request.encode()).hexdigest() == expected


def test_published_vector_signature() -> None:
    value = authorization(
        ak=AK,
        sk=SK.encode(),
        method="GET",
        raw_path=VECTOR_PATH,
        query=VECTOR_QUERY,
        headers=VECTOR_HEADERS,
    )
    assert value == (
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/v1/p/workspaces/w-1", "/v1/p/workspaces/w-1/"),
        ("/v1/x/", "/v1/x/"),
        ("/", "/"),
        ("/a b/c", "/a%20b/c/"),
        ("/a%20b/%E4%B8%AD", "/a%20b/%E4%B8%AD/"),
        ("/a%2Fb", "/a/b/"),  # decoded, then split: as the guide (and official SDK) do
        ("/~user/x.y_z-1", "/~user/x.y_z-1/"),
        ("/a+b/c=d", "/a%2Bb/c%3Dd/"),
    ],
)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert canonical_uri(raw) == canonical


def test_canonical_query_sorts_and_encodes_repeated_keys() -> None:
    pairs = [("b", "2"), ("a", "z z"), ("a", "y"), ("ü", "é&=")]
    assert canonical_query(pairs) == "a=y&a=z%20z&b=2&%C3%BC=%C3%A9%26%3D"


def test_sdk_date_is_utc_basic_format() -> None:
    assert sdk_date(0) == "19700101T000000Z"
    assert sdk_date(1573788615) == "20191115T033015Z"


def test_signing_needs_a_date() -> None:
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        authorization(ak=AK, sk=b"k", method="GET", raw_path="/", query=[], headers={"Host": "h"})


def test_names_with_underscores_are_not_signed() -> None:
    _, signed = canonical_request(
        "GET", "/", [], {"Host": "h", "X-Sdk-Date": "d", "x_custom": "1"}, EMPTY_BODY_SHA256
    )
    assert signed == "host;x-sdk-date"


SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="/"),
    min_size=1,
    max_size=12,
)
QUERY = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=5)


def _sign_and_send_form(
    segments: list[str], pairs: list[tuple[str, str]], when: float
) -> tuple[str, dict[str, str]]:
    raw_path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    raw_query = "&".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in pairs
    )
    headers = {"Host": "fabric.cn-north-4.myhuaweicloud.com:8443", "X-Sdk-Date": sdk_date(when)}
    headers["Authorization"] = authorization(
        ak=AK, sk=SK.encode(), method="DELETE", raw_path=raw_path, query=pairs, headers=headers
    )
    return raw_path + (f"?{raw_query}" if raw_query else ""), headers


@settings(max_examples=300)
@given(st.lists(SEGMENT, min_size=1, max_size=5), QUERY)
def test_independent_verifier_accepts_our_signatures(
    segments: list[str], pairs: list[tuple[str, str]]
) -> None:
    now = 1_700_000_000.0
    verifier = SignatureVerifier({AK: SK}, {}, clock=lambda: now)
    target, headers = _sign_and_send_form(segments, pairs, now)
    assert verifier.problem("DELETE", target, headers, b"") is None


@given(st.lists(SEGMENT, min_size=1, max_size=4), QUERY)
def test_independent_verifier_rejects_tampering(
    segments: list[str], pairs: list[tuple[str, str]]
) -> None:
    now = 1_700_000_000.0
    verifier = SignatureVerifier({AK: SK}, {}, clock=lambda: now)
    target, headers = _sign_and_send_form(segments, pairs, now)
    path, _, query = target.partition("?")
    assert (
        verifier.problem("DELETE", path + "x" + (f"?{query}" if query else ""), headers, b"")
        is not None
    )
    assert (
        verifier.problem("DELETE", target + ("&" if query else "?") + "extra=1", headers, b"")
        is not None
    )
    assert verifier.problem("GET", target, headers, b"") is not None
    assert (
        verifier.problem("DELETE", target, {**headers, "Host": "evil.example.com"}, b"") is not None
    )
    later = {**headers, "X-Sdk-Date": sdk_date(now + 1)}
    assert verifier.problem("DELETE", target, later, b"") == "signature mismatch"
    assert verifier.problem("DELETE", target, headers, b"body") == "signature mismatch"


def test_verifier_rejects_a_date_more_than_15_minutes_off() -> None:
    now = time.time()
    target, headers = _sign_and_send_form(["v1", "x"], [], now - 16 * 60)
    verifier = SignatureVerifier({AK: SK}, {}, clock=lambda: now)
    assert "15 minutes" in (verifier.problem("DELETE", target, headers, b"") or "")


def test_ak_sk_auth_signs_host_with_port_date_and_token() -> None:
    auth = AkSkAuth(AK, SK, security_token="temp-token")
    headers = auth.headers_for(
        "DELETE",
        yarl.URL(
            "https://modelarts.cn-north-4.myhuaweicloud.com:8443/v1/p/workspaces/w", encoded=True
        ),
    )
    assert headers["Host"] == "modelarts.cn-north-4.myhuaweicloud.com:8443"
    assert headers["X-Security-Token"] == "temp-token"
    assert "x-security-token" in headers["Authorization"]
    default_port = auth.headers_for(
        "DELETE", yarl.URL("https://modelarts.cn-north-4.myhuaweicloud.com/v1/p/workspaces/w")
    )
    assert default_port["Host"] == "modelarts.cn-north-4.myhuaweicloud.com"
    verifier = SignatureVerifier({AK: SK}, {AK: "temp-token"}, clock=time.time)
    assert verifier.problem("DELETE", "/v1/p/workspaces/w", headers, b"") is None


def test_secrets_stay_out_of_repr_and_str() -> None:
    auth = AkSkAuth(AK, SK, security_token="temp-token-secret")
    for text in (repr(auth), str(auth)):
        assert SK not in text
        assert "temp-token-secret" not in text


@pytest.mark.parametrize("field", ["ak", "sk", "security_token"])
def test_cr_or_lf_in_any_credential_is_refused(field: str) -> None:
    values = {"ak": AK, "sk": SK, "security_token": "sts-token"}
    values[field] = "bad\r\nX-Injected: 1"
    with pytest.raises(ConfigurationError) as info:
        AkSkAuth(**values)
    assert "X-Injected" not in str(info.value)


def test_from_env_reads_the_official_names() -> None:
    env = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": "sts-token",
    }
    assert AkSkAuth.from_env(env) == AkSkAuth(AK, SK, "sts-token")
    with pytest.raises(ConfigurationError, match="HUAWEICLOUD_SDK_SK"):
        AkSkAuth.from_env({"HUAWEICLOUD_SDK_AK": AK})


HOSTS = st.sampled_from(
    [
        "fabric.cn-north-4.myhuaweicloud.com",
        "fabric.cn-north-4.myhuaweicloud.com:8443",
        "modelarts.ap-southeast-1.myhuaweicloud.cn",
        "127.0.0.1:18080",
    ]
)


def official_authorization(
    host: str, raw_path: str, pairs: list[tuple[str, str]], sdk_date_value: str
) -> str:
    """The Authorization the official huaweicloudsdkcore signer gives a DELETE."""
    signer_module = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    request_module = pytest.importorskip("huaweicloudsdkcore.sdk_request")

    class Credentials:
        ak = AK
        sk = SK

    theirs = request_module.SdkRequest(
        method="DELETE",
        schema="https",
        host=host,
        resource_path=raw_path,
        query_params=list(pairs),
        header_params={"X-Sdk-Date": sdk_date_value, "Host": host},
        body="",
    )
    signer_module.Signer(Credentials()).sign(theirs)
    return str(theirs.header_params["Authorization"])


@settings(max_examples=200)
@given(st.lists(SEGMENT, min_size=1, max_size=5), QUERY, HOSTS)
def test_the_official_sdk_signer_agrees(
    segments: list[str], pairs: list[tuple[str, str]], host: str
) -> None:
    raw_path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    headers = {"X-Sdk-Date": "20261122T010203Z", "Host": host}
    ours = authorization(
        ak=AK, sk=SK.encode(), method="DELETE", raw_path=raw_path, query=pairs, headers=headers
    )
    assert ours == official_authorization(host, raw_path, pairs, headers["X-Sdk-Date"])


@pytest.mark.parametrize(
    "url",
    [
        "https://fabric.cn-north-4.myhuaweicloud.com/v1/workspaces/ws-1/sessions/s-1",
        "https://fabric.cn-north-4.myhuaweicloud.com:8443/v1/workspaces/ws-1/sessions/s-1",
        "https://modelarts.cn-north-4.myhuaweicloud.com/v1/p-1/workspaces/w-1",
        "https://modelarts.cn-north-4.myhuaweicloud.com:8443/v1/p-1/workspaces/w-1",
    ],
)
def test_the_official_sdk_accepts_our_delete_requests(url: str) -> None:
    """AkSkAuth's real headers for both services' DELETEs, re-signed by the official SDK."""
    parsed = yarl.URL(url)
    ours = AkSkAuth(AK, SK).headers_for("DELETE", parsed)
    theirs = official_authorization(ours["Host"], parsed.raw_path, [], ours["X-Sdk-Date"])
    assert ours["Authorization"] == theirs
