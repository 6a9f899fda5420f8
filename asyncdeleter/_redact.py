r"""Cutting credentials out of what servers say: the one place that does it.

A gateway or a hostile server may echo the request's headers back: in an error body, a
2xx body (a workspace's ``status_info``), a request id, a malformed status line that
aiohttp then quotes. Whatever the client keeps or shows of a server's text (results,
errors, hook records, spans) passes here first.

A credential is compared on *decoded* forms, not on a list of encodings: each of its
characters may come back as itself or escaped in any of the ways an echo escapes text
(percent-encoding in either case, an HTML entity, named or numeric, a JSON ``\uXXXX`` or
``\/``), mixed freely (``urllib.parse.quote`` leaves ``/`` alone, say). One pattern per
credential matches all of them and replaces the echo whole, keeping the text around it as
it was; and as a last line, a text whose fully decoded form still holds a credential
(an escape nested in another) is given back decoded, with the credential cut out.

A text cut short is cut after redacting, and a credential's beginning left at the end of
a text (the server's, or ours, cut mid-credential) goes too (``redact_cut``).
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterable
from typing import Final, overload

__all__ = ["SHORTEST_SECRET", "redact", "redact_body", "redact_cut", "secret_forms"]

#: No real IAM token, access key or secret key is this short, and a credential shorter
#: than this could not be cut out without mangling ordinary text: ``_auth`` refuses one.
SHORTEST_SECRET: Final = 8
_MARK: Final = "[redacted]"
#: The characters every escape an echo could use begins with: a text without any of
#: them can hold a credential only as itself.
_ESCAPE_STARTS: Final = re.compile(r"[%&\\]")


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """The credentials worth looking for: long enough, deduplicated, longest first."""
    kept = {secret: None for secret in secrets if len(secret) >= SHORTEST_SECRET}
    return tuple(sorted(kept, key=len, reverse=True))


#: Every escape an echo could give a character: percent-encoding (either case), a JSON
#: ``\\uXXXX`` or ``\\/``, an HTML entity (numeric, or named: ``&plus;``).
_ESCAPE: Final = re.compile(
    r"%[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[/\\\"]"
    r"|&(?:#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,8}|[A-Za-z][A-Za-z0-9]{1,31});?"
)
#: How many times a text is decoded over (an escape inside an escape) before giving up.
_DECODE_ROUNDS: Final = 4


def _unescaped(escape: str) -> str:
    """What one escape stands for (an HTML name that is no entity stands for itself)."""
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    if escape[0] == "\\":
        return chr(int(escape[2:], 16)) if escape[1] == "u" else escape[1]
    return html.unescape(escape)


def _decoded(text: str) -> str:
    """``text`` with every escape undone, over again while escapes remain (nested ones)."""
    for _ in range(_DECODE_ROUNDS):
        if not _ESCAPE_STARTS.search(text):
            break
        before, text = text, _ESCAPE.sub(lambda match: _unescaped(match[0]), text)
        if text == before:
            break
    return text


def _cut_from_escaped(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each escaped echo of a credential replaced whole, the rest as it was.

    The text is decoded once, keeping where each decoded character came from, so an echo
    found in the decoded text is cut out of the original at the same place.
    """
    decoded: list[str] = []  # pieces of the decoded text
    starts: list[int] = []  # where each piece begins in the decoded text
    spans: list[tuple[int, int, bool]] = []  # each piece's (start, end) in text; escaped?
    at = length = 0
    for match in _ESCAPE.finditer(text):
        if match.start() > at:
            decoded.append(text[at : match.start()])
            starts.append(length)
            spans.append((at, match.start(), False))
            length += match.start() - at
        piece = _unescaped(match[0])
        decoded.append(piece)
        starts.append(length)
        spans.append((match.start(), match.end(), True))
        length += len(piece)
        at = match.end()
    decoded.append(text[at:])
    starts.append(length)
    spans.append((at, len(text), False))
    flat = "".join(decoded)

    def source(index: int, *, end: bool) -> int:
        piece = bisect.bisect_right(starts, index) - 1
        begin, finish, escaped = spans[piece]
        if escaped:
            return finish if end else begin
        return begin + index - starts[piece] + (1 if end else 0)

    cuts: list[tuple[int, int]] = []
    for secret in secrets:
        found = flat.find(secret)
        while found != -1:
            cuts.append((source(found, end=False), source(found + len(secret) - 1, end=True)))
            found = flat.find(secret, found + len(secret))
    kept: list[str] = []
    at = 0
    for begin, finish in sorted(cuts):
        if begin >= at:
            kept += (text[at:begin], _MARK)
            at = finish
        elif finish > at:  # overlaps the cut before it: that cut grows
            at = finish
    kept.append(text[at:])
    return "".join(kept)


@overload
def redact(text: str, secrets: tuple[str, ...]) -> str: ...
@overload
def redact(text: None, secrets: tuple[str, ...]) -> None: ...
@overload
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None: ...
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """``text`` with every credential in ``secrets``, in any form, replaced by ``[redacted]``.

    ``secrets`` come from ``secret_forms``.
    """
    if not text or not secrets:
        return text
    if _ESCAPE_STARTS.search(text) and any(secret in _decoded(text) for secret in secrets):
        text = _cut_from_escaped(text, secrets)
        if any(secret in _decoded(text) for secret in secrets):
            # An escape inside an escape: what is given back is the decoded text, which
            # holds none.
            text = _decoded(text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MARK)
    return text


def redact_body(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """A whole answer's body with every credential cut out, before anything parses it.

    Redacting the body once, as bytes, is what makes every string parsed from it (a result's
    fields, an error's) clean by construction. Bytes that are not UTF-8 pass through as
    they were.
    """
    if not body or not secrets:
        return body
    text = body.decode("utf-8", "surrogateescape")
    cleaned = redact(text, secrets)
    return body if cleaned == text else cleaned.encode("utf-8", "surrogateescape")


def redact_cut(text: str, secrets: tuple[str, ...], limit: int) -> str:
    """At most ``limit`` characters of ``text``, redacted before the cut, not after.

    A credential that begins within the limit is replaced whole, and one whose beginning
    (at least ``SHORTEST_SECRET`` characters) ends the text, cut short, goes too.
    """
    longest = max((len(secret) for secret in secrets), default=0)
    kept = redact(text[: limit + longest * 12], secrets)[:limit]
    for secret in secrets:
        # Where a beginning of ``secret`` could start: within its length of the end.
        start = kept.find(secret[0], max(0, len(kept) - len(secret) + 1))
        while start != -1 and len(kept) - start >= SHORTEST_SECRET:
            if secret.startswith(kept[start:]):
                return kept[:start] + _MARK
            start = kept.find(secret[0], start + 1)
    return kept
