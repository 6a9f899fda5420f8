"""Cutting credentials out of what servers say: the one place that does it.

A gateway or a hostile server may echo the request's headers back: in an error body, a
request id, a malformed status line that aiohttp then quotes. Whatever the client keeps or
shows of a server's text (errors, results, hook records, spans) passes here first.
"""

from __future__ import annotations

from typing import Final, overload

__all__ = ["redact"]

#: Real tokens and keys are long; a short test credential ("t") would only mangle text.
SHORTEST_REDACTED: Final = 8


@overload
def redact(text: str, secrets: tuple[str, ...]) -> str: ...
@overload
def redact(text: None, secrets: tuple[str, ...]) -> None: ...
@overload
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None: ...
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """``text`` with every secret (a token, SK, security token) replaced by ``[redacted]``."""
    if text:
        for secret in secrets:
            if len(secret) >= SHORTEST_REDACTED and secret in text:
                text = text.replace(secret, "[redacted]")
    return text
