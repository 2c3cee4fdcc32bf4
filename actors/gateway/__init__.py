"""What faces clients: the command endpoint, its body parsing, rate limits and dedupe."""

from __future__ import annotations

from ._commands import (
    COMMAND_SUBJECT,
    CommandEndpoint,
    error_reply,
)
from ._ratelimit import (
    DEFAULT_LIMITS,
    RateLimiter,
    RateLimiterStatistics,
    UnknownVerbError,
)

__all__ = [
    "COMMAND_SUBJECT",
    "DEFAULT_LIMITS",
    "CommandEndpoint",
    "RateLimiter",
    "RateLimiterStatistics",
    "UnknownVerbError",
    "error_reply",
]
