"""The service's NATS: the embedded nats-server (with its roles) or an external one, connected
as role ``service`` and checked for the permissions the service needs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio
from nats.aio.client import Client

from actors.telemetry import Telemetry

from ._auth import NatsAuth, ensure_credentials, redact_url, resolve_auth
from ._config import ServiceConfig
from ._connect import Violations, connect_nats, requires_auth
from ._natsserver import NatsServer, start_nats_server
from ._preflight import check_service_permissions

__all__ = ["NATS_URL_FILE", "open_service_nats"]

log = logging.getLogger("tgqr.service")

NATS_URL_FILE: Final = "nats.url"


@asynccontextmanager
async def open_service_nats(
    config: ServiceConfig, telemetry: Telemetry | None = None
) -> AsyncIterator[tuple[str, Client]]:
    """The URL to show (no password in it) and a connection as role ``service``, drained when
    the block exits; the embedded server (``config.nats_urls is None``) is started first, with
    every role's credentials made on first start, and stopped last.

    Raises:
        NatsServerError: the embedded server did not start.
        NatsConnectError: NATS cannot be reached or refuses the service's credentials.
        PermissionMissingError: the service's user lacks a permission it needs.
        ConfigError: a credentials file named or found cannot be used.
    """
    server: NatsServer | None = None
    if config.nats_urls is None:
        users = ensure_credentials(config.data_dir)
        store = config.data_dir / "nats"
        server = await anyio.to_thread.run_sync(
            lambda: start_nats_server(store, users=users, sync=config.nats_sync)
        )
        (config.data_dir / NATS_URL_FILE).write_text(server.url + "\n")
        urls: tuple[str, ...] = (server.url,)
        auth = NatsAuth("service", credentials=users["service"])
    else:
        urls = config.nats_urls
        auth = resolve_auth(
            "service",
            data_dir=config.data_dir,
            urls=urls,
            creds=str(config.nats_creds) if config.nats_creds else None,
            nkey=str(config.nats_nkey) if config.nats_nkey else None,
            env={},
        )
    try:
        violations = Violations()
        nc = await connect_nats(urls, auth=auth, violations=violations, telemetry=telemetry)
        try:
            await check_service_permissions(nc, violations, auth.describe())
            violations.log = True  # from now on a refusal is a surprise: log it
            if not requires_auth(nc):
                log.warning(
                    "NATS at %s requires no authentication: any client on it can act as any "
                    "role (service, app, auditor, page); see README, 'Roles and credentials'",
                    redact_url(urls[0]),
                )
            yield redact_url(urls[0]), nc
        finally:
            # Shielded: this runs while the service is being cancelled. A drain that does
            # not finish in time (a refused request still pending) still ends in a close.
            with anyio.CancelScope(shield=True):
                if nc.is_connected:  # draining a reconnecting client raises at once
                    with anyio.move_on_after(5):
                        await nc.drain()
                if not nc.is_closed:
                    # The server may be gone already (its transport lost): nothing to flush.
                    with contextlib.suppress(OSError):
                        await nc.close()
    finally:
        if server is not None:
            (config.data_dir / NATS_URL_FILE).unlink(missing_ok=True)
            # Shielded: this runs while the service is being cancelled.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.stop)
