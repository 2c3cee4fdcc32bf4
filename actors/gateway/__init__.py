"""What faces clients: the command endpoint, its body parsing, rate limits and dedupe, and the
session lease endpoint."""

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
from ._sessions import (
    SESSION_LIMITS,
    SESSION_SUBJECT,
    SessionEndpoint,
)

__all__ = [
    "COMMAND_SUBJECT",
    "DEDUPE_BUCKET",
    "DEFAULT_LIMITS",
    "SESSION_LIMITS",
    "SESSION_SUBJECT",
    "CommandEndpoint",
    "DedupeStore",
    "KvDedupe",
    "MemoryDedupe",
    "RateLimiter",
    "RateLimiterStatistics",
    "SessionEndpoint",
    "UnknownVerbError",
    "error_reply",
]
