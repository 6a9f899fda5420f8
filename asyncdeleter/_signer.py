"""The ``SDK-HMAC-SHA256`` request signer (Huawei "API Request Signing Guide"): pure, no I/O.

The steps, as the signing guide numbers them (docs/api-facts.md, section 4): canonical URI
(percent-decoded, re-encoded per segment, always ending in ``/``), canonical query (pairs
sorted, encoded), canonical headers (lower-cased names, sorted, stripped values), the
payload hash, the string to sign, and the HMAC-SHA256 signature with the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import string
import time
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "EMPTY_BODY_SHA256",
    "authorization",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "sdk_date",
]

ALGORITHM: Final = "SDK-HMAC-SHA256"
EMPTY_BODY_SHA256: Final = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# A path made only of unreserved characters and slashes encodes to itself: the hot path
# (validated ids) skips the decode/re-encode. (A deletion table: no regex to compile.)
_DELETE_PLAIN: Final = str.maketrans("", "", string.ascii_letters + string.digits + "-._~/")


def _encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else (space too) is %XX of its UTF-8.
    return quote(text, safe="~")


def canonical_uri(raw_path: str) -> str:
    """Percent-decode the path, re-encode each segment, and end it with ``/``."""
    if not raw_path.translate(_DELETE_PLAIN):
        encoded = raw_path
    else:
        encoded = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sort the (decoded) query pairs by key, then value, and encode both."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
) -> tuple[str, str]:
    """Return ``(canonical request, signed headers)`` for the given parts.

    Every header is signed except names containing ``_`` (as the official SDK does).
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items() if "_" not in name}
    signed = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    signed_headers = ";".join(signed)
    request = "\n".join(
        (
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    return request, signed_headers


def authorization(
    *,
    ak: str,
    sk: bytes,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes = b"",
) -> str:
    """Sign a request; return the ``Authorization`` header value.

    Args:
        ak: The access key id.
        sk: The secret key, UTF-8 encoded.
        method: The HTTP method.
        raw_path: The path as sent (may be percent-encoded).
        query: The decoded query pairs (repeated keys allowed).
        headers: Every header to sign; must already hold ``Host`` and ``X-Sdk-Date``.
        body: The request body.
    """
    date = next((v for k, v in headers.items() if k.lower() == "x-sdk-date"), None)
    if date is None:
        raise ValueError("headers must include X-Sdk-Date before signing")
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    request, signed_headers = canonical_request(method, raw_path, query, headers, payload_hash)
    digest = hashlib.sha256(request.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    signature = hmac.new(sk, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Access={ak}, SignedHeaders={signed_headers}, Signature={signature}"


def sdk_date(now: float | None = None) -> str:
    """``X-Sdk-Date`` for ``now`` (Unix time; default: the current time), in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
