"""Repeated NATS errors on a connection made by ``connect_nats``: one log line per interval with
the count, and a metric, whatever the storm (real nats-server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from actors.gateway import Repeats
from actors.service import NatsServer, connect_nats
from actors.telemetry import Telemetry

pytestmark = pytest.mark.anyio

SLOW = "nats: slow consumer, messages dropped"


@pytest.fixture
def metrics() -> Iterator[tuple[Telemetry, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield Telemetry(meters), reader
    meters.shutdown()


def counted(reader: InMemoryMetricReader, kind: str) -> int:
    data = reader.get_metrics_data()
    assert data is not None
    total = 0
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "tgqr_nats_errors_total":
                    continue
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)
                    if (point.attributes or {}).get("kind") == kind:
                        total += int(point.value)
    return total


async def test_a_slow_consumer_storm_is_a_few_lines_and_a_count(
    nats_server: NatsServer,
    nc: Client,
    caplog: pytest.LogCaptureFixture,
    metrics: tuple[Telemetry, InMemoryMetricReader],
) -> None:
    """20,000 messages to a stuck subscription of 10 pending: nats-py drops thousands, which
    is at most a few log lines (on main: one line each) whose counts add up to the metric."""
    telemetry, reader = metrics
    caplog.set_level(logging.INFO, logger="tgqr")
    service_nc = await connect_nats([nats_server.url], telemetry=telemetry)
    stuck = anyio.Event()

    async def handler(_msg: Msg) -> None:
        await stuck.wait()

    try:
        await service_nc.subscribe("flood", cb=handler, pending_msgs_limit=10)
        await service_nc.flush()
        for _ in range(20_000):
            await nc.publish("flood", b"x")
        await nc.flush()
        await service_nc.flush()  # every flood message has been through its read loop
        during = [r for r in caplog.records if r.getMessage().startswith(SLOW)]
        assert 1 <= len(during) <= 3
        dropped = counted(reader, "slow_consumer")
        # nats-server does not always hand every message over before the PONG (nor keep a
        # connection it finds slow: on a loaded machine it cut this one after a few hundred),
        # so only a lower bound: many more drops than lines.
        assert 50 <= dropped <= 20_000
    finally:
        stuck.set()
        await service_nc.close()  # logs the count not logged yet
    lines = [r for r in caplog.records if r.getMessage().startswith(SLOW)]
    assert len(lines) <= 4
    assert sum(int(str(r.args[1])) for r in lines if isinstance(r.args, tuple)) == dropped
    assert all("flood" in r.getMessage() for r in lines)


def test_repeats_log_once_per_interval_with_the_count() -> None:
    """The first occurrence at once, then one line per interval with the count since; flush
    logs the rest; kinds are independent."""
    now = [0.0]
    logger = logging.getLogger("tgqr.test.repeats")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        repeats = Repeats(logger, lambda: now[0], every_s=10.0)
        for i in range(1000):
            now[0] = i * 0.025  # 25 s of repeats
            repeats.note("dropped", f"#{i}")
        repeats.note("other")
        repeats.flush()
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert messages[0] == "dropped: 1 (last: #0)"
    assert messages[1].startswith("dropped: 400 in the last 10.0s")
    assert messages[2].startswith("dropped: 400 in the last 10.0s")
    assert messages[3] == "other: 1"
    assert messages[4] == "dropped: 199 in the last 5.0s (last: #999)"
    assert len(messages) == 5
    assert repeats.total == {"dropped": 1000, "other": 1}
