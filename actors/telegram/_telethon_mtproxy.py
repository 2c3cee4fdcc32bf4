"""Telethon's MTProxy connections, closing their socket when the proxy refuses.

Telethon's ``TcpMTProxy._connect`` sees a proxy close the connection after the 64-byte init
(what an MTProxy does with another secret) and calls ``disconnect()``, which does nothing
before the connection counts as connected: the socket stays open until the garbage collector
finds it, one per attempt. These subclasses close it.
"""

from __future__ import annotations

from typing import Any

from telethon.network.connection import (
    ConnectionTcpMTProxyIntermediate,
    ConnectionTcpMTProxyRandomizedIntermediate,
)

__all__ = ["MTProxyIntermediate", "MTProxyRandomizedIntermediate"]


async def _connect_or_close(connection: Any, connect: Any, kwargs: dict[str, Any]) -> None:
    try:
        await connect(**kwargs)
    except BaseException:
        writer = connection._writer  # Telethon's own socket, left open
        if writer is not None:
            writer.close()
        raise


class MTProxyIntermediate(ConnectionTcpMTProxyIntermediate):  # type: ignore[misc]
    """``ConnectionTcpMTProxyIntermediate`` that closes its socket on a refused init."""

    async def _connect(self, **kwargs: Any) -> None:  # Telethon passes timeout and ssl
        await _connect_or_close(self, super()._connect, kwargs)


class MTProxyRandomizedIntermediate(ConnectionTcpMTProxyRandomizedIntermediate):  # type: ignore[misc]
    """``ConnectionTcpMTProxyRandomizedIntermediate`` (``dd`` secrets) that closes its socket
    on a refused init."""

    async def _connect(self, **kwargs: Any) -> None:  # Telethon passes timeout and ssl
        await _connect_or_close(self, super()._connect, kwargs)
