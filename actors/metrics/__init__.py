"""Prometheus exposition of the OpenTelemetry metrics (no server: see actors.service)."""

from __future__ import annotations

from ._exposition import (
    Exposition,
    OtelCollector,
    prometheus_name,
)

__all__ = ["Exposition", "OtelCollector", "prometheus_name"]
