"""The demo's session handoff: an app ("parser") leases alice's session with the app helper
(:mod:`actors.lease_client`, HPKE ML-KEM-768 + X25519), opens it with Telethon against the
simulator, calls ``get_me``, and releases it on leaving the block."""

from __future__ import annotations

from typing import Any, Protocol

from nats.aio.client import Client
from telethon import TelegramClient
from telethon.sessions import StringSession

from actors.lease_client import lease_session
from actors.sim import Simulator
from actors.telegram import SIMULATOR_API_HASH, SIMULATOR_API_ID
from events import Event

__all__ = ["lease_flow"]


class _Client(Protocol):
    nc: Client

    async def expect(self, tenant: str, kind: str, within_s: float = 30) -> Event: ...


async def _get_me(session: str) -> int | None:
    client: Any = TelegramClient(StringSession(session), SIMULATOR_API_ID, SIMULATOR_API_HASH)
    await client.connect()
    try:
        me = await client.get_me()
    finally:
        await client.disconnect()
    return None if me is None else int(me.id)


async def lease_flow(
    c: _Client, sim: Simulator, tenant: str = "alice", user_id: int = 1001
) -> bool:
    """Lease ``tenant``'s session as app ``parser`` and use it; whether get_me was ``user_id``."""
    print(f"\n== session handoff: app 'parser' leases {tenant}'s session, sealed to its key")
    sim.register_with_telethon()
    async with lease_session(c.nc, tenant, holder="parser", ttl_s=60) as lease:
        await c.expect(tenant, "SessionLeased")
        seen = await _get_me(lease.session)
        print(
            f"  app 'parser' leased {tenant}'s session: get_me -> user {seen} "
            f"(fence {lease.fence}, {lease.suite}, until {lease.expires_at:%H:%M:%S})"
        )
    await c.expect(tenant, "SessionReleased")
    return seen == user_id
