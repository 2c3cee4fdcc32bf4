"""The command endpoint: ``tgqr.cmd.<tenant>.<verb>`` served as the ``nats.micro`` service ``tgqr``.

Requests are taken off the micro endpoint by one task in arrival order and handed to their
tenant's mailbox in that order: synchronously when nothing has to be awaited first, else in
the tenant's *turn* (a chain of events per tenant), so one tenant's commands reach its actor
in the order they arrived while the waits run concurrently (one task per request). The reply
is sent only once the actor answered, that is after the command's first event is stored.

The queue -> admit -> serve skeleton is :mod:`._admission`, shared with the session endpoint;
this module adds what only commands have: the ``link`` verb, per-tenant turns and durable claims.

A ``Nats-Msg-Id`` is deduplicated per subject (tenant and verb) within the window: in this
process by the command in flight, across restarts and instances by a durable claim
(:mod:`._dedupe`). A repeat gets the first reply and produces nothing new. A command that never
ran (``unavailable``, ``rate_limited``) gives both up, so a retry with the same id runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.micro.request import Request

from actors.login import Cancel, Logout, Mail, Password, Start
from actors.supervision import TenantSupervisor
from actors.telemetry import Telemetry

from ._admission import Admission, Ticket
from ._dedupe import DEDUPE_ERRORS, PENDING, DedupeStore, dedupe_key, wait_settled
from ._parse import BadRequestError, LinkRequest, error_reply, parse_command
from ._pending import Pending, rate_limited, submit
from ._ratelimit import RateLimiter
from ._service import MicroEndpoint, open_micro_service

__all__ = ["COMMAND_SUBJECT", "CommandEndpoint", "error_reply"]

log = logging.getLogger("tgqr.commands")

COMMAND_SUBJECT: Final = "tgqr.cmd.*.*"
_encoder: Final = msgspec.json.Encoder()

Handler = Callable[[Request], Awaitable[None]]
LinkIssuer = Callable[[str, int, str], Mapping[str, object]]
"""(tenant, ttl_s, lang) -> the ``link`` reply's fields (``url``, ``expires_at``)."""


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
        route: Callable[[Handler], Handler] | None = None,
    ) -> None:
        self._nc = nc
        self._supervisor = supervisor
        self._limiter = limiter
        self._monotonic = monotonic
        self._dedupe = dedupe
        self._telemetry = telemetry
        self._reply_timeout_s = reply_timeout_s
        self._version = version
        self._links = links
        self._more_endpoints = tuple(more_endpoints)
        self._route = route
        self._admission = Admission(
            self._decide,
            name="commands",
            monotonic=monotonic,
            telemetry=telemetry,
            reply_timeout_s=reply_timeout_s,
            dedupe_window_s=dedupe_window_s,
            dedupe_max=dedupe_max,
        )
        self._turns: dict[str, anyio.Event] = {}  # tenant -> the last turn's "went" event

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Register the micro service and serve; on cancellation stop taking commands first."""
        handler: Handler = self._admission.enqueue
        if self._route is not None:
            handler = self._route(handler)  # to the tenant's owning instance
        endpoints = [("command", COMMAND_SUBJECT, handler), *self._more_endpoints]
        async with anyio.create_task_group() as tg:
            await tg.start(self._admission.run)
            async with open_micro_service(
                self._nc,
                name="tgqr",
                version=self._version,
                description="tgqr QR-login commands",
                endpoints=endpoints,  # one service, one $SRV answer per instance
                telemetry=self._telemetry,
                monotonic=self._monotonic,
            ):
                task_status.started()
                await anyio.sleep_forever()

    def _decide(self, request: Request, msg_id: str | None, _now: float) -> Ticket:
        """In arrival order, without awaiting: a reply, a submitted command, or a turn."""
        try:
            tenant, verb, command = parse_command(request.subject, request.data)
        except BadRequestError as exc:
            return Ticket(reply=exc.reply)
        if isinstance(command, LinkRequest):
            return Ticket(reply=self._link(tenant, command.ttl_s, command.lang))
        key = dedupe_key(request.subject, msg_id) if msg_id and self._dedupe is not None else None
        parsed = _Parsed(tenant, verb, command, request.headers or {}, key)
        pending = Pending(tenant, verb)
        if key is None and tenant not in self._turns:
            self._submit(parsed, pending)
            return Ticket(pending=pending)
        turn = _Turn(parsed, pending, self._turns.get(tenant))
        self._turns[tenant] = turn.mine
        return Ticket(
            pending=pending,
            prepare=partial(self._take_turn, turn),
            finish=partial(self._record, turn),
        )

    def _link(self, tenant: str, ttl_s: int, lang: str) -> bytes:
        """``link``: a signed link to the tenant's page, from here (rate limited, no event)."""
        retry_after = self._limiter.check(tenant, "link", self._monotonic())
        if retry_after is not None:
            return rate_limited(tenant, "link", retry_after, self._telemetry, "commands")
        if self._links is None:
            return error_reply("unavailable", "this service serves no web page (no --http)")
        return _encoder.encode({"ok": True, **self._links(tenant, ttl_s, lang)})

    def _submit(self, parsed: _Parsed, pending: Pending) -> None:
        """Rate limit, span, and the tenant's mailbox (synchronous: keeps the order)."""
        tenant, verb = parsed.tenant, parsed.verb
        retry_after = self._limiter.check(tenant, verb, self._monotonic())
        if retry_after is not None:
            pending.answer_raw(rate_limited(tenant, verb, retry_after, self._telemetry, "commands"))
            return
        submit(self._supervisor, pending, parsed.command, parsed.headers, self._telemetry)

    async def _take_turn(self, turn: _Turn) -> None:
        """Wait for the earlier commands of the tenant, claim the durable key, then submit
        (unless the claim shows a repeat: its reply is then set)."""
        try:
            if await self._claim(turn):
                self._submit(turn.parsed, turn.pending)
        finally:
            turn.mine.set()
            if self._turns.get(turn.parsed.tenant) is turn.mine:
                del self._turns[turn.parsed.tenant]

    async def _claim(self, turn: _Turn) -> bool:
        """Whether the command is to be submitted (False: a repeat, its reply is set)."""
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
        if first:
            pending.answer_raw(first, ran=True)
        else:
            pending.answer_raw(
                error_reply("unavailable", f"{parsed.verb} with this id is still running; retry")
            )
        return False

    async def _record(self, turn: _Turn) -> None:
        """Keep the reply of a command that ran; give the claim up for one that did not."""
        key, pending = turn.parsed.key, turn.pending
        if self._dedupe is None or key is None or not turn.owned or not pending.done.is_set():
            return
        try:
            if pending.ran:
                await self._dedupe.settle(key, pending.reply)
            else:
                await self._dedupe.release(key)
        except DEDUPE_ERRORS as exc:
            log.warning("dedupe store unavailable (%s)", type(exc).__name__)
