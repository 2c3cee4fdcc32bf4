"""What the page needs from NATS, as a port (:class:`PageBus`) and its adapter (:class:`NatsBus`).

Commands go through the normal command path (``tgqr.cmd.<tenant>.<verb>`` requests), so the
page gets the same validation, rate limits and replies as any client. Live events are followed
on the tenant's subject with an ordered JetStream consumer: only stored messages, in order, with
their stream sequence (a plain subscription would also see publishes the stream refused).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol

import anyio
import nats.errors
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events import MAC_HEADER, Head, StoredMessage, TenantLog, event_subject

__all__ = ["Limiter", "NatsBus", "PageBus", "TenantReader"]

log = logging.getLogger("tgqr.page")

_BUFFER: Final = 256


class PageBus(Protocol):
    """The page's view of the service: send a command, follow a tenant's stored events."""

    async def command(self, tenant: str, verb: str, body: Mapping[str, object]) -> dict[str, Any]:
        """The command endpoint's reply (``{"ok": ...}``); ``unavailable`` if none in time."""
        ...

    def follow(
        self, tenant: str, after: int
    ) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[StoredMessage]]:
        """The tenant's messages stored after sequence ``after``, as they arrive."""
        ...


class TenantReader(Protocol):
    """The part of :class:`events.EventLog` the page reads with."""

    async def load_tenant(self, tenant: str, *, after: Head | None = None) -> TenantLog:
        """The tenant's chain as it verifies: its events, its head, its bad messages.

        Raises:
            EventLogUnavailableError: the log did not answer.
        """
        ...


class Limiter(Protocol):
    """A rate limiter like :class:`actors.gateway.RateLimiter` (keys are link ids here)."""

    def check(self, tenant: str, verb: str, now: float) -> float | None: ...


def _unavailable(message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": "unavailable", "message": message}}


class NatsBus:
    """:class:`PageBus` over the page's NATS connection (role ``page``)."""

    def __init__(self, nc: Client, *, stream: str, timeout_s: float = 25.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._stream = stream
        self._timeout_s = timeout_s

    async def command(self, tenant: str, verb: str, body: Mapping[str, object]) -> dict[str, Any]:
        subject = f"tgqr.cmd.{tenant}.{verb}"
        try:
            msg = await self._nc.request(
                subject, json.dumps(body).encode(), timeout=self._timeout_s
            )
            reply = json.loads(msg.data)
        except (nats.errors.Error, OSError, ValueError) as exc:
            # Never the body: it may hold the password.
            log.warning("tenant=%s %s from the page: %s", tenant, verb, type(exc).__name__)
            return _unavailable(f"no answer for {verb}")
        if not isinstance(reply, dict):
            return _unavailable(f"bad answer for {verb}")
        return reply

    @asynccontextmanager
    async def follow(
        self, tenant: str, after: int
    ) -> AsyncIterator[MemoryObjectReceiveStream[StoredMessage]]:
        send, receive = anyio.create_memory_object_stream[StoredMessage](_BUFFER)

        async def deliver(msg: Msg) -> None:
            meta = msg.metadata
            mac = msg.headers.get(MAC_HEADER, "") if msg.headers else ""
            stored_ns = int(meta.timestamp.timestamp() * 1e9)
            message = StoredMessage(meta.sequence.stream, msg.subject, msg.data, mac, stored_ns)
            # A slow page holds back its own consumer only; a closed one drops the rest.
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await send.send(message)

        sub = await self._js.subscribe(
            event_subject(tenant),
            stream=self._stream,
            cb=deliver,
            ordered_consumer=True,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            ),
        )
        try:
            async with send, receive:
                yield receive
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await sub.unsubscribe()
