"""The emulator's own check of ``SDK-HMAC-SHA256`` signatures.

Written apart from ``asyncdeleter._signer`` on purpose: it rebuilds the canonical request
from what arrived on the wire (the raw path and query, the received headers named in
``SignedHeaders``), so a client that signs something other than what it sends is caught.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["SignatureVerifier"]

_AUTHORIZATION: Final = re.compile(
    r"SDK-HMAC-SHA256 Access=(?P<ak>[^,\s]+), SignedHeaders=(?P<signed>[a-z0-9;\-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW_SECONDS: Final = 15 * 60


def _percent(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class SignatureVerifier:
    """Accepts a request only if it is signed by a known key pair, within the clock skew.

    Args:
        access_keys: Access key id to secret key.
        security_tokens: Access key id to the ``X-Security-Token`` its requests must carry
            (temporary credentials).
        clock: Returns the current Unix time (tests inject a fixed one).
    """

    def __init__(
        self,
        access_keys: Mapping[str, str],
        security_tokens: Mapping[str, str],
        clock: Callable[[], float],
    ) -> None:
        self.access_keys = dict(access_keys)
        self.security_tokens = dict(security_tokens)
        self.clock = clock

    def problem(
        self, method: str, raw_path_and_query: str, headers: Mapping[str, str], body: bytes
    ) -> str | None:
        """Why this request's signature is refused, or ``None`` if it is good."""
        headers = {name.lower(): value for name, value in headers.items()}
        match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if match is None:
            return "malformed Authorization header"
        secret = self.access_keys.get(match["ak"])
        if secret is None:
            return "unknown access key"
        signed = match["signed"].split(";")
        problem = self._envelope_problem(match["ak"], signed, headers)
        if problem is not None:
            return problem
        expected = _signature(
            secret,
            method=method,
            raw_path_and_query=raw_path_and_query,
            signed=signed,
            headers=headers,
            body=body,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return "signature mismatch"
        return None

    def _envelope_problem(
        self, ak: str, signed: list[str], headers: Mapping[str, str]
    ) -> str | None:
        """Checks around the signature: what must be signed, the date, the token."""
        if "x-sdk-date" not in signed or "host" not in signed:
            return "host and x-sdk-date must be signed"
        missing = [name for name in signed if headers.get(name) is None]
        if missing:
            return f"signed header {missing[0]} is missing"
        try:
            when = dt.datetime.strptime(headers["x-sdk-date"], "%Y%m%dT%H%M%SZ")
        except ValueError:
            return "malformed X-Sdk-Date"
        if abs(when.replace(tzinfo=dt.UTC).timestamp() - self.clock()) > MAX_SKEW_SECONDS:
            return "X-Sdk-Date is more than 15 minutes off"
        token = self.security_tokens.get(ak)
        if token is not None and (
            "x-security-token" not in signed or headers.get("x-security-token") != token
        ):
            return "the security token is missing or wrong"
        return None


def _signature(
    secret: str,
    *,
    method: str,
    raw_path_and_query: str,
    signed: list[str],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Recompute the signature from the request as received."""
    path, _, query = raw_path_and_query.partition("?")
    canonical_uri = "/".join(_percent(s) for s in urllib.parse.unquote(path).split("/"))
    if not canonical_uri.endswith("/"):
        canonical_uri += "/"
    pairs = []
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        pairs.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    canonical = "\n".join(
        [
            method,
            canonical_uri,
            "&".join(f"{_percent(k)}={_percent(v)}" for k, v in sorted(pairs)),
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    date = headers["x-sdk-date"]
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
