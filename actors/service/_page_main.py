"""The page process itself (``tgqr page``): a NATS client of role ``page`` serving the page.

It reads the log (under auth: the clients' mirror of it) and sends ``start`` and ``password``
through the command path like any client; it holds no vault key, no service credential, and
nothing it does can stop the actors. At start it raises its soft open-files limit to the hard
one and fits its connection cap under it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from actors.gateway import RateLimiter
from actors.gateway.page import (
    PAGE_LIMITS,
    HttpAddressError,
    LinkKeyError,
    NatsBus,
    ServeLimits,
    TelegramAuthError,
    bind_http,
    load_link_key,
    load_telegram_auth,
    open_page_server,
    raise_open_files_limit,
)
from events.jetstream import STREAM, JetStreamEventLog

from ._auth import resolve_auth
from ._config import ConfigError, load_chain_key
from ._connect import Violations, connect_nats

__all__ = ["PageOptions", "run_page"]

log = logging.getLogger("tgqr.page")


@dataclass(frozen=True)
class PageOptions:
    """How one page process runs (the options of ``tgqr page``).

    ``http``: the address to bind, or None with ``listen_fd`` (a socket already listening,
    handed over by ``tgqr up``). ``keys``: ``TGQR_CHAIN_KEY`` / ``TGQR_LINK_KEY`` as the
    environment would give them; a key not there is read from its file under ``data_dir``
    (never created: a key of the page's own would match no link and no event); and
    ``TGQR_BOT_TOKEN`` for the Mini App check (else the environment's, see
    :func:`actors.gateway.page.load_telegram_auth`).
    """

    data_dir: Path
    nats_urls: tuple[str, ...] = field(repr=False)  # may carry user:password@
    http: str | None = None
    listen_fd: int | None = None
    keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    creds: str | None = None
    nkey: str | None = None
    public_url: str | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)


def _socket(options: PageOptions) -> socket.socket:
    if options.listen_fd is not None:
        sock = socket.socket(fileno=options.listen_fd)
        sock.set_inheritable(False)
        return sock
    try:
        return bind_http(options.http or "")
    except HttpAddressError as exc:
        raise ConfigError(str(exc)) from None


async def run_page(
    options: PageOptions,
    *,
    env: Mapping[str, str] = os.environ,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the page until cancelled; reports its URL once it serves.

    Raises:
        ConfigError: a key or the address cannot be used.
        NatsConnectError: NATS cannot be reached or refuses the page's credentials.
        RuntimeError: the web server stopped by itself.
    """
    limits = options.limits.fitted(raise_open_files_limit())
    chain_key = load_chain_key(options.data_dir, options.keys, create=False)
    try:
        link_key = load_link_key(options.data_dir, options.keys, create=False)
        telegram = load_telegram_auth(options.keys, env)
    except (LinkKeyError, TelegramAuthError) as exc:
        raise ConfigError(str(exc)) from None
    sock = _socket(options)
    try:
        auth = resolve_auth(
            "page",
            data_dir=options.data_dir,
            urls=options.nats_urls,
            creds=options.creds,
            nkey=options.nkey,
            env=env,
        )
        nc = await connect_nats(
            options.nats_urls, name="tgqr-page", auth=auth, violations=Violations(log=True)
        )
    except BaseException:
        sock.close()
        raise
    try:
        server = open_page_server(
            sock,
            bus=NatsBus(nc, stream=STREAM),
            event_log=JetStreamEventLog(nc.jetstream(timeout=5), chain_key),
            chain_key=chain_key,
            link_key=link_key,
            limiter=RateLimiter(PAGE_LIMITS),
            limits=limits,
            public_url=options.public_url,
            telegram=telegram,
        )
        with server:
            async with anyio.create_task_group() as tg:
                await tg.start(server.run)
                log.info(
                    "page: serving as %s, at most %d connections (%d per client)",
                    auth.describe(),
                    limits.max_connections,
                    limits.max_per_client,
                )
                if telegram is not None:
                    how = (
                        "the bot token"
                        if telegram.token
                        else f"Telegram's key (bot {telegram.bot_id})"
                    )
                    log.info("page: Mini App launch data is checked with %s", how)
                task_status.started(server.url)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(3):
            await nc.drain()
        if not nc.is_closed:
            await nc.close()
