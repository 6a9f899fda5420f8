"""The answers the real services and their gateway give, byte-compatible with docs/api-facts.md."""

from __future__ import annotations

import json
import uuid
from typing import Final

from aiohttp import web

__all__ = [
    "error_answer",
    "error_response",
    "flat_body",
    "forbidden_body",
    "json_response",
    "not_found_body",
    "respond",
]

JSON: Final = "application/json"

_MESSAGES: Final[dict[int, tuple[str, str, str]]] = {
    # status: (content type, error_code, error_msg) for the usual flat JSON shape
    400: (
        JSON,
        "common.01000001",
        "failed to read http request, please check your input, code: 400, "
        "reason: Type mismatch., cause: TypeMismatchException",
    ),
    401: (JSON, "APIG.1002", "Incorrect token or token resolution failed"),
    404: (JSON, "common.01000001", "response status exception, code: 404"),
    408: (JSON, "common.00000408", "timeout exception occurred"),
    429: (JSON, "APIG.0308", "The request is throttled due to traffic control"),
    500: (JSON, "common.00000500", "internal error"),
}

# The gateway's own failures arrive as pages or plain text, not JSON (docs/api-facts.md, section 3).
_GATEWAY_PAGES: Final[dict[int, tuple[str, bytes]]] = {
    502: (
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head><body><center>"
        b"<h1>502 Bad Gateway</h1></center><hr><center>APIG</center></body></html>",
    ),
    503: ("text/plain", b"Service Unavailable"),
    504: (
        "text/html",
        b"<html><head><title>504 Gateway Time-out</title></head><body><center>"
        b"<h1>504 Gateway Time-out</h1></center></body></html>",
    ),
}


def forbidden_body(message: str = "X-Auth-Token is invalid in the request") -> bytes:
    """The nested 403 shape, whose ``error_code`` is an integer."""
    return json.dumps(
        {
            "error": {"code": "403", "message": message, "title": "Forbidden"},
            "error_code": 403,
            "error_msg": message,
            "title": "Forbidden",
        }
    ).encode()


def flat_body(error_code: str, message: str) -> bytes:
    """An error in the usual flat shape: ``{"error_code": ..., "error_msg": ...}``."""
    return json.dumps({"error_code": error_code, "error_msg": message}).encode()


def not_found_body(error_code: str, message: str) -> bytes:
    """A 404 in the flat shape, naming what is missing."""
    return flat_body(error_code, message)


def error_answer(status: int, message: str | None = None) -> tuple[str, bytes]:
    """Return ``(content_type, body)`` as the service or gateway would answer ``status``."""
    if status == 403:
        return JSON, forbidden_body(message) if message else forbidden_body()
    page = _GATEWAY_PAGES.get(status)
    if page is not None and message is None:
        return page
    content_type, code, default = _MESSAGES.get(
        status, (JSON, f"common.00000{status:03d}", f"error {status}")
    )
    return content_type, json.dumps({"error_code": code, "error_msg": message or default}).encode()


def json_response(status: int, body: bytes) -> web.Response:
    """A JSON answer with a fresh ``X-Request-Id``, as every real answer carries."""
    return web.Response(
        status=status, body=body, content_type=JSON, headers={"X-Request-Id": uuid.uuid4().hex}
    )


def error_response(status: int) -> web.Response:
    """The service's or gateway's usual answer for ``status`` (see ``error_answer``)."""
    content_type, body = error_answer(status)
    return web.Response(
        status=status,
        body=body,
        content_type=content_type,
        headers={"X-Request-Id": uuid.uuid4().hex},
    )


def respond(status: int, body: bytes) -> web.Response:
    """A service answer: JSON, or nothing at all when ``body`` is empty (a Fabric 200)."""
    if body:
        return json_response(status, body)
    return web.Response(status=status, headers={"X-Request-Id": uuid.uuid4().hex})
