"""OpenTelemetry's SDK, installed once for this process, and what it caught per test.

A tracer and a meter provider can be set only once per process, so they are set the first
time a test here asks for them, and each test reads (and clears) what was caught. The
directory runs after tests/e2e and tests/emulator: those run with no SDK, which is the
path most users have (the API installed, no provider), and tests/unit does not trace.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


class _Watch(SpanProcessor):
    """Knows the spans started and not yet ended; raises in ``on_start``/``on_end`` on demand
    (an application's broken processor, which must never change what a call does)."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}
        self.fail_on: str | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = span.name
        if self.fail_on == "start":
            raise RuntimeError("a broken span processor (on_start)")

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self.open.pop(span.context.span_id, None)
        if self.fail_on == "end":
            raise RuntimeError("a broken span processor (on_end)")


_WATCH = _Watch()


@functools.cache
def _install() -> None:
    provider = TracerProvider()
    provider.add_span_processor(_WATCH)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))


class Caught:
    """The spans finished, and the metric points recorded, during one test."""

    def open_spans(self) -> list[str]:
        """The names of spans started during this test and never ended."""
        return sorted(_WATCH.open.values())

    def break_processor(self, where: str | None) -> None:
        """Make a span processor raise on ``"start"`` or ``"end"`` (``None``: stop)."""
        _WATCH.fail_on = where

    def spans(self) -> list[ReadableSpan]:
        return list(_EXPORTER.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def durations(self) -> list[tuple[dict[str, object], int]]:
        """The ``http.client.request.duration`` points: (attributes, count) each.

        Cumulative over the process: tell a test's points apart by ``server.port`` (each
        test's emulator has its own).
        """
        data = _READER.get_metrics_data()
        points: list[tuple[dict[str, object], int]] = []
        if data is None:
            return points
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "http.client.request.duration":
                        points.extend(
                            (dict(point.attributes or {}), point.count)  # type: ignore[union-attr]
                            for point in metric.data.data_points
                        )
        return points


@pytest.fixture
def otel() -> Iterator[Caught]:
    """OpenTelemetry's SDK with in-memory export; what this test's managers emitted."""
    _install()
    _EXPORTER.clear()
    _WATCH.open.clear()
    _WATCH.fail_on = None
    _READER.get_metrics_data()  # cumulative: read now, so a test can compare before/after
    yield Caught()
    _WATCH.fail_on = None
    _EXPORTER.clear()
