"""What a NATS connection's ``error_cb`` does with repeated errors: count, don't flood the log.

nats-py calls ``error_cb`` once per dropped message when a subscription is a slow consumer
(from its read loop, awaited), and once per refused publish or subscribe. A flood makes
either a storm: here each error costs a counter increment, and the log gets one line per kind
per interval with the count (:class:`actors.gateway.Repeats`), plus the metric
``tgqr_nats_errors_total{kind}``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import nats.errors

from actors.gateway import Repeats
from actors.telemetry import Telemetry

__all__ = ["KEEP_VIOLATIONS", "ConnectionErrors", "error_kind"]

log = logging.getLogger("tgqr.service")

KEEP_VIOLATIONS: Final = 100
"""Permission violations kept as text per connection (for naming a refusal); more are counted."""

SLOW_CONSUMER: Final = "slow_consumer"
PERMISSIONS: Final = "permissions_violation"
OTHER: Final = "other"
_LINES: Final = {
    SLOW_CONSUMER: "nats: slow consumer, messages dropped",
    PERMISSIONS: "nats: permissions violation",
    OTHER: "nats",
}


def error_kind(exc: BaseException) -> str:
    """``slow_consumer``, ``permissions_violation`` or ``other``."""
    if isinstance(exc, nats.errors.SlowConsumerError):
        return SLOW_CONSUMER
    if "permissions violation" in str(exc).lower():
        return PERMISSIONS
    return OTHER


@functools.cache
def _global_telemetry() -> Telemetry:
    return Telemetry()  # the global providers: a no-op unless something configured them


@dataclass
class ConnectionErrors:
    """Counts and logs (throttled) one connection's errors; cheap enough for the read loop."""

    telemetry: Telemetry | None = None
    clock: Callable[[], float] = time.monotonic
    repeats: Repeats = field(init=False)

    def __post_init__(self) -> None:
        self.repeats = Repeats(log, self.clock)

    def count(self, kind: str) -> None:
        """One more error of ``kind`` on the metric."""
        (self.telemetry or _global_telemetry()).nats_error(kind)

    def log(self, kind: str, detail: str) -> None:
        """Log ``detail`` of an error of ``kind``, at most one line per kind and interval."""
        self.repeats.note(_LINES[kind], detail.removeprefix("nats: "))

    def note(self, exc: BaseException, detail: str) -> str:
        """Count and log ``exc``; its kind."""
        kind = error_kind(exc)
        self.count(kind)
        self.log(kind, detail)
        return kind

    def flush(self) -> None:
        """Log the counts not logged yet (the connection closed)."""
        self.repeats.flush()
