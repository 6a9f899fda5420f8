"""The exception tree (aiohttp's errors are translated into it in ``_transport`` only).

::

    AsyncDeleterError
     +-- ConfigurationError (ValueError)     missing project id or credentials, bad endpoint,
     |                                       CR/LF in a header value, closed manager
     +-- InvalidIdentifierError (ValueError) an id that must never reach a URL
     +-- WaitTimeoutError (TimeoutError)     a deletion still not confirmed at wait_timeout
     +-- APIError                            anything the remote side (or the way to it) did
          +-- DeletionFailedError            the workspace ended DELETE_FAILED
          +-- MalformedResponseError         a 2xx answer whose body could not be read
          +-- APIStatusError                 the server answered with a non-2xx status
          |    +-- BadRequestError           400
          |    +-- AuthenticationError       401
          |    +-- PermissionDeniedError     403
          |    +-- NotFoundError             404, proven: the resource is missing, its parent is not
          |    +-- EndpointNotServedError    a gateway's 404: the endpoint does not serve this API
          |    +-- ParentNotFoundError       the workspace (or project) named does not exist
          |    +-- UnverifiedNotFoundError   a 404 that could not be checked: maybe not gone
          |    +-- RequestTimeoutError       408
          |    +-- RateLimitError            429
          |    +-- ServerError               5xx
          |         +-- InternalServerError  500
          +-- APIConnectionError             no usable answer: refused, reset, dropped, TLS
               +-- APITimeoutError           connect or read timeout, or the call's max_time

Every ``APIError`` carries ``status``, ``error_code``, ``error_msg``, ``solution_msg``,
``request_id`` and ``attempts`` (the connection errors have ``status`` ``None``), and
survives ``pickle``. No name here shadows a built-in (``TimeoutError``, ``ConnectionError``).

Two rules hold for every error raised here, by construction:

- *Secrets stay secret.* aiohttp's exceptions carry a ``RequestInfo`` with the request
  headers (the token, the signature, the security token). They are never chained: an
  ``APIConnectionError``'s ``__cause__`` is a ``TransportError`` that keeps only the
  original's type and message.
- *Server text is data.* ``str()`` of an error escapes control characters (ANSI escapes,
  CR, LF, bidi overrides), so a hostile ``error_msg`` or ``X-Request-Id`` cannot forge log
  lines or drive a terminal; the attributes keep the raw values.
"""

from __future__ import annotations

from typing import Final, NoReturn, TypeVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDeleterError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "DeletionFailedError",
    "EndpointNotServedError",
    "InternalServerError",
    "InvalidIdentifierError",
    "MalformedResponseError",
    "NotFoundError",
    "ParentNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnverifiedNotFoundError",
    "WaitTimeoutError",
    "escape_control",
    "raise_error",
    "reclassified",
]

#: Types an InvalidIdentifierError's value may keep across pickling.
_PLAIN: Final = (str, bytes, int, float, bool, type(None))
#: How much of a raw error body an exception keeps for debugging.
RAW_BODY_KEPT: Final = 2048


