"""How many queries the query endpoint takes: a rate per query name and a cap on those in flight.

Pure (the clock is passed in). Each name has a sliding window (at most ``limit`` admitted
within ``window_s``; refusals are not recorded, so a flood that stops leaves nothing behind:
the window is free again ``window_s`` after the last admitted query). Names without a limit
of their own share the ``*`` window. The limits are global, not per client: a NATS request
carries no identity its sender cannot choose (headers and the reply subject are the
client's), so a per-client key would be one a flooder rotates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["QUERY_LIMITS", "QueryGate", "QueryGateStatistics", "QueryLimit"]


@dataclass(frozen=True, slots=True)
class QueryLimit:
    """At most ``limit`` queries admitted within any ``window_s``."""

    limit: int
    window_s: float = 1.0


QUERY_LIMITS: Final[Mapping[str, QueryLimit]] = MappingProxyType(
    {
        "status": QueryLimit(100),
        "metrics": QueryLimit(20),
        "health": QueryLimit(50),  # its own budget: a status flood leaves monitoring alone
        "rebuild": QueryLimit(2, 60.0),
        "*": QueryLimit(20),  # unknown names: answered invalid_request, but not without end
    }
)
"""Per query name, for one instance."""


@dataclass(frozen=True, slots=True)
class QueryGateStatistics:
    in_flight: int
    admitted: int
    refused: int


class QueryGate:
    """Admits queries within :data:`QUERY_LIMITS` and at most ``in_flight_max`` at once.

    Raises:
        ValueError: on construction, for a limit below 1, a window that is not positive, or
            no ``*`` limit.
    """

    def __init__(
        self, limits: Mapping[str, QueryLimit] = QUERY_LIMITS, *, in_flight_max: int = 16
    ) -> None:
        if "*" not in limits:
            raise ValueError("query limits need a '*' entry for other names")
        if any(lim.limit < 1 or not lim.window_s > 0 for lim in limits.values()):
            raise ValueError("query limits must be >= 1 per positive window")
        if in_flight_max < 1:
            raise ValueError("in_flight_max must be >= 1")
        self._limits = dict(limits)
        self._windows: dict[str, deque[float]] = {name: deque() for name in limits}
        self._in_flight_max = in_flight_max
        self._in_flight = 0
        self._admitted = 0
        self._refused = 0

    def admit(self, name: str, now: float) -> float | None:
        """None if a ``name`` query may run now (it then counts as in flight until
        :meth:`done`), else the seconds after which to retry (> 0)."""
        key = name if name in self._limits else "*"
        limit = self._limits[key]
        window = self._windows[key]
        horizon = now - limit.window_s
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= limit.limit:
            self._refused += 1
            return window[0] - horizon
        if self._in_flight >= self._in_flight_max:
            self._refused += 1
            return min(0.5, limit.window_s)
        window.append(now)
        self._in_flight += 1
        self._admitted += 1
        return None

    def done(self) -> None:
        """An admitted query was answered."""
        self._in_flight -= 1

    def statistics(self) -> QueryGateStatistics:
        return QueryGateStatistics(self._in_flight, self._admitted, self._refused)
