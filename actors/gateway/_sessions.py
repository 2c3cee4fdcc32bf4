"""Session leases on NATS: ``tgqr.session.<tenant>.lease|renew|release`` (docs/contract.md,
"Session leases"), the endpoint ``session`` of the ``nats.micro`` service ``tgqr``.

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

``renew`` and ``release`` carry ``proof``: the lease's secret, which the lease reply sealed to
the holder (``proof_sealed``). It is decoded here and checked by the tenant's actor against the
commitment in the log; it never appears in a reply, a log line or an error message.
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
    proof_digest,
)
from actors.supervision import TenantSupervisor
from actors.telemetry import Telemetry

from ._admission import Admission, Ticket
from ._parse import BadRequestError, decode_request
from ._pending import Pending, rate_limited, submit
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


_Proof = Annotated[str, msgspec.Meta(max_length=128)]
"""A lease's proof, base64 (its 32 bytes are 44 characters); missing: refused by the actor."""


class _RenewBody(msgspec.Struct, forbid_unknown_fields=True):
    lease_id: _LeaseId
    ttl_s: _Ttl | None = None
    proof: _Proof = ""


class _ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    lease_id: _LeaseId
    revoked: bool = False
    proof: _Proof = ""


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
            return tenant, verb, Renew(body.lease_id, body.ttl_s, _proof(body.proof))
        case _:
            return tenant, verb, Release(body.lease_id, body.revoked, _proof(body.proof))


def _proof(text: str) -> bytes:
    """The proof's bytes (never echoed: an error names the field only)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            "invalid_request", "proof must be standard base64 with padding"
        ) from None


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


class _Holders:
    """The proof digest of each tenant's running lease, as this endpoint last saw it granted
    or renewed: a renewal or release proven with it is the holder's, and gets a rate-limit
    budget of its own, so that nobody who merely reads ``lease_id`` in the log can spend the
    tenant's budget with wrong proofs until the holder's lease expires unrenewed. (The actor
    decides; this only sorts requests into budgets. After a restart the first proven renewal
    teaches it again.)"""

    _MOST: Final = 100_000

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    def bucket(self, tenant: str, command: Lease | Renew | Release) -> str:
        """The rate-limit key of ``command``: the tenant, split into holder and others for
        renew and release."""
        if isinstance(command, Lease):
            return tenant
        known = self._digests.get(tenant)
        given = proof_digest(tenant, command.lease_id, command.proof)
        return f"{tenant}/holder" if known == given else f"{tenant}/others"

    def answered(self, tenant: str, command: Lease | Renew | Release, reply: CommandReply) -> None:
        """Learn from an ok reply: a grant's digest, a proven renewal's, a release's end."""
        match command:
            case Lease():
                digest = reply.extra.get("proof_digest")
                if isinstance(digest, str) and digest:
                    self._digests.pop(tenant, None)  # newest last, for the bound below
                    self._digests[tenant] = digest
            case Renew():
                self._digests[tenant] = proof_digest(tenant, command.lease_id, command.proof)
            case Release():
                self._digests.pop(tenant, None)
        while len(self._digests) > self._MOST:
            del self._digests[next(iter(self._digests))]


def _ok_json(verb: str, reply: CommandReply) -> dict[str, Any]:
    """The ok replies of docs/contract.md: lease and renew carry the lease's fields, release
    none."""
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
        self._limiter = limiter or RateLimiter(SESSION_LIMITS)
        self._holders = _Holders()
        self._telemetry = telemetry
        self._admission = Admission(
            self._decide,
            name="session requests",
            monotonic=monotonic,
            telemetry=telemetry,
            reply_timeout_s=reply_timeout_s,
            dedupe_window_s=dedupe_window_s,
            dedupe_max=dedupe_max,
        )

    @property
    def endpoint(self) -> tuple[str, str, Callable[[Request], Awaitable[None]]]:
        """``(name, subject, handler)`` for the ``tgqr`` micro service."""
        return "session", SESSION_SUBJECT, self._admission.enqueue

    def _ok_json(self, verb: str, command: Lease | Renew | Release, reply: CommandReply) -> Any:
        self._holders.answered(reply.tenant, command, reply)
        return _ok_json(verb, reply)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the requests the endpoint queues, until cancelled (each one answered)."""
        await self._admission.run(task_status=task_status)

    def _decide(self, request: Request, _msg_id: str | None, now: float) -> Ticket:
        """In arrival order, without awaiting: an error reply, or the submitted request."""
        try:
            tenant, verb, command = parse_session(request.subject, request.data)
        except BadRequestError as exc:
            return Ticket(reply=exc.reply)
        retry_after = self._limiter.check(self._holders.bucket(tenant, command), verb, now)
        if retry_after is not None:
            return Ticket(
                reply=rate_limited(tenant, verb, retry_after, self._telemetry, "requests")
            )
        pending = Pending(tenant, verb, partial(self._ok_json, verb, command))
        submit(self._supervisor, pending, command, request.headers or {}, self._telemetry)
        return Ticket(pending=pending)
