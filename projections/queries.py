"""The query endpoint on NATS: the only module of ``projections`` importing nats.

Request/reply on ``tgqr.query.<name>`` (``status``, ``metrics``, ``health``, ``rebuild``),
JSON in and out. One task iterates the subscription; each request is handled in its own
task of the same task group, so a slow rebuild never holds up a status query and no error
escapes to a nats-py callback.

Floods: the subscription holds at most :data:`PENDING_MSGS` requests (nats-py drops the rest
as a slow consumer); a request whose reply subject is not an inbox is dropped unread
(:class:`events.ReplyGuard`); the rest pass :class:`~projections._gate.QueryGate` (a rate per
query name, a cap on those in flight) or get ``rate_limited`` with ``retry_after_s`` at once,
without touching DuckDB. A flood costs its own replies, and the window is free again within
a second after it stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

import anyio
import anyio.abc
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from events import (
    EventLogError,
    InvalidTenantError,
    ReplyGuard,
    is_inbox,
    plain_decode_error,
    validate_tenant,
)

from ._gate import QueryGate
from .errors import ProjectionError
from .metrics import DEFAULT_WINDOW_S
from .projector import Projector

__all__ = ["PENDING_BYTES", "PENDING_MSGS", "QUERY_PREFIX", "QUERY_QUEUE", "serve_queries"]

QUERY_PREFIX: Final = "tgqr.query."
QUERY_QUEUE: Final = "tgqr-query"
MAX_WINDOW_S: Final = 366 * 86400
PENDING_MSGS: Final = 1024
"""Requests nats-py holds for the endpoint (refusing them takes ~20 ms); the rest are dropped."""
PENDING_BYTES: Final = 4 * 1024 * 1024

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_encoder: Final = msgspec.json.Encoder()


class StatusRequest(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str | None = None


class MetricsRequest(msgspec.Struct, frozen=True, kw_only=True):
    window_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_S)] | None = None
    tenant: str | None = None


class EmptyRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


_status_decoder: Final = msgspec.json.Decoder(StatusRequest)
_metrics_decoder: Final = msgspec.json.Decoder(MetricsRequest)
_empty_decoder: Final = msgspec.json.Decoder(EmptyRequest)


class _RequestError(Exception):
    """A request we answer with ``{"ok": false, "error": {code, message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes) -> _T:
    try:
        return decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        raise _RequestError("invalid_request", plain_decode_error(exc, decoder.type)) from exc


def _tenant(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_tenant(value)
    except InvalidTenantError as exc:
        raise _RequestError("invalid_tenant", str(exc)) from exc


Handler = Callable[[Client, Projector, bytes], Awaitable[dict[str, Any]]]


async def _status(_nc: Client, projector: Projector, data: bytes) -> dict[str, Any]:
    request = _decode(_status_decoder, data)
    items = await projector.status(_tenant(request.tenant))
    return {"ok": True, "items": items}


async def _metrics(_nc: Client, projector: Projector, data: bytes) -> dict[str, Any]:
    request = _decode(_metrics_decoder, data)
    window = request.window_s if request.window_s is not None else DEFAULT_WINDOW_S
    return await projector.metrics(window_s=window, tenant=_tenant(request.tenant))


async def _health(nc: Client, projector: Projector, data: bytes) -> dict[str, Any]:
    _decode(_empty_decoder, data)
    reply = await projector.health()
    reply["nats"] = "connected" if nc.is_connected else "disconnected"
    return reply


async def _rebuild(_nc: Client, projector: Projector, data: bytes) -> dict[str, Any]:
    _decode(_empty_decoder, data)
    result = await projector.rebuild()
    return {
        "ok": True,
        "events": result.events,
        "checkpoint": result.checkpoint,
        "seconds": round(result.seconds, 3),
    }


_HANDLERS: Final[dict[str, Handler]] = {
    "status": _status,
    "metrics": _metrics,
    "health": _health,
    "rebuild": _rebuild,
}


async def _answer(nc: Client, projector: Projector, msg: Msg, name: str) -> None:
    handler = _HANDLERS.get(name)
    try:
        if handler is None:
            raise _RequestError("invalid_request", f"unknown query {name[:60]!r}")
        reply = await handler(nc, projector, msg.data)
    except _RequestError as exc:
        reply = _error(exc.code, exc.message)
    except (ProjectionError, EventLogError) as exc:
        _log.warning("query %s unavailable: %s", name, exc)
        reply = _error("unavailable", str(exc))
    except Exception as exc:
        _log.exception("query %s failed", name)
        reply = _error("unavailable", f"internal error: {type(exc).__name__}")
    await _respond(nc, msg, _encoder.encode(reply))


async def _respond(nc: Client, msg: Msg, reply: bytes) -> None:
    """The one place this endpoint publishes: the reply, to an inbox only."""
    if not is_inbox(msg.reply):
        return
    try:
        await nc.publish(msg.reply, reply)
    except Exception as exc:
        # The connection closed: nobody left to tell.
        _log.info("query reply not sent: %r", exc)


def _rate_limited(name: str, retry_after: float) -> bytes:
    return _encoder.encode(
        {
            "ok": False,
            "error": {
                "code": "rate_limited",
                "message": f"too many {name[:60]} queries; retry in {retry_after:.1f}s",
                "retry_after_s": round(retry_after, 3),
            },
        }
    )


async def serve_queries(
    nc: Client,
    projector: Projector,
    *,
    gate: QueryGate | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    on_refused: Callable[[str], None] | None = None,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``tgqr.query.*`` until cancelled; ready once the subscription is registered
    with the server (a request sent after ``tg.start`` returns is answered).

    ``gate`` (default :class:`QueryGate` with its default limits) admits queries;
    ``on_refused(reason)`` is called for each request refused (``rate_limited``) or dropped
    (``not_inbox``) before any work, e.g. to count it.

    Raises:
        nats.errors.Error: subscribing failed or the connection closed.
    """
    gate = gate or QueryGate()
    guard = ReplyGuard(clock=monotonic)
    sub = await nc.subscribe(
        QUERY_PREFIX + "*",
        queue=QUERY_QUEUE,
        pending_msgs_limit=PENDING_MSGS,
        pending_bytes_limit=PENDING_BYTES,
    )

    async def answer(msg: Msg, name: str) -> None:
        try:
            await _answer(nc, projector, msg, name)
        finally:
            gate.done()

    try:
        await nc.flush()
        async with anyio.create_task_group() as tg:
            task_status.started()
            async for msg in sub.messages:
                if not guard.allows(msg.subject, msg.reply):
                    if on_refused is not None:
                        on_refused("not_inbox")
                    continue
                name = msg.subject.removeprefix(QUERY_PREFIX)
                retry_after = gate.admit(name, monotonic())
                if retry_after is None:
                    tg.start_soon(answer, msg, name)
                    continue
                if on_refused is not None:
                    on_refused("rate_limited")
                await _respond(nc, msg, _rate_limited(name, retry_after))
    finally:
        with anyio.CancelScope(shield=True):
            if not nc.is_closed:
                await sub.unsubscribe()
