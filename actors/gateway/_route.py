"""Requests reach the instance that owns their tenant (several instances on one NATS).

Every instance serves ``tgqr.cmd.*.*`` and ``tgqr.session.*.*`` in one queue group, so a
request lands on any of them. :class:`Router` hands it to the local endpoint when this
instance owns the tenant, and otherwise forwards it as a request to
``tgqr.inst.<owner>.<original subject>`` (inside tgqr's own account: no client can publish
there) and relays the owner's reply, byte for byte. The owner takes a forwarded request
through the same admission as any other (its reply guard, dedupe, rate limits).

While a tenant has no owner (an instance died and its heartbeat has not expired yet, or a
partition is being handed over) the request waits for one, up to ``wait_owner_s``; then it is
answered ``unavailable`` with ``retry_after_s``. A request whose reply subject is not an inbox
is never forwarded: the local endpoint drops and counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import anyio
import nats.errors
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.request import Request

from actors.telemetry import Telemetry

from ._parse import error_reply
from ._pending import respond
from ._reply import allowed_reply

__all__ = ["FORWARD_PREFIX", "Owners", "Router"]

log = logging.getLogger("tgqr.route")

FORWARD_PREFIX: Final = "tgqr.inst."
_RETRY_S: Final = 1.0
Handler = Callable[[Request], Awaitable[None]]


class Owners(Protocol):
    """What the router needs of :class:`actors.ownership.Ownership`."""

    me: str

    def owner_of(self, tenant: str) -> str | None: ...
    def holds(self, tenant: str) -> bool: ...
    async def changed(self) -> None: ...


class Router:
    """Start with ``await tg.start(router.run)``; wrap each endpoint's handler with
    :meth:`route` under the subject prefix it serves."""

    def __init__(
        self,
        nc: Client,
        owners: Owners,
        *,
        reply_timeout_s: float = 20.0,
        wait_owner_s: float = 6.0,
        in_flight_max: int = 4096,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._nc = nc
        self._owners = owners
        self._reply_timeout_s = reply_timeout_s
        self._wait_owner_s = wait_owner_s
        self._in_flight_max = in_flight_max
        self._telemetry = telemetry
        self._handlers: dict[str, Handler] = {}
        self._tg: TaskGroup | None = None
        self._in_flight = 0
        self.forwarded = 0

    def route(self, prefix: str, handler: Handler) -> Handler:
        """The micro handler for requests on ``<prefix><tenant>.<verb>``."""
        self._handlers[prefix] = handler

        async def routed(request: Request) -> None:
            tenant = _tenant(request.subject)
            if tenant is None or not allowed_reply(request._msg.reply):
                await handler(request)  # answered (or dropped and counted) there
                return
            if self._owners.holds(tenant):
                await handler(request)
                return
            if self._tg is None or self._in_flight >= self._in_flight_max:
                await respond(request, _unavailable("too many requests being forwarded"))
                return
            self._in_flight += 1
            self._tg.start_soon(self._forward, tenant, request, handler)

        return routed

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve forwarded requests and run forwards until cancelled."""
        sub = await self._nc.subscribe(
            f"{FORWARD_PREFIX}{self._owners.me}.>",
            cb=self._forwarded,
            pending_msgs_limit=4096,
            pending_bytes_limit=32 * 1024 * 1024,
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                if not self._nc.is_closed:
                    await sub.unsubscribe()

    async def _forwarded(self, msg: Msg) -> None:
        """A request another instance forwarded here: run it if this instance owns it."""
        original = msg.subject[len(FORWARD_PREFIX) + len(self._owners.me) + 1 :]
        request = Request(
            Msg(self._nc, subject=original, reply=msg.reply, data=msg.data, headers=msg.headers)
        )
        handler = next((h for p, h in self._handlers.items() if original.startswith(p)), None)
        tenant = _tenant(original)
        if handler is None or tenant is None:
            return
        if not self._owners.holds(tenant):
            await respond(request, _unavailable("the tenant moved to another instance"))
            return
        await handler(request)

    async def _forward(self, tenant: str, request: Request, handler: Handler) -> None:
        try:
            with anyio.move_on_after(self._wait_owner_s) as waiting:
                while True:
                    if self._owners.holds(tenant):
                        await handler(request)
                        return
                    owner = self._owners.owner_of(tenant)
                    if owner not in (None, self._owners.me):
                        reply = await self._ask(owner, request)
                        if reply is not None:
                            await respond(request, reply)
                            return
                    await self._owners.changed()  # no owner, or a dead one: wait for a change
            if waiting.cancelled_caught:
                await respond(request, _unavailable("no instance owns this tenant right now"))
        finally:
            self._in_flight -= 1

    async def _ask(self, owner: str, request: Request) -> bytes | None:
        """The owner's reply (None: nobody listens there any more)."""
        self.forwarded += 1
        msg = request._msg
        try:
            answer = await self._nc.request(
                f"{FORWARD_PREFIX}{owner}.{msg.subject}",
                msg.data,
                timeout=self._reply_timeout_s * 3 + 2,
                headers=msg.headers,
            )
        except nats.errors.NoRespondersError:
            return None
        except nats.errors.TimeoutError:
            return _unavailable("the owning instance did not answer in time")
        return answer.data


def _tenant(subject: str) -> str | None:
    parts = subject.split(".")
    return parts[2] if len(parts) == 4 else None


def _unavailable(message: str) -> bytes:
    return error_reply("unavailable", f"{message}; retry", retry_after_s=_RETRY_S)
