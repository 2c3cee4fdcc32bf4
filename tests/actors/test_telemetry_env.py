"""Telemetry from the environment: OTEL_* exporters (console, OTLP over HTTP), the tenant
label's opt-in, and OTEL_SDK_DISABLED."""

from __future__ import annotations

import logging
import sys

import pytest

from actors.telemetry import configure_from_env

from ._otlp import otlp_receiver


def test_tracing_off_yields_none() -> None:
    """With no-op providers the span yields None and nothing is injected."""
    telemetry = configure_from_env({})
    with telemetry.command_span("acme", "start", None) as traceparent:
        assert telemetry.inject_headers() == {}
    assert traceparent is None
    telemetry.qr_start("acme")  # no-op, no error
    telemetry.shutdown()


def test_env_console_builds_sdk_providers() -> None:
    """``console`` exporters give recording spans; shutdown flushes without error."""
    telemetry = configure_from_env(
        {"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "console"}
    )
    try:
        with telemetry.command_span("acme", "start", None) as traceparent:
            pass
        assert traceparent is not None
    finally:
        telemetry.shutdown()


def test_env_otlp_exports_spans_and_metrics_over_http() -> None:
    """``otlp`` sends both signals as OTLP/HTTP protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (flushed by shutdown)."""
    with otlp_receiver() as received:
        telemetry = configure_from_env(
            {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": received.url + "/",
            }
        )
        with telemetry.command_span("acme", "start", None) as traceparent:
            telemetry.qr_success("acme")
        assert traceparent is not None
        telemetry.shutdown()
    assert received.span_names == ["tgqr.command start"]
    assert "auth_qr_success_total" in received.metric_names
    assert received.content_types == {"application/x-protobuf"}


def test_env_otlp_per_signal_endpoint_wins() -> None:
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as given (no /v1/traces appended)."""
    with otlp_receiver() as received:
        telemetry = configure_from_env(
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": received.url + "/v1/traces",
            }
        )
        with telemetry.command_span("acme", "cancel", None):
            pass
        telemetry.shutdown()
    assert received.span_names == ["tgqr.command cancel"]


def test_env_otlp_over_grpc_or_unknown_falls_back_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """gRPC is not supported, nor an exporter we do not know: one warning each, then off."""
    with caplog.at_level(logging.WARNING, logger="actors.telemetry"):
        telemetry = configure_from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )
    assert [r.getMessage() for r in caplog.records] == [
        (
            "OTLP traces exporter: OTLP protocol 'grpc' (only http/protobuf is supported); "
            "exporting no traces"
        )
    ]
    with telemetry.command_span("acme", "start", None) as traceparent:
        pass
    assert traceparent is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors.telemetry"):
        configure_from_env({"OTEL_METRICS_EXPORTER": "zipkin"})
    assert len(caplog.records) == 1
    assert "zipkin" in caplog.records[0].getMessage()


def test_env_otlp_without_the_extra_says_how_to_install(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ``otlp`` extra installed: one line naming it, and nothing exported."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="actors.telemetry"):
        telemetry = configure_from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert len(caplog.records) == 1
    assert "pip install 'tgqr[otlp]'" in caplog.records[0].getMessage()
    assert not telemetry.tracing


def test_tenant_label_is_an_opt_in_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """``TGQR_METRICS_TENANT_LABEL=1`` labels by tenant and says once what that costs."""
    with caplog.at_level(logging.WARNING, logger="actors.telemetry"):
        labelled = configure_from_env({"TGQR_METRICS_TENANT_LABEL": "1"}, scrape=True)
    assert labelled.tenant_label
    assert len(caplog.records) == 1
    assert "TGQR_METRICS_TENANT_LABEL" in caplog.records[0].getMessage()
    labelled.qr_success("acme")
    assert labelled.exposition is not None
    assert b'auth_qr_success_total{tenant="acme"} 1.0' in labelled.exposition.render()[0]
    labelled.shutdown()
    plain = configure_from_env({}, scrape=True)
    assert not plain.tenant_label
    plain.qr_success("acme")
    assert plain.exposition is not None
    assert b"auth_qr_success_total 1.0" in plain.exposition.render()[0]
    plain.shutdown()


def test_sdk_disabled_turns_everything_off() -> None:
    """``OTEL_SDK_DISABLED=true`` wins over configured exporters."""
    telemetry = configure_from_env({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
    with telemetry.command_span("acme", "start", None) as traceparent:
        pass
    assert traceparent is None
