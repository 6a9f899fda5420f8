"""The API gateway in front of both services: the refusals that come before any backend.

Credentials (a token, or an AK/SK signature over the path *and* query string), the quota
(a fixed one-second window per API, docs/api-facts.md, section 3), a smoother token-bucket throttle,
and the requests it does not route at all.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

from aiohttp import web

from asyncdeleter.testing._bodies import error_answer, error_response, json_response
from asyncdeleter.testing._signature import SignatureVerifier

__all__ = [
    "QuotaWindows",
    "TokenBucket",
    "check_credentials",
    "method_not_allowed",
    "throttled",
    "unknown_api",
]

_UNKNOWN_API: Final = json.dumps(
    {
        "error_code": "APIGW.0101",
        "error_msg": "The API does not exist or has not been published in the environment",
    }
).encode()
_METHOD_NOT_ALLOWED: Final = json.dumps(
    {"error_code": "APIG.0102", "error_msg": "Method not allowed"}
).encode()


def unknown_api() -> web.Response:
    """404 ``APIGW.0101``: no API is published at this path (or on this host).

    Spelled as the signing guide's table spells it (docs/api-facts.md, section 3); the
    client must not take it, or ``APIG.0101``, for "not found".
    """
    return json_response(404, _UNKNOWN_API)


def method_not_allowed() -> web.Response:
    """405 ``APIG.0102``: the path exists, but not with this method."""
    return json_response(405, _METHOD_NOT_ALLOWED)


def throttled(retry_after: str | None, limit: float | None) -> web.Response:
    """429 ``APIG.0308`` as the gateway documents it (docs/api-facts.md, section 3).

    The message names the quota (``limit:XX,time:1 second``); no ``Retry-After`` is
    documented, so none is sent unless ``retry_after`` asks for one.
    """
    shown = "XX" if limit is None else f"{limit:g}"
    message = (
        "The throttling threshold has been reached: policy user over ratelimit,"
        f"limit:{shown},time:1 second"
    )
    content_type, body = error_answer(429, message)
    headers = {"X-Request-Id": uuid.uuid4().hex}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return web.Response(status=429, body=body, content_type=content_type, headers=headers)


def check_credentials(
    request: web.BaseRequest,
    body: bytes,
    token: str | None,
    verifier: SignatureVerifier | None,
) -> web.Response | None:
    """The gateway's 401 for bad credentials, or ``None`` if the request may pass.

    A request carrying ``Authorization`` is judged by its signature alone (401
    ``APIG.0301``, "verify aksk signature fail", which also covers a clock off by more
    than 15 minutes: docs/api-facts.md, section 3); otherwise ``X-Auth-Token`` must equal
    ``token`` (401 ``APIG.1002``).
    With neither a token nor keys configured, everything passes.
    """
    if verifier is not None and "Authorization" in request.headers:
        problem = verifier.problem(request.method, request.raw_path, request.headers, body)
        if problem is None:
            return None
        return json_response(
            401,
            json.dumps(
                {
                    "error_code": "APIG.0301",
                    "error_msg": f"Incorrect IAM authentication information: verify aksk "
                    f"signature fail: {problem}",
                }
            ).encode(),
        )
    if token is None and verifier is None:
        return None
    if token is not None and request.headers.get("X-Auth-Token") == token:
        return None
    return error_response(401)


class QuotaWindows:
    """The gateway's quota: fixed one-second windows, counted per API."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def admit(self, api: str, quota: int, now: float) -> bool:
        """Count a request to ``api`` in the window holding ``now``; False past ``quota``."""
        window = int(now)
        seen_window, count = self._windows.get(api, (window, 0))
        count = count + 1 if seen_window == window else 1
        self._windows[api] = (window, count)
        return count <= quota


class TokenBucket:
    """A token bucket, for a throttle smoother than the gateway's fixed windows."""

    def __init__(self) -> None:
        self._tokens = 0.0
        self._at: float | None = None

    def take(self, rate: float, burst: float | None, now: float) -> bool:
        """Take a token at ``now``, refilling at ``rate`` per second up to ``burst``.

        ``burst`` defaults to ``rate``; a fresh bucket is full.
        """
        size = burst if burst is not None else rate
        if self._at is None:
            self._tokens = size
        else:
            self._tokens = min(size, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
