"""OpenTelemetry spans and metrics, for the optional ``otel`` extra (``opentelemetry-api``).

Imported only by ``_manager._telemetry``, when a manager is built with ``tracing=True``
and the package is installed. What it emits follows the HTTP client semantic conventions:

- one INTERNAL span per public call (``ModelArts.DeleteWorkspace``, say), carrying the
  operation and its target; a ``delete_workspace(wait=True)`` is one such span over the
  DELETE and every poll;
- under it, one CLIENT span per attempt, named by method and URL template (never a raw id):
  ``http.request.method``, ``server.address``, ``server.port``, ``url.full``,
  ``url.template``, ``http.response.status_code``, ``error.type`` and, on retries,
  ``http.request.resend_count``; the W3C trace context goes out with the request;
- the ``http.client.request.duration`` histogram, one measurement per attempt, sampled or
  not.

No header value, body or credential is ever an attribute; an error's text is the typed
error's message, which the request path already redacted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from asyncdeleter._calls import Answer, Call, Stopped
from asyncdeleter._errors import escape_control
from asyncdeleter._observe import error_type
from asyncdeleter._operations import FABRIC, MODELARTS
from asyncdeleter._version import __version__

__all__ = ["Telemetry"]

#: How the services are named in span names, as in Huawei Cloud's own documentation.
SERVICE_NAMES: Final = {FABRIC: "DataArtsFabric", MODELARTS: "ModelArts"}
#: The semantic conventions' advice for ``http.client.request.duration``, in seconds.
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
#: The message of an error kept on a span, at most this long.
_DESCRIPTION_KEPT: Final = 500
#: While no provider is set, how often (seconds) to look again whether one has been.
_LOOK_AGAIN_AFTER: Final = 1.0
#: A request id kept on a span, at most this long (a server's header, so any length).
_REQUEST_ID_KEPT: Final = 128

_log: Final = logging.getLogger("asyncdeleter")

#: The public call this task is inside, if any: a call the same task makes within it (the
#: polls of a confirming wait) opens no span of its own, and its attempts go under it. A
#: task started meanwhile inherits the variable, hence the task check (``CallSpan.owns``).
_CALL_SPAN: ContextVar[CallSpan | None] = ContextVar("asyncdeleter_call_span", default=None)

_duration: metrics.Histogram | None = None


def _duration_histogram() -> metrics.Histogram:
    """The process's one duration histogram (made once: instruments are per meter name)."""
    global _duration  # noqa: PLW0603 - one instrument per process, made on first use
    if _duration is None:
        meter = metrics.get_meter("asyncdeleter", __version__)
        name, unit, description = (
            "http.client.request.duration",
            "s",
            "Duration of HTTP client requests.",
        )
        try:
            _duration = meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )
        except TypeError:  # an API before 1.23: no bucket advice, the SDK's own buckets
            _duration = meter.create_histogram(name, unit=unit, description=description)
    return _duration


def _http_attributes(call: Call) -> dict[str, Any]:
    """What an attempt's span and its duration share: method, server, URL template."""
    op = call.op
    url = call.url
    return {
        "http.request.method": op.method,
        "server.address": url.host or "",
        "server.port": url.port or 0,
        "url.template": op.path,
    }


def _span_text(value: str, longest: int) -> str:
    """Server text made fit for a span: control characters escaped, length capped."""
    return escape_control(value[:longest])


#: The providers the API hands out while the application has set none: with them, spans
#: and measurements go nowhere, so none are made (the cost of an application that has the
#: API through some dependency but never set OpenTelemetry up).
_UNSET_TRACING: Final = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
try:  # the metrics API's proxy has no public name
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _UNSET_METRICS: tuple[type, ...] = (_ProxyMeterProvider, metrics.NoOpMeterProvider)
except ImportError:  # pragma: no cover - another layout: measure, at the proxy's cost
    _UNSET_METRICS = (metrics.NoOpMeterProvider,)


