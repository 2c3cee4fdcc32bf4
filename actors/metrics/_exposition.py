"""Prometheus text for what the OpenTelemetry SDK measured, plus the process's own figures.

The service records through the OpenTelemetry API only (:mod:`actors.telemetry`); a scrape
collects a pull reader attached to the same ``MeterProvider`` and translates its cumulative
points into ``prometheus_client`` metric families, which also brings the standard
``process_*`` and ``python_gc_*`` series and the text and OpenMetrics encoders. Nothing here
starts a thread or a server: :meth:`Exposition.render` is called by whoever serves HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.core import (
    Metric as PromMetric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

__all__ = ["Exposition", "OtelCollector", "prometheus_name"]

_INVALID: Final = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(name: str) -> str:
    """``name`` with every character Prometheus does not allow in a name replaced by ``_``
    (``otel.metric.overflow`` -> ``otel_metric_overflow``)."""
    cleaned = _INVALID.sub("_", name)
    return f"_{cleaned}" if cleaned[:1].isdigit() else cleaned


def _value(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ",".join(str(v) for v in value or ())


def _labels(
    points: Sequence[Mapping[str, AttributeValue] | None],
) -> tuple[list[str], list[list[str]]]:
    """The union of the points' attribute keys (sorted) and each point's values ("" where a
    point lacks a key, which Prometheus reads as the label being absent)."""
    keys = sorted({key for attributes in points for key in attributes or {}})
    rows = [[_value((attributes or {})[k]) if k in (attributes or {}) else "" for k in keys]
            for attributes in points]  # fmt: skip
    return [prometheus_name(k) for k in keys], rows


def _family(metric: Metric) -> PromMetric | None:
    name = prometheus_name(metric.name)
    help_text = metric.description or metric.name
    data = metric.data
    match data:
        case Sum(is_monotonic=True):
            keys, rows = _labels([p.attributes for p in data.data_points])
            counter = CounterMetricFamily(name, help_text, labels=keys)
            for point, row in zip(data.data_points, rows, strict=True):
                counter.add_metric(row, float(point.value))
            return counter
        case Sum() | Gauge():
            keys, rows = _labels([p.attributes for p in data.data_points])
            gauge = GaugeMetricFamily(name, help_text, labels=keys)
            for point, row in zip(data.data_points, rows, strict=True):
                gauge.add_metric(row, float(point.value))
            return gauge
        case Histogram():
            keys, rows = _labels([p.attributes for p in data.data_points])
            histogram = HistogramMetricFamily(name, help_text, labels=keys)
            for bars, row in zip(data.data_points, rows, strict=True):
                running = 0
                buckets: list[tuple[str, float]] = []
                for bound, count in zip(bars.explicit_bounds, bars.bucket_counts, strict=False):
                    running += count
                    buckets.append((repr(float(bound)), float(running)))
                buckets.append(("+Inf", float(bars.count)))
                histogram.add_metric(row, buckets, float(bars.sum))
            return histogram
        case _:  # exponential histograms: none of ours
            return None


class OtelCollector(Collector):
    """A ``prometheus_client`` collector over an OpenTelemetry pull reader.

    Each :meth:`collect` asks the reader for a cumulative snapshot (the SDK locks while it
    copies; it never waits on IO).
    """

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[PromMetric]:
        data = self._reader.get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    family = _family(metric)
                    if family is not None:
                        yield family


class Exposition:
    """What ``/metrics`` serves: the reader's metrics and, with ``process``, the standard
    ``process_*`` / ``python_*`` figures of this process (a registry of its own, never the
    global one, so several can live in one test process)."""

    def __init__(
        self,
        reader: InMemoryMetricReader | None,
        *,
        process: bool = True,
        extra: Iterable[Collector] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        if reader is not None:
            self.registry.register(OtelCollector(reader))
        if process:
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        for collector in extra:
            self.registry.register(collector)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type: OpenMetrics when ``accept`` asks for it, else
        Prometheus text 0.0.4. Synchronous and CPU-bound (milliseconds for a few hundred
        series)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
