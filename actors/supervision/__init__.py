"""One-for-one tenant supervision and the (pure) restart backoff policy."""

from __future__ import annotations

from ._backoff import (
    BackoffPolicy,
    RestartDecision,
    RestartTracker,
)
from ._supervisor import (
    MailboxFullError,
    MovedError,
    StoppedError,
    SupervisorStatistics,
    TenantSupervisor,
)

__all__ = [
    "BackoffPolicy",
    "MailboxFullError",
    "MovedError",
    "RestartDecision",
    "RestartTracker",
    "StoppedError",
    "SupervisorStatistics",
    "TenantSupervisor",
]
