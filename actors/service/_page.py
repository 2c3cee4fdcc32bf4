"""Wiring of the end user's page into the service: its HTTP server, keys and limits."""

from __future__ import annotations

from nats.aio.client import Client

from actors.gateway import RateLimiter
from actors.gateway.page import (
    PAGE_LIMITS,
    HttpAddressError,
    LinkKeyError,
    PageServer,
    load_link_key,
    open_page_server,
)
from events import ChainKey
from events.jetstream import STREAM, JetStreamEventLog

from ._config import ConfigError, ServiceConfig

__all__ = ["open_page"]


def open_page(
    config: ServiceConfig, nc: Client, event_log: JetStreamEventLog, key: ChainKey
) -> PageServer:
    """The page's server, bound to ``config.http`` now; close it (or enter it) to stop listening.

    Blocks briefly on the file system (the link key). Raises:
        ConfigError: the address cannot be listened on, or the link key is unusable.
    """
    try:
        return open_page_server(
            config.http or "",
            nc=nc,
            event_log=event_log,
            chain_key=key,
            link_key=load_link_key(config.data_dir),
            limiter=RateLimiter(PAGE_LIMITS),
            stream=STREAM,
            public_url=config.public_url,
        )
    except (HttpAddressError, LinkKeyError) as exc:
        raise ConfigError(str(exc)) from None
