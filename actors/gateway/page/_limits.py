"""What one page process may spend: connections, read time, live streams, open files.

A flood on the HTTP port costs the page process only (it runs apart from the actors), and
these bounds keep it serving everyone else meanwhile: a client that never finishes its request
is cut after ``header_timeout_s`` (its body after ``body_timeout_s``), no client address holds
more than ``max_per_client`` connections, and the live streams (each holds a consumer on the
log) are capped overall and per tenant.
"""

from __future__ import annotations

import logging
import resource
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Final

__all__ = [
    "FD_RESERVE",
    "ServeLimits",
    "StreamSlots",
    "raise_open_files_limit",
]

log = logging.getLogger("tgqr.page")

FD_RESERVE: Final = 128
"""Open files kept for everything but client connections (NATS, logs, static files)."""


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """The page server's bounds (``tgqr page`` options of the same names)."""

    header_timeout_s: float = 5.0
    """A request's line and headers must arrive within this, from its first byte (or from the
    connection's start): slow-header ("slowloris") connections are closed."""
    body_timeout_s: float = 10.0
    """A request's body must arrive within this after its headers."""
    keep_alive_s: int = 5
    """An idle kept-alive connection is closed after this."""
    max_connections: int = 4096
    """Open client connections at once (lowered to fit the open-files limit)."""
    max_per_client: int = 64
    """Open connections per client address (behind a proxy: the proxy's address)."""
    max_streams: int = 200
    """Live-update streams at once (each holds one ordered consumer on the log)."""
    max_streams_per_tenant: int = 4
    """Live-update streams of one tenant at once (a page open in a few tabs)."""

    def fitted(self, open_files: int) -> ServeLimits:
        """These limits with ``max_connections`` at most ``open_files - FD_RESERVE``."""
        room = max(1, open_files - FD_RESERVE)
        if self.max_connections <= room:
            return self
        log.warning(
            "page: at most %d connections (open files limit %d), not %d",
            room,
            open_files,
            self.max_connections,
        )
        return replace(self, max_connections=room)


def raise_open_files_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; return the soft limit now
    in force (systemd's default soft limit is 1024, far below what a server may hold)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    # "unlimited" is not accepted as a soft limit everywhere: a large finite one instead.
    target = max(soft, 1 << 20) if hard == resource.RLIM_INFINITY else hard
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("page: cannot raise the open files limit above %d", soft)
    return int(soft)


@dataclass
class StreamSlots:
    """Counts the live streams, overall and per tenant; :meth:`take` refuses beyond the caps."""

    limit: int
    per_tenant: int
    _by_tenant: Counter[str] = field(default_factory=Counter)
    _total: int = 0

    def take(self, tenant: str) -> bool:
        """Take a slot for one of ``tenant``'s streams; False when a cap is reached (then
        nothing is taken). Give it back with :meth:`give_back`."""
        if self._total >= self.limit or self._by_tenant[tenant] >= self.per_tenant:
            return False
        self._total += 1
        self._by_tenant[tenant] += 1
        return True

    def give_back(self, tenant: str) -> None:
        self._total -= 1
        self._by_tenant[tenant] -= 1
        if self._by_tenant[tenant] <= 0:
            del self._by_tenant[tenant]

    def statistics(self) -> dict[str, int]:
        return {"streams": self._total, "tenants": len(self._by_tenant)}
