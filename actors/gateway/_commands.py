"""The command endpoint: ``tgqr.cmd.<tenant>.<verb>`` served as the ``nats.micro`` service ``tgqr``.

Requests are taken off the micro endpoint by one task in arrival order; everything up to
handing the command to the tenant's mailbox is synchronous, so one tenant's commands reach
its actor in the order they arrived, while the waits for replies run concurrently (one task
per request). The reply is sent only once the actor answered, that is after the command's
first event is stored. A repeated ``Nats-Msg-Id`` within the dedupe window gets the first
reply again and produces nothing new.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request

from actors.login import Cancel, CommandReply, Envelope, Logout, Mail, Password, Start
from actors.supervision import MailboxFullError, StoppedError, TenantSupervisor
from actors.telemetry import Telemetry
from events import InvalidTenantError, validate_tenant

from ._ratelimit import RateLimiter

__all__ = ["COMMAND_SUBJECT", "CommandEndpoint", "error_reply"]

log = logging.getLogger("tgqr.commands")

COMMAND_SUBJECT: Final = "tgqr.cmd.*.*"
MAX_BODY: Final = 64 * 1024
_encoder: Final = msgspec.json.Encoder()


class _StartBody(msgspec.Struct, forbid_unknown_fields=True):
    expected_user_id: Annotated[int, msgspec.Meta(gt=0)] | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=600)] | None = None
    force: bool = False


class _PasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class _EmptyBody(msgspec.Struct, forbid_unknown_fields=True):
    pass


_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "start": msgspec.json.Decoder(_StartBody),
    "password": msgspec.json.Decoder(_PasswordBody),
    "cancel": msgspec.json.Decoder(_EmptyBody),
    "logout": msgspec.json.Decoder(_EmptyBody),
}


def error_reply(code: str, message: str, **extra: object) -> bytes:
    """A structured error reply, as DESIGN.md's NATS contract specifies."""
    return _encoder.encode({"ok": False, "error": {"code": code, "message": message, **extra}})


class _BadRequestError(Exception):
    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.reply = error_reply(code, message, **extra)


def _parse(subject: str, data: bytes) -> tuple[str, str, Start | Password | Cancel | Logout]:
    parts = subject.split(".")
    if len(parts) != 4:
        raise _BadRequestError("invalid_request", "subject must be tgqr.cmd.<tenant>.<verb>")
    _, _, tenant, verb = parts
    try:
        validate_tenant(tenant)
    except InvalidTenantError as exc:
        raise _BadRequestError("invalid_tenant", str(exc)) from exc
    decoder = _DECODERS.get(verb)
    if decoder is None:
        verbs = ", ".join(_DECODERS)
        raise _BadRequestError("invalid_request", f"unknown verb {verb[:40]!r}: one of {verbs}")
    if len(data) > MAX_BODY:
        raise _BadRequestError("invalid_request", f"body larger than {MAX_BODY} bytes")
    try:
        body = decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        # msgspec names the field and the expected type, never the value.
        raise _BadRequestError("invalid_request", f"bad {verb} body: {exc}") from exc
    if isinstance(body, _StartBody):
        command: Start | Password | Cancel | Logout = Start(
            expected_user_id=body.expected_user_id, ttl_s=body.ttl_s, force=body.force
        )
    elif isinstance(body, _PasswordBody):
        command = Password(password=body.password)
    else:
        command = Cancel() if verb == "cancel" else Logout()
    return tenant, verb, command


@dataclass(slots=True)
class _Pending:
    tenant: str
    verb: str
    msg_id: str | None
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: bytes = b""
    envelope: Envelope | None = None

    def answer(self, reply: CommandReply) -> None:
        if not self.done.is_set():
            self.reply = _encoder.encode(reply.to_json())
            self.done.set()

    def settle(self, message: str) -> None:
        """No answer in time: ``unavailable`` now, unless the actor is already running it."""
        if self.envelope is not None:
            self.envelope.expire(self.tenant, message)
        else:
            self.answer(CommandReply.error(self.tenant, "unavailable", message))


class CommandEndpoint:
    """Serves commands until cancelled. Start with ``await tg.start(endpoint.run)``."""

    def __init__(
        self,
        nc: Client,
        supervisor: TenantSupervisor[Mail],
        *,
        limiter: RateLimiter,
        monotonic: Callable[[], float],
        telemetry: Telemetry | None = None,
        reply_timeout_s: float = 20.0,
        dedupe_window_s: float = 120.0,
        dedupe_max: int = 50_000,
        version: str = "0.1.0",
    ) -> None:
        self._nc = nc
        self._supervisor = supervisor
        self._limiter = limiter
        self._monotonic = monotonic
        self._telemetry = telemetry
        self._reply_timeout_s = reply_timeout_s
        self._dedupe_window_s = dedupe_window_s
        self._dedupe_max = dedupe_max
        self._version = version
        # msg id -> (expiry, pending); pending.done tells whether the reply is known yet.
        self._seen: OrderedDict[str, tuple[float, _Pending]] = OrderedDict()

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
            async with anyio.create_task_group() as tg, send, receive:
                task_status.started()
                async for request in receive:
                    pending_or_reply = self._accept(request)
                    tg.start_soon(self._finish, request, pending_or_reply)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await service.stop()

    def _accept(self, request: Request) -> _Pending | bytes:
        """Everything up to the mailbox, synchronously (this keeps per-tenant order)."""
        try:
            tenant, verb, command = _parse(request.subject, request.data)
        except _BadRequestError as exc:
            return exc.reply
        headers = request.headers or {}
        now = self._monotonic()
        msg_id = headers.get("Nats-Msg-Id")
        if msg_id:
            self._expire(now)
            seen = self._seen.get(msg_id)
            if seen is not None:
                return seen[1]
        retry_after = self._limiter.check(tenant, verb, now)
        if retry_after is not None:
            if self._telemetry is not None:
                self._telemetry.rate_limit_hit(tenant, verb)
            return error_reply(
                "rate_limited",
                f"too many {verb} commands for {tenant}; retry in {retry_after:.1f}s",
                retry_after_s=round(retry_after, 3),
            )
        pending = _Pending(tenant, verb, msg_id)
        trace: str | None = None
        if self._telemetry is not None:
            with self._telemetry.command_span(tenant, verb, headers) as traceparent:
                trace = traceparent
        pending.envelope = Envelope(command, pending.answer, trace)
        try:
            self._supervisor.submit(tenant, pending.envelope)
        except (MailboxFullError, StoppedError) as exc:
            return error_reply("unavailable", str(exc))
        if msg_id:
            self._seen[msg_id] = (now + self._dedupe_window_s, pending)
            while len(self._seen) > self._dedupe_max:
                self._seen.popitem(last=False)
        return pending

    async def _finish(self, request: Request, pending: _Pending | bytes) -> None:
        """Send the one reply: the actor's answer, or ``unavailable`` if the command did not
        start in time (it then never runs) or the service stops first."""
        try:
            if isinstance(pending, _Pending):
                await self._wait(pending)
        except anyio.get_cancelled_exc_class():
            if isinstance(pending, _Pending):
                pending.settle("the service is stopping; retry")
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._respond(request, pending)
            raise
        await self._respond(request, pending)

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
