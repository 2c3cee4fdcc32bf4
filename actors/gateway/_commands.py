"""The command endpoint: ``tgqr.cmd.<tenant>.<verb>`` served as the ``nats.micro`` service ``tgqr``.

Requests are taken off the micro endpoint by one task in arrival order and handed to their
tenant's mailbox in that order: synchronously when nothing has to be awaited first, else in
the tenant's *turn* (a chain of events per tenant), so one tenant's commands reach its actor
in the order they arrived while the waits run concurrently (one task per request). The reply
is sent only once the actor answered, that is after the command's first event is stored.

A ``Nats-Msg-Id`` is deduplicated per subject (tenant and verb) within the window: in this
process by the command in flight, across restarts and instances by a durable claim
(:mod:`._dedupe`). A repeat gets the first reply and produces nothing new. A command that never
ran (``unavailable``, ``rate_limited``) gives its claim up, so a retry runs it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request

from actors.login import Cancel, CommandReply, Envelope, Logout, Mail, Password, Start
from actors.supervision import MailboxFullError, StoppedError, TenantSupervisor
from actors.telemetry import Telemetry

from ._dedupe import DEDUPE_ERRORS, PENDING, DedupeStore, dedupe_key, wait_settled
from ._parse import BadRequestError, LinkRequest, error_reply, parse_command
from ._ratelimit import RateLimiter

__all__ = ["COMMAND_SUBJECT", "CommandEndpoint", "error_reply"]

log = logging.getLogger("tgqr.commands")

COMMAND_SUBJECT: Final = "tgqr.cmd.*.*"
_encoder: Final = msgspec.json.Encoder()

MicroEndpoint = tuple[str, str, Callable[[Request], Awaitable[None]]]
"""(name, subject, handler) of another endpoint of the ``tgqr`` service (the session leases)."""
LinkIssuer = Callable[[str, int], Mapping[str, object]]
"""(tenant, ttl_s) -> the ``link`` reply's fields (``url``, ``expires_at``)."""


@dataclass(slots=True)
class _Pending:
    """One command between its request and its reply (shared by local repeats)."""

    tenant: str
    verb: str
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: bytes = b""
    ran: bool = False  # answered by the actor, so a durable repeat must get this reply
    envelope: Envelope | None = None

    def answer(self, reply: CommandReply) -> None:
        if not self.done.is_set():
            self.reply = _encoder.encode(reply.to_json())
            self.ran = reply.ok or reply.error_code not in _NOT_RUN
            self.done.set()

    def answer_raw(self, reply: bytes) -> None:
        if not self.done.is_set():
            self.reply = reply
            self.done.set()

    def settle(self, message: str) -> None:
        """No answer in time: ``unavailable`` now, unless the actor is already running it."""
        if self.envelope is not None:
            self.envelope.expire(self.tenant, message)
        else:
            self.answer(CommandReply.error(self.tenant, "unavailable", message))


_NOT_RUN: Final = frozenset({"unavailable", "rate_limited"})


@dataclass(slots=True)
class _Parsed:
    tenant: str
    verb: str
    command: Start | Password | Cancel | Logout
    headers: dict[str, str]
    key: str | None  # the durable dedupe key, with a Nats-Msg-Id


@dataclass(slots=True)
class _Turn:
    """A command that must await something (its durable claim, or an earlier command of its
    tenant) before it may be handed to the mailbox: ``after`` is set when it may go."""

    parsed: _Parsed
    pending: _Pending
    after: anyio.Event | None
    mine: anyio.Event = field(default_factory=anyio.Event)
    owned: bool = False  # this command holds the durable claim


