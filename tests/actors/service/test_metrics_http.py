"""The service's operations port: /metrics, /healthz and /readyz, over real HTTP."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.service import ConfigError, NatsServer, RunningService, ServiceConfig, run_service
from actors.service._metrics_http import bind_metrics, readiness

from .conftest import Driver, driving

pytestmark = pytest.mark.anyio


@pytest.fixture
async def served(service_config: ServiceConfig, nats_server: NatsServer) -> AsyncIterator[Driver]:
    config = replace(service_config, metrics="127.0.0.1:0")
    async with driving(config, nats_server.url) as running:
        yield running


def values(body: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


async def test_endpoints_answer_and_count_a_login(served: Driver) -> None:
    """/healthz and /readyz answer 200 once the service runs; after one login /metrics shows
    ``auth_qr_success_total 1`` and the live actor, and no series carries a tenant label."""
    assert served.service.metrics_url is not None
    async with httpx2.AsyncClient(base_url=served.service.metrics_url, timeout=10) as http:
        health = await http.get("/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert (await served.command("alice", "start"))["ok"]
        await served.wait_for("alice", "QrIssued")
        # While the attempt runs its actor is live (after Authorized it may rest at any time).
        live = values((await http.get("/metrics")).text)["tgqr_live_actors"]
        assert live[0][1] >= 1
        await served.scan("alice", 5)
        await served.wait_for("alice", "Authorized")
        with anyio.fail_after(10):
            # The actor counts right after the event is stored (the test may see it first).
            while values((scrape := await http.get("/metrics")).text)["auth_qr_success_total"] != [
                ({}, 1.0)
            ]:
                pass
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        got = values(scrape.text)
        assert got["auth_qr_start_total"] == [({}, 1.0)]
        assert "tgqr_live_actors" in got
        assert "tgqr_projector_lag_events" in got
        assert got["process_resident_memory_bytes"][0][1] > 0
        assert 'tenant="' not in scrape.text
        assert "alice" not in scrape.text
        refused = await http.post("/metrics")
        assert refused.status_code == 405


async def test_readyz_fails_when_nats_goes_away(
    service_config: ServiceConfig, nats_server: NatsServer
) -> None:
    """With the NATS server gone, /readyz answers 503 naming the problem; /healthz still 200."""
    config = replace(service_config, metrics="127.0.0.1:0")
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        assert service.metrics_url is not None
        async with httpx2.AsyncClient(base_url=service.metrics_url, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
            nats_server.stop()
            with anyio.fail_after(10):
                # Each answer is reused for up to a second; every request is a real round trip.
                while (ready := await http.get("/readyz")).status_code == 200:
                    pass
            assert ready.status_code == 503
            assert ready.text in {"nats: not connected\n", "event stream: TimeoutError\n"}
            assert (await http.get("/healthz")).status_code == 200
        tg.cancel_scope.cancel()


async def test_readiness_checks_in_order_and_caches() -> None:
    """Starting, disconnected and a failing stream each give their own line; an answer is
    reused for a second, so a flood of /readyz costs NATS one lookup."""
    serving = anyio.Event()
    connected = [False]
    calls = [0]

    async def stream_ok() -> None:
        calls[0] += 1
        raise ConnectionError("gone")

    check = readiness(serving, lambda: connected[0], stream_ok)
    assert await check() == ["service: starting", "nats: not connected"]
    serving.set()
    connected[0] = True
    assert await check() == ["service: starting", "nats: not connected"]  # cached
    fresh = readiness(serving, lambda: connected[0], stream_ok)
    assert await fresh() == ["event stream: ConnectionError"]
    for _ in range(20):
        await fresh()
    assert calls[0] == 1


def test_default_address_taken_warns_and_serves_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second instance on the host (the default port taken) starts without /metrics and
    says so; an address the operator chose must be free."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        monkeypatch.setattr("actors.service._metrics_http.DEFAULT_METRICS", f"127.0.0.1:{port}")
        with caplog.at_level(logging.WARNING, logger="tgqr.service"):
            assert bind_metrics(f"127.0.0.1:{port}") is None
        assert "TGQR_METRICS" in caplog.text
        monkeypatch.undo()
        with pytest.raises(ConfigError, match="--metrics"):
            bind_metrics(f"127.0.0.1:{port}")


def test_config_reads_the_address() -> None:
    """``TGQR_METRICS`` sets the address, ``off`` turns it off, the default is loopback."""
    assert ServiceConfig.from_env({}).metrics == "127.0.0.1:9464"
    assert ServiceConfig.from_env({"TGQR_METRICS": "off"}).metrics is None
    assert ServiceConfig.from_env({}, metrics="127.0.0.1:0").metrics == "127.0.0.1:0"
    with pytest.raises(ConfigError, match="TGQR_METRICS"):
        ServiceConfig.from_env({"TGQR_METRICS": "nowhere"})
