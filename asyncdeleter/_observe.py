"""Watching attempts: the ``on_request``/``on_response`` hooks and, when on, OpenTelemetry.

The request path (``_request``) asks for an ``Observer`` only when the manager has a hook
or tracing: without either, it holds ``None`` and pays one attribute check per attempt.
``error_type`` is the one place that says whether an attempt failed, for the hooks' records,
the spans and the duration histogram alike: a 404 that ``missing_ok`` (or a confirming
wait) accepts is not a failure.

OpenTelemetry lives in ``_otel``, which the manager imports only when tracing is asked
for and the ``otel`` extra is installed: without it nothing of OpenTelemetry is ever
imported. ``_otel`` names failures with ``error_type`` from here, and this module never
imports ``_otel`` (only its type), so the two form no cycle.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from asyncdeleter._calls import Answer, Call, Failure
from asyncdeleter._records import RequestRecord
from asyncdeleter._verify import Unproven

if TYPE_CHECKING:
    from asyncdeleter._otel import Telemetry
    from asyncdeleter._transport import Reply

__all__ = ["Observer", "RequestHook", "error_type"]

_log: Final = logging.getLogger("asyncdeleter")

#: A hook: a plain callable, handed the record of one attempt.
RequestHook = Callable[[RequestRecord], object]

#: How an attempt ended, as far as the observer is told: judged, raised, or cancelled.
Ended = Answer | Failure | Unproven | BaseException


def error_type(status: int | None, ended: Ended) -> str | None:
    """Why an attempt counts as failed, or ``None`` when it did not fail.

    An accepted answer (a 2xx, or a 404 that ``missing_ok`` accepts) is no failure, whatever
    its status; an error status is named by its code (``"429"``); an attempt without a
    usable answer by its typed error's class (``"APITimeoutError"``); a cancelled one is
    ``"cancelled"``.
    """
    if isinstance(ended, Answer):
        return None
    if isinstance(ended, Unproven):
        # A 404 still to be checked: accepted if what it would end as is (gone, done).
        return None if ended.gone else "404"
    if isinstance(ended, asyncio.CancelledError):
        return "cancelled"
    error = ended.error if isinstance(ended, Failure) else ended
    if status is not None and status >= 400:
        return str(status)
    return type(error).__name__


class Observer:
    """Tells the hooks and the telemetry of each attempt; a failing hook is logged, not raised."""

    __slots__ = ("on_request", "on_response", "telemetry")

    def __init__(
        self,
        on_request: RequestHook | None,
        on_response: RequestHook | None,
        telemetry: Telemetry | None,
    ) -> None:
        self.on_request = on_request
        self.on_response = on_response
        self.telemetry = telemetry

    @classmethod
    def wanted(
        cls,
        on_request: RequestHook | None,
        on_response: RequestHook | None,
        telemetry: Telemetry | None,
    ) -> Observer | None:
        """An observer, or ``None`` when there is nothing to tell (the cheap path)."""
        if on_request is None and on_response is None and telemetry is None:
            return None
        return cls(on_request, on_response, telemetry)

    def watching(self) -> bool:
        """Whether an attempt now has anyone to tell: a hook, or telemetry with a provider.

        An application with the OpenTelemetry API but no provider set pays this check
        per attempt, and nothing else.
        """
        telemetry = self.telemetry
        return (
            self.on_request is not None
            or self.on_response is not None
            or (telemetry is not None and (telemetry.tracing_set() or telemetry.metrics_set()))
        )

    def sending(self, call: Call, headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """An attempt of ``call`` is about to go out with ``headers``.

        Returns:
            What ``ended`` needs back (the attempt's span, if any), and the headers to send
            (with the trace context added when a span records).
        """
        # The hook first: whatever it raises, no span has been started that would not end.
        if self.on_request is not None:
            _tell(self.on_request, _record(call))
        span = None
        if self.telemetry is not None:
            span, headers = self.telemetry.attempt_started(call, headers)
        return span, headers

    def ended(
        self, span: Any, call: Call, reply: Reply | None, ended: Ended, elapsed: float
    ) -> None:
        """The attempt that ``sending`` announced has ended (and been judged) as ``ended``."""
        status = reply.status if reply is not None else None
        request_id = reply.request_id if reply is not None else None
        failed = error_type(status, ended)
        if self.telemetry is not None:
            self.telemetry.attempt_ended(span, call, status, failed, request_id, elapsed)
        if self.on_response is not None:
            _tell(
                self.on_response,
                _record(
                    call, status=status, request_id=request_id, elapsed=elapsed, error_type=failed
                ),
            )


def _record(call: Call, **ending: Any) -> RequestRecord:
    """The record of ``call``'s current attempt; ``ending`` says how it ended, if it has."""
    op = call.op
    return RequestRecord(
        operation=op.label,
        api=op.name,
        target=call.target,
        method=op.method,
        url_template=op.path,
        attempt=call.attempts,
        **ending,
    )


def _tell(hook: RequestHook, record: RequestRecord) -> None:
    try:
        result = hook(record)
    except Exception:  # noqa: BLE001 - a user's hook must not break the call
        _log.exception("request hook %r failed; the call goes on", hook)
        return
    if result is not None and inspect.isawaitable(result):
        # A sync wrapper around a coroutine function slipped past the check when the
        # manager was built: its coroutine would never run. Say so, and close it.
        if inspect.iscoroutine(result):
            result.close()
        _log.error(
            "request hook %r returned an awaitable, which was not awaited: hooks are "
            "plain callables (schedule async work yourself, e.g. with a task)",
            hook,
        )
