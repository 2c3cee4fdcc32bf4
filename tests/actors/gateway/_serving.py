"""The command and session endpoints on a real nats-server, in front of the real supervisor
with a stand-in actor that answers every command at once (no Telegram, no event log writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client

from actors.gateway import (
    DEFAULT_LIMITS,
    CommandEndpoint,
    DedupeStore,
    RateLimiter,
    SessionEndpoint,
)
from actors.login import CommandReply, Envelope, Mail, refuse_mail
from actors.service import connect_nats
from actors.supervision import TenantSupervisor
from actors.telemetry import Telemetry
from events import ChainKey, MemoryEventLog


@dataclass
class Clock:
    """A monotonic clock the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class EchoActors:
    """Each tenant's "actor": answers every command ok and records that it ran."""

    ran: list[tuple[str, str]] = field(default_factory=list)

    async def runner(
        self,
        tenant: str,
        _send: MemoryObjectSendStream[Mail],
        receive: MemoryObjectReceiveStream[Mail],
    ) -> None:
        async for mail in receive:
            if isinstance(mail, Envelope) and mail.claim():
                self.ran.append((tenant, type(mail.command).__name__))
                mail.answer(
                    CommandReply(ok=True, tenant=tenant, attempt=len(self.ran), state="pending")
                )


@asynccontextmanager
async def serving(
    url: str,
    *,
    clock: Clock,
    actors: EchoActors,
    limits: Mapping[str, int] = DEFAULT_LIMITS,
    dedupe: DedupeStore | None = None,
    telemetry: Telemetry | None = None,
) -> AsyncIterator[Client]:
    """Serve commands and leases on ``url`` until the block exits; yields the service's own
    connection (made by ``connect_nats``, as the service makes it)."""
    nc = await connect_nats([url], reconnect=False, telemetry=telemetry)
    try:
        async with anyio.create_task_group() as tg:
            supervisor = TenantSupervisor[Mail](
                actors.runner,
                event_log=MemoryEventLog(ChainKey(b"k" * 32)),
                clock=lambda: datetime.now(UTC),
                monotonic=clock,
                sleep=anyio.sleep,
                random=lambda: 0.5,
                refuse=refuse_mail,
            )
            await tg.start(supervisor.run)
            sessions = SessionEndpoint(nc, supervisor, monotonic=clock, telemetry=telemetry)
            await tg.start(sessions.run)
            endpoint = CommandEndpoint(
                nc,
                supervisor,
                limiter=RateLimiter(limits),
                monotonic=clock,
                dedupe=dedupe,
                telemetry=telemetry,
                more_endpoints=[sessions.endpoint],
            )
            await tg.start(endpoint.run)
            yield nc
            tg.cancel_scope.cancel()
    finally:
        await nc.close()
