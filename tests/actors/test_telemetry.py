"""Metrics and command spans, read back through the SDK's in-memory reader and exporter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from actors.telemetry import Telemetry

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{INCOMING_TRACE}-00f067aa0ba902b7-01"
ALLOWED_ATTRIBUTES = {"tenant", "method", "verb", "reason"}


@dataclass
class Harness:
    telemetry: Telemetry
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded yet
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def all_attributes(self) -> list[dict[str, Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            dict(point.attributes or {})
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
        ]


def make_harness(*, tenant_label: bool) -> Iterator[Harness]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    spans = InMemorySpanExporter()
    tracers = TracerProvider(shutdown_on_exit=False)
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    yield Harness(Telemetry(meters, tracers, tenant_label=tenant_label), reader, spans)
    meters.shutdown()
    tracers.shutdown()


@pytest.fixture
def harness() -> Iterator[Harness]:
    """Tenant labels on (the operator's opt-in), so per-tenant recording can be read back."""
    yield from make_harness(tenant_label=True)


@pytest.fixture
def bounded() -> Iterator[Harness]:
    """The default: no tenant label."""
    yield from make_harness(tenant_label=False)


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (lambda t: t.qr_expired("acme"), "telethon_qr_expired_total"),
        (lambda t: t.qr_start("acme"), "auth_qr_start_total"),
        (lambda t: t.qr_published("acme"), "auth_qr_published_total"),
        (lambda t: t.qr_success("acme"), "auth_qr_success_total"),
        (lambda t: t.actor_restart("acme"), "tgqr_actor_restarts_total"),
    ],
)
def test_each_counter_counts_per_tenant(harness: Harness, record: Any, name: str) -> None:
    """Every counter adds one per call under the tenant's attribute."""
    record(harness.telemetry)
    record(harness.telemetry)
    [point] = harness.points(name)
    assert point.value == 2
    assert dict(point.attributes) == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (lambda t: t.qr_expired("acme"), "telethon_qr_expired_total"),
        (lambda t: t.qr_start("acme"), "auth_qr_start_total"),
        (lambda t: t.qr_published("acme"), "auth_qr_published_total"),
        (lambda t: t.qr_success("acme"), "auth_qr_success_total"),
        (lambda t: t.actor_restart("acme"), "tgqr_actor_restarts_total"),
        (lambda t: t.tenant_quarantined("acme"), "tgqr_tenant_quarantined_total"),
    ],
)
def test_by_default_counters_have_no_tenant_and_start_at_zero(
    bounded: Harness, record: Any, name: str
) -> None:
    """Without the opt-in, one series per counter (however many tenants), there from the start
    at 0 so that Prometheus' rate() sees the first increment."""
    [zero] = bounded.points(name)
    assert zero.value == 0
    record(bounded.telemetry)
    bounded.telemetry.qr_start("other")
    record(bounded.telemetry)
    [point] = bounded.points(name)
    assert point.value == 2 + (name == "auth_qr_start_total")
    assert dict(point.attributes) == {}


def test_no_tenant_attribute_anywhere_by_default(bounded: Harness) -> None:
    """Every instrument, fed many tenants, records no ``tenant`` attribute: the series count
    does not grow with the tenants."""
    t = bounded.telemetry
    for n in range(50):
        tenant = f"t{n}"
        t.floodwait(tenant, 5, "auth.ExportLoginTokenRequest")
        t.qr_expired(tenant)
        t.rate_limit_hit(tenant, "start")
        t.qr_start(tenant)
        t.qr_published(tenant)
        t.qr_success(tenant)
        t.login_failed(tenant, "crashed")
        t.actor_restart(tenant)
        t.tenant_quarantined(tenant)
        t.session_cleanup(tenant, 0.1)
        t.session_lease(tenant, "granted")
    attributes = bounded.all_attributes()
    assert all("tenant" not in a for a in attributes)
    assert len(attributes) < 20


def test_login_failures_count_by_reason(bounded: Harness) -> None:
    """``auth_qr_failed_total`` carries the failure's stable reason code."""
    bounded.telemetry.login_failed("acme", "crashed")
    bounded.telemetry.login_failed("b", "crashed")
    bounded.telemetry.login_failed("acme", "password_attempts")
    points = {p.attributes["reason"]: p.value for p in bounded.points("auth_qr_failed_total")}
    assert points == {"crashed": 2, "password_attempts": 1}


def test_floodwait_counts_by_tenant_and_method(harness: Harness) -> None:
    """Flood waits count per tenant and Telegram method, and record the seconds asked for."""
    harness.telemetry.floodwait("acme", 42, "auth.ExportLoginTokenRequest")
    harness.telemetry.floodwait("other", 7, "auth.ExportLoginTokenRequest")
    points = harness.points("telethon_floodwait_total")
    assert {(p.attributes["tenant"], p.value) for p in points} == {("acme", 1), ("other", 1)}
    [seconds] = [
        p
        for p in harness.points("telethon_floodwait_requested_seconds")
        if p.attributes["tenant"] == "acme"
    ]
    assert seconds.sum == 42


def test_rate_limit_hits_carry_the_verb(harness: Harness) -> None:
    """A refused command counts under its tenant and verb."""
    harness.telemetry.rate_limit_hit("acme", "start")
    [point] = harness.points("telethon_rate_limit_hits_total")
    assert dict(point.attributes) == {"tenant": "acme", "verb": "start"}
    assert point.value == 1


