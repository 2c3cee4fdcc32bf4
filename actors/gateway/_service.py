"""The ``nats.micro`` service ``tgqr`` with bounded subscriptions and rate-limited ``$SRV``.

nats.micro's ``add_service`` subscribes its endpoints and the nine ``$SRV`` control subjects
with nats-py's default pending limits (half a million messages each) and answers every
``$SRV.PING/INFO/STATS`` to whatever reply subject arrived. Here the same ``Service`` object
keeps the bookkeeping (ids, per-endpoint stats, the INFO and STATS bodies), but the
subscriptions are ours:

- every one has bounded pending messages and bytes; the excess is dropped by nats-py as a
  slow consumer (logged once per interval by the connection, see ``connect_nats``);
- a ``$SRV`` request is answered only to an inbox, at most ``SRV_PER_S[verb]`` a second for
  this instance (global: a request carries no identity its sender cannot choose); the rest is
  dropped without a reply, which a discovery client already reads as "no such service", and
  counted (metric, one log line per interval).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Final

import anyio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.request import Request
from nats.micro.service import (
    DEFAULT_QUEUE_GROUP,
    Endpoint,
    EndpointConfig,
    Service,
    ServiceConfig,
    ServicePing,
    ServiceVerb,
    control_subject,
)

from actors.telemetry import Telemetry

from ._pending import respond
from ._ratelimit import RateLimiter
from ._reply import ReplyGuard
from ._throttle import Repeats

__all__ = [
    "ENDPOINT_PENDING_BYTES",
    "ENDPOINT_PENDING_MSGS",
    "SRV_PER_S",
    "MicroEndpoint",
    "open_micro_service",
]

log = logging.getLogger("tgqr.commands")

MicroEndpoint = tuple[str, str, Callable[[Request], Awaitable[None]]]
"""(name, subject, handler) of an endpoint of the ``tgqr`` service."""

SRV_PER_S: Final[Mapping[str, int]] = MappingProxyType({"PING": 50, "INFO": 20, "STATS": 20})
"""``$SRV`` requests answered per second and verb by one instance (the rest are dropped)."""
ENDPOINT_PENDING_MSGS: Final = 1024
"""Requests nats-py holds per endpoint while admission's queue is full (~a second's work)."""
ENDPOINT_PENDING_BYTES: Final = 16 * 1024 * 1024
"""... and their bytes (bodies are at most 64 KiB)."""
_SRV_PENDING_MSGS: Final = 64
_SRV_PENDING_BYTES: Final = 256 * 1024


@asynccontextmanager
async def open_micro_service(
    nc: Client,
    *,
    name: str,
    version: str,
    description: str,
    endpoints: Sequence[MicroEndpoint],
    telemetry: Telemetry | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    srv_per_s: Mapping[str, int] = SRV_PER_S,
) -> AsyncIterator[Service]:
    """The service, registered with the server when this yields; its subscriptions end when
    the block exits (shielded, at most 2 s).

    Raises:
        nats.errors.Error: subscribing failed or the connection closed.
    """
    service = Service(nc, ServiceConfig(name=name, version=version, description=description))
    subs: list[Subscription] = []
    srv = _Control(
        service,
        name=name,
        version=version,
        telemetry=telemetry,
        monotonic=monotonic,
        per_s=srv_per_s,
    )
    try:
        for verb in ServiceVerb:
            for subject in (
                control_subject(verb, name=None, id=None),
                control_subject(verb, name=name, id=None),
                control_subject(verb, name=name, id=service.id),
            ):
                sub = await nc.subscribe(
                    subject,
                    cb=srv.handler(verb),
                    pending_msgs_limit=_SRV_PENDING_MSGS,
                    pending_bytes_limit=_SRV_PENDING_BYTES,
                )
                subs.append(sub)
        for endpoint_name, subject, handler in endpoints:
            endpoint = Endpoint(
                service,
                EndpointConfig(
                    name=endpoint_name,
                    subject=subject,
                    handler=handler,
                    queue_group=DEFAULT_QUEUE_GROUP,
                ),
            )
            endpoint._subscription = await nc.subscribe(
                subject,
                queue=DEFAULT_QUEUE_GROUP,
                cb=endpoint._handle_request,
                pending_msgs_limit=ENDPOINT_PENDING_MSGS,
                pending_bytes_limit=ENDPOINT_PENDING_BYTES,
            )
            subs.append(endpoint._subscription)
            service._endpoints.append(endpoint)
        await nc.flush()
        yield service
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            for sub in subs:
                if not nc.is_closed:
                    try:
                        await sub.unsubscribe()
                    except Exception as exc:  # closed meanwhile: nothing left to stop
                        log.debug("unsubscribe failed: %s", type(exc).__name__)
            srv.repeats.flush()


class _Control:
    """Answers ``$SRV`` requests: to an inbox only, within the per-verb rate."""

    def __init__(
        self,
        service: Service,
        *,
        name: str,
        version: str,
        telemetry: Telemetry | None,
        monotonic: Callable[[], float],
        per_s: Mapping[str, int],
    ) -> None:
        self._service = service
        self._ping = json.dumps(
            ServicePing(id=service.id, name=name, version=version, metadata={}).to_dict()
        ).encode()
        self._telemetry = telemetry
        self._monotonic = monotonic
        self._limiter = RateLimiter(per_s, window_s=1.0)
        self.guard = ReplyGuard(clock=monotonic)
        self.repeats = Repeats(log, monotonic)

    def handler(self, verb: ServiceVerb) -> Callable[[Msg], Awaitable[None]]:
        async def answer(msg: Msg) -> None:
            if not self.guard.allows(msg.subject, msg.reply):
                return
            if self._limiter.check("$SRV", verb.value, self._monotonic()) is not None:
                if self._telemetry is not None:
                    self._telemetry.requests_refused("$SRV", "rate_limited")
                self.repeats.note("$SRV requests over the rate limit dropped", verb.value)
                return
            await respond(Request(msg), self._body(verb))

        return answer

    def _body(self, verb: ServiceVerb) -> bytes:
        if verb is ServiceVerb.PING:
            return self._ping
        if verb is ServiceVerb.INFO:
            return json.dumps(self._service.info().to_dict()).encode()
        return json.dumps(self._service.stats().to_dict()).encode()
