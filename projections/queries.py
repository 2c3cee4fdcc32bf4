"""The query endpoint on NATS: the only module of ``projections`` importing nats.

Request/reply on ``tgqr.query.<name>`` (``status``, ``metrics``, ``health``, ``rebuild``),
JSON in and out. One task iterates the subscription; each request is handled in its own
task of the same task group, so a slow rebuild never holds up a status query and no error
escapes to a nats-py callback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

import anyio
import anyio.abc
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from events import EventLogError, InvalidTenantError, validate_tenant

from .errors import ProjectionError
from .metrics import DEFAULT_WINDOW_S
from .projector import Projector

__all__ = ["QUERY_PREFIX", "QUERY_QUEUE", "serve_queries"]

QUERY_PREFIX: Final = "tgqr.query."
QUERY_QUEUE: Final = "tgqr-query"
MAX_WINDOW_S: Final = 366 * 86400

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
        raise _RequestError("invalid_request", str(exc)) from exc


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


async def _answer(nc: Client, projector: Projector, msg: Msg) -> None:
    name = msg.subject.removeprefix(QUERY_PREFIX)
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
    if msg.reply:
        try:
            await msg.respond(_encoder.encode(reply))
        except Exception as exc:
            # The requester is gone or the connection closed: nobody left to tell.
            _log.info("query %s reply not sent: %r", name, exc)


async def serve_queries(
    nc: Client,
    projector: Projector,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``tgqr.query.*`` until cancelled; ready once the subscription is registered
    with the server (a request sent after ``tg.start`` returns is answered).

    Raises:
        nats.errors.Error: subscribing failed or the connection closed.
    """
    sub = await nc.subscribe(QUERY_PREFIX + "*", queue=QUERY_QUEUE)
    try:
        await nc.flush()
        async with anyio.create_task_group() as tg:
            task_status.started()
            async for msg in sub.messages:
                tg.start_soon(_answer, nc, projector, msg)
    finally:
        with anyio.CancelScope(shield=True):
            if not nc.is_closed:
                await sub.unsubscribe()
