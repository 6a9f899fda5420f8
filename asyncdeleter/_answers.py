"""Reading an answer: a read's 2xx body as its result, any other answer as a typed error."""

from __future__ import annotations

import json

from asyncdeleter._calls import Call
from asyncdeleter._errors import (
    RAW_BODY_KEPT,
    APIStatusError,
    MalformedResponseError,
    status_error_class,
)
from asyncdeleter._models import ErrorBody
from asyncdeleter._redact import redact_cut
from asyncdeleter._transport import Reply

__all__ = [
    "credentials_refused",
    "parsed_result",
    "status_error",
]


#: What a malformed answer's error says of the problem, at most this long.
_PROBLEM_KEPT = 200


def parsed_result(call: Call, reply: Reply, secrets: tuple[str, ...] = ()) -> object:
    """A read's 2xx body as its result; ``secrets`` are cut out of an error's text.

    Raises:
        MalformedResponseError: The body is too large, not JSON, or not the documented
            structure (an item without an id, say). Not retried: the same answer would
            come back.
    """
    op = call.op
    assert op.parse is not None  # noqa: S101 - only reads get here
    problem: str
    if reply.oversized:
        problem = "the body is larger than asyncdeleter reads"
    else:
        try:
            return op.parse(json.loads(reply.body), call.ids)
        except (ValueError, RecursionError, TypeError, KeyError) as exc:
            problem = _first_line(exc)
        except Exception as exc:  # noqa: BLE001 - cattrs wraps what it met in its own groups
            problem = _first_line(exc)
    # The problem may quote the body (an id that is a credential a server echoed): cut
    # short only once redacted.
    problem = redact_cut(problem, secrets, _PROBLEM_KEPT)
    error = MalformedResponseError(
        f"{op.label} {call.target}: HTTP {reply.status} with an unreadable body ({problem})",
        status=reply.status,
        request_id=reply.request_id,
        attempts=call.attempts,
        raw_body=redact_cut(_decoded(reply.body, secrets), secrets, RAW_BODY_KEPT),
    )
    raise error from None


def _decoded(raw: bytes, secrets: tuple[str, ...]) -> str:
    """The start of a body as text, long enough for ``redact_cut``.

    Enough to keep ``RAW_BODY_KEPT * 4`` characters and still see whole any credential
    that begins within them.
    """
    longest = max((len(secret) for secret in secrets), default=0)
    return raw[: (RAW_BODY_KEPT * 4 + longest) * 4].decode("utf-8", "replace")


def _first_line(exc: BaseException) -> str:
    causes = getattr(exc, "exceptions", None)
    if causes:  # a cattrs ClassValidationError: say what was wrong inside
        return _first_line(causes[0])
    return (str(exc) or type(exc).__name__).splitlines()[0]


def status_error(  # noqa: PLR0917 - the parts of one answer, always given together
    call: Call,
    status: int,
    body: ErrorBody,
    raw: bytes,
    request_id: str | None,
    retry_after: float | None,
    *,
    secrets: tuple[str, ...] = (),
) -> APIStatusError:
    """The typed error of a non-2xx answer whose body parsed as ``body``.

    ``body``, ``raw`` and ``request_id`` come already redacted (the request path cuts
    every credential out of a reply before reading it); ``secrets`` are what the raw
    body's cut must still not split (``redact_cut``).
    """
    raw_text = redact_cut(_decoded(raw, secrets), secrets, RAW_BODY_KEPT * 4)
    error_msg, error_code = body.error_msg, body.error_code
    detail = error_msg or raw_text[:200].strip() or "(no body)"
    code = f" {error_code}" if error_code else ""
    return status_error_class(status)(
        f"{call.op.label} {call.target}: HTTP {status}{code}: {detail}",
        status=status,
        error_code=error_code,
        error_msg=error_msg,
        solution_msg=body.solution_msg,
        request_id=request_id,
        attempts=call.attempts,
        raw_body=raw_text,
        retry_after=retry_after,
    )


def credentials_refused(error: APIStatusError) -> bool:
    """A 401, or the 403 whose body says the token is invalid (the seed page's example)."""
    if error.status == 401:
        return True
    message = (error.error_msg or "").lower()
    return error.status == 403 and "token" in message and "invalid" in message