class CommandEndpoint:
    """Serves commands until cancelled. Start with ``await tg.start(endpoint.run)``."""

    def __init__(
        self,
        nc: Client,
        supervisor: TenantSupervisor[Mail],
        *,
        limiter: RateLimiter,
        monotonic: Callable[[], float],
        dedupe: DedupeStore | None = None,
        telemetry: Telemetry | None = None,
        reply_timeout_s: float = 20.0,
        dedupe_window_s: float = 120.0,
        dedupe_max: int = 50_000,
        version: str = "0.1.0",
        links: LinkIssuer | None = None,
        more_endpoints: Sequence[MicroEndpoint] = (),
    ) -> None:
        self._nc = nc
        self._supervisor = supervisor
        self._limiter = limiter
        self._monotonic = monotonic
        self._dedupe = dedupe
        self._telemetry = telemetry
        self._reply_timeout_s = reply_timeout_s
        self._dedupe_window_s = dedupe_window_s
        self._dedupe_max = dedupe_max
        self._version = version
        self._links = links
        self._more_endpoints = tuple(more_endpoints)
        # (subject, msg id) -> (expiry, pending): repeats while the first is in this process.
        self._seen: OrderedDict[tuple[str, str], tuple[float, _Pending]] = OrderedDict()
        self._turns: dict[str, anyio.Event] = {}  # tenant -> the last turn's "went" event

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Register the micro service and serve; on cancellation stop taking commands first."""
        send, receive = anyio.create_memory_object_stream[Request](1024)

        async def enqueue(request: Request) -> None:
            await send.send(request)

        service = await add_service(
            self._nc, name="tgqr", version=self._version, description="tgqr QR-login commands"
        )
        try:
            await service.add_endpoint(name="command", subject=COMMAND_SUBJECT, handler=enqueue)
            for name, subject, handler in self._more_endpoints:  # one service, one $SRV answer
                await service.add_endpoint(name=name, subject=subject, handler=handler)
            async with anyio.create_task_group() as tg, send, receive:
                task_status.started()
                async for request in receive:
                    tg.start_soon(self._serve, request, self._admit(request))
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await service.stop()

    def _admit(self, request: Request) -> _Pending | _Turn | bytes:
        """In arrival order, without awaiting: a reply, a submitted command, or a turn."""
        try:
            tenant, verb, command = parse_command(request.subject, request.data)
        except BadRequestError as exc:
            return exc.reply
        if isinstance(command, LinkRequest):
            return self._link(tenant, command.ttl_s)
        headers = request.headers or {}
        msg_id = headers.get("Nats-Msg-Id")
        key: str | None = None
        if msg_id:
            self._expire(self._monotonic())
            seen = self._seen.get((request.subject, msg_id))
            if seen is not None:
                return seen[1]
            key = dedupe_key(request.subject, msg_id) if self._dedupe is not None else None
        parsed = _Parsed(tenant, verb, command, headers, key)
        pending = _Pending(tenant, verb)
        if msg_id:
            self._seen[(request.subject, msg_id)] = (
                self._monotonic() + self._dedupe_window_s,
                pending,
            )
            while len(self._seen) > self._dedupe_max:
                self._seen.popitem(last=False)
        if key is None and tenant not in self._turns:
            return self._submit(parsed, pending)
        turn = _Turn(parsed, pending, self._turns.get(tenant))
        self._turns[tenant] = turn.mine
        return turn

    def _link(self, tenant: str, ttl_s: int) -> bytes:
        """``link``: a signed link to the tenant's page, from here (rate limited, no event)."""
        retry_after = self._limiter.check(tenant, "link", self._monotonic())
        if retry_after is not None:
            if self._telemetry is not None:
                self._telemetry.rate_limit_hit(tenant, "link")
            return error_reply(
                "rate_limited",
                f"too many link commands for {tenant}; retry in {retry_after:.1f}s",
                retry_after_s=round(retry_after, 3),
            )
        if self._links is None:
            return error_reply("unavailable", "this service serves no web page (no --http)")
        return _encoder.encode({"ok": True, **self._links(tenant, ttl_s)})

    def _submit(self, parsed: _Parsed, pending: _Pending) -> _Pending:
        """Rate limit, span, and the tenant's mailbox (synchronous: keeps the order)."""
        tenant, verb = parsed.tenant, parsed.verb
        retry_after = self._limiter.check(tenant, verb, self._monotonic())
        if retry_after is not None:
            if self._telemetry is not None:
                self._telemetry.rate_limit_hit(tenant, verb)
            pending.answer_raw(
                error_reply(
                    "rate_limited",
                    f"too many {verb} commands for {tenant}; retry in {retry_after:.1f}s",
                    retry_after_s=round(retry_after, 3),
                )
            )
            return pending
        trace: str | None = None
        if self._telemetry is not None:
            with self._telemetry.command_span(tenant, verb, parsed.headers) as traceparent:
                trace = traceparent
        pending.envelope = Envelope(parsed.command, pending.answer, trace)
        try:
            self._supervisor.submit(tenant, pending.envelope)
        except (MailboxFullError, StoppedError) as exc:
            pending.envelope = None
            pending.answer(CommandReply.error(tenant, "unavailable", str(exc)))
        return pending

    async def _take_turn(self, turn: _Turn) -> bool:
        """Wait for the earlier commands of the tenant, then claim the durable key.

        Whether the command is to be submitted (False: a repeat, its reply is set).
        """
        parsed, pending = turn.parsed, turn.pending
        if turn.after is not None:
            await turn.after.wait()
        if parsed.key is None or self._dedupe is None:
            return True
        try:
            first = await self._dedupe.claim(parsed.key)
        except DEDUPE_ERRORS as exc:
            log.warning(
                "tenant=%s dedupe store unavailable (%s)", parsed.tenant, type(exc).__name__
            )
            return True  # in-process dedupe still holds; availability wins over a rare repeat
        if first is None:
            turn.owned = True
            return True
        if first == PENDING:
            first = await wait_settled(self._dedupe, parsed.key, self._reply_timeout_s)
        pending.answer_raw(
            first
            or error_reply("unavailable", f"{parsed.verb} with this id is still running; retry")
        )
        return False

    async def _serve(self, request: Request, admitted: _Pending | _Turn | bytes) -> None:
        """Send the one reply: the actor's answer, or ``unavailable`` if the command did not
        start in time (it then never runs) or the service stops first."""
        pending: _Pending | bytes = admitted.pending if isinstance(admitted, _Turn) else admitted
        try:
            if isinstance(admitted, _Turn):
                try:
                    if await self._take_turn(admitted):
                        self._submit(admitted.parsed, admitted.pending)
                finally:
                    self._end_turn(admitted)
            if isinstance(pending, _Pending):
                await self._wait(pending)
        except anyio.get_cancelled_exc_class():
            if isinstance(pending, _Pending):
                pending.settle("the service is stopping; retry")
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._respond(request, pending)
            raise
        if isinstance(admitted, _Turn) and admitted.owned and admitted.parsed.key is not None:
            await self._record(admitted.parsed.key, admitted.pending)
        await self._respond(request, pending)

    def _end_turn(self, turn: _Turn) -> None:
        turn.mine.set()
        if self._turns.get(turn.parsed.tenant) is turn.mine:
            del self._turns[turn.parsed.tenant]

    async def _record(self, key: str, pending: _Pending) -> None:
        """Keep the reply of a command that ran; give the claim up for one that did not."""
        if self._dedupe is None or not pending.done.is_set():
            return
        try:
            if pending.ran:
                await self._dedupe.settle(key, pending.reply)
            else:
                await self._dedupe.release(key)
        except DEDUPE_ERRORS as exc:
            log.warning("dedupe store unavailable (%s)", type(exc).__name__)

    async def _wait(self, pending: _Pending) -> None:
        with anyio.move_on_after(self._reply_timeout_s):
            await pending.done.wait()
        if pending.done.is_set():
            return
        log.warning("tenant=%s %s: no answer in time", pending.tenant, pending.verb)
        pending.settle(f"no answer for {pending.verb} in time; it was not run")
        # Already running (claimed): it is answered on every path; wait for that answer.
        with anyio.move_on_after(self._reply_timeout_s * 2):
            await pending.done.wait()
        if not pending.done.is_set():
            pending.answer(
                CommandReply.error(
                    pending.tenant, "unavailable", f"{pending.verb} still running; see the events"
                )
            )

    async def _respond(self, request: Request, pending: _Pending | bytes) -> None:
        reply = pending if isinstance(pending, bytes) else pending.reply
        if not reply:
            reply = error_reply("unavailable", "no answer")
        try:
            await request.respond(reply)
        except Exception as exc:
            log.info("could not send a reply: %s", type(exc).__name__)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, (expiry, _) = next(iter(self._seen.items()))
            if expiry > now:
                return
            del self._seen[key]
