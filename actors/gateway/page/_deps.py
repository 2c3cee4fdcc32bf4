"""What the page's handlers are given: the log, the chain key, the bus, the signer, the limits."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from events import ChainKey

from ._bus import Limiter, PageBus, TenantReader
from ._initdata import TelegramAuth
from ._limits import StreamSlots
from ._links import LinkSigner

__all__ = ["PAGE_LIMITS", "PageDeps", "utcnow"]

PAGE_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {"view": 60, "events": 30, "start": 6, "password": 10, "telegram": 10}
)
"""Requests per link per minute, by kind (a :class:`RateLimiter` keyed by link id)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PageDeps:
    """Everything the page app needs, wired by the composition root.

    ``public_origins``: the origins a form POST may come from (the public URL's, and the
    address the server is bound to). ``streams``: the live streams' caps. ``keepalive_s``:
    how often an idle live stream sends a comment (proxies drop silent connections).
    ``telegram``: how a Mini App's launch data is checked (None: the page ignores it).
    """

    log: TenantReader
    chain_key: ChainKey
    bus: PageBus
    signer: LinkSigner
    limiter: Limiter
    public_origins: frozenset[str]
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(200, 4))
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic
    keepalive_s: float = 15.0
    https: bool = field(default=False)
    telegram: TelegramAuth | None = None