def escape_control(text: str) -> str:
    r"""Return ``text`` with every non-printable character escaped (``\x1b``, ``\n``...).

    Server text quoted in a message or a log line goes through here, so it cannot start a
    new log line, move a terminal's cursor or reorder what is shown (bidi overrides).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _rebuild(cls: type[BaseException], message: str, state: dict[str, object]) -> BaseException:
    error = cls.__new__(cls)
    BaseException.__init__(error, message)
    error.__dict__.update(state)
    return error


class AsyncDeleterError(Exception):
    """The root of every error this package raises on purpose."""


class WaitTimeoutError(AsyncDeleterError, TimeoutError):
    """A deletion was accepted but not confirmed within ``wait_timeout``.

    The workspace may still go; waiting again (or deleting again, which counts a
    ``DELETING`` workspace as accepted) is safe.

    Attributes:
        workspace_id: The workspace waited for.
        last_status: The status it last showed (``DELETING``), or ``None`` if no poll
            answered.
        waited: Seconds waited since the deletion was accepted.
        stopped: The wait ended because its bulk run stopped (``stop()``, ``fail_fast``,
            Ctrl-C), not because ``wait_timeout`` ran out.
    """

    def __init__(
        self,
        message: str,
        *,
        workspace_id: str = "",
        last_status: str | None = None,
        waited: float = 0.0,
        stopped: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workspace_id = workspace_id
        self.last_status = last_status
        self.waited = waited
        self.stopped = stopped

    def __str__(self) -> str:
        return escape_control(self.message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class ConfigurationError(AsyncDeleterError, ValueError):
    """The manager cannot make this call as configured; nothing was sent.

    Attributes:
        setting: The argument at fault (``sk``, ``token``, ``project_id``...), when one
            is; its message names it, and the environment variable it was read from.
    """

    setting: str = ""

    def __init__(self, message: str = "", *, setting: str = "") -> None:
        super().__init__(message)
        if setting:
            self.setting = setting


class InvalidIdentifierError(AsyncDeleterError, ValueError):
    """An identifier failed local validation; nothing was sent.

    Attributes:
        parameter: The name of the offending parameter (``workspace_id``, ...).
        value: The rejected value, as given.
        reason: Why it was rejected, in words.
    """

    def __init__(self, parameter: str, value: object, reason: str) -> None:
        self.parameter = parameter
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid {parameter} {shown}: {reason}")

    def __reduce__(self) -> tuple[type[InvalidIdentifierError], tuple[str, object, str]]:
        # The value may be anything a caller's input held (a lock, a socket): it travels
        # as itself only when it is plain data, else as its repr.
        value = self.value if isinstance(self.value, _PLAIN) else repr(self.value)
        return (type(self), (self.parameter, value, self.reason))


class APIError(AsyncDeleterError):
    """The remote side, or the network to it, did not let the call succeed.

    Attributes:
        status: The HTTP status, or ``None`` when no answer arrived.
        error_code: The service's error code (``common.01000001``, ``APIG.1002``, ...).
        error_msg: The service's message.
        solution_msg: The service's suggested fix, when it gave one.
        request_id: The ``X-Request-Id`` of the last answer, for Huawei support.
        attempts: How many requests the call sent in all.
        retry_budget_exhausted: The call stopped retrying because the manager's retry
            budget was spent (an outage is likely); running it again later is safe.
    """

    retry_budget_exhausted: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        solution_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.solution_msg = solution_msg
        self.request_id = request_id
        self.attempts = attempts

    def __str__(self) -> str:
        parts = [self.message]
        if self.retry_budget_exhausted:
            parts.append("retry budget exhausted, not retried: safe to re-run later")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.attempts != 1:
            parts.append(f"attempts={self.attempts}")
        text = parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"
        # The message quotes the server (error_msg, a body, a request id): escape it here,
        # once, for every subclass and every way an error is shown.
        return escape_control(text)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors defeat Exception's default pickling (which calls
        # cls(*args)); rebuild from the message and the attributes instead.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class DeletionFailedError(APIError):
    """The service accepted the deletion, then marked the workspace ``DELETE_FAILED``.

    Attributes:
        workspace_id: The workspace that did not go.
        status_info: The service's reason, as given (``str()`` escapes it).
    """

    def __init__(
        self,
        message: str,
        *,
        workspace_id: str = "",
        status_info: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, request_id=request_id, attempts=attempts)
        self.workspace_id = workspace_id
        self.status_info = status_info


class MalformedResponseError(APIError):
    """The service answered 2xx with a body that is not the documented JSON.

    Attributes:
        status: The 2xx status.
        raw_body: The start of the body, for debugging.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        attempts: int = 1,
        raw_body: str = "",
    ) -> None:
        super().__init__(message, status=status, request_id=request_id, attempts=attempts)
        self.raw_body = raw_body


