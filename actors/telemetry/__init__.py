"""OpenTelemetry for tgqr: the seed metrics, a span per command, W3C trace context in NATS
headers, and the Prometheus exposition of it all.

Providers are injected; :func:`configure_from_env` builds them from the standard ``OTEL_*``
variables (and the ``/metrics`` reader) at the composition root.
"""

from __future__ import annotations

from ._env import TENANT_LABEL_ENV, configure_from_env
from ._instruments import INSTRUMENTATION_NAME, SECONDS_BUCKETS, Telemetry
from ._spans import CommandSpan, traceparents

__all__ = [
    "INSTRUMENTATION_NAME",
    "SECONDS_BUCKETS",
    "TENANT_LABEL_ENV",
    "CommandSpan",
    "Telemetry",
    "configure_from_env",
    "traceparents",
]
