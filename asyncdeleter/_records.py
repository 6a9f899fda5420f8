"""The frozen records that hooks are handed: plain data, never a header value or a secret.

A module of its own so that ``_config`` (which names them in ``RetryPolicy``) and the
request path (which builds them) both import it, and not each other.
"""

from __future__ import annotations

import attrs

__all__ = ["RequestRecord", "RetryDetails"]


@attrs.frozen(kw_only=True)
class RetryDetails:
    """What a retry hook is told, just before the manager waits and tries again.

    Attributes:
        operation: The public method, such as ``close_session`` or ``show_workspace``.
        target: The ids the call is about, such as ``ws-1/sess-9``.
        attempt: The number of the attempt that just failed (1 for the first).
        wait: How long the manager will now wait, in seconds.
        cause: The typed error of the failed attempt.
        status: Its HTTP status, or ``None`` when no answer arrived.
    """

    operation: str
    target: str
    attempt: int
    wait: float
    cause: BaseException
    status: int | None


@attrs.frozen(kw_only=True)
class RequestRecord:
    """What ``on_request`` and ``on_response`` hooks are told of one attempt (one request).

    ``on_request`` gets it just before the request goes out (``status``, ``request_id``,
    ``elapsed`` and ``error_type`` are then ``None``); ``on_response`` once the attempt has
    ended and been judged, whether an answer arrived or not. No header value, credential or
    body is ever in it.

    Attributes:
        operation: The public method, such as ``close_session`` or ``show_workspace``.
        api: The service's name of the call, such as ``CloseSqlSession``.
        target: The ids the call is about, such as ``ws-1/sess-9``.
        method: ``DELETE`` or ``GET``.
        url_template: The API's path template, such as
            ``/v1/{project_id}/workspaces/{workspace_id}``: the same for every target.
        attempt: The number of this attempt of the call (1 for the first).
        status: The HTTP status, or ``None`` when no answer arrived (or not yet).
        request_id: The answer's ``X-Request-Id``, if any: as the server sent it (only
            credentials cut out), so escape it before printing it to a terminal.
        elapsed: Seconds from sending to the end of the attempt (``on_response`` only).
        error_type: Why the attempt counts as failed: the status as text (``"429"``), or
            the typed error's class name when no usable answer arrived
            (``"APITimeoutError"``, ``"cancelled"``); ``None`` when it did not fail, which
            includes a 404 that ``missing_ok`` (or a confirming wait) accepts.
    """

    operation: str
    api: str
    target: str
    method: str
    url_template: str
    attempt: int
    status: int | None = None
    request_id: str | None = None
    elapsed: float | None = None
    error_type: str | None = None
