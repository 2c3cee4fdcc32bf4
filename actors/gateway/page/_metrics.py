"""The page process's ``/metrics``: its connections and live streams, and its process figures.

No tenant, no link, no address: only counts. Read when scraped, in the event loop that owns
the figures (nothing is shared with another thread).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as PromMetric
from prometheus_client.registry import Collector

from actors.metrics import Exposition

from ._guard import ConnectionGuard
from ._limits import StreamSlots

__all__ = ["PageCollector", "page_exposition"]


class PageCollector(Collector):
    """The server's connection guard and stream slots as Prometheus series."""

    def __init__(self, guard: ConnectionGuard, streams: StreamSlots) -> None:
        self._guard = guard
        self._streams = streams

    def collect(self) -> Iterator[PromMetric]:
        connections = self._guard.statistics()
        streams = self._streams.statistics()
        yield GaugeMetricFamily(
            "tgqr_page_connections", "Open HTTP connections", value=connections["open"]
        )
        yield GaugeMetricFamily(
            "tgqr_page_clients", "Client addresses with an open connection",
            value=connections["clients"],
        )  # fmt: skip
        yield CounterMetricFamily(
            "tgqr_page_connections_refused",
            "Connections refused by the caps (overall or per client address)",
            value=connections["refused"],
        )
        yield CounterMetricFamily(
            "tgqr_page_connections_cut",
            "Connections cut by the read deadlines (slow headers or body)",
            value=connections["cut"],
        )
        yield GaugeMetricFamily(
            "tgqr_page_streams", "Live-update streams open", value=streams["streams"]
        )


def page_exposition(guard: ConnectionGuard, streams: StreamSlots) -> Exposition:
    """What the page's ``/metrics`` serves."""
    return Exposition(None, extra=[PageCollector(guard, streams)])
