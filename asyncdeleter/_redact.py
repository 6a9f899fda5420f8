r"""Cutting credentials out of what servers say: the one place that does it.

A gateway or a hostile server may echo the request's headers back: in an error body, a
request id, a malformed status line that aiohttp then quotes. Whatever the client keeps or
shows of a server's text (errors, results, hook records, spans) passes here first.

A credential is looked for as sent and in the forms an echo takes on the way back
(``secret_forms``: JSON-escaped, with ``\/``, percent-encoded, HTML-escaped); a text cut
short is cut after redacting, and a credential's beginning left at the end of a text (the
server's, or ours, cut mid-credential) goes too (``redact_cut``).
"""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Iterable
from typing import Final, overload

__all__ = ["redact", "redact_cut", "secret_forms"]

#: Real tokens and keys are long; a short test credential ("t") would only mangle text.
SHORTEST_REDACTED: Final = 8
_MARK: Final = "[redacted]"


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each credential as sent and as an echo may carry it, longest first, deduplicated."""
    forms: dict[str, None] = {}
    for secret in secrets:
        if len(secret) < SHORTEST_REDACTED:
            continue
        escaped = json.dumps(secret)[1:-1]
        for form in (
            secret,
            escaped,
            escaped.replace("/", "\\/"),
            urllib.parse.quote(secret, safe=""),
            html.escape(secret),
        ):
            forms[form] = None
    return tuple(sorted(forms, key=len, reverse=True))


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
                text = text.replace(secret, _MARK)
    return text


def redact_cut(text: str, secrets: tuple[str, ...], limit: int) -> str:
    """At most ``limit`` characters of ``text``, redacted before the cut, not after.

    A credential that begins within the limit is replaced whole, and one whose beginning
    (at least ``SHORTEST_REDACTED`` characters) ends the text, cut short, goes too.
    """
    longest = max((len(secret) for secret in secrets), default=0)
    kept = redact(text[: limit + longest], secrets)[:limit]
    for secret in secrets:
        # Where a beginning of ``secret`` could start: within its length of the end.
        start = kept.find(secret[0], max(0, len(kept) - len(secret) + 1))
        while start != -1 and len(kept) - start >= SHORTEST_REDACTED:
            if secret.startswith(kept[start:]):
                return kept[:start] + _MARK
            start = kept.find(secret[0], start + 1)
    return kept
