"""The Prometheus text of what the OpenTelemetry SDK measured, read back by Prometheus' own parser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors.metrics import Exposition, prometheus_name
from actors.telemetry import Telemetry


@pytest.fixture
def scraped() -> Iterator[tuple[Telemetry, Exposition]]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exposition = Exposition(reader)
    yield Telemetry(meters, exposition=exposition), exposition
    meters.shutdown()


def samples(exposition: Exposition) -> dict[str, list[Sample]]:
    body, content_type = exposition.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_counters_keep_the_seed_names(scraped: tuple[Telemetry, Exposition]) -> None:
    """``auth_qr_success_total`` is scraped under that very name, with the count as value."""
    telemetry, exposition = scraped
    for _ in range(3):
        telemetry.qr_success("acme")
    telemetry.rate_limit_hit("acme", "start")
    got = samples(exposition)
    [success] = got["auth_qr_success_total"]
    assert (success.labels, success.value) == ({}, 3.0)
    hits = {s.labels["verb"]: s.value for s in got["telethon_rate_limit_hits_total"]}
    assert hits == {"start": 1.0, "password": 0.0, "cancel": 0.0, "logout": 0.0, "link": 0.0}
    assert got["auth_qr_start_total"][0].value == 0.0  # there from the start


def test_histograms_have_cumulative_buckets_in_seconds(
    scraped: tuple[Telemetry, Exposition],
) -> None:
    """Cleanup durations become ``_bucket{le}`` (cumulative, ending in +Inf), ``_sum`` and
    ``_count``, with the 3 s and 5 s bounds the SLO and the alert use."""
    telemetry, exposition = scraped
    for seconds in (0.02, 0.5, 4.0, 12.0):
        telemetry.session_cleanup("acme", seconds)
    got = samples(exposition)
    buckets = {
        s.labels["le"]: s.value for s in got["telethon_session_cleanup_duration_seconds_bucket"]
    }
    assert buckets["0.025"] == 1
    assert buckets["3.0"] == 2
    assert buckets["5.0"] == 3
    assert buckets["10.0"] == 3
    assert buckets["+Inf"] == 4
    assert list(buckets.values()) == sorted(buckets.values())
    assert got["telethon_session_cleanup_duration_seconds_count"][0].value == 4
    assert got["telethon_session_cleanup_duration_seconds_sum"][0].value == pytest.approx(16.52)


def test_watched_gauges_and_process_figures(scraped: tuple[Telemetry, Exposition]) -> None:
    """Projector lag and live actors are read at scrape time; the process's own figures
    (memory, CPU, open files) come along."""
    telemetry, exposition = scraped
    lag = [5]
    telemetry.watch(projector_lag=lambda: lag[0], live_actors=lambda: 2)
    assert samples(exposition)["tgqr_projector_lag_events"][0].value == 5
    lag[0] = 0
    got = samples(exposition)
    assert got["tgqr_projector_lag_events"][0].value == 0
    assert got["tgqr_live_actors"][0].value == 2
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
        assert got[name][0].value > 0


def test_openmetrics_when_asked(scraped: tuple[Telemetry, Exposition]) -> None:
    """A scraper that accepts OpenMetrics gets it (ending in ``# EOF``)."""
    telemetry, exposition = scraped
    telemetry.qr_success("acme")
    body, content_type = exposition.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"auth_qr_success_total 1.0" in body


def test_label_and_metric_names_are_made_valid() -> None:
    """The SDK's overflow attribute (``otel.metric.overflow``) becomes a valid label name."""
    assert prometheus_name("otel.metric.overflow") == "otel_metric_overflow"
    assert prometheus_name("9lives") == "_9lives"
    assert prometheus_name("auth_qr_start_total") == "auth_qr_start_total"


def test_values_with_quotes_are_escaped(scraped: tuple[Telemetry, Exposition]) -> None:
    """A label value with quotes, backslashes or newlines cannot break the text format."""
    telemetry, exposition = scraped
    telemetry.requests_refused('q"\\\nx', "busy")
    [refused] = samples(exposition)["tgqr_requests_refused_total"]
    assert refused.labels == {"endpoint": 'q"\\\nx', "reason": "busy"}
