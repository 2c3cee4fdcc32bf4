"""Per-tenant, per-verb command rate limits over a sliding window (pure; the clock is passed in).

Each (tenant, verb) keeps the times of its accepted commands within the window, at most
``limit`` of them; rejected commands are not recorded. Windows that have emptied are dropped
by a sweep at most once per window length, so memory is bounded by the tenants active within
the last two window lengths, not by all tenants ever seen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_LIMITS", "RateLimiter", "RateLimiterStatistics", "UnknownVerbError"]

DEFAULT_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {"start": 5, "password": 30, "cancel": 30, "logout": 30, "link": 30}
)


class UnknownVerbError(ValueError):
    """Raised by :meth:`RateLimiter.check` for a verb without a configured limit."""


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """``windows``: (tenant, verb) pairs currently tracked; ``recorded``: timestamps held."""

    windows: int
    recorded: int


class RateLimiter:
    """Sliding-window limits: at most ``limits[verb]`` accepted commands per tenant per window.

    Raises:
        ValueError: on construction, for a limit below 1 or a window that is not positive.
    """

    def __init__(self, limits: Mapping[str, int] = DEFAULT_LIMITS, window_s: float = 60.0) -> None:
        if not window_s > 0:
            raise ValueError("rate limit window_s must be > 0")
        if any(limit < 1 for limit in limits.values()):
            raise ValueError("rate limits must be >= 1")
        self._limits = dict(limits)
        self._window_s = window_s
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._next_sweep: float | None = None

    def check(self, tenant: str, verb: str, now: float) -> float | None:
        """Admit a command at ``now``: None if allowed (and then recorded), else the seconds
        until the oldest accepted command leaves the window (always > 0).

        Raises:
            UnknownVerbError: ``verb`` has no limit.
        """
        limit = self._limits.get(verb)
        if limit is None:
            raise UnknownVerbError(f"no rate limit configured for verb {verb!r}")
        self._maybe_sweep(now)
        key = (tenant, verb)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque()
        horizon = now - self._window_s
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return None
        return window[0] - horizon

    def statistics(self) -> RateLimiterStatistics:
        return RateLimiterStatistics(
            windows=len(self._windows),
            recorded=sum(len(w) for w in self._windows.values()),
        )

    def _maybe_sweep(self, now: float) -> None:
        # Amortised O(1): one pass over all windows per window length of clock time.
        if self._next_sweep is not None and now < self._next_sweep:
            return
        self._next_sweep = now + self._window_s
        horizon = now - self._window_s
        stale = [
            key for key, window in self._windows.items() if not window or window[-1] <= horizon
        ]
        for key in stale:
            del self._windows[key]
