"""Fixtures of the cnats.otel tests: an SDK tracer provider with an in-memory span exporter, a meter provider with
an in-memory metric reader, and an instrumented connection reporting to them (a real nats-server throughout)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from helpers.core import eventually
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from cnats import NatsConnection
from cnats.otel import instrument, uninstrument


class Spans:
    """The finished spans of one test, with the look-ups the tests need."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def named(self, name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name and (kind is None or s.kind == kind)]

    def of_kind(self, kind: SpanKind) -> list[ReadableSpan]:
        return [s for s in self.all() if s.kind == kind]

    async def wait(self, name: str, count: int = 1, kind: SpanKind | None = None) -> list[ReadableSpan]:
        """The spans named ``name`` once there are ``count`` of them (polled, with a deadline)."""
        await eventually(lambda: len(self.named(name, kind)) >= count, what=f"{count} span(s) {name!r}")
        return self.named(name, kind)

    def clear(self) -> None:
        self._exporter.clear()


class Metrics:
    """The data points the in-memory reader collects, by metric name."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def points(self, name: str) -> list[Any]:
        data = self._reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def total(self, name: str, where: dict[str, Any] | None = None) -> float:
        """Sum of a counter's points (or count of a histogram's) whose attributes include ``where``."""
        total = 0.0
        for point in self.points(name):
            point_attributes = dict(point.attributes or {})
            if all(point_attributes.get(key) == value for key, value in (where or {}).items()):
                total += point.value if hasattr(point, "value") else point.count
        return total


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Spans:
    return Spans(exporter)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def measured(reader: InMemoryMetricReader) -> Metrics:
    return Metrics(reader)


@pytest.fixture
async def inc(
    nc: NatsConnection, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> AsyncIterator[NatsConnection]:
    """``nc``, instrumented with the test's providers."""
    instrument(nc, tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield nc
    uninstrument(nc)