class Telemetry:
    """One manager's tracer and histogram; each ``call_span`` is a public call's span.

    Until the application sets a tracer (or meter) provider, spans (or measurements) are
    skipped outright; one set after the manager was built is picked up within a second. A
    provider can be set only once per process, so once one is seen it is not looked for
    again.
    """

    def __init__(self, region: str | None) -> None:
        # A proxy until the application sets its provider: a manager built at import time
        # still traces once the application has set one up.
        self.tracer = trace.get_tracer("asyncdeleter", __version__)
        self.duration = _duration_histogram()
        self.region = region
        self._tracing_set = False
        self._metrics_set = False
        self._look_again_at = float("-inf")
        self._complained = False

    def trouble(self, what: str) -> None:
        """OpenTelemetry (an SDK's processor, a propagator) raised: log it, the call goes on.

        Tracing never changes what a call does or returns. Said once at WARNING (with the
        traceback), then at DEBUG, so a broken exporter does not flood the log.
        """
        level = logging.DEBUG if self._complained else logging.WARNING
        self._complained = True
        _log.log(level, "OpenTelemetry failed while %s; the call goes on", what, exc_info=True)

    def tracing_set(self) -> bool:
        """Whether the application has set a tracer provider (else no span is made)."""
        if not self._tracing_set:
            self._look_for_providers()
        return self._tracing_set

    def metrics_set(self) -> bool:
        """Whether the application has set a meter provider (else nothing is measured)."""
        if not self._metrics_set:
            self._look_for_providers()
        return self._metrics_set

    def _look_for_providers(self) -> None:
        """Look again, at most every ``_LOOK_AGAIN_AFTER`` seconds, for unset providers.

        Asking the API costs an environment lookup each time (it may be configured by
        variables); asked per call, that was most of what tracing cost an application
        without a provider. A provider set later is picked up within that interval.
        """
        now = time.monotonic()
        if now < self._look_again_at:
            return
        self._look_again_at = now + _LOOK_AGAIN_AFTER
        if not self._tracing_set:
            self._tracing_set = not isinstance(trace.get_tracer_provider(), _UNSET_TRACING)
        if not self._metrics_set:
            self._metrics_set = not isinstance(metrics.get_meter_provider(), _UNSET_METRICS)

    def call_span(self, call: Call) -> CallSpan:
        """The span of one public call about to be made with ``call`` (``with`` it)."""
        return CallSpan(self, call)

    def attempt_started(
        self, call: Call, headers: dict[str, str]
    ) -> tuple[tuple[Span, object] | None, dict[str, str]]:
        """Start the CLIENT span of an attempt (if its call's span records) and current it.

        Returns:
            The span and its context token (``None`` when not recording), and the headers
            to send: a copy with the trace context when a span records.
        """
        outer = _CALL_SPAN.get()
        if outer is None or not outer.owns():
            return None, headers
        outer.requests += 1
        if not outer.propagates:
            return None, headers
        span: Span | None = None
        token: object = None
        try:
            if outer.recording:
                span = self._attempt_span(call)
                token = otel_context.attach(trace.set_span_in_context(span))
            # Sampled out, there is no span of ours, but the service still hears of the
            # trace (and that it is not sampled), as every instrumented client tells it.
            sent = dict(headers)  # never the manager's cached, shared headers
            propagate.inject(sent)
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self.trouble("starting an attempt's span")
            _end(span, token)
            return None, headers
        return (None if span is None else (span, token)), sent

    def _attempt_span(self, call: Call) -> Span:
        op = call.op
        attributes = _http_attributes(call)
        attributes["url.full"] = str(call.url)
        if call.attempts > 1:
            attributes["http.request.resend_count"] = call.attempts - 1
        return self.tracer.start_span(
            f"{op.method} {op.path}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def attempt_ended(  # noqa: PLR0917 - called positionally, once per attempt
        self,
        started: tuple[Span, object] | None,
        call: Call,
        status: int | None,
        error_type: str | None,
        request_id: str | None,
        elapsed: float,
    ) -> None:
        """Record the attempt's duration; end its span, with its status."""
        try:
            if self.metrics_set():
                self._measure(call, status, error_type, elapsed)
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self.trouble("recording a request's duration")
        if started is None:
            return
        span, token = started
        try:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if request_id is not None:
                span.set_attribute(
                    "asyncdeleter.request_id", _span_text(request_id, _REQUEST_ID_KEPT)
                )
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self.trouble("ending an attempt's span")
        finally:
            _end(span, token, self)

    def _measure(
        self, call: Call, status: int | None, error_type: str | None, elapsed: float
    ) -> None:
        attributes = _http_attributes(call)
        if status is not None:
            attributes["http.response.status_code"] = status
        if error_type is not None:
            attributes["error.type"] = error_type
        self.duration.record(elapsed, attributes)