def test_cleanup_histogram_records_durations(harness: Harness) -> None:
    """Client cleanup durations land in the histogram, per tenant."""
    harness.telemetry.session_cleanup("acme", 0.02)
    harness.telemetry.session_cleanup("acme", 0.5)
    [point] = harness.points("telethon_session_cleanup_duration_seconds")
    assert point.count == 2
    assert point.sum == pytest.approx(0.52)
    assert point.min == pytest.approx(0.02)
    assert dict(point.attributes) == {"tenant": "acme"}


def test_watched_figures_are_read_at_each_collection(harness: Harness) -> None:
    """Projector lag and live actors are read from their sources whenever metrics are
    collected; before a source is given there is no point."""
    assert harness.points("tgqr_projector_lag_events") == []
    lag = [120]
    harness.telemetry.watch(projector_lag=lambda: lag[0], live_actors=lambda: 7)
    [point] = harness.points("tgqr_projector_lag_events")
    assert point.value == 120
    lag[0] = 3
    [point] = harness.points("tgqr_projector_lag_events")
    assert point.value == 3
    [actors] = harness.points("tgqr_live_actors")
    assert actors.value == 7


def test_no_secret_looking_attribute(harness: Harness) -> None:
    """Measurements and spans carry only tenant, method and verb: nothing secret-shaped."""
    t = harness.telemetry
    t.floodwait("acme", 5, "auth.CheckPasswordRequest")
    t.qr_expired("acme")
    t.rate_limit_hit("acme", "password")
    t.qr_start("acme")
    t.qr_published("acme")
    t.qr_success("acme")
    t.actor_restart("acme")
    t.session_cleanup("acme", 0.1)
    with t.command_span("acme", "password", None):
        pass
    keys = {key for attributes in harness.all_attributes() for key in attributes}
    assert keys <= ALLOWED_ATTRIBUTES
    [span] = harness.spans.get_finished_spans()
    assert set(span.attributes or {}) <= {"tenant", "tgqr.verb"}
    for key in keys | set(span.attributes or {}):
        assert not any(word in key for word in ("session", "password", "token", "key", "secret"))


def test_command_span_continues_the_incoming_trace(harness: Harness) -> None:
    """A traceparent in the request headers is the parent; the yielded one names the new span."""
    with harness.telemetry.command_span("acme", "start", {"traceparent": INCOMING}) as traceparent:
        injected = harness.telemetry.inject_headers()
    [span] = harness.spans.get_finished_spans()
    assert span.name == "tgqr.command start"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == INCOMING_TRACE
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert traceparent == f"00-{INCOMING_TRACE}-{span.context.span_id:016x}-01"
    assert injected == {"traceparent": traceparent}
    assert dict(span.attributes or {}) == {"tenant": "acme", "tgqr.verb": "start"}


def test_header_names_are_case_insensitive(harness: Harness) -> None:
    """NATS keeps header case: ``Traceparent`` is honoured too."""
    with harness.telemetry.command_span("acme", "cancel", {"Traceparent": INCOMING}) as traceparent:
        pass
    assert traceparent is not None
    assert traceparent.split("-")[1] == INCOMING_TRACE


def test_command_span_without_headers_starts_a_trace(harness: Harness) -> None:
    """Without incoming context the span is a root and still yields a traceparent."""
    with harness.telemetry.command_span("acme", "start", None) as traceparent:
        pass
    [span] = harness.spans.get_finished_spans()
    assert span.parent is None
    assert traceparent is not None
    assert traceparent.split("-")[1] == format(span.context.trace_id, "032x")


def test_started_command_span_lasts_until_ended(harness: Harness) -> None:
    """start_command's span is still open after the request's code returns; end() closes it
    once (later calls change nothing), and an error code marks it failed."""
    command = harness.telemetry.start_command("acme", "start", {"traceparent": INCOMING})
    assert harness.spans.get_finished_spans() == ()
    assert command.traceparent is not None
    assert command.traceparent.split("-")[1] == INCOMING_TRACE
    command.end("rate_limited")
    command.end()
    [span] = harness.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "rate_limited"
    assert command.traceparent == f"00-{INCOMING_TRACE}-{span.context.span_id:016x}-01"


def test_batch_span_links_the_commands_it_projects(harness: Harness) -> None:
    """A projector batch's span links each distinct trace of its events (invalid ones and
    repeats dropped), so a command's trace leads on to the batch that projected it."""
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with harness.telemetry.batch_span(3, [INCOMING, other, INCOMING, "garbage"]):
        pass
    [span] = harness.spans.get_finished_spans()
    assert span.name == "tgqr.project"
    assert {format(link.context.trace_id, "032x") for link in span.links} == {
        INCOMING_TRACE,
        "0af7651916cd43dd8448eb211c80319c",
    }
    assert dict(span.attributes or {}) == {"tgqr.events": 3}


def test_command_span_records_a_failure(harness: Harness) -> None:
    """An exception leaving the block marks the span as an error and propagates."""
    with pytest.raises(RuntimeError), harness.telemetry.command_span("acme", "start", None):
        raise RuntimeError("boom")
    [span] = harness.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_inject_outside_a_span_is_empty(harness: Harness) -> None:
    """Without a current span there is nothing to propagate."""
    assert harness.telemetry.inject_headers() == {}
