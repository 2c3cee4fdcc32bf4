"""The admission skeleton of the command and session endpoints: queue -> admit -> serve.

1. **Queue.** The micro handler (:meth:`Admission.enqueue`) drops a request whose reply subject
   is not an inbox (:mod:`._reply`), answers ``rate_limited`` when too many requests are in
   flight, else queues it (bounded; a full queue holds up the subscription, whose own bounded
   pending then drops the excess as a slow consumer).
2. **Admit.** One task takes requests off the queue in arrival order and admits each without
   awaiting: a ``Nats-Msg-Id`` seen within the dedupe window shares the first request's reply;
   anything else goes to the endpoint's ``decide`` (parse, rate limit, hand to the mailbox),
   which returns a :class:`Ticket`.
3. **Serve.** One task per request: the ticket's ``prepare`` (an earlier command of the same
   tenant, a durable claim), the wait for the actor's answer, the ticket's ``finish`` (keep a
   durable reply), then the one reply through :func:`._pending.respond`.

A request that did not run (``rate_limited``, ``unavailable``) gives its ``Nats-Msg-Id`` up,
so a retry with the same id runs; one that ran keeps it for the window.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from nats.micro.request import Request

from actors.telemetry import Telemetry

from ._parse import error_reply
from ._pending import Pending, RecentIds, respond, wait_answer
from ._reply import ReplyGuard

__all__ = ["Admission", "Decide", "Ticket"]

log = logging.getLogger("tgqr.commands")

QUEUE_MAX: Final = 1024
IN_FLIGHT_MAX: Final = 10_000
_BUSY_RETRY_S: Final = 1.0


@dataclass(slots=True)
class Ticket:
    """What admission made of one request: a ``reply`` to send now, or a ``pending`` request
    whose answer is the reply."""

    reply: bytes = b""
    pending: Pending | None = None
    prepare: Callable[[], Awaitable[None]] | None = None
    """Awaited before the wait for the answer (it may answer ``pending`` itself)."""
    finish: Callable[[], Awaitable[None]] | None = None
    """Awaited after the answer, before the reply is sent (not on cancellation)."""


Decide = Callable[[Request, str | None, float], Ticket]
"""``(request, Nats-Msg-Id or None, now) -> Ticket``: the endpoint's own admission step, called
in arrival order; must not block."""


class Admission:
    """Queues, admits and serves one endpoint's requests. ``await tg.start(admission.run)``
    first, then register :meth:`enqueue` as the micro handler."""

    def __init__(
        self,
        decide: Decide,
        *,
        name: str,
        monotonic: Callable[[], float],
        telemetry: Telemetry | None = None,
        reply_timeout_s: float = 20.0,
        dedupe_window_s: float = 120.0,
        dedupe_max: int = 50_000,
        queue_max: int = QUEUE_MAX,
        in_flight_max: int = IN_FLIGHT_MAX,
    ) -> None:
        self._decide = decide
        self._name = name
        self._monotonic = monotonic
        self._telemetry = telemetry
        self._reply_timeout_s = reply_timeout_s
        self._queue_max = queue_max
        self._in_flight_max = in_flight_max
        self._in_flight = 0  # queued or being served
        # (subject, msg id) -> the request in this process, for the dedupe window.
        self._seen = RecentIds(dedupe_window_s, dedupe_max)
        self._send: MemoryObjectSendStream[Request] | None = None
        self.guard = ReplyGuard(clock=monotonic)

    @property
    def in_flight(self) -> int:
        """Requests queued or being served now."""
        return self._in_flight

    async def enqueue(self, request: Request) -> None:
        """The micro handler: queue ``request`` for :meth:`run`, in arrival order. Blocks
        while the queue is full (the subscription's pending messages then bound the rest)."""
        if not self.guard.allows(request.subject, request._msg.reply):
            return
        send = self._send
        if send is None:
            await respond(request, error_reply("unavailable", f"{self._name} not served now"))
            return
        if self._in_flight >= self._in_flight_max:
            if self._telemetry is not None:
                self._telemetry.requests_refused(self._name, "busy")
            await respond(request, _busy())
            return
        self._in_flight += 1
        try:
            await send.send(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._in_flight -= 1
            await respond(request, error_reply("unavailable", "the service is stopping"))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Admit and serve queued requests until cancelled (each one answered)."""
        send, receive = anyio.create_memory_object_stream[Request](self._queue_max)
        self._in_flight = 0  # a restarted run: what the last one queued is gone
        try:
            async with anyio.create_task_group() as tg, send, receive:
                self._send = send
                task_status.started()
                async for request in receive:
                    tg.start_soon(self._serve, request, self._admit(request))
        finally:
            self._send = None

    def _admit(self, request: Request) -> Ticket:
        msg_id = (request.headers or {}).get("Nats-Msg-Id") or None
        now = self._monotonic()
        key = (request.subject, msg_id) if msg_id else None
        if key is not None:
            seen = self._seen.get(key, now)
            if seen is not None:
                return Ticket(pending=seen)  # shares the first one's reply; nothing to own
        ticket = self._decide(request, msg_id, now)
        if key is not None and ticket.pending is not None:
            self._seen.put(key, ticket.pending, now)
            ticket.finish = _then(ticket.finish, self._forget_unless_ran, key, ticket.pending)
        return ticket

    async def _serve(self, request: Request, ticket: Ticket) -> None:
        """Send the one reply: the actor's answer, or ``unavailable`` if the request did not
        start in time (it then never runs) or the service stops first."""
        try:
            pending = ticket.pending
            if pending is None:
                await respond(request, ticket.reply)
                return
            try:
                if ticket.prepare is not None:
                    await ticket.prepare()
                await wait_answer(pending, self._reply_timeout_s)
            except anyio.get_cancelled_exc_class():
                pending.settle("the service is stopping; retry")
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await respond(request, pending.reply)
                raise
            if ticket.finish is not None:
                await ticket.finish()
            await respond(request, pending.reply)
        finally:
            self._in_flight -= 1

    async def _forget_unless_ran(self, key: tuple[str, str], pending: Pending) -> None:
        if not pending.ran:
            self._seen.forget(key, pending)  # a retry under the same id may run it


def _then(
    first: Callable[[], Awaitable[None]] | None,
    then: Callable[[tuple[str, str], Pending], Awaitable[None]],
    key: tuple[str, str],
    pending: Pending,
) -> Callable[[], Awaitable[None]]:
    async def both() -> None:
        if first is not None:
            await first()
        await then(key, pending)

    return both


def _busy() -> bytes:
    return error_reply(
        "rate_limited",
        f"too many requests in flight; retry in {_BUSY_RETRY_S:.1f}s",
        retry_after_s=_BUSY_RETRY_S,
    )
