"""The service's instruments (the seeds' metric names) and its command spans.

Labels are bounded: a verb, a Telegram method, a failure reason, an endpoint. The tenant is a
label only when the operator asks for it (``tenant_label``: one series per tenant and metric,
up to the SDK's 2000 per instrument, then one overflow series). Nothing secret is ever an
argument here. Recording never blocks: exporters run in the SDK's own threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from actors.metrics import Exposition

from ._spans import PROPAGATOR, CommandSpan

__all__ = ["INSTRUMENTATION_NAME", "Telemetry"]

INSTRUMENTATION_NAME: Final = "tgqr"
SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0)
"""Durations in seconds; 3 and 5 are the seeds' cleanup SLO and alert thresholds."""
_FLOOD_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)
_VERBS: Final = ("start", "password", "cancel", "logout", "link")
"""The rate-limited command verbs: their refusal counters exist from the start."""

Source = Callable[[], int]


class Telemetry:
    """The service's instruments and tracer; cheap to call from any task or thread.

    ``None`` providers mean the global ones (no-op unless something configured them).
    ``exposition``: what ``/metrics`` serves (a pull reader on ``meter_provider``), if any.
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        tenant_label: bool = False,
        exposition: Exposition | None = None,
    ) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(INSTRUMENTATION_NAME)
        tracers = tracer_provider or trace.get_tracer_provider()
        self._tracer = tracers.get_tracer(INSTRUMENTATION_NAME)
        self.tracing = not isinstance(tracers, trace.NoOpTracerProvider | trace.ProxyTracerProvider)
        """Spans are recorded (worth extra work such as finding an event batch's traces)."""
        self.tenant_label = tenant_label
        self.exposition = exposition
        self._owned: list[SdkMeterProvider | SdkTracerProvider] = []
        self._sources: dict[str, Source] = {}
        counter = meter.create_counter
        self._floodwait = counter(
            "telethon_floodwait_total", unit="1", description="Telegram flood waits"
        )
        self._floodwait_seconds = meter.create_histogram(
            "telethon_floodwait_requested_seconds",
            unit="s",
            description="Seconds Telegram asked to wait",
            explicit_bucket_boundaries_advisory=_FLOOD_BUCKETS,
        )
        self._qr_expired = counter(
            "telethon_qr_expired_total", unit="1", description="Login attempts that expired"
        )
        self._rate_limit_hits = counter(
            "telethon_rate_limit_hits_total", unit="1", description="Commands refused by limits"
        )
        self._qr_start = counter(
            "auth_qr_start_total", unit="1", description="QR login attempts started"
        )
        self._qr_published = counter(
            "auth_qr_published_total", unit="1", description="QR login tokens published"
        )
        self._qr_success = counter(
            "auth_qr_success_total", unit="1", description="QR logins authorized"
        )
        self._qr_failed = counter(
            "auth_qr_failed_total", unit="1", description="QR login attempts failed (by reason)"
        )
        self._restarts = counter(
            "tgqr_actor_restarts_total", unit="1", description="Supervised actor restarts"
        )
        self._quarantined = counter(
            "tgqr_tenant_quarantined_total",
            unit="1",
            description="Tenants found with stored messages that do not verify",
        )
        self._cleanup = meter.create_histogram(
            "telethon_session_cleanup_duration_seconds",
            unit="s",
            description="Time to disconnect a Telegram client",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self._leases = counter(
            "tgqr_session_leases_total",
            unit="1",
            description="Session leases granted, renewed and ended (by event)",
        )
        self._refused = counter(
            "tgqr_requests_refused_total",
            unit="1",
            description="Requests refused or dropped before any work (by endpoint and reason)",
        )
        self._nats_errors = counter(
            "tgqr_nats_errors_total",
            unit="1",
            description="Errors a NATS connection reported (slow consumer, permission, ...)",
        )
        self._backups = counter(
            "tgqr_backups_total", unit="1", description="Automatic backups (by outcome)"
        )
        self._dcs: Callable[[], Iterable[tuple[int, bool]]] | None = None
        meter.create_observable_gauge(
            "tgqr_telegram_dc_down",
            callbacks=[self._observe_dcs],
            unit="1",
            description="1 while this instance's circuit breaker of a Telegram DC is open",
        )
        for name, description in (
            ("tgqr_projector_lag_events", "Events read from the log but not yet projected"),
            ("tgqr_live_actors", "Tenant actors running now"),
            ("tgqr_owned_partitions", "Partitions of the tenants this instance owns now"),
        ):
            meter.create_observable_gauge(
                name, callbacks=[self._observer(name)], unit="1", description=description
            )
        if not tenant_label:
            # Series that exist from the start: rate() and increase() then see the first event
            # (Prometheus cannot tell a counter that appears at 3 from one that grew by 3).
            for zero in (self._qr_expired, self._qr_start, self._qr_published, self._qr_success,
                         self._restarts, self._quarantined):  # fmt: skip
                zero.add(0)
            for outcome in ("ok", "failed"):
                self._backups.add(0, {"outcome": outcome})
            for verb in _VERBS:
                self._rate_limit_hits.add(0, {"verb": verb})

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            source = self._sources.get(name)
            return [] if source is None else [Observation(source())]

        return observe

    def _observe_dcs(self, _: CallbackOptions) -> Iterable[Observation]:
        states = self._dcs() if self._dcs is not None else ()
        return [Observation(int(down), {"dc": str(dc)}) for dc, down in states]

    def watch_dcs(self, states: Callable[[], Iterable[tuple[int, bool]]]) -> None:
        """Read ``(dc, down)`` of each Telegram DC dialled so far at each collection."""
        self._dcs = states

    def backup(self, outcome: str) -> None:
        """An automatic backup ended: ``ok`` or ``failed``."""
        self._backups.add(1, {"outcome": outcome})

    def watch(
        self,
        *,
        projector_lag: Source | None = None,
        live_actors: Source | None = None,
        owned_partitions: Source | None = None,
    ) -> None:
        """Read these figures at each collection (a scrape, an export): the projector's lag in
        events and the number of live actors. Each callable must be cheap, never block, and be
        safe to call from another thread (collections run in exporter and worker threads:
        reading ``len()`` of a container or an int attribute is)."""
        if projector_lag is not None:
            self._sources["tgqr_projector_lag_events"] = projector_lag
        if live_actors is not None:
            self._sources["tgqr_live_actors"] = live_actors
        if owned_partitions is not None:
            self._sources["tgqr_owned_partitions"] = owned_partitions

    def _tenant(self, tenant: str, **more: str) -> dict[str, str]:
        return {"tenant": tenant, **more} if self.tenant_label else more

    def floodwait(self, tenant: str, seconds: int, method: str) -> None:
        """Telegram answered ``method`` with a flood wait of ``seconds``."""
        attributes = self._tenant(tenant, method=method)
        self._floodwait.add(1, attributes)
        self._floodwait_seconds.record(seconds, attributes)

    def qr_expired(self, tenant: str) -> None:
        self._qr_expired.add(1, self._tenant(tenant))

    def rate_limit_hit(self, tenant: str, verb: str) -> None:
        self._rate_limit_hits.add(1, self._tenant(tenant, verb=verb))

    def qr_start(self, tenant: str) -> None:
        self._qr_start.add(1, self._tenant(tenant))

    def qr_published(self, tenant: str) -> None:
        self._qr_published.add(1, self._tenant(tenant))

    def qr_success(self, tenant: str) -> None:
        self._qr_success.add(1, self._tenant(tenant))

    def login_failed(self, tenant: str, reason: str) -> None:
        """An attempt ended in ``LoginFailed``; ``reason`` is one of its stable codes."""
        self._qr_failed.add(1, self._tenant(tenant, reason=reason))

    def actor_restart(self, tenant: str) -> None:
        self._restarts.add(1, self._tenant(tenant))

    def tenant_quarantined(self, tenant: str) -> None:
        self._quarantined.add(1, self._tenant(tenant))

    def session_cleanup(self, tenant: str, seconds: float) -> None:
        """A Telegram client took ``seconds`` to disconnect."""
        self._cleanup.record(seconds, self._tenant(tenant))

    def session_lease(self, tenant: str, what: str) -> None:
        """A lease was ``granted`` or ``renewed``, or ended (``released``, ``expired``...)."""
        self._leases.add(1, self._tenant(tenant, event=what))

    def requests_refused(self, endpoint: str, reason: str) -> None:
        """A request to ``endpoint`` (``query``, ``$SRV``, ``command``...) was refused before
        any work: ``rate_limited``, ``busy`` (too many in flight), ``dropped``."""
        self._refused.add(1, {"endpoint": endpoint, "reason": reason})

    def nats_error(self, kind: str) -> None:
        """A NATS connection reported an error of ``kind`` (``slow_consumer``,
        ``permissions_violation``, ``other``); no subject or text (unbounded, client-chosen)."""
        self._nats_errors.add(1, {"kind": kind})

    def start_command(
        self, tenant: str, verb: str, headers: Mapping[str, str] | None
    ) -> CommandSpan:
        """Start a ``tgqr.command <verb>`` span; the caller ends it (:meth:`CommandSpan.end`)
        once the command's first event is stored or its reply is sent.

        Continues the W3C ``traceparent`` in ``headers`` (any case) when present, else starts
        a trace. Its ``traceparent`` goes into the events; None when there is no valid span
        (tracing off and no incoming context; with tracing off the incoming context is passed
        on unchanged).
        """
        carrier = {key.lower(): value for key, value in (headers or {}).items()}
        span = self._tracer.start_span(
            f"tgqr.command {verb}",
            context=PROPAGATOR.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"tenant": tenant, "tgqr.verb": verb},
        )
        return CommandSpan(span)

    def command_span(
        self, tenant: str, verb: str, headers: Mapping[str, str] | None
    ) -> AbstractContextManager[str | None]:
        """:meth:`start_command` as a block: the span ends when the block does. Yields its
        ``traceparent``; an exception leaving the block is recorded and re-raised."""
        return self._command_span(tenant, verb, headers)

    @contextmanager
    def _command_span(
        self, tenant: str, verb: str, headers: Mapping[str, str] | None
    ) -> Iterator[str | None]:
        command = self.start_command(tenant, verb, headers)
        with trace.use_span(command.span, end_on_exit=True):
            yield command.traceparent

    def batch_span(self, events: int, traceparents: Iterable[str]) -> AbstractContextManager[None]:
        """A ``tgqr.project`` span around projecting one batch of ``events``, linked to the
        spans named by the events' ``traceparents`` (a batch holds many traces)."""
        return self._batch_span(events, traceparents)

    @contextmanager
    def _batch_span(self, events: int, traceparents: Iterable[str]) -> Iterator[None]:
        links = [
            trace.Link(context)
            for context in (
                trace.get_current_span(PROPAGATOR.extract({"traceparent": tp})).get_span_context()
                for tp in dict.fromkeys(traceparents)
            )
            if context.is_valid
        ][:128]
        with self._tracer.start_as_current_span(
            "tgqr.project", links=links, attributes={"tgqr.events": events}
        ):
            yield

    def inject_headers(self) -> dict[str, str]:
        """The current trace context as NATS headers (``traceparent``, ``tracestate``); empty
        when there is no valid current span."""
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
        return carrier

    def shutdown(self) -> None:
        """Flush and stop the providers :func:`configure_from_env` created (blocks while the
        exporters flush); injected providers belong to the caller and are left alone."""
        for provider in self._owned:
            provider.shutdown()
        self._owned.clear()

    def own(self, provider: SdkMeterProvider | SdkTracerProvider) -> None:
        """Shut ``provider`` down with :meth:`shutdown` (for the code that built it)."""
        self._owned.append(provider)