def _end(span: Span | None, token: object, telemetry: Telemetry | None = None) -> None:
    """End ``span`` and detach its context, whatever the SDK's processors raise."""
    try:
        if span is not None:
            span.end()
    except Exception:  # noqa: BLE001 - tracing must not change what a call does
        if telemetry is not None:
            telemetry.trouble("ending a span")
    finally:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]


class CallSpan:
    """The INTERNAL span of one public call: ``with telemetry.call_span(call) as span:``.

    Inside another call span of the same task (a confirming wait's polls) it does nothing:
    the outer span covers them. The calls of a span that does not record (sampled out)
    make no attempt spans (their durations are still measured), and their requests still
    carry the trace context, unsampled. ``requests`` counts the attempts sent under it,
    polls included.
    """

    __slots__ = (
        "_attach",
        "_reset",
        "_span",
        "_task",
        "_telemetry",
        "call",
        "propagates",
        "recording",
        "requests",
    )

    def __init__(self, telemetry: Telemetry, call: Call) -> None:
        self._telemetry = telemetry
        self.call = call
        self._span: Span | None = None
        self._reset: Token[CallSpan | None] | None = None
        self._attach: object = None
        self._task: asyncio.Task[Any] | None = None
        self.recording = False
        self.propagates = False  # a trace to tell the service of, sampled or not
        self.requests = 0

    def owns(self) -> bool:
        """Whether the running task is the one this span's call runs in."""
        return self._task is asyncio.current_task()

    def __enter__(self) -> CallSpan:
        outer = _CALL_SPAN.get()
        if (outer is not None and outer.owns()) or not self._telemetry.tracing_set():
            return self  # inside a call span already (it covers this), or no tracing
        call = self.call
        op = call.op
        attributes: dict[str, Any] = {
            "asyncdeleter.operation": op.label,
            "asyncdeleter.api": op.name,
            "asyncdeleter.target": call.target,
            "cloud.provider": "huawei_cloud",
        }
        region = self._telemetry.region
        if region is not None:
            attributes["cloud.region"] = region
        span: Span | None = None
        try:
            span = self._telemetry.tracer.start_span(
                f"{SERVICE_NAMES[op.service]}.{op.name}",
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            )
            self.recording = span.is_recording()
            self.propagates = span.get_span_context().is_valid
            self._attach = otel_context.attach(trace.set_span_in_context(span))
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self._telemetry.trouble("starting a call's span")
            _end(span, self._attach)
            self._attach = None
            return self
        self._span = span
        self._task = asyncio.current_task()
        self._reset = _CALL_SPAN.set(self)
        return self

    def answered(self, answer: Answer) -> None:
        """The call ended without raising: note what the service said."""
        span = self._span
        if span is None or not self.recording:
            return
        try:
            if answer.request_id is not None:
                span.set_attribute(
                    "asyncdeleter.request_id", _span_text(answer.request_id, _REQUEST_ID_KEPT)
                )
            if self.call.op.deletes:
                span.set_attribute("asyncdeleter.already_gone", answer.already_gone)
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self._telemetry.trouble("noting a call's answer")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            if self.recording:
                span.set_attribute("asyncdeleter.attempts", self.requests)
                if exc is not None:
                    _failed(span, exc)
        except Exception:  # noqa: BLE001 - tracing must not change what a call does
            self._telemetry.trouble("ending a call's span")
        finally:
            if self._reset is not None:
                _CALL_SPAN.reset(self._reset)
            _end(span, self._attach, self._telemetry)


def _failed(span: Span, exc: BaseException) -> None:
    """Mark a public call's span by how it failed (a stopped bulk item did not fail)."""
    if isinstance(exc, Stopped):
        span.set_attribute("asyncdeleter.stopped", True)
        return
    kind = error_type(None, exc)  # the attempts' own naming: "cancelled", or the class
    assert kind is not None  # noqa: S101 - an exception always names a failure
    if isinstance(exc, asyncio.CancelledError):
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        return
    message = _span_text(str(exc), _DESCRIPTION_KEPT)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, message))
    # The type and the (redacted) message only: a recorded traceback would carry the
    # text of every chained exception.
    span.add_event("exception", {"exception.type": kind, "exception.message": message})
