"""The answers the real services and their gateway give, byte-compatible with API.md."""

from __future__ import annotations

import json
from typing import Final

__all__ = ["error_answer", "forbidden_body", "not_found_body"]

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

# The gateway's own failures arrive as pages or plain text, not JSON (API.md, section 3).
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


def not_found_body(error_code: str, message: str) -> bytes:
    """A 404 in the flat shape, naming what is missing."""
    return json.dumps({"error_code": error_code, "error_msg": message}).encode()


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
