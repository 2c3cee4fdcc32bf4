"""Session leases on NATS: ``tgqr.session.<tenant>.lease|renew|release`` (DESIGN.md, "Session
leases"), the endpoint ``session`` of the ``nats.micro`` service ``tgqr``.

The service itself is registered by the command endpoint (one service, so ``$SRV.PING`` gets
one answer per instance): pass :attr:`SessionEndpoint.endpoint` to its ``more_endpoints`` and
run :meth:`SessionEndpoint.run` first.

Like the command endpoint: bodies decoded by msgspec decoders created once, every client mistake
a structured error, per-tenant rate limits, and the request handed to the tenant's actor through
the supervisor in arrival order, in an :class:`~actors.login.Envelope` that is answered exactly
once. The reply is sent once the actor answered (after the lease's event is stored). The sealed
session exists only inside that reply: nothing here logs or stores it.

A ``Nats-Msg-Id`` repeated while this process remembers its request (the dedupe window) gets
the first reply, so a client that timed out may retry a lease without locking itself out; it
is remembered in memory only (a sealed session is not written to the dedupe bucket).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from nats.aio.client import Client
from nats.micro.request import Request

from actors.hpke import InvalidPublicKeyError, check_public_key
from actors.login import (
    LEASE_TTL_S,
    MAX_LEASE_TTL_S,
    MIN_LEASE_TTL_S,
    CommandReply,
    Lease,
    Mail,
    Release,
    Renew,
)
from actors.supervision import TenantSupervisor
from actors.telemetry import Telemetry

from ._parse import BadRequestError, decode_request, error_reply
from ._pending import Pending, RecentIds, rate_limited, respond, submit, wait_answer
from ._ratelimit import RateLimiter

__all__ = ["SESSION_LIMITS", "SESSION_SUBJECT", "SessionEndpoint", "parse_session"]

log = logging.getLogger("tgqr.sessions")

SESSION_SUBJECT: Final = "tgqr.session.*.*"
SESSION_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {"lease": 30, "renew": 120, "release": 30}
)
"""Per tenant and minute; a renewal every ``ttl_s / 3`` of the shortest lease is 18."""

_encoder: Final = msgspec.json.Encoder()
_NAME = r"^[A-Za-z0-9_.-]+$"
_ID = r"^[A-Za-z0-9_-]+$"
_Ttl = Annotated[int, msgspec.Meta(ge=MIN_LEASE_TTL_S, le=MAX_LEASE_TTL_S)]
_LeaseId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_ID)]


class _LeaseBody(msgspec.Struct, forbid_unknown_fields=True):
    holder: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NAME)]
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    suite: Literal["mlkem768-x25519", "x25519"] = "mlkem768-x25519"
    ttl_s: _Ttl = LEASE_TTL_S


class _RenewBody(msgspec.Struct, forbid_unknown_fields=True):
    lease_id: _LeaseId
    ttl_s: _Ttl | None = None


class _ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    lease_id: _LeaseId
    revoked: bool = False


_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "lease": msgspec.json.Decoder(_LeaseBody),
    "renew": msgspec.json.Decoder(_RenewBody),
    "release": msgspec.json.Decoder(_ReleaseBody),
}


def parse_session(subject: str, data: bytes) -> tuple[str, str, Lease | Renew | Release]:
    """``(tenant, verb, command)`` of a session request.

    Raises:
        BadRequestError: with the reply to send (``invalid_tenant``, ``invalid_request``).
    """
    tenant, verb, body = decode_request(subject, data, _DECODERS)
    match body:
        case _LeaseBody():
            return tenant, verb, Lease(body.holder, _public_key(body), body.suite, body.ttl_s)
        case _RenewBody():
            return tenant, verb, Renew(body.lease_id, body.ttl_s)
        case _:
            return tenant, verb, Release(body.lease_id, body.revoked)


def _public_key(body: _LeaseBody) -> bytes:
    try:
        raw = base64.b64decode(body.public_key, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            "invalid_request", "public_key must be standard base64 with padding"
        ) from None
    try:
        check_public_key(body.suite, raw)
    except InvalidPublicKeyError as exc:
        raise BadRequestError("invalid_request", str(exc)) from None
    return raw


def _ok_json(verb: str, reply: CommandReply) -> dict[str, Any]:
    """DESIGN.md's ok replies: lease and renew carry the lease's fields, release none."""
    if verb == "release":
        return {"ok": True}
    return {"ok": True, **reply.extra}


class SessionEndpoint:
    """Serves session leases until cancelled. Start with ``await tg.start(endpoint.run)``."""

    def __init__(
        self,
        nc: Client,
        supervisor: TenantSupervisor[Mail],
        *,
        monotonic: Callable[[], float],
        limiter: RateLimiter | None = None,
        telemetry: Telemetry | None = None,
        reply_timeout_s: float = 20.0,
        dedupe_window_s: float = 120.0,
        dedupe_max: int = 10_000,
    ) -> None:
        self._nc = nc
        self._supervisor = supervisor
        self._monotonic = monotonic
        self._limiter = limiter or RateLimiter(SESSION_LIMITS)
        self._telemetry = telemetry
        self._reply_timeout_s = reply_timeout_s
        self._dedupe_window_s = dedupe_window_s
        self._dedupe_max = dedupe_max
        self._seen = RecentIds(dedupe_window_s, dedupe_max)
        self._send: MemoryObjectSendStream[Request] | None = None

    @property
    def endpoint(self) -> tuple[str, str, Callable[[Request], Awaitable[None]]]:
        """``(name, subject, handler)`` for the ``tgqr`` micro service."""
        return "session", SESSION_SUBJECT, self._enqueue

    async def _enqueue(self, request: Request) -> None:
        """The micro handler: queue the request for :meth:`run` (in arrival order)."""
        send = self._send
        if send is None:
            await respond(request, error_reply("unavailable", "leases are not served now"))
            return
        try:
            await send.send(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            await respond(request, error_reply("unavailable", "the service is stopping"))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the requests the endpoint queues, until cancelled (each one answered)."""
        send, receive = anyio.create_memory_object_stream[Request](1024)
        try:
            async with anyio.create_task_group() as tg, send, receive:
                self._send = send
                task_status.started()
                async for request in receive:
                    tg.start_soon(self._serve, request, self._admit(request))
        finally:
            self._send = None

    def _admit(self, request: Request) -> Pending | bytes:
        """In arrival order, without awaiting: an error reply, or the submitted request."""
        try:
            tenant, verb, command = parse_session(request.subject, request.data)
        except BadRequestError as exc:
            return exc.reply
        headers = request.headers or {}
        msg_id = headers.get("Nats-Msg-Id")
        now = self._monotonic()
        key = (request.subject, msg_id) if msg_id else None
        if key is not None:
            seen = self._seen.get(key, now)
            if seen is not None:
                return seen
        retry_after = self._limiter.check(tenant, verb, now)
        if retry_after is not None:
            return rate_limited(tenant, verb, retry_after, self._telemetry, "requests")
        pending = Pending(tenant, verb, partial(_ok_json, verb))
        if key is not None:
            self._seen.put(key, pending, now)
        submit(self._supervisor, pending, command, headers, self._telemetry)
        return pending

    async def _serve(self, request: Request, admitted: Pending | bytes) -> None:
        """Send the one reply: the actor's answer, or ``unavailable`` if the request did not
        start in time (it then never runs) or the service stops first."""
        if isinstance(admitted, Pending):
            try:
                await wait_answer(admitted, self._reply_timeout_s)
            except anyio.get_cancelled_exc_class():
                admitted.settle("the service is stopping; retry")
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await respond(request, admitted.reply)
                raise
            if not admitted.ran:
                self._forget(request, admitted)  # a retry under the same id may run it
            reply = admitted.reply
        else:
            reply = admitted
        await respond(request, reply)

    def _forget(self, request: Request, pending: Pending) -> None:
        msg_id = (request.headers or {}).get("Nats-Msg-Id")
        if msg_id:
            self._seen.forget((request.subject, msg_id), pending)