class APIStatusError(APIError):
    """The server answered with a status that is not a success.

    Attributes:
        raw_body: The first ``RAW_BODY_KEPT`` characters of the body, for debugging.
        retry_after: The ``Retry-After`` the server asked for, in seconds, if any.
    """

    status: int

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: str | None = None,
        error_msg: str | None = None,
        solution_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
        raw_body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            error_code=error_code,
            error_msg=error_msg,
            solution_msg=solution_msg,
            request_id=request_id,
            attempts=attempts,
        )
        self.raw_body = raw_body[:RAW_BODY_KEPT]
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the service rejected the request as malformed. Never retried."""


class AuthenticationError(APIStatusError):
    """401: the token or signature was refused."""


class PermissionDeniedError(APIStatusError):
    """403: the credentials may not do this. Never retried."""


class NotFoundError(APIStatusError):
    """404 on a first attempt, with evidence: the resource is missing and its parent exists.

    Only the service's own "missing" answer, checked against its parent (or a listing),
    raises this: a wrong endpoint, a mistyped workspace or an answer that could not be
    checked raise the three errors below, none of which is a ``NotFoundError``, so
    ``except NotFoundError: pass`` cannot hide them.
    """


class EndpointNotServedError(APIStatusError):
    """The endpoint does not serve this API: the gateway's "no such API" 404 (or a proxy's).

    The request never reached the service, so nothing was deleted and nothing is known to
    be gone. Fix the endpoint (or the region) named by ``setting``.

    Attributes:
        endpoint: The base URL that answered.
        setting: The argument that chose it (``endpoints.fabric``, ``region``...).
    """

    endpoint: str = ""
    setting: str = ""


class ParentNotFoundError(APIStatusError):
    """The container the call names does not exist: a Fabric workspace, a ModelArts project.

    Its items were not deleted and are not known to be gone (a mistyped workspace id, say).
    ``status``, ``error_code`` and ``error_msg`` are the service's answer.

    Attributes:
        parent_kind: ``"workspace"`` or ``"project"``.
        parent_id: The id that does not exist.
        setting: The argument that named it (``workspace_id``, ``project_id``).
    """

    parent_kind: str = ""
    parent_id: str = ""
    setting: str = ""


class UnverifiedNotFoundError(APIStatusError):
    """The service answered 404, and asyncdeleter could not check what it meant.

    Its parent could not be shown to exist (an empty listing, a refusal, a stop, the
    deadline), or a listing contradicted the 404. The resource may still be there: the
    item failed, and running it again is safe.

    Attributes:
        reason: Why the 404 could not be taken as evidence.
    """

    reason: str = ""


_E = TypeVar("_E", bound="APIStatusError")


def raise_error(error: APIError) -> NoReturn:
    """Raise an error made by the request path, its chain exactly as built.

    Its ``__cause__`` was set when it was made (a redacted ``TransportError``, or None):
    raising it "from" that again keeps the chain, and nothing else.
    """
    raise error from error.__cause__


def reclassified(error: APIStatusError, cls: type[_E], message: str, **attributes: str) -> _E:
    """``error``'s answer (status, code, message, request id...) as a ``cls`` saying ``message``.

    For a 404 whose meaning was found out after it was read: what the service said stays
    on the new error's attributes, so a report keeps it.
    """
    new = cls(
        message,
        status=error.status,
        error_code=error.error_code,
        error_msg=error.error_msg,
        solution_msg=error.solution_msg,
        request_id=error.request_id,
        attempts=error.attempts,
        raw_body=error.raw_body,
        retry_after=error.retry_after,
    )
    new.retry_budget_exhausted = error.retry_budget_exhausted
    for name, value in attributes.items():
        setattr(new, name, value)
    return new


class RequestTimeoutError(APIStatusError):
    """408: the service timed out handling the request (retried)."""


class RateLimitError(APIStatusError):
    """429: the gateway throttled the tenant (retried, honouring ``Retry-After``)."""


class ServerError(APIStatusError):
    """5xx: the service or the gateway in front of it failed."""


class InternalServerError(ServerError):
    """500: the service failed internally (retried)."""


class APIConnectionError(APIError):
    """No usable answer arrived: connection refused, reset or dropped, TLS failure.

    Its ``__cause__`` is a ``TransportError`` naming what the transport raised.
    """


class APITimeoutError(APIConnectionError):
    """A connect or read timeout, or the call's overall ``max_time``, ran out."""


_STATUS_ERRORS: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    429: RateLimitError,
    500: InternalServerError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """Return the most specific ``APIStatusError`` subclass for ``status``."""
    cls = _STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    if 500 <= status <= 599:
        return ServerError
    return APIStatusError


class TransportError(Exception):
    """What the transport raised under an ``APIConnectionError``, redacted.

    It keeps the original exception's type and message (``str()``, which for aiohttp's
    exceptions names the host and the OS error) and drops the rest: the original and its
    own chain hold the request headers, and with them the credentials.

    Attributes:
        type_name: The qualified name of the original exception's type.
    """

    def __init__(self, type_name: str, message: str = "") -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}" if self.message else self.type_name
        return escape_control(text)
