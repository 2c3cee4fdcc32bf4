"""uvicorn's h11 protocol with the bounds it lacks: read deadlines and connection caps.

uvicorn 0.55 has ``timeout_keep_alive`` (idle between requests) and ``limit_concurrency``
(checked only once a request's headers are complete, answered with a 503 while the connection
stays open), but no deadline on reading a request: a connection that sends one header byte a
minute, or nothing at all, is held for ever. :func:`guarded_protocol` subclasses its
``H11Protocol`` (a plain ``asyncio.Protocol``, so no extra task per connection):

- a header deadline from the connection's start, and from the first byte of each following
  request, cancelled once the request line and headers are parsed;
- then a body deadline, cancelled once the body is complete;
- a connection beyond the overall cap, or beyond the cap of its client address, gets a bare
  503 and is closed at once, before anything of it is parsed.

Deadlines are the event loop's timers (``loop.call_later``): cheap, and exact enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._limits import ServeLimits

__all__ = ["ConnectionGuard", "guarded_protocol"]

log = logging.getLogger("tgqr.page")

_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 26\r\nretry-after: 10\r\nconnection: close\r\n\r\n"
    b"Too many connections. Wait"
)


@dataclass
class ConnectionGuard:
    """The connections of one server: counted overall and per client address."""

    limits: ServeLimits
    _by_client: Counter[str] = field(default_factory=Counter)
    open: int = 0
    refused: int = 0
    cut: int = 0

    def admit(self, client: str) -> bool:
        """Count a new connection from ``client``; False (nothing counted) beyond a cap."""
        if self.open >= self.limits.max_connections:
            self.refused += 1
            return False
        if self._by_client[client] >= self.limits.max_per_client:
            self.refused += 1
            return False
        self.open += 1
        self._by_client[client] += 1
        return True

    def leave(self, client: str) -> None:
        self.open -= 1
        self._by_client[client] -= 1
        if self._by_client[client] <= 0:
            del self._by_client[client]

    def statistics(self) -> dict[str, int]:
        """Open connections, client addresses, refused and cut connections so far."""
        return {
            "open": self.open,
            "clients": len(self._by_client),
            "refused": self.refused,
            "cut": self.cut,
        }


class _GuardedH11(H11Protocol):
    """H11Protocol with read deadlines and the caps of :attr:`guard` (set by the factory)."""

    guard: ConnectionGuard

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""
        self._admitted = False
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else ""
        if not self.guard.admit(self._peer):
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._arm("headers", self.guard.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self.guard.leave(self._peer)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            # The first bytes of a request after an idle keep-alive: its headers' deadline.
            self._arm("headers", self.guard.limits.header_timeout_s)
        super().data_received(data)
        self._follow()

    def _follow(self) -> None:
        """Move the deadline along with the request: headers, then body, then none."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.guard.limits.body_timeout_s)
            return
        self._disarm()  # the request is read (or the connection is over)

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = ""

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.cut += 1
        log.debug("page: a connection did not send its request %s in time", self._phase)
        # abort(): whatever the peer left unsent or unread is dropped with the connection.
        self.transport.abort()


def guarded_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    """An ``H11Protocol`` class (uvicorn's ``Config(http=...)``) bound to ``guard``."""
    return type("GuardedH11Protocol", (_GuardedH11,), {"guard": guard})
