"""OpenTelemetry through the running service: command spans reach the events, metrics count."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
import nats
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.service import NatsServer, RunningService, ServiceConfig, run_service
from actors.telemetry import Telemetry
from tests.actors._otlp import otlp_receiver

from .conftest import Driver

pytestmark = pytest.mark.anyio

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
async def traced(
    service_config: ServiceConfig, nats_server: NatsServer
) -> AsyncIterator[tuple[Driver, InMemoryMetricReader, InMemorySpanExporter]]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]), tracer_provider)
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(
                service_config, telemetry=telemetry, task_status=task_status
            )
        )
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
        try:
            yield Driver(nc, service), reader, spans
        finally:
            await nc.drain()
            tg.cancel_scope.cancel()


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    out: dict[str, list[tuple[dict[str, object], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", getattr(point, "count", 0))
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return out


async def test_trace_context_travels_from_the_request_into_the_events(
    traced: tuple[Driver, InMemoryMetricReader, InMemorySpanExporter],
) -> None:
    """A traceparent header on start continues into the command span and LoginStarted.trace."""
    driver, reader, spans = traced
    msg = await driver.nc.request(
        "tgqr.cmd.alice.start", b"{}", timeout=20, headers={"traceparent": PARENT}
    )
    assert json.loads(msg.data)["ok"]
    started = (await driver.events("alice"))[0]
    assert started["type"] == "LoginStarted"
    assert started["trace"].split("-")[1] == TRACE_ID
    (span,) = [s for s in spans.get_finished_spans() if s.name == "tgqr.command start"]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.attributes is not None
    assert span.attributes["tenant"] == "alice"
    # The span covers the command's work: it ends after the actor decided (and stored)
    # LoginStarted, not when the request was handed over.
    decided_ns = int(datetime.fromisoformat(started["at"]).timestamp() * 1e9)
    assert span.end_time is not None
    assert span.end_time >= decided_ns
    # ... and the projector's span for the batch holding LoginStarted links to that trace.
    with anyio.fail_after(10):
        while not (
            batches := [
                s
                for s in spans.get_finished_spans()
                if s.name == "tgqr.project"
                and any(format(link.context.trace_id, "032x") == TRACE_ID for link in s.links)
            ]
        ):
            await anyio.lowlevel.checkpoint()
    assert batches[0].attributes is not None
    assert int(str(batches[0].attributes["tgqr.events"])) >= 1

    await driver.wait_for("alice", "QrIssued")
    await driver.scan("alice", 5)
    await driver.wait_for("alice", "Authorized")
    with anyio.fail_after(10):
        # The client closes (and its cleanup is timed) right after Authorized is stored.
        while "telethon_session_cleanup_duration_seconds" not in (points := metric_points(reader)):
            await anyio.lowlevel.checkpoint()
    for name in ("auth_qr_start_total", "auth_qr_published_total", "auth_qr_success_total"):
        assert any(value >= 1 for _, value in points[name])
    for series in points.values():
        for attrs, _ in series:
            assert set(attrs) <= {
                "method",
                "verb",
                "reason",
                "event",
                "endpoint",
                "kind",
                "outcome",
                "dc",
            }


async def test_spans_are_flushed_over_otlp_when_the_service_stops(
    service_config: ServiceConfig, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``OTEL_TRACES_EXPORTER=otlp`` the service's spans reach the collector, the last
    ones when the service stops (not lost with the exporter's batch)."""
    with otlp_receiver() as received:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.url)
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: run_service(service_config, task_status=task_status))
            nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
            msg = await nc.request("tgqr.cmd.alice.start", b"{}", timeout=20)
            assert json.loads(msg.data)["ok"]
            await nc.drain()
            tg.cancel_scope.cancel()
        assert "tgqr.command start" in received.span_names
