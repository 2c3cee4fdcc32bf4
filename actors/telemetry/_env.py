"""Telemetry built from the environment: the ``OTEL_*`` exporters and the ``/metrics`` reader."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from actors.metrics import Exposition

from ._instruments import Telemetry

__all__ = ["TENANT_LABEL_ENV", "configure_from_env"]

_log = logging.getLogger("actors.telemetry")

TENANT_LABEL_ENV: Final = "TGQR_METRICS_TENANT_LABEL"


def configure_from_env(env: Mapping[str, str] = os.environ, *, scrape: bool = False) -> Telemetry:
    """A :class:`Telemetry` with exporters chosen by ``OTEL_METRICS_EXPORTER`` and
    ``OTEL_TRACES_EXPORTER`` (comma-separated: ``otlp``, ``console`` or ``none``, default
    ``none``). ``otlp`` is OTLP over HTTP (``http/protobuf``) to ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (or the per-signal ``..._TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``; default
    ``http://localhost:4318``); the exporter reads its other ``OTEL_EXPORTER_OTLP_*`` settings
    (headers, timeout, certificates) from the process environment. It needs the ``otlp`` extra
    (``pip install 'tgqr[otlp]'``); without it, or with ``grpc`` asked for, that signal
    exports nothing and one warning line says why.

    ``scrape``: also keep a pull reader for ``/metrics`` (:attr:`Telemetry.exposition`);
    ``OTEL_*`` variables do not turn it off (``TGQR_METRICS=off`` does, at the caller).
    ``OTEL_SDK_DISABLED=true`` turns the exporters off. Unknown exporters fall back to none
    with one warning line. ``TGQR_METRICS_TENANT_LABEL=1`` labels
    tenant-scoped series with the tenant, with one warning line (a series per tenant). Call
    :meth:`Telemetry.shutdown` at exit to flush.
    """
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    metric_exporters = set() if disabled else _exporters(env, "OTEL_METRICS_EXPORTER")
    trace_exporters = set() if disabled else _exporters(env, "OTEL_TRACES_EXPORTER")
    unsupported = sorted((metric_exporters | trace_exporters) - {"console", "otlp"})
    if unsupported:
        _log.warning(
            "OpenTelemetry exporter(s) %s not known (otlp, console, none); using none instead",
            ", ".join(unsupported),
        )
    tenant_label = env.get(TENANT_LABEL_ENV, "").strip().lower() in {"1", "true", "yes"}
    if tenant_label:
        _log.warning(
            "%s is on: every tenant-scoped metric gets a series per tenant (up to 2000 per "
            "metric); keep it off with many tenants",
            TENANT_LABEL_ENV,
        )
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "tgqr")})
    owned: list[SdkMeterProvider | SdkTracerProvider] = []
    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    readers: list[MetricReader] = []
    pull = InMemoryMetricReader() if scrape else None
    if pull is not None:
        readers.append(pull)
    if "console" in metric_exporters:
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    if "otlp" in metric_exporters and (metric_otlp := _otlp_metrics(env)) is not None:
        readers.append(PeriodicExportingMetricReader(metric_otlp))
    if readers:
        sdk_meters = SdkMeterProvider(
            metric_readers=readers, resource=resource, shutdown_on_exit=False
        )
        meter_provider = sdk_meters
        owned.append(sdk_meters)
    span_exporters: list[SpanExporter] = []
    if "console" in trace_exporters:
        span_exporters.append(ConsoleSpanExporter())
    if "otlp" in trace_exporters and (span_otlp := _otlp_spans(env)) is not None:
        span_exporters.append(span_otlp)
    if span_exporters:
        sdk_tracer = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
        for exporter in span_exporters:
            sdk_tracer.add_span_processor(BatchSpanProcessor(exporter))
        tracer_provider = sdk_tracer
        owned.append(sdk_tracer)
    exposition = Exposition(pull) if scrape else None
    telemetry = Telemetry(
        meter_provider, tracer_provider, tenant_label=tenant_label, exposition=exposition
    )
    for provider in owned:
        telemetry.own(provider)
    return telemetry


def _exporters(env: Mapping[str, str], variable: str) -> set[str]:
    names = {name.strip().lower() for name in env.get(variable, "none").split(",")}
    return names - {"", "none"}


def _otlp_endpoint(env: Mapping[str, str], signal: str) -> str | None:
    """The signal's endpoint as the OTLP spec composes it (None: the exporter's default),
    or raises ValueError for a protocol other than http/protobuf."""
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r} (only http/protobuf is supported)")
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")
    return f"{base}/v1/{signal}" if base else None


def _otlp_spans(env: Mapping[str, str]) -> SpanExporter | None:
    try:
        endpoint = _otlp_endpoint(env, "traces")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except (ImportError, ValueError) as exc:
        _no_otlp("traces", exc)
        return None
    return OTLPSpanExporter(endpoint=endpoint)


def _otlp_metrics(env: Mapping[str, str]) -> MetricExporter | None:
    try:
        endpoint = _otlp_endpoint(env, "metrics")
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except (ImportError, ValueError) as exc:
        _no_otlp("metrics", exc)
        return None
    return OTLPMetricExporter(endpoint=endpoint)


def _no_otlp(signal: str, exc: Exception) -> None:
    why = "not installed (pip install 'tgqr[otlp]')" if isinstance(exc, ImportError) else exc
    _log.warning("OTLP %s exporter: %s; exporting no %s", signal, why, signal)
