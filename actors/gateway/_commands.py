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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request

from actors.login import Cancel, Logout, Mail, Password, Start
from actors.supervision import TenantSupervisor
from actors.telemetry import Telemetry

from ._dedupe import DEDUPE_ERRORS, PENDING, DedupeStore, dedupe_key, wait_settled
from ._parse import BadRequestError, LinkRequest, error_reply, parse_command
from ._pending import Pending, RecentIds, rate_limited, respond, submit, wait_answer
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
    pending: Pending
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
        self._seen = RecentIds(dedupe_window_s, dedupe_max)
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

    def _admit(self, request: Request) -> Pending | _Turn | bytes:
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
            seen = self._seen.get((request.subject, msg_id), self._monotonic())
            if seen is not None:
                return seen
            key = dedupe_key(request.subject, msg_id) if self._dedupe is not None else None
        parsed = _Parsed(tenant, verb, command, headers, key)
        pending = Pending(tenant, verb)
        if msg_id:
            self._seen.put((request.subject, msg_id), pending, self._monotonic())
        if key is None and tenant not in self._turns:
            return self._submit(parsed, pending)
        turn = _Turn(parsed, pending, self._turns.get(tenant))
        self._turns[tenant] = turn.mine
        return turn

    def _link(self, tenant: str, ttl_s: int) -> bytes:
        """``link``: a signed link to the tenant's page, from here (rate limited, no event)."""
        retry_after = self._limiter.check(tenant, "link", self._monotonic())
        if retry_after is not None:
            return rate_limited(tenant, "link", retry_after, self._telemetry, "commands")
        if self._links is None:
            return error_reply("unavailable", "this service serves no web page (no --http)")
        return _encoder.encode({"ok": True, **self._links(tenant, ttl_s)})

    def _submit(self, parsed: _Parsed, pending: Pending) -> Pending:
        """Rate limit, span, and the tenant's mailbox (synchronous: keeps the order)."""
        tenant, verb = parsed.tenant, parsed.verb
        retry_after = self._limiter.check(tenant, verb, self._monotonic())
        if retry_after is not None:
            pending.answer_raw(rate_limited(tenant, verb, retry_after, self._telemetry, "commands"))
            return pending
        submit(self._supervisor, pending, parsed.command, parsed.headers, self._telemetry)
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

    async def _serve(self, request: Request, admitted: Pending | _Turn | bytes) -> None:
        """Send the one reply: the actor's answer, or ``unavailable`` if the command did not
        start in time (it then never runs) or the service stops first."""
        pending: Pending | bytes = admitted.pending if isinstance(admitted, _Turn) else admitted
        try:
            if isinstance(admitted, _Turn):
                try:
                    if await self._take_turn(admitted):
                        self._submit(admitted.parsed, admitted.pending)
                finally:
                    self._end_turn(admitted)
            if isinstance(pending, Pending):
                await wait_answer(pending, self._reply_timeout_s)
        except anyio.get_cancelled_exc_class():
            if isinstance(pending, Pending):
                pending.settle("the service is stopping; retry")
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await respond(request, _reply_of(pending))
            raise
        if isinstance(admitted, _Turn) and admitted.owned and admitted.parsed.key is not None:
            await self._record(admitted.parsed.key, admitted.pending)
        await respond(request, _reply_of(pending))

    def _end_turn(self, turn: _Turn) -> None:
        turn.mine.set()
        if self._turns.get(turn.parsed.tenant) is turn.mine:
            del self._turns[turn.parsed.tenant]

    async def _record(self, key: str, pending: Pending) -> None:
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


def _reply_of(pending: Pending | bytes) -> bytes:
    return pending if isinstance(pending, bytes) else pending.reply
