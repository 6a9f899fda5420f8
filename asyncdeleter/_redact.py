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
import functools
import html
import json
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
#: ``\\uXXXX`` or ``\\/``, an HTML entity (numeric with any number of zeros, or named:
#: ``&plus;``).
_ESCAPE: Final = re.compile(
    r"%[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[/\\\"]"
    r"|&(?:#[xX][0-9a-fA-F]+|#[0-9]+|[A-Za-z][A-Za-z0-9]{1,31});?"
)
#: How many times a text is decoded over (an escape inside an escape). No server's text
#: nests escapes this deep by accident: one still changing after it is withheld whole.
_DECODE_ROUNDS: Final = 32
_TOO_DEEP: Final = "[redacted: escaped too many times over to be checked]"


def _unescaped(escape: str) -> str:
    """What one escape stands for (an HTML name that is no entity stands for itself)."""
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    if escape[0] == "\\":
        return chr(int(escape[2:], 16)) if escape[1] == "u" else escape[1]
    if escape[1] == "#":
        # Leading zeros go first: html.unescape would convert thousands of digits (and
        # raise past Python's limit). Past U+10FFFF, a browser shows U+FFFD.
        hexadecimal = escape[2] in "xX"
        digits = escape[3 if hexadecimal else 2 :].rstrip(";").lstrip("0") or "0"
        if len(digits) > (6 if hexadecimal else 7):
            return "\ufffd"
        escape = "&#" + ("x" if hexadecimal else "") + digits + ";"
    return html.unescape(escape)


def _decoded(text: str) -> str | None:
    """``text`` with every escape undone, over again while escapes remain (nested ones).

    ``None`` if it is still changing after ``_DECODE_ROUNDS``.
    """
    for _ in range(_DECODE_ROUNDS):
        if not _ESCAPE_STARTS.search(text):
            return text
        before, text = text, _ESCAPE.sub(lambda match: _unescaped(match[0]), text)
        if text == before:
            return text
    return None


#: Any part of a credential this long, found anywhere, is an echo (one a server cut short
#: at a field limit, or folded over two lines): it is cut out as far as it goes. A
#: shorter credential is looked for whole.
_ECHO_PART: Final = 16
#: Texts are sampled every ``_GRAM`` characters against every ``_GRAM``-long piece of
#: each credential: any echoed part ``_ECHO_PART`` long holds one sampled piece whole.
_GRAM: Final = 8
_SAMPLES: Final = re.compile(f".{{{_GRAM}}}", re.DOTALL)


@functools.lru_cache(maxsize=32)
def _pieces(secrets: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
    """Every ``_GRAM``-long piece of each long credential, and where in it it begins."""
    pieces: dict[str, list[tuple[str, int]]] = {}
    for secret in secrets:
        if len(secret) >= _ECHO_PART:
            for at in range(len(secret) - _GRAM + 1):
                pieces.setdefault(secret[at : at + _GRAM], []).append((secret, at))
    return pieces


def _echoes(text: str, secrets: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where credentials are echoed in ``text``: whole, or any part ``_ECHO_PART`` long."""
    found: list[tuple[int, int]] = []
    for secret in secrets:
        if len(secret) < _ECHO_PART:
            at = text.find(secret)
            while at != -1:
                found.append((at, at + len(secret)))
                at = text.find(secret, at + len(secret))
    pieces = _pieces(secrets)
    if not pieces or pieces.keys().isdisjoint(_SAMPLES.findall(text)):
        return found  # the common case, decided at C speed
    covered = 0
    for sample in range(0, len(text) - _GRAM + 1, _GRAM):
        if sample < covered or (places := pieces.get(text[sample : sample + _GRAM])) is None:
            continue
        for secret, at in places:
            begin, inside = sample, at
            while begin > 0 and inside > 0 and text[begin - 1] == secret[inside - 1]:
                begin, inside = begin - 1, inside - 1
            end, inside = sample + _GRAM, at + _GRAM
            while end < len(text) and inside < len(secret) and text[end] == secret[inside]:
                end, inside = end + 1, inside + 1
            if end - begin >= _ECHO_PART:
                found.append((begin, end))
                covered = max(covered, end)
    return found


def _holds_echo(text: str, secrets: tuple[str, ...]) -> bool:
    return bool(_echoes(text, secrets))


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by ``[redacted]`` (overlapping spans as one)."""
    if not spans:
        return text
    kept: list[str] = []
    at = 0
    for begin, finish in sorted(spans):
        if begin >= at:
            kept += (text[at:begin], _MARK)
            at = finish
        elif finish > at:  # overlaps the cut before it: that cut grows
            at = finish
    kept.append(text[at:])
    return "".join(kept)


def _cut_escaped(text: str, secrets: tuple[str, ...]) -> str:
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

    def source(index: int, *, end: bool) -> int:
        piece = bisect.bisect_right(starts, index) - 1
        begin, finish, escaped = spans[piece]
        if escaped:
            return finish if end else begin
        return begin + index - starts[piece] + (1 if end else 0)

    return _cut(
        text,
        [
            (source(begin, end=False), source(finish - 1, end=True))
            for begin, finish in _echoes("".join(decoded), secrets)
        ],
    )


@overload
def redact(text: str, secrets: tuple[str, ...]) -> str: ...
@overload
def redact(text: None, secrets: tuple[str, ...]) -> None: ...
@overload
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None: ...
def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """``text`` with every credential in ``secrets`` replaced by ``[redacted]``.

    In any form: as sent, escaped, or its beginning cut short by the server. ``secrets``
    come from ``secret_forms``.
    """
    if not text or not secrets:
        return text
    if _ESCAPE_STARTS.search(text):
        # Escaped echoes first, on the decoded text: an echo partly escaped is one echo.
        decoded = _decoded(text)
        if decoded is None:
            return _TOO_DEEP
        if _holds_echo(decoded, secrets):
            if _ESCAPE.sub(lambda match: _unescaped(match[0]), text) == decoded:
                text = _cut_escaped(text, secrets)  # cut in place, the rest as it was
            else:
                text = decoded  # an escape inside an escape: given back decoded, then cut
    return _cut(text, _echoes(text, secrets))


def redact_body(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """A whole answer's body with every credential cut out, before anything parses it.

    Redacting the body once is what makes every string parsed from it (a result's fields,
    an error's) clean by construction. It is read in the encoding a JSON parser would
    detect (UTF-16 and UTF-32 included), and a body in any encoding but UTF-8 is given
    back as UTF-8, so what is parsed and quoted later is exactly what was checked. Bytes
    that are not valid in that encoding pass through as they were.
    """
    if not body or not secrets:
        return body
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        text = body.decode("utf-8", "surrogateescape")
        cleaned = redact(text, secrets)
        return body if cleaned == text else cleaned.encode("utf-8", "surrogateescape")
    return redact(body.decode(encoding, "replace"), secrets).encode("utf-8", "surrogatepass")


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
