"""What faces clients: the command endpoint, its body parsing, rate limits and dedupe, the
session lease endpoint, and the ``tgqr`` micro service they share (bounded, ``$SRV`` limited)."""

from __future__ import annotations

from ._commands import (
    COMMAND_SUBJECT,
    CommandEndpoint,
)
from ._dedupe import (
    DEDUPE_BUCKET,
    DedupeStore,
    KvDedupe,
    MemoryDedupe,
)
from ._parse import (
    error_reply,
)
from ._ratelimit import (
    DEFAULT_LIMITS,
    RateLimiter,
    RateLimiterStatistics,
    UnknownVerbError,
)
from ._route import (
    FORWARD_PREFIX,
    Router,
)
from ._service import (
    SRV_PER_S,
    open_micro_service,
)
from ._sessions import (
    SESSION_LIMITS,
    SESSION_SUBJECT,
    SessionEndpoint,
)
from ._throttle import (
    Repeats,
)

__all__ = [
    "COMMAND_SUBJECT",
    "DEDUPE_BUCKET",
    "DEFAULT_LIMITS",
    "FORWARD_PREFIX",
    "SESSION_LIMITS",
    "SESSION_SUBJECT",
    "SRV_PER_S",
    "CommandEndpoint",
    "DedupeStore",
    "KvDedupe",
    "MemoryDedupe",
    "RateLimiter",
    "RateLimiterStatistics",
    "Repeats",
    "Router",
    "SessionEndpoint",
    "UnknownVerbError",
    "error_reply",
    "open_micro_service",
]
