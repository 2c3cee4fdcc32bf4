"""OpenTelemetry for tgqr: the seed metrics, a span per command, W3C trace context in NATS headers.

Every tenant-scoped measurement carries a ``tenant`` attribute and nothing secret (no session,
password, token or key is ever an argument here). Providers are injected; :func:`configure_from_env`
builds them from the standard ``OTEL_*`` variables at the composition root. Recording never
blocks: exporters run in the SDK's own threads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["INSTRUMENTATION_NAME", "Telemetry", "configure_from_env"]

_log = logging.getLogger(__name__)

INSTRUMENTATION_NAME: Final = "tgqr"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FLOOD_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


class Telemetry:
    """The service's instruments and tracer; cheap to call from any task or thread.

    ``None`` providers mean the global ones (no-op unless something configured them).
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(INSTRUMENTATION_NAME)
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            INSTRUMENTATION_NAME
        )
        self._owned: list[SdkMeterProvider | SdkTracerProvider] = []
        self._floodwait = meter.create_counter(
            "telethon_floodwait_total", unit="1", description="Telegram flood waits"
        )
        self._floodwait_seconds = meter.create_histogram(
            "telethon_floodwait_requested_seconds",
            unit="s",
            description="Seconds Telegram asked to wait",
            explicit_bucket_boundaries_advisory=_FLOOD_BUCKETS,
        )
        self._qr_expired = meter.create_counter(
            "telethon_qr_expired_total", unit="1", description="Login attempts that expired"
        )
        self._rate_limit_hits = meter.create_counter(
            "telethon_rate_limit_hits_total", unit="1", description="Commands refused by limits"
        )
        self._qr_start = meter.create_counter(
            "auth_qr_start_total", unit="1", description="QR login attempts started"
        )
        self._qr_published = meter.create_counter(
            "auth_qr_published_total", unit="1", description="QR login tokens published"
        )
        self._qr_success = meter.create_counter(
            "auth_qr_success_total", unit="1", description="QR logins authorized"
        )
        self._restarts = meter.create_counter(
            "tgqr_actor_restarts_total", unit="1", description="Supervised actor restarts"
        )
        self._quarantined = meter.create_counter(
            "tgqr_tenant_quarantined_total",
            unit="1",
            description="Tenants found with stored messages that do not verify",
        )
        self._cleanup = meter.create_histogram(
            "telethon_session_cleanup_duration_seconds",
            unit="s",
            description="Time to disconnect a Telegram client",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._leases = meter.create_counter(
            "tgqr_session_leases_total",
            unit="1",
            description="Session leases granted, renewed and ended (by reason)",
        )
        self._refused = meter.create_counter(
            "tgqr_requests_refused_total",
            unit="1",
            description="Requests refused or dropped before any work (by endpoint and reason)",
        )
        self._nats_errors = meter.create_counter(
            "tgqr_nats_errors_total",
            unit="1",
            description="Errors a NATS connection reported (slow consumer, permission, ...)",
        )
        self._projector_lag = meter.create_gauge(
            "tgqr_projector_lag_events", unit="1", description="Events not yet projected"
        )

    def floodwait(self, tenant: str, seconds: int, method: str) -> None:
        """Telegram answered ``method`` with a flood wait of ``seconds``."""
        attributes = {"tenant": tenant, "method": method}
        self._floodwait.add(1, attributes)
        self._floodwait_seconds.record(seconds, attributes)

    def qr_expired(self, tenant: str) -> None:
        self._qr_expired.add(1, {"tenant": tenant})

    def rate_limit_hit(self, tenant: str, verb: str) -> None:
        self._rate_limit_hits.add(1, {"tenant": tenant, "verb": verb})

    def qr_start(self, tenant: str) -> None:
        self._qr_start.add(1, {"tenant": tenant})

    def qr_published(self, tenant: str) -> None:
        self._qr_published.add(1, {"tenant": tenant})

    def qr_success(self, tenant: str) -> None:
        self._qr_success.add(1, {"tenant": tenant})

    def actor_restart(self, tenant: str) -> None:
        self._restarts.add(1, {"tenant": tenant})

    def tenant_quarantined(self, tenant: str) -> None:
        self._quarantined.add(1, {"tenant": tenant})

    def session_cleanup(self, tenant: str, seconds: float) -> None:
        """A Telegram client took ``seconds`` to disconnect."""
        self._cleanup.record(seconds, {"tenant": tenant})

    def session_lease(self, tenant: str, what: str) -> None:
        """A lease was ``granted`` or ``renewed``, or ended (``released``, ``expired``...)."""
        self._leases.add(1, {"tenant": tenant, "event": what})

    def requests_refused(self, endpoint: str, reason: str) -> None:
        """A request to ``endpoint`` (``query``, ``$SRV``, ``command``...) was refused before
        any work: ``rate_limited``, ``busy`` (too many in flight), ``dropped``."""
        self._refused.add(1, {"endpoint": endpoint, "reason": reason})

    def nats_error(self, kind: str) -> None:
        """A NATS connection reported an error of ``kind`` (``slow_consumer``,
        ``permissions_violation``, ``other``); no subject or text (unbounded, client-chosen)."""
        self._nats_errors.add(1, {"kind": kind})

    def projector_lag(self, events: int) -> None:
        """The projector is ``events`` behind the stream (service-wide: no tenant)."""
        self._projector_lag.set(events)

    def command_span(
        self, tenant: str, verb: str, headers: Mapping[str, str] | None
    ) -> AbstractContextManager[str | None]:
        """A ``tgqr.command <verb>`` span around handling one command.

        Continues the W3C ``traceparent`` in ``headers`` (any case) when present, else starts a
        trace. Yields the new span's ``traceparent`` (for the events' ``trace`` field), or None
        when there is no valid span (tracing off and no incoming context; with tracing off the
        incoming context is passed on unchanged). An exception leaving the block is recorded on
        the span and re-raised.
        """
        return self._command_span(tenant, verb, headers)

    @contextmanager
    def _command_span(
        self, tenant: str, verb: str, headers: Mapping[str, str] | None
    ) -> Iterator[str | None]:
        carrier = {key.lower(): value for key, value in (headers or {}).items()}
        parent = _PROPAGATOR.extract(carrier)
        with self._tracer.start_as_current_span(
            f"tgqr.command {verb}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"tenant": tenant, "tgqr.verb": verb},
        ):
            yield self.inject_headers().get("traceparent")

    def inject_headers(self) -> dict[str, str]:
        """The current trace context as NATS headers (``traceparent``, ``tracestate``); empty
        when there is no valid current span."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier

    def shutdown(self) -> None:
        """Flush and stop the providers :func:`configure_from_env` created (blocks while the
        exporters flush); injected providers belong to the caller and are left alone."""
        for provider in self._owned:
            provider.shutdown()
        self._owned.clear()


def configure_from_env(env: Mapping[str, str] = os.environ) -> Telemetry:
    """A :class:`Telemetry` with exporters chosen by ``OTEL_METRICS_EXPORTER`` and
    ``OTEL_TRACES_EXPORTER`` (comma-separated; ``console`` or ``none``, default ``none``).

    ``OTEL_SDK_DISABLED=true`` turns both off. Other exporters (``otlp`` is not installed) fall
    back to none with one warning line. A signal without an exporter is a no-op. Call
    :meth:`Telemetry.shutdown` at exit to flush.
    """
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    metric_exporters = set() if disabled else _exporters(env, "OTEL_METRICS_EXPORTER")
    trace_exporters = set() if disabled else _exporters(env, "OTEL_TRACES_EXPORTER")
    unsupported = sorted((metric_exporters | trace_exporters) - {"console"})
    if unsupported:
        _log.warning(
            "OpenTelemetry exporter(s) %s not installed; using none instead",
            ", ".join(unsupported),
        )
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "tgqr")})
    owned: list[SdkMeterProvider | SdkTracerProvider] = []
    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    if "console" in metric_exporters:
        sdk_meters = SdkMeterProvider(
            metric_readers=[PeriodicExportingMetricReader(ConsoleMetricExporter())],
            resource=resource,
            shutdown_on_exit=False,
        )
        meter_provider = sdk_meters
        owned.append(sdk_meters)
    if "console" in trace_exporters:
        sdk_tracer = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
        sdk_tracer.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        tracer_provider = sdk_tracer
        owned.append(sdk_tracer)
    telemetry = Telemetry(meter_provider, tracer_provider)
    telemetry._owned.extend(owned)
    return telemetry


def _exporters(env: Mapping[str, str], variable: str) -> set[str]:
    names = {name.strip().lower() for name in env.get(variable, "none").split(",")}
    return names - {"", "none"}
